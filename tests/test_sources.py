"""Direct downloads (hrnet_zoo.weights.sources) through HRNET_ZOO_MIRROR pointed at a loopback file server."""

from __future__ import annotations

import hashlib
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from file_server import FileServer

from hrnet_zoo.weights import sources
from hrnet_zoo.weights.sources import (
    MIRROR_ENV,
    DirectDownloadError,
    cache_path,
    fetch,
    hash_prefix_of,
    mirrored,
)

ORIGIN = 'https://download.openmmlab.com'
DATA = os.urandom(300_000) + b'the end'
HASH8 = hashlib.sha256(DATA).hexdigest()[:8]
PATH = f'/mmpose/top_down/hrnet/hrnet_w32_coco_256x192-{HASH8}_20200708.pth'  # named as mmpose names them
PLAIN = '/HRNet/hrnetv2_w18_imagenet_pretrained.pth'  # no hash in the name: nothing to check it against
URL = ORIGIN + PATH
NAME = PATH.rsplit('/', 1)[1]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        MIRROR_ENV,
        *sources.OFFLINE_ENVS,
        sources.CONNECT_TIMEOUT_ENV,
        sources.READ_TIMEOUT_ENV,
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def socket_default_restored():
    before = socket.getdefaulttimeout()
    yield
    assert socket.getdefaulttimeout() == before


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    with FileServer({PATH: DATA, PLAIN: DATA}) as srv:
        monkeypatch.setenv(MIRROR_ENV, srv.url)
        yield srv


@pytest.fixture
def hub_dir(tmp_path: Path):
    before = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / 'hub'))
    yield tmp_path / 'hub'
    torch.hub.set_dir(before)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# -- downloads


def test_download_is_byte_identical_and_cached_in_torch_hub_layout(server: FileServer, hub_dir: Path) -> None:
    path = fetch(URL, progress=False)
    assert path == hub_dir / 'checkpoints' / NAME == cache_path(URL)
    assert path.read_bytes() == DATA
    assert server.requests == [('HEAD', PATH), ('GET', PATH)]
    assert names(path.parent) == [NAME]


def test_a_second_fetch_makes_no_request(server: FileServer, tmp_path: Path) -> None:
    first = fetch(URL, cache_dir=tmp_path, progress=False)
    server.requests.clear()
    assert fetch(URL, cache_dir=tmp_path, progress=False) == first
    assert server.requests == []


def test_a_progress_bar_does_not_get_in_the_way(server: FileServer, tmp_path: Path) -> None:
    assert fetch(URL, cache_dir=tmp_path).read_bytes() == DATA


def test_a_wrong_hash_prefix_is_refused_and_nothing_is_left(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(DirectDownloadError) as caught:
        fetch(URL, hash_prefix='deadbeef', cache_dir=tmp_path, progress=False)
    message = str(caught.value)
    assert 'sha256 mismatch' in message and 'deadbeef' in message
    assert hashlib.sha256(DATA).hexdigest() in message
    assert '\n' not in message
    assert names(tmp_path) == []


def test_the_hash_in_the_file_name_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = '/mmseg/fcn_hr18_512x1024_40k_cityscapes_20200601_014216-0badc0de.pth'
    with FileServer({wrong: DATA}) as srv:
        monkeypatch.setenv(MIRROR_ENV, srv.url)
        with pytest.raises(DirectDownloadError, match='expected 0badc0de'):
            fetch(ORIGIN + wrong, cache_dir=tmp_path, progress=False)
        assert names(tmp_path) == []
        assert fetch(ORIGIN + wrong, hash_prefix='', cache_dir=tmp_path, progress=False).read_bytes() == DATA


@pytest.mark.parametrize('path', [PATH, PLAIN], ids=['hash-in-name', 'no-hash'])
def test_a_transfer_cut_halfway_leaves_nothing_and_a_rerun_completes(
    server: FileServer, tmp_path: Path, path: str
) -> None:
    # Without a hash only the announced length tells: urllib ends the body at EOF without complaint.
    server.cut_after = len(DATA) // 2
    with pytest.raises(DirectDownloadError, match=f'cut short: got {len(DATA) // 2} of {len(DATA)} bytes'):
        fetch(ORIGIN + path, cache_dir=tmp_path, progress=False)
    assert names(tmp_path) == []
    server.cut_after = None
    assert fetch(ORIGIN + path, cache_dir=tmp_path, progress=False).read_bytes() == DATA
    assert names(tmp_path) == [path.rsplit('/', 1)[1]]


def test_a_404_is_one_line_naming_the_url(server: FileServer, tmp_path: Path) -> None:
    name = 'faster_rcnn_hrnetv2p_w18_1x_coco_20200130-56651a6d.pth'
    missing = f'{ORIGIN}/mmdet/{name}'
    with pytest.raises(DirectDownloadError) as caught:
        fetch(missing, cache_dir=tmp_path, progress=False)
    error = caught.value
    message = str(error)
    assert '\n' not in message
    assert error.url == mirrored(missing) == f'{server.url}/mmdet/{name}'
    assert error.path == tmp_path / name
    assert error.url in message and str(error.path) in message and missing in message
    assert 'HTTP 404' in message
    assert 'pretrained_cfg_overlay=dict(file=PATH)' in message and MIRROR_ENV in message
    assert isinstance(error, OSError)
    assert names(tmp_path) == []


def test_a_404_on_every_request(server: FileServer, tmp_path: Path) -> None:
    server.not_found = True
    with pytest.raises(DirectDownloadError, match='HTTP 404'):
        fetch(URL, cache_dir=tmp_path, progress=False)
    assert server.requests == [('HEAD', PATH)]


def test_the_error_pickles_with_its_attributes(server: FileServer, tmp_path: Path) -> None:
    server.not_found = True
    with pytest.raises(DirectDownloadError) as caught:
        fetch(URL, cache_dir=tmp_path, progress=False)
    again = pickle.loads(pickle.dumps(caught.value))
    assert (str(again), again.url, again.path, again.reason) == (
        str(caught.value),
        caught.value.url,
        caught.value.path,
        caught.value.reason,
    )


# -- offline, stalls, interruptions


def test_nothing_listening_fails_in_under_a_second(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FileServer({PATH: DATA}) as srv:
        url = srv.url
    monkeypatch.setenv(MIRROR_ENV, url)  # the server is stopped: its port refuses connections
    start = time.monotonic()
    with pytest.raises(DirectDownloadError, match='connection refused') as caught:
        fetch(URL, cache_dir=tmp_path, progress=False)
    assert time.monotonic() - start < 1.0
    assert '\n' not in str(caught.value) and url in str(caught.value)
    assert names(tmp_path) == []


@pytest.mark.parametrize('switch', ['HRNET_ZOO_OFFLINE', 'HF_HUB_OFFLINE'])
def test_offline_with_a_cold_cache_fails_at_once_without_network(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, switch: str
) -> None:
    monkeypatch.setenv(switch, '1')
    start = time.monotonic()
    with pytest.raises(DirectDownloadError) as caught:
        fetch(URL, cache_dir=tmp_path, progress=False)
    assert time.monotonic() - start < 1.0
    message = str(caught.value)
    assert f'offline ({switch}=1) and not in the cache' in message
    assert 'pretrained_cfg_overlay=dict(file=PATH)' in message and str(tmp_path / NAME) in message
    assert '\n' not in message
    assert server.requests == []


def test_a_warm_cache_needs_no_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FileServer({PATH: DATA}) as srv:
        monkeypatch.setenv(MIRROR_ENV, srv.url)
        path = fetch(URL, cache_dir=tmp_path, progress=False)
    sources._verified.clear()  # as in a new process: the cached file is hashed again, and still matches
    assert fetch(URL, cache_dir=tmp_path, progress=False) == path  # nothing listens any more
    monkeypatch.setenv('HRNET_ZOO_OFFLINE', '1')
    assert fetch(URL, cache_dir=tmp_path, progress=False).read_bytes() == DATA


def test_a_corrupt_cached_file_is_downloaded_again(server: FileServer, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / NAME).write_bytes(DATA[:-1] + b'!')
    monkeypatch.setenv('HRNET_ZOO_OFFLINE', '1')
    with pytest.raises(DirectDownloadError, match='the cached file does not match'):
        fetch(URL, cache_dir=tmp_path, progress=False)
    monkeypatch.delenv('HRNET_ZOO_OFFLINE')
    assert fetch(URL, cache_dir=tmp_path, progress=False).read_bytes() == DATA
    assert server.requests == [('HEAD', PATH), ('GET', PATH)]


def test_a_server_that_never_answers_fails_within_the_connect_timeout(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.stall = True
    monkeypatch.setenv(sources.CONNECT_TIMEOUT_ENV, '0.3')
    start = time.monotonic()
    with pytest.raises(DirectDownloadError, match=r'no answer within 0\.3 s'):
        fetch(URL, cache_dir=tmp_path, progress=False)
    assert time.monotonic() - start < 1.0
    assert names(tmp_path) == []


def test_a_transfer_that_stalls_fails_within_the_read_timeout(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.stall_after = 1000
    monkeypatch.setenv(sources.READ_TIMEOUT_ENV, '0.5')
    start = time.monotonic()
    with pytest.raises(DirectDownloadError, match=r'stalled \(no data for 0\.5 s\)'):
        fetch(URL, cache_dir=tmp_path, progress=False)
    assert time.monotonic() - start < 3.0
    assert names(tmp_path) == []


_ALONE = 'HRNET_ZOO_TEST_SIGINT_ALONE'


@pytest.mark.subprocess
@pytest.mark.skipif(not hasattr(signal, 'pthread_kill'), reason='needs POSIX signals')
def test_ctrl_c_halfway_leaves_nothing_in_a_process_of_its_own() -> None:
    """A real SIGINT mid-download, in a fresh pytest process: in the full suite's process, whatever native threads
    earlier tests left (oneDNN, OpenVINO) make a signal at a random point a gamble with the whole run."""
    env = {**os.environ, _ALONE: '1'}
    test = f'{__file__}::test_ctrl_c_halfway_leaves_nothing'
    result = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', test], env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert '1 passed' in result.stdout


@pytest.mark.skipif(not os.environ.get(_ALONE), reason='runs in a process of its own (the test above)')
def test_ctrl_c_halfway_leaves_nothing(server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip('signals reach the main thread only')
    server.stall_after = len(DATA) // 3
    monkeypatch.setenv(sources.READ_TIMEOUT_ENV, '20')

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    def press_ctrl_c() -> None:
        if server.stalled.wait(10):  # a third of the file is written, the rest does not come
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, interrupt)
    presser = threading.Thread(target=press_ctrl_c)
    try:
        presser.start()
        with pytest.raises(KeyboardInterrupt):
            fetch(URL, cache_dir=tmp_path, progress=False)
    finally:
        presser.join()
        signal.signal(signal.SIGINT, previous)
    assert names(tmp_path) == []
    server.stall_after = None
    assert fetch(URL, cache_dir=tmp_path, progress=False).read_bytes() == DATA


def test_stale_partial_files_are_swept_and_live_ones_kept(server: FileServer, tmp_path: Path) -> None:
    stale = tmp_path / f'{NAME}.{"a" * 32}.partial'
    nested = tmp_path / f'{NAME}.{"b" * 32}.partial.{"c" * 32}.partial'
    live = tmp_path / f'{NAME}.{"d" * 32}.partial'
    other = tmp_path / 'someone-elses.partial'
    for p in (stale, nested, live, other):
        p.write_bytes(b'x')
    old = time.time() - 2 * sources.STALE_PARTIAL_S
    for p in (stale, nested, other):
        os.utime(p, (old, old))
    fetch(URL, cache_dir=tmp_path, progress=False)
    assert names(tmp_path) == sorted([NAME, live.name, other.name])


def test_concurrent_fetches_share_one_file(server: FileServer, tmp_path: Path) -> None:
    results: list[object] = []

    def one() -> None:
        try:
            results.append(fetch(URL, cache_dir=tmp_path, progress=False))
        except Exception as exc:  # reported below
            results.append(exc)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [tmp_path / NAME] * 4
    assert names(tmp_path) == [NAME] and (tmp_path / NAME).read_bytes() == DATA


# -- pure functions


@pytest.mark.parametrize(
    'mirror, url, expected',
    [
        ('http://127.0.0.1:8123', URL, 'http://127.0.0.1:8123' + PATH),
        ('http://127.0.0.1:8123/', URL, 'http://127.0.0.1:8123' + PATH),
        ('https://mirror.example/some/prefix', URL, 'https://mirror.example/some/prefix' + PATH),
        ('https://mirror.example/some/prefix/', URL, 'https://mirror.example/some/prefix' + PATH),
        ('https://mirror.example:8443', 'http://example.com:8080/a/b.pth', 'https://mirror.example:8443/a/b.pth'),
        ('http://127.0.0.1:8123', 'https://example.com/a/b.pth?raw=1', 'http://127.0.0.1:8123/a/b.pth?raw=1'),
        ('http://127.0.0.1:8123', 'https://example.com/a/b.pth#frag', 'http://127.0.0.1:8123/a/b.pth'),
        ('http://127.0.0.1:8123', 'file:///tmp/b.pth', 'file:///tmp/b.pth'),
        ('', URL, URL),
        ('  ', URL, URL),
    ],
)
def test_mirrored(mirror: str, url: str, expected: str) -> None:
    assert mirrored(url, mirror) == expected


def test_mirrored_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert mirrored(URL) == URL
    monkeypatch.setenv(MIRROR_ENV, 'https://mirror.example/some/prefix')
    assert mirrored(URL) == 'https://mirror.example/some/prefix' + PATH


@pytest.mark.parametrize('mirror', ['mirror.example', 'ftp://mirror.example', 'http://', 'http://m.example/?a=1'])
def test_a_mirror_that_is_no_url_is_refused(mirror: str) -> None:
    with pytest.raises(ValueError, match=MIRROR_ENV):
        mirrored(URL, mirror)


@pytest.mark.parametrize(
    'name, expected',
    [
        ('resnet18-f37072fd.pth', 'f37072fd'),
        ('hrnetv2_w18-93db27d0.pth', '93db27d0'),
        ('fcn_hr18_512x1024_40k_cityscapes_20200601_014216-93db27d0.pth', '93db27d0'),
        ('faster_rcnn_hrnetv2p_w18_1x_coco_20200130-56651a6d.pth', '56651a6d'),
        ('hrnet_w32_coco_256x192-c78dce93_20200708.pth', 'c78dce93'),
        ('hrnet_w32_coco_256x192_c78dce93-20200708.pth', 'c78dce93'),
        ('hrnet-w18_3rdparty_8xb32_in1k_20220120-0c10b180.pth', '0c10b180'),
        ('model-93db27d0.pth.tar', '93db27d0'),
        ('model-93db27d0', '93db27d0'),
        ('model-93db27d0ab12.pth', '93db27d0ab12'),
        ('mmdet_v2.0_model-93db27d0.pth', '93db27d0'),
        ('https://download.openmmlab.com/a/b/model-93db27d0.pth?versionId=3', '93db27d0'),
        ('/cache/checkpoints/model-93db27d0.pth', '93db27d0'),
        ('hrnetv2_w18_imagenet_pretrained.pth', None),
        ('hrnet_w18_small_model_v1.pth', None),
        ('model-20200708.pth', None),  # a date, not a hash
        ('model_20200601_014216.pth', None),
        ('model-93db27d.pth', None),  # 7 digits
        ('model-93DB27D0.pth', None),  # the convention is lower case
        ('model-93db27dg.pth', None),
        ('model_93db27d0.pth', None),  # a hash follows "-"
        ('', None),
    ],
)
def test_hash_prefix_of(name: str, expected: str | None) -> None:
    assert hash_prefix_of(name) == expected


def test_cache_path(hub_dir: Path, tmp_path: Path) -> None:
    assert cache_path(URL) == hub_dir / 'checkpoints' / NAME
    assert cache_path(URL + '?raw=1', cache_dir=tmp_path / 'mine') == tmp_path / 'mine' / NAME
    with pytest.raises(ValueError, match='names no file'):
        cache_path(ORIGIN + '/mmpose/')


@pytest.mark.parametrize('prefix', ['93db27d', 'xyzxyzxy', '93db27d0' * 9])
def test_a_malformed_hash_prefix_is_refused(prefix: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='hash_prefix'):
        fetch(URL, hash_prefix=prefix, cache_dir=tmp_path)


def test_an_explicit_hash_prefix_is_accepted_in_any_case(server: FileServer, tmp_path: Path) -> None:
    digest = hashlib.sha256(DATA).hexdigest()
    assert fetch(ORIGIN + PLAIN, hash_prefix=digest[:12].upper(), cache_dir=tmp_path, progress=False).is_file()
