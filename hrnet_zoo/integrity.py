"""Integrity of weights files, the Hub cache and Hub fetches: refuse what does not match, before anything changes.

* :func:`tensors_digest` is the ``tensors_sha256`` entry a converted ``model.safetensors`` records in its metadata:
  a sha256 over every tensor (name, dtype, shape, bytes) and every other metadata entry. safetensors has no checksum
  of its own, so a flipped bit in tensor data is only detectable against such a digest.
* :func:`read_safetensors_header` parses and checks the file structure without reading tensor data (a truncated file,
  overlapping or missing data, a corrupt header all fail here, with what was found and what was expected).
* :func:`verify_safetensors` adds the file sha256 (where the manifest knows it), the digest, and finite values.
* :func:`check_pretrained_file` / :func:`load_pretrained_file` compare a file (and the ``config.json`` beside it)
  with a model: architecture, width, head, num_classes, fuse upsampling, every key and shape. The model is touched
  only after every check has passed, so a refused file leaves it bit for bit as it was.
* :func:`audit_cache` finds partial downloads and blobs whose content does not match their name in a Hub cache.
* :func:`named_fetch_errors` turns the Hub client's transport errors (which name neither repo nor file) into a
  :class:`WeightsFetchError` that does; :data:`SAFETENSORS_ONLY` keeps timm from falling back to a pickle.

Nothing here unpickles: tensors are read with safetensors only.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .specs import WIDTHS, get_spec
from .weights import arch_name, parse_arch

__all__ = [
    'DIGEST_KEY',
    'SAFETENSORS_ONLY',
    'IntegrityError',
    'SafetensorsHeader',
    'WeightsFetchError',
    'audit_cache',
    'check_pretrained_file',
    'checked_pretrained_filter',
    'hub_weights_location',
    'load_pretrained_file',
    'model_arch',
    'named_fetch_errors',
    'read_safetensors_header',
    'sha256_file',
    'tensors_digest',
    'verify_safetensors',
]

DIGEST_KEY = 'tensors_sha256'
# The metadata a converted file carries (convert.py); a file that says it is ours and has any other key is corrupt.
OUR_METADATA_KEYS = frozenset(
    {'format', 'arch', 'tag', 'source_sha256', 'source_file', 'hrnet_zoo_version', DIGEST_KEY}
)
# Fetch pretrained weights as safetensors only: without it, timm falls back to `pytorch_model.bin` (a pickle)
# whenever the safetensors file cannot be found, including when the Hub only failed to answer.
SAFETENSORS_ONLY = {'hf_hub_filename': 'model.safetensors'}

_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit
_ITEMSIZE = {
    'BOOL': 1, 'U8': 1, 'I8': 1, 'F8_E5M2': 1, 'F8_E4M3': 1, 'I16': 2, 'U16': 2, 'F16': 2, 'BF16': 2,
    'I32': 4, 'U32': 4, 'F32': 4, 'I64': 8, 'U64': 8, 'F64': 8,
}  # fmt: skip
_FLOAT = frozenset({'F8_E5M2', 'F8_E4M3', 'F16', 'BF16', 'F32', 'F64'})
_HEAD_PREFIXES = {'v1': 'final_layer.', 'v2': 'last_layer.', 'v2p': 'neck.'}
_HEAD_NAMES = {'v1': 'pose head (final_layer)', 'v2': 'segmentation head (last_layer)', 'v2p': 'HRFPN neck (neck)'}
_WIDTH_KEY = 'stage4.0.branches.0.0.conv1.weight'  # out channels = C
_SHOW = 6  # how many names an error lists


class IntegrityError(ValueError):
    """A weights file (or its config) that must not be loaded. Raised before anything was changed."""


class WeightsFetchError(OSError):
    """Fetching pretrained weights from the Hub failed; names the repo, the file and the revision."""

    def __init__(self, message: str, repo_id: str, filename: str, revision: str | None) -> None:
        super().__init__(message)
        # not `filename`: OSError formats its message around that attribute
        self.repo_id, self.path_in_repo, self.revision = repo_id, filename, revision


def few(names: list[str]) -> str:
    """At most a handful of names, then how many more: error messages stay one readable line."""
    more = f', ... ({len(names) - _SHOW} more)' if len(names) > _SHOW else ''
    return ', '.join(names[:_SHOW]) + more


def key_mismatch(shapes: Mapping[str, Sequence[int]], expected: Mapping[str, Sequence[int]]) -> str | None:
    """What differs between tensors' shapes and a model's: missing, unexpected and reshaped keys (None: nothing)."""
    missing = sorted(expected.keys() - shapes.keys())
    unexpected = sorted(shapes.keys() - expected.keys())
    reshaped = [
        f'{k} {list(shapes[k])} (model: {list(expected[k])})'
        for k in sorted(expected.keys() & shapes.keys())
        if tuple(shapes[k]) != tuple(expected[k])
    ]
    parts = [
        f'{len(names)} {kind}: {few(names)}'
        for kind, names in (('missing', missing), ('unexpected', unexpected), ('with another shape', reshaped))
        if names
    ]
    return '; '.join(parts) or None


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def tensors_digest(tensors: Mapping[str, Tensor], metadata: Mapping[str, str] | None = None) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, and every metadata entry but the digest itself.

    Independent of the file layout: the same tensors and metadata give the same digest however they are stored.
    """
    digest = hashlib.sha256(b'hrnet_zoo tensors_sha256 v1\n')
    for key in sorted(metadata or {}):
        if key != DIGEST_KEY:
            digest.update(json.dumps(['meta', key, metadata[key]]).encode() + b'\n')
    for name in sorted(tensors):
        tensor = tensors[name].detach()
        digest.update(json.dumps(['tensor', name, str(tensor.dtype), list(tensor.shape)]).encode() + b'\n')
        flat = tensor.to('cpu').contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# safetensors files


@dataclass(frozen=True)
class TensorEntry:
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class SafetensorsHeader:
    path: Path
    metadata: dict[str, str]
    tensors: dict[str, TensorEntry]
    data_start: int
    file_size: int


def read_safetensors_header(path: str | Path) -> SafetensorsHeader:
    """The header of a ``.safetensors`` file, after checking the structure against the file: header length, JSON,
    dtypes, that each tensor's bytes match its shape, that the tensors tile the data exactly, and the file size
    (a truncated or extended file fails here). Reads the header only."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f'weights file not found: {path}')
    if path.is_dir():
        raise IsADirectoryError(f'{path} is a directory; expected a .safetensors file')
    size = path.stat().st_size

    def bad(why: str) -> IntegrityError:
        return IntegrityError(f'{path} is not a valid .safetensors file: {why}')

    with path.open('rb') as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise bad(f'{size} bytes, shorter than the 8-byte header length (truncated or empty)')
        length = int.from_bytes(prefix, 'little')
        if length > _MAX_HEADER or 8 + length > size:
            raise bad(f'the header length field says {length} bytes, but the file has {size} bytes in all')
        raw = f.read(length)
    try:
        header = json.loads(raw.decode('utf-8'))
    except (UnicodeDecodeError, ValueError) as err:
        raise bad(f'the header is not valid JSON ({err})') from None
    if not isinstance(header, dict):
        raise bad(f'the header is a JSON {type(header).__name__}, not an object')
    metadata = header.pop('__metadata__', None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad('__metadata__ is not a mapping of strings')

    entries: dict[str, TensorEntry] = {}
    for name, info in header.items():
        try:
            dtype, shape, (begin, end) = info['dtype'], tuple(info['shape']), info['data_offsets']
        except (TypeError, KeyError, ValueError):
            raise bad(f'tensor {name!r} has no dtype / shape / data_offsets') from None
        if dtype not in _ITEMSIZE:
            raise bad(f'tensor {name!r} has unknown dtype {dtype!r}')
        if not all(isinstance(n, int) and n >= 0 for n in (*shape, begin, end)):
            raise bad(f'tensor {name!r} has a malformed shape {list(shape)} or data_offsets [{begin}, {end}]')
        nbytes = math.prod(shape) * _ITEMSIZE[dtype]
        if end - begin != nbytes:
            raise bad(
                f'tensor {name!r} ({dtype} {list(shape)}) needs {nbytes} bytes, its data_offsets [{begin}, {end}] '
                f'span {end - begin}'
            )
        entries[name] = TensorEntry(dtype, shape, begin, end)

    position = 0
    for name, entry in sorted(entries.items(), key=lambda item: (item[1].begin, item[1].end)):
        if entry.begin != position:
            what = 'overlaps the tensor before it' if entry.begin < position else f'leaves a gap at byte {position}'
            raise bad(f'tensor {name!r} starts at data byte {entry.begin} and {what}')
        position = entry.end
    data_start = 8 + length
    if data_start + position != size:
        state = 'truncated' if data_start + position > size else 'has trailing bytes'
        raise bad(f'{state}: the header describes {data_start + position} bytes, the file has {size}')
    return SafetensorsHeader(path, metadata, entries, data_start, size)


def _load_tensors(path: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device='cpu')
    except Exception as err:  # SafetensorError and friends: the structure check above should have caught it
        raise IntegrityError(f'{path} could not be read as safetensors: {type(err).__name__}: {err}') from err


def verify_safetensors(
    path: str | Path, *, expected_sha256: str | None = None, require_digest: bool = False
) -> tuple[dict[str, Tensor], SafetensorsHeader]:
    """Read a ``.safetensors`` file only if it is intact: its sha256 (when ``expected_sha256`` is known), its
    structure, its ``tensors_sha256`` digest (when recorded; required with ``require_digest``) and finite values.
    Returns the tensors and the header."""
    path = Path(path)
    header = read_safetensors_header(path)
    if expected_sha256 is not None:
        digest = sha256_file(path)
        if digest != expected_sha256.lower():
            raise IntegrityError(f'{path} has sha256 {digest}, but {expected_sha256.lower()} was expected')
    recorded = header.metadata.get(DIGEST_KEY)
    if recorded is None:
        if 'hrnet_zoo_version' in header.metadata and header.metadata.keys() - OUR_METADATA_KEYS:
            unknown = sorted(header.metadata.keys() - OUR_METADATA_KEYS)
            raise IntegrityError(f'{path}: corrupt metadata, unknown keys {unknown} and no {DIGEST_KEY}')
        if require_digest:
            raise IntegrityError(f'{path} records no {DIGEST_KEY} digest, so its tensors cannot be verified')
    tensors = _load_tensors(path)
    if recorded is not None:
        actual = tensors_digest(tensors, header.metadata)
        if actual != recorded:
            raise IntegrityError(
                f'{path} is corrupt: its tensors and metadata hash to {DIGEST_KEY} {actual}, but the file records '
                f'{recorded}'
            )
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise IntegrityError(f'{path}: {len(bad)} tensors hold NaN or Inf values: {few(sorted(bad))}')
    return tensors, header


# ---------------------------------------------------------------------------------------------------------------
# A file against a model


def model_arch(model: torch.nn.Module) -> str:
    """``'hrnetv2_w18_small_v1'`` for an HRNetV2 of width w18_small_v1."""
    from .models import MODEL_CLASSES

    for head, cls in MODEL_CLASSES.items():
        if type(model) is cls:
            return arch_name(head, model.width)
    raise TypeError(f'expected an HRNetV1 / HRNetV2 / HRNetV2p model, got {type(model).__name__}')


def _width_of(shapes: Mapping[str, tuple[int, ...]]) -> str | None:
    """The width whose branch-0 channels and stage-1 block count match these shapes (None: not recognisable)."""
    weight = shapes.get(_WIDTH_KEY)
    if weight is None or len(weight) != 4:
        return None
    blocks = len({k.split('.')[1] for k in shapes if k.startswith('layer1.')})
    found = [n for n, s in WIDTHS.items() if s.branch_channels[0] == weight[0] and s.stage1.num_blocks[0] == blocks]
    return found[0] if found else f'an unknown width ({weight[0]} channels, {blocks} layer1 blocks)'


def _compare(shapes: Mapping[str, tuple[int, ...]], model: torch.nn.Module, what: str, full: bool = True) -> bool:
    """Refuse tensors of another width or head, and (``full``) any key or shape the model does not have; returns
    whether the tensors are backbone-only."""
    arch = model_arch(model)
    head, width = parse_arch(arch)
    found = _width_of(shapes)
    if found is not None and found != width:
        raise IntegrityError(
            f'{what} holds {found} weights ({_WIDTH_KEY} has {shapes[_WIDTH_KEY][0]} output channels), but the model '
            f'{arch} is {width} ({get_spec(width).branch_channels[0]} channels)'
        )
    others = sorted({h for h, p in _HEAD_PREFIXES.items() if h != head and any(k.startswith(p) for k in shapes)})
    if others:
        raise IntegrityError(
            f'{what} holds the {_HEAD_NAMES[others[0]]} of hrnet{others[0]}, but the model {arch} has the '
            f'{_HEAD_NAMES[head]}'
        )
    prefix = _HEAD_PREFIXES[head]
    backbone_only = not any(k.startswith(prefix) for k in shapes)
    if not full:
        return backbone_only
    own = model.state_dict()
    expected = {k: tuple(v.shape) for k, v in own.items() if not (backbone_only and k.startswith(prefix))}
    mismatch = key_mismatch(shapes, expected)
    if mismatch:
        raise IntegrityError(f'{what} does not fit {arch}: {mismatch}')
    return backbone_only


def _check_config(config: Mapping[str, Any], model: torch.nn.Module, where: str) -> None:
    arch = model_arch(model)
    named = config.get('architecture')
    if named != arch:
        raise IntegrityError(f'{where} is for {named!r}, but the model is {arch}')
    pretrained_cfg = config.get('pretrained_cfg') or {}
    classes = config.get('num_classes', pretrained_cfg.get('num_classes'))
    if classes is not None and classes != model.num_classes:
        raise IntegrityError(
            f'{where} says num_classes={classes}, but the model has num_classes={model.num_classes} '
            f'(create it with num_classes={classes}, load, then reset_classifier)'
        )
    args = config.get('model_args') or {}
    trained = (args.get('upsample_mode', 'nearest'), args.get('align_corners'))
    if trained != (model.upsample_mode, model.align_corners):
        raise IntegrityError(
            f'{where}: the weights were trained with upsample_mode={trained[0]!r}, align_corners={trained[1]}, but '
            f'the model uses upsample_mode={model.upsample_mode!r}, align_corners={model.align_corners}'
        )


def check_pretrained_file(
    model: torch.nn.Module,
    path: str | Path,
    *,
    config: str | Path | Mapping[str, Any] | None = 'auto',
    expected_sha256: str | None = None,
    require_digest: bool = False,
) -> dict[str, Tensor]:
    """Everything :func:`load_pretrained_file` checks, without touching the model. Returns the full state_dict
    to load (a backbone-only file keeps the model's own head).

    ``config``: a ``config.json`` path or mapping, ``'auto'`` for the one beside the file if there is one, or None.
    """
    path = Path(path)
    arch = model_arch(model)
    header = read_safetensors_header(path)
    named = header.metadata.get('arch')
    if named is not None and named != arch:
        raise IntegrityError(f'{path} holds weights for {named}, but the model is {arch}')
    if config == 'auto':
        config = path.with_name('config.json') if path.with_name('config.json').is_file() else None
    if isinstance(config, (str, Path)):
        try:
            config_data = json.loads(Path(config).read_text(encoding='utf-8'))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise IntegrityError(f'{config} is not a readable config.json: {err}') from None
        if not isinstance(config_data, dict):
            raise IntegrityError(f'{config} is not a timm config (a JSON object)')
        _check_config(config_data, model, str(config))
    elif config is not None:
        _check_config(config, model, 'config')
    backbone_only = _compare({k: e.shape for k, e in header.tensors.items()}, model, str(path))
    float_params = {k for k, v in model.state_dict().items() if v.is_floating_point()}
    kinds = [k for k, e in header.tensors.items() if (e.dtype in _FLOAT) != (k in float_params)]
    if kinds:
        raise IntegrityError(f'{path}: {len(kinds)} tensors have a dtype of another kind than the model: {few(kinds)}')
    tensors, _ = verify_safetensors(path, expected_sha256=expected_sha256, require_digest=require_digest)
    if backbone_only:
        prefix = _HEAD_PREFIXES[parse_arch(arch)[0]]
        tensors.update({k: v for k, v in model.state_dict().items() if k.startswith(prefix)})
    return tensors


def load_pretrained_file(model: torch.nn.Module, path: str | Path, **kwargs: Any) -> dict[str, str]:
    """Load a ``model.safetensors`` into ``model`` after :func:`check_pretrained_file` has passed; a refused file
    raises :class:`IntegrityError` (or FileNotFoundError) and leaves the model unchanged. Returns the file's
    metadata."""
    tensors = check_pretrained_file(model, path, **kwargs)
    with torch.no_grad():
        model.load_state_dict(tensors, strict=True)
    return read_safetensors_header(path).metadata


# ---------------------------------------------------------------------------------------------------------------
# The Hub cache and Hub fetches


def _git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1(b'blob %d\0' % path.stat().st_size)
    with path.open('rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def audit_cache(cache_dir: str | Path) -> list[str]:
    """Problems in a huggingface_hub cache folder: partial downloads (``*.incomplete``), blobs whose content does
    not hash to their name (sha256 for LFS files, the git blob sha1 for others), snapshot links without a blob.
    An empty list means every file in the cache is complete and what its name says."""
    problems = []
    for repo in sorted(Path(cache_dir).glob('*--*')):
        for blob in sorted((repo / 'blobs').glob('*')):
            name = blob.name
            if name.endswith('.incomplete'):
                problems.append(f'partial download: {blob}')
            elif re.fullmatch(r'[0-9a-f]{64}', name) and sha256_file(blob) != name:
                problems.append(f'content does not match its sha256 name: {blob}')
            elif re.fullmatch(r'[0-9a-f]{40}', name) and _git_blob_sha1(blob) != name:
                problems.append(f'content does not match its git sha1 name: {blob}')
        for link in sorted((repo / 'snapshots').rglob('*')):
            if link.is_symlink() and not link.exists():
                problems.append(f'snapshot file without its blob: {link}')
    return problems


def hub_weights_location(arch: str, kwargs: Mapping[str, Any]) -> tuple[str, str, str | None] | None:
    """(repo_id, filename, revision) that ``timm.create_model(arch, pretrained=True, **kwargs)`` fetches, or None
    when the weights do not come from the Hub (a file, a URL, a local folder)."""
    from timm.models import resolve_pretrained_cfg

    cfg = resolve_pretrained_cfg(
        arch, pretrained_cfg=kwargs.get('pretrained_cfg'), pretrained_cfg_overlay=kwargs.get('pretrained_cfg_overlay')
    )
    if cfg.source not in (None, '', 'hf-hub') or cfg.state_dict is not None or cfg.file or not cfg.hf_hub_id:
        return None
    repo_id, _, revision = cfg.hf_hub_id.partition('@')
    return repo_id, cfg.hf_hub_filename or 'model.safetensors', revision or None


def _fetch_error_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [OSError]  # incl. huggingface_hub's consistency check and cache errors
    for module in ('httpx2', 'httpx'):
        try:
            types.append(__import__(module).HTTPError)
        except (ImportError, AttributeError):
            pass
    from huggingface_hub.errors import HfHubHTTPError

    types.append(HfHubHTTPError)
    try:
        from safetensors import SafetensorError

        types.append(SafetensorError)
    except ImportError:
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
        from huggingface_hub import constants, try_to_load_from_cache
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        where = f'{filename} of {repo_id}' + (f'@{revision}' if revision else '') + f' from {constants.ENDPOINT}'
        if type(err).__name__ == 'SafetensorError':
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
    from .models import fill_untrained_head

    hub_id = (getattr(model, 'pretrained_cfg', None) or {}).get('hf_hub_id')
    what = f'the pretrained weights of {hub_id}' if hub_id else 'the pretrained weights'
    # timm adapts the stem to in_chans and drops a classifier of another num_classes after this filter
    _compare({k: tuple(v.shape) for k, v in state_dict.items()}, model, what, full=False)
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo_id, _, revision = hub_id.partition('@')
        filename = model.pretrained_cfg.get('hf_hub_filename') or 'model.safetensors'
        cached = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision or None)
        if isinstance(cached, str):
            metadata = read_safetensors_header(cached).metadata
            recorded = metadata.get(DIGEST_KEY)
            if recorded is not None and tensors_digest(state_dict, metadata) != recorded:
                raise IntegrityError(
                    f'{what} are corrupt: the cached {cached} does not match its recorded {DIGEST_KEY}; delete it '
                    'and fetch again'
                )
    return fill_untrained_head(state_dict, model)
