"""A session-wide loopback Hub server, and pytest fixtures for tests that use the unmodified huggingface_hub client.

huggingface_hub reads HF_ENDPOINT (and the Xet switch and timeouts) when it is imported, so the server must be
listening and the environment set before anything imports huggingface_hub, timm or hrnet_zoo. In conftest.py::

    # `from tests.hub_fixtures import ...` if tests/ is a package
    from hub_fixtures import hf_home, hub, hub_repo_id, start_session_hub  # noqa: F401 (re-exported fixtures)

    start_session_hub(Path(tempfile.mkdtemp(prefix='hub-')))

This module imports neither hrnet_zoo nor huggingface_hub at import time, for the same reason.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import socket
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from hub_faults import FaultyHubServer

# Read by huggingface_hub at import. Short timeouts keep the stall fault tests fast; the client retries the metadata
# call with a 60 s timeout, so slow-but-alive servers still work.
HUB_ENV = {
    'HF_HUB_DISABLE_XET': '1',
    'HF_HUB_DISABLE_TELEMETRY': '1',
    'HF_HUB_DISABLE_PROGRESS_BARS': '1',
    'HF_HUB_DISABLE_UPDATE_CHECK': '1',
    'HF_HUB_ETAG_TIMEOUT': '2',
    'HF_HUB_DOWNLOAD_TIMEOUT': '2',
}
# A developer's real token or offline switch must not leak into the tests.
_UNSET_ENV = (
    'HF_TOKEN',
    'HUGGING_FACE_HUB_TOKEN',
    'HF_OIDC_RESOURCE',
    'HF_HUB_OFFLINE',
    'TRANSFORMERS_OFFLINE',
    'HF_HUB_CACHE',
)

_session: FaultyHubServer | None = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def start_session_hub(tmp_root: Path) -> FaultyHubServer:
    """Start the session server with its data under ``tmp_root`` and point the huggingface_hub env vars at it.

    It is a :class:`~hub_faults.FaultyHubServer`, so tests can make it fail on request.

    Must run before huggingface_hub is imported. Calling it again returns the running server.
    """
    global _session
    if _session is not None:
        return _session
    if 'huggingface_hub' in sys.modules:
        raise RuntimeError('start_session_hub() must run before huggingface_hub (or timm, or hrnet_zoo) is imported')
    # The URL must be in the environment before hrnet_zoo is imported (it imports timm, hence huggingface_hub),
    # so pick the port first and import the server afterwards.
    port = _free_port()
    tmp_root = Path(tmp_root)
    os.environ.update(HUB_ENV, HF_ENDPOINT=f'http://127.0.0.1:{port}', HF_HOME=str(tmp_root / 'hf_home'))
    for name in _UNSET_ENV:
        os.environ.pop(name, None)
    from hub_faults import FaultyHubServer

    _session = FaultyHubServer(tmp_root / 'hub', port=port).start()
    atexit.register(_session.stop)
    return _session


def ensure_session_hub() -> FaultyHubServer:
    """The session server; started in a throwaway directory if conftest has not started one (standalone runs)."""
    if _session is not None:
        return _session
    root = Path(tempfile.mkdtemp(prefix='hub-session-'))
    atexit.register(shutil.rmtree, root, ignore_errors=True)  # registered first, so it runs after stop()
    return start_session_hub(root)


@pytest.fixture
def hub() -> Iterator[FaultyHubServer]:
    """The session Hub server; faults, the request log, ``stall_seconds`` and ``token`` are reset around each test."""
    if _session is None:
        raise RuntimeError('call start_session_hub() in conftest.py before huggingface_hub is imported')
    settings = _session.stall_seconds, _session.token
    _session.clear_faults()
    _session.requests.clear()
    yield _session
    _session.clear_faults()
    _session.stall_seconds, _session.token = settings


@pytest.fixture
def hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty Hub cache directory for this test.

    huggingface_hub reads HF_HOME / HF_HUB_CACHE only when imported, so setting them here reaches subprocesses but
    not this process: pass the returned path as ``cache_dir=`` to hf_hub_download, snapshot_download and
    timm.create_model.
    """
    cache = tmp_path / 'hf_home' / 'hub'
    cache.mkdir(parents=True)
    monkeypatch.setenv('HF_HOME', str(cache.parent))
    monkeypatch.setenv('HF_HUB_CACHE', str(cache))
    return cache


@pytest.fixture
def hub_repo_id(request: pytest.FixtureRequest) -> str:
    """A repo id no other test uses on the shared session server, e.g. ``acme/test-upload-1a2b3c4d``."""
    name = re.sub(r'[^A-Za-z0-9]+', '-', request.node.name).strip('-')[:60]
    return f'acme/{name}-{uuid.uuid4().hex[:8]}'
