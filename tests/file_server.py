"""A loopback HTTP file server for download tests: serves bytes from a dict or a folder and fails on request.

::

    with FileServer({'/a/model-93db27d0.pth': data}) as server:
        server.url          # 'http://127.0.0.1:<port>'
        server.requests     # [('HEAD', '/a/model-93db27d0.pth'), ('GET', '/a/model-93db27d0.pth'), ...]
        server.not_found = True     # every request is answered 404
        server.cut_after = 100      # GET bodies stop after 100 bytes and the connection closes
        server.stall = True         # requests are read, never answered (until the server stops)
        server.stall_after = 100    # GET bodies stall after 100 bytes; ``server.stalled`` is set then

The switches can be flipped while the server runs; each request reads them when it arrives. A cut or stalled body
is sent with the full ``Content-Length``, as a dropped or hung transfer looks to a client. Standard library only.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ['FileServer']

_STALL_LIMIT_S = 60.0  # a stalled request gives up by itself after this long, even if nobody stops the server


class FileServer:
    """Serve ``files`` (``'/path' -> bytes``, or every file below a folder) on ``127.0.0.1`` at a free port."""

    def __init__(self, files: Mapping[str, bytes] | str | Path) -> None:
        if isinstance(files, (str, Path)):
            self.root: Path | None = Path(files)
            self.files: dict[str, bytes] = {}
        else:
            self.root = None
            self.files = {('/' + path.lstrip('/')): bytes(data) for path, data in files.items()}
        self.requests: list[tuple[str, str]] = []  # (method, path), in arrival order
        self.not_found = False
        self.cut_after: int | None = None
        self.stall = False
        self.stall_after: int | None = None
        self.stalled = threading.Event()  # set when a request starts to stall
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle

    def start(self) -> FileServer:
        if self._httpd is not None:
            raise RuntimeError('the server is already running')
        self._release.clear()
        self._httpd = ThreadingHTTPServer(('127.0.0.1', 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name='file-server', daemon=True
        )  # a short poll interval: stop() returns at once
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (later connections are refused) and release stalled requests."""
        self._release.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> FileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError('the server is not running')
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    # -- what the handler uses

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    def _lookup(self, path: str) -> bytes | None:
        path = unquote(urlsplit(path).path)
        if self.root is None:
            return self.files.get(path)
        root = self.root.resolve()
        target = (root / path.lstrip('/')).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            return None
        return target.read_bytes()

    def _hang(self) -> None:
        self.stalled.set()
        self._release.wait(_STALL_LIMIT_S)


def _handler_for(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            server._record(self.command, self.path)
            if server.stall:
                server._hang()
                return
            data = None if server.not_found else server._lookup(self.path)
            if data is None:
                self.send_error(404, 'Not Found')
                return
            self.send_response(200)
            self.send_header('Content-Type', 'application/octet-stream')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            if not body:
                return
            if server.stall_after is not None:
                self.wfile.write(data[: server.stall_after])
                self.wfile.flush()
                server._hang()
                return
            if server.cut_after is not None:
                data = data[: server.cut_after]
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away; nothing to tell it

        def log_message(self, format: str, *args: object) -> None:
            pass  # requests are recorded in ``server.requests``; the test output stays quiet

    return Handler
