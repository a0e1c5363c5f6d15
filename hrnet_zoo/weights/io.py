"""safetensors files and their digests: read a file only if it is intact, and audit a Hub cache.

* :func:`tensors_digest` is the ``tensors_sha256`` entry a converted ``model.safetensors`` records in its metadata:
  a sha256 over every tensor (name, dtype, shape, bytes) and every other metadata entry. safetensors has no checksum
  of its own, so a flipped bit in tensor data is only detectable against such a digest.
* :func:`read_safetensors_header` parses and checks the file structure without reading tensor data (a truncated file,
  overlapping or missing data, a corrupt header all fail here, with what was found and what was expected).
* :func:`verify_safetensors` adds the file sha256 (where it is known), the digest, and finite values.
* :func:`audit_cache` finds partial downloads and blobs whose content does not match their name in a Hub cache.

Nothing here unpickles: tensors are read with safetensors only. Nothing here knows about models.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub.utils.sha import git_hash, sha_fileobj
from safetensors.torch import load_file
from torch import Tensor

__all__ = [
    'DIGEST_KEY',
    'FLOAT_DTYPES',
    'OUR_METADATA_KEYS',
    'IntegrityError',
    'SafetensorsHeader',
    'TensorEntry',
    'audit_cache',
    'few',
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
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit
_ITEMSIZE = {
    'BOOL': 1, 'U8': 1, 'I8': 1, 'F8_E5M2': 1, 'F8_E4M3': 1, 'I16': 2, 'U16': 2, 'F16': 2, 'BF16': 2,
    'I32': 4, 'U32': 4, 'F32': 4, 'I64': 8, 'U64': 8, 'F64': 8,
}  # fmt: skip
FLOAT_DTYPES = frozenset({'F8_E5M2', 'F8_E4M3', 'F16', 'BF16', 'F32', 'F64'})
_SHOW = 6  # how many names an error lists


class IntegrityError(ValueError):
    """A weights file (or its config) that must not be loaded. Raised before anything was changed."""


def few(names: list[str]) -> str:
    """At most a handful of names, then how many more: error messages stay one readable line."""
    more = f', ... ({len(names) - _SHOW} more)' if len(names) > _SHOW else ''
    return ', '.join(names[:_SHOW]) + more


def sha256_file(path: str | Path) -> str:
    with open(path, 'rb') as f:
        return sha_fileobj(f).hex()


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
            elif re.fullmatch(r'[0-9a-f]{40}', name) and git_hash(blob.read_bytes()) != name:  # non-LFS blobs are small
                problems.append(f'content does not match its git sha1 name: {blob}')
        for link in sorted((repo / 'snapshots').rglob('*')):
            if link.is_symlink() and not link.exists():
                problems.append(f'snapshot file without its blob: {link}')
    return problems
