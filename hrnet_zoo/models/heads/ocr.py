"""HRNetV2-OCR: the OCR head's modules and model class, object-contextual representations (Yuan, Chen and Wang,
ECCV 2020) on HRNetV2.

Names follow the official ``lib/models/seg_hrnet_ocr.py`` (HRNet-Semantic-Segmentation, branch HRNet-OCR), so its
checkpoints load key for key:

* ``ocr_gather_head`` (:class:`ObjectRegionGather`, no parameters): a softmax over the pixels of each soft object
  region (the auxiliary logits), then each region's feature as the weighted mean of the pixel features;
* ``ocr_distri_head`` (:class:`ObjectContextDistribute`): every pixel attends to the regions
  (``object_context_block.f_pixel`` / ``f_object`` / ``f_down`` / ``f_up`` at ``key_channels``), and the context is
  concatenated with the pixel feature, then 1x1 conv + norm + ReLU + Dropout2d (``conv_bn_dropout``).

The official norm + ReLU pairs are nested Sequentials (``f_pixel.1.0`` is a BatchNorm), kept here for the keys.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...specs import HEADS
from ..backbone import BATCH_NORM, NormLayer
from ..builder import HRNet, register_head
from ..layers import classifier
from .v2 import SegmentationHead

__all__ = ['HRNetV2OCR', 'ObjectRegionGather', 'ObjectAttention', 'ObjectContextDistribute', 'conv_norm_relu']


def _norm_relu(chs: int, norm_layer: NormLayer, **dd) -> nn.Sequential:
    return nn.Sequential(norm_layer(chs, **dd), nn.ReLU())


def _projection(in_chs: int, out_chs: int, num_convs: int, norm_layer: NormLayer, **dd) -> nn.Sequential:
    """``num_convs`` x (1x1 conv without bias, then Sequential(norm, ReLU)): the official f_* layout."""
    layers: list[nn.Module] = []
    for i in range(num_convs):
        layers.append(nn.Conv2d(in_chs if i == 0 else out_chs, out_chs, 1, bias=False, **dd))
        layers.append(_norm_relu(out_chs, norm_layer, **dd))
    return nn.Sequential(*layers)


def conv_norm_relu(in_chs: int, out_chs: int, kernel_size: int, norm_layer: NormLayer, **dd) -> nn.Sequential:
    """Conv (with bias, as the official ``conv3x3_ocr``) + norm + ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_chs, out_chs, kernel_size, padding=kernel_size // 2, bias=True, **dd),
        norm_layer(out_chs, **dd),
        nn.ReLU(inplace=True),
    )


class ObjectRegionGather(nn.Module):
    """Region features ``(N, C, K, 1)``: pixel features averaged under each of the K softmaxed region maps."""

    def forward(self, feats: Tensor, region_logits: Tensor) -> Tensor:
        probs = F.softmax(region_logits.flatten(2), dim=2)  # (N, K, HW), a distribution over pixels per region
        pixels = feats.flatten(2).permute(0, 2, 1)  # (N, HW, C)
        return torch.matmul(probs, pixels).permute(0, 2, 1).unsqueeze(3)


class ObjectAttention(nn.Module):
    """``object_context_block``: pixels (queries) attend to the object regions (keys and values)."""

    def __init__(self, in_chs: int, key_channels: int, norm_layer: NormLayer = BATCH_NORM, **dd) -> None:
        super().__init__()
        self.key_channels = key_channels
        self.f_pixel = _projection(in_chs, key_channels, 2, norm_layer, **dd)
        self.f_object = _projection(in_chs, key_channels, 2, norm_layer, **dd)
        self.f_down = _projection(in_chs, key_channels, 1, norm_layer, **dd)
        self.f_up = _projection(key_channels, in_chs, 1, norm_layer, **dd)

    def forward(self, feats: Tensor, regions: Tensor) -> Tensor:
        n, _, h, w = feats.shape
        query = self.f_pixel(feats).flatten(2).permute(0, 2, 1)  # (N, HW, Ck)
        key = self.f_object(regions).flatten(2)  # (N, Ck, K)
        value = self.f_down(regions).flatten(2).permute(0, 2, 1)  # (N, K, Ck)
        weights = F.softmax((self.key_channels**-0.5) * torch.matmul(query, key), dim=-1)  # (N, HW, K)
        context = torch.matmul(weights, value).permute(0, 2, 1).reshape(n, self.key_channels, h, w)
        return self.f_up(context)


class ObjectContextDistribute(nn.Module):
    """``ocr_distri_head``: the object context, concatenated before the pixel feature, fused by a 1x1 conv."""

    def __init__(
        self,
        in_chs: int,
        key_channels: int,
        out_chs: int,
        dropout: float = 0.05,
        norm_layer: NormLayer = BATCH_NORM,
        **dd,
    ) -> None:
        super().__init__()
        self.object_context_block = ObjectAttention(in_chs, key_channels, norm_layer, **dd)
        self.conv_bn_dropout = nn.Sequential(
            nn.Conv2d(2 * in_chs, out_chs, 1, bias=False, **dd),
            _norm_relu(out_chs, norm_layer, **dd),
            nn.Dropout2d(dropout),
        )

    def forward(self, feats: Tensor, regions: Tensor) -> Tensor:
        context = self.object_context_block(feats, regions)
        return self.conv_bn_dropout(torch.cat([context, feats], dim=1))


@register_head
class HRNetV2OCR(HRNet):
    """HRNetV2-OCR (segmentation): the 15C concatenation gives soft object regions (``aux_head``, the HRNetV2
    head) and, through ``conv3x3_ocr``, pixel features; each pixel is enriched with the object-region features
    it attends to (``ocr_gather_head``, ``ocr_distri_head``), then ``cls_head`` gives the logits at 1/4 resolution.

    ``forward`` returns the main logits. For the official training loss (0.4 x aux + 1.0 x main), set
    ``aux_output=True`` (constructor kwarg or attribute): in training mode ``forward`` then returns
    ``(logits, aux_logits)``; in eval it still returns the logits alone, so evaluation and export are unchanged.
    :meth:`forward_with_aux` returns both in either mode.

    Args:
        width: one of :data:`~hrnet_zoo.specs.WIDTHS` (``'w18_small_v1'`` ... ``'w64'``).
        num_classes: classes (19 for Cityscapes), at least 1: the object regions are the classes.
        mid_channels: channels of the pixel and region features (official ``MID_CHANNELS``, 512).
        key_channels: channels of the attention's queries and keys (official ``KEY_CHANNELS``, 256).
        dropout: of ``ocr_distri_head`` (official 0.05).
        aux_output: see above.
        **kwargs: as documented in :class:`HRNetV2`.
    """

    head = 'v2_ocr'

    def __init__(
        self,
        width: str = 'w48',
        num_classes: int = 19,
        mid_channels: int = 512,
        key_channels: int = 256,
        dropout: float = 0.05,
        aux_output: bool = False,
        **kwargs: Any,
    ) -> None:
        _check_regions(num_classes)
        super().__init__(width, **kwargs)
        dd = dict(device=kwargs.get('device'), dtype=kwargs.get('dtype'))
        norm = self.norm_layer
        self.num_classes = num_classes
        self.num_features = sum(self.branch_channels)
        self.head_hidden_size = mid_channels
        self.aux_output = aux_output
        self.aux_head = SegmentationHead(self.num_features, num_classes, norm, **dd)
        self.conv3x3_ocr = conv_norm_relu(self.num_features, mid_channels, 3, norm, **dd)
        self.ocr_gather_head = ObjectRegionGather()
        self.ocr_distri_head = ObjectContextDistribute(mid_channels, key_channels, mid_channels, dropout, norm, **dd)
        self.cls_head = classifier(mid_channels, num_classes, **dd)
        self._init_weights()

    def _head(self, x: Tensor, pre_logits: bool = False) -> tuple[Tensor, Tensor]:
        aux = self.aux_head(x)
        feats = self.conv3x3_ocr(x)
        feats = self.ocr_distri_head(feats, self.ocr_gather_head(feats, aux))
        return (feats if pre_logits else self.cls_head(feats)), aux

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return self._head(x, pre_logits)[0]

    def forward_with_aux(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits, aux_logits)``, both at 1/4 resolution, in train or eval mode."""
        return self._head(self.forward_features(x))

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        logits, aux = self._head(self.forward_features(x))
        if self.aux_output and self.training:
            return logits, aux
        return logits

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.cls_head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new class count replaces both convs to the classes: ``cls_head`` and the regions' ``aux_head.3``."""
        _check_regions(num_classes)
        self.num_classes = num_classes
        device = self.conv1.weight.device
        self.cls_head = classifier(self.head_hidden_size, num_classes, device=device)
        self.aux_head[3] = classifier(self.num_features, num_classes, device=device)

    def remove_head(self) -> None:
        self.num_classes = 0
        for name in HEADS[self.head].modules:
            setattr(self, name, nn.Identity())


def _check_regions(num_classes: int) -> None:
    if num_classes < 1:
        raise ValueError(
            f'HRNetV2-OCR needs num_classes >= 1 (its object regions are the classes), got {num_classes}; for '
            'features use forward_features, features_only=True or hrnetv2_<width>'
        )
