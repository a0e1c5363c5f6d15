"""The multi-branch HRNet backbone: stem, stage 1, and (transition, stage) x 3.

Module and parameter names follow the official code (and timm's ``hrnet_*``), so official and timm
checkpoints map one to one: ``conv1``, ``bn1``, ``layer1.*``, ``transition{1,2,3}.*``,
``stage{2,3,4}.{m}.branches.*`` and ``stage{2,3,4}.{m}.fuse_layers.{i}.{j}.*``.

Unlike the official classification code (and timm), every upsampling targets the other tensor's actual
size instead of a fixed scale factor, so inputs of any size work, not only multiples of 32.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from timm.models import checkpoint, checkpoint_seq
from timm.models.resnet import BasicBlock, Bottleneck
from torch import Tensor, nn

from ..specs import HRNetSpec, StageSpec

__all__ = ['BATCH_NORM', 'HRNetBackbone', 'ExchangeUnit', 'NormLayer', 'UPSAMPLE_MODES', 'norm_factory']

UPSAMPLE_MODES = ('nearest', 'bilinear')
_BLOCKS = {'basic': BasicBlock, 'bottleneck': Bottleneck}

NormLayer = Callable[..., nn.Module]  # called as norm_layer(num_features), like nn.BatchNorm2d


def _make_norm(layer: NormLayer, num_features: int, device=None, dtype=None) -> nn.Module:
    dd = {k: v for k, v in dict(device=device, dtype=dtype).items() if v is not None}
    if not dd:
        return layer(num_features)
    try:
        return layer(num_features, **dd)
    except TypeError:
        return layer(num_features).to(**dd)


def norm_factory(norm_layer: NormLayer | None = None) -> NormLayer:
    """``norm_layer`` (default BatchNorm2d) as ``f(num_features, device=None, dtype=None)``.

    torchvision's FrozenBatchNorm2d takes no factory kwargs, so they are passed only when set (and the layer is
    moved to them afterwards if it refuses them). A partial, not a closure, so that models stay picklable.
    """
    return partial(_make_norm, nn.BatchNorm2d if norm_layer is None else norm_layer)


BATCH_NORM: NormLayer = norm_factory()  # the default of every builder here


def conv_bn(
    in_chs: int,
    out_chs: int,
    kernel_size: int,
    stride: int = 1,
    act: bool = True,
    norm_layer: NormLayer = BATCH_NORM,
    **dd,
) -> nn.Sequential:
    """Conv (no bias) + BN (+ ReLU), the unit of every transition and downsampling fuse path."""
    layers = [
        nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding=kernel_size // 2, bias=False, **dd),
        norm_layer(out_chs, **dd),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def make_blocks(
    block: str, in_chs: int, planes: int, num_blocks: int, norm_layer: NormLayer = BATCH_NORM, **dd
) -> nn.Sequential:
    """A branch: ``num_blocks`` residual blocks, with a 1x1 projection on the first when channels change."""
    block_cls = _BLOCKS[block]
    out_chs = planes * block_cls.expansion
    downsample = conv_bn(in_chs, out_chs, 1, act=False, norm_layer=norm_layer, **dd) if in_chs != out_chs else None
    layers = [block_cls(in_chs, planes, downsample=downsample, norm_layer=norm_layer, **dd)]
    layers += [block_cls(out_chs, planes, norm_layer=norm_layer, **dd) for _ in range(1, num_blocks)]
    return nn.Sequential(*layers)


class FuseIdentity(nn.Module):
    """``fuse_layers[i][i]``: the branch itself (no parameters, like the official ``None``)."""

    def forward(self, x: Tensor, size: list[int]) -> Tensor:
        return x


class FuseUp(nn.Sequential):
    """``fuse_layers[i][j]`` for j > i: 1x1 conv + BN, then resize to branch i's size (official order)."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        upsample_mode: str,
        align_corners: bool | None,
        norm_layer: NormLayer = BATCH_NORM,
        **dd,
    ) -> None:
        super().__init__(nn.Conv2d(in_chs, out_chs, 1, bias=False, **dd), norm_layer(out_chs, **dd))
        self.upsample_mode = upsample_mode
        self.align_corners = align_corners

    def forward(self, x: Tensor, size: list[int]) -> Tensor:
        for module in self:
            x = module(x)
        return F.interpolate(x, size=size, mode=self.upsample_mode, align_corners=self.align_corners)


class FuseDown(nn.Sequential):
    """``fuse_layers[i][j]`` for j < i: (i - j) stride-2 3x3 convs; only the last changes channels, no ReLU."""

    def __init__(self, in_chs: int, out_chs: int, num_steps: int, norm_layer: NormLayer = BATCH_NORM, **dd) -> None:
        steps = []
        for k in range(num_steps):
            last = k == num_steps - 1
            out = out_chs if last else in_chs
            steps.append(conv_bn(in_chs, out, 3, stride=2, act=not last, norm_layer=norm_layer, **dd))
        super().__init__(*steps)

    def forward(self, x: Tensor, size: list[int]) -> Tensor:
        for module in self:
            x = module(x)
        return x


class ExchangeUnit(nn.Module):
    """One HRNet module: residual blocks per branch, then every branch fused into every (kept) branch.

    A row ``fuse_layers[i]`` left empty passes branch i through unfused. The official pose model does
    this for branches 1-3 of the last stage-4 module (``multi_scale_output=False``); their block outputs
    are still returned, so V1 models can report all four branches as features.
    """

    def __init__(
        self,
        in_chs: tuple[int, ...],
        spec: StageSpec,
        multi_scale_output: bool = True,
        upsample_mode: str = 'nearest',
        align_corners: bool | None = None,
        norm_layer: NormLayer = BATCH_NORM,
        **dd,
    ) -> None:
        super().__init__()
        chs = spec.num_channels
        self.branches = nn.ModuleList(
            [make_blocks(spec.block, in_chs[b], chs[b], spec.num_blocks[b], norm_layer, **dd) for b in range(len(chs))]
        )
        fuse_rows = []
        for i in range(len(chs)):
            row = []
            if multi_scale_output or i == 0:
                for j in range(len(chs)):
                    if j > i:
                        row.append(FuseUp(chs[j], chs[i], upsample_mode, align_corners, norm_layer, **dd))
                    elif j < i:
                        row.append(FuseDown(chs[j], chs[i], i - j, norm_layer, **dd))
                    else:
                        row.append(FuseIdentity())
            fuse_rows.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse_rows)
        self.fuse_act = nn.ReLU()

    def prune_outputs(self, keep: set[int]) -> set[int]:
        """Drop the fuse rows of outputs nobody reads, then the branches no remaining row reads; returns the
        inputs still read. (Unread parameters get no gradient, which DDP without find_unused_parameters rejects.)"""
        for i in range(len(self.fuse_layers)):
            if i not in keep:
                self.fuse_layers[i] = nn.ModuleList()
        read = set(range(len(self.branches))) if any(len(row) for row in self.fuse_layers) else set(keep)
        for j in range(len(self.branches)):
            if j not in read:
                self.branches[j] = nn.Identity()  # its output is passed through unread
        return read

    def forward(self, x: list[Tensor]) -> list[Tensor]:
        branch_out: list[Tensor] = []
        for i, branch in enumerate(self.branches):
            branch_out.append(branch(x[i]))
        out: list[Tensor] = []
        for i, row in enumerate(self.fuse_layers):
            y = branch_out[i]
            if len(row) > 0:
                size = [y.shape[-2], y.shape[-1]]
                for j, fuse in enumerate(row):
                    y = fuse(branch_out[j], size) if j == 0 else y + fuse(branch_out[j], size)
                y = self.fuse_act(y)
            out.append(y)
        return out


class HRStage(nn.ModuleList):
    """A stage: exchange units applied in sequence to the list of branches."""

    def __init__(self, units: list[ExchangeUnit]) -> None:
        super().__init__(units)
        self.grad_checkpointing = False

    def forward(self, x: list[Tensor]) -> list[Tensor]:
        for unit in self:
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x = checkpoint(unit, x)
            else:
                x = unit(x)
        return x


def make_transition(
    prev_chs: tuple[int, ...], next_chs: tuple[int, ...], norm_layer: NormLayer = BATCH_NORM, **dd
) -> nn.ModuleList:
    """Adapt existing branches whose width changes; grow each new branch from the lowest-resolution one."""
    layers: list[nn.Module] = []
    for i, out_chs in enumerate(next_chs):
        if i < len(prev_chs):
            same = prev_chs[i] == out_chs
            layers.append(nn.Identity() if same else conv_bn(prev_chs[i], out_chs, 3, norm_layer=norm_layer, **dd))
        else:
            # official nesting: Sequential(Sequential(conv, bn, relu)), keys transitionN.i.0.{0,1}
            layers.append(nn.Sequential(conv_bn(prev_chs[-1], out_chs, 3, stride=2, norm_layer=norm_layer, **dd)))
    return nn.ModuleList(layers)


def check_dtype(x: Tensor, dtype: torch.dtype) -> None:
    """A float input of another dtype than the weights (autocast casts both, so it is fine there)."""
    if x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(
            f'HRNet weights are {dtype}, got a {x.dtype} input; cast the input (x.to({dtype})) or the model '
            f'(model.to({x.dtype}))'
        )


def check_input(x: Tensor, in_chans: int) -> None:
    """Fail early with what was expected, not deep inside a convolution."""
    if not torch.is_floating_point(x):
        raise TypeError(f'HRNet expects a floating point image tensor, got dtype {x.dtype}')
    if x.dim() != 4:
        raise ValueError(f'HRNet expects a 4-D (N, C, H, W) tensor, got {x.dim()}-D shape {list(x.shape)}')
    if x.shape[1] != in_chans:
        raise ValueError(f'HRNet expects {in_chans} input channels, got {x.shape[1]} (shape {list(x.shape)})')


class HRNetBackbone(nn.Module):
    """Stem -> stage 1 -> (transition, stage) x 3, returning the four branches (C, 2C, 4C, 8C at 1/4 ... 1/32).

    Args:
        spec: the width's stage layout.
        in_chans: input image channels.
        multi_scale_output: fuse the last stage-4 module into all branches (HRNetV2) or only the first (HRNetV1).
        upsample_mode: resize used inside the fuse layers, 'nearest' (ImageNet, pose and detection weights)
            or 'bilinear' (segmentation weights).
        align_corners: for 'bilinear'; None means False. Must be None for 'nearest'.
        norm_layer: the class of every norm (default BatchNorm2d), called as ``norm_layer(num_features)``:
            ``nn.SyncBatchNorm``, torchvision's ``FrozenBatchNorm2d``, timm's norm layers.
        frozen_stages: mmseg's HRNet semantics. -1 freezes nothing; 0 the stem (conv1, bn1, conv2, bn2); i >= 1 the
            stem, layer1 and transition1, then stage{j} for 2 <= j <= i and transition{j} below stage 4. Frozen
            parameters get requires_grad=False and their norms stay in eval mode through ``.train()``.
        norm_eval: keep every BatchNorm in eval mode (running statistics fixed) during training.
    """

    def __init__(
        self,
        spec: HRNetSpec,
        *,
        in_chans: int = 3,
        multi_scale_output: bool = True,
        upsample_mode: str = 'nearest',
        align_corners: bool | None = None,
        device=None,
        dtype=None,
        norm_layer: NormLayer | None = None,
        frozen_stages: int = -1,
        norm_eval: bool = False,
    ) -> None:
        super().__init__()
        if frozen_stages not in range(-1, 5):
            raise ValueError(f'frozen_stages must be -1 (nothing) ... 4 (every stage), got {frozen_stages!r}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        if upsample_mode not in UPSAMPLE_MODES:
            raise ValueError(f'upsample_mode must be one of {UPSAMPLE_MODES}, got {upsample_mode!r}')
        if upsample_mode == 'nearest' and align_corners is not None:
            raise ValueError("align_corners only applies to upsample_mode='bilinear'")
        dd = dict(device=device, dtype=dtype)
        self.in_chans = in_chans
        self.upsample_mode = upsample_mode
        self.align_corners = align_corners
        self.grad_checkpointing = False
        stem = spec.stem_width
        norm = self.norm_layer = norm_factory(norm_layer)

        self.conv1 = nn.Conv2d(in_chans, stem, 3, stride=2, padding=1, bias=False, **dd)
        self.bn1 = norm(stem, **dd)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(stem, 64, 3, stride=2, padding=1, bias=False, **dd)
        self.bn2 = norm(64, **dd)
        self.act2 = nn.ReLU(inplace=True)
        s1 = spec.stage1
        self.layer1 = make_blocks(s1.block, 64, s1.num_channels[0], s1.num_blocks[0], norm, **dd)

        prev_chs: tuple[int, ...] = (s1.num_channels[0] * _BLOCKS[s1.block].expansion,)
        fuse = dict(upsample_mode=upsample_mode, align_corners=align_corners, norm_layer=norm, **dd)
        for n, stage in enumerate(spec.stages, start=2):
            setattr(self, f'transition{n - 1}', make_transition(prev_chs, stage.num_channels, norm, **dd))
            units = []
            for m in range(stage.num_modules):
                last = n == 4 and m == stage.num_modules - 1
                ms_out = multi_scale_output or not last
                units.append(ExchangeUnit(stage.num_channels, stage, ms_out, **fuse))
            setattr(self, f'stage{n}', HRStage(units))
            prev_chs = stage.num_channels

        self.branch_channels = spec.branch_channels
        self.feature_info = [dict(num_chs=stem, reduction=2, module='stem')] + [
            dict(num_chs=c, reduction=4 * 2**i, module=f'stage4.branch{i}') for i, c in enumerate(spec.branch_channels)
        ]

        self._freeze_stages()

    def frozen_modules(self) -> list[nn.Module]:
        """What ``frozen_stages`` freezes, in order (mmseg's HRNet ``_freeze_stages``)."""
        names = ['conv1', 'bn1', 'conv2', 'bn2'] if self.frozen_stages >= 0 else []
        for i in range(1, self.frozen_stages + 1):
            names += ['layer1', 'transition1'] if i == 1 else [f'stage{i}'] + ([f'transition{i}'] if i < 4 else [])
        return [getattr(self, name) for name in names]

    def _freeze_stages(self) -> None:
        for module in self.frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> HRNetBackbone:
        """Train mode, except for the frozen stages and, with ``norm_eval``, every BatchNorm."""
        super().train(mode)
        if mode:
            for module in self.frozen_modules():
                module.eval()
            if self.norm_eval:
                for module in self.modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.eval()
        return self

    def forward_stem(self, x: Tensor) -> Tensor:
        """conv1 + bn1 + ReLU at stride 2: the 64-channel stem feature."""
        check_input(x, self.in_chans)
        if not torch.jit.is_scripting():  # TorchScript cannot ask about autocast
            check_dtype(x, self.conv1.weight.dtype)
        return self.act1(self.bn1(self.conv1(x)))

    def prune_unread(self, keep: set[int]) -> None:
        """Keep only what the final branches in ``keep`` depend on, walking back from stage 4 to stage 2."""
        for n in (4, 3, 2):
            for unit in reversed(getattr(self, f'stage{n}')):
                keep = unit.prune_outputs(keep)
            transition = getattr(self, f'transition{n - 1}')
            num_prev = len(transition) - 1  # each transition adds one branch
            for i in range(len(transition)):
                if i not in keep:
                    transition[i] = nn.Identity()
            keep = {i for i in keep if i < num_prev} | ({num_prev - 1} if num_prev in keep else set())

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each bottleneck and exchange unit in backward instead of storing its activations."""
        self.grad_checkpointing = enable
        for stage in (self.stage2, self.stage3, self.stage4):
            stage.grad_checkpointing = enable

    def forward_branches(self, stem: Tensor) -> list[Tensor]:
        """From the stem feature to the four final branches."""
        x = self.act2(self.bn2(self.conv2(stem)))
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.layer1, x)
        else:
            x = self.layer1(x)
        xs = [t(x) for t in self.transition1]
        xs = self.stage2(xs)
        xs = [t(xs[i] if i < len(xs) else xs[-1]) for i, t in enumerate(self.transition2)]
        xs = self.stage3(xs)
        xs = [t(xs[i] if i < len(xs) else xs[-1]) for i, t in enumerate(self.transition3)]
        return self.stage4(xs)
