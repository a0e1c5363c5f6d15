"""hrnet_zoo.hub.server against the unmodified huggingface_hub client and timm, all on 127.0.0.1."""

# ruff: noqa: E402 - the server must be running, and HF_ENDPOINT set, before huggingface_hub is imported
from __future__ import annotations

try:
    import hub_fixtures
except ImportError:  # tests/ imported as a package
    from tests import hub_fixtures

hub_fixtures.ensure_session_hub()  # no-op under a conftest.py that has already started it

import ast
import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest
import safetensors.torch
import timm
import torch
from hub_faults import FaultyHubServer
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from hrnet_zoo.hub.server import HubServer
from hrnet_zoo.hub.store import parse_card_data

hub = hub_fixtures.hub
hf_home = hub_fixtures.hf_home
hub_repo_id = hub_fixtures.hub_repo_id

REPO_ROOT = Path(__file__).resolve().parents[1]
README = '---\nlicense: mit\ntags:\n- hrnet\n- vision\nlibrary_name: timm\n---\n# A test model\n'


def _request(
    url: str, method: str, path: str, body: bytes = b'', headers: dict[str, str] | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One raw HTTP exchange, for what the client never sends (bad uploads, broken commits, Range)."""
    conn = http.client.HTTPConnection(urlsplit(url).netloc, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def _model_folder(folder: Path, note: str) -> Path:
    """A folder like a timm upload: safetensors weights (LFS), config.json and README.md (regular), a subfolder."""
    (folder / 'docs').mkdir(parents=True)
    safetensors.torch.save_file({'w': torch.arange(24.0).reshape(4, 6)}, folder / 'model.safetensors')
    (folder / 'config.json').write_text(json.dumps({'architecture': 'x', 'note': note}))
    (folder / 'README.md').write_text(README)
    (folder / 'docs' / 'notes.txt').write_text(note)
    return folder


@pytest.fixture(scope='module')
def fault_repo() -> Iterator[tuple[str, bytes]]:
    """A repo holding a 300 kB LFS file, shared by the fault tests (each downloads into a fresh cache)."""
    repo_id, data = f'acme/faults-{uuid.uuid4().hex[:8]}', os.urandom(300_000)
    HfApi().create_repo(repo_id)
    HfApi().upload_file(path_or_fileobj=data, path_in_repo='weights.bin', repo_id=repo_id)
    yield repo_id, data
    HfApi().delete_repo(repo_id)


def _download(fault_repo: tuple[str, bytes], cache_dir: Path) -> Path:
    return Path(hf_hub_download(fault_repo[0], 'weights.bin', cache_dir=cache_dir))


def _count(hub: HubServer, method: str, suffix: str) -> int:
    return sum(1 for m, p in hub.requests if m == method and p.endswith(suffix))


# -- repos, uploads, downloads ---------------------------------------------------------------------------------------


def test_create_repo_exist_ok_and_delete(hub: HubServer, hub_repo_id: str) -> None:
    api = HfApi()
    url = api.create_repo(hub_repo_id)
    assert url == f'{hub.url}/{hub_repo_id}' and url.repo_id == hub_repo_id
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_repo(hub_repo_id)
    assert conflict.value.response.status_code == 409
    assert api.create_repo(hub_repo_id, exist_ok=True) == url
    assert api.list_repo_files(hub_repo_id) == ['.gitattributes']  # the Hub's initial commit
    assert '*.safetensors filter=lfs' in Path(hf_hub_download(hub_repo_id, '.gitattributes')).read_text()
    api.delete_repo(hub_repo_id)
    assert not api.repo_exists(hub_repo_id)
    api.delete_repo(hub_repo_id, missing_ok=True)


def test_upload_folder_lfs_and_regular_then_download(
    hub: HubServer, hub_repo_id: str, hf_home: Path, tmp_path: Path
) -> None:
    api = HfApi()
    api.create_repo(hub_repo_id)
    folder = _model_folder(tmp_path / 'model', 'v1')
    weights = (folder / 'model.safetensors').read_bytes()
    sha256 = hashlib.sha256(weights).hexdigest()

    commit = api.upload_folder(repo_id=hub_repo_id, folder_path=folder)

    # Only the safetensors file went through LFS; the others were inline in the commit.
    assert [p for m, p in hub.requests if m == 'PUT'] == [f'/_lfs/{sha256}']
    assert ('POST', f'/{hub_repo_id}.git/info/lfs/objects/batch') in hub.requests
    assert sorted(api.list_repo_files(hub_repo_id)) == [
        '.gitattributes',
        'README.md',
        'config.json',
        'docs/notes.txt',
        'model.safetensors',
    ]
    info = api.model_info(hub_repo_id, files_metadata=True)
    assert info.sha == commit.oid and len(info.sha) == 40
    lfs = {s.rfilename: s.lfs.sha256 if s.lfs else None for s in info.siblings}
    assert lfs['model.safetensors'] == sha256 and lfs['config.json'] is None
    assert info.card_data['license'] == 'mit' and info.library_name == 'timm' and 'hrnet' in info.tags
    for name in ('model.safetensors', 'config.json', 'README.md', 'docs/notes.txt'):
        path = hf_hub_download(hub_repo_id, name, cache_dir=hf_home)
        assert Path(path).read_bytes() == (folder / name).read_bytes()
        assert f'/snapshots/{commit.oid}/' in path

    top = {e.path: type(e).__name__ for e in api.list_repo_tree(hub_repo_id)}
    assert top['docs'] == 'RepoFolder' and 'docs/notes.txt' not in top
    assert [e.path for e in api.list_repo_tree(hub_repo_id, path_in_repo='docs')] == ['docs/notes.txt']
    found = api.get_paths_info(hub_repo_id, ['model.safetensors', 'docs', 'missing.txt'])
    assert [(e.path, type(e).__name__) for e in found] == [('model.safetensors', 'RepoFile'), ('docs', 'RepoFolder')]
    assert found[0].lfs.sha256 == sha256 and found[0].size == len(weights)

    # Unchanged files are recognised from the preupload oids: no upload, no commit.
    hub.requests.clear()
    assert api.upload_folder(repo_id=hub_repo_id, folder_path=folder).oid == commit.oid
    assert not [r for r in hub.requests if r[0] == 'PUT' or '/commit/' in r[1]]


def test_pinned_revision_and_snapshot_download(hub_repo_id: str, hf_home: Path) -> None:
    api = HfApi()
    api.create_repo(hub_repo_id)
    first = api.upload_file(path_or_fileobj=b'{"v": 1}', path_in_repo='config.json', repo_id=hub_repo_id)
    second = api.upload_file(path_or_fileobj=b'{"v": 2}', path_in_repo='config.json', repo_id=hub_repo_id)

    old = hf_hub_download(hub_repo_id, 'config.json', revision=first.oid, cache_dir=hf_home)
    assert Path(old).read_bytes() == b'{"v": 1}'
    assert Path(hf_hub_download(hub_repo_id, 'config.json', cache_dir=hf_home)).read_bytes() == b'{"v": 2}'
    snapshot = Path(snapshot_download(hub_repo_id, cache_dir=hf_home))
    assert snapshot.name == second.oid and (snapshot / 'config.json').read_bytes() == b'{"v": 2}'
    pinned = Path(snapshot_download(hub_repo_id, revision=first.oid, cache_dir=hf_home))
    assert (pinned / 'config.json').read_bytes() == b'{"v": 1}'
    commits = api.list_repo_commits(hub_repo_id)
    assert [c.commit_id for c in commits[:2]] == [second.oid, first.oid] and len(commits) == 3


def test_dataset_repos_live_under_their_url_prefix(hub: HubServer, hub_repo_id: str, hf_home: Path) -> None:
    api = HfApi()
    assert api.create_repo(hub_repo_id, repo_type='dataset') == f'{hub.url}/datasets/{hub_repo_id}'
    api.upload_file(path_or_fileobj=b'a,b\n', path_in_repo='data/train.csv', repo_id=hub_repo_id, repo_type='dataset')
    path = hf_hub_download(hub_repo_id, 'data/train.csv', repo_type='dataset', cache_dir=hf_home)
    assert Path(path).read_bytes() == b'a,b\n'
    assert api.list_repo_files(hub_repo_id, repo_type='dataset') == ['.gitattributes', 'data/train.csv']
    assert not api.repo_exists(hub_repo_id)  # no model repo of that name


def test_missing_repo_revision_and_file_raise_hub_errors(hub: HubServer, hub_repo_id: str, hf_home: Path) -> None:
    api = HfApi()
    api.create_repo(hub_repo_id)
    api.upload_file(path_or_fileobj=b'{}', path_in_repo='config.json', repo_id=hub_repo_id)
    assert api.file_exists(hub_repo_id, 'config.json')
    assert not api.file_exists(hub_repo_id, 'pytorch_model.bin')
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(hub_repo_id, 'pytorch_model.bin', cache_dir=hf_home)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download('acme/no-such-repo', 'config.json', cache_dir=hf_home)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info('acme/no-such-repo')
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(hub_repo_id, 'config.json', revision='no-such-branch', cache_dir=hf_home)
    with pytest.raises(RevisionNotFoundError):
        api.model_info(hub_repo_id, revision='0' * 40)

    status, headers, body = _request(hub.url, 'GET', f'/{hub_repo_id}/resolve/main/nope.txt')
    assert status == 404 and headers['X-Error-Code'] == 'EntryNotFound' and 'nope.txt' in json.loads(body)['error']
    assert headers['X-Repo-Commit'] == api.model_info(hub_repo_id).sha


def test_resolve_headers_and_range_requests(hub: HubServer, hub_repo_id: str) -> None:
    data = bytes(range(256)) * 4  # a NUL byte: stored in LFS
    api = HfApi()
    api.create_repo(hub_repo_id)
    sha = api.upload_file(path_or_fileobj=data, path_in_repo='blob.dat', repo_id=hub_repo_id).oid
    etag = f'"{hashlib.sha256(data).hexdigest()}"'

    status, headers, _ = _request(hub.url, 'HEAD', f'/{hub_repo_id}/resolve/{sha}/blob.dat')
    assert status == 200 and headers['X-Repo-Commit'] == sha and headers['Content-Length'] == '1024'
    assert headers['ETag'] == etag and headers['X-Linked-Etag'] == etag and headers['X-Linked-Size'] == '1024'
    status, headers, body = _request(
        hub.url, 'GET', f'/{hub_repo_id}/resolve/main/blob.dat', headers={'Range': 'bytes=1000-'}
    )
    assert (status, headers['Content-Range'], body) == (206, 'bytes 1000-1023/1024', data[1000:])
    status, headers, _ = _request(
        hub.url, 'GET', f'/{hub_repo_id}/resolve/main/blob.dat', headers={'Range': 'bytes=2000-'}
    )
    assert (status, headers['Content-Range']) == (416, 'bytes */1024')


def test_commit_with_missing_lfs_blob_is_rejected_atomically(hub: HubServer, hub_repo_id: str) -> None:
    api = HfApi()
    api.create_repo(hub_repo_id)
    head = api.model_info(hub_repo_id).sha
    lines = [
        {'key': 'header', 'value': {'summary': 'broken', 'description': ''}},
        {'key': 'file', 'value': {'path': 'ok.txt', 'content': 'aGk=', 'encoding': 'base64'}},
        {'key': 'lfsFile', 'value': {'path': 'w.safetensors', 'algo': 'sha256', 'oid': 'ab' * 32, 'size': 10}},
    ]
    payload = b''.join(json.dumps(line).encode() + b'\n' for line in lines)
    commit_path = f'/api/models/{hub_repo_id}/commit/main'
    ndjson = {'Content-Type': 'application/x-ndjson'}

    status, _, body = _request(hub.url, 'POST', commit_path, payload, ndjson)
    assert status == 422 and 'ab' * 32 in json.loads(body)['error']
    status, headers, _ = _request(hub.url, 'POST', commit_path, payload[:40] + b'\n', ndjson)
    assert status == 400 and 'Malformed' in headers['X-Error-Message']
    assert api.model_info(hub_repo_id).sha == head
    assert api.list_repo_files(hub_repo_id) == ['.gitattributes']  # ok.txt was not applied either


def test_parent_commit_mismatch_is_412(hub_repo_id: str) -> None:
    api = HfApi()
    api.create_repo(hub_repo_id)
    first = api.upload_file(path_or_fileobj=b'1', path_in_repo='a.txt', repo_id=hub_repo_id)
    second = api.upload_file(path_or_fileobj=b'2', path_in_repo='a.txt', repo_id=hub_repo_id)
    add = [CommitOperationAdd('b.txt', b'b')]
    with pytest.raises(HfHubHTTPError) as stale:
        api.create_commit(hub_repo_id, add, commit_message='stale', parent_commit=first.oid)
    assert stale.value.response.status_code == 412
    assert api.create_commit(hub_repo_id, add, commit_message='fresh', parent_commit=second.oid).oid != second.oid


def test_branches_tags_and_deletions(hub_repo_id: str, hf_home: Path) -> None:
    api = HfApi()
    api.create_repo(hub_repo_id)
    for path in ('a.txt', 'dir/b.txt', 'dir/sub/c.txt'):
        api.upload_file(path_or_fileobj=path.encode(), path_in_repo=path, repo_id=hub_repo_id)
    api.create_branch(hub_repo_id, branch='feature/x')  # travels as feature%2Fx
    with pytest.raises(HfHubHTTPError) as exists:
        api.create_branch(hub_repo_id, branch='feature/x')
    assert exists.value.response.status_code == 409
    api.create_branch(hub_repo_id, branch='feature/x', exist_ok=True)
    dev = api.upload_file(path_or_fileobj=b'dev', path_in_repo='a.txt', repo_id=hub_repo_id, revision='feature/x')
    api.create_tag(hub_repo_id, tag='v1', revision='feature/x')

    assert Path(hf_hub_download(hub_repo_id, 'a.txt', revision='v1', cache_dir=hf_home)).read_bytes() == b'dev'
    assert Path(hf_hub_download(hub_repo_id, 'a.txt', cache_dir=hf_home)).read_bytes() == b'a.txt'
    refs = api.list_repo_refs(hub_repo_id)
    assert {b.name for b in refs.branches} == {'main', 'feature/x'}
    assert [(t.name, t.ref, t.target_commit) for t in refs.tags] == [('v1', 'refs/tags/v1', dev.oid)]

    api.delete_file('a.txt', hub_repo_id)
    api.delete_folder('dir', hub_repo_id)
    assert api.list_repo_files(hub_repo_id) == ['.gitattributes']
    with pytest.raises(EntryNotFoundError):
        api.delete_file('a.txt', hub_repo_id)
    api.delete_tag(hub_repo_id, tag='v1')
    api.delete_branch(hub_repo_id, branch='feature/x')
    refs = api.list_repo_refs(hub_repo_id)
    assert ([b.name for b in refs.branches], refs.tags) == (['main'], [])
    with pytest.raises(HfHubHTTPError) as protected:
        api.delete_branch(hub_repo_id, branch='main')
    assert protected.value.response.status_code == 403


def test_lfs_put_checks_sha256_and_stores_atomically(hub: HubServer) -> None:
    data = os.urandom(5000)
    oid = hashlib.sha256(data).hexdigest()
    status, _, body = _request(hub.url, 'PUT', f'/_lfs/{oid}', data[:-1] + b'!')
    assert status == 400 and 'sha256' in json.loads(body)['error']
    assert not hub.store.has_blob(oid)
    assert not any(hub.store.root.joinpath('tmp').iterdir())  # the rejected upload left nothing behind
    assert _request(hub.url, 'PUT', f'/_lfs/{oid}', data)[0] == 200
    assert hub.store.blob_path(oid).read_bytes() == data


def test_served_root_persists_as_a_mirror(tmp_path: Path, hf_home: Path) -> None:
    with HubServer(tmp_path / 'mirror') as first:
        api = HfApi(endpoint=first.url)
        api.create_repo('acme/mirrored')
        sha = api.upload_file(path_or_fileobj=b'\0weights', path_in_repo='w.bin', repo_id='acme/mirrored').oid
    assert (tmp_path / 'mirror' / 'blobs' / hashlib.sha256(b'\0weights').hexdigest()).is_file()
    with HubServer(tmp_path / 'mirror') as second:
        assert HfApi(endpoint=second.url).model_info('acme/mirrored').sha == sha
        path = hf_hub_download('acme/mirrored', 'w.bin', revision=sha, endpoint=second.url, cache_dir=hf_home)
        assert Path(path).read_bytes() == b'\0weights'


def test_token_guards_writes_and_is_never_echoed(
    tmp_path: Path, hf_home: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    token = f'hf_secret_{uuid.uuid4().hex}'
    (tmp_path / 'up').mkdir()
    (tmp_path / 'up' / 'model.safetensors').write_bytes(b'\0' * 100)
    with HubServer(tmp_path / 'hub', token=token, verbose=True) as server:
        anonymous, wrong = HfApi(endpoint=server.url, token=False), HfApi(endpoint=server.url, token='hf_wrong')
        authed = HfApi(endpoint=server.url, token=token)
        for api in (anonymous, wrong):
            with pytest.raises(HfHubHTTPError) as denied:
                api.create_repo('acme/locked', private=True)
            assert denied.value.response.status_code == 401 and token not in str(denied.value)
        authed.create_repo('acme/locked', private=True)
        authed.upload_folder(repo_id='acme/locked', folder_path=tmp_path / 'up')  # the LFS PUT carries no token
        with pytest.raises(HfHubHTTPError) as denied:
            anonymous.upload_file(path_or_fileobj=b'x', path_in_repo='x.txt', repo_id='acme/locked')
        assert denied.value.response.status_code == 401
        monkeypatch.setenv('HF_TOKEN', token)
        HfApi(endpoint=server.url).upload_file(path_or_fileobj=b'x', path_in_repo='x.txt', repo_id='acme/locked')
        monkeypatch.delenv('HF_TOKEN')
        with pytest.raises(RepositoryNotFoundError):  # private repos are invisible without the token
            anonymous.model_info('acme/locked')
        assert sorted(authed.list_repo_files('acme/locked')) == ['.gitattributes', 'model.safetensors', 'x.txt']
        assert authed.whoami()['name'] == 'local'
    out, err = capfd.readouterr()
    assert '"POST /api/repos/create HTTP/1.1" 401' in err  # verbose logging is on...
    assert token not in out + err  # ...and never shows the token


def test_timm_loads_uploaded_weights_from_hf_hub(
    hub: HubServer, hub_repo_id: str, hf_home: Path, tmp_path: Path
) -> None:
    model = timm.create_model('test_resnet', num_classes=3)
    cfg = {k: v for k, v in model.pretrained_cfg.items() if isinstance(v, (str, int, float, list, tuple))}
    config = {'architecture': 'test_resnet', 'num_classes': 3, 'pretrained_cfg': cfg}
    (tmp_path / 'up').mkdir()
    (tmp_path / 'up' / 'config.json').write_text(json.dumps(config))
    safetensors.torch.save_file(model.state_dict(), tmp_path / 'up' / 'model.safetensors')
    api = HfApi()
    api.create_repo(hub_repo_id)
    api.upload_folder(repo_id=hub_repo_id, folder_path=tmp_path / 'up')

    loaded = timm.create_model(f'hf-hub:{hub_repo_id}', pretrained=True, cache_dir=hf_home)
    assert type(loaded) is type(model) and loaded.num_classes == 3
    expected = model.state_dict()
    assert all(torch.equal(tensor, expected[name]) for name, tensor in loaded.state_dict().items())
    assert ('GET', f'/{hub_repo_id}/resolve/main/model.safetensors') in hub.requests


# -- model card data ------------------------------------------------------------------------------------------------

NESTED_README = (
    '---\nlicense: mit\nlibrary_name: timm\nhrnet:\n  width: 18\n  stages: [1, 4]\nreleased: 2024-05-01\n---\n'
)
NESTED_CARD = {
    'license': 'mit',
    'library_name': 'timm',
    'hrnet': {'width': 18, 'stages': [1, 4]},
    'released': '2024-05-01',
}
BROKEN_READMES = (
    '---\nlicense: [mit\n---\n# unclosed list\n',
    '---\n- a list\n- not a mapping\n---\n',
    '---\n1: a key CardData refuses\n---\n',
)


def test_card_data_parses_yaml_and_is_none_without_a_readable_front_matter(caplog: pytest.LogCaptureFixture) -> None:
    assert parse_card_data(README) == {'license': 'mit', 'tags': ['hrnet', 'vision'], 'library_name': 'timm'}
    assert parse_card_data(NESTED_README) == NESTED_CARD  # nested mappings parse; dates arrive as JSON strings
    assert parse_card_data('---\r\nlicense: mit\r\n---\r\n') == {'license': 'mit'}
    for text in ('', '# A model card without front matter\n', 'license: mit\n', '---\nlicense: mit\n'):
        assert parse_card_data(text) is None, text
    for text in BROKEN_READMES:
        caplog.clear()
        assert parse_card_data(text) is None, text
        assert 'front matter does not parse' in caplog.text, text


def test_model_info_serves_nested_card_data_and_survives_a_broken_one(hub: HubServer, hub_repo_id: str) -> None:
    api = HfApi()
    api.create_repo(hub_repo_id)
    api.upload_file(path_or_fileobj=NESTED_README.encode(), path_in_repo='README.md', repo_id=hub_repo_id)
    info = api.model_info(hub_repo_id)
    assert info.card_data['hrnet'] == NESTED_CARD['hrnet'] and info.card_data['released'] == '2024-05-01'
    assert info.library_name == 'timm' and info.tags == ['timm']
    for text in (*BROKEN_READMES, '# No front matter\n'):
        api.upload_file(path_or_fileobj=text.encode(), path_in_repo='README.md', repo_id=hub_repo_id)
        status, _, body = _request(hub.url, 'GET', f'/api/models/{hub_repo_id}')
        assert status == 200 and 'cardData' not in json.loads(body), text  # the client reads {} as None too
        info = api.model_info(hub_repo_id)
        assert info.card_data is None and info.tags == [] and info.library_name is None, text


# -- fault injection -------------------------------------------------------------------------------------------------


def test_fault_status_500_on_metadata_is_retried(
    hub: FaultyHubServer, fault_repo: tuple[str, bytes], hf_home: Path
) -> None:
    hub.inject('status_500', path_contains='/no/such/path')  # never matches, so never fires
    hub.inject('status_500', method='HEAD', path_contains=fault_repo[0])
    assert _download(fault_repo, hf_home).read_bytes() == fault_repo[1]
    assert _count(hub, 'HEAD', 'weights.bin') == 2  # the client retried the HEAD once


def test_fault_status_500_on_body_or_api_is_fatal(
    hub: FaultyHubServer, fault_repo: tuple[str, bytes], hf_home: Path
) -> None:
    hub.inject('status_500', method='GET', path_contains='/resolve/')
    with pytest.raises(HfHubHTTPError) as failed:
        _download(fault_repo, hf_home)
    assert failed.value.response.status_code == 500 and _count(hub, 'GET', 'weights.bin') == 1
    hub.inject('status_500', method='GET', path_contains='/api/models/', times=2)
    for _ in range(2):  # API calls are not retried
        with pytest.raises(HfHubHTTPError):
            HfApi().model_info(fault_repo[0])
    assert HfApi().model_info(fault_repo[0]).sha  # the fault cleared after two hits


def test_fault_drop_mid_body_is_resumed_with_range(
    hub: FaultyHubServer, fault_repo: tuple[str, bytes], hf_home: Path
) -> None:
    hub.inject('drop', method='GET')
    assert _download(fault_repo, hf_home).read_bytes() == fault_repo[1]
    assert _count(hub, 'GET', 'weights.bin') == 2


def test_fault_drop_on_head_surfaces_as_protocol_error(
    hub: FaultyHubServer, fault_repo: tuple[str, bytes], hf_home: Path
) -> None:
    hub.inject('drop', method='HEAD')
    with pytest.raises(httpx2.RemoteProtocolError):  # huggingface_hub 2.4.0 neither retries nor wraps this
        _download(fault_repo, hf_home)
    assert _download(fault_repo, hf_home).read_bytes() == fault_repo[1]


def test_fault_short_body_is_resumed(hub: FaultyHubServer, fault_repo: tuple[str, bytes], hf_home: Path) -> None:
    hub.inject('short_body', method='GET', path_contains='weights.bin')
    assert _download(fault_repo, hf_home).read_bytes() == fault_repo[1]
    assert _count(hub, 'GET', 'weights.bin') == 2


def test_fault_stall_times_out_and_is_retried(
    hub: FaultyHubServer, fault_repo: tuple[str, bytes], hf_home: Path
) -> None:
    hub.stall_seconds = 10
    hub.inject('stall', method='HEAD')
    start = time.monotonic()
    assert _download(fault_repo, hf_home).read_bytes() == fault_repo[1]
    assert time.monotonic() - start < hub.stall_seconds  # HF_HUB_ETAG_TIMEOUT=2 cut the stalled call short
    assert _count(hub, 'HEAD', 'weights.bin') == 2


def test_fault_bad_etag_misnames_the_cached_blob(
    hub: FaultyHubServer, fault_repo: tuple[str, bytes], hf_home: Path
) -> None:
    hub.inject('bad_etag', method='HEAD')
    path = _download(fault_repo, hf_home)
    assert path.read_bytes() == fault_repo[1]  # the client does not check content against the ETag...
    assert path.resolve().name != hashlib.sha256(fault_repo[1]).hexdigest()  # ...and files it under the wrong one


def _safe_request(url: str) -> object:
    try:
        return _request(url, 'GET', '/api/whoami-v2')
    except Exception as err:  # the assertion is that it fails
        return err


def test_stall_ends_promptly_when_the_server_stops(tmp_path: Path) -> None:
    server = FaultyHubServer(tmp_path / 'hub').start()
    server.inject('stall')
    results: list[object] = []
    client = threading.Thread(target=lambda: results.append(_safe_request(server.url)))
    client.start()
    deadline = time.monotonic() + 5
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    start = time.monotonic()
    server.stop()
    client.join(timeout=5)
    assert time.monotonic() - start < 3 and not client.is_alive()
    assert isinstance(results[0], Exception)  # connection closed with no answer


def test_inject_validates_its_arguments(hub: FaultyHubServer) -> None:
    with pytest.raises(ValueError, match='Unknown fault'):
        hub.inject('teapot')
    with pytest.raises(ValueError, match='times'):
        hub.inject('drop', times=0)


# -- layering --------------------------------------------------------------------------------------------------------

HUB_DIR = REPO_ROOT / 'hrnet_zoo' / 'hub'
SERVER_MODULES = ('server', 'store')  # what a loopback Hub needs, and all it may import of hrnet_zoo, besides:
SHARED_MODULES = ('files',)  # hrnet_zoo's standard-library-only helpers (checked by the same test)
SCANNED = [HUB_DIR / f'{stem}.py' for stem in SERVER_MODULES] + [HUB_DIR.parent / f'{s}.py' for s in SHARED_MODULES]
SCANNED.append(REPO_ROOT / 'tests' / 'hub_faults.py')
CARD_PARSER = ('store', 'parse_card_data')  # the one function that may import huggingface_hub, when called


def _imports(tree: ast.Module) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement, with the qualified name of the function or class it sits in ('' at module level)."""
    stack: list[tuple[ast.AST, str]] = [(tree, '')]
    while stack:
        node, where = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, where
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                stack.append((child, f'{where}.{child.name}'.lstrip('.')))
            else:
                stack.append((child, where))


def _import_allowed(node: ast.Import | ast.ImportFrom, module_stem: str, where: str) -> bool:
    if isinstance(node, ast.ImportFrom) and node.level:
        # `from .store import x` or `from . import store`; anything else reaches into the rest of hrnet_zoo
        names = [node.module] if node.module else [alias.name for alias in node.names]
        if node.level == 2:  # from the hub folder, `from ..files import x`
            return module_stem in SERVER_MODULES and all(name in SHARED_MODULES for name in names)
        return node.level == 1 and all(name in SERVER_MODULES for name in names)
    for name in [node.module or ''] if isinstance(node, ast.ImportFrom) else [alias.name for alias in node.names]:
        top = name.split('.')[0]
        if top == 'hrnet_zoo':
            ok = name in {f'hrnet_zoo.hub.{stem}' for stem in SERVER_MODULES} | {
                f'hrnet_zoo.{s}' for s in SHARED_MODULES
            }
        elif top == 'huggingface_hub':
            ok = (module_stem, where) == CARD_PARSER
        else:
            ok = top in sys.stdlib_module_names
        if not ok:
            return False
    return True


def test_server_modules_import_only_the_standard_library() -> None:
    offenders, in_functions = [], 0
    for path in SCANNED:
        stem = path.stem
        for node, where in _imports(ast.parse(path.read_text(), str(path))):
            in_functions += bool(where)
            if not _import_allowed(node, stem, where):
                offenders.append(f'{path.name}:{node.lineno} ({where or "module level"}): {ast.unparse(node)}')
    assert in_functions, 'the walk never reached a function body'  # parse_card_data imports inside itself
    assert not offenders, 'imports beyond the standard library and the server modules:\n' + '\n'.join(offenders)


def test_public_server_has_no_fault_injection(tmp_path: Path) -> None:
    import hrnet_zoo.hub.server as server_module

    assert 'FAULTS' not in server_module.__all__ and not hasattr(server_module, 'FAULTS')
    plain = HubServer(tmp_path / 'hub')
    assert not any(hasattr(plain, name) for name in ('inject', 'clear_faults', 'stall_seconds'))
    assert issubclass(FaultyHubServer, HubServer) and hasattr(FaultyHubServer(tmp_path / 'hub'), 'stall_seconds')


# -- command line ----------------------------------------------------------------------------------------------------


@pytest.mark.subprocess
def test_cli_serves_until_interrupted(tmp_path: Path) -> None:
    module = 'hrnet_zoo.hub.server'
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(REPO_ROOT), os.environ.get('PYTHONPATH', '')])}
    cmd = [sys.executable, '-m', module, '--root', str(tmp_path / 'root'), '--port', '0']
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    watchdog = threading.Timer(120, proc.kill)  # a hung server must fail the test, not hang it
    watchdog.start()
    try:
        lines = [proc.stdout.readline() for _ in range(5)]  # the last line is printed just before it waits
        endpoint = lines[2].split('HF_ENDPOINT=')[1].strip()
        assert lines[3].strip() == 'export HF_HUB_DISABLE_XET=1'
        status, _, body = _request(endpoint, 'GET', '/api/whoami-v2')
        assert status == 200 and json.loads(body)['name'] == 'local'
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0  # exiting with torch loaded takes seconds on a busy machine
    finally:
        watchdog.cancel()
        proc.kill()
        proc.stdout.close()
    assert (tmp_path / 'root' / 'blobs').is_dir()
