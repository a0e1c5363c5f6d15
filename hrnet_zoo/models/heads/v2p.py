"""HRNetV2p (detection): the V2 concatenation reduced to 256 channels and average-pooled into a five-level pyramid
at strides 4 ... 64, one 3x3 conv per level (mmdetection's HRFPN, ``neck.*``). torchvision detectors built on it are
in :mod:`hrnet_zoo.models.detection`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..builder import HRNet, register_head

__all__ = ['HRNetV2p', 'PyramidNeck']


class PyramidNeck(nn.Module):
    """HRFPN: 1x1 reduction to ``out_channels``, average pooling by 2^i, a 3x3 conv per level.

    Pooling floors, as mmdetection does, so the coarsest level needs a 1/4-resolution map of at least
    2^(num_levels-1) cells (an input of at least 61 px per side for five levels).
    """

    def __init__(
        self, in_chs: int, out_channels: int = 256, num_levels: int = 5, stride: int = 1, device=None, dtype=None
    ) -> None:
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.out_channels = out_channels
        self.num_levels = num_levels
        self.reduction_conv = nn.Conv2d(in_chs, out_channels, 1, bias=True, **dd)
        self.fpn_convs = nn.ModuleList(
            [nn.Conv2d(out_channels, out_channels, 3, stride, padding=1, bias=True, **dd) for _ in range(num_levels)]
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


@register_head
class HRNetV2p(HRNet):
    """HRNetV2p (detection): the 15C concatenation reduced to 256 channels and pooled into five levels at
    strides 4, 8, 16, 32, 64, a 3x3 conv each (``neck``). ``forward`` returns the five maps.

    Args:
        width: one of :data:`~hrnet_zoo.specs.WIDTHS` (``'w18_small_v1'`` ... ``'w64'``).
        num_classes: must be 0: the model returns a feature pyramid, not logits.
        **kwargs: ``in_chans``, ``upsample_mode``, ``align_corners``, ``output_stride``, ``device``, ``dtype``,
            as documented in :class:`HRNetV2`.
        out_channels: channels of every pyramid level.
        fpn_stride: of the 3x3 conv of every level: 1 gives strides 4 ... 64 (the R-CNN detectors), 2 gives 8 ...
            128 (mmdetection's FCOS, ``HRFPN(stride=2)``).
    """

    head = 'v2p'

    def __init__(
        self, width: str = 'w32', num_classes: int = 0, out_channels: int = 256, fpn_stride: int = 1, **kwargs: Any
    ) -> None:
        if num_classes != 0:
            raise ValueError(
                f'HRNetV2p has no classifier (it returns a feature pyramid); got num_classes={num_classes}'
            )
        super().__init__(width, **kwargs)
        dd = dict(device=kwargs.get('device'), dtype=kwargs.get('dtype'))
        self.num_classes = 0
        self.num_features = self.head_hidden_size = sum(self.branch_channels)
        self.out_channels = out_channels
        self.neck = PyramidNeck(self.num_features, out_channels, stride=fpn_stride, **dd)
        self._init_weights()

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> list[Tensor]:
        return [x] if pre_logits else self.neck(x)

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return nn.Identity()

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if num_classes != 0:
            raise ValueError(f'HRNetV2p has no classifier; got num_classes={num_classes}')

    def remove_head(self) -> None:
        self.neck = nn.Identity()
