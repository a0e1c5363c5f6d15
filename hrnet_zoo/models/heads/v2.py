"""HRNetV2 (segmentation): branches 1-3 resized to branch 0 and concatenated (15C channels), then
1x1 conv + BN + ReLU + 1x1 conv to class logits (``last_layer.{0,1,3}``, the official keys).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..backbone import BATCH_NORM, NormLayer
from ..builder import HRNet, register_head
from ..layers import classifier

__all__ = ['HRNetV2', 'SegmentationHead']


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


@register_head
class HRNetV2(HRNet):
    """HRNetV2 (segmentation): the 15C concatenation, then 1x1 conv + BN + ReLU + 1x1 conv to
    ``num_classes`` logits at 1/4 resolution (``last_layer``).

    Args:
        width: one of :data:`~hrnet_zoo.specs.WIDTHS` (``'w18_small_v1'`` ... ``'w64'``).
        num_classes: classes (19 for Cityscapes); 0 returns the 15C hidden layer (``pre_logits``).
        in_chans: input image channels (pretrained weights adapt their stem to it).
        upsample_mode: the resize inside the exchange units' fuse layers: ``'nearest'`` (the ImageNet, pose and
            detection weights, and timm) or ``'bilinear'`` (the segmentation weights). A pretrained tag sets the
            one its checkpoint was trained with.
        align_corners: for ``'bilinear'`` (None means False); also used by every bilinear resize in the head.
        output_stride: must be 32: the branches stay at strides 4 to 32 (refused otherwise, with why).
        device, dtype: factory kwargs for the parameters (``'meta'`` works).
        norm_layer: the class of every norm, backbone and head (``nn.SyncBatchNorm``, torchvision's
            ``FrozenBatchNorm2d``, timm's); default BatchNorm2d.
        frozen_stages: -1 (default) trains everything; 0 freezes the stem; i >= 1 also layer1, transition1 and
            stages 2 ... i with their transitions (mmseg's semantics).
        norm_eval: keep every BatchNorm in eval mode during training.
    """

    head = 'v2'

    def __init__(self, width: str = 'w48', num_classes: int = 19, **kwargs: Any) -> None:
        super().__init__(width, **kwargs)
        dd = dict(device=kwargs.get('device'), dtype=kwargs.get('dtype'))
        self.num_classes = num_classes
        self.num_features = self.head_hidden_size = sum(self.branch_channels)
        self.last_layer = SegmentationHead(self.num_features, num_classes, self.norm_layer, **dd)
        self._init_weights()

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return self.last_layer(x, pre_logits)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.last_layer[3]

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.last_layer[3] = classifier(self.num_features, num_classes, device=self.conv1.weight.device)

    def remove_head(self) -> None:
        self.num_classes = 0
        self.last_layer = nn.Sequential()
