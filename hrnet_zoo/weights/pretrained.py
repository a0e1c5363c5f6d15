"""timm's ``pretrained=True`` path, made strict: safetensors only, fetch errors that name what failed, and a
filter that refuses weights of another width or head and checks the cached file's digest.

* :data:`SAFETENSORS_ONLY` keeps timm from falling back to a pickle.
* :func:`named_fetch_errors` turns the Hub client's transport errors (which name neither repo nor file) into a
  :class:`WeightsFetchError` that does.
* :func:`checked_pretrained_filter` is the ``pretrained_filter_fn`` the model builder hands to timm.
* :func:`direct_weights` is the path of a tag that downloads directly (OpenMMLab, the HRNet-OCR release): the
  original file fetched into torch.hub's cache and hash-checked (:mod:`.sources`), converted to our names
  (:mod:`.layouts`) once, and kept as a safetensors file beside it, which every later load reads alone.
* :func:`original_checkpoint_weights` converts an original checkpoint a user passes as ``file=``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import constants, try_to_load_from_cache
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
from safetensors import SafetensorError
from safetensors.torch import save_file
from timm.models import resolve_pretrained_cfg
from torch import Tensor

from ..files import write_atomically
from ..specs import HEADS
from ..version import __version__
from .checks import compare_with_model, drop_unused_keys
from .io import DIGEST_KEY, IntegrityError, read_safetensors_header, tensors_digest
from .layouts import is_safetensors, load_checkpoint, to_our_layout
from .records import WeightsRecord
from .sources import DirectDownloadError, cache_path, fetch

__all__ = [
    'SAFETENSORS_ONLY',
    'WeightsFetchError',
    'checked_pretrained_filter',
    'converted_path',
    'direct_weights',
    'direct_download_hint',
    'is_original_checkpoint',
    'original_checkpoint_weights',
    'DirectDownloadError',
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
def named_fetch_errors(
    arch: str, pretrained: bool, kwargs: Mapping[str, Any], record: WeightsRecord | None = None
) -> Iterator[None]:
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
        unpublished = record is not None and not record.direct and record.released_here and not record.published
        if unpublished and not isinstance(err, SafetensorError):  # nothing there (or no Hub): say where the file is
            message = f'{direct_download_hint(record)} (the Hub said: could not fetch {where}: {_first_line(err)})'
        raise WeightsFetchError(message, repo_id, filename, revision) from err


def checked_pretrained_filter(
    state_dict: dict[str, Tensor], model: torch.nn.Module, cache_dir: str | Path | None = None
) -> dict[str, Tensor]:
    """A ``pretrained_filter_fn`` for timm's loader: refuses weights of another width or head with one clear line
    (instead of hundreds of size mismatches), checks the ``tensors_sha256`` digest recorded in the cached Hub file the
    tensors came from, then keeps the model's own head for backbone-only weights."""
    cfg = getattr(model, 'pretrained_cfg', None) or {}
    hub_id, file = cfg.get('hf_hub_id'), cfg.get('file')
    what = 'the pretrained weights' + (f' in {file}' if file else f' of {hub_id}' if hub_id else '')
    raw = state_dict
    # timm's own ImageNet files (the `.in1k` tags) still hold the classification head and every fuse row
    state_dict = drop_unused_keys(state_dict, model.head, model.width)
    # timm adapts the stem to in_chans and drops a classifier of another num_classes after this filter
    compare_with_model({k: tuple(v.shape) for k, v in state_dict.items()}, model, what, full=False)
    cached: str | None = None
    if file and str(file).endswith('.safetensors'):  # a file= load, the converted copy of a direct download too
        cached = str(file)
    elif hub_id:
        repo_id, _, revision = hub_id.partition('@')
        filename = model.pretrained_cfg.get('hf_hub_filename') or 'model.safetensors'
        found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision or None)
        cached = found if isinstance(found, str) else None
    if cached is not None:
        metadata = read_safetensors_header(cached).metadata
        recorded = metadata.get(DIGEST_KEY)
        if recorded is not None and tensors_digest(raw, metadata) != recorded:
            raise IntegrityError(
                f'{what} are corrupt: the cached {cached} does not match its recorded {DIGEST_KEY}; delete it '
                'and fetch again'
            )
    return fill_untrained_head(state_dict, model)


ExpectedShapes = Callable[[int | None], Mapping[str, torch.Size]]


def converted_path(record: WeightsRecord, cache_dir: str | Path | None = None) -> Path:
    """Where the converted copy of a direct download is kept: beside the original in torch.hub's cache (or
    ``cache_dir``), named for the tag and the original file, so a changed source file gets a new copy."""
    original = cache_path(record.source.direct_url, cache_dir)
    stem = original.name.split('.')[0]
    return original.with_name(f'{stem}.{record.name}.hrnet_zoo.safetensors')


def direct_weights(
    record: WeightsRecord, expected_shapes: ExpectedShapes, cache_dir: str | Path | None = None, progress: bool = True
) -> Path:
    """The converted ``model.safetensors`` of a direct-download tag: from the cache without touching the network,
    else downloaded (hash-checked, no partial file on failure), converted, and written whole or not at all."""
    out = converted_path(record, cache_dir)
    if out.is_file():
        try:
            if read_safetensors_header(out).metadata.get('tag') == record.tag:
                return out  # its digest is checked as it loads (checked_pretrained_filter)
        except IntegrityError:
            pass  # a damaged copy: convert again from the original
    original = fetch(record.source.direct_url, record.source.hash_prefix, cache_dir=cache_dir, progress=progress)
    try:
        tensors = to_our_layout(load_checkpoint(original), record.name, expected_shapes)
    except ValueError as err:
        raise IntegrityError(f'{original} (the download of {record.name}) does not convert: {err}') from err
    tensors = {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in sorted(tensors.items())}
    metadata = {
        'format': 'pt',
        'arch': record.arch,
        'tag': record.tag,
        'source_file': original.name,
        'hrnet_zoo_version': __version__,
    }
    metadata[DIGEST_KEY] = tensors_digest(tensors, metadata)
    write_atomically(out, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return out


def original_checkpoint_weights(
    path: str | Path, model_name: str, expected_shapes: ExpectedShapes
) -> dict[str, Tensor]:
    """An original checkpoint (``.pth``, any layout :mod:`.layouts` reads) passed as ``file=``, in our names."""
    return to_our_layout(load_checkpoint(path), model_name, expected_shapes)


def is_original_checkpoint(path: str | Path) -> bool:
    """A ``file=`` that is not a safetensors file: an original checkpoint to convert on load."""
    path = Path(path)
    return path.is_file() and not is_safetensors(path)


def direct_download_hint(record: WeightsRecord) -> str:
    """What to do when a tag's weights are neither on the Hub nor downloadable directly."""
    return (
        f'{record.name} is not published on the Hub yet and has no direct download: the official file '
        f'{record.source.file_name} is at {record.source.url}; download it by hand and load it with '
        f'timm.create_model({record.name!r}, pretrained=True, pretrained_cfg_overlay=dict(file=PATH))'
    )
