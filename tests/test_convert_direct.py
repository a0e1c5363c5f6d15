"""``hrnet-zoo convert`` on OpenMMLab checkpoints as a new user runs it: without a tag, with the file's own name,
with a file of another hash, and with a trained head that a backbone-only tag would drop."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import mmlab_layouts as mm
import pytest
import timm
import torch

from hrnet_zoo.publish.convert import convert_checkpoint
from hrnet_zoo.weights.manifest import MANIFEST

NAME = 'hrnetv2_w18_small_v2.mmseg_cityscapes_512x1024_160k'


def _config(folder) -> dict:
    return json.loads((folder / 'config.json').read_text())


def test_untagged_mmseg_file_gets_a_task_tag_with_its_head_and_bilinear_fuse(tmp_path):
    checkpoint = mm.mmseg_fcn('w18_small_v2', 19)
    path = mm.save_checkpoint(tmp_path / 'my_finetuned_fcn.pth', checkpoint)
    out = convert_checkpoint(path, 'hrnetv2_w18_small_v2', tmp_path / 'out')
    config = _config(out)
    # the default tag of hrnetv2_w18_small_v2 is a trained Cityscapes FCN, never the backbone-only .in1k
    assert (config['model_args']['upsample_mode'], config['model_args']['align_corners']) == ('bilinear', False)
    assert config['pretrained_cfg']['tag'] == MANIFEST[NAME].tag
    from safetensors.torch import load_file

    tensors = load_file(out / 'model.safetensors')
    assert torch.equal(tensors['last_layer.3.weight'], checkpoint['state_dict']['decode_head.conv_seg.weight'])


def test_a_file_named_as_a_record_is_that_record_and_must_have_its_hash(tmp_path, monkeypatch):
    record = MANIFEST[NAME]
    path = mm.save_checkpoint(tmp_path / record.source.file_name, mm.mmseg_fcn('w18_small_v2', 19))
    with pytest.raises(ValueError, match=f'starts with {record.source.hash_prefix}'):
        convert_checkpoint(path, 'hrnetv2_w18_small_v2', tmp_path / 'out')
    assert not (tmp_path / 'out').exists()
    prefix = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    monkeypatch.setitem(MANIFEST, NAME, replace(record, source=replace(record.source, hash_prefix=prefix)))
    assert _config(convert_checkpoint(path, 'hrnetv2_w18_small_v2', tmp_path / 'out'))['pretrained_cfg']['tag'] == (
        record.tag
    )


def test_a_trained_head_is_never_dropped_for_a_backbone_only_default(tmp_path):
    # no W32 segmentation weights exist, so hrnetv2_w32's default tag is its ImageNet backbone; a trained FCN head
    # would be dropped there: refused, and an explicit .in1k tag is the only way to drop it
    assert MANIFEST[f'hrnetv2_w32.{timm.models.get_pretrained_cfg("hrnetv2_w32").tag}'].backbone_only
    path = mm.save_checkpoint(tmp_path / 'fcn_w32.pth', mm.mmseg_fcn('w32', 19))
    with pytest.raises(ValueError, match=r'holds a trained segmentation head .* name the tag'):
        convert_checkpoint(path, 'hrnetv2_w32', tmp_path / 'out')
    assert not (tmp_path / 'out').exists()
    assert (convert_checkpoint(path, 'hrnetv2_w32.in1k', tmp_path / 'out') / 'model.safetensors').is_file()
