"""Winograd F(4x4, 3x3) for the fp32 3x3 stride-1 convolutions of the fast path (Lavin & Gray, CVPR 2016).

Why: on the 2-core AVX-512 machine, oneDNN's direct fp32 convolutions in HRNet already run at 215-230 GFLOP/s, the
machine's fp32 matmul peak, so the only way to be faster is fewer multiplications. Winograd F(4x4, 3x3)
computes each 4x4 output tile from a 6x6 input tile with 36 multiply-adds per channel pair instead of 144
(4x fewer), at the cost of transforms that are linear in the map size. It wins where the channel count is high
enough for the per-tile matrix products to dominate the transforms: measured per convolution at the HRNet-W48
branch sizes for a 512x1024 input, 1.3x at 96 channels, 1.9x at 192, 2.2x at 384, but 0.8x at 48; in the whole
network the 64-channel layer1 convolutions got slower (49 -> 79 ms) and w18's 72/144-channel branches no faster,
hence :data:`MIN_CHANNELS`. Its rounding differs from direct convolution by ~3e-6 relative per convolution
(float64 weight transform, fp32 products), well inside the fast path's 1e-4 bound; it is not used for bf16,
where the transforms' coefficients (up to 8) would cost too much of bf16's 8-bit mantissa.

The transform matrices are the standard ones for interpolation points 0, +-1, +-2 and infinity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['Winograd3x3', 'WinogradConv2d', 'MIN_CHANNELS', 'suits']

MIN_CHANNELS = 96  # both input and output channels; below this the direct convolution measured as fast or faster

_TILE_OUT, _TILE_IN = 4, 6
_BT = [
    [4, 0, -5, 0, 1, 0],
    [0, -4, -4, 1, 1, 0],
    [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0],
    [0, 2, -1, -2, 1, 0],
    [0, 4, 0, -5, 0, 1],
]
_G = [
    [1 / 4, 0, 0],
    [-1 / 6, -1 / 6, -1 / 6],
    [-1 / 6, 1 / 6, -1 / 6],
    [1 / 24, 1 / 12, 1 / 6],
    [1 / 24, -1 / 12, 1 / 6],
    [0, 0, 1],
]
_AT = [
    [1, 1, 1, 1, 1, 0],
    [0, 1, -1, 2, -2, 0],
    [0, 1, 1, 4, 4, 0],
    [0, 1, -1, 8, -8, 1],
]


def suits(weight: Tensor, stride: list[int] | tuple[int, ...], padding: list[int] | tuple[int, ...] | str,
          dilation: list[int] | tuple[int, ...], groups: int) -> bool:  # fmt: skip
    """Whether a convolution is one this module computes, and one where it measured faster (fp32, CPU)."""
    out_channels, in_channels, kh, kw = weight.shape
    return (
        (kh, kw) == (3, 3)
        and list(stride) == [1, 1]
        and list(padding) == [1, 1]
        and list(dilation) == [1, 1]
        and groups == 1
        and weight.dtype == torch.float32
        and weight.device.type == 'cpu'
        and min(in_channels, out_channels) >= MIN_CHANNELS
    )


class Winograd3x3:
    """A 3x3, stride 1, padding 1 convolution (with bias, optional residual add and ReLU) by Winograd F(4x4, 3x3).

    Activations are NCHW tensors in channels_last memory, as everywhere in the fast path; the result is
    channels_last too.
    """

    max_cached = 8  # input sizes whose tiled bias is kept

    def __init__(self, weight: Tensor, bias: Tensor | None) -> None:
        f64 = dict(dtype=torch.float64)
        bt, g, at = torch.tensor(_BT, **f64), torch.tensor(_G, **f64), torch.tensor(_AT, **f64)
        # U[i, j] = G w G^T per (out, in) channel pair, laid out (36, in, out) for the batched product
        u = torch.einsum('ip,kcpq,jq->ijck', g, weight.detach().double(), g)
        self.u = u.reshape(_TILE_IN * _TILE_IN, *u.shape[2:]).to(weight.dtype).contiguous()
        self.input_transform = torch.kron(bt, bt).to(weight.dtype)  # (36, 36): B^T d B on a flattened tile
        self.output_transform = torch.kron(at, at).to(weight.dtype)  # (16, 36): A^T m A
        out_channels = weight.shape[0]
        self.bias = bias.detach() if bias is not None else weight.new_zeros(out_channels)
        self._tiled_bias: dict[int, Tensor] = {}  # the bias repeated per tile, by tile count (measured ~15% of a call)

    def _bias_for(self, tiles: int) -> Tensor:
        bias = self._tiled_bias.get(tiles)
        if bias is None:
            bias = self.bias.repeat(tiles)
            if len(self._tiled_bias) < self.max_cached:
                self._tiled_bias[tiles] = bias
        return bias

    def __call__(self, x: Tensor, residual: Tensor | None = None, relu: bool = False, inplace: bool = False) -> Tensor:
        """``conv(x) (+ residual) (then ReLU)``; with ``inplace`` the result is written into ``residual``."""
        n, c, h, w = x.shape
        m, a = _TILE_OUT, _TILE_IN
        th, tw = -(-h // m), -(-w // m)
        tiles = n * th * tw
        # zero-padded NHWC copy: 1 pixel of conv padding on top/left, enough on bottom/right for whole tiles
        hp, wp = th * m + 2, tw * m + 2
        padded = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, wp - w - 1, 1, hp - h - 1))
        # every overlapping 6x6 tile, gathered as (36, tiles * c): a strided view, then one copy
        view = padded.as_strided((a, a, n, th, tw, c), (wp * c, c, hp * wp * c, m * wp * c, m * c, 1))
        d = view.reshape(a * a, tiles * c)
        v = torch.mm(self.input_transform, d).view(a * a, tiles, c)
        prod = torch.bmm(v, self.u)  # (36, tiles, out): the 36 independent channel products
        k = prod.shape[-1]
        y = torch.addmm(self._bias_for(tiles), self.output_transform, prod.view(a * a, tiles * k))
        y = y.view(m, m, n, th, tw, k).permute(2, 3, 0, 4, 1, 5)  # (n, th, 4, tw, 4, k)
        if (h, w) != (th * m, tw * m):  # partial tiles: assemble whole tiles, then crop
            y = y.reshape(n, th * m, tw * m, k)[:, :h, :w]
        if inplace:
            if residual is None:
                raise ValueError('inplace needs a residual to write into')
            out = residual
        else:
            out = torch.empty((n, k, h, w), dtype=x.dtype, memory_format=torch.channels_last)
        out_nhwc = out.permute(0, 2, 3, 1)
        target = out_nhwc.view(n, th, m, tw, m, k) if y.dim() == 6 else out_nhwc
        if residual is not None:
            res_nhwc = residual.permute(0, 2, 3, 1)
            torch.add(y, res_nhwc.view(target.shape) if y.dim() == 6 else res_nhwc, out=target)
            return out.relu_() if relu else out
        if relu:
            torch.clamp_min(y, 0, out=target)
        else:
            target.copy_(y)
        return out


class WinogradConv2d(nn.Module):
    """A module that computes a 3x3 stride-1 Conv2d (with its bias) by :class:`Winograd3x3`, on channels_last input.

    It stands in for the ``nn.Conv2d`` in a model that ``torch.jit.trace`` records (the oneDNN Graph route,
    :mod:`.onednn_graph`): the trace then holds the transforms and the batched product as plain ATen ops. The
    transformed weights are built once and shared by every trace that uses them.
    """

    def __init__(self, winograd: Winograd3x3) -> None:
        super().__init__()
        self.winograd = winograd

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> WinogradConv2d:
        if not suits(conv.weight, conv.stride, conv.padding, conv.dilation, conv.groups):
            raise ValueError(f'Winograd F(4x4, 3x3) does not compute {conv}')
        return cls(Winograd3x3(conv.weight, conv.bias))

    def forward(self, x: Tensor) -> Tensor:
        return self.winograd(x.contiguous(memory_format=torch.channels_last))
