"""HigherHRNet's head (Cheng et al., CVPR 2020, "HigherHRNet: Scale-Aware Representation Learning for Bottom-Up
Human Pose Estimation"): heatmaps and associative-embedding tags at 1/4, then a deconvolution module to 1/2.

The layout is the official ``lib/models/pose_higher_hrnet.py`` (HigherHRNet-Human-Pose-Estimation, MIT) as its COCO
configs set it, and mmpose 0.x's ``AEHigherResolutionHead`` has the same modules:

- ``final_layers.0``: a 1x1 conv (with bias) on branch 0 giving ``K`` heatmaps and ``K`` tag maps (a tag per joint;
  one shared tag map without ``tag_per_joint``);
- ``deconv_layers.i``: ``Sequential(Sequential(ConvTranspose2d 4x4 stride 2, BN, ReLU), Sequential(BasicBlock) x 4)``
  on the concatenation of the features and the previous outputs (``cat_output``), so the keys are
  ``deconv_layers.0.0.0.weight`` (the deconvolution), ``deconv_layers.0.0.1.*`` (its BN) and
  ``deconv_layers.0.{1..4}.0.conv1.weight`` ... (the blocks);
- ``final_layers.i + 1``: a 1x1 conv after deconvolution ``i``: heatmaps only where ``with_ae[i + 1]`` is False (as at
  1/2 in every released config).

The head's modules are built here and keep the official names at the top of the model's state_dict (an mmpose
0.x file holds them under ``keypoint_head.``); :func:`higher_outputs` runs them and returns one tensor per
resolution, finest last: ``(outputs at 1/4, outputs at 1/2)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from timm.models.resnet import BasicBlock
from torch import Tensor, nn

from ..backbone import BATCH_NORM, NormLayer

__all__ = ['HIGHER_HEADS', 'HigherHeadSpec', 'check_spec', 'higher_outputs', 'make_deconv_layers', 'make_final_layers']

# the official _get_deconv_cfg: (padding, output_padding) per kernel size, each doubling the resolution exactly
_DECONV_PADDING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}


@dataclass(frozen=True)
class HigherHeadSpec:
    """The official ``MODEL.EXTRA.DECONV`` and ``LOSS.WITH_AE_LOSS`` numbers of one config, as data."""

    deconv_channels: tuple[int, ...]  # NUM_CHANNELS: the width after each deconvolution
    deconv_kernels: tuple[int, ...] = (4,)  # KERNEL_SIZE
    num_basic_blocks: int = 4  # NUM_BASIC_BLOCKS after each deconvolution
    cat_output: tuple[bool, ...] = (True,)  # CAT_OUTPUT: the previous outputs join the deconvolution's input
    with_ae: tuple[bool, ...] = (True, False)  # WITH_AE_LOSS per output: whether it has tag maps
    final_kernel: int = 1  # FINAL_CONV_KERNEL

    def out_channels(self, num_joints: int, tag_per_joint: bool = True) -> tuple[int, ...]:
        """The channels of each output, 1/4 first: heatmaps, plus tags where ``with_ae`` says so."""
        tags = num_joints if tag_per_joint else 1
        return tuple(num_joints + (tags if ae else 0) for ae in self.with_ae)


# by backbone width: experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml and w48_640_adam_lr1e-3.yaml
HIGHER_HEADS: dict[str, HigherHeadSpec] = {
    'w32': HigherHeadSpec(deconv_channels=(32,)),
    'w48': HigherHeadSpec(deconv_channels=(48,)),
}


def _deconv_stage(
    in_chs: int, out_chs: int, kernel: int, num_blocks: int, norm_layer: NormLayer = BATCH_NORM, **dd
) -> nn.Sequential:
    """ConvTranspose (no bias) + BN + ReLU doubling the resolution, then ``num_blocks`` BasicBlocks, in the official
    nesting (each block in a Sequential of its own)."""
    padding, output_padding = _DECONV_PADDING[kernel]
    deconv = nn.ConvTranspose2d(in_chs, out_chs, kernel, 2, padding, output_padding, bias=False, **dd)
    layers = [nn.Sequential(deconv, norm_layer(out_chs, **dd), nn.ReLU(inplace=True))]
    layers += [nn.Sequential(BasicBlock(out_chs, out_chs, norm_layer=norm_layer, **dd)) for _ in range(num_blocks)]
    return nn.Sequential(*layers)


def make_final_layers(
    in_chs: int, spec: HigherHeadSpec, num_joints: int = 17, tag_per_joint: bool = True, **dd
) -> nn.ModuleList:
    """``final_layers``: a 1x1 conv (with bias) per output, on branch 0 and after each deconvolution."""
    check_spec(spec)
    widths = (in_chs, *spec.deconv_channels)
    pad = spec.final_kernel // 2
    out_channels = spec.out_channels(num_joints, tag_per_joint)
    return nn.ModuleList([nn.Conv2d(w, c, spec.final_kernel, padding=pad, **dd) for w, c in zip(widths, out_channels)])


def make_deconv_layers(
    in_chs: int,
    spec: HigherHeadSpec,
    num_joints: int = 17,
    tag_per_joint: bool = True,
    norm_layer: NormLayer = BATCH_NORM,
    **dd,
) -> nn.ModuleList:
    """``deconv_layers``: per deconvolution, its input is the previous features plus (``cat_output``) the previous
    outputs."""
    check_spec(spec)
    out_channels = spec.out_channels(num_joints, tag_per_joint)
    widths = (in_chs, *spec.deconv_channels)
    stages = []
    for i, (out_chs, kernel) in enumerate(zip(spec.deconv_channels, spec.deconv_kernels)):
        chs = widths[i] + (out_channels[i] if spec.cat_output[i] else 0)
        stages.append(_deconv_stage(chs, out_chs, kernel, spec.num_basic_blocks, norm_layer, **dd))
    return nn.ModuleList(stages)


def check_spec(spec: HigherHeadSpec) -> None:
    """Refuse lists of the wrong lengths and kernels the official code has no padding for."""
    n = len(spec.deconv_channels)
    if not (len(spec.deconv_kernels) == len(spec.cat_output) == n and len(spec.with_ae) == n + 1):
        raise ValueError(f'a head of {n} deconvolutions needs {n} kernels and cat_output flags and {n + 1} '
                         f'with_ae flags, got {spec}')  # fmt: skip
    if any(k not in _DECONV_PADDING for k in spec.deconv_kernels):
        raise ValueError(f'deconvolution kernels must be in {sorted(_DECONV_PADDING)}, got {spec.deconv_kernels}')


def higher_outputs(
    x: Tensor, final_layers: nn.ModuleList, deconv_layers: nn.ModuleList, cat_output: tuple[bool, ...]
) -> tuple[Tensor, ...]:
    """The official forward: branch 0 ``[N, C, H/4, W/4]`` to one output per resolution, 1/4 first, each
    deconvolution doubling the size."""
    y = final_layers[0](x)
    outputs = [y]
    for i, deconv in enumerate(deconv_layers):
        if cat_output[i]:
            x = torch.cat([x, y], 1)
        x = deconv(x)
        y = final_layers[i + 1](x)
        outputs.append(y)
    return tuple(outputs)
