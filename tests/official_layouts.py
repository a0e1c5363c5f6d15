"""Released HRNet checkpoint layouts, written out by hand for the converter tests.

Nothing here imports hrnet_zoo: the inputs are built from timm's own HRNet (whose keys are the official ones)
and from the key names each codebase publishes, so a wrong rename rule in the converter cannot make its own
test input agree with it. The reference outputs are computed with plain torch.nn.functional calls.
"""

from __future__ import annotations

import re

import timm
import torch
import torch.nn.functional as F
from helpers import TIMM_NAMES, randomize_batchnorm
from torch import Tensor, nn

LAST_STAGE4_UNIT = {'w18_small_v1': 0, 'w18_small_v2': 1, 'w18': 2, 'w32': 2}
CLS_HEAD = ('incre_modules.', 'downsamp_modules.', 'final_layer.', 'classifier.')  # official ImageNet head


def randomised_timm_hrnet(width: str, seed: int = 0) -> nn.Module:
    """timm's classification HRNet with every BN's affine and running statistics randomised (eval mode)."""
    torch.manual_seed(seed)
    model = randomize_batchnorm(timm.create_model(TIMM_NAMES[width]).eval(), seed=seed, gain=(0.1, 0.4))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.num_batches_tracked.fill_(1234)  # a released checkpoint's counter, carried over by the converter
    return model


def timm_features(width: str, source: dict[str, Tensor]) -> nn.Module:
    """The independent reference: timm's raw branches (stem, C, 2C, 4C, 8C) with ``source`` loaded."""
    model = timm.create_model(TIMM_NAMES[width], features_only=True, feature_location='').eval()
    result = model.load_state_dict(source, strict=False)
    assert not result.missing_keys, result.missing_keys
    return model


def backbone(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v for k, v in sd.items() if not k.startswith(CLS_HEAD)}


def pose_backbone(sd: dict[str, Tensor], width: str) -> dict[str, Tensor]:
    """What the official pose model has: no fuse rows 1-3 in the last stage-4 unit."""
    pattern = re.compile(rf'^stage4\.{LAST_STAGE4_UNIT[width]}\.fuse_layers\.[123]\.')
    return {k: v for k, v in backbone(sd).items() if not pattern.match(k)}


def _randn(*shape: int, gen: torch.Generator, scale: float = 0.05) -> Tensor:
    return torch.randn(*shape, generator=gen) * scale


def seg_head(channels: int, num_classes: int, seed: int = 1, conv_bias: bool = True) -> dict[str, Tensor]:
    """Official HRNetV2 ``last_layer``: 1x1 conv (bias), BN, ReLU, 1x1 conv."""
    g = torch.Generator().manual_seed(seed)
    return {
        'last_layer.0.weight': _randn(channels, channels, 1, 1, gen=g),
        'last_layer.0.bias': _randn(channels, gen=g) if conv_bias else torch.zeros(channels),
        'last_layer.1.weight': 1 + _randn(channels, gen=g),
        'last_layer.1.bias': _randn(channels, gen=g),
        'last_layer.1.running_mean': _randn(channels, gen=g),
        'last_layer.1.running_var': 1 + torch.rand(channels, generator=g),
        'last_layer.1.num_batches_tracked': torch.tensor(77),
        'last_layer.3.weight': _randn(num_classes, channels, 1, 1, gen=g),
        'last_layer.3.bias': _randn(num_classes, gen=g),
    }


def pose_head(channels: int, joints: int, seed: int = 2) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {'final_layer.weight': _randn(joints, channels, 1, 1, gen=g), 'final_layer.bias': _randn(joints, gen=g)}


def hrfpn(channels: int, out: int = 256, seed: int = 3) -> dict[str, Tensor]:
    """HRNet-Object-Detection's HRFPN, in our (flat) names; the mm layouts below rename it."""
    g = torch.Generator().manual_seed(seed)
    sd = {
        'neck.reduction_conv.weight': _randn(out, channels, 1, 1, gen=g),
        'neck.reduction_conv.bias': _randn(out, gen=g),
    }
    for i in range(5):
        sd[f'neck.fpn_convs.{i}.weight'] = _randn(out, out, 3, 3, gen=g, scale=0.02)
        sd[f'neck.fpn_convs.{i}.bias'] = _randn(out, gen=g)
    return sd


# ------------------------------------------------------------------------------------------------------------
# The layouts, as the codebases save them


def seg_fullmodel(bb: dict[str, Tensor], head: dict[str, Tensor], wrap: bool = False, abn: bool = False) -> dict:
    """HRNet-Semantic-Segmentation: ``FullModel(model, loss)``, so ``model.*`` plus the loss's class weights."""
    sd = {f'model.{k}': v for k, v in {**bb, **head}.items()}
    sd['loss.criterion.weight'] = torch.rand(head['last_layer.3.bias'].shape[0])
    if abn:  # master branch, InPlaceABNSync: no num_batches_tracked
        sd = {k: v for k, v in sd.items() if not k.endswith('num_batches_tracked')}
    return {'epoch': 484, 'best_mIoU': 0.7, 'state_dict': sd} if wrap else sd


def _mm_norms(key: str) -> str:
    """mmcv-style norm names for the stem and block BNs (``bn1`` -> ``norm1``)."""
    parts = key.split('.')
    return '.'.join('norm' + p[2:] if p in ('bn1', 'bn2', 'bn3') else p for p in parts)


def _mm(state_dict: dict[str, Tensor]) -> dict:
    return {'meta': {'mmseg_version': '0.30.0', 'CLASSES': ['a', 'b']}, 'state_dict': state_dict}


def mmseg(bb: dict[str, Tensor], head: dict[str, Tensor]) -> dict:
    """mmsegmentation FCNHead (resize_concat, one conv): its conv has no bias; an auxiliary head to drop."""
    sd = {f'backbone.{_mm_norms(k)}': v for k, v in bb.items()}
    sd['decode_head.convs.0.conv.weight'] = head['last_layer.0.weight']
    for name in ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked'):
        sd[f'decode_head.convs.0.bn.{name}'] = head[f'last_layer.1.{name}']
    sd['decode_head.conv_seg.weight'] = head['last_layer.3.weight']
    sd['decode_head.conv_seg.bias'] = head['last_layer.3.bias']
    sd['auxiliary_head.conv_seg.weight'] = torch.zeros(19, 8, 1, 1)
    return _mm(sd)


def mmpose(bb: dict[str, Tensor], head: dict[str, Tensor], version: int) -> dict:
    """mmpose TopdownHeatmapSimpleHead (0.x, ``keypoint_head.``) / HeatmapHead (1.x, ``head.``)."""
    prefix = 'keypoint_head.' if version == 0 else 'head.'
    sd = {f'backbone.{k}': v for k, v in bb.items()}
    sd.update({prefix + k: v for k, v in head.items()})
    return _mm(sd)


def mmdet(bb: dict[str, Tensor], neck: dict[str, Tensor], v1: bool = False) -> dict:
    """mmdetection Faster R-CNN with HRFPN (ConvModule: ``.conv.``); v1 / HRNet-Object-Detection naming:
    ``reduction_conv.0`` and ``fpn_conv.{i}``. Detector parts that must be dropped come along."""
    sd = {f'backbone.{_mm_norms(k)}': v for k, v in bb.items()}
    for key, value in neck.items():
        _, module, *rest = key.split('.')
        if module == 'reduction_conv':
            sd[f'neck.reduction_conv.{"0" if v1 else "conv"}.{rest[0]}'] = value
        else:
            i, name = rest
            sd[f'neck.fpn_conv.{i}.{name}' if v1 else f'neck.fpn_convs.{i}.conv.{name}'] = value
    sd['rpn_head.rpn_conv.weight'] = torch.zeros(256, 256, 3, 3)
    sd['rpn_head.rpn_cls.bias'] = torch.zeros(3)
    if v1:
        sd['bbox_head.fc_cls.weight'] = torch.zeros(81, 1024)
    else:
        sd['roi_head.bbox_head.fc_cls.weight'] = torch.zeros(81, 1024)
        sd['roi_head.bbox_head.shared_fcs.0.bias'] = torch.zeros(1024)
    return _mm(sd)


def mmpretrain(bb: dict[str, Tensor]) -> dict:
    """mmpretrain ImageClassifier: HRNet backbone, HRFuseScales neck, LinearClsHead, all but the backbone dropped."""
    sd = {f'backbone.{k}': v for k, v in bb.items()}
    sd['neck.increase_layers.0.0.conv1.weight'] = torch.zeros(32, 16, 1, 1)
    sd['neck.downsample_layers.0.conv.weight'] = torch.zeros(256, 128, 3, 3)
    sd['neck.final_layer.bn.running_mean'] = torch.zeros(2048)
    sd['head.fc.weight'] = torch.zeros(1000, 2048)
    sd['head.fc.bias'] = torch.zeros(1000)
    return _mm(sd)


# ------------------------------------------------------------------------------------------------------------
# Reference head outputs, from the branches with torch.nn.functional


def concat(branches: list[Tensor]) -> Tensor:
    size = branches[0].shape[-2:]
    ups = [F.interpolate(b, size=size, mode='bilinear', align_corners=False) for b in branches[1:]]
    return torch.cat([branches[0], *ups], dim=1)


def seg_logits(branches: list[Tensor], h: dict[str, Tensor]) -> Tensor:
    x = F.conv2d(concat(branches), h['last_layer.0.weight'], h['last_layer.0.bias'])
    x = F.batch_norm(
        x, h['last_layer.1.running_mean'], h['last_layer.1.running_var'], h['last_layer.1.weight'],
        h['last_layer.1.bias'], training=False, eps=1e-5,
    )  # fmt: skip
    return F.conv2d(F.relu(x), h['last_layer.3.weight'], h['last_layer.3.bias'])


def heatmaps(branches: list[Tensor], h: dict[str, Tensor]) -> Tensor:
    return F.conv2d(branches[0], h['final_layer.weight'], h['final_layer.bias'])


def pyramid(branches: list[Tensor], h: dict[str, Tensor]) -> list[Tensor]:
    x = F.conv2d(concat(branches), h['neck.reduction_conv.weight'], h['neck.reduction_conv.bias'])
    levels = [x] + [F.avg_pool2d(x, kernel_size=2**i, stride=2**i) for i in range(1, 5)]
    return [F.conv2d(y, h[f'neck.fpn_convs.{i}.weight'], h[f'neck.fpn_convs.{i}.bias'], padding=1)
            for i, y in enumerate(levels)]  # fmt: skip
