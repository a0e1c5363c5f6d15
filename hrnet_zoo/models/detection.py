"""HRNetV2p as a torchvision detection backbone (Faster R-CNN, Mask R-CNN, RetinaNet, ...).

torchvision's detectors need a backbone with an ``out_channels`` attribute whose ``forward`` returns an
``OrderedDict[str, Tensor]``. :class:`HRNetFPN` wraps an ``hrnetv2p_*`` model that way. Its five levels are
named like ``torchvision.models.detection.backbone_utils.resnet_fpn_backbone``'s (``'0'``-``'3'`` and
``'pool'``, strides 4, 8, 16, 32, 64), so torchvision's default anchor generator (one size per level, 32-512)
and RoI poolers (``featmap_names=['0', '1', '2', '3']``) match it without configuration::

    from torchvision.models.detection import FasterRCNN
    from hrnet_zoo.models.detection import hrnet_fpn_backbone

    model = FasterRCNN(hrnet_fpn_backbone('hrnetv2p_w18'), num_classes=3)
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import timm
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign

from .heads.v2p import HRNetV2p

__all__ = [
    'LEVEL_NAMES',
    'LEVEL_STRIDES',
    'HRNetFPN',
    'hrnet_fpn_backbone',
    'freeze_batch_norm',
    'anchor_generator',
    'roi_pooler',
    'hrnet_faster_rcnn',
    'hrnet_mask_rcnn',
]

# The pyramid's keys and strides; the names are those of torchvision's ResNet-FPN backbones.
LEVEL_NAMES: tuple[str, ...] = ('0', '1', '2', '3', 'pool')
LEVEL_STRIDES: tuple[int, ...] = (4, 8, 16, 32, 64)


class HRNetFPN(nn.Module):
    """An HRNetV2p model returning its pyramid as an ``OrderedDict`` (``LEVEL_NAMES`` -> NCHW map).

    ``body`` is the wrapped timm model, so its state-dict keys are ``body.<hrnetv2p key>``.
    """

    def __init__(self, body: HRNetV2p) -> None:
        super().__init__()
        if not isinstance(body, HRNetV2p):
            raise TypeError(
                f'HRNetFPN wraps an HRNetV2p (hrnetv2p_*) model, got {type(body).__name__}; hrnetv1_* and '
                'hrnetv2_* have no pyramid neck (use features_only=True with torchvision.ops.FeaturePyramidNetwork)'
            )
        num_levels = body.neck.num_levels if hasattr(body.neck, 'num_levels') else 0
        if num_levels != len(LEVEL_NAMES):
            raise ValueError(f'HRNetFPN needs the {len(LEVEL_NAMES)}-level neck, the model has {num_levels} levels')
        self.body = body
        self.out_channels: int = body.out_channels

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return OrderedDict(zip(LEVEL_NAMES, self.body(x)))


def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` under ``module`` (in place) by torchvision's ``FrozenBatchNorm2d`` with
    the same statistics and affine terms, as torchvision does for pretrained detection backbones
    (detection batches are too small for batch statistics). Returns ``module`` (or its replacement)."""
    if isinstance(module, nn.BatchNorm2d):
        frozen = FrozenBatchNorm2d(module.num_features, eps=module.eps)
        frozen.to(device=module.running_mean.device)
        if module.affine:
            frozen.weight.copy_(module.weight.detach())
            frozen.bias.copy_(module.bias.detach())
        if module.track_running_stats:
            frozen.running_mean.copy_(module.running_mean)
            frozen.running_var.copy_(module.running_var)
        return frozen
    for name, child in module.named_children():
        new = freeze_batch_norm(child)
        if new is not child:
            setattr(module, name, new)
    return module


def hrnet_fpn_backbone(
    name: str = 'hrnetv2p_w18',
    pretrained: bool = False,
    frozen_bn: bool | None = None,
    **kwargs: Any,
) -> HRNetFPN:
    """Build ``timm.create_model(name, pretrained, **kwargs)`` (an ``hrnetv2p_*`` name, ``name.tag``, or an
    ``hf-hub:`` / ``local-dir:`` HRNetV2p) and wrap it for torchvision detection.

    Args:
        name: the model; its pyramid has ``out_channels`` (default 256) channels per level.
        pretrained: load the pretrained weights of ``name``'s tag.
        frozen_bn: replace the backbone's BatchNorm by ``FrozenBatchNorm2d``. ``None`` follows torchvision:
            frozen when pretrained, trainable BatchNorm when training from scratch.
        **kwargs: more ``timm.create_model`` arguments (``out_channels``, ``upsample_mode``, ...).
    """
    body = timm.create_model(name, pretrained=pretrained, **kwargs)
    if not isinstance(body, HRNetV2p):
        raise TypeError(
            f'{name!r} builds a {type(body).__name__}; a detection backbone needs an HRNetV2p (hrnetv2p_<width>)'
        )
    if pretrained if frozen_bn is None else frozen_bn:
        freeze_batch_norm(body)
    return HRNetFPN(body)


def anchor_generator(
    sizes: tuple[int, ...] = (32, 64, 128, 256, 512),
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0),
) -> AnchorGenerator:
    """One anchor size per pyramid level (five levels), every level with the same aspect ratios."""
    if len(sizes) != len(LEVEL_NAMES):
        raise ValueError(f'HRNetV2p has {len(LEVEL_NAMES)} levels, so give {len(LEVEL_NAMES)} sizes, got {sizes}')
    return AnchorGenerator(tuple((s,) for s in sizes), (tuple(aspect_ratios),) * len(sizes))


def roi_pooler(output_size: int = 7, sampling_ratio: int = 2) -> MultiScaleRoIAlign:
    """RoIAlign over the stride 4-32 levels (7 for box heads, 14 for mask heads), as torchvision's FPN models."""
    return MultiScaleRoIAlign(
        featmap_names=list(LEVEL_NAMES[:4]), output_size=output_size, sampling_ratio=sampling_ratio
    )


def hrnet_faster_rcnn(
    name: str = 'hrnetv2p_w18',
    num_classes: int = 91,
    pretrained_backbone: bool = False,
    frozen_bn: bool | None = None,
    **kwargs: Any,
) -> FasterRCNN:
    """``FasterRCNN`` on :func:`hrnet_fpn_backbone`; ``kwargs`` go to ``FasterRCNN`` (``min_size``, ...)."""
    backbone = hrnet_fpn_backbone(name, pretrained_backbone, frozen_bn)
    return FasterRCNN(backbone, num_classes=num_classes, **kwargs)


def hrnet_mask_rcnn(
    name: str = 'hrnetv2p_w18',
    num_classes: int = 91,
    pretrained_backbone: bool = False,
    frozen_bn: bool | None = None,
    **kwargs: Any,
) -> MaskRCNN:
    """``MaskRCNN`` on :func:`hrnet_fpn_backbone`; ``kwargs`` go to ``MaskRCNN`` (``min_size``, ...)."""
    backbone = hrnet_fpn_backbone(name, pretrained_backbone, frozen_bn)
    return MaskRCNN(backbone, num_classes=num_classes, **kwargs)
