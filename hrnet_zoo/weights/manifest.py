"""The weights manifest: one record per pretrained tag (``<arch>.<tag>``).

Everything about a released checkpoint is written here once: what it was trained on, its labels and
input size, the fuse upsampling it was trained with, where the official file lives, its license and
published metrics. timm's ``default_cfgs``, the model cards and the converter's expectations are all
derived from these records (torchvision's ``Weights`` design). What a record is: :mod:`.records`; dataset facts
(label names, keypoint sets): :mod:`hrnet_zoo.data`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from .._moved import moved_attribute
from ..data.keypoints import COCO_KEYPOINTS, MPII_JOINTS
from ..data.labels import CITYSCAPES_LABELS, LIP_LABELS
from ..specs import ARCHS, HEADS, WIDTHS, arch_name, did_you_mean, get_spec, parse_arch
from .records import BACKBONE_TASK, CITATION, HUB_ORG, PAPER, PAPER_ID, Metric, Source, WeightsRecord

__all__ = [
    'ARCHS',
    'BACKBONE_TASK',
    'CITATION',
    'HEADS',
    'HUB_ORG',
    'MANIFEST',
    'PUBLISHED',
    'PAPER',
    'PAPER_ID',
    'Metric',
    'Source',
    'WeightsRecord',
    'arch_name',
    'default_tag',
    'get_record',
    'parse_arch',
]

# ---------------------------------------------------------------------------------------------------------------
# Records. Order matters: the first tag listed for an architecture is its default (task weights before ImageNet).

_CLS_REPO = 'https://github.com/HRNet/HRNet-Image-Classification'
_SEG_REPO = 'https://github.com/HRNet/HRNet-Semantic-Segmentation'
_POSE_REPO = 'https://github.com/leoxiaobin/deep-high-resolution-net.pytorch'
_DET_REPO = 'https://github.com/HRNet/HRNet-Object-Detection'
_OCR_RELEASE = 'https://github.com/hsfzxjy/models.storage/releases/download/HRNet-OCR/'

# ImageNet top-1 / top-5 of the official -C models (HRNet-Image-Classification README); timm's republished copy of
# the same weights (its architecture is the width's timm_name) is the reachable source.
_IN1K = {
    'w18_small_v1': (72.3, 90.7),
    'w18_small_v2': (75.1, 92.4),
    'w18': (76.8, 93.4),
    'w30': (78.2, 94.2),
    'w32': (78.5, 94.2),
    'w40': (78.9, 94.5),
    'w44': (78.9, 94.4),
    'w48': (79.3, 94.5),
    'w64': (79.5, 94.6),
}


def _seg(width, tag, dataset, dataset_name, num_classes, size, file_name, url, miou, **kw) -> WeightsRecord:
    return WeightsRecord(
        arch=arch_name('v2', width),
        tag=tag,
        task=HEADS['v2'].task,
        dataset=dataset,
        dataset_name=dataset_name,
        num_classes=num_classes,
        input_size=(3, *size),
        source=Source(file_name, url, _SEG_REPO, kw.pop('layout', 'official_seg')),
        metrics=(Metric('mIoU', 'mIoU', miou),),
        upsample_mode='bilinear',
        align_corners=kw.pop('align_corners', False),
        **kw,
    )


def _pose(width, tag, dataset, dataset_name, joints, size, metrics) -> WeightsRecord:
    file_name = f'pose_hrnet_{width}_{size[0]}x{size[1]}.pth'
    return WeightsRecord(
        arch=arch_name('v1', width),
        tag=tag,
        task=HEADS['v1'].task,
        dataset=dataset,
        dataset_name=dataset_name,
        num_classes=len(joints),
        input_size=(3, *size),
        source=Source(file_name, _POSE_REPO + '#main-results', _POSE_REPO, 'official'),
        metrics=metrics,
        label_names=joints,
    )


def _coco_pose(width, size, ap, ap50, ap75, ar) -> WeightsRecord:
    metrics = (
        Metric('AP', 'AP', ap),
        Metric('AP50', 'AP50', ap50),
        Metric('AP75', 'AP75', ap75),
        Metric('AR', 'AR', ar),
    )
    return _pose(width, f'coco_{size[0]}x{size[1]}', 'coco', 'COCO keypoints', COCO_KEYPOINTS, size, metrics)


def _det(width, ap) -> WeightsRecord:
    return WeightsRecord(
        arch=arch_name('v2p', width),
        tag='coco',
        task=HEADS['v2p'].task,
        dataset='coco',
        dataset_name='COCO',
        num_classes=0,
        input_size=(3, 800, 1333),
        source=Source(f'faster_rcnn_hrnetv2p_{width}_1x.pth', _DET_REPO + '#faster-r-cnn', _DET_REPO, 'mmdet'),
        metrics=(Metric('box-AP', 'box AP (Faster R-CNN 1x, full detector)', ap),),
        notes=('Backbone and HRFPN neck of the Faster R-CNN; the RPN and box head are not included.',),
    )


_OCR_PAPER = (
    'The OCR head: Object-Contextual Representations for Semantic Segmentation (Yuan, Chen and Wang, ECCV 2020), '
    'arXiv:1909.11065.'
)


def _ocr(tag, dataset, dataset_name, num_classes, size, file_name, metrics, **kw) -> WeightsRecord:
    """An official HRNetV2-W48 + OCR release (HRNet-Semantic-Segmentation, branch HRNet-OCR): every OCR config
    leaves ALIGN_CORNERS at its default, True."""
    return WeightsRecord(
        arch=arch_name('v2_ocr', 'w48'),
        tag=tag,
        task=HEADS['v2_ocr'].task,
        dataset=dataset,
        dataset_name=dataset_name,
        num_classes=num_classes,
        input_size=(3, *size),
        # torch 0.4 files come from the InPlaceABN code: no num_batches_tracked
        source=Source(file_name, _OCR_RELEASE + file_name, _SEG_REPO, kw.pop('layout', 'official_seg')),
        metrics=tuple(Metric('mIoU', name, value, split) for name, value, split in metrics),
        upsample_mode='bilinear',
        align_corners=True,
        notes=(_OCR_PAPER,),
        **kw,
    )


# timm's better ImageNet weights of some widths: our tag -> (timm's tag, who trained them, their codebase, eval crop,
# interpolation, license, what differs, {width: (timm's architecture, top-1, top-5)}). Licenses, crops and
# interpolations are timm's `default_cfgs` (timm/models/hrnet.py); accuracies are timm's results-imagenet.csv at
# 224 px.
_IN1K_VARIANTS = {
    'in1k_aug': ('ms_aug_in1k', 'Microsoft', _CLS_REPO, 0.95, 'bilinear', 'mit', 'cosine LR, CutMix, 300 epochs',
                 {'w18': ('hrnet_w18', 78.11, 94.062)}),
    'in1k_gluon': ('gluon_in1k', 'the GluonCV authors', 'https://cv.gluon.ai', 0.875, 'bicubic', 'apache-2.0',
                   'trained with GluonCV', {'w18_small_v1': ('hrnet_w18_small', 73.934, 91.178),
                                            'w18_small_v2': ('hrnet_w18_small_v2', 78.202, 93.906)}),
    'in1k_ssld': ('paddle_in1k', 'PaddlePaddle (PaddleClas)', 'https://github.com/PaddlePaddle/PaddleClas', 0.95,
                  'bilinear', 'mit', 'SSLD knowledge distillation', {'w18': ('hrnet_w18_ssld', 81.114, 95.638),
                                                                     'w48': ('hrnet_w48_ssld', 83.656, 96.848)}),
}  # fmt: skip
_MS_IN1K = ('ms_in1k', 'Microsoft', _CLS_REPO, 0.875, 'bilinear', 'mit', '')  # the official -C models, as `.in1k`
_TIMM_HUB = 'https://huggingface.co/'


def _in1k(head: str, width: str, tag: str = 'in1k') -> WeightsRecord:
    """An ImageNet backbone read from timm's own Hub repo (timm hosts every one; nothing is re-uploaded)."""
    if tag == 'in1k':
        timm_name, (top1, top5) = get_spec(width).timm_name, _IN1K[width]
        timm_tag, trained_by, codebase, crop, interpolation, license, how = _MS_IN1K
        metrics = (Metric('accuracy', 'Top-1 accuracy (HRNet-C)', top1), Metric('accuracy', 'Top-5 accuracy', top5))
    else:
        timm_tag, trained_by, codebase, crop, interpolation, license, how, widths = _IN1K_VARIANTS[tag]
        timm_name, top1, top5 = widths[width]
        at = f'timm eval, 224 px, crop {crop}'
        metrics = (
            Metric('accuracy', f'Top-1 accuracy ({at})', top1),
            Metric('accuracy', f'Top-5 accuracy ({at})', top5),
        )
    repo = f'timm/{timm_name}.{timm_tag}'
    return WeightsRecord(
        arch=arch_name(head, width),
        tag=tag,
        task=BACKBONE_TASK,
        dataset='imagenet-1k',
        dataset_name='ImageNet-1k',
        num_classes=HEADS[head].default_num_classes,
        input_size=(3, 224, 224),
        crop_pct=crop,
        interpolation=interpolation,
        license=license,
        source=Source('model.safetensors', _TIMM_HUB + repo, codebase, 'timm', trained_by=trained_by),
        metrics=metrics,
        notes=(
            f"ImageNet pretraining of the backbone{f' ({how})' if how else ''}, read from timm's Hub repo {repo} "
            '(classification head dropped at load); the task head is untrained.',
        ),
        hub_repo=repo,  # delete this line to read hrnet-zoo/<arch>.<tag> instead, once `hrnet-zoo release` filled it
    )


_TASK_RECORDS = (
    _seg('w48', 'cityscapes', 'cityscapes', 'Cityscapes', 19, (1024, 2048),
         'hrnet_w48_cityscapes_cls19_1024x2048_trainset.pth', _SEG_REPO + '/tree/pytorch-v1.1', 81.1,
         label_names=CITYSCAPES_LABELS),
    _seg('w18_small_v1', 'cityscapes', 'cityscapes', 'Cityscapes', 19, (1024, 2048),
         'hrnet_w18_small_v1_cityscapes_cls19_1024x2048_trainset.pth', _SEG_REPO + '/tree/pytorch-v1.1', 70.3,
         label_names=CITYSCAPES_LABELS),
    _seg('w18_small_v2', 'cityscapes', 'cityscapes', 'Cityscapes', 19, (1024, 2048),
         'hrnet_w18_small_v2_cityscapes_cls19_1024x2048_trainset.pth', _SEG_REPO + '/tree/pytorch-v1.1', 76.2,
         label_names=CITYSCAPES_LABELS),
    _seg('w48', 'lip', 'lip', 'LIP', 20, (473, 473), 'hrnet_w48_lip_cls20_473x473.pth',
         _SEG_REPO + '/tree/pytorch-v1.1', 55.8, label_names=LIP_LABELS),
    _seg('w48', 'pascal_context', 'pascal_context', 'PASCAL-Context (59 classes)', 59, (480, 480),
         'hrnet_w48_pascal_context_cls59_480x480.pth', _SEG_REPO + '/tree/master', 54.1, layout='inplace_abn'),
    _seg('w48', 'ade20k', 'ade20k', 'ADE20K', 150, (520, 520), 'hrnet_ade20k_4312_torch04.pth',
         _OCR_RELEASE + 'hrnet_ade20k_4312_torch04.pth', 43.1, align_corners=True),
    _seg('w48', 'cocostuff', 'coco_stuff', 'COCO-Stuff', 171, (520, 520), 'hrnet_cocostuff_3617_torch04.pth',
         _OCR_RELEASE + 'hrnet_cocostuff_3617_torch04.pth', 36.2, align_corners=True),
    _coco_pose('w32', (256, 192), 74.4, 90.5, 81.9, 79.8),
    _coco_pose('w32', (384, 288), 75.8, 90.6, 82.5, 80.9),
    _coco_pose('w48', (256, 192), 75.1, 90.6, 82.2, 80.4),
    _coco_pose('w48', (384, 288), 76.3, 90.8, 82.9, 81.2),
    _pose('w32', 'mpii_256x256', 'mpii', 'MPII', MPII_JOINTS, (256, 256),
          (Metric('PCKh@0.5', 'PCKh@0.5 mean', 90.3),)),
    _det('w18', 36.1),
    _det('w32', 39.5),
    _det('w40', 40.4),
    _det('w48', 40.9),
    _ocr('cityscapes', 'cityscapes', 'Cityscapes', 19, (1024, 2048), 'hrnet_ocr_cs_8162_torch11.pth',
         (('mIoU', 81.6, 'validation'),), label_names=CITYSCAPES_LABELS),
    _ocr('cityscapes_trainval', 'cityscapes', 'Cityscapes (train + val)', 19, (1024, 2048),
         'hrnet_ocr_cs_trainval_8227_torch11.pth', (('mIoU (multi-scale + flip)', 82.3, 'test'),),
         label_names=CITYSCAPES_LABELS),
    _ocr('lip', 'lip', 'LIP', 20, (473, 473), 'hrnet_ocr_lip_5648_torch04.pth', (('mIoU (flip)', 56.48, 'validation'),),
         label_names=LIP_LABELS, layout='inplace_abn'),
    _ocr('pascal_context', 'pascal_context', 'PASCAL-Context (59 classes)', 59, (520, 520),
         'hrnet_ocr_pascal_ctx_5618_torch11.pth', (('mIoU (multi-scale + flip)', 56.2, 'validation'),)),
    _ocr('cocostuff', 'coco_stuff', 'COCO-Stuff', 171, (520, 520), 'hrnet_ocr_cocostuff_3965_torch04.pth',
         (('mIoU', 39.7, 'validation'), ('mIoU (multi-scale + flip)', 40.6, 'validation')), layout='inplace_abn'),
    _ocr('ade20k', 'ade20k', 'ADE20K', 150, (520, 520), 'hrnet_ocr_ade20k_4451_torch04.pth',
         (('mIoU', 44.5, 'validation'), ('mIoU (multi-scale + flip)', 45.5, 'validation')), layout='inplace_abn'),
)  # fmt: skip

_IN1K_RECORDS = (
    *(_in1k(h, w) for h in HEADS for w in WIDTHS),
    *(_in1k(h, w, tag) for tag, (*_, widths) in _IN1K_VARIANTS.items() for h in HEADS for w in WIDTHS if w in widths),
)


# Checkpoints with a direct download (OpenMMLab's model zoos, the HRNet-OCR release files), one JSON object each in
# direct_records.json, built from shared/reference/hrnet-checkpoints.json and the OpenMMLab configs: the source,
# its training settings (fuse resize, decoding), its published metrics and its dataset's label or keypoint set.
_DIRECT_FILE = Path(__file__).with_name('direct_records.json')
_OPENMMLAB_NOTE = 'Trained and released by OpenMMLab ({codebase}, config {config}), Apache-2.0.'
_MMLAB_LAYOUTS = {'mmseg_fcn', 'mmseg_ocr', 'mmpose0_topdown', 'mmpose1_topdown', 'mmpose0_hrnetv2_head',
                  'mmpose1_hrnetv2_head', 'mmdet_hrfpn'}  # fmt: skip


def _direct(entry: dict[str, Any], official: WeightsRecord | None) -> WeightsRecord:
    """A record from one direct_records.json object; an official release file with a record already (the
    HRNet-OCR release assets) keeps that record's facts and gains the direct download."""
    url = entry['url']
    source = Source(
        file_name=url.rsplit('/', 1)[1],
        url=url,
        codebase=entry['codebase'],
        layout=official.source.layout if official else entry['layout'],
        trained_by=entry['trained_by'],
        direct_url=url,
        hash_prefix=entry.get('hash_prefix'),
        config=entry.get('config'),
    )
    metrics = tuple(Metric(*m) for m in entry['metrics'])
    if official is not None:
        return replace(official, source=source, metrics=metrics, align_corners=entry['align_corners'])
    head = parse_arch(entry['arch'])[0]
    decoding = entry.get('decoding')
    notes = tuple(entry.get('notes', ()))
    if entry['layout'] in _MMLAB_LAYOUTS:
        notes += (_OPENMMLAB_NOTE.format(codebase=entry['codebase'], config=entry['config']),)
    return WeightsRecord(
        arch=entry['arch'],
        tag=entry['tag'],
        task=entry['task'],
        dataset=entry['dataset'],
        dataset_name=entry['dataset_name'],
        num_classes=entry['num_classes'],
        input_size=tuple(entry['input_size']),
        source=source,
        metrics=metrics,
        upsample_mode=entry['upsample_mode'],
        align_corners=entry['align_corners'],
        license=entry['license'],
        notes=notes,
        label_set=entry.get('label_set'),
        keypoint_set=entry.get('keypoint_set'),
        decoding=decoding or 'standard',
        shift_heatmap=entry.get('shift_heatmap', True),
        # pose heatmaps from an HRNetV2 head (faces, hands)
        decoder_override='topdown_heatmaps' if decoding and HEADS[head].decoder != 'topdown_heatmaps' else '',
        model_kwargs=tuple(sorted(entry.get('model_kwargs', {}).items())),
        input_order=entry.get('input_order', 'rgb'),
    )


def _with_direct_sources(records: tuple[WeightsRecord, ...]) -> dict[str, WeightsRecord]:
    """Every record, the direct ones merged in; per architecture the default tag (the one marked in the JSON, else
    the first listed) comes first, then the rest in their order: timm's default is an architecture's first tag."""
    entries = json.loads(_DIRECT_FILE.read_text(encoding='utf-8'))
    by_name = {r.name: r for r in records}
    merged = dict(by_name)
    defaults = {}
    for entry in entries:
        name = f'{entry["arch"]}.{entry["tag"]}'
        merged[name] = _direct(entry, by_name.get(name))
        if entry.get('default'):
            defaults[entry['arch']] = name
    ordered = {}
    for record in merged.values():
        if record.arch in defaults and record.arch not in {r.arch for r in ordered.values()}:
            ordered[defaults[record.arch]] = merged[defaults[record.arch]]
        ordered.setdefault(record.name, record)
    return {name: replace(r, published=True) if name in PUBLISHED else r for name, r in ordered.items()}


# Tags that `hrnet-zoo release` has published to HUB_ORG: their Hub copy is read first (add a tag here once its
# release has been verified; the direct download stays the fallback).
PUBLISHED: frozenset[str] = frozenset()

MANIFEST: dict[str, WeightsRecord] = _with_direct_sources((*_TASK_RECORDS, *_IN1K_RECORDS))


def get_record(name: str) -> WeightsRecord:
    """The record of ``'<arch>.<tag>'``; unknown names list the tags that exist for that architecture."""
    if name in MANIFEST:
        return MANIFEST[name]
    arch = name.partition('.')[0]
    parse_arch(arch)
    tags = [r.tag for r in MANIFEST.values() if r.arch == arch]
    close = did_you_mean(name, [f'{arch}.{t}' for t in tags])
    raise ValueError(f'No pretrained weights {name!r}; {close}{arch} has tags: {", ".join(tags)}')


def default_tag(arch: str) -> str:
    """The tag ``timm.create_model(arch, pretrained=True)`` loads: the first record listed for ``arch``."""
    parse_arch(arch)
    return next(r.tag for r in MANIFEST.values() if r.arch == arch)


# dataset facts that lived here before they moved to hrnet_zoo.data
_MOVED = {
    **{name: 'hrnet_zoo.data.keypoints' for name in ('KEYPOINT_SETS', 'KeypointSet')},
    **{name: 'hrnet_zoo.data.labels' for name in ('CLASS_FLIP_PAIRS', 'PALETTES')},
}


def __getattr__(name: str) -> Any:
    return moved_attribute(__name__, name, _MOVED)
