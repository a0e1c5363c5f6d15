"""HRNetV1 (pose): the high-resolution branch alone, a 1x1 conv to keypoint heatmaps (``final_layer``).

The last exchange unit fuses into branch 0 only (``multi_scale_output=False`` in its HEADS row), as the official pose
model does, so its other fuse rows are absent from the model and from checkpoints.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..builder import HRNet, register_head
from ..layers import classifier

__all__ = ['HRNetV1']


@register_head
class HRNetV1(HRNet):
    """HRNetV1 (pose): the last exchange unit fuses into the high-resolution branch only; a 1x1 conv on it
    gives ``num_classes`` keypoint heatmaps at 1/4 resolution (``final_layer``).

    Args:
        width: one of :data:`~hrnet_zoo.specs.WIDTHS` (``'w18_small_v1'`` ... ``'w64'``).
        num_classes: keypoints (17 for COCO); 0 returns the high-resolution branch itself.
        **kwargs: ``in_chans``, ``upsample_mode``, ``align_corners``, ``output_stride``, ``device``, ``dtype``,
            as documented in :class:`HRNetV2`.
    """

    head = 'v1'

    def __init__(self, width: str = 'w32', num_classes: int = 17, **kwargs: Any) -> None:
        super().__init__(width, **kwargs)
        dd = dict(device=kwargs.get('device'), dtype=kwargs.get('dtype'))
        self.num_classes = num_classes
        self.num_features = self.head_hidden_size = self.branch_channels[0]
        self.final_layer = classifier(self.num_features, num_classes, **dd)
        self._init_weights()

    def representation(self, branches: list[Tensor]) -> Tensor:
        return branches[0]

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return x if pre_logits else self.final_layer(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.final_layer

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.final_layer = classifier(self.num_features, num_classes, device=self.conv1.weight.device)

    def remove_head(self) -> None:
        self.reset_classifier(0)
