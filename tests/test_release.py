"""``hrnet-zoo release`` on the loopback Hub, from official-layout files the tests write (random weights, the keys
and wrappers each codebase saves): it publishes each tag once, makes no commit when the Hub already holds the
converted files, finishes after being killed, refuses a tampered file before any upload and reports missing ones.
Direct-source tags (OpenMMLab files, written by ``mmlab_layouts``) are downloaded from a loopback mirror into DIR,
and their lock file is written there, never into the installed package.

The session Hub is shared with other tests, so commits are counted relative to the state before each test.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import mmlab_layouts as mm
import official_layouts as ol
import pytest
import timm
import torch
from file_server import FileServer
from huggingface_hub import HfApi
from huggingface_hub.errors import RepositoryNotFoundError
from safetensors.torch import load_file

import hrnet_zoo
from hrnet_zoo.publish import release as release_module
from hrnet_zoo.publish.release import LOCK_NAME, release, summary_table
from hrnet_zoo.weights.io import sha256_file
from hrnet_zoo.weights.manifest import MANIFEST
from hrnet_zoo.weights.sources import MIRROR_ENV

REPO_ROOT = Path(__file__).resolve().parents[1]
SEG_SMALL = 'hrnetv2_w18_small_v1.cityscapes'  # HRNet-Semantic-Segmentation FullModel, plain
SEG_SMALL_V2 = 'hrnetv2_w18_small_v2.cityscapes'  # the same, in a {'state_dict': ...} wrapper without BN counters
DET = 'hrnetv2p_w18.coco'  # mmdetection Faster R-CNN + HRFPN
NAMES = (SEG_SMALL, SEG_SMALL_V2, DET)
MISSING = 'hrnetv1_w32.mpii_256x256'  # selected, but its file is not written
TIMM_HOSTED = 'hrnetv2_w18_small_v1.in1k'  # read from timm's repo, never released here
# direct downloads (mmseg FCN and OCRNet files), each with the OpenMMLab checkpoint its layout writes
DIRECT = {
    'hrnetv2_w18_small_v2.mmseg_cityscapes_512x1024_160k': lambda seed: mm.mmseg_fcn('w18_small_v2', seed=seed),
    'hrnetv2_ocr_w18_small_v2.mmseg_cityscapes_512x1024_160k': lambda seed: mm.mmseg_ocrnet('w18_small_v2', seed=seed),
}  # fmt: skip
PACKAGE = Path(hrnet_zoo.__file__).resolve().parent


def _write_official(folder: Path, names: tuple[str, ...], seed: int) -> dict[str, dict[str, torch.Tensor]]:
    """Each record's official file under its manifest file name; returns the tensors a loaded model must hold."""
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name in names:
        record = hrnet_zoo.get_record(name)
        backbone = ol.backbone(ol.randomised_timm_hrnet(record.width, seed).state_dict())
        channels = sum(hrnet_zoo.get_spec(record.width).branch_channels)
        if record.head == 'v2':
            head = ol.seg_head(channels, record.num_classes, seed=seed)
            wrapped = name == SEG_SMALL_V2
            checkpoint = ol.seg_fullmodel(backbone, head, wrap=wrapped, abn=wrapped)
        else:
            head = ol.hrfpn(channels, seed=seed)
            checkpoint = ol.mmdet(backbone, head)
        torch.save(checkpoint, folder / record.source.file_name)
        kept = {k: v for k, v in head.items() if not k.endswith('num_batches_tracked')}  # InPlaceABN files lack it
        expected[name] = {'conv1.weight': backbone['conv1.weight'], **kept}
    return expected


def _release_commits(name: str) -> int:
    """How many release commits of ``name`` its repo's history holds (repo creation adds one of its own)."""
    try:
        commits = HfApi().list_repo_commits(hrnet_zoo.get_record(name).hf_hub_id)
    except RepositoryNotFoundError:
        return 0
    return sum(c.title.startswith(f'Release {name} ') for c in commits)


def _writes(requests: list[tuple[str, str]]) -> list[str]:
    """The requests that create or upload something (paths-info is a read, sent as a POST)."""
    return [p for m, p in requests if m in ('PUT', 'DELETE') or (m == 'POST' and '/paths-info/' not in p)]


def _commit_counts(names: tuple[str, ...]) -> dict[str, int]:
    return {name: _release_commits(name) for name in names}


def _check_loaded(expected: dict[str, dict[str, torch.Tensor]], cache: Path) -> None:
    """timm's pretrained=True from each repo's main gives the tensors the official files hold."""
    for name, tensors in expected.items():
        state = timm.create_model(name, pretrained=True, cache_dir=cache).state_dict()
        assert all(torch.equal(state[k], v.to(state[k].dtype)) for k, v in tensors.items()), name


def test_release_publishes_once_then_makes_no_commit(hub, hf_home, tmp_path):
    official = tmp_path / 'official'
    expected = _write_official(official, NAMES, seed=11)
    lock = tmp_path / 'lock.json'
    before = _commit_counts(NAMES)
    lines: list[str] = []

    results = release(official, [*NAMES, MISSING, TIMM_HOSTED], lock_path=lock, echo=lines.append)
    status = {r.name: r.status for r in results}
    assert status == {**dict.fromkeys(NAMES, 'published'), MISSING: 'missing file', TIMM_HOSTED: 'not released'}
    assert len([line for line in lines if line.startswith('[')]) == 5  # a progress line per tag
    assert _commit_counts(NAMES) == {name: n + 1 for name, n in before.items()}
    assert not any(f'{hrnet_zoo.HUB_ORG}/{TIMM_HOSTED}' in path for _, path in hub.requests)
    recorded = json.loads(lock.read_text())
    assert set(recorded) == set(NAMES)  # the manifest has no digests yet: the lock file has them now
    for name in NAMES:
        file = official / hrnet_zoo.get_record(name).source.file_name
        assert recorded[name] == {'file': file.name, 'sha256': sha256_file(file)}
    _check_loaded(expected, hf_home)
    table = summary_table(results)
    assert 'missing file' in table and 'published: 3' in table and "timm's ImageNet backbones" in table

    hub.requests.clear()
    again = release(official, list(NAMES), lock_path=lock, echo=lines.append)
    assert {r.status for r in again} == {'already there'}
    assert _commit_counts(NAMES) == {name: n + 1 for name, n in before.items()}
    assert not [p for m, p in hub.requests if m == 'POST' and ('/commit/' in p or '/preupload/' in p)]


def test_dry_run_uploads_nothing(hub, tmp_path):
    official = tmp_path / 'official'
    _write_official(official, (SEG_SMALL,), seed=12)
    lock = tmp_path / 'lock.json'
    hub.requests.clear()
    results = release(official, [SEG_SMALL], dry_run=True, lock_path=lock, echo=lambda line: None)
    assert [r.status for r in results] == ['would publish']
    assert not _writes(hub.requests)
    assert not lock.exists()


def test_a_tampered_file_is_refused_before_any_upload(hub, tmp_path):
    official = tmp_path / 'official'
    _write_official(official, (SEG_SMALL, SEG_SMALL_V2), seed=13)
    bad = hrnet_zoo.get_record(SEG_SMALL_V2).source.file_name
    lock = tmp_path / 'lock.json'
    lock.write_text(json.dumps({SEG_SMALL_V2: {'file': bad, 'sha256': sha256_file(official / bad)}}))
    torch.save(ol.seg_fullmodel(ol.backbone(ol.randomised_timm_hrnet('w18_small_v2', 99).state_dict()),
                                ol.seg_head(270, 19)), official / bad)  # fmt: skip  # another file, same name
    bad_repo = hrnet_zoo.get_record(SEG_SMALL_V2).hf_hub_id
    before = _release_commits(SEG_SMALL_V2)
    hub.requests.clear()
    uploads_when_refused = []

    def echo(line: str) -> None:
        if line.startswith('[') and SEG_SMALL_V2 in line:
            uploads_when_refused.append(_writes(hub.requests))

    results = release(official, [SEG_SMALL, SEG_SMALL_V2], lock_path=lock, echo=echo)
    status = {r.name: r for r in results}
    assert status[SEG_SMALL_V2].status == 'failed' and 'sha256' in status[SEG_SMALL_V2].detail
    assert status[SEG_SMALL].status == 'published'  # the rest goes on
    assert uploads_when_refused == [[]]  # refused before anything at all was sent
    assert _release_commits(SEG_SMALL_V2) == before
    assert not [p for p in _writes(hub.requests) if bad_repo in p]
    assert json.loads(lock.read_text())[SEG_SMALL_V2]['sha256'] != sha256_file(official / bad)  # kept


@pytest.mark.subprocess
@pytest.mark.slow
def test_killed_after_the_first_upload_then_rerun_finishes(hub, hf_home, tmp_path):
    official = tmp_path / 'official'
    expected = _write_official(official, NAMES, seed=14)
    lock = tmp_path / 'lock.json'
    before = _commit_counts(NAMES)
    cmd = [sys.executable, '-m', 'hrnet_zoo.cli', 'release', str(official), '--lock', str(lock)]
    cmd += [arg for name in NAMES for arg in ('--only', name)]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), HF_HOME=str(tmp_path / 'child_home'), PYTHONUNBUFFERED='1')
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        for line in child.stdout:
            seen.append(line)
            if ': published' in line:
                child.send_signal(signal.SIGKILL)  # stopped at once, in the middle of the next tag
                break
    finally:
        child.kill()
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, ''.join(seen)
    after_kill = _commit_counts(NAMES)
    assert sum(after_kill[n] - before[n] for n in NAMES) in (1, 2)  # the first tag, maybe the next one too
    assert all(after_kill[n] - before[n] <= 1 for n in NAMES)

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert rerun.stdout.count(': already there') >= 1 and rerun.stdout.count(': published') >= 1, rerun.stdout
    assert _commit_counts(NAMES) == {name: n + 1 for name, n in before.items()}  # each tag published once
    for name in NAMES:  # each repo at a complete revision: the three files of one release commit
        files = set(HfApi().list_repo_files(hrnet_zoo.get_record(name).hf_hub_id))
        assert {'model.safetensors', 'config.json', 'README.md'} <= files
    assert set(json.loads(lock.read_text())) == set(NAMES)
    _check_loaded(expected, hf_home)


def _checkpoint_bytes(checkpoint: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getvalue()


def _serve_direct(names, monkeypatch: pytest.MonkeyPatch, seed: int) -> tuple[FileServer, dict[str, bytes]]:
    """A loopback mirror holding a fake file at each record's URL path, each record's hash prefix set to its fake
    file's (the real prefix names the real file). The caller stops the server."""
    data = {}
    for name in names:
        data[name] = _checkpoint_bytes(DIRECT[name](seed))
        record = MANIFEST[name]
        source = replace(record.source, hash_prefix=hashlib.sha256(data[name]).hexdigest()[:8])
        monkeypatch.setitem(MANIFEST, name, replace(record, source=source))
    server = FileServer({urlsplit(MANIFEST[n].source.direct_url).path: data[n] for n in names}).__enter__()
    monkeypatch.setenv(MIRROR_ENV, server.url)
    return server, data


def _package_files() -> dict[Path, tuple[int, int]]:
    """The installed package's files but its Python sources (which other people edit while tests run) and caches."""
    return {
        p.relative_to(PACKAGE): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in PACKAGE.rglob('*')
        if p.is_file() and '__pycache__' not in p.parts and p.suffix not in ('.py', '.pyc')
    }


def test_direct_tags_are_downloaded_into_dir_published_and_locked_there(hub, hf_home, tmp_path, monkeypatch):
    official = tmp_path / 'official'
    official.mkdir()
    names = tuple(DIRECT)
    server, data = _serve_direct(names, monkeypatch, seed=21)
    package = _package_files()
    before = _commit_counts(names)
    lines: list[str] = []
    try:
        results = release(official, list(names), echo=lines.append)
        assert {r.name: r.status for r in results} == dict.fromkeys(names, 'published'), lines
        gets = sorted(path for method, path in server.requests if method == 'GET')
        assert gets == sorted(urlsplit(MANIFEST[n].source.direct_url).path for n in names)  # each downloaded once
        assert _commit_counts(names) == {name: n + 1 for name, n in before.items()}
        files = {name: official / MANIFEST[name].source.file_name for name in names}
        assert sorted(p.name for p in official.iterdir()) == sorted([LOCK_NAME, *(f.name for f in files.values())])
        lock_file = official / LOCK_NAME
        recorded = json.loads(lock_file.read_text())
        assert recorded == {
            name: {'file': files[name].name, 'sha256': hashlib.sha256(data[name]).hexdigest()} for name in names
        }  # the full sha256 of each downloaded file
        assert all(files[name].read_bytes() == data[name] for name in names)
        assert _package_files() == package  # nothing new or changed in the installed package
        assert not list(PACKAGE.rglob(LOCK_NAME))
        for name in names:  # the Hub holds the served file's weights
            weights = HfApi().hf_hub_download(MANIFEST[name].hf_hub_id, 'model.safetensors', cache_dir=hf_home)
            conv1 = torch.load(io.BytesIO(data[name]), weights_only=False)['state_dict']['backbone.conv1.weight']
            assert torch.equal(load_file(weights)['conv1.weight'], conv1), name

        server.requests.clear()
        hub.requests.clear()
        locked = lock_file.read_bytes()
        again = release(official, list(names), echo=lines.append)
        assert {r.name: r.status for r in again} == dict.fromkeys(names, 'already there')
        assert server.requests == []  # nothing downloaded again
        assert not [p for m, p in hub.requests if m == 'POST' and ('/commit/' in p or '/preupload/' in p)]
        assert _commit_counts(names) == {name: n + 1 for name, n in before.items()}
        assert lock_file.read_bytes() == locked
    finally:
        server.__exit__(None, None, None)


def test_a_direct_file_in_dir_with_another_hash_prefix_is_refused(hub, tmp_path, monkeypatch):
    name = next(iter(DIRECT))
    server, _ = _serve_direct([name], monkeypatch, seed=22)
    official = tmp_path / 'official'
    official.mkdir()
    bad = official / MANIFEST[name].source.file_name
    bad.write_bytes(_checkpoint_bytes(DIRECT[name](23)))  # another file under the record's name
    content = bad.read_bytes()
    before = _release_commits(name)
    hub.requests.clear()
    try:
        (result,) = release(official, [name], echo=lambda line: None)
    finally:
        server.__exit__(None, None, None)
    assert result.status == 'failed'
    assert MANIFEST[name].source.hash_prefix in result.detail and 'hash prefix' in result.detail
    assert sha256_file(bad) in result.detail and '\n' not in result.detail  # one line
    assert server.requests == []  # refused, not replaced by a download
    assert bad.read_bytes() == content
    assert not _writes(hub.requests) and _release_commits(name) == before
    assert not (official / LOCK_NAME).exists()


def test_a_dry_run_downloads_nothing(hub, tmp_path, monkeypatch):
    name = next(iter(DIRECT))
    server, _ = _serve_direct([name], monkeypatch, seed=24)
    hub.requests.clear()
    try:
        (result,) = release(tmp_path, [name], dry_run=True, echo=lambda line: None)
    finally:
        server.__exit__(None, None, None)
    assert result.status == 'would publish' and 'download' in result.detail
    assert server.requests == [] and not _writes(hub.requests)
    assert list(tmp_path.iterdir()) == []


def test_a_release_failing_halfway_keeps_the_previous_lock(hub, tmp_path, monkeypatch):
    names = tuple(DIRECT)
    server, data = _serve_direct(names, monkeypatch, seed=25)
    official = tmp_path / 'official'
    official.mkdir()
    previous = {'hrnetv1_w32.elsewhere': {'file': 'old.pth', 'sha256': '0' * 64}}
    (official / LOCK_NAME).write_text(json.dumps(previous))
    real_publish = release_module.publish
    calls = []

    def publish_then_fail(*args, **kwargs):
        calls.append(args)
        if len(calls) > 1:
            raise ConnectionError('the Hub went away')
        return real_publish(*args, **kwargs)

    monkeypatch.setattr(release_module, 'publish', publish_then_fail)
    try:
        results = release(official, list(names), echo=lambda line: None)
    finally:
        server.__exit__(None, None, None)
    assert [r.status for r in results] == ['published', 'failed']
    first = names[0]
    sha = hashlib.sha256(data[first]).hexdigest()
    assert json.loads((official / LOCK_NAME).read_text()) == {
        **previous,
        first: {'file': MANIFEST[first].source.file_name, 'sha256': sha},
    }
    assert not [p for p in official.iterdir() if p.name.startswith(f'.{LOCK_NAME}')]  # no temporary file left
