"""timm's ``pretrained=True`` path, made strict: safetensors only, fetch errors that name what failed, and a
filter that refuses weights of another width or head and checks the cached file's digest.

* :data:`SAFETENSORS_ONLY` keeps timm from falling back to a pickle.
* :func:`named_fetch_errors` turns the Hub client's transport errors (which name neither repo nor file) into a
  :class:`WeightsFetchError` that does.
* :func:`checked_pretrained_filter` is the ``pretrained_filter_fn`` the model builder hands to timm.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import constants, try_to_load_from_cache
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
from safetensors import SafetensorError
from timm.models import resolve_pretrained_cfg
from torch import Tensor

from ..specs import HEADS
from .checks import compare_with_model, drop_unused_keys
from .io import DIGEST_KEY, IntegrityError, read_safetensors_header, tensors_digest

__all__ = [
    'SAFETENSORS_ONLY',
    'WeightsFetchError',
    'checked_pretrained_filter',
    'fill_untrained_head',
    'hub_weights_location',
    'named_fetch_errors',
]

# Fetch pretrained weights as safetensors only: without it, timm falls back to `pytorch_model.bin` (a pickle)
# whenever the safetensors file cannot be found, including when the Hub only failed to answer.
SAFETENSORS_ONLY = {'hf_hub_filename': 'model.safetensors'}


class WeightsFetchError(OSError):
    """Fetching pretrained weights from the Hub failed; names the repo, the file and the revision."""

    def __init__(self, message: str, repo_id: str, filename: str, revision: str | None) -> None:
        super().__init__(message)
        # not `filename`: OSError formats its message around that attribute
        self.repo_id, self.path_in_repo, self.revision = repo_id, filename, revision


def fill_untrained_head(state_dict: dict[str, Tensor], model: torch.nn.Module) -> dict[str, Tensor]:
    """Backbone-only weights (ImageNet tags) keep the model's freshly initialised head, so loading stays strict
    for every backbone key."""
    prefix = HEADS[model.head].prefixes
    if any(k.startswith(prefix) for k in state_dict):
        return state_dict
    return {**state_dict, **{k: v for k, v in model.state_dict().items() if k.startswith(prefix)}}


def hub_weights_location(arch: str, kwargs: Mapping[str, Any]) -> tuple[str, str, str | None] | None:
    """(repo_id, filename, revision) that ``timm.create_model(arch, pretrained=True, **kwargs)`` fetches, or None
    when the weights do not come from the Hub (a file, a URL, a local folder)."""
    cfg = resolve_pretrained_cfg(
        arch, pretrained_cfg=kwargs.get('pretrained_cfg'), pretrained_cfg_overlay=kwargs.get('pretrained_cfg_overlay')
    )
    if cfg.source not in (None, '', 'hf-hub') or cfg.state_dict is not None or cfg.file or not cfg.hf_hub_id:
        return None
    repo_id, _, revision = cfg.hf_hub_id.partition('@')
    return repo_id, cfg.hf_hub_filename or 'model.safetensors', revision or None


def _fetch_error_types() -> tuple[type[BaseException], ...]:
    # OSError covers huggingface_hub's consistency check and cache errors
    types: list[type[BaseException]] = [OSError, HfHubHTTPError, SafetensorError]
    for module in ('httpx2', 'httpx'):  # the HTTP client huggingface_hub runs on, whichever is installed
        try:
            types.append(__import__(module).HTTPError)
        except (ImportError, AttributeError):
            pass
    return tuple(types)


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f'{type(err).__name__}: {lines[0][:300]}' if lines else type(err).__name__


@contextmanager
def named_fetch_errors(arch: str, pretrained: bool, kwargs: Mapping[str, Any]) -> Iterator[None]:
    """Around ``build_model_with_cfg``: a failed Hub fetch (or an unreadable cached file) of pretrained weights
    becomes a :class:`WeightsFetchError` naming the repo, the file, the revision and the endpoint. Other errors,
    and everything when ``pretrained`` is False or the weights are not on the Hub, pass through unchanged."""
    if not pretrained:
        yield
        return
    try:
        yield
    except WeightsFetchError:
        raise
    except _fetch_error_types() as err:
        try:
            location = hub_weights_location(arch, kwargs)
        except Exception:  # an unusual pretrained_cfg: better the client's own error than none
            location = None
        if location is None:
            raise
        repo_id, filename, revision = location
        where = f'{filename} of {repo_id}' + (f'@{revision}' if revision else '') + f' from {constants.ENDPOINT}'
        if isinstance(err, SafetensorError):
            cached = try_to_load_from_cache(repo_id, filename, cache_dir=kwargs.get('cache_dir'), revision=revision)
            hint = f' (the cached copy {cached} is corrupt; delete it and fetch again)'
        elif isinstance(err, (HfHubHTTPError, LocalEntryNotFoundError)) or not isinstance(err, OSError):
            hint = ' (no partial file was kept in the cache; try again)'  # network and Hub errors
        else:
            hint = ''
        message = f'could not fetch {where}: {_first_line(err)}{hint}'
        raise WeightsFetchError(message, repo_id, filename, revision) from err


def checked_pretrained_filter(
    state_dict: dict[str, Tensor], model: torch.nn.Module, cache_dir: str | Path | None = None
) -> dict[str, Tensor]:
    """A ``pretrained_filter_fn`` for timm's loader: refuses weights of another width or head with one clear line
    (instead of hundreds of size mismatches), checks the ``tensors_sha256`` digest recorded in the cached Hub file the
    tensors came from, then keeps the model's own head for backbone-only weights."""
    hub_id = (getattr(model, 'pretrained_cfg', None) or {}).get('hf_hub_id')
    what = f'the pretrained weights of {hub_id}' if hub_id else 'the pretrained weights'
    raw = state_dict
    # timm's own ImageNet files (the `.in1k` tags) still hold the classification head and every fuse row
    state_dict = drop_unused_keys(state_dict, model.head, model.width)
    # timm adapts the stem to in_chans and drops a classifier of another num_classes after this filter
    compare_with_model({k: tuple(v.shape) for k, v in state_dict.items()}, model, what, full=False)
    if hub_id:
        repo_id, _, revision = hub_id.partition('@')
        filename = model.pretrained_cfg.get('hf_hub_filename') or 'model.safetensors'
        cached = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision or None)
        if isinstance(cached, str):
            metadata = read_safetensors_header(cached).metadata
            recorded = metadata.get(DIGEST_KEY)
            if recorded is not None and tensors_digest(raw, metadata) != recorded:
                raise IntegrityError(
                    f'{what} are corrupt: the cached {cached} does not match its recorded {DIGEST_KEY}; delete it '
                    'and fetch again'
                )
    return fill_untrained_head(state_dict, model)
