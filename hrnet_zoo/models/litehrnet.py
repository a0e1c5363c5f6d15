"""The Lite-HRNet backbone (Yu et al., *Lite-HRNet: A Lightweight High-Resolution Network*, CVPR 2021,
https://arxiv.org/abs/2104.06403; official code https://github.com/HRNet/Lite-HRNet, Apache-2.0).

HRNet's multi-branch layout with cheap units: a shuffle-style stem (stride 4), then stages of conditional channel
weighting blocks (half of each branch is reweighted across resolutions and spatially, then the halves are
shuffled), with depthwise-separable transitions and fuse paths, and the iterative head that folds the branches
back into the high-resolution one. Module and parameter names follow mmpose 0.x's ``LiteHRNet`` (the official
code's): ``stem.*``, ``transition{0,1,2}.*``, ``stage{0,1,2}.{m}.layers.{k}.*``, ``stage{n}.{m}.fuse_layers.{i}.{j}.*``
and ``head_layer.projects.*``, so mmpose's ``backbone.*`` keys load after stripping the prefix.

Unlike the official code, every upsampling targets the other branch's actual size instead of a fixed scale factor,
so inputs of any size work (the official model needs sides divisible by 32).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.models import checkpoint
from torch import Tensor, nn

from ..specs import LiteHRNetSpec, LiteStageSpec
from .backbone import NormLayer, check_dtype, check_input, norm_factory

__all__ = ['ConditionalChannelWeighting', 'IterativeHead', 'LiteHRModule', 'LiteHRNetBackbone', 'LiteStem']


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """ShuffleNet's shuffle: interleave the channels of ``groups`` equal groups."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ConvUnit(nn.Module):
    """mmcv's ``ConvModule`` as the official code uses it: conv, optional norm (``bn``), optional activation; keys
    ``conv.*`` and ``bn.*``. Without a norm the conv has a bias (mmcv's ``bias='auto'``)."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        norm_layer: NormLayer | None = None,
        act: type[nn.Module] | None = nn.ReLU,
        **dd,
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, pad, groups=groups, bias=norm_layer is None, **dd)
        self.bn = norm_layer(out_chs, **dd) if norm_layer is not None else nn.Identity()
        self.act = act() if act is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


def dw_pw(in_chs: int, out_chs: int, stride: int, norm: NormLayer, relu: bool, **dd) -> nn.Sequential:
    """Depthwise 3x3 + BN, then 1x1 + BN (+ ReLU), as a plain Sequential (keys 0-3): the transitions' and the
    downsampling fuse paths' unit."""
    layers = [
        nn.Conv2d(in_chs, in_chs, 3, stride, 1, groups=in_chs, bias=False, **dd),
        norm(in_chs, **dd),
        nn.Conv2d(in_chs, out_chs, 1, bias=False, **dd),
        norm(out_chs, **dd),
    ]
    return nn.Sequential(*layers, *([nn.ReLU()] if relu else []))


class LiteStem(nn.Module):
    """3x3 stride-2 conv, then a ShuffleNetV2 downsampling unit on its two channel halves (``branch1``: depthwise
    stride 2 + 1x1; the other: 1x1 expand, depthwise stride 2, 1x1), concatenated and shuffled: stride 4."""

    def __init__(self, in_chans: int, spec: LiteHRNetSpec, norm: NormLayer, **dd) -> None:
        super().__init__()
        stem, out = spec.stem_channels, spec.stem_out_channels
        mid = int(round(stem * spec.stem_expand_ratio))
        half = stem // 2
        # official channel bookkeeping: with stem == out the two paths give out - half and half channels
        inc, linear_out = (out - half, half) if stem == out else (out - stem, stem)
        self.conv1 = ConvUnit(in_chans, stem, 3, stride=2, norm_layer=norm, **dd)
        self.branch1 = nn.Sequential(
            ConvUnit(half, half, 3, stride=2, groups=half, norm_layer=norm, act=None, **dd),
            ConvUnit(half, inc, 1, norm_layer=norm, **dd),
        )
        self.expand_conv = ConvUnit(half, mid, 1, norm_layer=norm, **dd)
        self.depthwise_conv = ConvUnit(mid, mid, 3, stride=2, groups=mid, norm_layer=norm, act=None, **dd)
        self.linear_conv = ConvUnit(mid, linear_out, 1, norm_layer=norm, **dd)
        self.out_channels = out

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = self.conv1(x).chunk(2, dim=1)
        x2 = self.linear_conv(self.depthwise_conv(self.expand_conv(x2)))
        return channel_shuffle(torch.cat((self.branch1(x1), x2), dim=1), 2)


class SpatialWeighting(nn.Module):
    """Squeeze-and-excitation on one branch: global pool, 1x1 (ReLU), 1x1 (sigmoid), scale; biased convs, no norm."""

    def __init__(self, channels: int, ratio: int = 4, **dd) -> None:
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = ConvUnit(channels, int(channels / ratio), 1, **dd)
        self.conv2 = ConvUnit(int(channels / ratio), channels, 1, act=nn.Sigmoid, **dd)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.conv2(self.conv1(self.global_avgpool(x)))


class CrossResolutionWeighting(nn.Module):
    """Every branch average-pooled to the lowest resolution, concatenated, squeezed by ``ratio`` (1x1 + BN + ReLU,
    1x1 + BN + sigmoid); each branch is scaled by its slice of the weights, upsampled (nearest) to its size."""

    def __init__(self, channels: tuple[int, ...], ratio: int, norm: NormLayer, **dd) -> None:
        super().__init__()
        self.channels = list(channels)
        total = sum(channels)
        self.conv1 = ConvUnit(total, int(total / ratio), 1, norm_layer=norm, **dd)
        self.conv2 = ConvUnit(int(total / ratio), total, 1, norm_layer=norm, act=nn.Sigmoid, **dd)

    def forward(self, x: list[Tensor]) -> list[Tensor]:
        smallest = x[-1].shape[-2:]
        pooled = [F.adaptive_avg_pool2d(s, smallest) for s in x[:-1]] + [x[-1]]
        weights = self.conv2(self.conv1(torch.cat(pooled, dim=1))).split(self.channels, dim=1)
        return [s * F.interpolate(w, size=s.shape[-2:], mode='nearest') for s, w in zip(x, weights)]


class ConditionalChannelWeighting(nn.Module):
    """The Lite-HRNet block: each branch is split in halves; the second half is weighted across resolutions, goes
    through a depthwise 3x3 + BN and is weighted spatially; the halves are concatenated and shuffled."""

    def __init__(self, in_chs: tuple[int, ...], reduce_ratio: int, norm: NormLayer, **dd) -> None:
        super().__init__()
        halves = tuple(c // 2 for c in in_chs)
        self.cross_resolution_weighting = CrossResolutionWeighting(halves, reduce_ratio, norm, **dd)
        self.depthwise_convs = nn.ModuleList(
            [ConvUnit(c, c, 3, groups=c, norm_layer=norm, act=None, **dd) for c in halves]
        )
        self.spatial_weighting = nn.ModuleList([SpatialWeighting(c, **dd) for c in halves])

    def forward(self, x: list[Tensor]) -> list[Tensor]:
        split = [s.chunk(2, dim=1) for s in x]
        weighted = self.cross_resolution_weighting([s[1] for s in split])
        weighted = [sw(dw(s)) for s, dw, sw in zip(weighted, self.depthwise_convs, self.spatial_weighting)]
        return [channel_shuffle(torch.cat([s[0], w], dim=1), 2) for s, w in zip(split, weighted)]


class FuseUp(nn.Sequential):
    """``fuse_layers[i][j]`` for j > i: 1x1 conv + BN, then nearest resize to branch i's actual size."""

    def __init__(self, in_chs: int, out_chs: int, norm: NormLayer, **dd) -> None:
        super().__init__(nn.Conv2d(in_chs, out_chs, 1, bias=False, **dd), norm(out_chs, **dd))

    def forward(self, x: Tensor, size: list[int]) -> Tensor:
        for module in self:
            x = module(x)
        return F.interpolate(x, size=size, mode='nearest')


class FuseDown(nn.Sequential):
    """``fuse_layers[i][j]`` for j < i: (i - j) stride-2 depthwise-separable steps; only the last changes channels,
    and it has no ReLU."""

    def __init__(self, in_chs: int, out_chs: int, num_steps: int, norm: NormLayer, **dd) -> None:
        last = num_steps - 1
        super().__init__(
            *[dw_pw(in_chs, out_chs if k == last else in_chs, 2, norm, relu=k != last, **dd) for k in range(num_steps)]
        )

    def forward(self, x: Tensor, size: list[int] | None = None) -> Tensor:
        for module in self:
            x = module(x)
        return x


class LiteHRModule(nn.Module):
    """One Lite-HRNet module: ``num_blocks`` conditional channel weighting blocks, then every branch fused into every
    (kept) branch. ``fuse_layers[i][i]`` is an empty Sequential (the official ``None``)."""

    def __init__(self, spec: LiteStageSpec, norm: NormLayer, **dd) -> None:
        super().__init__()
        chs = spec.num_channels
        blocks = [ConditionalChannelWeighting(chs, spec.reduce_ratio, norm, **dd) for _ in range(spec.num_blocks)]
        self.layers = nn.Sequential(*blocks)
        rows = []
        for i in range(len(chs)):
            row: list[nn.Module] = []
            for j in range(len(chs)):
                if j > i:
                    row.append(FuseUp(chs[j], chs[i], norm, **dd))
                elif j < i:
                    row.append(FuseDown(chs[j], chs[i], i - j, norm, **dd))
                else:
                    row.append(nn.Sequential())
            rows.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(rows)
        self.relu = nn.ReLU()

    def forward(self, x: list[Tensor]) -> list[Tensor]:
        out = self.layers(x)
        rows = self.fuse_layers
        # The official fuse (and so its checkpoints) counts branch 0 twice in every row (its sum starts from branch
        # 0's term and its loop adds it again), and its in-place `+=` turns branch 0 into row 0's pre-ReLU sum
        # before the lower rows read it. Written out here without in-place ops.
        size0 = [out[0].shape[-2], out[0].shape[-1]]
        fused0 = out[0] * 2
        for j in range(1, len(out)):
            fused0 = fused0 + rows[0][j](out[j], size0)
        results = [self.relu(fused0)]
        for i in range(1, len(out)):
            if len(rows[i]) == 0:  # pruned: nobody reads this output
                results.append(out[i])
                continue
            size = [out[i].shape[-2], out[i].shape[-1]]
            y = rows[i][0](fused0) * 2 + out[i]
            for j in range(1, len(out)):
                if j != i:
                    y = y + rows[i][j](out[j], size)
            results.append(self.relu(y))
        return results


class LiteStage(nn.Sequential):
    """A stage: Lite-HRNet modules in sequence on the list of branches (keys ``stage{n}.{m}``)."""

    def __init__(self, modules: list[LiteHRModule]) -> None:
        super().__init__(*modules)
        self.grad_checkpointing = False

    def forward(self, x: list[Tensor]) -> list[Tensor]:
        for module in self:
            x = checkpoint(module, x) if self.grad_checkpointing and not torch.jit.is_scripting() else module(x)
        return x


def make_transition(prev_chs: tuple[int, ...], next_chs: tuple[int, ...], norm: NormLayer, **dd) -> nn.ModuleList:
    """Adapt the branches whose width changes (depthwise-separable, stride 1); grow each new branch from the lowest
    resolution one through stride-2 depthwise-separable steps (keys ``transition{n}.{i}.{k}.{0-3}``)."""
    layers: list[nn.Module] = []
    for i, out_chs in enumerate(next_chs):
        if i < len(prev_chs):
            same = prev_chs[i] == out_chs
            layers.append(nn.Identity() if same else dw_pw(prev_chs[i], out_chs, 1, norm, relu=True, **dd))
        else:
            steps = i + 1 - len(prev_chs)
            last = prev_chs[-1]
            layers.append(
                nn.Sequential(
                    *[dw_pw(last, out_chs if k == steps - 1 else last, 2, norm, True, **dd) for k in range(steps)]
                )
            )
    return nn.ModuleList(layers)


class DepthwiseSeparable(nn.Module):
    """mmcv's ``DepthwiseSeparableConvModule`` as the iterative head uses it: depthwise 3x3 + BN, 1x1 + BN + ReLU."""

    def __init__(self, in_chs: int, out_chs: int, norm: NormLayer, **dd) -> None:
        super().__init__()
        self.depthwise_conv = ConvUnit(in_chs, in_chs, 3, groups=in_chs, norm_layer=norm, act=None, **dd)
        self.pointwise_conv = ConvUnit(in_chs, out_chs, 1, norm_layer=norm, **dd)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class IterativeHead(nn.Module):
    """From the lowest-resolution branch up: each branch plus the (bilinearly upsampled, align_corners=True) result
    of the one below, through a depthwise-separable 3x3 to the next branch's width (the highest keeps its own).
    Returns the results in branch order; [0] is the pose representation."""

    def __init__(self, in_chs: tuple[int, ...], norm: NormLayer, **dd) -> None:
        super().__init__()
        rev = in_chs[::-1]
        outs = (*rev[1:], rev[-1])
        self.projects = nn.ModuleList([DepthwiseSeparable(c, out, norm, **dd) for c, out in zip(rev, outs)])
        self.out_channels = outs[::-1]

    def forward(self, x: list[Tensor]) -> list[Tensor]:
        y: list[Tensor] = []
        for s, project in zip(x[::-1], self.projects):
            if y:
                s = s + F.interpolate(y[-1], size=s.shape[-2:], mode='bilinear', align_corners=True)
            y.append(project(s))
        return y[::-1]


class LiteHRNetBackbone(nn.Module):
    """Stem (stride 4) -> (transition, stage) per stage spec -> the final branches (40, 80, 160, 320 channels at
    strides 4-32 for Lite-HRNet-18/30), and ``head_layer`` (the official ``with_head=True`` iterative head).

    Args:
        spec: the width's layout (:data:`~hrnet_zoo.specs.LITE_WIDTHS`).
        in_chans: input image channels.
        norm_layer: the class of every norm (default BatchNorm2d), called as ``norm_layer(num_features)``.
    """

    def __init__(
        self,
        spec: LiteHRNetSpec,
        *,
        in_chans: int = 3,
        norm_layer: NormLayer | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        norm = self.norm_layer = norm_factory(norm_layer)
        self.in_chans = in_chans
        self.num_stages = len(spec.stages)
        self.stem = LiteStem(in_chans, spec, norm, **dd)
        prev: tuple[int, ...] = (spec.stem_out_channels,)
        for n, stage in enumerate(spec.stages):
            setattr(self, f'transition{n}', make_transition(prev, stage.num_channels, norm, **dd))
            setattr(self, f'stage{n}', LiteStage([LiteHRModule(stage, norm, **dd) for _ in range(stage.num_modules)]))
            prev = stage.num_channels
        self.head_layer = IterativeHead(prev, norm, **dd)
        self.branch_channels = spec.branch_channels
        last = self.num_stages - 1
        self.feature_info = [dict(num_chs=spec.stem_out_channels, reduction=4, module='stem')] + [
            dict(num_chs=c, reduction=4 * 2**i, module=f'stage{last}.branch{i}') for i, c in enumerate(prev)
        ]

    def forward_stem(self, x: Tensor) -> Tensor:
        check_input(x, self.in_chans)
        if not torch.jit.is_scripting():
            check_dtype(x, self.stem.conv1.conv.weight.dtype)
        return self.stem(x)

    def forward_branches(self, stem: Tensor) -> list[Tensor]:
        """From the stem feature to the final branches (before the iterative head)."""
        xs = [stem]
        for n in range(self.num_stages):
            transition = getattr(self, f'transition{n}')
            xs = [t(xs[i] if i < len(xs) else xs[-1]) for i, t in enumerate(transition)]
            xs = getattr(self, f'stage{n}')(xs)
        return xs

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each module in backward instead of storing its activations."""
        for n in range(self.num_stages):
            getattr(self, f'stage{n}').grad_checkpointing = enable

    def prune_unread(self, keep: set[int]) -> None:
        """Drop the last module's fuse rows that no kept branch needs. Row 0 stays while any row does: the lower rows
        read its sum (see :class:`LiteHRModule`); every earlier module feeds the last one's cross-resolution
        weighting, so it all stays."""
        if not keep:  # the stem alone
            for n in range(self.num_stages):
                setattr(self, f'transition{n}', nn.ModuleList())
                setattr(self, f'stage{n}', LiteStage([]))
            return
        rows = getattr(self, f'stage{self.num_stages - 1}')[-1].fuse_layers
        for i in range(1, len(rows)):
            if i not in keep:
                rows[i] = nn.ModuleList()
