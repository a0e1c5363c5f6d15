"""Self-checks of tests/mmlab_layouts.py, the OpenMMLab checkpoint witness: against timm's HRNet (whose backbone keys
are the official ones, as OpenMMLab's are), against the parameter counts the HRNet papers publish, and for the
pickling traits of the files (numpy arrays in an mmpose 1.x ``meta``)."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import timm
import torch
from mmlab_layouts import (
    WIDTH_LAYOUTS,
    hrnet_backbone,
    materialize,
    mmdet_hrfpn,
    mmpose0_hrnetv2_head,
    mmpose0_topdown,
    mmpose1_hrnetv2_head,
    mmpose1_topdown,
    mmseg_fcn,
    mmseg_ocrnet,
    numpy_safe_globals,
    save_checkpoint,
)

TIMM = {width: f'hrnet_{width}' for width in ('w18_small_v2', 'w18', 'w32', 'w40', 'w48')}
TIMM_CLS_HEAD = ('incre_modules.', 'downsamp_modules.', 'final_layer.', 'classifier.')
BUFFERS = ('running_mean', 'running_var', 'num_batches_tracked')


def timm_backbone(width: str) -> dict[str, tuple[int, ...]]:
    with torch.device('meta'):  # shapes only: no memory, no init time
        model = timm.create_model(TIMM[width])
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.startswith(TIMM_CLS_HEAD)}


def n_params(shapes: dict) -> int:
    return sum(torch.Size(s).numel() for k, s in shapes.items() if not k.endswith(BUFFERS))


def strip(state: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


@pytest.mark.parametrize('width', sorted(WIDTH_LAYOUTS))
def test_backbone_keys_shapes_and_order_match_timm(width):
    """timm's HRNet keeps the official names; OpenMMLab's HRNet builds the same modules under the same names."""
    assert list(hrnet_backbone(width).items()) == list(timm_backbone(width).items())


@pytest.mark.parametrize('width', sorted(WIDTH_LAYOUTS))
def test_multiscale_output_false_drops_exactly_the_last_fuse_rows(width):
    last = WIDTH_LAYOUTS[width]['stage4'][0] - 1
    dropped = re.compile(rf'^stage4\.{last}\.fuse_layers\.[123]\.')
    expected = {k: v for k, v in timm_backbone(width).items() if not dropped.match(k)}
    for build in (mmpose0_topdown, mmpose1_topdown):
        assert strip(build(width, shapes_only=True)['state_dict'], 'backbone.') == expected
    for build in (mmseg_fcn, mmseg_ocrnet, mmpose0_hrnetv2_head, mmpose1_hrnetv2_head, mmdet_hrfpn):
        assert strip(build(width, shapes_only=True)['state_dict'], 'backbone.') == hrnet_backbone(width)


@pytest.mark.parametrize(
    ('build', 'width', 'classes', 'published'),
    [
        (mmpose0_topdown, 'w32', 17, 28.5),  # Sun et al. 2019, HRNet-W32 on COCO (256x192)
        (mmpose0_topdown, 'w48', 17, 63.6),  # same table, HRNet-W48
        (mmseg_fcn, 'w48', 19, 65.9),  # Wang et al. 2020 (HRNetV2), Cityscapes: HRNetV2-W48
        (mmseg_fcn, 'w18_small_v2', 19, 3.9),  # same table, HRNetV2-W18-Small-v2
    ],
)
def test_published_parameter_counts(build, width, classes, published):
    assert round(n_params(build(width, classes, shapes_only=True)['state_dict']) / 1e6, 1) == published


def test_backbone_parameter_counts():
    """HRNet(V2)-W18 / W48 without any head: timm's ImageNet model minus its classification head."""
    assert n_params(hrnet_backbone('w18')) == 9_562_260
    assert n_params(hrnet_backbone('w48')) == 65_325_120
    for width in ('w18', 'w48'):
        assert n_params(hrnet_backbone(width)) == n_params(timm_backbone(width))


def test_norm_layers_are_bn_with_a_counter():
    state = mmseg_ocrnet('w18_small_v2', shapes_only=True)['state_dict']
    assert not [k for k in state if 'norm' in k]  # mmcv's build_norm_layer names BN and SyncBN 'bn<postfix>'
    norms = {k.rsplit('.', 1)[0] for k in state if k.endswith('.running_var')}
    assert all(state[f'{n}.num_batches_tracked'] == () for n in norms)
    tensors = materialize({k: v for k, v in state.items() if k.startswith('backbone.bn1.')})
    assert tensors['backbone.bn1.num_batches_tracked'].dtype == torch.long
    assert tensors['backbone.bn1.num_batches_tracked'].dim() == 0


def test_seg_heads():
    fcn = mmseg_fcn('w18', 19, shapes_only=True)['state_dict']
    head = {k: v for k, v in fcn.items() if not k.startswith('backbone.')}
    bn = {f'decode_head.convs.0.bn.{leaf}': (270,) for leaf in ('weight', 'bias', 'running_mean', 'running_var')}
    assert head == {
        'decode_head.conv_seg.weight': (19, 270, 1, 1),
        'decode_head.conv_seg.bias': (19,),
        'decode_head.convs.0.conv.weight': (270, 270, 1, 1),  # ConvModule with a norm: no bias
        **bn,
        'decode_head.convs.0.bn.num_batches_tracked': (),
    }
    assert list(head)[0] == 'decode_head.conv_seg.weight'  # BaseDecodeHead registers conv_seg first

    ocr = mmseg_ocrnet('w48', 19, shapes_only=True)['state_dict']
    assert strip(ocr, 'decode_head.0.') == strip(mmseg_fcn('w48', 19, shapes_only=True)['state_dict'], 'decode_head.')
    ocr_head = strip(ocr, 'decode_head.1.')
    modules = sorted({k.rsplit('.', 1)[0] for k in ocr_head})
    block = 'object_context_block.'
    assert modules == sorted(
        ['conv_seg', 'bottleneck.conv', 'bottleneck.bn']
        + [f'{block}{p}.{i}.{m}' for p in ('key_project', 'query_project') for i in (0, 1) for m in ('conv', 'bn')]
        + [f'{block}{p}.{m}' for p in ('value_project', 'out_project', 'bottleneck') for m in ('conv', 'bn')]
    )
    assert ocr_head['bottleneck.conv.weight'] == (512, 720, 3, 3)
    assert ocr_head[f'{block}bottleneck.conv.weight'] == (512, 1024, 1, 1)
    assert ocr_head[f'{block}value_project.conv.weight'] == (256, 512, 1, 1)
    assert ocr_head[f'{block}out_project.conv.weight'] == (512, 256, 1, 1)
    assert ocr_head['conv_seg.weight'] == (19, 512, 1, 1)
    assert not [k for k in ocr_head if 'spatial_gather_module' in k]


def test_pose_heads():
    v1 = strip(mmpose0_topdown('w32', 17, shapes_only=True)['state_dict'], 'keypoint_head.')
    assert v1 == {'final_layer.weight': (17, 32, 1, 1), 'final_layer.bias': (17,)}
    assert strip(mmpose1_topdown('w32', 17, shapes_only=True)['state_dict'], 'head.') == v1

    face0 = strip(mmpose0_hrnetv2_head('w18', 98, shapes_only=True)['state_dict'], 'keypoint_head.')
    assert sorted({k.rsplit('.', 1)[0] for k in face0}) == ['final_layer.0', 'final_layer.1', 'final_layer.3']
    assert face0['final_layer.0.weight'] == (270, 270, 1, 1) and face0['final_layer.0.bias'] == (270,)
    assert face0['final_layer.3.weight'] == (98, 270, 1, 1)
    face1 = strip(mmpose1_hrnetv2_head('w18', 98, shapes_only=True)['state_dict'], 'head.')
    renamed = {'final_layer.0': 'conv_layers.0', 'final_layer.1': 'conv_layers.1', 'final_layer.3': 'final_layer'}
    assert face1 == {renamed[k.rsplit('.', 1)[0]] + '.' + k.rsplit('.', 1)[1]: v for k, v in face0.items()}


def test_detector_neck_and_heads():
    state = mmdet_hrfpn('w18', shapes_only=True)['state_dict']
    neck = strip(state, 'neck.')
    assert neck['reduction_conv.conv.weight'] == (256, 270, 1, 1)
    assert sorted({k.split('.')[1] for k in neck if k.startswith('fpn_convs.')}) == ['0', '1', '2', '3', '4']
    assert all(f'{m}.conv.bias' in neck for m in ['reduction_conv'] + [f'fpn_convs.{i}' for i in range(5)])
    assert not [k for k in neck if '.bn.' in k]  # HRFPN passes no norm_cfg to its ConvModules
    assert {k.split('.')[0] for k in state} == {'backbone', 'neck', 'rpn_head', 'roi_head'}
    assert state['rpn_head.rpn_cls.weight'] == (3, 256, 1, 1)
    assert state['roi_head.bbox_head.fc_cls.weight'] == (81, 1024)
    assert state['roi_head.bbox_head.fc_reg.weight'] == (320, 1024)
    assert state['roi_head.bbox_head.shared_fcs.0.weight'] == (1024, 256 * 7 * 7)


def test_values_are_seeded_and_shaped():
    a, b = mmpose1_topdown('w18_small_v2', seed=3), mmpose1_topdown('w18_small_v2', seed=3)
    c = mmpose1_topdown('w18_small_v2', seed=4)
    shapes = mmpose1_topdown('w18_small_v2', shapes_only=True)['state_dict']
    assert {k: tuple(v.shape) for k, v in a['state_dict'].items()} == shapes
    assert all(torch.equal(a['state_dict'][k], b['state_dict'][k]) for k in shapes)
    assert not torch.equal(a['state_dict']['backbone.conv1.weight'], c['state_dict']['backbone.conv1.weight'])
    assert all(v.min() > 0 for k, v in a['state_dict'].items() if k.endswith('running_var'))


@pytest.mark.parametrize('build', [mmseg_fcn, mmseg_ocrnet, mmpose0_topdown, mmpose0_hrnetv2_head, mmdet_hrfpn])
def test_mmcv_era_files_load_weights_only(tmp_path, build):
    """Their meta is plain Python (strings, numbers, tuples, lists): torch's default ``weights_only`` load takes it."""
    checkpoint = build('w18_small_v2')
    loaded = torch.load(save_checkpoint(tmp_path / 'x.pth', checkpoint), weights_only=True)
    assert set(loaded) == {'meta', 'state_dict'} and loaded['meta'] == checkpoint['meta']
    assert list(loaded['state_dict']) == list(checkpoint['state_dict'])


@pytest.mark.parametrize('numpy1_names', [False, True], ids=['numpy-installed', 'numpy1-names'])
@pytest.mark.parametrize('legacy_format', [False, True], ids=['zip', 'legacy'])
@pytest.mark.parametrize('build', [mmpose1_topdown, mmpose1_hrnetv2_head])
def test_mmpose1_meta_needs_a_numpy_allowlist(tmp_path, build, legacy_format, numpy1_names):
    checkpoint = build('w18_small_v2')
    path = save_checkpoint(tmp_path / 'x.pth', checkpoint, legacy_format=legacy_format, numpy1_names=numpy1_names)
    if not legacy_format:
        name = 'numpy.core' if numpy1_names or np.lib.NumpyVersion(np.__version__) < '2.0.0' else 'numpy._core'
        unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        assert {f'{name}.multiarray._reconstruct', 'numpy.ndarray', 'numpy.dtype'} <= unsafe
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)

    face = build is mmpose1_hrnetv2_head  # WFLW: sigmas=[] and no skeleton, so empty arrays
    allowed = numpy_safe_globals(numpy1_names=numpy1_names, empty_arrays=face)
    with torch.serialization.safe_globals(allowed):
        loaded = torch.load(path, weights_only=True)
    meta = loaded['meta']['dataset_meta']
    for key in ('keypoint_colors', 'skeleton_link_colors', 'dataset_keypoint_weights', 'sigmas'):
        expected = checkpoint['meta']['dataset_meta'][key]
        assert isinstance(meta[key], np.ndarray) and meta[key].dtype == expected.dtype
        np.testing.assert_array_equal(meta[key], expected)
    assert all(torch.equal(v, checkpoint['state_dict'][k]) for k, v in loaded['state_dict'].items())

    for i in range(len(allowed)):  # minimal: every entry is needed
        with torch.serialization.safe_globals(allowed[:i] + allowed[i + 1 :]), pytest.raises(pickle.UnpicklingError):
            torch.load(path, weights_only=True)
