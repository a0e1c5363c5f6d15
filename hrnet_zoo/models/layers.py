"""Small blocks more than one model uses: the per-pixel classifier, HRNetV2's concatenation of the branches, and
timm's ``forward_intermediates`` for a stem followed by parallel branches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from timm.models._features import feature_take_indices  # no public name in timm 1.0.31
from torch import Tensor, nn

__all__ = ['branch_intermediates', 'classifier', 'concat_branches']


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


def branch_intermediates(
    model: Any,
    x: Tensor,
    indices: int | list[int] | None,
    stop_early: bool,
    intermediates_only: bool,
    features_of: Callable[[list[Tensor]], Tensor],
) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
    """timm's ``forward_intermediates`` for a model with ``forward_stem`` and ``forward_branches``: index 0 is the
    stem, 1.. the final branches; ``features_of(branches)`` is the model's ``forward_features`` output."""
    take_indices, max_index = feature_take_indices(len(model.feature_info), indices)
    stem = model.forward_stem(x)
    intermediates = [stem] if 0 in take_indices else []
    if max_index == 0 and (intermediates_only or stop_early):
        return intermediates if intermediates_only else (stem, intermediates)
    branches = model.forward_branches(stem)
    intermediates += [branches[i - 1] for i in take_indices if i > 0]
    if intermediates_only:
        return intermediates
    return features_of(branches), intermediates
