"""``optimize_for_inference(model, backend='onednn_graph')``: the folded model traced and run by oneDNN Graph,
against eager PyTorch, and its fallback to backend='torch' wherever that route does not work."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
from helpers import randomize_batchnorm
from torch import nn

import hrnet_zoo
from hrnet_zoo.fast import onednn_graph
from hrnet_zoo.fast.conv import FusedConv
from hrnet_zoo.fast.onednn_graph import OneDNNGraphModule

pytestmark = pytest.mark.skipif(not onednn_graph.available(), reason='this torch has no oneDNN Graph fusion')


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def _model(name: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    model = timm.create_model(name, **kwargs)
    randomize_batchnorm(model)  # non-trivial folded statistics, so a wrong fold would show
    return model.eval()


@pytest.fixture(scope='module')
def backbone() -> nn.Module:
    return _model('hrnetv2_w18_small_v1', features_only=True)


@pytest.fixture(scope='module')
def graph_f32(backbone) -> OneDNNGraphModule:
    return hrnet_zoo.optimize_for_inference(backbone, backend='onednn_graph')


def _image(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_features_match_eager_at_sizes_it_was_not_traced_at(backbone, graph_f32):
    assert isinstance(graph_f32, OneDNNGraphModule) and graph_f32.fused_partitions > 0
    for shape in ((2, 3, 96, 160), (1, 3, 130, 98)):
        x = _image(*shape)
        with torch.no_grad():
            ref = backbone(x)
        for _ in range(4):  # the profiling runs first, then the fused graph: every call must be right
            got = graph_f32(x)
            assert isinstance(got, list) and len(got) == len(ref) == 5
            for g, r in zip(got, ref):
                assert g.shape == r.shape and g.dtype == torch.float32
                assert _rel(g, r) < 1e-4


def _guarded_shapes(graph: torch._C.Graph) -> set[tuple[int, ...]]:
    """The input shapes that the oneDNN Graph partitions of an optimised graph are guarded on."""
    shapes = set()
    for node in graph.nodes():
        if node.kind() == 'prim::oneDNNFusionGuard':
            shapes.update(tuple(t.sizes()) for t in node.tys('types'))
    return shapes


def test_the_first_call_at_a_shape_runs_partitions_compiled_for_that_shape(graph_f32):
    # the partitions that ran are guarded on this input's own shape, not on the shape the check profiled, so the
    # call does not pass every partition through its fallback function
    for shape in ((1, 3, 64, 64), (3, 3, 80, 48)):
        graph_f32(_image(*shape))
        guarded = _guarded_shapes(torch.jit.last_executed_optimized_graph())
        assert shape in guarded and onednn_graph._CHECK_SHAPE[0] not in {s[0] for s in guarded}
        assert graph_f32.shapes[-1] == shape


def test_only_the_most_recent_shapes_keep_a_graph(backbone, monkeypatch):
    monkeypatch.setattr(onednn_graph, 'MAX_SHAPES', 2)
    fast = hrnet_zoo.optimize_for_inference(backbone, backend='onednn_graph')
    check = (onednn_graph._CHECK_SHAPE[0], 3, *onednn_graph._CHECK_SHAPE[1:])
    assert fast.shapes == (check,)
    first, second = (1, 3, 64, 64), (1, 3, 48, 80)
    for shape in (first, second, first, check):  # first is used again, so second is the oldest when check comes
        x = _image(*shape)
        with torch.no_grad():
            ref = backbone(x)
        assert all(_rel(g, r) < 1e-4 for g, r in zip(fast(x), ref))
    assert fast.shapes == (first, check)


def test_the_process_wide_switch_is_put_back_after_each_call(graph_f32):
    for before in (False, True):
        torch.jit.enable_onednn_fusion(before)
        try:
            graph_f32(_image(1, 3, 64, 64))
            assert torch.jit.onednn_fusion_enabled() is before
        finally:
            torch.jit.enable_onednn_fusion(False)


@pytest.mark.parametrize('name', ['hrnetv2_w18_small_v1', 'hrnetv2p_w18_small_v1'])
def test_full_models_keep_their_output_type_and_the_model_is_left_as_it_was(name: str):
    model = _model(name, **({'num_classes': 5} if name.startswith('hrnetv2_') else {}))
    model.train()
    before = copy.deepcopy(model.state_dict())
    fast = hrnet_zoo.optimize_for_inference(model, backend='onednn_graph')
    assert isinstance(fast, OneDNNGraphModule)
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    x = _image(1, 3, 70, 90)
    with torch.no_grad():
        ref = model.eval()(x)
    got = fast(x)
    if name.startswith('hrnetv2p_'):  # the detection pyramid: a list of 5 levels
        assert isinstance(got, list) and len(got) == len(ref) == 5
        assert all(_rel(g, r) < 1e-4 for g, r in zip(got, ref))
    else:
        assert isinstance(got, torch.Tensor) and got.shape == ref.shape == (1, 5, 18, 23)
        assert _rel(got, ref) < 1e-4


# oneDNN's bf16 convolutions need AVX512-BF16, AMX or AVX-NE-CONVERT; an AVX2-only CPU (AMD Zen 3) has none
BF16_CONV = torch.ops.mkldnn._is_mkldnn_bf16_supported()
needs_bf16 = pytest.mark.skipif(not BF16_CONV, reason='no bf16 convolution on this CPU')


@needs_bf16
def test_bf16_matches_eager_within_2e2_and_returns_bf16(backbone):
    fast = hrnet_zoo.optimize_for_inference(backbone, backend='onednn_graph', dtype=torch.bfloat16)
    assert isinstance(fast, OneDNNGraphModule) and fast.dtype == torch.bfloat16
    x = _image(1, 3, 128, 128, seed=2)
    with torch.no_grad():
        ref = backbone(x)
    got = fast(x.bfloat16())
    assert all(g.dtype == torch.bfloat16 for g in got)
    errors = [_rel(g, r) for g, r in zip(got, ref)]
    assert 1e-6 < max(errors) < 2e-2  # it really computed in bf16, and closely


def _bmm_nodes(graph: torch._C.Graph) -> int:
    """``aten::bmm`` nodes of a graph and its blocks: one per convolution computed by Winograd (its 36 products)."""
    count = 0
    for node in graph.nodes():
        count += node.kind() == 'aten::bmm'
        count += sum(_bmm_nodes(block) for block in node.blocks())
    return count


@pytest.mark.parametrize('shape', [(1, 3, 128, 192), (2, 3, 130, 98)])  # whole tiles, and partial ones cropped
def test_winograd_in_the_graph_matches_eager(backbone, shape):
    fast = hrnet_zoo.optimize_for_inference(backbone, backend='onednn_graph', winograd=True)
    # w18_small_v1's widest branch (128 channels) has the four 3x3 convolutions Winograd computes
    assert len(fast._candidates) == 4 and all('branches.3' in name for name in fast._candidates)
    x = _image(*shape)
    with torch.no_grad():
        ref = backbone(x)
    for _ in range(4):
        got = fast(x)
        assert all(_rel(g, r) < 1e-4 for g, r in zip(got, ref))
    assert fast.winograd_by_shape[shape] == tuple(fast._candidates)
    assert _bmm_nodes(torch.jit.last_executed_optimized_graph()) == 4


@pytest.mark.skipif(BF16_CONV, reason='this CPU has bf16 convolutions: the route runs them')
def test_bf16_without_bf16_convolutions_warns_and_runs_the_torch_route(backbone):
    with pytest.warns(RuntimeWarning, match="backend='onednn_graph' is off"):
        fast = hrnet_zoo.optimize_for_inference(backbone, backend='onednn_graph', dtype=torch.bfloat16)
    assert not isinstance(fast, OneDNNGraphModule)
    x = _image(1, 3, 128, 128, seed=2)
    with torch.no_grad():
        ref = backbone(x)
        got = fast(x.bfloat16())
    assert max(_rel(g.float(), r) for g, r in zip(got, ref)) < 2e-2  # a wrong guess costs speed, not correctness


def test_winograd_off_in_bf16_and_when_asked(backbone):
    routes = [hrnet_zoo.optimize_for_inference(backbone, backend='onednn_graph', winograd=False)]
    if BF16_CONV:
        routes.append(
            hrnet_zoo.optimize_for_inference(backbone, backend='onednn_graph', dtype=torch.bfloat16, winograd=True)
        )
    for fast in routes:
        x = _image(1, 3, 128, 192).to(fast.dtype)
        fast(x)
        assert not fast._candidates and fast.winograd_by_shape[tuple(x.shape)] == ()
        assert _bmm_nodes(torch.jit.last_executed_optimized_graph()) == 0


@pytest.mark.parametrize(
    'answers, winograd',
    [((True, True), True), ((True, False), False), ((False,), False)],
    ids=['conv-and-graph-faster', 'conv-faster-graph-not', 'conv-not-faster'],
)
def test_winograd_by_default_where_both_the_convolution_and_the_graph_timed_faster(
    backbone, monkeypatch, answers, winograd
):
    """The default times each (input, weight) shape pair of the candidates alone, then, where Winograd won, the
    whole graph with and without it, and keeps the faster; every timed pair computes the same thing."""
    timed, script = [], []

    def decide(direct, winograd, rounds: int = 3) -> bool:
        timed.append(direct.func)
        for a, b in zip(_as_tuple(winograd()), _as_tuple(direct())):
            assert _rel(a, b) < 1e-4
        return script.pop(0) if script else False

    monkeypatch.setattr(onednn_graph, 'winograd_is_faster', decide)
    fast = hrnet_zoo.optimize_for_inference(backbone, backend='onednn_graph')  # the check's shape: direct
    assert timed and fast.winograd is None
    timed.clear()
    script.extend(answers)
    x = _image(1, 3, 128, 192)
    with torch.no_grad():
        ref = backbone(x)
    got = fast(x)
    assert all(_rel(g, r) < 1e-4 for g, r in zip(got, ref))
    # one convolution shape (the four candidates share it), then the two whole graphs where it won
    assert len(timed) == len(answers) and isinstance(timed[0], nn.Conv2d)
    assert all(isinstance(f, torch.jit.ScriptModule) for f in timed[1:])
    assert fast.winograd_by_shape[tuple(x.shape)] == (tuple(fast._candidates) if winograd else ())
    assert _bmm_nodes(torch.jit.last_executed_optimized_graph()) == (4 if winograd else 0)
    assert sorted(fast._winograds) == (sorted(fast._candidates) if winograd else [])  # unused weights are let go


def _as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


def _fell_back(fast: nn.Module, backbone: nn.Module) -> None:
    """``fast`` is backend='torch''s fused model, and right."""
    assert not isinstance(fast, OneDNNGraphModule)
    assert any(isinstance(m, FusedConv) for m in fast.modules())
    x = _image(1, 3, 64, 96)
    with torch.no_grad():
        ref, got = backbone(x), fast(x)
    assert all(_rel(g, r) < 1e-4 for g, r in zip(got, ref))


def test_without_onednn_graph_it_warns_and_runs_the_torch_backend(backbone, monkeypatch):
    monkeypatch.delattr(torch.jit, 'enable_onednn_fusion')
    with pytest.warns(RuntimeWarning, match=r"backend='onednn_graph' is off \(this torch has no oneDNN Graph"):
        fast = hrnet_zoo.optimize_for_inference(backbone, backend='onednn_graph')
    _fell_back(fast, backbone)


class _Scaled(nn.Module):
    """A frozen graph as a future torch might get it wrong: it runs, but computes something else."""

    def __init__(self, graph: nn.Module) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(t * 1.01 for t in self.graph(x))


def test_a_trace_that_disagrees_with_eager_falls_back(backbone, monkeypatch):
    real_freeze = torch.jit.freeze
    monkeypatch.setattr(torch.jit, 'freeze', lambda module: _Scaled(real_freeze(module)))
    with pytest.warns(RuntimeWarning, match='disagrees with the eager one in torch.float32: relative error 0.01'):
        fast = hrnet_zoo.optimize_for_inference(backbone, backend='onednn_graph')
    _fell_back(fast, backbone)


def test_a_graph_with_no_fused_partition_falls_back(backbone, monkeypatch):
    real_switch = torch.jit.enable_onednn_fusion
    monkeypatch.setattr(torch.jit, 'enable_onednn_fusion', lambda enabled: real_switch(False))
    with pytest.warns(RuntimeWarning, match='oneDNN Graph fused no partition'):
        fast = hrnet_zoo.optimize_for_inference(backbone, backend='onednn_graph')
    _fell_back(fast, backbone)


def test_a_tracing_failure_falls_back(backbone, monkeypatch):
    def broken_trace(*args, **kwargs):
        raise RuntimeError('Tracer cannot infer type of output')

    monkeypatch.setattr(torch.jit, 'trace', broken_trace)
    with pytest.warns(RuntimeWarning, match='tracing or running the model failed: RuntimeError: Tracer cannot'):
        fast = hrnet_zoo.optimize_for_inference(backbone, backend='onednn_graph')
    _fell_back(fast, backbone)


@pytest.mark.parametrize('option', [dict(fuse_ops=True), dict(channels_last=False)])
def test_torch_only_options_are_refused(backbone, option):
    with pytest.raises(ValueError, match="options of backend='torch'"):
        hrnet_zoo.optimize_for_inference(backbone, backend='onednn_graph', **option)


def test_bad_input_names_what_was_expected(backbone, graph_f32):
    with pytest.raises(ValueError, match=r'expected an \(N, 3, H, W\) image tensor, got shape \(1, 4, 64, 64\)'):
        graph_f32(torch.randn(1, 4, 64, 64))
    with pytest.raises(TypeError, match=r'runs in torch.float32, got a torch.bfloat16 input'):
        graph_f32(torch.randn(1, 3, 64, 64, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match='runs in torch.float32 or torch.bfloat16, not torch.float16'):
        hrnet_zoo.optimize_for_inference(backbone, backend='onednn_graph', dtype=torch.float16)
