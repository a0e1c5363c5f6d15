"""On-disk storage behind :mod:`hrnet_zoo.hub.server`: content-addressed blobs, commits and refs.

Layout under ``root``::

    blobs/<sha256>                                  file contents, regular and LFS alike
    tmp/                                            partial writes, renamed into place once complete
    repos/<type>s/<namespace>/<name>/repo.json      creation date and visibility
    repos/<type>s/<namespace>/<name>/refs.json      {"branches": {name: sha}, "tags": {name: sha}}
    repos/<type>s/<namespace>/<name>/commits/<sha>.json

Commits are immutable JSON objects ``{id, parent, title, message, date, files}`` where ``files`` maps each path to
``{sha256, size, oid, lfs}`` (``oid`` is the git blob sha1 the Hub reports: of the content for regular files, of the
LFS pointer for LFS files). Nothing is cached in memory, so a root written by one server can be served again later.
Standard library only, but for :func:`parse_card_data`, which borrows huggingface_hub's card parser when called.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import fnmatch
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any, BinaryIO

from ..files import write_text_atomically

REPO_TYPES = ('model', 'dataset', 'space')
DEFAULT_BRANCH = 'main'
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024  # the Hub stores files this large in LFS whatever their name
_LFS_PATTERNS = (
    '*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack *.npy *.npz *.onnx '
    '*.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors saved_model/**/* *.tar.* *.tar *.tflite *.tgz '
    '*.wasm *.xz *.zip *.zst *tfevents*'
).split()
DEFAULT_GITATTRIBUTES = ''.join(f'{p} filter=lfs diff=lfs merge=lfs -text\n' for p in _LFS_PATTERNS)

Files = dict[str, dict[str, Any]]
Operation = tuple[str, str, dict[str, Any] | None]  # ("add", path, entry) | ("delete" | "delete_folder", path, None)

_NAME_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,95}')
_REF_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9._/-]{0,199}')
SHA256_RE = re.compile(r'[0-9a-f]{64}')
COMMIT_RE = re.compile(r'[0-9a-f]{40}')
_CHUNK = 1 << 20
_log = logging.getLogger(__name__)


class HubError(Exception):
    """An error the server answers as JSON ``{"error": message, **body}`` plus X-Error-Code/X-Error-Message."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        *,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.body = body or {}
        self.headers = headers or {}


def now_iso() -> str:
    """Current UTC time in the Hub's date format (parsed by huggingface_hub.utils.parse_datetime)."""
    return dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3] + 'Z'


def git_blob_sha1(data: bytes) -> str:
    """The git object id of ``data``: what the Hub reports as a regular file's oid."""
    return hashlib.sha1(b'blob %d\0' % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-LFS pointer file git stores in place of an LFS object."""
    return f'version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n'.encode()


def file_entry(data: bytes) -> dict[str, Any]:
    """Commit entry of a regular (non-LFS) file."""
    return {'sha256': hashlib.sha256(data).hexdigest(), 'size': len(data), 'oid': git_blob_sha1(data), 'lfs': False}


def lfs_entry(sha256: str, size: int) -> dict[str, Any]:
    """Commit entry of an LFS file; its oid is the pointer's, like on the Hub."""
    return {'sha256': sha256, 'size': size, 'oid': git_blob_sha1(lfs_pointer(sha256, size)), 'lfs': True}


def check_path(path: object) -> str:
    """Validate a path inside a repo: a relative, normalised string outside .git."""
    parts = path.split('/') if isinstance(path, str) else ['']
    if any(p in ('', '.', '..') for p in parts) or parts[0] == '.git' or '\0' in str(path):
        raise HubError(400, f'Invalid path in repo: {path!r}')
    return str(path)


def check_ref_name(name: str) -> None:
    """Validate a branch or tag name (a git ref name, without the refs/... prefix)."""
    bad = '..' in name or '//' in name or name.endswith(('/', '.lock')) or COMMIT_RE.fullmatch(name)
    if not _REF_RE.fullmatch(name) or bad:
        raise HubError(400, f'Invalid ref name: {name!r}')


def wants_lfs(path: str, size: int, sample: bytes, gitattributes: str) -> bool:
    """Whether the Hub would store this file in LFS: a .gitattributes match, binary content, or a large size."""
    if size >= LFS_SIZE_THRESHOLD or b'\0' in sample:
        return True
    for line in gitattributes.splitlines():
        pattern, *attrs = line.split() or ['']
        if 'filter=lfs' in attrs:
            # git semantics: a pattern without a slash matches the file name in any directory
            subject = path if '/' in pattern else path.rsplit('/', 1)[-1]
            if fnmatch.fnmatchcase(subject, pattern):
                return True
    return False


def _json_value(value: Any) -> Any:
    # YAML has dates, timestamps, sets and bytes; JSON has none of them, and model info is sent as JSON.
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else str(value)


def parse_card_data(readme: str) -> dict[str, Any] | None:
    """The README's YAML front matter, as JSON-ready data; None without front matter or when it does not parse.

    Parsed by huggingface_hub's own :class:`~huggingface_hub.RepoCard`, so model info reports what the client
    would read from the file itself.
    """
    # Imported here so that importing the server needs nothing beyond the standard library.
    from huggingface_hub import RepoCard
    from huggingface_hub.repocard import REGEX_YAML_BLOCK  # the Hub's own test for front matter

    if REGEX_YAML_BLOCK.search(readme) is None:
        return None  # checked first: RepoCard would log a warning and report {}
    try:
        data = RepoCard(readme).data.to_dict()
    except Exception as err:  # bad YAML, a block that is no mapping, keys CardData refuses: all an unreadable card
        _log.warning(
            'README.md front matter does not parse (%s: %s); model info leaves out cardData', type(err).__name__, err
        )
        return None
    return json.loads(json.dumps(data, default=_json_value))


def _tree_item(path: str, entry: dict[str, Any]) -> dict[str, Any]:
    """A file as the tree and paths-info endpoints describe it."""
    item: dict[str, Any] = {'type': 'file', 'oid': entry['oid'], 'size': entry['size'], 'path': path}
    if entry['lfs']:
        pointer_size = len(lfs_pointer(entry['sha256'], entry['size']))
        item['lfs'] = {'oid': entry['sha256'], 'size': entry['size'], 'pointerSize': pointer_size}
    return item


def _folder_item(path: str, files: Files) -> dict[str, Any]:
    """A folder as the tree and paths-info endpoints describe it; its oid summarises the files under it."""
    listing = ''.join(f'{p} {e["oid"]}\n' for p, e in sorted(files.items()) if p.startswith(path + '/'))
    return {'type': 'directory', 'oid': hashlib.sha1(listing.encode()).hexdigest(), 'size': 0, 'path': path}


def _sibling_item(path: str, entry: dict[str, Any]) -> dict[str, Any]:
    """A file as model_info lists it: the tree's LFS details under other names."""
    sibling = {'rfilename': path, 'size': entry['size'], 'blobId': entry['oid']}
    if lfs := _tree_item(path, entry).get('lfs'):
        sibling['lfs'] = {'size': lfs['size'], 'sha256': lfs['oid'], 'pointerSize': lfs['pointerSize']}
    return sibling


def _list_tree(files: Files, path: str, recursive: bool) -> list[dict[str, Any]]:
    """Entries under folder ``path`` ("" for the root): direct children, or everything when recursive."""
    prefix = path + '/' if path else ''
    folders: set[str] = set()
    found: list[str] = []
    for name in sorted(files):
        if not name.startswith(prefix):
            continue
        parts = name[len(prefix) :].split('/')
        if len(parts) == 1 or recursive:
            found.append(name)
        stop = len(parts) if recursive else 2
        folders.update(prefix + '/'.join(parts[:i]) for i in range(1, min(stop, len(parts))))
    if path and not found and not folders:
        raise HubError(404, f'Folder not found: {path}', 'EntryNotFound')
    return [_folder_item(f, files) for f in sorted(folders)] + [_tree_item(n, files[n]) for n in found]


def _write_json(path: Path, data: Any) -> None:
    """Write JSON atomically so readers never see a half-written file."""
    write_text_atomically(path, json.dumps(data, indent=1, sort_keys=True))


class HubStore:
    """All repos and blobs under one root directory. Mutations of refs and repos are serialised by ``lock``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.lock = threading.RLock()
        for sub in ('blobs', 'tmp', 'repos'):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def blob_path(self, sha256: str) -> Path:
        return self.root / 'blobs' / sha256

    def has_blob(self, sha256: str, size: int | None = None) -> bool:
        path = self.blob_path(sha256)
        return path.is_file() and (size is None or path.stat().st_size == size)

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` as a blob and return its sha256."""
        sha256 = hashlib.sha256(data).hexdigest()
        if not self.has_blob(sha256, len(data)):
            tmp = self.root / 'tmp' / uuid.uuid4().hex
            tmp.write_bytes(data)
            os.replace(tmp, self.blob_path(sha256))
        return sha256

    def put_stream(self, stream: BinaryIO, length: int, sha256: str) -> None:
        """Store exactly ``length`` bytes from ``stream`` as blob ``sha256``; 400 if they hash to anything else."""
        tmp = self.root / 'tmp' / uuid.uuid4().hex
        digest, remaining = hashlib.sha256(), length
        try:
            with tmp.open('wb') as out:
                while remaining:
                    chunk = stream.read(min(_CHUNK, remaining))
                    if not chunk:
                        raise HubError(400, f'Upload ended after {length - remaining} of {length} bytes')
                    digest.update(chunk)
                    out.write(chunk)
                    remaining -= len(chunk)
            if digest.hexdigest() != sha256:
                raise HubError(400, f'Uploaded content has sha256 {digest.hexdigest()}, expected {sha256}')
            os.replace(tmp, self.blob_path(sha256))
        finally:
            tmp.unlink(missing_ok=True)

    def read_commit_payload(self, body: bytes) -> tuple[dict[str, Any], list[Operation]]:
        """Parse the client's ndjson commit in full, then store its inline files; 400/422 on any problem.

        Nothing touches a branch here, so a rejected payload leaves the repo as it was.
        """
        header: dict[str, Any] | None = None
        operations: list[Operation] = []
        inline: list[bytes] = []
        for number, line in enumerate(body.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                key, value = item['key'], item['value']
                if key == 'header' and isinstance(value, dict):
                    header = value
                    continue
                path = check_path(value['path'].rstrip('/') if key == 'deletedFolder' else value['path'])
                if key == 'file' and value.get('encoding', 'base64') == 'base64':
                    inline.append(base64.b64decode(value['content'], validate=True))
                    operations.append(('add', path, file_entry(inline[-1])))
                elif key == 'lfsFile' and value.get('algo', 'sha256') == 'sha256':
                    oid, size = value['oid'], value['size']
                    if not SHA256_RE.fullmatch(oid) or type(size) is not int:
                        raise ValueError(oid)
                    if not self.has_blob(oid, size):
                        raise HubError(422, f'LFS object {oid} ({size} bytes) was never uploaded, for {path}')
                    operations.append(('add', path, lfs_entry(oid, size)))
                elif key in ('deletedFile', 'deletedFolder'):
                    operations.append(('delete' if key == 'deletedFile' else 'delete_folder', path, None))
                else:
                    raise ValueError(key)
            except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
                raise HubError(400, f'Malformed commit payload on line {number}') from None
        if header is None:
            raise HubError(400, 'Commit payload has no header line')
        for data in inline:
            self.put_bytes(data)
        return header, operations

    def _repo_dir(self, repo_type: str, repo_id: str) -> Path:
        parts = repo_id.split('/')
        if repo_type not in REPO_TYPES or len(parts) != 2 or not all(_NAME_RE.fullmatch(p) for p in parts):
            raise HubError(400, f'Invalid {repo_type} repo id: {repo_id!r}')
        return self.root / 'repos' / f'{repo_type}s' / parts[0] / parts[1]

    def repo(self, repo_type: str, repo_id: str) -> Repo:
        """The existing repo; 404 RepoNotFound otherwise."""
        try:
            path = self._repo_dir(repo_type, repo_id)
        except HubError:
            path = None
        if path is None or not (path / 'refs.json').is_file():
            raise HubError(404, f'Repository not found: {repo_type} {repo_id}', 'RepoNotFound')
        return Repo(self, repo_id, path)

    def create_repo(self, repo_type: str, repo_id: str, *, private: bool) -> Repo:
        """Create a repo whose ``main`` holds an initial commit with the default .gitattributes, like the Hub."""
        path = self._repo_dir(repo_type, repo_id)
        with self.lock:
            if (path / 'refs.json').is_file():
                raise HubError(409, f'You already created this {repo_type} repo')
            (path / 'commits').mkdir(parents=True, exist_ok=True)
            _write_json(path / 'repo.json', {'createdAt': now_iso(), 'private': private})
            data = DEFAULT_GITATTRIBUTES.encode()
            self.put_bytes(data)
            repo = Repo(self, repo_id, path)
            sha = repo.write_commit(None, 'initial commit', '', {'.gitattributes': file_entry(data)})
            _write_json(path / 'refs.json', {'branches': {DEFAULT_BRANCH: sha}, 'tags': {}})  # written last: marks it
        return repo

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        """Delete a repo's commits and refs. Blobs stay: they are shared and content-addressed."""
        with self.lock:
            path = self.repo(repo_type, repo_id).path
            trash = self.root / 'tmp' / uuid.uuid4().hex
            os.replace(path, trash)  # atomic: readers see the repo or nothing
        shutil.rmtree(trash, ignore_errors=True)


class Repo:
    """One repository: resolves revisions, reads commits and applies new ones."""

    def __init__(self, store: HubStore, repo_id: str, path: Path) -> None:
        self.store, self.repo_id, self.path = store, repo_id, path

    @property
    def meta(self) -> dict[str, Any]:
        return json.loads((self.path / 'repo.json').read_text())

    def refs(self) -> dict[str, dict[str, str]]:
        return json.loads((self.path / 'refs.json').read_text())

    def commit(self, sha: str) -> dict[str, Any]:
        return json.loads((self.path / 'commits' / f'{sha}.json').read_text())

    def resolve(self, rev: str) -> str:
        """Commit sha of a branch, a tag or a full commit sha; 404 RevisionNotFound otherwise."""
        refs = self.refs()
        sha = refs['branches'].get(rev) or refs['tags'].get(rev)
        if sha is None and COMMIT_RE.fullmatch(rev) and (self.path / 'commits' / f'{rev}.json').is_file():
            sha = rev
        if sha is None:
            raise HubError(404, f'Invalid rev id: {rev}', 'RevisionNotFound')
        return sha

    def files(self, rev: str) -> tuple[str, Files]:
        sha = self.resolve(rev)
        return sha, self.commit(sha)['files']

    def read_text(self, files: Files, path: str) -> str:
        entry = files.get(path)
        return self.store.blob_path(entry['sha256']).read_text(errors='replace') if entry else ''

    def info(self, rev: str) -> dict[str, Any]:
        """The model_info / dataset_info answer at ``rev``."""
        sha, files = self.files(rev)
        meta = self.meta
        card = parse_card_data(self.read_text(files, 'README.md')) if 'README.md' in files else None
        tags = (card or {}).get('tags', [])
        info: dict[str, Any] = {
            '_id': sha,
            'id': self.repo_id,
            'author': self.repo_id.split('/')[0],
            'sha': sha,
            'private': meta['private'],
            'disabled': False,
            'gated': False,
            'lastModified': self.commit(sha)['date'],
            'createdAt': meta['createdAt'],
            'downloads': 0,
            'likes': 0,
            'tags': [str(t) for t in (tags if isinstance(tags, list) else [tags])],
            'siblings': [_sibling_item(path, entry) for path, entry in sorted(files.items())],
        }
        if card is not None:
            info['cardData'] = card
            info.update({k: card[k] for k in ('library_name', 'pipeline_tag') if isinstance(card.get(k), str)})
            if info.get('library_name') not in (None, *info['tags']):
                info['tags'].append(info['library_name'])  # the Hub lists the library among the tags
        return info

    def tree(self, rev: str, path: str, recursive: bool) -> list[dict[str, Any]]:
        """The tree listing of folder ``path`` at ``rev``."""
        files = self.files(rev)[1]
        if path in files:
            raise HubError(404, f'Not a folder: {path}', 'EntryNotFound')
        return _list_tree(files, path, recursive)

    def paths_info(self, rev: str, paths: list[str]) -> list[dict[str, Any]]:
        """Tree items of the ``paths`` that exist at ``rev``; others are left out, as on the Hub."""
        files = self.files(rev)[1]
        items = []
        for path in dict.fromkeys(p.strip('/') for p in paths):
            if path in files:
                items.append(_tree_item(path, files[path]))
            elif any(p.startswith(path + '/') for p in files):
                items.append(_folder_item(path, files))
        return items

    def upload_modes(self, rev: str, uploads: list[Any]) -> list[dict[str, Any]]:
        """The preupload answer: "lfs" or "regular" per file, and the current oid so unchanged files are skipped."""
        files = self.files(rev)[1]
        gitattributes = self.read_text(files, '.gitattributes')
        answers = []
        for item in uploads:
            try:
                path, size = check_path(item['path']), int(item['size'])
                sample = base64.b64decode(item.get('sample') or '', validate=True)
            except (KeyError, TypeError, ValueError, AttributeError, binascii.Error):
                raise HubError(400, f'Invalid preupload entry: {str(item)[:200]}') from None
            lfs = wants_lfs(path, size, sample, gitattributes)
            current = files.get(path)
            # The client compares this oid to its own: sha256 for LFS files, git sha1 for regular ones.
            oid = None if current is None or current['lfs'] != lfs else current['sha256' if lfs else 'oid']
            answers.append({'path': path, 'uploadMode': 'lfs' if lfs else 'regular', 'shouldIgnore': False, 'oid': oid})
        return answers

    def history(self, sha: str) -> list[dict[str, Any]]:
        """Commits reachable from ``sha``, newest first."""
        commits = []
        while sha is not None:
            commits.append(self.commit(sha))
            sha = commits[-1]['parent']
        return commits

    def write_commit(self, parent: str | None, title: str, message: str, files: Files) -> str:
        date = now_iso()
        body = {'parent': parent, 'title': title, 'message': message, 'date': date, 'files': files}
        sha = hashlib.sha1(json.dumps({**body, 'nonce': uuid.uuid4().hex}, sort_keys=True).encode()).hexdigest()
        _write_json(self.path / 'commits' / f'{sha}.json', {'id': sha, **body})
        return sha

    def create_commit(
        self, branch: str, *, title: str, message: str, parent: str | None, operations: list[Operation]
    ) -> str:
        """Apply ``operations`` on top of ``branch`` as one commit; all or nothing.

        ``parent`` (the client's parentCommit) must be the branch head, else 412 like the Hub.
        """
        with self.store.lock:
            head = self.refs()['branches'].get(branch)
            if head is None:
                raise HubError(404, f'Invalid rev id: {branch} is not a branch', 'RevisionNotFound')
            if parent is not None and parent != head:
                raise HubError(412, 'A commit has happened since. Please refresh and try again.')
            files = dict(self.commit(head)['files'])
            for kind, path, entry in operations:
                if kind == 'add':
                    files[path] = entry
                elif kind == 'delete' and files.pop(path, None) is None:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", 'EntryNotFound')
                elif kind == 'delete_folder':
                    doomed = [p for p in files if p.startswith(path.rstrip('/') + '/')]
                    if not doomed:
                        raise HubError(404, f"A folder with this name doesn't exist: {path}", 'EntryNotFound')
                    for p in doomed:
                        del files[p]
            folders = {p[:i] for p in files for i, char in enumerate(p) if char == '/'}
            if clashes := sorted(folders.intersection(files)):
                raise HubError(400, f'A path is both a file and a folder: {clashes[0]}')
            sha = self.write_commit(head, title, message, files)
            self._set_refs('branches', branch, sha)
        return sha

    def set_ref(self, kind: str, name: str, sha: str | None) -> None:
        """Create (``sha`` given; 409 if it exists) or delete (``sha`` None; 404 if missing) a branch or tag."""
        if sha is not None:
            check_ref_name(name)
        with self.store.lock:
            refs = self.refs()[kind]
            if sha is not None and name in refs:
                raise HubError(409, f'Reference already exists: {name}')
            if sha is None and name not in refs:
                raise HubError(404, f'Invalid rev id: {name}', 'RevisionNotFound')
            self._set_refs(kind, name, sha)

    def _set_refs(self, kind: str, name: str, sha: str | None) -> None:
        refs = self.refs()
        if sha is None:
            refs[kind].pop(name)
        else:
            refs[kind][name] = sha
        _write_json(self.path / 'refs.json', refs)
