"""Integrity and security: bad weights files are refused before any parameter changes, with what did not match;
no code runs from a weights file; tokens never reach logs, cards or error text.

The loader under test is hrnet_zoo.integrity; timm's own ``pretrained=True`` path is exercised on a corrupted cache.
"""

from __future__ import annotations

import ast
import builtins
import functools
import json
import logging
import random
import shutil
import traceback
import uuid
from pathlib import Path

import huggingface_hub.constants
import pytest
import timm
import torch
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

import hrnet_zoo
from hrnet_zoo.cli import main as cli
from hrnet_zoo.hub.server import HubServer
from hrnet_zoo.publish.client import publish
from hrnet_zoo.publish.convert import convert_checkpoint
from hrnet_zoo.weights.checks import check_pretrained_file, load_pretrained_file
from hrnet_zoo.weights.io import (
    DIGEST_KEY,
    IntegrityError,
    audit_cache,
    read_safetensors_header,
    sha256_file,
    tensors_digest,
    verify_safetensors,
)
from hrnet_zoo.weights.pretrained import WeightsFetchError, checked_pretrained_filter, named_fetch_errors

pytestmark = pytest.mark.usefixtures('one_thread')

PACKAGE = Path(hrnet_zoo.__file__).parent
NAME = 'hrnetv2_w18_small_v1.cityscapes'
ARCH = 'hrnetv2_w18_small_v1'


def _rewrite(path: Path, tensors: dict, metadata: dict, digest: bool = True) -> Path:
    """Save ``tensors`` with ``metadata``, with a fresh digest (or none)."""
    metadata = {k: v for k, v in metadata.items() if k != DIGEST_KEY}
    if digest:
        metadata[DIGEST_KEY] = tensors_digest(tensors, metadata)
    save_file(tensors, str(path), metadata=metadata)
    return path


def _read(path: Path) -> tuple[dict, dict]:
    with safe_open(str(path), 'pt') as f:
        metadata = f.metadata()
    return load_file(path), metadata


@pytest.fixture(scope='module')
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real conversion of a random hrnetv2_w18_small_v1.cityscapes, its model.safetensors carrying the digest."""
    tmp = tmp_path_factory.mktemp('converted')
    torch.manual_seed(5)
    torch.save(timm.create_model(ARCH, num_classes=19).state_dict(), tmp / 'official.pth')
    folder = convert_checkpoint(tmp / 'official.pth', NAME, tmp / 'out')
    _rewrite(folder / 'model.safetensors', *_read(folder / 'model.safetensors'))  # convert.py adds it once patched
    return folder


@pytest.fixture
def folder(converted: Path, tmp_path: Path) -> Path:
    """A private copy of the converted folder, for a test to damage."""
    return Path(shutil.copytree(converted, tmp_path / 'model'))


def _model() -> torch.nn.Module:
    return timm.create_model(NAME)  # 19 classes, bilinear fuse upsampling: what the weights were trained with


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _refused(model: torch.nn.Module, path: Path, match: str, before: dict | None = None, **kwargs) -> str:
    """Loading ``path`` raises with ``match`` in the message, and leaves every parameter and buffer as it was."""
    before = _state(model) if before is None else before
    with pytest.raises((IntegrityError, FileNotFoundError, IsADirectoryError), match=match) as refused:
        load_pretrained_file(model, path, **kwargs)
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items()), 'a refused file changed the model'
    return str(refused.value)


# -- the digest ------------------------------------------------------------------------------------------------


def test_digest_covers_names_dtypes_shapes_bytes_and_metadata(converted):
    tensors, metadata = _read(converted / 'model.safetensors')
    digest = tensors_digest(tensors, metadata)
    assert digest == metadata[DIGEST_KEY]
    assert tensors_digest(dict(reversed(tensors.items())), metadata) == digest  # order does not matter
    strided = {k: v.t().contiguous().t() if v.dim() == 2 else v for k, v in tensors.items()}
    assert tensors_digest(strided, {**metadata, DIGEST_KEY: 'other'}) == digest  # nor memory layout, nor itself
    flipped = tensors['conv1.weight'].clone()
    flipped.view(torch.int32).view(-1)[7] ^= 1 << 3
    changes = {
        'one bit': ({**tensors, 'conv1.weight': flipped}, metadata),
        'a name': (
            {**{k: v for k, v in tensors.items() if k != 'bn1.bias'}, 'bn1.biaz': tensors['bn1.bias']},
            metadata,
        ),
        'a dtype': ({**tensors, 'bn1.bias': tensors['bn1.bias'].double()}, metadata),
        'a shape': ({**tensors, 'bn1.bias': tensors['bn1.bias'].reshape(2, -1)}, metadata),
        'a metadata value': (tensors, {**metadata, 'tag': 'lip'}),
        'a metadata key': (tensors, {**metadata, 'extra': ''}),
    }
    for what, (t, m) in changes.items():
        assert tensors_digest(t, m) != digest, what


# -- a file against a model ------------------------------------------------------------------------------------


def test_an_intact_file_loads(folder):
    model = _model()
    metadata = load_pretrained_file(
        model, folder / 'model.safetensors', expected_sha256=sha256_file(folder / 'model.safetensors')
    )
    assert metadata['arch'] == ARCH and metadata[DIGEST_KEY]
    tensors = load_file(folder / 'model.safetensors')
    state = model.state_dict()
    assert state.keys() == tensors.keys() and all(torch.equal(state[k], v) for k, v in tensors.items())


def test_truncated_or_extended_files_are_refused(folder):
    path = folder / 'model.safetensors'
    data = path.read_bytes()
    start = read_safetensors_header(path).data_start
    cuts = {
        0: 'shorter than the 8-byte header length',
        5: 'shorter than the 8-byte header length',
        8: 'header length field says',
        start - 1: 'header length field says',
        start: 'truncated: the header describes',
        start + 1: 'truncated: the header describes',
        len(data) // 2: f'truncated: the header describes {len(data)} bytes, the file has {len(data) // 2}',
        len(data) - 1: 'truncated',
    }
    model = _model()
    for cut, match in cuts.items():
        path.write_bytes(data[:cut])
        _refused(model, path, match)
    path.write_bytes(data + b'\0')
    _refused(model, path, 'has trailing bytes')
    path.unlink()
    _refused(model, path, 'not found')
    path.mkdir()
    _refused(model, path, 'is a directory')


def _flip(data: bytes, bit: int) -> bytes:
    byte = bit // 8
    return data[:byte] + bytes([data[byte] ^ (1 << bit % 8)]) + data[byte + 1 :]


def _flip_in_place(path: Path, bit: int) -> None:
    with path.open('r+b') as f:
        f.seek(bit // 8)
        byte = f.read(1)[0]
        f.seek(bit // 8)
        f.write(bytes([byte ^ (1 << bit % 8)]))


def test_every_sampled_bit_flip_is_refused(folder):
    """With the digest, a single flipped bit anywhere (length field, header, metadata, tensor data) is refused."""
    path = folder / 'model.safetensors'
    data = path.read_bytes()
    header = read_safetensors_header(path)
    metadata_end = data.index(b'}', 8) + 1  # __metadata__ is written first
    rng = random.Random(0)
    bits = list(range(64))  # the length field
    bits += [rng.randrange(8 * 8, 8 * metadata_end) for _ in range(24)]  # metadata, the digest included
    bits += [rng.randrange(8 * metadata_end, 8 * header.data_start) for _ in range(96)]  # tensor entries, padding
    bits += [rng.randrange(8 * header.data_start, 8 * len(data)) for _ in range(24)]  # tensor bytes
    model = _model()
    before = _state(model)
    for bit in bits:
        _flip_in_place(path, bit)
        _refused(model, path, '', before)
        _flip_in_place(path, bit)  # back to intact
    assert path.read_bytes() == data
    load_pretrained_file(model, path)  # the intact file still loads
    # Without a digest, a flip in tensor data is invisible to the structure (safetensors has no checksum):
    plain = _rewrite(folder / 'plain.safetensors', *_read(path), digest=False)
    _flip_in_place(plain, 8 * (read_safetensors_header(plain).data_start + 4 * 100))  # a float32's lowest bit
    verify_safetensors(plain)
    with pytest.raises(IntegrityError, match='records no tensors_sha256'):
        verify_safetensors(plain, require_digest=True)


def _config(folder: Path, **changes) -> None:
    config = json.loads((folder / 'config.json').read_text())
    for key, value in changes.items():
        if key in ('upsample_mode', 'align_corners'):
            config['model_args'][key] = value
        else:
            config[key] = value
    (folder / 'config.json').write_text(json.dumps(config))


@pytest.mark.parametrize(
    'changes, match',
    [
        (
            dict(architecture='hrnetv1_w18_small_v1'),
            "is for 'hrnetv1_w18_small_v1', but the model is hrnetv2_w18_small_v1",
        ),
        (dict(architecture='resnet50'), "is for 'resnet50'"),
        (dict(num_classes=21), 'num_classes=21, but the model has num_classes=19'),
        (dict(upsample_mode='nearest', align_corners=None), "trained with upsample_mode='nearest'.*'bilinear'"),
        (dict(align_corners=True), 'align_corners=True.*align_corners=False'),
    ],
)
def test_a_config_for_another_model_is_refused(folder, changes, match):
    _config(folder, **changes)
    _refused(_model(), folder / 'model.safetensors', match)


def test_an_unreadable_config_is_refused(folder):
    (folder / 'config.json').write_text('{"architecture": ')
    _refused(_model(), folder / 'model.safetensors', 'not a readable config.json')


@pytest.mark.parametrize(
    'source, match',
    [
        (
            'hrnetv2_w18_small_v2',
            r'holds w18_small_v2 weights \(.* 18 output channels\), but the model .* is w18_small_v1 \(16',
        ),
        (
            'hrnetv2_w18',
            r'holds w18 weights \(.* 18 output channels\), but the model hrnetv2_w18_small_v1 is w18_small_v1 \(16',
        ),
        ('hrnetv1_w18_small_v1', r'holds the pose head \(final_layer\) of hrnetv1, but the model .* segmentation head'),
        ('hrnetv2p_w18_small_v1', r'holds the HRFPN neck \(neck\) of hrnetv2p'),
    ],
)
def test_weights_of_another_width_or_head_are_refused(folder, source, match):
    head = source.partition('_')[0].removeprefix('hrnet')
    tensors = timm.create_model(source, num_classes={'v1': 17, 'v2': 19, 'v2p': 0}[head]).state_dict()
    path = _rewrite(folder / 'model.safetensors', tensors, {'format': 'pt'})
    (folder / 'config.json').unlink()
    message = _refused(_model(), path, match)
    assert '\n' not in message and len(message) < 400  # one line, not hundreds of size mismatches


def test_metadata_naming_another_architecture_is_refused(folder):
    path = folder / 'model.safetensors'
    tensors, metadata = _read(path)
    _rewrite(path, tensors, {**metadata, 'arch': 'hrnetv2_w48'})
    _refused(_model(), path, 'holds weights for hrnetv2_w48, but the model is hrnetv2_w18_small_v1')


def test_missing_unexpected_reshaped_retyped_and_nonfinite_tensors_are_refused(folder):
    path = folder / 'model.safetensors'
    tensors, metadata = _read(path)
    model = _model()
    cases = {
        'missing': ({k: v for k, v in tensors.items() if k != 'stage3.0.branches.1.0.conv2.weight'}, '1 missing'),
        'unexpected': ({**tensors, 'stage3.0.extra': torch.zeros(2)}, '1 unexpected: stage3.0.extra'),
        'reshaped': ({**tensors, 'bn2.weight': torch.ones(65)}, r'bn2.weight \[65\] \(model: \[64\]\)'),
        'retyped': ({**tensors, 'bn2.weight': torch.ones(64, dtype=torch.int32)}, 'dtype of another kind'),
        'nan': ({**tensors, 'bn2.bias': torch.full((64,), float('nan'))}, 'NaN or Inf values: bn2.bias'),
    }
    for tensors_, match in cases.values():
        _rewrite(path, tensors_, metadata)
        _refused(model, path, match)


def test_the_file_sha256_is_checked_when_known(folder):
    path = folder / 'model.safetensors'
    digest = sha256_file(path)
    message = _refused(_model(), path, 'but ab', expected_sha256='AB' * 32)
    assert digest in message
    load_pretrained_file(_model(), path, expected_sha256=digest.upper())


def test_backbone_only_weights_keep_the_models_head(folder):
    path = folder / 'model.safetensors'
    tensors, metadata = _read(path)
    _rewrite(path, {k: v for k, v in tensors.items() if not k.startswith('last_layer.')}, metadata)
    model = _model()
    head = {k: v.clone() for k, v in model.state_dict().items() if k.startswith('last_layer.')}
    load_pretrained_file(model, path)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in head.items())
    assert torch.equal(state['conv1.weight'], tensors['conv1.weight'])


def test_a_features_only_wrapper_is_not_an_hrnet(folder):
    with pytest.raises(TypeError, match='expected an HRNetV1 / HRNetV2 / HRNetV2p / HRNetV2-OCR model'):
        check_pretrained_file(timm.create_model(ARCH, features_only=True), folder / 'model.safetensors')


def test_convert_records_the_digest(tmp_path):
    torch.manual_seed(6)
    torch.save(timm.create_model(ARCH, num_classes=19).state_dict(), tmp_path / 'official.pth')
    folder = convert_checkpoint(tmp_path / 'official.pth', NAME, tmp_path / 'out')
    tensors, metadata = _read(folder / 'model.safetensors')
    assert metadata[DIGEST_KEY] == tensors_digest(tensors, metadata)
    verify_safetensors(folder / 'model.safetensors', require_digest=True)


# -- timm's own pretrained=True path on a corrupted cache --------------------------------------------------------


def test_timm_path_with_a_corrupted_cached_file(hub, hf_home, converted):
    repo_id = f'acme/corrupt-cache-{uuid.uuid4().hex[:8]}'
    publish(converted, repo_id, verify=False)
    published = load_file(converted / 'model.safetensors')
    timm.create_model(f'hf-hub:{repo_id}', pretrained=True, cache_dir=hf_home)
    assert audit_cache(hf_home) == []
    blob = next(p for p in hf_home.rglob('blobs/*') if p.stat().st_size > 100_000)
    data = blob.read_bytes()

    # Truncated: safetensors refuses it, with a message that names neither the file nor the repo (until
    # hrnet_zoo.models wraps it); every later create_model fails the same way until the cached file is deleted.
    blob.write_bytes(data[: len(data) // 2])
    with pytest.raises((SafetensorError, WeightsFetchError)) as raw:
        timm.create_model(f'hf-hub:{repo_id}', pretrained=True, cache_dir=hf_home)
    cause = raw.value.__cause__
    assert isinstance(cause, SafetensorError) and 'incomplete metadata, file not fully covered' in str(cause)
    kwargs = dict(pretrained_cfg=dict(hf_hub_id=repo_id, source='hf-hub'), cache_dir=hf_home)
    with pytest.raises(WeightsFetchError) as named, named_fetch_errors(ARCH, True, kwargs):
        timm.create_model(f'hf-hub:{repo_id}', pretrained=True, cache_dir=hf_home)
    message = str(named.value)
    assert repo_id in message and 'model.safetensors' in message and f'cached copy {hf_home}' in message
    assert 'delete it' in message and '\n' not in message
    assert [p for p in audit_cache(hf_home) if 'does not match its sha256 name' in p]

    # One flipped bit in tensor data: timm alone would load it silently; the recorded digest refuses it.
    blob.write_bytes(_flip(data, 8 * (len(data) - 1000)))
    with pytest.raises(IntegrityError, match=f'{repo_id} are corrupt'):
        timm.create_model(f'hf-hub:{repo_id}', pretrained=True, cache_dir=hf_home)
    model = timm.create_model(f'hf-hub:{repo_id}', pretrained=False, cache_dir=hf_home)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(IntegrityError, match=f'{repo_id} are corrupt: the cached .* does not match its recorded'):
        timm.models.load_pretrained(
            model, num_classes=19, filter_fn=functools.partial(checked_pretrained_filter, cache_dir=hf_home),
            cache_dir=hf_home,
        )  # fmt: skip
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert [p for p in audit_cache(hf_home) if 'does not match its sha256 name' in p]
    blob.write_bytes(data)  # repaired: the same path loads, and the cache audits clean
    timm.models.load_pretrained(
        model, num_classes=19, filter_fn=functools.partial(checked_pretrained_filter, cache_dir=hf_home),
        cache_dir=hf_home,
    )  # fmt: skip
    assert all(torch.equal(model.state_dict()[k], v) for k, v in published.items()) and audit_cache(hf_home) == []


def test_timm_filter_refuses_another_width_in_one_line():
    model = timm.create_model(ARCH, num_classes=19)
    other = timm.create_model('hrnetv2_w18', num_classes=19).state_dict()
    with pytest.raises(IntegrityError, match=r'holds w18 weights .* is w18_small_v1') as refused:
        timm.models.load_pretrained(model, pretrained_cfg=dict(state_dict=other), num_classes=19,
                                    filter_fn=checked_pretrained_filter)  # fmt: skip
    assert '\n' not in str(refused.value)


# -- no code runs from a weights file ----------------------------------------------------------------------------

_UNPICKLERS = {
    ('pickle', 'load'), ('pickle', 'loads'), ('pickle', 'Unpickler'), ('_pickle', 'load'), ('_pickle', 'loads'),
    ('dill', 'load'), ('dill', 'loads'), ('joblib', 'load'), ('marshal', 'load'), ('marshal', 'loads'),
    ('cloudpickle', 'load'), ('cloudpickle', 'loads'), ('shelve', 'open'),
}  # fmt: skip


def _unsafe_calls(source: str) -> list[str]:
    """Calls that can run code from data: unpicklers, torch.load without weights_only=True, eval/exec,
    numpy.load(allow_pickle=True), and any ``weights_only=False``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        dotted = (
            (func.value.id, func.attr) if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else None
        )
        keywords = {k.arg: k.value for k in node.keywords}
        const = {k: v.value for k, v in keywords.items() if isinstance(v, ast.Constant)}
        if dotted in _UNPICKLERS:
            found.append(f'{dotted[0]}.{dotted[1]} (line {node.lineno})')
        elif dotted == ('torch', 'load') and const.get('weights_only') is not True:
            found.append(f'torch.load without weights_only=True (line {node.lineno})')
        elif isinstance(func, ast.Name) and func.id in ('eval', 'exec'):
            found.append(f'{func.id} (line {node.lineno})')
        elif dotted in (('np', 'load'), ('numpy', 'load')) and const.get('allow_pickle') is not False:
            found.append(f'numpy.load without allow_pickle=False (line {node.lineno})')
        elif const.get('weights_only') is False:
            found.append(f'weights_only=False (line {node.lineno})')
    return found


def test_no_load_path_of_the_package_can_unpickle_code():
    bad = """
import pickle, torch, numpy as np
pickle.loads(b'')
torch.load('x.pth')
torch.load('x.pth', weights_only=False)
torch.load('x.pth', weights_only=True)
np.load('x.npy')
eval('1')
timm.models.load_checkpoint(m, 'x', weights_only=False)
"""
    assert len(_unsafe_calls(bad)) == 6  # the scanner sees each kind (the weights_only=True load is fine)
    sources = sorted(PACKAGE.rglob('*.py'))
    assert len(sources) >= 10
    found = {str(p.relative_to(PACKAGE)): _unsafe_calls(p.read_text(encoding='utf-8')) for p in sources}
    assert {name: calls for name, calls in found.items() if calls} == {}


class _Payload:
    """Unpickling this runs code: it writes a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f'open({str(self.marker)!r}, "w").write("ran")',)


@pytest.fixture
def pickle_repo(hub, converted, tmp_path) -> tuple[str, Path]:
    """A repo with a valid config.json and a pytorch_model.bin that runs code when unpickled, no safetensors."""
    repo_id, marker = f'acme/pickled-{uuid.uuid4().hex[:8]}', tmp_path / 'marker'
    evil = tmp_path / 'pytorch_model.bin'
    torch.save({'conv1.weight': torch.zeros(1), 'x': _Payload(marker)}, evil)
    api = HfApi()
    api.create_repo(repo_id)
    for name, path in (('config.json', converted / 'config.json'), ('pytorch_model.bin', evil)):
        api.upload_file(path_or_fileobj=path, path_in_repo=name, repo_id=repo_id)
    yield repo_id, marker
    api.delete_repo(repo_id, missing_ok=True)


@pytest.mark.filterwarnings('ignore:Detected pickle protocol')
def test_a_pickle_on_the_hub_never_runs(hub, hf_home, pickle_repo):
    repo_id, marker = pickle_repo
    with pytest.raises(Exception):  # noqa: B017 - timm's refusal (RuntimeError) or, once patched, the missing file
        timm.create_model(f'hf-hub:{repo_id}', pretrained=True, cache_dir=hf_home)
    assert not marker.exists()


def test_a_pickle_on_the_hub_is_not_even_downloaded(hub, hf_home, pickle_repo):
    repo_id, marker = pickle_repo
    with pytest.raises(Exception, match='model.safetensors'):  # noqa: B017
        timm.create_model(f'hf-hub:{repo_id}', pretrained=True, cache_dir=hf_home)
    assert not marker.exists()
    assert not [p for _, p in hub.requests if p.endswith('pytorch_model.bin')]


# -- tokens ------------------------------------------------------------------------------------------------------


def _holds(root: Path, secret: bytes) -> list[Path]:
    return [p for p in root.rglob('*') if p.is_file() and not p.is_symlink() and secret in p.read_bytes()]


def test_tokens_never_reach_logs_cards_files_or_errors(hub, converted, tmp_path, capfd, caplog, monkeypatch):
    token, wrong = f'hf_secret_{uuid.uuid4().hex}', f'hf_wrong_{uuid.uuid4().hex}'
    for name in (None, 'huggingface_hub', 'timm', 'hrnet_zoo'):
        caplog.set_level(logging.DEBUG, logger=name)
    monkeypatch.setattr(huggingface_hub.constants, 'HF_DEBUG', True)  # every request logged as a curl command
    repo_id = 'acme/token-guarded'
    with HubServer(tmp_path / 'guarded', token=token, verbose=True) as server:
        result = publish(converted, repo_id, endpoint=server.url, token=token)
        assert result.verified
        card = hf_hub_download(repo_id, 'README.md', endpoint=server.url, cache_dir=tmp_path / 'cache')
        with pytest.raises(HfHubHTTPError) as denied:
            publish(converted, 'acme/token-guarded-2', endpoint=server.url, token=wrong)
        assert denied.value.response.status_code == 401
    error_text = ''.join(traceback.format_exception(denied.value)) + repr(denied.value)
    # through the CLI: the token comes from HF_TOKEN, the session Hub is guarded for the test
    hub.token = token
    monkeypatch.setenv('HF_TOKEN', wrong)
    assert cli(['publish', str(converted), '--repo-id', 'acme/token-cli', '--no-verify']) == 1
    monkeypatch.setenv('HF_TOKEN', token)
    assert cli(['publish', str(converted), '--repo-id', 'acme/token-cli', '--no-verify']) == 0
    out, err = capfd.readouterr()
    assert '"POST /api/repos/create HTTP/1.1" 401' in err and err.count('hrnet-zoo publish: error:') == 1
    records = caplog.text + ''.join(str(r.args) for r in caplog.records)
    assert any('curl' in r.getMessage() for r in caplog.records)  # the client's DEBUG log was captured
    for secret in (token, wrong):
        assert secret not in out + err + records + error_text
        assert secret not in Path(card).read_text() and secret not in result.commit_id
        assert not _holds(tmp_path, secret.encode()) and not _holds(hub.store.root / 'repos', secret.encode())
