"""Small blocks more than one head uses: the per-pixel classifier and HRNetV2's concatenation of the branches."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['classifier', 'concat_branches']


def concat_branches(x: list[Tensor], align_corners: bool = False) -> Tensor:
    """HRNetV2 representation: every branch bilinearly resized to branch 0's size, concatenated."""
    size = [x[0].shape[-2], x[0].shape[-1]]
    ups = [x[0]]
    for i in range(1, len(x)):
        ups.append(F.interpolate(x[i], size=size, mode='bilinear', align_corners=align_corners))
    return torch.cat(ups, dim=1)


def classifier(in_chs: int, num_classes: int, device=None, dtype=None) -> nn.Module:
    """A 1x1 conv to per-pixel logits or heatmaps; identity for num_classes == 0 (timm's convention)."""
    if num_classes <= 0:
        return nn.Identity()
    return nn.Conv2d(in_chs, num_classes, 1, bias=True, device=device, dtype=dtype)
