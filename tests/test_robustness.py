"""Faults on the Hub path, injected in the loopback Hub server: fetches retry as huggingface_hub does, then fail with
an error naming the repo and the file, leave no partial file in the cache, and a later fetch succeeds; a publish
interrupted at any step leaves the repo at a complete revision and a retry completes it; four processes fetching the
same weights at once get identical, complete files.

Every fetch and publish goes through the unmodified huggingface_hub client and timm's own ``pretrained=True`` path.
The client's backoff waits (1, 2, 4, 8, 8 s) are recorded instead of slept; the timeouts (2 s) are real.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx2
import huggingface_hub.constants
import huggingface_hub.file_download
import huggingface_hub.utils._http
import pytest
import timm
import torch
from hub_fixtures import ensure_session_hub
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
from safetensors.torch import load_file

from hrnet_zoo.publish.client import publish
from hrnet_zoo.publish.convert import convert_checkpoint
from hrnet_zoo.weights.io import audit_cache, sha256_file, verify_safetensors
from hrnet_zoo.weights.pretrained import SAFETENSORS_ONLY, WeightsFetchError, named_fetch_errors

pytestmark = pytest.mark.usefixtures('one_thread')

REPO_ROOT = Path(__file__).resolve().parents[1]
ARCH, TAG = 'hrnetv2_w18_small_v1', 'cityscapes'
FILE = 'model.safetensors'


def _convert(tmp: Path, seed: int) -> Path:
    """A random hrnetv2_w18_small_v1 in the official layout, converted (model.safetensors, config.json, card)."""
    torch.manual_seed(seed)
    checkpoint = tmp / f'seed{seed}.pth'
    torch.save(timm.create_model(ARCH, num_classes=19).state_dict(), checkpoint)
    return convert_checkpoint(checkpoint, f'{ARCH}.{TAG}', tmp / f'seed{seed}')


@dataclass(frozen=True)
class Published:
    repo_id: str
    commit: str
    folder: Path
    tensors: dict[str, torch.Tensor]
    sha256: str


@pytest.fixture(scope='module')
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """One tiny model on the session Hub, in a repo of its own, shared by the fetch-fault tests."""
    ensure_session_hub()
    folder = _convert(tmp_path_factory.mktemp('published'), seed=11)
    repo_id = f'acme/robustness-{uuid.uuid4().hex[:8]}'
    commit = publish(folder, repo_id, verify=False).commit_id
    yield Published(repo_id, commit, folder, load_file(folder / FILE), sha256_file(folder / FILE))
    HfApi().delete_repo(repo_id, missing_ok=True)


class _RecordedTime:
    """The ``time`` module as huggingface_hub sees it, with ``sleep`` recording the backoff instead of waiting."""

    def __init__(self, waits: list[float]) -> None:
        self._waits = waits

    def sleep(self, seconds: float) -> None:
        self._waits.append(seconds)

    def __getattr__(self, name: str):
        return getattr(time, name)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    for module in (huggingface_hub.utils._http, huggingface_hub.file_download):
        monkeypatch.setattr(module, 'time', _RecordedTime(recorded))
    return recorded


def _fetch_kwargs(repo_id: str, cache: Path) -> dict:
    # the manifest's model name, its weights taken from this test's repo (safetensors only, see SAFETENSORS_ONLY)
    return dict(pretrained_cfg_overlay=dict(hf_hub_id=repo_id, **SAFETENSORS_ONLY), cache_dir=cache)


def _fetch(repo_id: str, cache: Path) -> torch.nn.Module:
    """timm's pretrained=True path, with the error naming that hrnet_zoo.models applies once the lead has the diff
    (named_fetch_errors passes a WeightsFetchError through unchanged, so this is the same either way)."""
    kwargs = _fetch_kwargs(repo_id, cache)
    with named_fetch_errors(ARCH, True, dict(kwargs, pretrained_cfg=TAG)):
        return timm.create_model(f'{ARCH}.{TAG}', pretrained=True, **kwargs)


def _count(hub, method: str) -> int:
    return sum(1 for m, p in hub.requests if m == method and p.endswith('/' + FILE))


def _assert_clean_then_refetch(hub, published: Published, cache: Path) -> None:
    """No partial or misnamed file in the cache and no weights file in it; then a fetch succeeds, bit-identical."""
    assert audit_cache(cache) == []
    leftovers = [p for p in cache.rglob('*') if p.is_file() and p.stat().st_size > 100_000]
    assert leftovers == [], 'a partial or complete weights file was kept after the failure'
    hub.clear_faults()
    state = _fetch(published.repo_id, cache).state_dict()
    assert all(torch.equal(state[k], v) for k, v in published.tensors.items())
    assert audit_cache(cache) == []
    blobs = [p for p in cache.rglob('blobs/*') if p.is_file()]
    assert [p.name for p in blobs] == [published.sha256]  # one blob, named by its content


# (fault, method, times, HEADs, GETs, backoff waits): faults the client recovers from within one fetch.
RECOVERED = {
    'head_500_once': ('status_500', 'HEAD', 1, 2, 1, []),
    'head_500_x6': ('status_500', 'HEAD', 6, 7, 1, [1, 2, 4, 8, 8]),
    'body_drop_x5': ('drop', 'GET', 5, 1, 6, [1] * 5),
    'short_body_x5': ('short_body', 'GET', 5, 1, 6, [1] * 5),
    'head_stall': ('stall', 'HEAD', 1, 2, 1, []),
    'body_stall': ('stall', 'GET', 1, 1, 2, [1]),
}


@pytest.mark.parametrize('case', list(RECOVERED))
def test_fetch_recovers_from_transient_faults(hub, hf_home, published, waits, case):
    fault, method, times, heads, gets, backoff = RECOVERED[case]
    hub.stall_seconds = 4  # past HF_HUB_ETAG_TIMEOUT / HF_HUB_DOWNLOAD_TIMEOUT (2 s), well short of the 60 s retry
    hub.inject(fault, method=method, path_contains=FILE, times=times)
    start = time.monotonic()
    state = _fetch(published.repo_id, hf_home).state_dict()
    elapsed = time.monotonic() - start
    assert all(torch.equal(state[k], v) for k, v in published.tensors.items())
    assert (_count(hub, 'HEAD'), _count(hub, 'GET'), waits) == (heads, gets, backoff)
    if fault == 'stall':
        assert 1.9 < elapsed < hub.stall_seconds + 30  # it waited for the timeout, not for the stalled answer
    assert audit_cache(hf_home) == []


def test_bad_etag_files_the_right_bytes_under_a_wrong_name(hub, hf_home, published):
    hub.inject('bad_etag', method='HEAD', path_contains=FILE)
    state = _fetch(published.repo_id, hf_home).state_dict()
    assert all(torch.equal(state[k], v) for k, v in published.tensors.items())  # the content is right...
    problems = audit_cache(hf_home)
    assert len(problems) == 1 and 'does not match its sha256 name' in problems[0]  # ...filed under another name
    # the snapshot file is still the published file, and a fresh cache gets the right name
    fresh = hf_home.parent / 'fresh'
    _fetch(published.repo_id, fresh)
    assert audit_cache(fresh) == [] and sha256_file(next(fresh.rglob(f'snapshots/*/{FILE}'))) == published.sha256


# (fault, method, times, what huggingface_hub raises, HEADs, GETs, backoff waits): faults that outlast its retries.
FATAL = {
    'body_500': ('status_500', 'GET', 1, HfHubHTTPError, 1, 1, []),  # not retried
    'head_500_x7': ('status_500', 'HEAD', 7, LocalEntryNotFoundError, 7, 0, [1, 2, 4, 8, 8]),
    'head_drop': ('drop', 'HEAD', 1, httpx2.RemoteProtocolError, 1, 0, []),  # neither retried nor wrapped
    'body_drop_x6': ('drop', 'GET', 6, httpx2.RemoteProtocolError, 1, 6, [1] * 5),
    'short_body_x6': ('short_body', 'GET', 6, httpx2.RemoteProtocolError, 1, 6, [1] * 5),
    'body_stall_x6': ('stall', 'GET', 6, httpx2.ReadTimeout, 1, 6, [1] * 5),
}


@pytest.mark.parametrize('case', list(FATAL))
def test_fetch_fails_clearly_keeps_nothing_and_recovers(hub, hf_home, published, waits, monkeypatch, case):
    fault, method, times, raised, heads, gets, backoff = FATAL[case]
    hub.stall_seconds = 4
    hub.inject(fault, method=method, path_contains=FILE, times=times)
    with pytest.raises(WeightsFetchError) as failed, monkeypatch.context() as patch:
        patch.setattr(huggingface_hub.constants, 'HF_HUB_DOWNLOAD_TIMEOUT', 1)  # six stalls: 6 s, not 12
        _fetch(published.repo_id, hf_home)
    assert isinstance(failed.value.__cause__, raised)
    message = str(failed.value)
    assert published.repo_id in message and FILE in message and hub.url in message and '\n' not in message
    assert (failed.value.repo_id, failed.value.path_in_repo) == (published.repo_id, FILE)
    assert (_count(hub, 'HEAD'), _count(hub, 'GET'), waits) == (heads, gets, backoff)
    _assert_clean_then_refetch(hub, published, hf_home)


def test_create_model_itself_names_repo_and_file(hub, hf_home, published, waits):
    hub.inject('drop', method='HEAD', path_contains=FILE)
    with pytest.raises(WeightsFetchError, match=published.repo_id):
        timm.create_model(f'{ARCH}.{TAG}', pretrained=True, **_fetch_kwargs(published.repo_id, hf_home))


def test_a_failed_hub_leaves_a_warm_cache_usable(hub, hf_home, published, waits):
    """Hub down after a first fetch: the cached snapshot is used, nothing is re-downloaded or damaged."""
    _fetch(published.repo_id, hf_home)
    hub.inject('status_500', method='HEAD', times=20)
    hub.inject('status_500', method='GET', times=20)
    state = _fetch(published.repo_id, hf_home).state_dict()
    assert all(torch.equal(state[k], v) for k, v in published.tensors.items())
    assert _count(hub, 'GET') == 1 and audit_cache(hf_home) == []


# -- publish -------------------------------------------------------------------------------------------------------

# step: (method, path_contains, fault, times, attempts the client makes, whether the commit landed before the fault)
PUBLISH_STEPS = {
    'create_repo': ('POST', '/api/repos/create', 'status_500', 1, 1, False),
    'repo_info': ('GET', '/api/models/{repo}', 'status_500', 1, 1, False),
    'validate_card': ('POST', '/api/validate-yaml', 'status_500', 10, 1, False),
    'preupload': ('POST', '/preupload/', 'status_500', 10, 6, False),
    'lfs_batch': ('POST', '/info/lfs/objects/batch', 'status_500', 10, 6, False),
    'lfs_put': ('PUT', '/_lfs/', 'status_500', 10, 6, False),
    'lfs_put_dropped': ('PUT', '/_lfs/', 'drop', 10, 6, False),  # stored, answer lost: a partial upload
    'lfs_verify': ('POST', '/verify', 'status_500', 10, 6, False),
    'commit': ('POST', '/commit/', 'status_500', 10, 1, False),
    'commit_answer_lost': ('POST', '/commit/', 'drop', 1, 1, True),
    'verify_download': ('GET', '/resolve/', 'status_500', 1, 1, True),
}


@pytest.fixture(scope='module')
def publish_repo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    ensure_session_hub()
    tmp = tmp_path_factory.mktemp('publish')
    repo_id = f'acme/interrupted-{uuid.uuid4().hex[:8]}'
    state = {'repo_id': repo_id, 'tmp': tmp, 'head': publish(_convert(tmp, seed=20), repo_id, verify=False).commit_id}
    yield state
    HfApi().delete_repo(repo_id, missing_ok=True)


@pytest.mark.parametrize('step', list(PUBLISH_STEPS))
def test_interrupted_publish_keeps_a_complete_revision_and_a_retry_completes(hub, publish_repo, waits, step):
    method, path, fault, times, attempts, committed = PUBLISH_STEPS[step]
    repo_id, api = publish_repo['repo_id'], HfApi()
    previous = publish_repo['head']
    assert api.repo_info(repo_id).sha == previous
    folder = _convert(publish_repo['tmp'], seed=21 + list(PUBLISH_STEPS).index(step))  # new weights: a real upload
    path = path.format(repo=repo_id)
    sent = len(hub.requests)
    hub.inject(fault, method=method, path_contains=path, times=times)
    with pytest.raises(Exception) as failed:  # noqa: B017 - what the client raises depends on the step
        publish(folder, repo_id)
    assert sum(1 for m, p in hub.requests[sent:] if m == method and path in p) == attempts
    hub.clear_faults()
    head = api.repo_info(repo_id).sha
    if committed:  # the commit landed before the fault: the new revision, complete
        assert head != previous
        assert api.list_repo_commits(repo_id)[1].commit_id == previous
    else:
        assert head == previous, f'{step}: {failed.value!r}'
    # the head revision serves whole weights: the previous ones, or (commit landed) the new ones
    served = api.get_paths_info(repo_id, [FILE], revision=head)[0].lfs.sha256
    assert (served == sha256_file(folder / FILE)) == committed
    retried = publish(folder, repo_id)  # downloads into a fresh cache and compares sha256s, tensors and features
    assert retried.verified and api.repo_info(repo_id).sha == retried.commit_id != previous
    assert (retried.commit_id == head) == committed  # a landed commit is not repeated
    publish_repo['head'] = retried.commit_id


# -- concurrent fetches --------------------------------------------------------------------------------------------

_FETCHER = textwrap.dedent(
    """
    import hashlib, sys, time
    from pathlib import Path
    from huggingface_hub import hf_hub_download
    repo_id, cache, go, ready = sys.argv[1:5]
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.005)
    path = hf_hub_download(repo_id, 'model.safetensors', cache_dir=cache)
    print(hashlib.sha256(Path(path).read_bytes()).hexdigest(), Path(path).stat().st_size)
    """
)


@pytest.mark.subprocess
def test_four_processes_fetch_the_same_weights_at_once(hub, hf_home, published, tmp_path):
    hub.inject('drop', method='GET', path_contains=FILE)  # the first download is cut: the others wait on its lock
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get('PYTHONPATH', '')]))
    go = tmp_path / 'go'
    procs = [
        subprocess.Popen(
            [sys.executable, '-c', _FETCHER, published.repo_id, str(hf_home), str(go), str(tmp_path / f'ready{i}')],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(4)
    ]
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f'ready{i}').exists() for i in range(4)) and time.monotonic() < deadline:
            time.sleep(0.01)
        go.touch()  # all four start fetching together
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0] * 4, [err[-1500:] for _, err in results]
    size = (published.folder / FILE).stat().st_size
    assert [out.split() for out, _ in results] == [[published.sha256, str(size)]] * 4
    assert [p.name for p in hf_home.rglob('blobs/*')] == [published.sha256] and audit_cache(hf_home) == []
    snapshot = next(hf_home.rglob(f'snapshots/*/{FILE}'))
    tensors, _ = verify_safetensors(snapshot, expected_sha256=published.sha256)
    assert all(torch.equal(tensors[k], v) for k, v in published.tensors.items())
    assert _count(hub, 'GET') >= 2  # the dropped one and its resume; the lock keeps the rest from downloading again
