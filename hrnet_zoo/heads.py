"""The paper's representation heads on top of the four branches.

* HRNetV1 (pose): the high-resolution branch only, a 1x1 conv to keypoint heatmaps (``final_layer``).
* HRNetV2 (segmentation): branches 1-3 resized to branch 0 and concatenated (15C channels), then
  1x1 conv + BN + ReLU + 1x1 conv to class logits (``last_layer.{0,1,3}``, the official keys).
* HRNetV2p (detection): the V2 concatenation reduced to 256 channels and average-pooled into a
  five-level pyramid at strides 4 ... 64, one 3x3 conv per level (mmdetection's HRFPN, ``neck.*``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbone import BATCH_NORM, NormLayer

__all__ = ['concat_branches', 'SegmentationHead', 'PyramidNeck']


def concat_branches(x: list[Tensor], align_corners: bool = False) -> Tensor:
    """HRNetV2 representation: every branch bilinearly resized to branch 0's size, concatenated."""
    size = [x[0].shape[-2], x[0].shape[-1]]
    ups = [x[0]]
    for i in range(1, len(x)):
        ups.append(F.interpolate(x[i], size=size, mode='bilinear', align_corners=align_corners))
    return torch.cat(ups, dim=1)


class SegmentationHead(nn.Sequential):
    """``last_layer``: 1x1 conv (bias) + BN + ReLU, then a 1x1 classifier (identity when num_classes is 0)."""

    def __init__(
        self, in_chs: int, num_classes: int, norm_layer: NormLayer = BATCH_NORM, device=None, dtype=None
    ) -> None:
        dd = dict(device=device, dtype=dtype)
        super().__init__(
            nn.Conv2d(in_chs, in_chs, 1, bias=True, **dd),
            norm_layer(in_chs, **dd),
            nn.ReLU(inplace=True),
            classifier(in_chs, num_classes, **dd),
        )

    def forward(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        for i, layer in enumerate(self):
            if i < 3 or not pre_logits:
                x = layer(x)
        return x


def classifier(in_chs: int, num_classes: int, device=None, dtype=None) -> nn.Module:
    """A 1x1 conv to per-pixel logits or heatmaps; identity for num_classes == 0 (timm's convention)."""
    if num_classes <= 0:
        return nn.Identity()
    return nn.Conv2d(in_chs, num_classes, 1, bias=True, device=device, dtype=dtype)


class PyramidNeck(nn.Module):
    """HRFPN: 1x1 reduction to ``out_channels``, average pooling by 2^i, a 3x3 conv per level.

    Pooling floors, as mmdetection does, so the coarsest level needs a 1/4-resolution map of at least
    2^(num_levels-1) cells (an input of at least 61 px per side for five levels).
    """

    def __init__(self, in_chs: int, out_channels: int = 256, num_levels: int = 5, device=None, dtype=None) -> None:
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.out_channels = out_channels
        self.num_levels = num_levels
        self.reduction_conv = nn.Conv2d(in_chs, out_channels, 1, bias=True, **dd)
        self.fpn_convs = nn.ModuleList(
            [nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=True, **dd) for _ in range(num_levels)]
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        coarsest = 2 ** (self.num_levels - 1)
        if x.shape[-2] < coarsest or x.shape[-1] < coarsest:
            raise ValueError(
                f'HRNetV2p needs a 1/4-resolution map of at least {coarsest}x{coarsest} for its {self.num_levels} '
                f'levels (an input of about {4 * coarsest - 3} px per side); got {x.shape[-2]}x{x.shape[-1]}'
            )
        x = self.reduction_conv(x)
        out: list[Tensor] = []
        for i, conv in enumerate(self.fpn_convs):
            level = x if i == 0 else F.avg_pool2d(x, kernel_size=1 << i, stride=1 << i)
            out.append(conv(level))
        return out
