"""The inference fast path (``optimize_for_inference``) and the benchmark harness: correctness only, no timing.

Relative error throughout: ``||a - b|| / ||b||`` (Frobenius norm over the whole output tensor), with ``b`` the
eager fp32 model's output; the worst over a model's outputs must stay under the bound.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
import timm
import torch
import torch.nn.functional as F
from helpers import randomize_batchnorm
from torch import Tensor, nn

import hrnet_zoo  # noqa: F401  (registers the models)
from hrnet_zoo.cli import main
from hrnet_zoo.fast import _onednn
from hrnet_zoo.fast import conv as fast_conv
from hrnet_zoo.fast.conv import FusedConv
from hrnet_zoo.fast.optimize import _chains_exactly, optimize_for_inference
from hrnet_zoo.fast.winograd import Winograd3x3, suits

WIDTH = 'w18_small_v1'  # the smallest width: every code path, seconds on 2 busy cores


def _rel(a: Tensor, b: Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def _outputs(y) -> list[Tensor]:
    return list(y) if isinstance(y, (list, tuple)) else [y]


def _model(name: str, **kwargs) -> nn.Module:
    """A model with non-trivial BatchNorm statistics, so folding them is actually tested."""
    torch.manual_seed(0)
    return randomize_batchnorm(timm.create_model(name, **kwargs).eval())


CASES = [
    ('hrnetv1_' + WIDTH, {}),
    ('hrnetv2_' + WIDTH, {}),
    ('hrnetv2p_' + WIDTH, {}),
    ('hrnetv2_' + WIDTH, dict(features_only=True)),
    ('hrnetv2_' + WIDTH, dict(upsample_mode='bilinear')),
]


@pytest.mark.parametrize('name,kwargs', CASES, ids=[f'{n}{"-" + "-".join(k) if k else ""}' for n, k in CASES])
@pytest.mark.parametrize('size', [(97, 131), (64, 128)], ids=['odd', 'exact'])  # exact: the broadcast upsample-add
def test_fp32_fast_path_matches_eager(name: str, kwargs: dict, size: tuple[int, int]) -> None:
    _check_fp32(name, kwargs, size, fuse_ops=True)


@pytest.mark.parametrize('name,kwargs', CASES[1:4:2], ids=['v2', 'features'])
def test_fp32_fast_path_with_winograd_everywhere_matches_eager(name: str, kwargs: dict) -> None:
    _check_fp32(name, kwargs, (97, 131), fuse_ops=True, winograd=True)


@pytest.mark.parametrize('name,kwargs', CASES[1:4:2], ids=['v2', 'features'])
def test_fp32_folded_only_matches_eager(name: str, kwargs: dict) -> None:
    _check_fp32(name, kwargs, (97, 131), fuse_ops=False)


def _check_fp32(name: str, kwargs: dict, size: tuple[int, int], fuse_ops: bool, winograd: bool | None = None) -> None:
    model = _model(name, **kwargs)
    x = torch.randn(1, 3, *size)
    fast = optimize_for_inference(model, fuse_ops=fuse_ops, winograd=winograd)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules()), 'BatchNorm left unfolded'
    if fuse_ops:
        assert any(isinstance(m, FusedConv) for m in fast.modules())
        assert not any(isinstance(m, nn.Conv2d) for m in fast.modules()), 'a convolution left unfused'
    with torch.no_grad():
        ref, out = _outputs(model(x)), _outputs(fast(x))
    assert len(out) == len(ref)
    for a, b in zip(out, ref):
        assert a.shape == b.shape
        assert _rel(a, b) < 1e-4


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason='no bf16 convolution on this CPU')
@pytest.mark.parametrize('name,kwargs', CASES[:4], ids=[n + ('-features' if k else '') for n, k in CASES[:4]])
@pytest.mark.parametrize('size', [(97, 131), (64, 128)], ids=['odd', 'exact'])  # exact: the chained upsampling
def test_bf16_fast_path_close_to_fp32(name: str, kwargs: dict, size: tuple[int, int]) -> None:
    model = _model(name, **kwargs)
    x = torch.randn(1, 3, *size)
    fast = optimize_for_inference(model, dtype=torch.bfloat16)
    with torch.no_grad():
        ref, out = _outputs(model(x)), _outputs(fast(x.bfloat16()))
    for a, b in zip(out, ref):
        assert a.dtype == torch.bfloat16
        assert _rel(a, b) < 2e-2


def test_weights_packed_per_input_shape_stay_correct_for_every_shape(monkeypatch) -> None:
    """Weights are packed for the first input shape seen; other shapes, and shapes past the cache's cap (plain
    weights then), must give the eager answer too."""
    model = _model('hrnetv2_' + WIDTH, features_only=True)
    fast = optimize_for_inference(model)
    monkeypatch.setattr(FusedConv, 'max_packed', 2)
    convs = [m for m in fast.modules() if isinstance(m, FusedConv) and m.winograd is None]  # Winograd packs none
    sizes = [(64, 96), (97, 131), (64, 96), (40, 72)]
    with torch.no_grad():
        for size in sizes:
            x = torch.randn(2, 3, *size)
            for a, b in zip(fast(x), model(x)):
                assert _rel(a, b) < 1e-4, size
    assert all(len(c._packed) == 2 for c in convs)  # two shapes packed, the third ran on the plain weight
    assert {s[-2:] for s in convs[0]._packed} == {(64, 96), (97, 131)}


def _nhwc(*shape: int) -> Tensor:
    return torch.randn(*shape).contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize('batch,size', [(1, (16, 32)), (2, (13, 22)), (1, (1, 5))], ids=['whole-tiles', 'odd', 'thin'])
def test_winograd_matches_direct_convolution(batch: int, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(96, 112, 3, padding=1)
    x, residual = _nhwc(batch, 96, *size), _nhwc(batch, 112, *size)
    wino = Winograd3x3(conv.weight, conv.bias)
    with torch.no_grad():
        ref = F.conv2d(x.contiguous(), conv.weight, conv.bias, padding=1)
        plain, relu = wino(x), wino(x, relu=True)
        added = wino(x, residual=residual, relu=True)
        target = residual.clone()
        inplace = wino(x, residual=target, relu=False, inplace=True)
    assert plain.shape == ref.shape and plain.is_contiguous(memory_format=torch.channels_last)
    assert _rel(plain, ref) < 1e-5
    assert _rel(relu, ref.relu()) < 1e-5 and relu.min() >= 0
    assert _rel(added, (ref + residual).relu()) < 1e-5
    assert inplace.data_ptr() == target.data_ptr() and _rel(target, ref + residual) < 1e-5


def test_winograd_tiled_bias_follows_the_input_size(monkeypatch) -> None:
    """The bias repeated per tile is cached by tile count (capped): every size, cached or past the cap, must
    still give the direct convolution's answer."""
    monkeypatch.setattr(Winograd3x3, 'max_cached', 1)
    torch.manual_seed(0)
    conv = nn.Conv2d(96, 96, 3, padding=1)
    wino = Winograd3x3(conv.weight, conv.bias)
    with torch.no_grad():
        for size in [(8, 8), (12, 20), (8, 8), (12, 20)]:
            x = _nhwc(1, 96, *size)
            assert _rel(wino(x), F.conv2d(x.contiguous(), conv.weight, conv.bias, padding=1)) < 1e-5, size
    assert list(wino._tiled_bias) == [4]  # (8, 8) is 2x2 tiles: cached; (12, 20) is 3x5: past the cap


def test_nearest_resizes_chain_only_by_powers_of_two() -> None:
    assert _chains_exactly([(2, 4), (4, 8), (8, 16), (16, 32)])
    assert _chains_exactly([(2, 4), (8, 16)])  # 4x in one step
    assert _chains_exactly([(3, 5), (6, 10), (12, 20)])  # odd sizes, exact doublings
    assert not _chains_exactly([(2, 4), (6, 12)])  # 3x: its scale 1/3 is inexact in floating point
    assert not _chains_exactly([(25, 33), (49, 66)])  # not a multiple
    assert not _chains_exactly([(4, 8), (8, 24)])  # 3x in width


@pytest.mark.parametrize(
    'mode,size,chained',
    [('nearest', (64, 128), True), ('nearest', (97, 131), False), ('bilinear', (64, 128), False)],
    ids=['nearest-exact', 'nearest-odd', 'bilinear'],
)
def test_upsampled_paths_resize_once_per_row_when_nearest_chains(monkeypatch, mode, size, chained) -> None:
    """With nearest resizes by powers of 2, a row's upsampled paths are summed from the lowest resolution up and
    only that sum is resized to the row's size: one full-size resize-and-add per row instead of one per path.
    Outputs must match eager either way."""
    import hrnet_zoo.fast.optimize as inference

    # 4 branches in the last stage: its rows take 3, 2, 1 and 0 upsampled paths
    model = _model('hrnetv2_' + WIDTH, features_only=True, upsample_mode=mode)
    fast = optimize_for_inference(model)
    calls = []
    real = inference._upsample_add

    def counting(base: Tensor, small: Tensor, *args, **kwargs) -> Tensor:
        calls.append(tuple(base.shape[-2:]))
        return real(base, small, *args, **kwargs)

    monkeypatch.setattr(inference, '_upsample_add', counting)
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        for a, b in zip(fast(x), model(x)):
            assert _rel(a, b) < 1e-4
    units = [m for m in fast.modules() if isinstance(m, inference.FusedExchangeUnit)]
    rows_with_ups = sum(bool(ups) for u in units for ups in u.ups)
    paths = sum(len(ups) for u in units for ups in u.ups)
    assert paths > rows_with_ups  # some row sums several paths, so the two counts tell the code paths apart
    assert len(calls) == (rows_with_ups if chained else paths)


def test_exchange_unit_rows_match_eager_for_one_and_two_branches() -> None:
    """The fused unit alone against the eager one: one branch (a row of its identity alone, whose ReLU the fused
    unit skips as the block output is already ReLU'd) and two branches (an upsampled and a stride-2 path)."""
    import copy

    import hrnet_zoo.fast.optimize as inference
    from hrnet_zoo.models.backbone import ExchangeUnit
    from hrnet_zoo.specs import StageSpec

    torch.manual_seed(0)
    for chs in [(8,), (8, 16)]:
        unit = ExchangeUnit(chs, StageSpec(1, (1,) * len(chs), chs)).eval()
        folded = copy.deepcopy(unit)
        inference.fold_batchnorm(folded)
        fused = inference.FusedExchangeUnit(folded)
        xs = [_nhwc(1, c, 16 >> i, 24 >> i) for i, c in enumerate(chs)]
        with torch.no_grad():
            for a, b in zip(fused([x.clone() for x in xs]), unit(xs)):
                assert _rel(a, b) < 1e-5, chs


def test_winograd_only_where_it_measured_faster() -> None:
    w = torch.randn(128, 128, 3, 3)
    assert suits(w, [1, 1], [1, 1], [1, 1], 1)
    assert not suits(w, [2, 2], [1, 1], [1, 1], 1)  # stride 2
    assert not suits(w.bfloat16(), [1, 1], [1, 1], [1, 1], 1)  # bf16: transforms too lossy
    assert not suits(torch.randn(48, 48, 3, 3), [1, 1], [1, 1], [1, 1], 1)  # thin maps: direct was faster
    assert not suits(torch.randn(128, 128, 1, 1), [1, 1], [0, 0], [1, 1], 1)
    model = _model('hrnetv2_' + WIDTH, features_only=True)  # its lowest branch has 128 channels

    def count(m: nn.Module) -> int:
        return sum(c.winograd is not None for c in m.modules() if isinstance(c, FusedConv))

    assert count(optimize_for_inference(model)) > 0
    assert count(optimize_for_inference(model, winograd=False)) == 0
    assert count(optimize_for_inference(model, dtype=torch.bfloat16)) == 0
    with pytest.raises(ValueError, match='channels_last'):
        optimize_for_inference(model, channels_last=False, fuse_ops=True, winograd=True)


@pytest.mark.parametrize('winograd_wins', [True, False])
def test_winograd_by_default_where_it_timed_faster_per_shape(monkeypatch, winograd_wins: bool) -> None:
    """The default times Winograd against the direct convolution once per convolution and input shape and runs
    the winner from then on; either way the answer is the eager one."""
    timed: list[int] = []
    ran: list[int] = []

    def decide(direct, winograd, rounds: int = 3) -> bool:
        timed.append(1)
        before = len(ran)
        assert _rel(winograd(), direct()) < 1e-4  # the two candidates compute the same convolution
        del ran[before:]  # the trial run is not the forward's
        return winograd_wins

    monkeypatch.setattr(fast_conv, 'winograd_is_faster', decide)
    original = Winograd3x3.__call__
    monkeypatch.setattr(Winograd3x3, '__call__', lambda self, *a, **k: ran.append(1) or original(self, *a, **k))
    model = _model('hrnetv2_' + WIDTH, features_only=True)
    fast = optimize_for_inference(model)
    candidates = [c for c in fast.modules() if isinstance(c, FusedConv) and c.winograd is not None]
    assert candidates and not any(c.winograd_always for c in candidates)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ref = model(x)
        for _ in range(2):
            ran.clear()
            for a, b in zip(fast(x), ref):
                assert _rel(a, b) < 1e-4
            assert bool(ran) == winograd_wins  # the winner ran, on the first call and after
        assert len(timed) == sum(len(c._winograd_by_shape) for c in candidates)  # once per conv and shape
        fast(torch.randn(1, 3, 128, 160))  # a new shape (at every branch) is timed anew
    assert all(len(c._winograd_by_shape) == 2 for c in candidates if c._winograd_by_shape)
    assert all(c._winograd_by_shape for c in candidates)


def test_winograd_timing_picks_the_faster_callable() -> None:
    slow_calls: list[int] = []

    def slow() -> Tensor:
        slow_calls.append(1)
        return torch.randn(64, 64) @ torch.randn(64, 64) @ torch.randn(64, 64) + sum(range(20000))

    def fast() -> Tensor:
        return torch.zeros(1)

    assert fast_conv.winograd_is_faster(slow, fast) is True
    assert fast_conv.winograd_is_faster(fast, slow) is False
    assert len(slow_calls) == 8  # one untimed and three timed calls, twice


@pytest.mark.parametrize('name,kwargs', [CASES[1], CASES[3]], ids=['v2', 'features'])
def test_reused_layer1_buffer_never_leaks_into_outputs_or_threads(name: str, kwargs: dict) -> None:
    """layer1's map lives in one buffer per thread from call to call: an earlier call's outputs must not change,
    and threads running at once must each get their own answer."""
    from concurrent.futures import ThreadPoolExecutor

    model = _model(name, **kwargs)
    fast = optimize_for_inference(model)
    assert (
        fast.layer1[0].downsample.reuse_output
        if hasattr(fast, 'layer1')
        else fast.model.layer1[0].downsample.reuse_output
    )
    xs = [torch.randn(1, 3, 64, 96) for _ in range(4)]
    with torch.no_grad():
        refs = [_outputs(model(x)) for x in xs]
        first = _outputs(fast(xs[0]))
        kept = [t.clone() for t in first]
        with torch.inference_mode():
            _outputs(fast(xs[1]))  # the buffer, made under no_grad, is reused under inference_mode too
        assert all(torch.equal(a, b) for a, b in zip(first, kept)), 'a later call changed an earlier output'

    def run(x: Tensor) -> list[Tensor]:
        with torch.no_grad():
            return [t.clone() for _ in range(3) for t in _outputs(fast(x))][-len(kept) :]

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, xs[2:]))
    for out, ref in zip(results, refs[2:]):
        assert all(_rel(a, b) < 1e-4 for a, b in zip(out, ref))


def test_callers_model_is_unchanged() -> None:
    model = _model('hrnetv2_' + WIDTH).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(1, 3, 64, 96)
    fast = optimize_for_inference(model)
    assert fast is not model
    assert model.training
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) > 0
    assert all(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        model.eval()
        assert _rel(fast(x), model(x)) < 1e-4  # the original still runs and still agrees


def test_inplace_optimises_the_model_itself() -> None:
    model = _model('hrnetv1_' + WIDTH)
    assert optimize_for_inference(model, inplace=True) is model
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_fast_path_does_not_mutate_its_input() -> None:
    model = optimize_for_inference(_model('hrnetv2_' + WIDTH, features_only=True))
    x = torch.randn(1, 3, 64, 96)
    x_before = x.clone()
    with torch.no_grad():
        first = [t.clone() for t in model(x)]
        second = model(x)  # the in-place adds must not leak between calls either
    assert torch.equal(x, x_before)
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_bench_quick_writes_json(tmp_path, malloc_left_alone, capsys) -> None:
    out = tmp_path / 'bench.json'
    argv = ['bench', '--quick', '--width', WIDTH, '--threads', '1', '--dtype', 'fp32', '--no-full', '--json', str(out)]
    assert main(argv) == 0
    data = json.loads(out.read_text())
    assert data['machine']['torch'] == torch.__version__
    # ours_fast runs as optimize_for_inference(reuse_memory=True), and the JSON says the run had it
    assert data['freed_memory_kept'] is True and (-4, 0) in malloc_left_alone.mallopt_calls
    assert data['peaks_gflop_per_s']['fp32'] > 0
    rows = data['rows']
    names = {(r['group'], r['name']) for r in rows}
    assert ('b1/fp32/channels_last', 'ours_fast') in names
    assert ('b1/fp32/channels_last', 'timm') in names
    assert any(r['group'] == 'train' and r['name'] == 'ours_ckpt' for r in rows)
    for r in rows:
        assert r['median_ms'] > 0 and len(r['times_ms']) == 2
        if r['group'].startswith('b1') and r['name'] != 'timm':
            assert r['speedup_vs_timm'] > 0
            timm_times = next(t['times_ms'] for t in rows if t['group'] == r['group'] and t['name'] == 'timm')
            per_round = sorted(a / b for a, b in zip(timm_times, r['times_ms']))
            assert r['paired_speedup_vs_timm'] == pytest.approx((per_round[0] + per_round[1]) / 2, rel=1e-2)
        if r['group'] == 'train':
            assert r['peak_mib'] > 0
    # --quick leaves out what needs an ONNX export first, and says so (--only brings them back: the test below)
    assert not {name for _, name in names} & {'onnxruntime', 'openvino', 'ours_openvino'}
    assert '--quick: ours_openvino, onnxruntime, openvino skipped' in capsys.readouterr().out


def test_bench_only_times_the_named_contenders(tmp_path, malloc_left_alone) -> None:
    out = tmp_path / 'bench.json'
    argv = ['bench', '--quick', '--width', WIDTH, '--threads', '1', '--dtype', 'fp32', '--no-full', '--suite',
            'infer', '--case', 'b1', '--only', 'ours_fast', 'openvino', '--json', str(out)]  # fmt: skip
    assert main(argv) == 0
    data = json.loads(out.read_text())
    timed = {r['name'] for r in data['rows'] if r['group'].startswith('b1')}
    expected = {'ours_fast', 'openvino'} if data['machine']['openvino'] else {'ours_fast'}
    assert timed == expected
    assert data['peaks_gflop_per_s']['fp32'] > 0  # the peak still runs in the same loop
    if data['machine']['openvino']:
        fast = next(r for r in data['rows'] if r['group'] == 'b1/fp32/channels_last' and r['name'] == 'ours_fast')
        q1, median, q3 = fast['paired_quartiles_vs_openvino']
        assert q1 <= median <= q3 and median == pytest.approx(fast['paired_speedup_vs_openvino'])


def test_bench_only_refuses_an_unknown_contender(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(['bench', '--only', 'tensorrt'])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'tensorrt'" in err and 'ours_onednn_graph' in err


def test_bench_without_a_peer_engine_says_so_and_goes_on(tmp_path, monkeypatch, capsys) -> None:
    real_find_spec = importlib.util.find_spec
    missing = {'openvino', 'onnxruntime'}
    monkeypatch.setattr(
        importlib.util, 'find_spec', lambda name, *a: None if name in missing else real_find_spec(name, *a)
    )
    out = tmp_path / 'bench.json'
    argv = ['bench', '--quick', '--width', WIDTH, '--threads', '1', '--dtype', 'fp32', '--no-full', '--suite', 'infer',
            '--case', 'b1', '--only', 'timm', 'ours_fast', 'openvino', 'onnxruntime', '--json', str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    for engine in missing:
        assert f'{engine} not installed: its rows are skipped (pip install {engine})' in printed
    names = {r['name'] for r in json.loads(out.read_text())['rows']}
    assert not names & {'openvino', 'onnxruntime', 'ours_openvino'} and {'ours_fast', 'timm'} <= names


def _broken_op(kind: str, real_op):
    """``real_op`` as a future torch might ship it: gone, with another signature, or with another answer."""
    if kind == 'missing':
        raise AttributeError("'_OpNamespace' 'mkldnn' object has no attribute")
    if kind == 'signature':

        def changed(*args, **kwargs):
            raise RuntimeError('mkldnn::_convolution_pointwise() Expected a value of type int for argument attr')

        return changed
    return lambda *args: real_op(*args).mul(1.5)  # 'answer': runs, but computes something else


@pytest.mark.parametrize('kind', ['missing', 'signature', 'answer'])
def test_fast_path_falls_back_when_a_private_op_breaks(monkeypatch, kind: str) -> None:
    real_lookup = _onednn._op

    def lookup(namespace: str, name: str):
        op = real_lookup(namespace, name)
        return _broken_op(kind, op) if name == '_convolution_pointwise' else op

    monkeypatch.setattr(_onednn, '_op', lookup)
    _onednn.probe.cache_clear()
    try:
        model = _model('hrnetv2_' + WIDTH)
        x = torch.randn(1, 3, 97, 131)
        with pytest.warns(RuntimeWarning, match=r'fused oneDNN path is off \(.*_convolution_pointwise') as record:
            fast = optimize_for_inference(model)
        assert len(record) == 1
        assert not any(isinstance(m, FusedConv) for m in fast.modules()), 'the broken op is still in the model'
        assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules()), 'the fallback should still fold'
        with torch.no_grad():
            ref, out = model(x), fast(x)
        assert _rel(out, ref) < 1e-4
    finally:
        _onednn.probe.cache_clear()  # the next test probes the real ops again


def test_probe_passes_on_this_torch_and_fast_path_does_not_warn(recwarn) -> None:
    if not torch.backends.mkldnn.is_available():
        pytest.skip('no oneDNN in this torch build')
    assert _onednn.probe(torch.float32) is None
    fast = optimize_for_inference(_model('hrnetv1_' + WIDTH))
    assert any(isinstance(m, FusedConv) for m in fast.modules())
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
