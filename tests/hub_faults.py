"""Fault injection for the loopback Hub server, for robustness tests (it lives with the tests: the package ships
without it).

:class:`FaultyHubServer` is a :class:`~hrnet_zoo.hub.server.HubServer` whose :meth:`~FaultyHubServer.inject` makes
the next matching requests fail the way real networks and CDNs fail. Standard library only, like the server.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from hrnet_zoo.hub.server import HubError, HubServer, _error, _Handler, _Response

__all__ = ['FAULTS', 'FaultyHubServer']

FAULTS = frozenset({'status_500', 'drop', 'stall', 'bad_etag', 'short_body'})


@dataclasses.dataclass
class _Fault:
    kind: str
    method: str | None
    path_contains: str | None
    remaining: int


class FaultyHubServer(HubServer):
    """A :class:`HubServer` (same arguments) that fails requests on demand; it behaves normally until told to."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stall_seconds = 30.0  # how long a 'stall' fault holds a request before answering
        self._faults: list[_Fault] = []

    def inject(
        self, fault: str, *, method: str | None = None, path_contains: str | None = None, times: int = 1
    ) -> None:
        """Make the next ``times`` requests matching ``method`` and ``path_contains`` fail with ``fault``.

        * ``status_500``: answer 500 with a Hub-style JSON error.
        * ``drop``: send the headers and half the body, then close the connection; a bodyless answer (HEAD)
          is not sent at all.
        * ``stall``: wait ``stall_seconds`` (or until :meth:`stop`) before answering normally.
        * ``bad_etag``: send a wrong ``ETag`` and ``X-Linked-Etag`` (the client names cache blobs after them).
        * ``short_body``: send all but the last byte of the announced Content-Length, then close.
        """
        if fault not in FAULTS:
            raise ValueError(f'Unknown fault {fault!r}; expected one of {sorted(FAULTS)}')
        if times < 1:
            raise ValueError('times must be >= 1')
        with self._lock:
            self._faults.append(_Fault(fault, method and method.upper(), path_contains, times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _handler_class(self) -> type[_Handler]:
        return _FaultyHandler

    def _take_fault(self, method: str, path: str) -> str | None:
        """Consume the first fault that matches this request."""
        with self._lock:
            for fault in self._faults:
                if fault.method in (None, method) and (fault.path_contains or '') in path:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault.kind
        return None


def _corrupt_etags(headers: dict[str, str]) -> None:
    """Replace ETag and X-Linked-Etag (the one the client prefers) by a well-formed but wrong value."""
    for name in ('ETag', 'X-Linked-Etag'):
        if name in headers:
            real = headers[name].strip('"')
            headers[name] = '"' + hashlib.sha256(b'bad-etag:' + real.encode()).hexdigest()[: len(real)] + '"'


class _FaultyHandler(_Handler):
    _fault: str | None = None  # this request's fault; a keep-alive connection carries several requests

    @property
    def hub(self) -> FaultyHubServer:
        return self.server.hub  # type: ignore[return-value]  # start() attached the FaultyHubServer

    def _respond(self, path: str, query: str) -> _Response | None:
        hub = self.hub
        self._fault = hub._take_fault(self.command, path)
        if self._fault == 'stall' and hub._stopping.wait(hub.stall_seconds):
            return None  # the server is stopping: end the request unanswered
        if self._fault == 'status_500':
            return _error(HubError(500, 'Injected fault: internal server error'))
        return super()._respond(path, query)

    def _send(self, response: _Response) -> None:
        fault, head_only, size = self._fault, self.command == 'HEAD', response.size
        if fault == 'bad_etag':
            headers = dict(response.headers)
            _corrupt_etags(headers)
            response = dataclasses.replace(response, headers=headers)
        if fault not in ('drop', 'short_body'):
            super()._send(response)
            return
        self.close_connection = True  # without a Connection: close header: real cuts give no warning
        if fault == 'drop' and (head_only or size == 0):
            return
        declared = max(size, 1) if fault == 'short_body' and not head_only else size
        self._write_head(response.status, response.headers, declared)
        if not head_only:
            self._write_body(response, size // 2 if fault == 'drop' else declared - 1)
