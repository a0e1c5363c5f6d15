"""``optimize_for_inference(model, backend='openvino')``: the checked export run by OpenVINO, against eager PyTorch."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
from helpers import randomize_batchnorm

import hrnet_zoo
from hrnet_zoo.fast import openvino_backend

pytestmark = pytest.mark.export
pytest.importorskip('openvino')
pytest.importorskip('onnxscript')


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


@pytest.fixture(scope='module')
def backbone() -> torch.nn.Module:
    torch.manual_seed(0)
    model = timm.create_model('hrnetv2_w18_small_v1', features_only=True)
    randomize_batchnorm(model)  # non-trivial folded statistics, so a wrong fold would show
    return model.eval()


@pytest.fixture(scope='module')
def compiled_f32(backbone) -> openvino_backend.OpenVINOModule:
    return hrnet_zoo.optimize_for_inference(backbone, backend='openvino')


def test_features_match_eager_fp32_at_two_sizes(backbone, compiled_f32):
    for size in ((96, 160), (130, 98)):  # neither is the size the export was traced or checked at
        x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            ref = backbone(x)
        got = compiled_f32(x)
        assert isinstance(got, list) and len(got) == len(ref) == 5
        for g, r in zip(got, ref):
            assert g.shape == r.shape and g.dtype == torch.float32
            assert _rel(g, r) < 1e-4
    assert len(compiled_f32._requests) == 2  # one static compile per input shape


def test_bf16_precision_matches_eager_within_2e2_and_returns_bf16(backbone):
    fast = hrnet_zoo.optimize_for_inference(backbone, backend='openvino', dtype=torch.bfloat16)
    assert fast.precision == 'bf16'
    x = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = backbone(x)
    got = fast(x.bfloat16())
    assert all(g.dtype == torch.bfloat16 for g in got)
    errors = [_rel(g, r) for g, r in zip(got, ref)]
    assert max(errors) < 2e-2
    assert max(errors) > 1e-6  # it really computed in bf16, not f32


def test_full_model_returns_a_tensor_and_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    model = timm.create_model('hrnetv2_w18_small_v1', num_classes=5)
    randomize_batchnorm(model)
    model.train()
    before = copy.deepcopy(model.state_dict())
    fast = hrnet_zoo.optimize_for_inference(model, backend='openvino')
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    x = torch.randn(1, 3, 64, 96)
    got = fast(x)
    with torch.no_grad():
        ref = model.eval()(x)
    assert isinstance(got, torch.Tensor) and got.shape == ref.shape == (1, 5, 16, 24)
    assert _rel(got, ref) < 1e-4


def test_least_recently_used_shape_is_dropped(compiled_f32, monkeypatch):
    monkeypatch.setattr(compiled_f32, 'max_shapes', 2)
    compiled_f32._requests.clear()
    for h in (64, 96, 64, 128):
        compiled_f32(torch.zeros(1, 3, h, 64))
    assert list(compiled_f32._requests) == [(1, 3, 64, 64), (1, 3, 128, 64)]


def test_wrong_channels_name_the_expected_input(compiled_f32):
    with pytest.raises(ValueError, match=r'expected an \(N, 3, H, W\) image tensor, got shape \(1, 4, 64, 64\)'):
        compiled_f32(torch.zeros(1, 4, 64, 64))


def test_bad_options_are_refused_before_any_export(backbone, monkeypatch):
    def no_export(*args, **kwargs):
        raise AssertionError('exported despite bad options')

    monkeypatch.setattr(openvino_backend, 'export_model', no_export)
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'; expected one of: torch, onednn_graph, openvino"):
        hrnet_zoo.optimize_for_inference(backbone, backend='tensorrt')
    with pytest.raises(ValueError, match='torch.float32 or torch.bfloat16'):
        hrnet_zoo.optimize_for_inference(backbone, backend='openvino', dtype=torch.float16)
    with pytest.raises(ValueError, match="options of backend='torch'"):
        hrnet_zoo.optimize_for_inference(backbone, backend='openvino', winograd=True)


def test_missing_openvino_says_which_extra_to_install(backbone, monkeypatch):
    real = openvino_backend.importlib.util.find_spec
    monkeypatch.setattr(
        openvino_backend.importlib.util, 'find_spec', lambda n, *a: None if n == 'openvino' else real(n, *a)
    )
    with pytest.raises(ImportError, match=r"pip install 'hrnet_zoo\[openvino\]'"):
        hrnet_zoo.optimize_for_inference(backbone, backend='openvino')


def test_cannot_be_deep_copied(compiled_f32):
    with pytest.raises(TypeError, match='cannot be deep-copied'):
        copy.deepcopy(compiled_f32)
