"""The OCR head's modules: object-contextual representations (Yuan, Chen and Wang, ECCV 2020) on HRNetV2.

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

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbone import BATCH_NORM, NormLayer

__all__ = ['ObjectRegionGather', 'ObjectAttention', 'ObjectContextDistribute', 'conv_norm_relu']


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
