"""The official HRNet-OCR head, written out by hand for the OCR tests: its tensors under the official names, the
mmseg OCRNet names of the same tensors, and the forward with torch.nn.functional.

Nothing here imports hrnet_zoo. The names and the forward follow ``lib/models/seg_hrnet_ocr.py`` (branch HRNet-OCR
of HRNet/HRNet-Semantic-Segmentation) and mmseg's ``OCRHead`` / ``FCNHead`` / ``SelfAttentionBlock`` sources.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

BLOCK = 'ocr_distri_head.object_context_block.'


def _bn(prefix: str, n: int, g: torch.Generator) -> dict[str, Tensor]:
    return {
        f'{prefix}.weight': 1 + 0.1 * torch.randn(n, generator=g),
        f'{prefix}.bias': 0.1 * torch.randn(n, generator=g),
        f'{prefix}.running_mean': 0.1 * torch.randn(n, generator=g),
        f'{prefix}.running_var': 0.5 + torch.rand(n, generator=g),
        f'{prefix}.num_batches_tracked': torch.tensor(321),
    }


def _conv(out: int, inp: int, k: int, g: torch.Generator) -> Tensor:
    return torch.randn(out, inp, k, k, generator=g) / (inp * k * k) ** 0.5  # unit gain


def ocr_head(
    channels: int, num_classes: int, mid: int = 512, key: int = 256, seed: int = 7, biases: bool = True
) -> dict[str, Tensor]:
    """Random tensors of the official head; ``biases=False`` zeroes the two conv biases mmseg does not have."""
    g = torch.Generator().manual_seed(seed)

    def bias(n: int) -> Tensor:
        return 0.1 * torch.randn(n, generator=g) if biases else torch.zeros(n)

    sd = {'aux_head.0.weight': _conv(channels, channels, 1, g), 'aux_head.0.bias': bias(channels)}
    sd.update(_bn('aux_head.1', channels, g))
    sd.update({'aux_head.3.weight': _conv(num_classes, channels, 1, g), 'aux_head.3.bias': bias(num_classes)})
    sd.update({'conv3x3_ocr.0.weight': _conv(mid, channels, 3, g), 'conv3x3_ocr.0.bias': bias(mid)})
    sd.update(_bn('conv3x3_ocr.1', mid, g))
    for name in ('f_pixel', 'f_object'):  # conv, (BN, ReLU), conv, (BN, ReLU)
        sd[f'{BLOCK}{name}.0.weight'] = _conv(key, mid, 1, g)
        sd.update(_bn(f'{BLOCK}{name}.1.0', key, g))
        sd[f'{BLOCK}{name}.2.weight'] = _conv(key, key, 1, g)
        sd.update(_bn(f'{BLOCK}{name}.3.0', key, g))
    sd[f'{BLOCK}f_down.0.weight'] = _conv(key, mid, 1, g)
    sd.update(_bn(f'{BLOCK}f_down.1.0', key, g))
    sd[f'{BLOCK}f_up.0.weight'] = _conv(mid, key, 1, g)
    sd.update(_bn(f'{BLOCK}f_up.1.0', mid, g))
    sd['ocr_distri_head.conv_bn_dropout.0.weight'] = _conv(mid, 2 * mid, 1, g)
    sd.update(_bn('ocr_distri_head.conv_bn_dropout.1.0', mid, g))
    sd.update({'cls_head.weight': _conv(num_classes, mid, 1, g), 'cls_head.bias': bias(num_classes)})
    return sd


def _bn_names(prefix: str, ours: str, sd: dict[str, Tensor]) -> dict[str, Tensor]:
    stats = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
    return {f'{prefix}.{s}': sd[f'{ours}.{s}'] for s in stats}


def mmseg_ocrnet(backbone_mm: dict[str, Tensor], head: dict[str, Tensor]) -> dict:
    """mmseg CascadeEncoderDecoder: decode_head.0 = FCNHead (ConvModule ``convs.0``, ``conv_seg``), decode_head.1 =
    OCRHead (``bottleneck`` ConvModule, ``object_context_block`` = SelfAttentionBlock + ``bottleneck``,
    ``conv_seg``). ConvModules followed by a norm have no bias. ``backbone_mm`` is already in mmcv names."""
    sd = dict(backbone_mm)
    sd['decode_head.0.convs.0.conv.weight'] = head['aux_head.0.weight']
    sd.update(_bn_names('decode_head.0.convs.0.bn', 'aux_head.1', head))
    sd['decode_head.0.conv_seg.weight'] = head['aux_head.3.weight']
    sd['decode_head.0.conv_seg.bias'] = head['aux_head.3.bias']
    sd['decode_head.1.bottleneck.conv.weight'] = head['conv3x3_ocr.0.weight']
    sd.update(_bn_names('decode_head.1.bottleneck.bn', 'conv3x3_ocr.1', head))
    mm = 'decode_head.1.object_context_block.'
    for project, ours in (('query_project', 'f_pixel'), ('key_project', 'f_object')):  # Sequential of 2
        sd[f'{mm}{project}.0.conv.weight'] = head[f'{BLOCK}{ours}.0.weight']
        sd.update(_bn_names(f'{mm}{project}.0.bn', f'{BLOCK}{ours}.1.0', head))
        sd[f'{mm}{project}.1.conv.weight'] = head[f'{BLOCK}{ours}.2.weight']
        sd.update(_bn_names(f'{mm}{project}.1.bn', f'{BLOCK}{ours}.3.0', head))
    for project, ours in (('value_project', 'f_down'), ('out_project', 'f_up')):  # a single ConvModule
        sd[f'{mm}{project}.conv.weight'] = head[f'{BLOCK}{ours}.0.weight']
        sd.update(_bn_names(f'{mm}{project}.bn', f'{BLOCK}{ours}.1.0', head))
    sd[f'{mm}bottleneck.conv.weight'] = head['ocr_distri_head.conv_bn_dropout.0.weight']
    sd.update(_bn_names(f'{mm}bottleneck.bn', 'ocr_distri_head.conv_bn_dropout.1.0', head))
    sd['decode_head.1.conv_seg.weight'] = head['cls_head.weight']
    sd['decode_head.1.conv_seg.bias'] = head['cls_head.bias']
    return {'meta': {'mmseg_version': '0.30.0'}, 'state_dict': sd}


# ------------------------------------------------------------------------------------------------------------
# The official forward (seg_hrnet_ocr.py HighResolutionNet.forward after stage 4), eval mode


def _bn_f(x: Tensor, h: dict[str, Tensor], prefix: str) -> Tensor:
    return F.batch_norm(
        x, h[f'{prefix}.running_mean'], h[f'{prefix}.running_var'], h[f'{prefix}.weight'], h[f'{prefix}.bias'],
        training=False, eps=1e-5,
    )  # fmt: skip


def _conv_bn_relu(x: Tensor, h: dict[str, Tensor], conv: str, bn: str) -> Tensor:
    return F.relu(_bn_f(F.conv2d(x, h[f'{conv}.weight'], h.get(f'{conv}.bias')), h, bn))


def ocr_logits(branches: list[Tensor], h: dict[str, Tensor], key: int = 256) -> tuple[Tensor, Tensor]:
    """(main logits, aux logits) of the official model from its four stage-4 branches (align_corners=True)."""
    size = branches[0].shape[-2:]
    ups = [F.interpolate(b, size=size, mode='bilinear', align_corners=True) for b in branches[1:]]
    feats = torch.cat([branches[0], *ups], 1)
    # aux_head: 1x1 conv + BN + ReLU + 1x1 conv to the classes
    aux = F.conv2d(_conv_bn_relu(feats, h, 'aux_head.0', 'aux_head.1'), h['aux_head.3.weight'], h['aux_head.3.bias'])
    feats = _conv_bn_relu(F.pad(feats, (1, 1, 1, 1)), h, 'conv3x3_ocr.0', 'conv3x3_ocr.1')  # 3x3, padding 1
    n, c, hh, ww = feats.shape
    # SpatialGather_Module: softmax over the pixels of each class map, then a weighted sum of the features
    probs = F.softmax(aux.view(n, aux.shape[1], -1), dim=2)
    context = torch.matmul(probs, feats.view(n, c, -1).permute(0, 2, 1)).permute(0, 2, 1).unsqueeze(3)

    # _ObjectAttentionBlock (scale 1: no pooling)
    def proj(x: Tensor, name: str, convs: int) -> Tensor:
        for i in range(convs):
            x = _conv_bn_relu(x, h, f'{BLOCK}{name}.{2 * i}', f'{BLOCK}{name}.{2 * i + 1}.0')
        return x

    query = proj(feats, 'f_pixel', 2).view(n, key, -1).permute(0, 2, 1)
    keys = proj(context, 'f_object', 2).view(n, key, -1)
    value = proj(context, 'f_down', 1).view(n, key, -1).permute(0, 2, 1)
    sim = F.softmax((key**-0.5) * torch.matmul(query, keys), dim=-1)
    ctx = torch.matmul(sim, value).permute(0, 2, 1).contiguous().view(n, key, hh, ww)
    ctx = proj(ctx, 'f_up', 1)
    # SpatialOCR_Module: cat([context, feats]) -> 1x1 conv + BN + ReLU (+ Dropout2d, identity in eval)
    out = _conv_bn_relu(
        torch.cat([ctx, feats], 1), h, 'ocr_distri_head.conv_bn_dropout.0', 'ocr_distri_head.conv_bn_dropout.1.0'
    )
    return F.conv2d(out, h['cls_head.weight'], h['cls_head.bias']), aux
