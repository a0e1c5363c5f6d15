"""``pretrained=True`` for the tags whose checkpoints download directly (OpenMMLab's zoos, the HRNet-OCR release):
each file written in its OpenMMLab layout (``mmlab_layouts``, from OpenMMLab's configs, not from our converter),
served by a loopback file server through ``HRNET_ZOO_MIRROR``, downloaded, hash-checked, converted and cached."""

from __future__ import annotations

import hashlib
import io
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import mmlab_layouts as mm
import pytest
import timm
import torch
from file_server import FileServer

import hrnet_zoo  # noqa: F401  (registers the models)
from hrnet_zoo.weights.manifest import MANIFEST
from hrnet_zoo.weights.sources import MIRROR_ENV, DirectDownloadError

# (tag, the checkpoint in its OpenMMLab layout, how that layout's head keys are named in ours) - the head names
# written out from the official / mmcv module definitions: mmseg's FCNHead ConvModule has no conv bias (a zero
# bias computes the same), mmpose's head is final_layer, the face head a conv + BN + classifier.
CASES = {
    'mmseg_fcn': (
        'hrnetv2_w18_small_v2.mmseg_cityscapes_512x1024_160k',
        lambda: mm.mmseg_fcn('w18_small_v2', 19),
        {'decode_head.convs.0.conv.weight': 'last_layer.0.weight',
         'decode_head.convs.0.bn.weight': 'last_layer.1.weight',
         'decode_head.conv_seg.weight': 'last_layer.3.weight', 'decode_head.conv_seg.bias': 'last_layer.3.bias'},
    ),
    'mmseg_ocrnet': (
        'hrnetv2_ocr_w18_small_v2.mmseg_cityscapes_512x1024_160k',
        lambda: mm.mmseg_ocrnet('w18_small_v2', 19),
        {'decode_head.0.conv_seg.weight': 'aux_head.3.weight', 'decode_head.1.conv_seg.weight': 'cls_head.weight',
         'decode_head.1.bottleneck.conv.weight': 'conv3x3_ocr.0.weight',
         'decode_head.1.object_context_block.query_project.0.conv.weight':
             'ocr_distri_head.object_context_block.f_pixel.0.weight'},
    ),
    'mmpose0_topdown': (
        'hrnetv1_w32.mmpose0_coco_256x192',
        lambda: mm.mmpose0_topdown('w32', 17),
        {'keypoint_head.final_layer.weight': 'final_layer.weight',
         'keypoint_head.final_layer.bias': 'final_layer.bias'},
    ),
    'mmpose1_topdown': (
        'hrnetv1_w32.mmpose_coco_256x192_udp',
        lambda: mm.mmpose1_topdown('w32', 17),
        {'head.final_layer.weight': 'final_layer.weight', 'head.final_layer.bias': 'final_layer.bias'},
    ),
    'mmpose0_hrnetv2_head': (
        'hrnetv2_w18.mmpose_wflw_256x256',
        lambda: mm.mmpose0_hrnetv2_head('w18', 98),
        {'keypoint_head.final_layer.0.weight': 'last_layer.0.weight', 'keypoint_head.final_layer.1.running_var':
         'last_layer.1.running_var', 'keypoint_head.final_layer.3.weight': 'last_layer.3.weight'},
    ),
    'mmpose1_hrnetv2_head': (
        'hrnetv2_w18.mmpose_300wlp_256x256',
        lambda: mm.mmpose1_hrnetv2_head('w18', 68),
        {'head.conv_layers.0.weight': 'last_layer.0.weight', 'head.conv_layers.1.bias': 'last_layer.1.bias',
         'head.final_layer.weight': 'last_layer.3.weight'},
    ),
    'mmdet_hrfpn': (
        'hrnetv2p_w18.mmdet_faster_rcnn_coco_1x',
        lambda: mm.mmdet_hrfpn('w18'),
        {'neck.reduction_conv.conv.weight': 'neck.reduction_conv.weight', 'neck.fpn_convs.4.conv.bias':
         'neck.fpn_convs.4.bias'},
    ),
}  # fmt: skip


def _file_bytes(checkpoint: dict, legacy: bool = False) -> bytes:
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer, _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


@pytest.fixture
def hub_dir(tmp_path: Path):
    """torch.hub's cache (where direct downloads and their converted copies go), empty, for this test."""
    before = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / 'torch_hub'))
    yield tmp_path / 'torch_hub' / 'checkpoints'
    torch.hub.set_dir(before)


def _serve(name: str, data: bytes, monkeypatch: pytest.MonkeyPatch, *, matching_hash: bool = True) -> FileServer:
    """A file server holding ``data`` at the record's URL path, the mirror pointed at it, and (unless told
    otherwise) the record's hash prefix set to the served file's: its real prefix names the real file."""
    record = MANIFEST[name]
    if matching_hash:
        source = replace(record.source, hash_prefix=hashlib.sha256(data).hexdigest()[:8])
        monkeypatch.setitem(MANIFEST, name, replace(record, source=source))
    server = FileServer({urlsplit(record.source.direct_url).path: data}).__enter__()
    monkeypatch.setenv(MIRROR_ENV, server.url)
    return server


@pytest.mark.parametrize('layout', list(CASES))
def test_pretrained_loads_exactly_the_served_tensors(layout, hub_dir, monkeypatch):
    name, make, head_keys = CASES[layout]
    checkpoint = make()
    server = _serve(name, _file_bytes(checkpoint, legacy=layout.startswith('mmpose1')), monkeypatch)
    try:
        model = timm.create_model(name, pretrained=True)
        ours = model.state_dict()
        theirs = checkpoint['state_dict']
        backbone = [k for k in theirs if k.startswith('backbone.') and k.removeprefix('backbone.') in ours]
        assert len(backbone) > 100
        for key in backbone:
            assert torch.equal(ours[key.removeprefix('backbone.')], theirs[key]), key
        for key, our_key in head_keys.items():
            assert torch.equal(ours[our_key], theirs[key]), key
        if layout == 'mmseg_fcn':
            assert not ours['last_layer.0.bias'].any()
        # the second create reads only the converted copy: no request reaches the server
        seen = len(server.requests)
        again = timm.create_model(name, pretrained=True).state_dict()
        assert len(server.requests) == seen
        assert all(torch.equal(again[k], v) for k, v in ours.items())
        assert sorted(p.name for p in hub_dir.iterdir()) == sorted(
            [Path(urlsplit(MANIFEST[name].source.direct_url).path).name, f'{_stem(name)}.{name}.hrnet_zoo.safetensors']
        )
    finally:
        server.__exit__(None, None, None)


def _stem(name: str) -> str:
    return Path(urlsplit(MANIFEST[name].source.direct_url).path).name.split('.')[0]


NAME, MAKE, _ = CASES['mmseg_fcn']


def test_fcos_pyramid_has_stride_2_convs_and_takes_rgb(hub_dir, monkeypatch):
    """mmdetection's FCOS HRFPN (stride=2: levels at strides 8 ... 128) was trained on BGR input: the converted
    conv1 has its input channels reversed, so the model takes RGB like every other."""
    name = 'hrnetv2p_w18.mmdet_fcos_coco_1x'
    checkpoint = mm.mmdet_hrfpn('w18')
    server = _serve(name, _file_bytes(checkpoint), monkeypatch)
    try:
        model = timm.create_model(name, pretrained=True).eval()
    finally:
        server.__exit__(None, None, None)
    theirs = checkpoint['state_dict']['backbone.conv1.weight']
    assert torch.equal(model.conv1.weight, theirs[:, [2, 1, 0]])
    assert torch.equal(model.neck.fpn_convs[0].weight, checkpoint['state_dict']['neck.fpn_convs.0.conv.weight'])
    with torch.no_grad():
        levels = model(torch.zeros(1, 3, 256, 256))
    assert [256 // level.shape[-1] for level in levels] == [8, 16, 32, 64, 128]
    assert [
        256 // level.shape[-1] for level in timm.create_model('hrnetv2p_w18').eval()(torch.zeros(1, 3, 256, 256))
    ] == [4, 8, 16, 32, 64]


def test_a_wrong_hash_prefix_is_refused_and_nothing_is_kept(hub_dir, monkeypatch):
    server = _serve(NAME, _file_bytes(MAKE()), monkeypatch, matching_hash=False)  # the real file's prefix
    try:
        with pytest.raises(DirectDownloadError, match='sha256'):
            timm.create_model(NAME, pretrained=True)
    finally:
        server.__exit__(None, None, None)
    assert not hub_dir.exists() or list(hub_dir.iterdir()) == []


def test_a_download_cut_halfway_leaves_no_file_and_a_rerun_completes(hub_dir, monkeypatch):
    data = _file_bytes(MAKE())
    server = _serve(NAME, data, monkeypatch)
    try:
        server.cut_after = len(data) // 2
        with pytest.raises(DirectDownloadError, match='cut short'):
            timm.create_model(NAME, pretrained=True)
        assert list(hub_dir.iterdir()) == []
        server.cut_after = None
        timm.create_model(NAME, pretrained=True)
        assert len(list(hub_dir.iterdir())) == 2
    finally:
        server.__exit__(None, None, None)


def test_offline_with_a_cold_cache_fails_fast_in_one_line(hub_dir, monkeypatch):
    server = FileServer({}).__enter__()
    url = server.url
    server.__exit__(None, None, None)  # nothing listens there now
    monkeypatch.setenv(MIRROR_ENV, url)
    start = time.monotonic()
    with pytest.raises(DirectDownloadError) as caught:
        timm.create_model(NAME, pretrained=True)
    assert time.monotonic() - start < 1.0
    message = str(caught.value)
    assert '\n' not in message
    assert url in message and str(hub_dir) in message and 'pretrained_cfg_overlay=dict(file=' in message


def test_offline_with_a_warm_cache_loads_without_the_network(hub_dir, monkeypatch):
    server = _serve(NAME, _file_bytes(MAKE()), monkeypatch)
    try:
        first = timm.create_model(NAME, pretrained=True).state_dict()
    finally:
        server.__exit__(None, None, None)
    monkeypatch.setenv('HRNET_ZOO_OFFLINE', '1')
    second = timm.create_model(NAME, pretrained=True).state_dict()
    assert all(torch.equal(second[k], v) for k, v in first.items())


def test_file_takes_the_original_checkpoint(tmp_path):
    checkpoint = mm.mmpose1_topdown('w32', 17)
    path = mm.save_checkpoint(tmp_path / 'td-hm_hrnet-w32.pth', checkpoint, legacy_format=True)
    model = timm.create_model('hrnetv1_w32', pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert torch.equal(model.final_layer.weight, checkpoint['state_dict']['head.final_layer.weight'])
    assert torch.equal(model.conv1.weight, checkpoint['state_dict']['backbone.conv1.weight'])


def test_a_tag_with_no_direct_source_says_where_the_file_is(hf_home, hub):
    name = 'hrnetv1_w48.coco_384x288'  # the official pose weights: Google Drive only, published by no test
    with pytest.raises(OSError) as caught:
        timm.create_model(name, pretrained=True, cache_dir=hf_home)
    message = str(caught.value)
    assert 'no direct download' in message and MANIFEST[name].source.url in message
    assert 'pretrained_cfg_overlay=dict(file=PATH)' in message


def test_every_direct_record_names_a_download_and_a_hash():
    direct = [r for r in MANIFEST.values() if r.direct]
    assert len(direct) >= 196
    for record in direct:
        assert urlsplit(record.source.direct_url).scheme == 'https', record.name
        hashed = 'download.openmmlab.com' in record.source.direct_url and 'exlpose' not in record.tag
        assert (record.source.hash_prefix is not None) == hashed or not hashed, record.name
        if record.source.hash_prefix:
            assert record.source.hash_prefix in record.source.file_name, record.name


@pytest.mark.parametrize('arch', ['hrnetv2_w48', 'hrnetv1_w32', 'hrnetv2_w18', 'hrnetv2p_w32', 'hrnetv2_ocr_w48'])
def test_the_default_tag_of_an_architecture_with_a_direct_record_downloads(arch):
    assert MANIFEST[f'{arch}.{timm.models.get_pretrained_cfg(arch).tag}'].direct
