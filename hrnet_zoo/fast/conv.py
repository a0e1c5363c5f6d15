"""One convolution as one oneDNN primitive with its epilogue fused: :class:`FusedConv`, the unit the fast path
(:mod:`.optimize`) builds every block from, and the per-shape choice between oneDNN's direct algorithm and
Winograd F(4x4, 3x3) (:func:`winograd_is_faster`)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from . import _onednn
from .winograd import Winograd3x3

__all__ = ['FusedConv', 'winograd_is_faster']


class FusedConv(nn.Module):
    """A Conv2d run as one oneDNN primitive with a fused epilogue (ReLU, or residual add then ReLU).

    With ``pack=True`` the weight is reordered into oneDNN's blocked layout once per input shape, on the first
    call with that shape, and reused after. The shape matters: a weight packed without it (or for another size)
    still gives the right answer, but oneDNN may then reorder it again on every call, which measured up to 10x
    slower for the stride-2 fuse convolutions into the low-resolution branches (e.g. 192->384 channels at 32x64:
    35 ms against 3 ms). Past ``max_packed`` shapes, the plain weight is used (as eager PyTorch does).
    """

    max_packed = 8

    def __init__(self, conv: nn.Conv2d, relu: bool = False, pack: bool = True, channels_last: bool = True) -> None:
        super().__init__()
        if conv.padding_mode != 'zeros' or isinstance(conv.padding, str):
            raise ValueError('FusedConv needs numeric zero padding')
        self.stride = list(conv.stride)
        self.padding = list(conv.padding)
        self.dilation = list(conv.dilation)
        self.groups = conv.groups
        self.relu = relu
        self.pack = pack
        self.channels_last = channels_last
        self.out_channels = conv.out_channels
        # plain attributes, not parameters: the packed oneDNN tensors have no storage for state_dict or deepcopy
        self.weight = conv.weight.detach().contiguous()
        self.bias = conv.bias.detach() if conv.bias is not None else None
        self._packed: dict[tuple[int, ...], Tensor] = {}
        self.winograd: Winograd3x3 | None = None  # set by optimize_for_inference where it may be faster
        # True: Winograd for every shape; False: per input shape, whichever of the two ran faster on its first call
        self.winograd_always = False
        self._winograd_by_shape: dict[tuple[int, ...], bool] = {}
        # set by optimize_for_inference where the output never leaves the forward: see _reused_output
        self.reuse_output = False
        self._per_thread = threading.local()

    def _weight_for(self, x: Tensor) -> Tensor:
        if not self.pack:
            return self.weight
        shape = tuple(x.shape)
        packed = self._packed.get(shape)
        if packed is None:
            if len(self._packed) >= self.max_packed:
                return self.weight
            conv_args = (self.padding, self.stride, self.dilation, self.groups)
            packed = _onednn.pack_weight(self.weight, *conv_args, list(shape))
            self._packed[shape] = packed
        return packed

    def _in(self, x: Tensor) -> Tensor:
        # oneDNN picks the output layout from the input's; keep every activation NHWC
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _reused_output(self, x: Tensor) -> Tensor:
        """This thread's output buffer of the last call, zeroed, for ``conv(x) + 0`` in place.

        A fresh map above glibc's 32 MiB mmap limit (layer1's 256 channels at 128x256 in fp32) is mapped and
        page-faulted anew on every call: measured 17.9 ms for that 1x1 convolution against 6.6 ms writing into
        an existing map, and zeroing one costs ~2.5 ms.
        """
        n, _, h, w = x.shape
        oh = (h + 2 * self.padding[0] - self.dilation[0] * (self.weight.shape[2] - 1) - 1) // self.stride[0] + 1
        ow = (w + 2 * self.padding[1] - self.dilation[1] * (self.weight.shape[3] - 1) - 1) // self.stride[1] + 1
        shape = (n, self.out_channels, oh, ow)
        buf = getattr(self._per_thread, 'out', None)
        if buf is None or buf.shape != shape or buf.dtype != x.dtype:
            with torch.inference_mode(False):  # a normal tensor: usable under no_grad and inference_mode alike
                buf = torch.empty(shape, dtype=x.dtype, memory_format=torch.channels_last)
            self._per_thread.out = buf
        return buf.zero_()

    def _use_winograd(self, x: Tensor) -> bool:
        """Whether this shape runs by Winograd. Which algorithm wins depends on the CPU as much as on the shape:
        F(4x4, 3x3) measured 1.3-2.2x faster than oneDNN's direct convolution at 96-384 channels on an Intel
        AVX-512/AMX machine, but 0.3-0.9x on an AMD EPYC (Zen 4), except at 384 channels (1.15x). So, like
        ``cudnn.benchmark``, each new shape times both once and keeps the faster."""
        if self.winograd is None:
            return False
        if self.winograd_always:
            return True
        shape = tuple(x.shape)
        choice = self._winograd_by_shape.get(shape)
        if choice is None:
            winograd = self.winograd
            direct_args = (self.padding, self.stride, self.dilation, self.groups, self.relu)
            choice = winograd_is_faster(
                lambda: _onednn.conv(x, self._weight_for(x), self.bias, *direct_args),
                lambda: winograd(x, relu=self.relu),
            )
            self._winograd_by_shape[shape] = choice
        return choice

    def forward(self, x: Tensor) -> Tensor:
        x = self._in(x)
        if self._use_winograd(x):
            assert self.winograd is not None
            return self.winograd(x, relu=self.relu)
        if self.reuse_output and self.channels_last:
            return self.add(x, self._reused_output(x), relu=self.relu, inplace=True)
        return _onednn.conv(
            x, self._weight_for(x), self.bias, self.padding, self.stride, self.dilation, self.groups, self.relu
        )

    def add(self, x: Tensor, other: Tensor, relu: bool, inplace: bool = False) -> Tensor:
        """``conv(x) + other`` (then ReLU), written into ``other`` when ``inplace``."""
        other, x = self._in(other), self._in(x)
        if self._use_winograd(x):
            assert self.winograd is not None
            return self.winograd(x, residual=other, relu=relu, inplace=inplace)
        return _onednn.conv_add(x, other, self._weight_for(x), self.bias, self.padding, self.stride, self.dilation,
                                self.groups, relu, inplace)  # fmt: skip

    def __repr__(self) -> str:
        wino = ', winograd' if self.winograd is not None else ''
        return f'FusedConv(out={self.out_channels}, stride={self.stride}, relu={self.relu}{wino})'


def winograd_is_faster(direct: Callable[[], Tensor], winograd: Callable[[], Tensor], rounds: int = 3) -> bool:
    """Time two ways to compute one convolution, interleaved, after one untimed call each (packing, caches);
    True if Winograd's best time is the lower."""
    direct(), winograd()
    best = {direct: math.inf, winograd: math.inf}
    for _ in range(rounds):
        for run in (direct, winograd):
            start = time.perf_counter()
            run()
            best[run] = min(best[run], time.perf_counter() - start)
    return best[winograd] < best[direct]
