"""An inference fast path for the HRNet models: :func:`optimize_for_inference`.

What it does, and why. Measured with ``hrnet-zoo bench`` on the 2-core AVX-512/AMX machine, quiet, batch 1 at
512x1024 (``benchmarks/README.md``), against timm's ``hrnet_<w>`` features in the same precision and layout:
fp32 channels_last 1.61x (w18_small_v2), 1.59x (w18), 1.47x (w48); bf16 2.36x, 2.06x, 1.61x. oneDNN's direct
fp32 convolutions already run near the machine's matmul peak, so beyond removing every pass that is not a
convolution the only fp32 gain left is fewer multiplications (5):

1. eval mode, every BatchNorm folded into the convolution before it (torch's ``fuse_conv_bn_eval``), so
   no separate normalisation pass over each feature map;
2. channels_last (NHWC) weights and activations, oneDNN's native layout on CPU: eager PyTorch otherwise
   reorders every activation to a blocked layout and back around each convolution;
3. on CPU with oneDNN (``fuse_ops=True``), each convolution runs as one oneDNN primitive with its
   epilogue fused: conv + bias + ReLU, and conv + bias + residual add (+ ReLU) for the second convolution
   of every residual block and for the stride-2 fuse paths of the exchange units (the ops that
   ``torch.compile``'s freezing pass emits). Weights are packed into oneDNN's blocked layout once per
   input shape instead of on every call. In the exchange units, nearest upsampled paths by powers of 2 are summed
   from the lowest resolution up, so each row resizes one map to its size however many branches feed it (in
   fp32 with 32+ channels as a broadcast add, without materialising the resized map); layer1's running map
   reuses one buffer per thread instead of a fresh 33 MB one;
4. optionally bf16 weights (``dtype=torch.bfloat16``; the model then expects bf16 input), which runs on
   AMX tiles where the CPU has them;
5. in fp32, the 3x3 stride-1 convolutions with at least 96 channels in and out by Winograd F(4x4, 3x3)
   (:mod:`hrnet_zoo.fast.winograd`): 4x fewer multiplications, measured 1.3x-2.2x faster per convolution on the
   Intel machine, but mostly slower on an AMD EPYC, so each input shape keeps whichever timed faster;
6. optionally (``reuse_memory=True``, process-wide) glibc's malloc keeps freed memory instead of returning it to
   the OS after every forward (:mod:`hrnet_zoo.fast.memory`): 1.14x for the full V2 model at 1024x2048.

Outputs match the eager fp32 model to ~1e-6 relative in fp32 (the tests require 1e-4) and to ~1e-2
in bf16 (the tests require 2e-2); relative error means ``||a - b|| / ||b||`` over each output tensor.
"""

from __future__ import annotations

import copy
import warnings

import torch
import torch.nn.functional as F
from timm.models.resnet import BasicBlock, Bottleneck
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..models.backbone import ExchangeUnit, FuseDown, FuseIdentity, FuseUp
from . import _onednn
from .conv import FusedConv
from .memory import reuse_freed_memory
from .onednn_graph import GraphFusionError, OneDNNGraphModule
from .openvino_backend import PRECISIONS, OpenVINOModule
from .winograd import Winograd3x3, suits

__all__ = ['BACKENDS', 'optimize_for_inference', 'fold_batchnorm', 'FusedConv']

# 'torch': our fused oneDNN path below; 'openvino': our checked export compiled by OpenVINO (.openvino_backend)
BACKENDS = ('torch', 'onednn_graph', 'openvino')


def _identity_like(m: nn.Module | None) -> bool:
    return m is None or isinstance(m, nn.Identity)


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every eval-mode BatchNorm2d into the Conv2d it follows, in place; returns how many were folded.

    Two patterns cover HRNet (and timm's ResNet blocks inside it): ``Sequential(..., Conv2d, BatchNorm2d, ...)``
    and sibling attributes ``conv{k}`` / ``bn{k}`` (the stem, and the blocks' conv1/bn1 ... conv3/bn3). The
    BatchNorm becomes ``nn.Identity`` so indices and forwards stay valid.
    """
    folded = 0
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                conv, bn = module[i], module[i + 1]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                    module[i] = fuse_conv_bn_eval(conv, bn)
                    module[i + 1] = nn.Identity()
                    folded += 1
        for k in range(1, 4):
            conv, bn = getattr(module, f'conv{k}', None), getattr(module, f'bn{k}', None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                setattr(module, f'conv{k}', fuse_conv_bn_eval(conv, bn))
                setattr(module, f'bn{k}', nn.Identity())
                folded += 1
    return folded


class FusedBasicBlock(nn.Module):
    """timm's BasicBlock as conv1+ReLU, then conv2 + shortcut + ReLU in one primitive.

    ``overwrite_input``: write the result into the block's input (the identity shortcut) instead of a fresh
    tensor. A fresh multi-MB tensor costs page faults on every call with glibc's allocator (e.g. 13 ms for a
    33 MB map against 11 ms for the convolution writing it); the backbone sets it where nothing else reads
    the input afterwards.
    """

    overwrite_input = False

    def __init__(self, block: BasicBlock, **kw) -> None:
        super().__init__()
        self.conv1 = FusedConv(block.conv1, relu=True, **kw)
        self.conv2 = FusedConv(block.conv2, **kw)
        self.downsample = _fuse_conv_seq(block.downsample, **kw) if block.downsample is not None else None

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        inplace = self.downsample is not None or self.overwrite_input
        return self.conv2.add(self.conv1(x), shortcut, relu=True, inplace=inplace)


class FusedBottleneck(nn.Module):
    """timm's Bottleneck as conv1+ReLU, conv2+ReLU, then conv3 + shortcut + ReLU in one primitive
    (``overwrite_input`` as for :class:`FusedBasicBlock`)."""

    overwrite_input = False

    def __init__(self, block: Bottleneck, **kw) -> None:
        super().__init__()
        self.conv1 = FusedConv(block.conv1, relu=True, **kw)
        self.conv2 = FusedConv(block.conv2, relu=True, **kw)
        self.conv3 = FusedConv(block.conv3, **kw)
        self.downsample = _fuse_conv_seq(block.downsample, **kw) if block.downsample is not None else None

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        inplace = self.downsample is not None or self.overwrite_input
        return self.conv3.add(self.conv2(self.conv1(x)), shortcut, relu=True, inplace=inplace)


def _fuse_conv_seq(seq: nn.Module, **kw) -> FusedConv:
    """A folded ``Sequential(Conv2d, Identity[, ReLU])`` (conv_bn) as one FusedConv."""
    layers = [m for m in seq if not isinstance(m, nn.Identity)]
    if not (isinstance(layers[0], nn.Conv2d) and all(isinstance(m, nn.ReLU) for m in layers[1:]) and len(layers) <= 2):
        raise TypeError(f'cannot fuse {seq}')
    return FusedConv(layers[0], relu=len(layers) == 2, **kw)


def _nhwc_blocks(t: Tensor, sh: int, sw: int) -> Tensor:
    """An NHWC (channels_last) map viewed as (N, sh, H/sh, sw, W/sw, C): nearest upsampling into it by (H/sh, W/sw)
    is a broadcast over the block axes."""
    n, c, h, w = t.shape
    return t.permute(0, 2, 3, 1).view(n, sh, h // sh, sw, w // sw, c)


def _broadcast_ok(big: Tensor, small: Tensor, mode: str) -> bool:
    """Whether ``big + nearest(small)`` can be a broadcast add, and measured faster than upsample-then-add.

    It only pays in fp32 with 32+ channels: measured per call, bf16 broadcast adds ran 4x slower than upsampling
    then adding (2.2 ms against 0.5 ms at 48x128x256), and fp32 ones with 18 channels 1.3x slower.
    """
    (h, w), (sh, sw) = big.shape[-2:], small.shape[-2:]
    return (
        mode == 'nearest'
        and big.dtype == torch.float32
        and big.shape[1] >= 32
        and h % sh == 0
        and w % sw == 0
        and big.is_contiguous(memory_format=torch.channels_last)
        and small.is_contiguous(memory_format=torch.channels_last)
    )


def _upsample_add(
    base: Tensor, small: Tensor, mode: str, align_corners: bool | None, relu: bool = False, inplace: bool = False
) -> Tensor:
    """``base + resize(small, base's size)`` (then ReLU): a fresh tensor, or ``base`` itself when ``inplace``."""
    if _broadcast_ok(base, small, mode):
        out = base if inplace else torch.empty_like(base, memory_format=torch.channels_last)
        sh, sw = small.shape[-2:]
        # (N, sh, 1, sw, 1, C) against (N, sh, H/sh, sw, W/sw, C): each small pixel meets its whole block
        torch.add(_nhwc_blocks(base, sh, sw), small.permute(0, 2, 3, 1).unsqueeze(2).unsqueeze(4),
                  out=_nhwc_blocks(out, sh, sw))  # fmt: skip
        return out.relu_() if relu else out
    resized = F.interpolate(small, size=list(base.shape[-2:]), mode=mode, align_corners=align_corners)
    out, other = (base, resized) if inplace else (resized, base)
    if relu and out.dtype == torch.float32:
        return _onednn.add_relu_(out, other)
    out.add_(other)
    return out.relu_() if relu else out


def _chains_exactly(sizes: list[tuple[int, int]]) -> bool:
    """Whether nearest resizes through ``sizes`` (ascending) compose exactly: every step a power-of-2 factor, so
    the source index floor(i * in / out) is exact in floating point and floor(floor(i / a) / b) = floor(i / ab)."""

    def pow2(a: int, b: int) -> bool:
        return a % b == 0 and (a // b) & (a // b - 1) == 0

    return all(pow2(h, sh) and pow2(w, sw) for (sh, sw), (h, w) in zip(sizes, sizes[1:]))


class FusedExchangeUnit(nn.Module):
    """An ExchangeUnit whose fuse rows are computed with fewer passes over the large maps.

    Row ``i`` is ``relu(x_i + sum_j up(conv_j(x_j)) + sum_j down_j(x_j))``. With nearest upsampling by powers of 2,
    the upsampled terms are summed from the lowest resolution up (``up(a) + up(b) = up(up(a') + b)``, exact for
    nearest), so only one map is resized to row ``i``'s size however many branches feed it: each partial sum is
    added into the next branch's 1x1 convolution by oneDNN. The stride-2 paths then add into that fresh
    accumulator, the last one with the ReLU fused.
    """

    def __init__(self, unit: ExchangeUnit, **kw) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [nn.Sequential(*[_fuse_block(b, **kw) for b in branch]) for branch in unit.branches]
        )
        self.ups: list[list[tuple[int, FusedConv]]] = []  # per row: (source branch, 1x1 conv), lowest res first
        # per row: (source branch, stride-2 steps); a tuple, as slicing a ModuleList builds a new module per call
        self.downs: list[list[tuple[int, tuple[FusedConv, ...]]]] = []
        mods = nn.ModuleList()
        for row in unit.fuse_layers:
            ups, downs = [], []
            for j, fuse in enumerate(row):
                if isinstance(fuse, FuseIdentity):
                    continue
                if isinstance(fuse, FuseUp):
                    conv = FusedConv(next(m for m in fuse if isinstance(m, nn.Conv2d)), **kw)
                    conv.upsample_mode, conv.align_corners = fuse.upsample_mode, fuse.align_corners
                    ups.append((j, conv))
                    mods.append(conv)
                elif isinstance(fuse, FuseDown):
                    steps = nn.ModuleList([_fuse_conv_seq(step, **kw) for step in fuse])
                    downs.append((j, tuple(steps)))
                    mods.append(steps)
                else:
                    raise TypeError(f'unknown fuse path {type(fuse).__name__}')
            self.ups.append(sorted(ups, key=lambda up: -up[0]))
            self.downs.append(downs)
        self.fuse_mods = mods
        self.fused_rows = [len(row) > 0 for row in unit.fuse_layers]

    def _sum_ups(self, i: int, xs: list[Tensor], relu: bool) -> Tensor:
        """A fresh ``x_i + sum of the upsampled paths`` (then ReLU)."""
        ups = self.ups[i]
        nearest = all(conv.upsample_mode == 'nearest' for _, conv in ups)
        if nearest and _chains_exactly([tuple(xs[j].shape[-2:]) for j, _ in ups] + [tuple(xs[i].shape[-2:])]):
            partial = None
            for j, conv in ups:
                if partial is None:
                    partial = conv(xs[j])
                else:  # conv_j(x_j) + up(partial), written into the fresh upsampled map
                    partial = conv.add(xs[j], F.interpolate(partial, size=list(xs[j].shape[-2:])), relu=False,
                                       inplace=True)  # fmt: skip
            return _upsample_add(xs[i], partial, 'nearest', None, relu=relu)
        acc = xs[i]
        for k, (j, conv) in enumerate(ups):  # one path at a time: a fresh sum first, then added in place
            last = relu and k == len(ups) - 1
            acc = _upsample_add(acc, conv(xs[j]), conv.upsample_mode, conv.align_corners, relu=last, inplace=k > 0)
        return acc

    def _row(self, i: int, xs: list[Tensor]) -> Tensor:
        downs = self.downs[i]
        acc, fresh = xs[i], False  # never write into a branch output: other rows still read it
        if self.ups[i]:
            acc, fresh = self._sum_ups(i, xs, relu=not downs), True
        for k, (j, steps) in enumerate(downs):
            y = xs[j]
            for step in steps[:-1]:
                y = step(y)
            acc = steps[-1].add(y, acc, relu=k == len(downs) - 1, inplace=fresh)
            fresh = True
        return acc

    def forward(self, x: list[Tensor]) -> list[Tensor]:
        xs = [branch(x[i]) for i, branch in enumerate(self.branches)]
        return [self._row(i, xs) if self.fused_rows[i] else xs[i] for i in range(len(self.ups))]


def _fuse_block(block: nn.Module, **kw) -> nn.Module:
    plain = all(_identity_like(getattr(block, a, None)) for a in ('drop_block', 'aa', 'se', 'drop_path'))
    if isinstance(block, Bottleneck) and plain:
        return FusedBottleneck(block, **kw)
    if isinstance(block, BasicBlock) and plain:
        return FusedBasicBlock(block, **kw)
    raise TypeError(f'cannot fuse {type(block).__name__}')


def _fuse_ops(model: nn.Module, **kw) -> None:
    """Swap the folded modules for their oneDNN-fused forms, in place."""
    for name, child in list(model.named_children()):
        if isinstance(child, ExchangeUnit):
            setattr(model, name, FusedExchangeUnit(child, **kw))
        elif isinstance(child, (BasicBlock, Bottleneck)):
            setattr(model, name, _fuse_block(child, **kw))
        elif type(child) is nn.Sequential and _is_conv_seq(child):  # a subclass may have a forward of its own
            setattr(model, name, _fuse_conv_seq(child, **kw))
        elif isinstance(child, nn.Conv2d) and child.padding_mode == 'zeros' and not isinstance(child.padding, str):
            # a conv whose ReLU is a sibling attribute (the stem's act1/act2, the head's ReLU) fuses it
            setattr(model, name, FusedConv(child, **kw))
        else:
            _fuse_ops(child, **kw)
    _fuse_sibling_relus(model)


def _is_conv_seq(seq: nn.Sequential) -> bool:
    layers = [m for m in seq if not isinstance(m, nn.Identity)]
    return (
        0 < len(layers) <= 2
        and isinstance(layers[0], nn.Conv2d)
        and all(isinstance(m, nn.ReLU) for m in layers[1:])
        and not isinstance(seq, (FuseUp, FuseDown))
    )


def _fuse_sibling_relus(model: nn.Module) -> None:
    """``convK`` followed by ``actK`` (the stem), and ``Sequential(FusedConv, Identity, ReLU, ...)`` (the V2 head):
    move the ReLU into the convolution and leave an Identity in its place."""
    for k in (1, 2):
        conv, act = getattr(model, f'conv{k}', None), getattr(model, f'act{k}', None)
        if isinstance(conv, FusedConv) and isinstance(act, nn.ReLU) and not conv.relu:
            conv.relu = True
            setattr(model, f'act{k}', nn.Identity())
    if isinstance(model, nn.Sequential):
        for i in range(len(model) - 2):
            a, b, c = model[i], model[i + 1], model[i + 2]
            if isinstance(a, FusedConv) and not a.relu and isinstance(b, nn.Identity) and isinstance(c, nn.ReLU):
                a.relu = True
                model[i + 2] = nn.Identity()


def unwrap_features(model: nn.Module) -> nn.Module:
    """Our model itself, or the one inside timm's FeatureGetterNet (features_only=True)."""
    inner = getattr(model, 'model', None)
    return inner if isinstance(inner, nn.Module) and hasattr(inner, 'forward_branches') else model


def optimize_for_inference(
    model: nn.Module,
    *,
    dtype: torch.dtype | None = None,
    channels_last: bool = True,
    fuse_ops: bool | None = None,
    winograd: bool | None = None,
    inplace: bool = False,
    reuse_memory: bool = False,
    backend: str = 'torch',
) -> nn.Module:
    """An eval-only copy of an HRNet model (V1, V2, V2p, or ``features_only``) that runs faster on CPU.

    Args:
        model: one of our models, or timm's ``FeatureGetterNet`` around one. Not modified unless ``inplace``.
        dtype: convert weights to this dtype (``torch.bfloat16`` for AMX); inputs must then have it too.
        channels_last: NHWC weights and activations (outputs come back NHWC-strided; values are unchanged).
        fuse_ops: run convolutions as fused oneDNN primitives (default: when on CPU with oneDNN and
            channels_last, in fp32 or bf16). With False, only BatchNorm folding, dtype and layout apply. The
            private ops are probed first (:func:`hrnet_zoo.fast._onednn.probe`); if one is missing or wrong,
            a RuntimeWarning says which and the folded path runs instead.
        winograd: the fp32 3x3 stride-1 convolutions with at least 96 input and output channels by Winograd
            F(4x4, 3x3) (:mod:`hrnet_zoo.fast.winograd`): True for every input shape; None (the default, with
            ``fuse_ops`` in fp32) per input shape where it timed faster than the direct convolution on the first
            call with that shape (which one wins depends on the CPU; with backend='onednn_graph', the whole graph
            is timed with and without it too); False never. Fewer multiplications, different rounding (~3e-6
            relative per convolution).
        inplace: optimise ``model`` itself instead of a deep copy.
        reuse_memory: call :func:`hrnet_zoo.fast.memory.reuse_freed_memory`: from then on, for the whole process,
            glibc's malloc keeps freed memory for reuse, so each forward does not fault in fresh pages for its
            feature maps (1.14x for the full V2 model at 1024x2048; the process keeps its peak memory). A no-op
            outside glibc.
        backend: 'torch' (the default): all of the above, in PyTorch. 'onednn_graph': BatchNorm folding,
            ``dtype`` and channels_last as above, then the model traced, frozen and run with torch's oneDNN Graph
            fusion behind a :class:`~hrnet_zoo.fast.onednn_graph.OneDNNGraphModule`, which compiles each
            convolution with its epilogue once per input shape (no per-call primitive set-up); checked against
            the eager model at optimisation time, and where that fails, a RuntimeWarning says why and
            backend='torch' runs instead; ``winograd`` as above, inside the graph. It runs on TorchScript,
            deprecated in torch 2.14. 'openvino': export ``model`` to ONNX, check it against eager PyTorch,
            and run it in OpenVINO's CPU runtime in ``dtype``'s precision
            (fp32 or bf16) behind an :class:`~hrnet_zoo.fast.openvino_backend.OpenVINOModule`, which takes and
            returns torch tensors; ``model`` is left as it is. Which route is faster depends on the width, the
            batch and the CPU (README, "Against ONNX Runtime and OpenVINO"). Needs the ``openvino`` extra;
            ``channels_last``, ``fuse_ops``, ``winograd``, ``inplace`` and ``reuse_memory`` are the torch
            backend's (OpenVINO plans and keeps its own buffers); 'onednn_graph' takes ``inplace``,
            ``winograd`` and ``reuse_memory`` too.

    Returns the optimised module (in eval mode, gradients off). It is not trainable and not meant for
    ``state_dict`` round trips; keep the original for those.
    """
    if backend not in BACKENDS:
        raise ValueError(f'unknown backend {backend!r}; expected one of: {", ".join(BACKENDS)}')
    if backend == 'openvino':
        if dtype is not None and dtype not in PRECISIONS:
            raise ValueError(f"backend='openvino' runs in torch.float32 or torch.bfloat16, not {dtype}")
        if fuse_ops or winograd or inplace or reuse_memory:
            raise ValueError("fuse_ops, winograd, inplace and reuse_memory are options of backend='torch'")
        return OpenVINOModule(model, PRECISIONS[dtype or torch.float32])
    if backend == 'onednn_graph':
        if fuse_ops or not channels_last:
            raise ValueError("fuse_ops and channels_last=False are options of backend='torch'")
        folded = optimize_for_inference(model, dtype=dtype, fuse_ops=False, inplace=inplace, reuse_memory=reuse_memory)
        try:
            return OneDNNGraphModule(folded, winograd=winograd)
        except GraphFusionError as err:
            warnings.warn(
                f"optimize_for_inference: backend='onednn_graph' is off ({err}); running backend='torch' instead",
                RuntimeWarning,
                stacklevel=2,
            )
            return optimize_for_inference(folded, inplace=True)
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    fold_batchnorm(model)
    if dtype is not None:
        model.to(dtype)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    param = next(model.parameters())
    if fuse_ops is None:
        fuse_ops = (
            channels_last
            and param.device.type == 'cpu'
            and param.dtype in (torch.float32, torch.bfloat16)
            and torch.backends.mkldnn.is_available()  # without oneDNN the fused path does not apply; no warning
        )
    if fuse_ops:
        failure = _onednn.probe(param.dtype)
        if failure is not None:
            # the private ops changed under this torch: the folded model is slower but right
            warnings.warn(
                f'optimize_for_inference: the fused oneDNN path is off ({failure}); running the folded model '
                f'with torch {torch.__version__} public ops instead',
                RuntimeWarning,
                stacklevel=2,
            )
            fuse_ops = False
    if fuse_ops:
        backbone = unwrap_features(model)
        _fuse_ops(backbone, channels_last=channels_last)
        for seq in backbone.modules():
            if isinstance(seq, nn.Sequential):
                # a block after the first in a chain reads a tensor that only it sees: safe to overwrite
                for block in list(seq)[1:]:
                    if isinstance(block, (FusedBasicBlock, FusedBottleneck)):
                        block.overwrite_input = True
        # layer1's running map (its first block's shortcut, then overwritten by every block) is read only by
        # transition1's convolutions, so one buffer per thread can carry it from call to call
        layer1 = getattr(backbone, 'layer1', None)
        first = layer1[0] if isinstance(layer1, nn.Sequential) and len(layer1) else None
        if isinstance(first, FusedBottleneck | FusedBasicBlock) and isinstance(first.downsample, FusedConv):
            first.downsample.reuse_output = True
        always = bool(winograd)
        if winograd is None:
            winograd = param.dtype == torch.float32 and channels_last
        if winograd and not channels_last:
            raise ValueError('winograd=True needs channels_last=True (it works on NHWC memory)')
        if winograd:
            for conv in backbone.modules():
                if isinstance(conv, FusedConv) and suits(conv.weight, conv.stride, conv.padding, conv.dilation,
                                                         conv.groups):  # fmt: skip
                    conv.winograd = Winograd3x3(conv.weight, conv.bias)
                    conv.winograd_always = always
    for p in model.parameters():
        p.requires_grad_(False)
    if reuse_memory:
        reuse_freed_memory()
    return model
