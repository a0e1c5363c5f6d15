"""The private torch ops the fast path runs on, in one place: oneDNN's fused convolutions and weight packing, and
ATen's fused add + ReLU.

They are the ops torch.compile's CPU freezing pass emits, but they have no public API and no stability promise, so
nothing else in the package calls them, and :func:`probe` runs each once on a small layer and compares it with
``F.conv2d`` before the fast path relies on them: a torch release that drops one, changes its signature or its
answer makes ``optimize_for_inference`` fall back to the plain folded model, never fail inside ``forward``.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['add_relu_', 'available', 'conv', 'conv_add', 'pack_weight', 'probe']

# (namespace, name) of every private op below; ``_op`` is the one place that looks them up
_OPS = (
    ('mkldnn', '_convolution_pointwise'),
    ('mkldnn', '_convolution_pointwise_'),
    ('mkldnn', '_reorder_convolution_weight'),
    ('aten', '_add_relu_'),
)
# Max relative error the fast path's checks accept (this probe against F.conv2d, the oneDNN Graph route against the
# eager model): far above rounding (~1e-7 fp32, ~4e-3 bf16), far below a wrong answer.
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 2e-2}


def _op(namespace: str, name: str) -> Any:
    return getattr(getattr(torch.ops, namespace), name)


def _missing_op() -> str | None:
    """The first private op this torch build lacks, as ``namespace.name``, or None."""
    for namespace, name in _OPS:
        try:
            _op(namespace, name)
        except (AttributeError, RuntimeError):
            return f'{namespace}.{name}'
    return None


def available() -> bool:
    """Whether this torch build runs oneDNN and has every private op the fast path calls (by name only)."""
    return torch.backends.mkldnn.is_available() and _missing_op() is None


def pack_weight(
    weight: Tensor, padding: list[int], stride: list[int], dilation: list[int], groups: int, input_shape: list[int]
) -> Tensor:
    """``weight`` reordered into oneDNN's blocked layout for inputs of ``input_shape``."""
    return _op('mkldnn', '_reorder_convolution_weight')(weight, padding, stride, dilation, groups, input_shape)


def conv(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    padding: list[int],
    stride: list[int],
    dilation: list[int],
    groups: int,
    relu: bool,
) -> Tensor:
    """``conv2d(x)`` (then ReLU) as one oneDNN primitive."""
    attr = 'relu' if relu else 'none'
    return _op('mkldnn', '_convolution_pointwise')(x, weight, bias, padding, stride, dilation, groups, attr, [], '')


def conv_add(
    x: Tensor,
    other: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    padding: list[int],
    stride: list[int],
    dilation: list[int],
    groups: int,
    relu: bool,
    inplace: bool,
) -> Tensor:
    """``conv2d(x) + other`` (then ReLU) as one oneDNN primitive, written into ``other`` when ``inplace``."""
    if inplace:
        op, args = _op('mkldnn', '_convolution_pointwise_').binary, (other, x)
    else:
        op, args = _op('mkldnn', '_convolution_pointwise').binary, (x, other)
    unary = 'relu' if relu else None
    return op(*args, weight, bias, padding, stride, dilation, groups, 'add', None, unary, [], '')


def add_relu_(out: Tensor, other: Tensor) -> Tensor:
    """``relu(out + other)`` into ``out`` in one pass instead of two; ATen has it for fp32, not bf16."""
    return _op('aten', '_add_relu_')(out, other)


def relative_error(actual: Tensor, expected: Tensor) -> float:
    """||actual - expected|| / ||expected||, in fp32."""
    return ((actual.float() - expected.float()).norm() / expected.float().norm().clamp_min(1e-12)).item()


@functools.cache
def probe(dtype: torch.dtype = torch.float32) -> str | None:
    """Run every private op once on a small channels_last layer in ``dtype`` and compare it with ``F.conv2d``.

    Returns None when all agree, else one line saying which op failed and how (missing, another signature, or
    another answer). Cached per dtype: it runs once per process, at ``optimize_for_inference`` time.
    """
    if not torch.backends.mkldnn.is_available():
        return 'this torch build has no oneDNN'
    missing = _missing_op()
    if missing is not None:
        return f'{missing} is missing'
    gen = torch.Generator().manual_seed(0)
    nhwc = torch.channels_last
    x = torch.randn(1, 16, 9, 11, generator=gen).to(dtype).contiguous(memory_format=nhwc)
    weight = torch.randn(32, 16, 3, 3, generator=gen).div_(12).to(dtype).contiguous(memory_format=nhwc)
    bias = torch.randn(32, generator=gen).to(dtype)
    other = torch.randn(1, 32, 9, 11, generator=gen).to(dtype).contiguous(memory_format=nhwc)
    args = ([1, 1], [1, 1], [1, 1], 1)
    expected = F.conv2d(x.float(), weight.float(), bias.float(), padding=1)
    checks = {
        '_reorder_convolution_weight + _convolution_pointwise': (
            lambda: conv(x, pack_weight(weight, *args, list(x.shape)), bias, *args, relu=True),
            expected.relu(),
        ),
        '_convolution_pointwise.binary': (
            lambda: conv_add(x, other, weight, bias, *args, relu=True, inplace=False),
            (expected + other.float()).relu(),
        ),
        '_convolution_pointwise_.binary': (
            lambda: conv_add(x, other.clone(), weight, bias, *args, relu=False, inplace=True),
            expected + other.float(),
        ),
    }
    if dtype == torch.float32:  # the fast path calls it in fp32 only
        checks['aten._add_relu_'] = (lambda: add_relu_(other.clone(), x.repeat(1, 2, 1, 1)),
                                     (other + x.repeat(1, 2, 1, 1)).float().relu())  # fmt: skip
    for name, (run, want) in checks.items():
        try:
            got = run()
        except (AttributeError, RuntimeError, TypeError, NotImplementedError) as err:
            return f'{name} failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ""}'.rstrip(': ')
        if not isinstance(got, Tensor) or got.shape != want.shape:
            return (
                f'{name} returned {getattr(got, "shape", type(got).__name__)}, expected a tensor of {tuple(want.shape)}'
            )
        error = relative_error(got, want)
        if not error <= TOLERANCE.get(dtype, 2e-2):
            return f'{name} disagrees with F.conv2d in {dtype}: relative error {error:.2g}'
    return None
