"""A fake checkpoint for any direct-download record, in the record's own layout: OpenMMLab's written out in
``mmlab_layouts`` (from OpenMMLab's configs, not from our converter); the official segmentation files are the
FullModel's ``model.``-prefixed state dict (InPlaceABN files without the BN counters)."""

from __future__ import annotations

import io

import mmlab_layouts as mm
import timm
import torch

from hrnet_zoo.specs import parse_arch
from hrnet_zoo.weights.manifest import MANIFEST

POSE_LAYOUTS = ('mmpose0_topdown', 'mmpose1_topdown', 'mmpose0_hrnetv2_head', 'mmpose1_hrnetv2_head')


def official_state(name: str) -> dict[str, torch.Tensor]:
    """The plain model state_dict of a record (the official layout), as a file of its release would hold it."""
    record = MANIFEST[name]
    model = timm.create_model(record.arch, num_classes=record.num_classes, **dict(record.model_kwargs))
    return model.state_dict()


def fake_checkpoint(name: str) -> dict:
    """The checkpoint dict a file of ``name``'s source would unpickle to, with random tensors."""
    record = MANIFEST[name]
    _, width = parse_arch(record.arch)
    layout, n = record.source.layout, record.num_classes
    if layout == 'mmseg_fcn':
        return mm.mmseg_fcn(width, n)
    if layout == 'mmseg_ocr':
        return mm.mmseg_ocrnet(width, n)
    if layout in POSE_LAYOUTS:
        return getattr(mm, layout)(width, n)
    if layout == 'mmdet_hrfpn':
        return mm.mmdet_hrfpn(width)
    if layout in ('official_seg', 'inplace_abn'):
        drop = layout == 'inplace_abn'
        state = official_state(name)
        return {f'model.{k}': v for k, v in state.items() if not (drop and k.endswith('num_batches_tracked'))}
    raise AssertionError(f'no fake checkpoint for layout {layout!r} ({name})')


def file_bytes(name: str, checkpoint: dict) -> bytes:
    """``checkpoint`` saved as ``name``'s source saves it (OpenMMLab 1.x's publish_model: the legacy format)."""
    buffer = io.BytesIO()
    torch.save(
        checkpoint, buffer, _use_new_zipfile_serialization=not MANIFEST[name].source.layout.startswith('mmpose1')
    )
    return buffer.getvalue()


def fake_file(name: str) -> bytes:
    return file_bytes(name, fake_checkpoint(name))
