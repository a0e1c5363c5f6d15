"""``hrnet-zoo release DIR``: a folder of downloaded official checkpoints to a complete, verified release.

For every manifest record this project publishes (the ImageNet backbones are read from timm's own repos and are
not released here), in manifest order:

1. find ``source.file_name`` in DIR and hash it. Every file there is hashed before anything is uploaded, so a file
   whose sha256 differs from the manifest's (or from the lock file's, for records the manifest has none for), or
   does not start with a direct record's hash prefix, is refused up front. A record with a direct download
   (``source.direct_url``) whose file DIR lacks has it downloaded into DIR when its turn comes
   (:func:`~hrnet_zoo.weights.sources.fetch`, which checks the hash prefix before the file takes its name; a dry
   run downloads nothing); a record with neither is reported missing;
2. convert it (:func:`~hrnet_zoo.publish.convert.convert_checkpoint`) into a temporary folder;
3. compare the converted files with what the Hub's ``main`` holds (sha256 of LFS files, git blob ids of the
   others, from huggingface_hub's ``get_paths_info``): equal means "already there", and no commit is made;
4. otherwise :func:`~hrnet_zoo.publish.client.publish` it: one commit with the weights, config and card, then a
   download-and-compare check.

Each tag is one atomic commit, so a run stopped anywhere leaves every repo at a complete revision, and a rerun
finishes the rest (tags already published compare equal and are skipped, and files downloaded before the stop are in
DIR). A digest the manifest lacks (the full sha256 of a direct record's file too) is written to the lock file, by
default ``DIR/official_sha256.json`` beside the files it describes, never into the installed package, only once its
tag is on the Hub, and atomically: a stopped or failed run leaves the previous lock file whole. The endpoint and
token are huggingface_hub's own (``HF_ENDPOINT``, ``HF_TOKEN``, the cached login); the token is never printed.
"""

from __future__ import annotations

import fnmatch
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.utils.sha import git_hash

from ..files import write_text_atomically
from ..version import __version__
from ..weights.io import DIGEST_KEY, read_safetensors_header, sha256_file, verify_safetensors
from ..weights.manifest import MANIFEST, WeightsRecord
from ..weights.sources import fetch, hash_prefix_of
from .client import PUBLISHED_FILES, publish
from .convert import convert_checkpoint

__all__ = ['LOCK_NAME', 'STATUSES', 'TagResult', 'read_lock', 'release', 'select_records', 'summary_table']

# The sha256 of official files the manifest has no digest for, recorded by the first release that published them:
# ``DIR/LOCK_NAME`` unless ``--lock`` names another file.
LOCK_NAME = 'official_sha256.json'

PUBLISHED, ALREADY, WOULD, MISSING, FAILED, ELSEWHERE = (
    'published', 'already there', 'would publish', 'missing file', 'failed', 'not released',
)  # fmt: skip
STATUSES = (PUBLISHED, ALREADY, WOULD, MISSING, FAILED, ELSEWHERE)


@dataclass(frozen=True)
class TagResult:
    name: str
    status: str  # one of STATUSES
    detail: str = ''


def select_records(only: Sequence[str] = ()) -> list[WeightsRecord]:
    """The manifest records whose ``<arch>.<tag>`` matches one of the globs (all of them without any)."""
    unmatched = [glob for glob in only if not fnmatch.filter(MANIFEST, glob)]
    if unmatched:
        raise ValueError(f'no manifest tag matches --only {unmatched[0]!r} (expected <arch>.<tag> globs)')
    return [r for name, r in MANIFEST.items() if not only or any(fnmatch.fnmatchcase(name, g) for g in only)]


def read_lock(path: str | Path) -> dict[str, dict[str, str]]:
    """``{'<arch>.<tag>': {'file': ..., 'sha256': ...}}`` from the lock file ({} when there is none yet)."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding='utf-8'))
    except ValueError as err:
        raise ValueError(f'{path} is not a release lock file (JSON of <arch>.<tag> -> file, sha256): {err}') from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) and 'sha256' in v for v in data.values()):
        raise ValueError(f'{path} is not a release lock file: expected <arch>.<tag> -> {{"file", "sha256"}}')
    return data


def _write_lock(path: Path, lock: dict[str, dict[str, str]]) -> None:
    """Write beside it, then rename: a stopped run leaves the old lock file or the new one, never half of one."""
    write_text_atomically(path, json.dumps(dict(sorted(lock.items())), indent=2) + '\n', make_parents=True)


def _hub_revision_if_equal(api: HfApi, repo_id: str, folder: Path) -> str | None:
    """The commit of ``main`` when it already holds the converted files, else None.

    ``config.json`` and ``README.md`` must be the same bytes (git blob id, or LFS sha256). ``model.safetensors`` is
    compared by its header metadata, read with a range request: the safetensors writer orders metadata keys at
    random, so two conversions of one file differ in bytes, but their metadata holds the ``tensors_sha256`` of every
    tensor (and of the metadata), which is what makes the contents equal.
    """
    try:
        sha = api.repo_info(repo_id).sha
    except (RepositoryNotFoundError, RevisionNotFoundError):
        return None
    remote = {f.path: f for f in api.get_paths_info(repo_id, list(PUBLISHED_FILES), revision=sha)}
    if not all(hasattr(remote.get(name), 'blob_id') for name in PUBLISHED_FILES):
        return None
    for name in ('config.json', 'README.md'):
        entry, local = remote[name], folder / name
        lfs = getattr(entry, 'lfs', None)
        if not (lfs.sha256 == sha256_file(local) if lfs else entry.blob_id == git_hash(local.read_bytes())):
            return None
    header = api.parse_safetensors_file_metadata(repo_id, 'model.safetensors', revision=sha)
    local = read_safetensors_header(folder / 'model.safetensors').metadata
    return sha if DIGEST_KEY in local and header.metadata == local else None


def _verify_existing(api: HfApi, repo_id: str, sha: str) -> None:
    """A revision a stopped run committed but never checked: download its weights and check their digest."""
    with tempfile.TemporaryDirectory(prefix='hrnet_zoo_release_verify_') as cache:
        verify_safetensors(api.hf_hub_download(repo_id, 'model.safetensors', revision=sha, cache_dir=cache))


def _digest_problem(
    record: WeightsRecord, path: Path, digest: str, lock: dict[str, dict[str, str]], lock_path: Path
) -> str | None:
    """Why ``path`` (of sha256 ``digest``) is not ``record``'s official file, in one line; None when it may be."""
    prefix = (record.source.hash_prefix or hash_prefix_of(record.source.file_name)) if record.direct else None
    if prefix and not digest.startswith(prefix.lower()):
        return f"{path.name} has sha256 {digest}, not starting with the record's hash prefix {prefix}; not uploaded"
    known, where = record.source.sha256, 'the manifest'
    if not known:
        known, where = lock.get(record.name, {}).get('sha256'), lock_path.name
    if known and digest != known.lower():
        return f'{path.name} has sha256 {digest}, {where} expects {known}; not uploaded'
    return None


def _reason(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f'{type(err).__name__}: {lines[0][:240]}' if lines else type(err).__name__


def _release_one(
    api: HfApi,
    record: WeightsRecord,
    path: Path,
    checked: bool,
    dry_run: bool,
    endpoint: str | None,
    token: str | None,
) -> TagResult:
    """``checked``: an earlier run published and verified this tag (its digest is in the lock file)."""
    repo_id = record.hf_hub_id
    with tempfile.TemporaryDirectory(prefix='hrnet_zoo_release_') as tmp:
        folder = convert_checkpoint(path, record.name, Path(tmp) / record.name)
        there = _hub_revision_if_equal(api, repo_id, folder)
        if there is not None:
            if not checked and not dry_run:
                _verify_existing(api, repo_id, there)
            return TagResult(record.name, ALREADY, f'{repo_id}@{there[:12]}' + ('' if checked else ', verified'))
        if dry_run:
            return TagResult(record.name, WOULD, f'{path.name} -> {repo_id}')
        message = f'Release {record.name} from {record.source.file_name} (hrnet_zoo {__version__})'
        result = publish(folder, repo_id, commit_message=message, endpoint=endpoint, token=token)
    return TagResult(record.name, PUBLISHED, f'{repo_id}@{result.commit_id[:12]}, verified')


def release(
    folder: str | Path,
    only: Sequence[str] = (),
    *,
    dry_run: bool = False,
    lock_path: str | Path | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    echo: Callable[[str], None] = print,
) -> list[TagResult]:
    """Release every selected manifest tag whose official file is in ``folder`` (or, for a direct record, can be
    downloaded into it); returns one result per tag, in manifest order, after printing a progress line per tag
    through ``echo``. ``lock_path`` defaults to ``folder / LOCK_NAME``. See the module docstring."""
    folder = Path(folder)
    lock_path = folder / LOCK_NAME if lock_path is None else Path(lock_path)
    if not folder.is_dir():
        raise FileNotFoundError(f'No such folder of official checkpoints: {folder}')
    records = select_records(only)
    lock = read_lock(lock_path)
    api = HfApi(endpoint=endpoint, token=token)
    total, done = len(records), 0
    results: dict[str, TagResult] = {}

    def report(result: TagResult) -> None:
        nonlocal done
        done += 1
        results[result.name] = result
        echo(f'[{done}/{total}] {result.name}: {result.status}' + (f' ({result.detail})' if result.detail else ''))

    mode = 'dry run, nothing is uploaded' if dry_run else 'one commit per tag'
    echo(f'release: {total} tags, official files from {folder}, Hub {api.endpoint} ({mode})')
    todo: list[tuple[WeightsRecord, Path, str | None]] = []  # digest None: to download first
    for record in records:  # every file in DIR hashed before any upload: a tampered one is refused up front
        path = folder / record.source.file_name
        if not record.released_here:
            report(TagResult(record.name, ELSEWHERE, f'weights hosted at {record.hf_hub_id}, read from there'))
        elif path.is_file():
            digest = sha256_file(path)
            problem = _digest_problem(record, path, digest, lock, lock_path)
            if problem:
                report(TagResult(record.name, FAILED, problem))
            else:
                todo.append((record, path, digest))
        elif record.direct and dry_run:
            report(TagResult(record.name, WOULD, f'{path.name} not in {folder}: would download it, then compare'))
        elif record.direct:
            todo.append((record, path, None))
        else:
            report(
                TagResult(record.name, MISSING, f'{record.source.file_name} not in {folder}; see {record.source.url}')
            )
    for record, path, digest in todo:
        try:
            if digest is None:  # checked against its hash prefix by fetch before it takes its name in DIR
                source = record.source
                path = fetch(source.direct_url, source.hash_prefix, cache_dir=folder, progress=sys.stderr.isatty())
                digest = sha256_file(path)
                problem = _digest_problem(record, path, digest, lock, lock_path)
                if problem:
                    raise ValueError(problem)
            checked = lock.get(record.name, {}).get('sha256') == digest
            result = _release_one(api, record, path, checked, dry_run, endpoint, token)
        except Exception as err:  # one tag's failure is reported; the others go on
            result = TagResult(record.name, FAILED, _reason(err))
        if result.status in (PUBLISHED, ALREADY) and not dry_run and not record.source.sha256:
            entry = {'file': path.name, 'sha256': digest}
            if lock.get(record.name) != entry:
                lock[record.name] = entry
                _write_lock(lock_path, lock)
        report(result)
    return [results[r.name] for r in records]


def summary_table(results: Sequence[TagResult]) -> str:
    """The tags by outcome, then one count per outcome."""
    width = max([len(r.name) for r in results] + [3])
    rows = [f'{"tag":<{width}}  {"status":<13}  detail']
    rows += [
        f'{r.name:<{width}}  {r.status:<13}  {r.detail}'
        for r in sorted(results, key=lambda r: STATUSES.index(r.status))
    ]
    counts = {s: sum(r.status == s for r in results) for s in STATUSES}
    rows.append(', '.join(f'{s}: {n}' for s, n in counts.items() if n) or 'nothing selected')
    if counts[ELSEWHERE]:
        rows.append(
            f"({counts[ELSEWHERE]} tags read from another organisation's repo, e.g. timm's ImageNet backbones; "
            'hrnet_zoo does not re-upload them)'
        )
    return '\n'.join(rows)
