"""The private torch ops the fast path runs on, in one place: oneDNN's fused convolutions and weight packing, and
ATen's fused add + ReLU.

They are the ops torch.compile's CPU freezing pass emits, but they have no public API and no stability promise, so
nothing else in the package calls them and :func:`available` probes for them before the fast path relies on them.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ['add_relu_', 'available', 'conv', 'conv_add', 'pack_weight']


def available() -> bool:
    """Whether this torch build runs oneDNN and has the fused convolution ops the fast path calls."""
    if not torch.backends.mkldnn.is_available():
        return False
    mkldnn = torch.ops.mkldnn
    return all(hasattr(mkldnn, op) for op in ('_convolution_pointwise', '_convolution_pointwise_',
                                                  '_reorder_convolution_weight'))  # fmt: skip


def pack_weight(
    weight: Tensor, padding: list[int], stride: list[int], dilation: list[int], groups: int, input_shape: list[int]
) -> Tensor:
    """``weight`` reordered into oneDNN's blocked layout for inputs of ``input_shape``."""
    return torch.ops.mkldnn._reorder_convolution_weight(weight, padding, stride, dilation, groups, input_shape)


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
    return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, padding, stride, dilation, groups, attr, [], '')


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
        op, args = torch.ops.mkldnn._convolution_pointwise_.binary, (other, x)
    else:
        op, args = torch.ops.mkldnn._convolution_pointwise.binary, (x, other)
    unary = 'relu' if relu else None
    return op(*args, weight, bias, padding, stride, dilation, groups, 'add', None, unary, [], '')


def add_relu_(out: Tensor, other: Tensor) -> Tensor:
    """``relu(out + other)`` into ``out`` in one pass instead of two; ATen has it for fp32, not bf16."""
    return torch.ops.aten._add_relu_(out, other)
