"""``hrnet-zoo export`` / :func:`hrnet_zoo.export.export_model`: ONNX (dynamo) and OpenVINO IR, every head.

Each exported graph is run here by its own engine at a batch and size that neither the exporter nor the export's
own check used, and compared with the eager model it came from.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from urllib.parse import urlsplit

import pytest
import timm
import torch
from fake_records import fake_checkpoint, file_bytes
from file_server import FileServer
from helpers import randomize_batchnorm

import hrnet_zoo  # noqa: F401  (registers the models)
from hrnet_zoo import export as export_module
from hrnet_zoo.cli import main
from hrnet_zoo.export import ExportError, export_model
from hrnet_zoo.publish.convert import convert_checkpoint
from hrnet_zoo.weights.manifest import MANIFEST
from hrnet_zoo.weights.sources import MIRROR_ENV

pytestmark = pytest.mark.export
ort = pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')

SMALL = 'w18_small_v1'
SIZE = (3, 3, 161, 97)  # batch 3, odd: neither the traced (2x256x320) nor the checked (1x193x259) shape


def _model(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return randomize_batchnorm(timm.create_model(name, **kwargs)).eval()


def _eager(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        y = model(x)
    return list(y) if isinstance(y, (list, tuple)) else [y]


def _assert_close(got: list, ref: list[torch.Tensor], bound: float = 1e-4) -> None:
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        g = torch.as_tensor(g)
        assert tuple(g.shape) == tuple(r.shape)
        assert ((g - r).norm() / r.norm()).item() < bound


def _run_onnx(path, x: torch.Tensor) -> list:
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    return session.run(None, {'image': x.numpy()})


CASES = [(f'hrnetv1_{SMALL}', {}), (f'hrnetv2_{SMALL}', {}), (f'hrnetv2p_{SMALL}', {}),
         (f'hrnetv2_{SMALL}', dict(features_only=True))]  # fmt: skip


@pytest.mark.parametrize('name,kwargs', CASES, ids=['v1', 'v2', 'v2p', 'features'])
def test_onnx_export_of_every_head_matches_eager_at_a_new_size(tmp_path, name: str, kwargs: dict) -> None:
    model = _model(name, **kwargs)
    result = export_model(model, tmp_path / 'model.onnx')
    assert result.path == tmp_path / 'model.onnx' and result.max_relative_error < 1e-4
    assert sorted(p.name for p in tmp_path.iterdir()) == ['model.onnx'], 'staging files left behind'
    x = torch.randn(*SIZE)
    _assert_close(_run_onnx(result.path, x), _eager(model, x))
    assert len(result.output_names) == len(_eager(model, x))


def test_openvino_export_matches_eager_at_a_new_size(tmp_path) -> None:
    openvino = pytest.importorskip('openvino')
    model = _model(f'hrnetv2p_{SMALL}')
    result = export_model(model, tmp_path / 'hrnet.xml', 'openvino')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['hrnet.bin', 'hrnet.xml']
    compiled = openvino.Core().compile_model(str(result.path), 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})
    x = torch.randn(*SIZE)
    out = compiled(x.numpy())
    _assert_close([out[o] for o in compiled.outputs], _eager(model, x))


def test_a_graph_that_disagrees_with_eager_is_refused_and_nothing_is_written(tmp_path, monkeypatch) -> None:
    real_run = export_module._run_onnx
    monkeypatch.setattr(export_module, '_run_onnx', lambda path, x: [y * 1.01 for y in real_run(path, x)])
    with pytest.raises(ExportError, match='differs from eager PyTorch at 193x259'):
        export_model(_model(f'hrnetv1_{SMALL}'), tmp_path / 'new' / 'folder' / 'model.onnx')
    assert list(tmp_path.iterdir()) == []  # nor the folders made for it


def test_cli_export_with_converted_weights(tmp_path, capsys) -> None:
    """``--weights`` takes a folder from ``hrnet-zoo convert``: the graph computes that checkpoint's model."""
    name = f'hrnetv2_{SMALL}.cityscapes'
    source = _model(f'hrnetv2_{SMALL}', upsample_mode='bilinear')
    torch.save({'state_dict': source.state_dict()}, tmp_path / 'official.pth')
    folder = convert_checkpoint(tmp_path / 'official.pth', name, tmp_path / 'converted')
    out = tmp_path / 'not' / 'yet' / 'seg.onnx'  # the folders are made
    assert main(['export', name, '--weights', str(folder), '--out', str(out)]) == 0
    assert 'relative error' in capsys.readouterr().out
    x = torch.randn(*SIZE)
    _assert_close(_run_onnx(out, x), _eager(source, x))


@pytest.mark.parametrize(
    'args,message',
    [
        (['hrnetv2_w18_smal'], "Unknown HRNet architecture 'hrnetv2_w18_smal'; did you mean"),
        ([f'hrnetv2_{SMALL}', '--weights', 'missing.safetensors'], 'no weights file missing.safetensors'),
        ([f'hrnetv2_{SMALL}', '--out', 'a_file/model.onnx'], 'a_file is a file, not a folder'),
        ([f'hrnetv2_{SMALL}.no_such_tag'], "No pretrained weights 'hrnetv2_w18_small_v1.no_such_tag'; did you mean"),
        ([f'hrnetv2_{SMALL}', '--format', 'openvino'], '--format openvino writes a .xml file'),
    ],
    ids=['unknown-name', 'missing-weights', 'out-under-a-file', 'unknown-tag', 'wrong-suffix'],
)
def test_cli_export_bad_input_is_one_line(tmp_path, monkeypatch, capsys, args: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'a_file').write_text('not a folder')
    if '--out' not in args:
        args = [*args, '--out', 'model.onnx']
    assert main(['export', *args]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count('\n') == 1 and 'Traceback' not in err
    assert [p.name for p in tmp_path.iterdir()] == ['a_file']


def test_cli_export_of_a_tagged_name_reads_its_weights(tmp_path, monkeypatch, capsys) -> None:
    """``hrnet-zoo export <arch>.<tag>``, as README prints it: the tag's weights (here a direct download, served by
    a loopback mirror in its mmseg layout) are in the graph."""
    name = 'hrnetv2_w18_small_v2.mmseg_cityscapes_512x1024_160k'
    record = MANIFEST[name]
    checkpoint = fake_checkpoint(name)
    data = file_bytes(name, checkpoint)
    source = replace(record.source, hash_prefix=hashlib.sha256(data).hexdigest()[:8])
    monkeypatch.setitem(MANIFEST, name, replace(record, source=source))
    before = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / 'torch_hub'))
    out = tmp_path / 'seg.onnx'
    with FileServer({urlsplit(record.source.direct_url).path: data}) as server:
        monkeypatch.setenv(MIRROR_ENV, server.url)
        try:
            assert main(['export', name, '--out', str(out)]) == 0
            reference = timm.create_model(name, pretrained=True).eval()  # from the converted cache
        finally:
            torch.hub.set_dir(before)
    assert 'relative error' in capsys.readouterr().out
    served = checkpoint['state_dict']
    assert torch.equal(reference.state_dict()['conv1.weight'], served['backbone.conv1.weight'])
    assert torch.equal(reference.state_dict()['last_layer.3.weight'], served['decode_head.conv_seg.weight'])
    x = torch.randn(*SIZE)
    _assert_close(_run_onnx(out, x), _eager(reference, x))
