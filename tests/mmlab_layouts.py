"""OpenMMLab HRNet checkpoints, rebuilt key by key for the converter tests (an independent witness).

Nothing here imports hrnet_zoo, and nothing is derived from its converter: every key name, shape and nesting below was
read off OpenMMLab's own module definitions and config files, so a wrong rename rule in the converter cannot make
its own test input agree with it. Where each layout's names come from:

* HRNet backbone (``backbone.*``): ``mmseg/models/backbones/hrnet.py`` (mmsegmentation),
  ``mmpose/models/backbones/hrnet.py`` (mmpose, the same file on the ``0.x`` and ``main`` lines) and
  ``mmdet/models/backbones/hrnet.py`` (mmdetection) build identical modules; their blocks come from each repo's
  ``models/backbones/resnet.py`` (``BasicBlock``: conv1 bn1 conv2 bn2 [downsample]; ``Bottleneck``: conv1 bn1 conv2
  bn2 conv3 bn3 [downsample], expansion 4). Norm names are produced by mmcv's ``build_norm_layer(cfg, c, postfix=i)``
  (``mmcv/cnn/bricks/norm.py``: ``infer_abbr`` gives ``bn`` for every ``_BatchNorm`` subclass, so BN and SyncBN are
  both ``bn1``/``bn2``/``bn3``; the downsample, transition and fuse norms sit at Sequential index ``1``). ``None``
  slots in the transition and fuse ModuleLists hold no keys but keep their index. ``multiscale_output=False`` (the
  mmpose default for stage 4, ``extra['stage4'].get('multiscale_output', False)``) builds only ``fuse_layers[0]`` in
  the last stage-4 module; mmseg and mmdet default it to True (an ``HRNet.__init__`` argument).
* mmseg ``EncoderDecoder`` + ``FCNHead``: ``configs/_base_/models/fcn_hr18.py``, ``configs/hrnet/fcn_hr18s_*.py``,
  ``configs/hrnet/fcn_hr48_*.py``; ``mmseg/models/decode_heads/fcn_head.py`` (``convs`` is a Sequential of mmcv
  ``ConvModule``: ``.conv`` without bias because a norm follows, ``.bn``) and ``decode_head.py`` (``conv_seg``,
  registered before the subclass's layers, hence first in the state_dict).
* mmseg ``CascadeEncoderDecoder`` + ``[FCNHead, OCRHead]``: ``configs/_base_/models/ocrnet_hr18.py``;
  ``mmseg/models/segmentors/cascade_encoder_decoder.py`` (``decode_head`` is an ``nn.ModuleList``),
  ``mmseg/models/decode_heads/ocr_head.py`` (``SpatialGatherModule`` has no parameters; ``ObjectAttentionBlock`` adds
  ``bottleneck``) and ``mmseg/models/utils/self_attention_block.py`` (``build_project``: a single ConvModule when
  ``num_convs == 1``, else a Sequential, so ``key_project.0``/``.1`` but plain ``value_project``/``out_project``).
* mmpose 0.x ``TopDown`` + ``TopdownHeatmapSimpleHead`` (``keypoint_head.*``): ``mmpose/models/detectors/top_down.py``,
  ``mmpose/models/heads/topdown_heatmap_simple_head.py``, configs
  ``configs/body/2d_kpt_sview_rgb_img/topdown_heatmap/coco/hrnet_w32_coco_256x192.py`` and
  ``configs/face/2d_kpt_sview_rgb_img/topdown_heatmap/wflw/hrnetv2_w18_wflw_256x256.py`` (``final_layer`` is one
  Conv2d, or ``Sequential(conv, BN, ReLU, conv)`` with ``num_conv_layers=1``: indices 0, 1, 3).
* mmpose 1.x ``TopdownPoseEstimator`` + ``HeatmapHead`` (``head.*``): ``mmpose/models/pose_estimators/base.py``,
  ``mmpose/models/heads/heatmap_heads/heatmap_head.py`` (``conv_layers`` = ``Sequential(conv, BN, ReLU)``,
  ``final_layer`` a Conv2d), configs ``configs/body_2d_keypoint/topdown_heatmap/coco/td-hm_hrnet-w32_8xb64-210e_coco-
  256x192.py`` and ``configs/face_2d_keypoint/topdown_heatmap/wflw/td-hm_hrnetv2-w18_8xb64-60e_wflw-256x256.py``
  (``FeatureMapProcessor`` neck: no parameters). ``meta['dataset_meta']`` is what
  ``mmpose/datasets/datasets/utils.py::parse_pose_metainfo`` returns (numpy arrays for colours, weights, sigmas), put
  there by mmengine's ``Runner.save_checkpoint``; ``tools/misc/publish_model.py`` keeps only ``meta`` and
  ``state_dict`` and saves with ``_use_new_zipfile_serialization=False``.
* mmdet ``FasterRCNN`` + ``HRFPN``: ``configs/hrnet/faster-rcnn_hrnetv2p-w32-1x_coco.py`` (and ``-w18-``), the base
  ``configs/_base_/models/faster-rcnn_r50_fpn.py``; ``mmdet/models/necks/hrfpn.py`` (``reduction_conv`` and
  ``fpn_convs`` are ConvModules built without ``norm_cfg``, so their convs carry a bias),
  ``mmdet/models/dense_heads/rpn_head.py`` and ``mmdet/models/roi_heads/bbox_heads/{bbox_head,convfc_bbox_head}.py``
  (``fc_cls``/``fc_reg`` are registered before ``shared_fcs``).

Data preprocessors (mmengine ``ImgDataPreprocessor`` and subclasses) register ``mean``/``std`` as non-persistent
buffers, and losses hold no tensors, so neither appears in a state_dict.

A layout is plain data: ``{'stage1': (num_modules, num_blocks, num_channels, block), ...}`` with ``block`` one of
``'BOTTLENECK'``/``'BASIC'``, exactly the fields of an OpenMMLab ``extra['stageN']`` dict (``num_branches`` is
``len(num_blocks)``). Every builder takes a ``WIDTH_LAYOUTS`` name or such a dict, and returns the checkpoint dict as
the runner saves it; with ``shapes_only=True`` the state_dict maps names to shape tuples instead of tensors.
"""

from __future__ import annotations

import io
import math
import pickle
import types
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct

StageLayout = tuple[int, tuple[int, ...], tuple[int, ...], str]
Layout = Mapping[str, StageLayout]
Shapes = dict[str, tuple[int, ...]]

EXPANSION = {'BASIC': 1, 'BOTTLENECK': 4}

# From the OpenMMLab configs: mmseg configs/_base_/models/fcn_hr18.py (w18), configs/hrnet/fcn_hr18s_*.py (the
# "hr18s" overrides of stage1-4 num_blocks / num_modules), configs/hrnet/fcn_hr48_*.py (w48 channels) and mmpose
# configs/body_2d_keypoint/topdown_heatmap/coco/td-hm_hrnet-w32_8xb64-210e_coco-256x192.py (w32), mmdet
# configs/hrnet/faster-rcnn_hrnetv2p-w40-1x_coco.py (w40).
WIDTH_LAYOUTS: dict[str, dict[str, StageLayout]] = {
    'w18_small_v2': {
        'stage1': (1, (2,), (64,), 'BOTTLENECK'),
        'stage2': (1, (2, 2), (18, 36), 'BASIC'),
        'stage3': (3, (2, 2, 2), (18, 36, 72), 'BASIC'),
        'stage4': (2, (2, 2, 2, 2), (18, 36, 72, 144), 'BASIC'),
    },
    'w18': {
        'stage1': (1, (4,), (64,), 'BOTTLENECK'),
        'stage2': (1, (4, 4), (18, 36), 'BASIC'),
        'stage3': (4, (4, 4, 4), (18, 36, 72), 'BASIC'),
        'stage4': (3, (4, 4, 4, 4), (18, 36, 72, 144), 'BASIC'),
    },
    'w32': {
        'stage1': (1, (4,), (64,), 'BOTTLENECK'),
        'stage2': (1, (4, 4), (32, 64), 'BASIC'),
        'stage3': (4, (4, 4, 4), (32, 64, 128), 'BASIC'),
        'stage4': (3, (4, 4, 4, 4), (32, 64, 128, 256), 'BASIC'),
    },
    'w40': {  # mmdet configs/hrnet/faster-rcnn_hrnetv2p-w40-1x_coco.py: w32's blocks, 40-channel branches
        'stage1': (1, (4,), (64,), 'BOTTLENECK'),
        'stage2': (1, (4, 4), (40, 80), 'BASIC'),
        'stage3': (4, (4, 4, 4), (40, 80, 160), 'BASIC'),
        'stage4': (3, (4, 4, 4, 4), (40, 80, 160, 320), 'BASIC'),
    },
    'w48': {
        'stage1': (1, (4,), (64,), 'BOTTLENECK'),
        'stage2': (1, (4, 4), (48, 96), 'BASIC'),
        'stage3': (4, (4, 4, 4), (48, 96, 192), 'BASIC'),
        'stage4': (3, (4, 4, 4, 4), (48, 96, 192, 384), 'BASIC'),
    },
}

STEM_CHANNELS = 64  # HRNet.__init__: conv1 / conv2 are 3x3 stride-2 convs to 64 channels, fixed in the code
OCR_CHANNELS, OCR_INNER = 512, 256  # ocrnet_hr18.py: OCRHead(channels=512, ocr_channels=256)
FPN_CHANNELS, FPN_OUTS = 256, 5  # faster-rcnn_hrnetv2p-*.py: HRFPN(out_channels=256), HRFPN's default num_outs=5
RPN_ANCHORS = 3  # faster-rcnn_r50_fpn.py: AnchorGenerator(scales=[8], ratios=[0.5, 1.0, 2.0])
ROI_SIZE, ROI_FC = 7, 1024  # Shared2FCBBoxHead(roi_feat_size=7, fc_out_channels=1024)


def layout_of(width: str | Layout) -> Layout:
    return WIDTH_LAYOUTS[width] if isinstance(width, str) else width


def branch_channels(width: str | Layout) -> tuple[int, ...]:
    """Output channels of the four stage-4 branches (C, 2C, 4C, 8C)."""
    _, _, channels, block = layout_of(width)['stage4']
    return tuple(c * EXPANSION[block] for c in channels)


# --- building blocks (shapes only) ------------------------------------------------------------------------------


def _conv(out: Shapes, name: str, cin: int, cout: int, k: int, *, bias: bool = False) -> None:
    out[f'{name}.weight'] = (cout, cin, k, k)
    if bias:
        out[f'{name}.bias'] = (cout,)


def _bn(out: Shapes, name: str, c: int) -> None:
    for leaf in ('weight', 'bias', 'running_mean', 'running_var'):
        out[f'{name}.{leaf}'] = (c,)
    out[f'{name}.num_batches_tracked'] = ()


def _linear(out: Shapes, name: str, cin: int, cout: int) -> None:
    out[f'{name}.weight'] = (cout, cin)
    out[f'{name}.bias'] = (cout,)


def _conv_module(out: Shapes, name: str, cin: int, cout: int, k: int) -> None:
    """mmcv ConvModule with a norm: ``.conv`` (bias='auto' -> no bias) then ``.bn``."""
    _conv(out, f'{name}.conv', cin, cout, k)
    _bn(out, f'{name}.bn', cout)


def _res_block(out: Shapes, name: str, block: str, cin: int, planes: int) -> int:
    """One BasicBlock / Bottleneck (stride 1, as everywhere in HRNet); returns its output channels."""
    cout = planes * EXPANSION[block]
    if block == 'BASIC':
        _conv(out, f'{name}.conv1', cin, planes, 3)
        _bn(out, f'{name}.bn1', planes)
        _conv(out, f'{name}.conv2', planes, planes, 3)
        _bn(out, f'{name}.bn2', planes)
    elif block == 'BOTTLENECK':
        _conv(out, f'{name}.conv1', cin, planes, 1)
        _bn(out, f'{name}.bn1', planes)
        _conv(out, f'{name}.conv2', planes, planes, 3)
        _bn(out, f'{name}.bn2', planes)
        _conv(out, f'{name}.conv3', planes, cout, 1)
        _bn(out, f'{name}.bn3', cout)
    else:
        raise ValueError(f'unknown block {block!r}')
    if cin != cout:
        _conv(out, f'{name}.downsample.0', cin, cout, 1)
        _bn(out, f'{name}.downsample.1', cout)
    return cout


def _transition(out: Shapes, name: str, pre: tuple[int, ...], cur: tuple[int, ...]) -> None:
    for i, c in enumerate(cur):
        if i < len(pre):
            if c != pre[i]:  # else a None slot
                _conv(out, f'{name}.{i}.0', pre[i], c, 3)
                _bn(out, f'{name}.{i}.1', c)
            continue
        for j in range(i + 1 - len(pre)):  # new branches grow from the last previous branch, stride 2 each
            cin = pre[-1]
            cout = c if j == i - len(pre) else cin
            _conv(out, f'{name}.{i}.{j}.0', cin, cout, 3)
            _bn(out, f'{name}.{i}.{j}.1', cout)


def _stage(out: Shapes, name: str, spec: StageLayout, in_channels: tuple[int, ...], multiscale_output: bool):
    num_modules, num_blocks, num_channels, block = spec
    channels = list(in_channels)
    nb = len(num_blocks)
    for m in range(num_modules):
        prefix = f'{name}.{m}'
        for b in range(nb):
            for k in range(num_blocks[b]):
                channels[b] = _res_block(out, f'{prefix}.branches.{b}.{k}', block, channels[b], num_channels[b])
        if nb == 1:
            continue  # fuse_layers is None
        rows = nb if (multiscale_output or m < num_modules - 1) else 1
        for i in range(rows):
            for j in range(nb):
                fuse = f'{prefix}.fuse_layers.{i}.{j}'
                if j > i:  # 1x1 conv + BN, then upsample (no parameters)
                    _conv(out, f'{fuse}.0', channels[j], channels[i], 1)
                    _bn(out, f'{fuse}.1', channels[i])
                elif j < i:  # i - j stride-2 3x3 convs; only the last one changes the width
                    for k in range(i - j):
                        cout = channels[i] if k == i - j - 1 else channels[j]
                        _conv(out, f'{fuse}.{k}.0', channels[j], cout, 3)
                        _bn(out, f'{fuse}.{k}.1', cout)
    return tuple(channels)


def hrnet_backbone(width: str | Layout, *, multiscale_output: bool = True, prefix: str = '') -> Shapes:
    """OpenMMLab ``HRNet`` state_dict shapes, in registration order (``multiscale_output`` is stage 4's)."""
    layout = layout_of(width)
    out: Shapes = {}
    _conv(out, f'{prefix}conv1', 3, STEM_CHANNELS, 3)
    _bn(out, f'{prefix}bn1', STEM_CHANNELS)
    _conv(out, f'{prefix}conv2', STEM_CHANNELS, STEM_CHANNELS, 3)
    _bn(out, f'{prefix}bn2', STEM_CHANNELS)
    _, (blocks1,), (planes1,), block1 = layout['stage1']
    c = STEM_CHANNELS
    for k in range(blocks1):
        c = _res_block(out, f'{prefix}layer1.{k}', block1, c, planes1)
    pre: tuple[int, ...] = (c,)
    for s in (2, 3, 4):
        spec = layout[f'stage{s}']
        cur = tuple(ch * EXPANSION[spec[3]] for ch in spec[2])
        _transition(out, f'{prefix}transition{s - 1}', pre, cur)
        pre = _stage(out, f'{prefix}stage{s}', spec, cur, multiscale_output if s == 4 else True)
    return out


def fcn_head(in_channels: int, num_classes: int, prefix: str = 'decode_head.') -> Shapes:
    """mmseg FCNHead(kernel_size=1, num_convs=1, concat_input=False, channels=in_channels) with a norm."""
    out: Shapes = {}
    _conv(out, f'{prefix}conv_seg', in_channels, num_classes, 1, bias=True)
    _conv_module(out, f'{prefix}convs.0', in_channels, in_channels, 1)
    return out


def ocr_head(in_channels: int, num_classes: int, prefix: str = 'decode_head.1.') -> Shapes:
    """mmseg OCRHead(channels=512, ocr_channels=256, scale=1) with a norm."""
    out: Shapes = {}
    _conv(out, f'{prefix}conv_seg', OCR_CHANNELS, num_classes, 1, bias=True)
    block = f'{prefix}object_context_block'
    for proj in ('key_project', 'query_project'):  # key_query_num_convs=2: a Sequential of two ConvModules
        _conv_module(out, f'{block}.{proj}.0', OCR_CHANNELS, OCR_INNER, 1)
        _conv_module(out, f'{block}.{proj}.1', OCR_INNER, OCR_INNER, 1)
    _conv_module(out, f'{block}.value_project', OCR_CHANNELS, OCR_INNER, 1)  # value_out_num_convs=1: bare module
    _conv_module(out, f'{block}.out_project', OCR_INNER, OCR_CHANNELS, 1)
    _conv_module(out, f'{block}.bottleneck', 2 * OCR_CHANNELS, OCR_CHANNELS, 1)
    _conv_module(out, f'{prefix}bottleneck', in_channels, OCR_CHANNELS, 3)
    return out


# --- values and wrapping ----------------------------------------------------------------------------------------


def materialize(shapes: Mapping[str, tuple[int, ...]], seed: int = 0) -> OrderedDict[str, Tensor]:
    """Seeded random tensors for ``shapes``: fan-in scaled weights, BN affine/statistics around 1 and 0."""
    gen = torch.Generator().manual_seed(seed)
    out: OrderedDict[str, Tensor] = OrderedDict()
    for name, shape in shapes.items():
        leaf = name.rsplit('.', 1)[-1]
        if leaf == 'num_batches_tracked':
            out[name] = torch.tensor(int(torch.randint(1, 200_000, (), generator=gen)), dtype=torch.long)
        elif leaf == 'running_var' or (leaf == 'weight' and len(shape) == 1):
            out[name] = torch.rand(shape, generator=gen) * 0.8 + 0.6
        elif leaf in ('running_mean', 'bias'):
            out[name] = torch.randn(shape, generator=gen) * 0.1
        else:
            fan_in = math.prod(shape[1:])
            out[name] = torch.randn(shape, generator=gen) / math.sqrt(fan_in)
    return out


def _state(shapes: Shapes, seed: int, shapes_only: bool) -> OrderedDict:
    return OrderedDict(shapes) if shapes_only else materialize(shapes, seed)


def _extra(layout: Layout, multiscale_output: bool | None = None) -> dict[str, Any]:
    """The backbone's ``extra`` config dict, as OpenMMLab configs spell it."""
    extra: dict[str, Any] = {}
    for s in (1, 2, 3, 4):
        num_modules, num_blocks, num_channels, block = layout[f'stage{s}']
        extra[f'stage{s}'] = dict(
            num_modules=num_modules,
            num_branches=len(num_blocks),
            block=block,
            num_blocks=tuple(num_blocks),
            num_channels=tuple(num_channels),
        )
    if multiscale_output is not None:
        extra['stage4']['multiscale_output'] = multiscale_output
    return extra


def _mmcv_meta(version_key: str, version: str, model: dict, **extra: Any) -> dict[str, Any]:
    """What an mmcv (0.x-line) runner writes: the tool's version and config text, then mmcv's own fields."""
    return {
        'env_info': 'sys.platform: linux\nPython: 3.8.13\nPyTorch: 1.12.1\nTorchVision: 0.13.1\nMMCV: 1.6.2',
        'seed': 0,
        'exp_name': 'witness.py',
        version_key: version,
        'config': f'model = {model!r}\n',
        **extra,
        'mmcv_version': '1.6.2',
        'time': 'Mon Sep  5 12:00:00 2022',
        'epoch': 1,
        'iter': 1000,
    }


def _mmengine_meta(model: dict, dataset_meta: dict) -> dict[str, Any]:
    """What mmengine's ``Runner.save_checkpoint`` writes (kept by mmpose's publish_model.py)."""
    return {
        'epoch': 210,
        'iter': 1000,
        'cfg': f'model = {model!r}\n',
        'seed': 0,
        'experiment_name': 'witness',
        'time': '20230101_120000',
        'mmengine_version': '0.10.3',
        'dataset_meta': dataset_meta,
    }


def pose_dataset_meta(num_keypoints: int, *, face: bool = False) -> dict[str, Any]:
    """``parse_pose_metainfo`` output: COCO-like (17 keypoints, a skeleton) or WFLW-like (no skeleton, no sigmas)."""
    rng = np.random.default_rng(num_keypoints)
    names = [f'kpt_{i}' for i in range(num_keypoints)]
    links = [] if face else [(i, i + 1) for i in range(num_keypoints - 1)]
    pairs = [(i, i + 1) for i in range(1, num_keypoints - 1, 2)]
    flip = list(range(num_keypoints))
    for a, b in pairs:
        flip[a], flip[b] = b, a
    return {
        'dataset_name': 'wflw' if face else 'coco',
        'num_keypoints': num_keypoints,
        'keypoint_id2name': dict(enumerate(names)),
        'keypoint_name2id': {n: i for i, n in enumerate(names)},
        'upper_body_ids': [] if face else list(range(min(11, num_keypoints))),
        'lower_body_ids': [] if face else list(range(11, num_keypoints)),
        'flip_indices': flip,
        'flip_pairs': pairs,
        'keypoint_colors': rng.integers(0, 256, (num_keypoints, 3)).astype(np.uint8),
        'num_skeleton_links': len(links),
        'skeleton_links': links,
        'skeleton_link_colors': np.array([[0, 255, 0]] * len(links), dtype=np.uint8),
        'dataset_keypoint_weights': np.ones(num_keypoints, dtype=np.float32),
        'sigmas': np.array([], dtype=np.float32) if face else rng.uniform(0.02, 0.1, num_keypoints).astype(np.float32),
    }


def _wrap(meta: dict, state: OrderedDict) -> dict[str, Any]:
    return {'meta': meta, 'state_dict': state}


# --- the checkpoints --------------------------------------------------------------------------------------------


def mmseg_fcn(
    width: str | Layout, num_classes: int = 19, *, seed: int = 0, shapes_only: bool = False
) -> dict[str, Any]:
    """mmseg ``EncoderDecoder(backbone=HRNet, decode_head=FCNHead)``, as ``fcn_hr18.py`` (SyncBN: same keys as BN)."""
    layout = layout_of(width)
    c = sum(branch_channels(layout))
    shapes = hrnet_backbone(layout, prefix='backbone.') | fcn_head(c, num_classes)
    model = dict(type='EncoderDecoder', backbone=dict(type='HRNet', extra=_extra(layout)), decode_head='FCNHead')
    classes = tuple(f'class_{i}' for i in range(num_classes))
    palette = [[(37 * i) % 256, (91 * i) % 256, (173 * i) % 256] for i in range(num_classes)]
    meta = _mmcv_meta('mmseg_version', '0.27.0+5d2a8d6', model, CLASSES=classes, PALETTE=palette)
    return _wrap(meta, _state(shapes, seed, shapes_only))


def mmseg_ocrnet(
    width: str | Layout, num_classes: int = 19, *, seed: int = 0, shapes_only: bool = False
) -> dict[str, Any]:
    """mmseg ``CascadeEncoderDecoder(decode_head=[FCNHead, OCRHead])``, as ``ocrnet_hr18.py``."""
    layout = layout_of(width)
    c = sum(branch_channels(layout))
    shapes = (
        hrnet_backbone(layout, prefix='backbone.')
        | fcn_head(c, num_classes, prefix='decode_head.0.')
        | ocr_head(c, num_classes, prefix='decode_head.1.')
    )
    model = dict(
        type='CascadeEncoderDecoder',
        num_stages=2,
        backbone=dict(type='HRNet', extra=_extra(layout)),
        decode_head=['FCNHead', 'OCRHead'],
    )
    classes = tuple(f'class_{i}' for i in range(num_classes))
    palette = [[(37 * i) % 256, (91 * i) % 256, (173 * i) % 256] for i in range(num_classes)]
    meta = _mmcv_meta('mmseg_version', '0.27.0+5d2a8d6', model, CLASSES=classes, PALETTE=palette)
    return _wrap(meta, _state(shapes, seed, shapes_only))


def mmpose0_topdown(
    width: str | Layout, num_keypoints: int = 17, *, seed: int = 0, shapes_only: bool = False
) -> dict[str, Any]:
    """mmpose 0.x ``TopDown`` + ``TopdownHeatmapSimpleHead(num_deconv_layers=0, extra=dict(final_conv_kernel=1))``.

    The pose backbone keeps stage 4's ``multiscale_output`` default (False): the last stage-4 module has only
    ``fuse_layers.0``; the head reads branch 0 alone."""
    layout = layout_of(width)
    shapes = hrnet_backbone(layout, multiscale_output=False, prefix='backbone.')
    _conv(shapes, 'keypoint_head.final_layer', branch_channels(layout)[0], num_keypoints, 1, bias=True)
    model = dict(type='TopDown', backbone=dict(type='HRNet', extra=_extra(layout)), keypoint_head='SimpleHead')
    meta = _mmcv_meta('mmpose_version', '0.29.0+5e1bc4d', model)
    return _wrap(meta, _state(shapes, seed, shapes_only))


def mmpose1_topdown(
    width: str | Layout, num_keypoints: int = 17, *, seed: int = 0, shapes_only: bool = False
) -> dict[str, Any]:
    """mmpose 1.x ``TopdownPoseEstimator`` + ``HeatmapHead(deconv_out_channels=None)``; meta holds numpy arrays."""
    layout = layout_of(width)
    shapes = hrnet_backbone(layout, multiscale_output=False, prefix='backbone.')
    _conv(shapes, 'head.final_layer', branch_channels(layout)[0], num_keypoints, 1, bias=True)
    model = dict(type='TopdownPoseEstimator', backbone=dict(type='HRNet', extra=_extra(layout)), head='HeatmapHead')
    meta = _mmengine_meta(model, pose_dataset_meta(num_keypoints))
    return _wrap(meta, _state(shapes, seed, shapes_only))


def mmpose0_hrnetv2_head(
    width: str | Layout, num_keypoints: int = 98, *, seed: int = 0, shapes_only: bool = False
) -> dict[str, Any]:
    """mmpose 0.x face/hand HRNetV2: ``multiscale_output=True`` and a head on the ``resize_concat`` of 4 branches,
    ``extra=dict(final_conv_kernel=1, num_conv_layers=1, num_conv_kernels=(1,))``: final_layer = (conv, BN, ReLU,
    conv), the first conv with a bias (``build_conv_layer`` default) despite the BN after it."""
    layout = layout_of(width)
    c = sum(branch_channels(layout))
    shapes = hrnet_backbone(layout, multiscale_output=True, prefix='backbone.')
    _conv(shapes, 'keypoint_head.final_layer.0', c, c, 1, bias=True)
    _bn(shapes, 'keypoint_head.final_layer.1', c)
    _conv(shapes, 'keypoint_head.final_layer.3', c, num_keypoints, 1, bias=True)
    model = dict(type='TopDown', backbone=dict(type='HRNet', extra=_extra(layout, True)), keypoint_head='SimpleHead')
    meta = _mmcv_meta('mmpose_version', '0.29.0+5e1bc4d', model)
    return _wrap(meta, _state(shapes, seed, shapes_only))


def mmpose1_hrnetv2_head(
    width: str | Layout, num_keypoints: int = 98, *, seed: int = 0, shapes_only: bool = False
) -> dict[str, Any]:
    """mmpose 1.x face/hand HRNetV2: ``FeatureMapProcessor(concat=True)`` neck, ``HeatmapHead(in_channels=15C,
    deconv_out_channels=None, conv_out_channels=(15C,), conv_kernel_sizes=(1,))``."""
    layout = layout_of(width)
    c = sum(branch_channels(layout))
    shapes = hrnet_backbone(layout, multiscale_output=True, prefix='backbone.')
    _conv(shapes, 'head.conv_layers.0', c, c, 1, bias=True)
    _bn(shapes, 'head.conv_layers.1', c)
    _conv(shapes, 'head.final_layer', c, num_keypoints, 1, bias=True)
    model = dict(type='TopdownPoseEstimator', backbone=dict(type='HRNet', extra=_extra(layout, True)), head='Heatmap')
    meta = _mmengine_meta(model, pose_dataset_meta(num_keypoints, face=True))
    return _wrap(meta, _state(shapes, seed, shapes_only))


def mmdet_hrfpn(
    width: str | Layout, num_classes: int = 80, *, seed: int = 0, shapes_only: bool = False
) -> dict[str, Any]:
    """mmdet ``FasterRCNN(backbone=HRNet, neck=HRFPN(in_channels=[C, 2C, 4C, 8C], out_channels=256))`` with the
    detector's RPN and RoI heads (what a backbone+neck conversion has to drop)."""
    layout = layout_of(width)
    shapes = hrnet_backbone(layout, prefix='backbone.')
    _conv(shapes, 'neck.reduction_conv.conv', sum(branch_channels(layout)), FPN_CHANNELS, 1, bias=True)
    for i in range(FPN_OUTS):
        _conv(shapes, f'neck.fpn_convs.{i}.conv', FPN_CHANNELS, FPN_CHANNELS, 3, bias=True)
    _conv(shapes, 'rpn_head.rpn_conv', FPN_CHANNELS, FPN_CHANNELS, 3, bias=True)
    _conv(shapes, 'rpn_head.rpn_cls', FPN_CHANNELS, RPN_ANCHORS, 1, bias=True)  # sigmoid: 1 channel per anchor
    _conv(shapes, 'rpn_head.rpn_reg', FPN_CHANNELS, RPN_ANCHORS * 4, 1, bias=True)
    _linear(shapes, 'roi_head.bbox_head.fc_cls', ROI_FC, num_classes + 1)
    _linear(shapes, 'roi_head.bbox_head.fc_reg', ROI_FC, num_classes * 4)  # reg_class_agnostic=False
    _linear(shapes, 'roi_head.bbox_head.shared_fcs.0', FPN_CHANNELS * ROI_SIZE * ROI_SIZE, ROI_FC)
    _linear(shapes, 'roi_head.bbox_head.shared_fcs.1', ROI_FC, ROI_FC)
    model = dict(type='FasterRCNN', backbone=dict(type='HRNet', extra=_extra(layout)), neck='HRFPN')
    meta = _mmcv_meta('mmdet_version', '2.25.1', model, CLASSES=tuple(f'class_{i}' for i in range(num_classes)))
    return _wrap(meta, _state(shapes, seed, shapes_only))


class _Numpy1Pickler(pickle.Pickler):
    """Writes numpy 2's ``numpy._core.multiarray`` global under numpy 1's ``numpy.core.multiarray`` name, as the
    checkpoints OpenMMLab published (numpy 1.x era) spell it. Protocol 2 (torch.save's) writes globals as text."""

    def __init__(self, file: Any, *args: Any, **kwargs: Any) -> None:
        self._target, self._buffer = file, io.BytesIO()
        super().__init__(self._buffer, *args, **kwargs)

    def dump(self, obj: Any) -> None:
        super().dump(obj)
        self._target.write(self._buffer.getvalue().replace(b'cnumpy._core.multiarray\n', b'cnumpy.core.multiarray\n'))
        self._buffer = io.BytesIO()


_NUMPY1_PICKLE = types.SimpleNamespace(__name__='pickle', Pickler=_Numpy1Pickler, dump=pickle.dump)


def save_checkpoint(
    path: str | Path, checkpoint: Mapping[str, Any], *, legacy_format: bool = False, numpy1_names: bool = False
) -> Path:
    """``torch.save`` the checkpoint.

    ``legacy_format=True`` writes the pre-1.6 (non-zip) container that mmpose 1.x's ``tools/misc/publish_model.py``
    produces (``_use_new_zipfile_serialization=False``); ``numpy1_names=True`` names numpy's array reconstructor
    ``numpy.core.multiarray._reconstruct``, as a file pickled under numpy 1.x does (numpy 2 writes ``numpy._core``)."""
    path = Path(path)
    kwargs: dict[str, Any] = {'_use_new_zipfile_serialization': not legacy_format}
    if numpy1_names:
        kwargs['pickle_module'] = _NUMPY1_PICKLE
    torch.save(dict(checkpoint), path, **kwargs)
    return path


def numpy_safe_globals(*, numpy1_names: bool = False, empty_arrays: bool = False) -> list[Any]:
    """The least ``torch.serialization.safe_globals`` list that loads a ``meta`` holding numpy arrays of the dtypes
    ``parse_pose_metainfo`` uses (uint8 colours, float32 weights and sigmas) with ``weights_only=True``.

    An array is pickled as ``_reconstruct(ndarray, (0,), b'b')`` + BUILD with a ``dtype`` (BUILD on a dtype needs its
    concrete class, ``numpy.dtypes.UInt8DType`` / ``Float32DType``); an empty array's data is pickled as ``bytes()``
    (protocol 2), hence ``builtins.bytes`` for ``empty_arrays``. A numpy-1.x file names the reconstructor
    ``numpy.core.multiarray._reconstruct``, which only the ``(obj, 'dotted.name')`` form of an entry matches."""
    reconstruct: Any = _reconstruct
    if numpy1_names:
        reconstruct = (_reconstruct, 'numpy.core.multiarray._reconstruct')
    allowed = [reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint8)), type(np.dtype(np.float32))]
    return allowed + [bytes] if empty_arrays else allowed
