"""``optimize_for_inference(model, backend='onednn_graph')``: the folded model traced and run by torch's oneDNN Graph.

Why: every convolution of the fused path (:mod:`.conv`) goes through ``torch.ops.mkldnn._convolution_pointwise``, which
builds its oneDNN primitive descriptor on each call: measured ~28 us per call on the 2-core AVX-512 machine even for a
4-channel 2x2 map, so ~9 ms of fixed cost over the ~300 convolutions of a forward, about what OpenVINO spends on a whole
forward at 64x64. oneDNN Graph (``torch.jit.enable_onednn_fusion``) compiles each convolution with its bias, residual
add and ReLU into a partition once per input shape and then only executes it. Each input shape gets its own frozen
graph, compiled on its first call: a graph compiled for one shape runs any other through per-partition fallbacks, and
its residual adds then copy their identity map instead of summing into it in place (ONEDNN_VERBOSE, HRNetV2-W48 at
8x224x224 fp32: 129 such copies per forward before, 14 after). Measured against OpenVINO in the same run (2026-12-05,
AMD EPYC VM without AMX, ``--only``, 15 rounds at batch 1, 25 at batch 8): ahead in every width and precision at batch 1
at 512x1024 (1.03x-1.74x) and at batch 8 (1.02x-1.26x), except W48 in fp32 at batch 8, level at 1.00x
(benchmarks/README.md).

In fp32, the wide 3x3 convolutions (:func:`.winograd.suits`) may run by Winograd F(4x4, 3x3) inside the graph
(:class:`.winograd.WinogradConv2d`, traced as plain ATen ops): oneDNN's direct fp32 convolutions already run at
this machine's fp32 peak, so fewer multiplications are the one way left to be faster. Which wins depends on the CPU
and the shape, so by default (``winograd=None``) each new input shape times each candidate's (input, weight) shape
pair alone, and where Winograd won, the whole graph with and without it; the faster graph is kept
(:attr:`OneDNNGraphModule.winograd_by_shape` says which convolutions it runs by Winograd). Measured with
``hrnet-zoo bench`` on the 2-core AVX-512/AMX machine, 2026-12-06, fp32, against OpenVINO in the same loop:
HRNetV2-W48's branches at 1x512x1024 0.99x -> 1.12x, at 8x224x224 0.98x -> 1.04x (1.02x over 25 rounds); W18 at
8x224x224 keeps the direct graph, as its 144-channel convolutions are faster by Winograd alone but not in the graph.

The route runs on TorchScript (``torch.jit.trace`` and ``torch.jit.freeze``), which torch 2.14 marks deprecated, and
on a process-wide switch. So, as the fused path probes its private ops, :class:`OneDNNGraphModule` checks the
traced model against the eager one at a size it was not traced at, with fusion on, and counts the fused
partitions; ``optimize_for_inference`` warns and returns the fused torch path if any of that fails. The switch is
turned on around each call only, and put back as it was.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import partial

import torch
from torch import Tensor, nn

from ._onednn import TOLERANCE, relative_error
from .conv import winograd_is_faster
from .winograd import WinogradConv2d, suits

__all__ = ['OneDNNGraphModule', 'GraphFusionError', 'available']

# (N, H, W) of the trace and of the check: different sizes and batches, so a shape baked into the trace shows
_TRACE_SHAPE = (1, 64, 96)
_CHECK_SHAPE = (2, 96, 64)
# The profiling executor optimises a graph (and hands it to oneDNN Graph) after it has seen it run this often
_WARM_RUNS = 3
# Frozen graphs kept, one per input shape; the least recently used goes beyond this (each holds its compiled
# partitions, and a server fed every image size would otherwise grow without bound)
MAX_SHAPES = 8


class GraphFusionError(RuntimeError):
    """oneDNN Graph fusion is missing from this torch, fails on the model, or gives another answer."""


def available() -> bool:
    """Whether this torch has oneDNN and the oneDNN Graph switch (by name only; the check runs the model)."""
    return torch.backends.mkldnn.is_available() and callable(getattr(torch.jit, 'enable_onednn_fusion', None))


@contextmanager
def _fusion_on() -> Iterator[None]:
    before = torch.jit.onednn_fusion_enabled()
    torch.jit.enable_onednn_fusion(True)
    try:
        yield
    finally:
        torch.jit.enable_onednn_fusion(before)


@contextmanager
def _quiet_jit() -> Iterator[None]:
    """Tracing and freezing without their warnings: both are deprecated in torch 2.14, and the input checks'
    Python comparisons are traced as constants; the check at another size and batch is what says the trace is
    right."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', category=FutureWarning, message=r'.*torch\.jit')
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        yield


def _count_partitions(nodes: Iterable[torch._C.Node]) -> int:
    """oneDNN Graph partitions among ``nodes``, including those nested in the blocks of their shape guards."""
    count = 0
    for node in nodes:
        count += node.kind().startswith('prim::oneDNNFusionGroup')
        count += sum(_count_partitions(block.nodes()) for block in node.blocks())
    return count


def _as_list(out: Tensor | list[Tensor] | tuple[Tensor, ...]) -> list[Tensor]:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _winograd_candidates(model: nn.Module) -> dict[str, nn.Conv2d]:
    """The convolutions of ``model`` that Winograd F(4x4, 3x3) computes (fp32, 3x3, stride 1, wide), by name."""
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d)
        and m.padding_mode == 'zeros'
        and suits(m.weight, m.stride, m.padding, m.dilation, m.groups)
    }


def _conv_input_shapes(model: nn.Module, x: Tensor, convs: dict[str, nn.Conv2d]) -> dict[str, tuple[int, ...]]:
    """The input shape of each of ``convs`` in a forward of ``model`` on ``x``."""
    shapes: dict[str, tuple[int, ...]] = {}

    def record(name: str, _: nn.Module, args: tuple[Tensor, ...]) -> None:  # None: the call's input is unchanged
        shapes.setdefault(name, tuple(args[0].shape))

    hooks = [conv.register_forward_pre_hook(partial(record, name)) for name, conv in convs.items()]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition('.')
    setattr(model.get_submodule(parent) if parent else model, child, module)


class _TupleOutput(nn.Module):
    """The model with a list output returned as a tuple, which ``torch.jit.trace`` accepts."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return tuple(_as_list(self.model(x)))


class OneDNNGraphModule(nn.Module):
    """A folded HRNet model (eval, BatchNorm folded, channels_last; any head, or ``features_only``) traced, frozen
    and run with oneDNN Graph fusion.

    Call it as the model itself: an (N, C, H, W) tensor in the model's dtype (fp32 or bf16) in, the model's tensor
    or list of tensors out. Each new input shape gets its own frozen graph, profiled and compiled on the first call
    with that shape, which costs a few forwards; the graphs of the last :data:`MAX_SHAPES` shapes are kept. Calls
    take turns, since the fusion switch is process-wide. Raises :class:`GraphFusionError` where the route does not work.
    """

    def __init__(self, folded: nn.Module, winograd: bool | None = None) -> None:
        super().__init__()
        if not available():
            raise GraphFusionError('this torch has no oneDNN Graph fusion (torch.jit.enable_onednn_fusion)')
        param = next(folded.parameters())
        self.in_chans, self.dtype = param.shape[1], param.dtype
        if self.dtype not in TOLERANCE:
            raise ValueError(f"backend='onednn_graph' runs in torch.float32 or torch.bfloat16, not {self.dtype}")
        self._lock = threading.Lock()
        self._graphs: OrderedDict[tuple[int, ...], torch.jit.ScriptModule] = OrderedDict()
        # the folded model, traced again where Winograd is chosen; in a list, so it is not registered as a
        # submodule beside the trace that already holds its weights
        self._folded = [_TupleOutput(folded).eval()]
        self.winograd = winograd
        self._candidates = {} if winograd is False else _winograd_candidates(self._folded[0])
        self._winograds: dict[str, WinogradConv2d] = {}  # built on first use, then shared by every trace
        self.winograd_by_shape: OrderedDict[tuple[int, ...], tuple[str, ...]] = OrderedDict()
        trace_input, check_input = self._example(*_TRACE_SHAPE, seed=0), self._example(*_CHECK_SHAPE, seed=1)
        with torch.no_grad():
            eager = folded(check_input)
            self.returns_list = isinstance(eager, (list, tuple))
            try:
                self._traced = self._trace(trace_input, ())
                with self._lock, _fusion_on():
                    got = self._graph_for(check_input)(check_input)
                    optimized = torch.jit.last_executed_optimized_graph()
            except (RuntimeError, TypeError, ValueError) as err:
                first = str(err).splitlines()[0] if str(err) else ''
                raise GraphFusionError(f'tracing or running the model failed: {type(err).__name__}: {first}') from err
        self.fused_partitions = _count_partitions(optimized.nodes())
        if self.fused_partitions == 0:
            raise GraphFusionError('oneDNN Graph fused no partition of the traced model')
        expected = _as_list(eager)
        if len(got) != len(expected):
            raise GraphFusionError(f'the traced model returned {len(got)} outputs, the eager one {len(expected)}')
        self.check_error = max(relative_error(g, e) for g, e in zip(got, expected))
        if not self.check_error <= TOLERANCE[self.dtype]:
            raise GraphFusionError(
                f'the traced model disagrees with the eager one in {self.dtype}: relative error {self.check_error:.2g}'
            )

    def _graph_for(self, x: Tensor) -> torch.jit.ScriptModule:
        """The frozen graph that serves inputs of ``x``'s shape, already optimised for it.

        A shape not seen yet gets a graph frozen anew from the trace, and its profiling runs on ``x`` now (they
        run unfused), so this call costs a few forwards and each later call at that shape runs the compiled
        partitions. Why one graph per shape: the profiling executor compiles a graph's partitions for the shapes
        it profiled and guards them on those; an input of another shape fails every guard and runs each
        partition through a fallback function, compiled on its own (measured: HRNetV2-W48's four branches at
        8x224x224 fp32, 561 -> 524 and 569 -> 493 ms in two pairs of processes, when profiled at the shape that
        ran). A freeze shares the trace's weights and takes ~0.3 s for W48.
        """
        shape = tuple(x.shape)
        graph = self._graphs.get(shape)
        if graph is None:
            chosen = self._winograd_choice(x)
            if chosen and self.winograd:
                graph = self._compile(x, chosen)
            else:
                graph = self._compile(x, ())
                if chosen:
                    # each convolution was timed alone; in the whole graph Winograd also gives up the fused
                    # epilogue and streams 4x the weights, so the two graphs are timed whole, and the faster kept
                    with_winograd = self._compile(x, chosen)
                    if winograd_is_faster(partial(graph, x), partial(with_winograd, x)):
                        graph = with_winograd
                    else:
                        chosen = ()
            self._graphs[shape], self.winograd_by_shape[shape] = graph, chosen
            while len(self._graphs) > MAX_SHAPES:
                self.winograd_by_shape.pop(self._graphs.popitem(last=False)[0])
            # transformed weights are 4x the convolution's: keep only those a kept graph runs (W48: ~0.9 GB)
            used = {name for names in self.winograd_by_shape.values() for name in names}
            self._winograds = {name: m for name, m in self._winograds.items() if name in used}
        self._graphs.move_to_end(shape)
        self.winograd_by_shape.move_to_end(shape)
        return graph

    def _compile(self, x: Tensor, winograd: tuple[str, ...]) -> torch.jit.ScriptModule:
        """A frozen graph for ``x``'s shape (Winograd for the convolutions named), its profiling runs done."""
        traced = self._trace(x, winograd) if winograd else self._traced
        with _quiet_jit():
            graph = torch.jit.freeze(traced)
        for _ in range(_WARM_RUNS - 1):
            graph(x)
        return graph

    def _trace(self, x: Tensor, winograd: tuple[str, ...]) -> torch.jit.ScriptModule:
        """The folded model traced on ``x``, with the convolutions named in ``winograd`` computed by Winograd.

        A trace with Winograd is made for its own input shape: the tiling (tile counts, the crop of partial
        tiles) is recorded for that shape.
        """
        model = self._folded[0]
        originals = {name: model.get_submodule(name) for name in winograd}
        try:
            for name in winograd:
                _set_submodule(model, name, self._winograd(name))
            with _quiet_jit():
                return torch.jit.trace(model, x, check_trace=False)
        finally:
            for name, conv in originals.items():
                _set_submodule(model, name, conv)

    def _winograd(self, name: str) -> WinogradConv2d:
        module = self._winograds.get(name)
        if module is None:
            module = self._winograds[name] = WinogradConv2d.from_conv(self._candidates[name])
        return module

    def _winograd_choice(self, x: Tensor) -> tuple[str, ...]:
        """The candidate convolutions that run by Winograd for inputs of ``x``'s shape: all of them with
        ``winograd=True``; with None, those whose (input shape, weight shape) timed faster by Winograd than by
        oneDNN's direct convolution, once per such pair (which wins depends on the CPU: :mod:`.conv`)."""
        if not self._candidates:
            return ()
        if self.winograd:
            return tuple(self._candidates)
        keys = {  # the timing depends on the shapes only, so each (input, weight) shape pair is timed once
            name: (shape, tuple(self._candidates[name].weight.shape))
            for name, shape in _conv_input_shapes(self._folded[0], x, self._candidates).items()
        }
        faster: dict[tuple[tuple[int, ...], tuple[int, ...]], bool] = {}
        for name, key in keys.items():
            if key not in faster:
                sample = torch.randn(key[0], dtype=x.dtype).contiguous(memory_format=torch.channels_last)
                direct, winograd = partial(self._candidates[name], sample), partial(self._winograd(name), sample)
                faster[key] = winograd_is_faster(direct, winograd)
        return tuple(name for name, key in keys.items() if faster[key])

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        """The input shapes that have a frozen graph kept, least recently used first."""
        return tuple(self._graphs)

    def _example(self, batch: int, height: int, width: int, seed: int) -> Tensor:
        x = torch.randn(batch, self.in_chans, height, width, generator=torch.Generator().manual_seed(seed))
        return x.to(self.dtype).contiguous(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f'expected an (N, {self.in_chans}, H, W) image tensor, got shape {tuple(x.shape)}')
        if x.dtype != self.dtype:
            raise TypeError(f'the model runs in {self.dtype}, got a {x.dtype} input; cast it (x.to({self.dtype}))')
        # the graph was traced on NHWC memory; its fused partitions are guarded on those strides
        x = x.contiguous(memory_format=torch.channels_last)
        with self._lock, _fusion_on(), torch.no_grad():
            out = self._graph_for(x)(x)
        return list(out) if self.returns_list else out[0]

    def extra_repr(self) -> str:
        return f'dtype={self.dtype}, fused_partitions={self.fused_partitions}, winograd={self.winograd}'
