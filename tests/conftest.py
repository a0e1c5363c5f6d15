"""Test session set-up: a loopback Hub-protocol server, started before anything imports huggingface_hub.

huggingface_hub reads ``HF_ENDPOINT`` (and its Xet and timeout switches) at import, and hrnet_zoo imports timm,
which imports huggingface_hub; so the server starts here, at conftest import, before any test module is collected.
No test reaches a network beyond 127.0.0.1.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hub_fixtures import hf_home, hub, hub_repo_id, start_session_hub  # noqa: F401 (fixtures)

_root = Path(tempfile.mkdtemp(prefix='hrnet_zoo_hub_'))
atexit.register(shutil.rmtree, _root, ignore_errors=True)
start_session_hub(_root)


_HUB_FIXTURES = frozenset({'hub', 'hf_home', 'hub_repo_id'})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that talks to the loopback Hub ``hub``, so ``-m 'not hub'`` skips the round trips."""
    for item in items:
        if _HUB_FIXTURES & set(getattr(item, 'fixturenames', ())):
            item.add_marker(pytest.mark.hub)


@pytest.fixture(scope='module')
def one_thread():
    """Tiny tensors: one intra-op thread is faster, and does not stall when another process holds the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class RecordingLibc:
    """Stands in for glibc in :mod:`hrnet_zoo.fast.memory`: records ``mallopt`` calls instead of making them."""

    def __init__(self) -> None:
        self.mallopt_calls: list[tuple[int, int]] = []

    def mallopt(self, param: int, value: int) -> int:
        self.mallopt_calls.append((param, value))
        return 1  # glibc's "done"


@pytest.fixture(autouse=True)
def malloc_left_alone(monkeypatch: pytest.MonkeyPatch) -> RecordingLibc:
    """``reuse_freed_memory`` (``optimize_for_inference(reuse_memory=True)``, ``hrnet-zoo bench``) switches malloc
    for the whole process: in the suite's own process it only records what it would set. The real switch is
    checked in a child process (tests/test_fast_memory.py)."""
    from hrnet_zoo.fast import memory

    libc = RecordingLibc()
    monkeypatch.setattr(memory, '_glibc', lambda: libc)
    return libc
