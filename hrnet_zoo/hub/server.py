"""A Hugging Face Hub-protocol HTTP server for loopback use: tests, and an offline local mirror.

It speaks the part of the Hub API that the unmodified ``huggingface_hub`` client uses: repo creation and deletion,
preupload, git-LFS "basic" transfer, ndjson commits, ``resolve`` downloads (with Range), tree / paths-info /
model-info / refs / commits listings, branches and tags. It does not speak Xet, so clients must run with
``HF_HUB_DISABLE_XET=1`` (downloads never need Xet: no ``X-Xet-Hash`` header is sent). Data lives in
:class:`~hrnet_zoo.hub.store.HubStore` under ``root`` and survives restarts. Standard library only.

Run ``python -m hrnet_zoo.hub.server --root DIR`` to serve a directory as a local mirror. Tests that need the
server to fail the way real networks and CDNs fail use the private ``hrnet_zoo.hub._faults.FaultyHubServer``.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import re
import signal
import socket
import socketserver
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from .store import DEFAULT_BRANCH, REPO_TYPES, SHA256_RE, HubError, HubStore, Repo

__all__ = ['HubError', 'HubServer', 'main']

DEFAULT_USER = 'local'  # namespace for repos created without one, and the whoami answer
_API_TYPES = {'models': 'model', 'datasets': 'dataset', 'spaces': 'space'}
_URL_PREFIX = {'model': '', 'dataset': 'datasets/', 'space': 'spaces/'}
_BAD_CREDENTIALS = 'Invalid credentials in Authorization header'  # the client reports this text as-is
_CHUNK = 1 << 20
_log = logging.getLogger(__name__)


@dataclass
class _Response:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b''
    file: Path | None = None  # when set, send ``length`` bytes of this file from ``offset`` instead of ``body``
    offset: int = 0
    length: int = 0

    @property
    def size(self) -> int:
        return self.length if self.file is not None else len(self.body)


def _json(
    data: Any, status: int = 200, headers: dict[str, str] | None = None, ctype: str = 'application/json'
) -> _Response:
    return _Response(status, {'Content-Type': ctype, **(headers or {})}, json.dumps(data).encode())


def _error(err: HubError) -> _Response:
    # Header values must be latin-1 on one line; the JSON body keeps the exact message.
    safe = err.message.encode('ascii', 'backslashreplace').decode().replace('\r', ' ').replace('\n', ' ')
    headers = {'X-Error-Message': safe, **({'X-Error-Code': err.code} if err.code else {}), **err.headers}
    return _json({'error': err.message, **err.body}, err.status, headers)


def _payload_repo(payload: dict[str, Any]) -> tuple[str, str]:
    """(repo type, repo id) from a create/delete payload; repos without an organization go to DEFAULT_USER."""
    repo_type, name, org = payload.get('type') or 'model', payload.get('name'), payload.get('organization')
    if repo_type not in REPO_TYPES or not isinstance(name, str) or not isinstance(org, (str, type(None))):
        raise HubError(400, 'Expected {"name": str, "organization": str | null, "type": model|dataset|space}')
    return repo_type, f'{org or DEFAULT_USER}/{name}'


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single ``Range: bytes=...`` request; None to send the whole file."""
    match = re.fullmatch(r'bytes=(\d*)-(\d*)', (header or '').strip())
    if match is None or match.groups() == ('', ''):
        return None  # absent or unsupported (multi-range): RFC 9110 lets us ignore it
    first, last = match.groups()
    start, end = (int(first), int(last or size - 1)) if first else (max(size - int(last), 0), size - 1)
    if start >= size or start > end:
        raise HubError(416, 'Requested range not satisfiable', headers={'Content-Range': f'bytes */{size}'})
    return start, min(end, size - 1)


class HubServer:
    """The server. ``with HubServer(root) as hub: ...`` or ``hub = HubServer(root).start(); ...; hub.stop()``.

    With ``token`` set, write calls need ``Authorization: Bearer <token>`` (else 401) and private repos are hidden
    from requests without it; LFS upload URLs work without it, like the Hub's presigned URLs.
    """

    def __init__(
        self,
        root: Path | str,
        host: str = '127.0.0.1',
        port: int = 0,
        token: str | None = None,
        *,
        verbose: bool = False,
    ) -> None:
        self.store = HubStore(Path(root))
        self.host, self.port, self.token, self.verbose = host, port, token, verbose
        self.requests: list[tuple[str, str]] = []  # (method, path without query), in arrival order
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # set by stop(), so a handler that waits on it ends at once
        self._connections: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError('HubServer is not running')
        host, port = self._httpd.server_address[:2]
        return f'http://{host}:{port}'

    def start(self) -> HubServer:
        if self._httpd is not None:
            raise RuntimeError('HubServer is already running')
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), self._handler_class())
        self._httpd.hub = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={'poll_interval': 0.1}, name='hub-server', daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: requests waiting on ``_stopping`` end at once and open keep-alive connections are closed."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its handler
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _handler_class(self) -> type[_Handler]:
        """The class that answers each connection; the hook for subclasses that change how requests are answered.

        Such a subclass of :class:`_Handler` wraps ``_respond`` (what to answer, or None for no answer) and ``_send``
        (how the answer goes out), as :mod:`hrnet_zoo.hub._faults` does to misbehave on request.
        """
        return _Handler

    def _log_request(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    def _track(self, conn: socket.socket, alive: bool) -> None:
        with self._lock:
            (self._connections.add if alive else self._connections.discard)(conn)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 64  # snapshot_download opens several connections at once
    hub: HubServer

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup that can hang on an offline machine.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'  # keep-alive, as the Hub; every answer therefore carries Content-Length
    timeout = 120  # idle keep-alive connections must not pin a thread forever
    server: _HTTPServer

    @property
    def hub(self) -> HubServer:
        return self.server.hub

    def setup(self) -> None:
        super().setup()
        self.hub._track(self.connection, True)

    def finish(self) -> None:
        self.hub._track(self.connection, False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        if self.hub.verbose:  # request lines only: the token travels in a header and is never logged
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    # -- plumbing --------------------------------------------------------------------------------------------------

    def _handle(self) -> None:
        path, _, query = self.path.partition('?')
        length = self.headers.get('Content-Length', '0')
        self._unread = int(length) if length.isdigit() else 0
        self.hub._log_request(self.command, path)
        response = self._respond(path, query)
        if response is None:
            self.close_connection = True
            return
        try:
            self._drain()  # an error may have left the request body unread
            self._send(response)
        except OSError:
            self.close_connection = True  # the client gave up (e.g. timed out on a slow answer)

    def _respond(self, path: str, query: str) -> _Response | None:
        """The answer to this request, errors included; a subclass may return None to close without answering."""
        try:
            if not self.headers.get('Content-Length', '0').isdigit() or 'Transfer-Encoding' in self.headers:
                self.close_connection = True  # cannot find where this body ends
                raise HubError(411, 'A valid Content-Length is required; chunked bodies are not supported')
            return self._route(path, parse_qs(query))
        except HubError as err:
            return _error(err)
        except Exception:
            _log.exception('Hub server failed on %s %s', self.command, path)
            return _error(HubError(500, 'Internal server error'))

    def _send(self, response: _Response) -> None:
        headers = dict(response.headers)
        if self.close_connection:
            headers['Connection'] = 'close'  # tell the client not to reuse it
        self._write_head(response.status, headers, response.size)
        if self.command != 'HEAD':
            self._write_body(response, response.size)

    def _write_head(self, status: int, headers: dict[str, str], length: int) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header('Content-Length', str(length))
        self.end_headers()

    def _write_body(self, response: _Response, todo: int) -> None:
        """Write the first ``todo`` bytes of the body."""
        if response.file is None:
            self.wfile.write(response.body[:todo])
            return
        with response.file.open('rb') as src:
            src.seek(response.offset)
            while todo > 0 and (chunk := src.read(min(_CHUNK, todo))):
                self.wfile.write(chunk)
                todo -= len(chunk)

    def _drain(self) -> None:
        # Unread body bytes would be parsed as the next request, and closing on them makes the kernel reset the
        # connection, which can destroy the answer before the client reads it: so read them.
        while self._unread > 0 and (chunk := self.rfile.read(min(_CHUNK, self._unread))):
            self._unread -= len(chunk)
        if self._unread:
            self.close_connection = True

    def _read_body(self) -> bytes:
        body, self._unread = self.rfile.read(self._unread), 0
        return body

    def _json_body(self) -> dict[str, Any]:
        try:
            data = json.loads(self._read_body() or b'{}')
        except ValueError as err:
            raise HubError(400, f'Invalid JSON body: {err}') from None
        if not isinstance(data, dict):
            raise HubError(400, 'JSON body must be an object')
        return data

    def _authorized(self) -> bool:
        expected = f'Bearer {self.hub.token}'.encode()
        return self.hub.token is None or hmac.compare_digest(self.headers.get('Authorization', '').encode(), expected)

    def _require_write(self) -> None:
        if not self._authorized():
            raise HubError(401, _BAD_CREDENTIALS)

    def _repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.hub.store.repo(repo_type, repo_id)
        if repo.meta['private'] and not self._authorized():
            raise HubError(404, f'Repository not found: {repo_type} {repo_id}', 'RepoNotFound')
        return repo

    def _base_url(self) -> str:
        # URLs handed to the client follow the Host it used, so a mirror works under any name it is reached by.
        host = self.headers.get('Host')
        return f'http://{host}' if host else self.hub.url

    def _repo_url(self, repo_type: str, repo_id: str) -> str:
        return f'{self._base_url()}/{_URL_PREFIX[repo_type]}{repo_id}'

    # -- routing ---------------------------------------------------------------------------------------------------

    def _route(self, path: str, query: dict[str, list[str]]) -> _Response:
        seg = [unquote(s) for s in path.strip('/').split('/')]  # split first: revisions arrive with %2F inside
        method = self.command
        if seg[0] == 'api':
            return self._route_api(method, seg[1:], query)
        if seg[0] == '_lfs' and len(seg) == 2 and method == 'PUT':
            return self._lfs_put(seg[1])
        if seg[0] == '_lfs' and seg[2:] == ['verify'] and method == 'POST':
            return self._lfs_verify(seg[1])
        repo_type = 'model'
        if seg[0] in ('datasets', 'spaces'):
            repo_type, seg = seg[0][:-1], seg[1:]
        if len(seg) == 6 and seg[1].endswith('.git') and seg[2:] == ['info', 'lfs', 'objects', 'batch']:
            if method == 'POST':
                return self._lfs_batch(repo_type, f'{seg[0]}/{seg[1][:-4]}')
        elif len(seg) >= 5 and seg[2] == 'resolve' and method in ('GET', 'HEAD'):
            return self._resolve(repo_type, f'{seg[0]}/{seg[1]}', seg[3], '/'.join(seg[4:]))
        raise HubError(404, f'Not found: {method} {path}')

    def _route_api(self, method: str, seg: list[str], query: dict[str, list[str]]) -> _Response:
        if seg == ['whoami-v2'] and method == 'GET':
            return self._whoami()
        if seg == ['repos', 'create'] and method == 'POST':
            return self._create_repo()
        if seg == ['repos', 'delete'] and method == 'DELETE':
            return self._delete_repo()
        if seg == ['validate-yaml'] and method == 'POST':
            self._read_body()
            return _json({'errors': [], 'warnings': []})
        if len(seg) >= 3 and seg[0] in _API_TYPES:
            repo_type, repo_id = _API_TYPES[seg[0]], f'{seg[1]}/{seg[2]}'
            action, args = (seg[3], seg[4:]) if len(seg) > 3 else ('', [])
            one = len(args) == 1
            if method == 'GET' and (not action or (action == 'revision' and one)):
                return _json(self._repo(repo_type, repo_id).info(args[0] if args else DEFAULT_BRANCH))
            if method == 'GET' and action == 'tree' and args:
                recursive = query.get('recursive', ['false'])[0].lower() in ('1', 'true')
                path = '/'.join(args[1:]).strip('/')  # quote(path, safe='') or not: both arrive here
                return _json(self._repo(repo_type, repo_id).tree(args[0], path, recursive))
            if method == 'POST' and action == 'paths-info' and one:
                paths = parse_qs(self._read_body().decode()).get('paths', [])  # form-encoded, the key repeated
                return _json(self._repo(repo_type, repo_id).paths_info(args[0], paths))
            if method == 'POST' and action == 'preupload' and one:
                return self._preupload(repo_type, repo_id, args[0])
            if method == 'POST' and action == 'commit' and one:
                return self._commit(repo_type, repo_id, args[0], 'create_pr' in query)
            if method == 'GET' and action == 'refs' and not args:
                return self._refs(repo_type, repo_id, 'include_prs' in query)
            if method == 'GET' and action == 'commits' and one:
                return self._commits(repo_type, repo_id, args[0])
            if method in ('POST', 'DELETE') and action in ('branch', 'tag') and one:
                return self._ref(method, action, repo_type, repo_id, args[0])
        raise HubError(404, f'Not found: {method} /api/{"/".join(seg)}')

    # -- endpoints -------------------------------------------------------------------------------------------------

    def _whoami(self) -> _Response:
        if self.hub.token is not None and not self._authorized():
            raise HubError(401, _BAD_CREDENTIALS)
        token_info = {'displayName': 'loopback', 'role': 'write'}
        return _json({'type': 'user', 'name': DEFAULT_USER, 'orgs': [], 'auth': {'accessToken': token_info}})

    def _create_repo(self) -> _Response:
        self._require_write()
        payload = self._json_body()
        repo_type, repo_id = _payload_repo(payload)
        private = bool(payload.get('private')) or payload.get('visibility') == 'private'
        url = self._repo_url(repo_type, repo_id)
        try:
            self.hub.store.create_repo(repo_type, repo_id, private=private)
        except HubError as err:
            err.body.setdefault('url', url)  # create_repo(exist_ok=True) reads the url from the 409
            raise
        return _json({'url': url, 'name': repo_id, 'id': repo_id})

    def _delete_repo(self) -> _Response:
        self._require_write()
        self.hub.store.delete_repo(*_payload_repo(self._json_body()))
        return _json({})

    def _preupload(self, repo_type: str, repo_id: str, rev: str) -> _Response:
        self._require_write()
        uploads = self._json_body().get('files')
        if not isinstance(uploads, list):
            raise HubError(400, 'preupload needs a list of files')
        return _json({'files': self._repo(repo_type, repo_id).upload_modes(rev, uploads)})

    def _lfs_batch(self, repo_type: str, repo_id: str) -> _Response:
        self._require_write()
        payload = self._json_body()
        self._repo(repo_type, repo_id)
        if payload.get('operation') != 'upload':
            raise HubError(422, 'Only the upload operation is supported')
        objects = []
        for obj in payload.get('objects') or []:
            oid, size = obj.get('oid'), obj.get('size')
            if not (isinstance(oid, str) and SHA256_RE.fullmatch(oid) and isinstance(size, int) and size >= 0):
                objects.append({'oid': str(oid), 'size': 0, 'error': {'code': 422, 'message': 'Invalid oid or size'}})
            elif self.hub.store.has_blob(oid, size):
                objects.append({'oid': oid, 'size': size})  # no actions: the client uploads nothing
            else:
                href = f'{self._base_url()}/_lfs/{oid}'
                actions = {'upload': {'href': href}, 'verify': {'href': f'{href}/verify'}}
                objects.append({'oid': oid, 'size': size, 'actions': actions})
        return _json({'transfer': 'basic', 'objects': objects}, ctype='application/vnd.git-lfs+json')

    def _lfs_put(self, oid: str) -> _Response:
        if not SHA256_RE.fullmatch(oid):
            raise HubError(400, 'Invalid LFS oid')
        length, self._unread = self._unread, 0
        try:
            self.hub.store.put_stream(self.rfile, length, oid)
        except OSError as err:
            self.close_connection = True
            raise HubError(400, f'Upload interrupted: {err}') from None
        return _json({})

    def _lfs_verify(self, oid: str) -> _Response:
        size = self._json_body().get('size')
        if not (SHA256_RE.fullmatch(oid) and self.hub.store.has_blob(oid, size if isinstance(size, int) else None)):
            raise HubError(404, f'LFS object not found: {oid}')
        return _json({})

    def _commit(self, repo_type: str, repo_id: str, rev: str, create_pr: bool) -> _Response:
        self._require_write()
        repo = self._repo(repo_type, repo_id)
        if create_pr:
            raise HubError(400, 'Pull requests are not supported by this server')
        header, operations = self.hub.store.read_commit_payload(self._read_body())
        sha = repo.create_commit(
            rev,
            title=str(header.get('summary') or 'Commit'),
            message=str(header.get('description') or ''),
            parent=header.get('parentCommit'),
            operations=operations,
        )
        url = f'{self._repo_url(repo_type, repo_id)}/commit/{sha}'
        return _json({'commitOid': sha, 'commitUrl': url, 'pullRequestUrl': None})

    def _resolve(self, repo_type: str, repo_id: str, rev: str, path: str) -> _Response:
        sha, files = self._repo(repo_type, repo_id).files(rev)
        entry = files.get(path)
        if entry is None:  # X-Repo-Commit lets the client cache the absence
            raise HubError(404, f'Entry not found: {path}', 'EntryNotFound', headers={'X-Repo-Commit': sha})
        size, etag = entry['size'], f'"{entry["sha256"] if entry["lfs"] else entry["oid"]}"'
        headers = {
            'X-Repo-Commit': sha,
            'ETag': etag,
            'Accept-Ranges': 'bytes',
            'Content-Type': 'application/octet-stream',
        }
        if entry['lfs']:
            headers.update({'X-Linked-Etag': etag, 'X-Linked-Size': str(size)})
        span = _byte_range(self.headers.get('Range'), size) if self.command == 'GET' else None
        blob = self.hub.store.blob_path(entry['sha256'])
        if span is None:
            return _Response(200, headers, file=blob, length=size)
        headers['Content-Range'] = f'bytes {span[0]}-{span[1]}/{size}'
        return _Response(206, headers, file=blob, offset=span[0], length=span[1] - span[0] + 1)

    def _refs(self, repo_type: str, repo_id: str, include_prs: bool) -> _Response:
        refs = self._repo(repo_type, repo_id).refs()
        data: dict[str, Any] = {'converts': []}
        for kind, prefix in (('branches', 'refs/heads/'), ('tags', 'refs/tags/')):
            data[kind] = [{'name': n, 'ref': prefix + n, 'targetCommit': s} for n, s in sorted(refs[kind].items())]
        if include_prs:
            data['pullRequests'] = []
        return _json(data)

    def _commits(self, repo_type: str, repo_id: str, rev: str) -> _Response:
        repo = self._repo(repo_type, repo_id)
        keys = ('id', 'title', 'message', 'date')
        commits = [
            {k: c[k] for k in keys} | {'authors': [{'user': DEFAULT_USER}]} for c in repo.history(repo.resolve(rev))
        ]
        return _json(commits)

    def _ref(self, method: str, kind: str, repo_type: str, repo_id: str, name: str) -> _Response:
        self._require_write()
        repo = self._repo(repo_type, repo_id)
        if method == 'DELETE':
            if kind == 'branch' and name == DEFAULT_BRANCH:
                raise HubError(403, f'Cannot delete the default branch {DEFAULT_BRANCH}')
            repo.set_ref('branches' if kind == 'branch' else 'tags', name, None)
        elif kind == 'branch':  # POST /branch/{name} {"startingPoint"?}
            repo.set_ref('branches', name, repo.resolve(self._json_body().get('startingPoint') or DEFAULT_BRANCH))
        else:  # POST /tag/{revision} {"tag", "message"?}
            repo.set_ref('tags', str(self._json_body().get('tag') or ''), repo.resolve(name))
        return _json({})


def main(argv: list[str] | None = None) -> int:
    """Serve a directory as a Hub until Ctrl-C."""
    parser = argparse.ArgumentParser(prog='python -m hrnet_zoo.hub.server', description=__doc__.splitlines()[0])
    parser.add_argument('--root', type=Path, required=True, help='directory holding the repos (created if missing)')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=8080, help='0 picks a free port')
    parser.add_argument('--token', help="require 'Authorization: Bearer TOKEN' on write calls")
    parser.add_argument('--verbose', action='store_true', help='log every request line to stderr')
    args = parser.parse_args(argv)
    # a process started in the background by a non-interactive shell inherits SIGINT ignored, and Python then
    # installs no KeyboardInterrupt handler: install it, so SIGINT always stops the server
    signal.signal(signal.SIGINT, signal.default_int_handler)
    server = HubServer(args.root, args.host, args.port, args.token, verbose=args.verbose)
    try:  # from the start, so that Ctrl-C at any point stops cleanly
        server.start()
        print(f'Serving the Hugging Face Hub protocol from {args.root} at {server.url}')
        print('Point huggingface_hub at it with:')
        print(f'  export HF_ENDPOINT={server.url}')
        print('  export HF_HUB_DISABLE_XET=1')
        print('Press Ctrl-C to stop.', flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
