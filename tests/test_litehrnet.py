"""Lite-HRNet (Yu et al., CVPR 2021) as top-down pose models: mmpose's layout, the paper's counts, any input size,
features, and the tasks layer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

import hrnet_zoo
from hrnet_zoo.models.litehrnet import FuseUp, LiteHRModule
from hrnet_zoo.specs import LiteStageSpec
from hrnet_zoo.stats import arch_stats
from hrnet_zoo.tasks.inputs import model_decoder
from hrnet_zoo.tasks.pose import estimate_pose

# -- mmpose's layout, written out from the config ----------------------------------------------------------------

# configs/top_down/lite_hrnet/coco/litehrnet_{18,30}_coco_256x192.py (HRNet/Lite-HRNet; mmpose 0.x the same):
# stem=dict(stem_channels=32, out_channels=32, expand_ratio=1), num_blocks=(2, 2, 2), reduce_ratios=(8, 8, 8),
# num_channels=((40, 80), (40, 80, 160), (40, 80, 160, 320)), module_type 'LITE', with_fuse, with_head=True
CONFIGS = {'litehrnet_18': (2, 4, 2), 'litehrnet_30': (3, 8, 3)}
CHANNELS = ((40, 80), (40, 80, 160), (40, 80, 160, 320))


def _conv(prefix: str, out_chs: int, in_per_group: int, k: int, bias: bool = False) -> list[tuple[str, tuple]]:
    return [(f'{prefix}.weight', (out_chs, in_per_group, k, k))] + ([(f'{prefix}.bias', (out_chs,))] if bias else [])


def _bn(prefix: str, chs: int) -> list[tuple[str, tuple]]:
    return [(f'{prefix}.{n}', (chs,)) for n in ('weight', 'bias', 'running_mean', 'running_var')] + [
        (f'{prefix}.num_batches_tracked', ())
    ]


def _conv_module(prefix: str, in_chs: int, out_chs: int, k: int, groups: int = 1, norm: bool = True) -> list:
    """mmcv's ConvModule: ``conv`` (biased only without a norm), then ``bn``."""
    return _conv(f'{prefix}.conv', out_chs, in_chs // groups, k, bias=not norm) + (
        _bn(f'{prefix}.bn', out_chs) if norm else []
    )


def _dw_pw(prefix: str, in_chs: int, out_chs: int) -> list:
    """A plain Sequential: depthwise 3x3 (0), BN (1), 1x1 (2), BN (3)."""
    depthwise = _conv(f'{prefix}.0', in_chs, 1, 3) + _bn(f'{prefix}.1', in_chs)
    return depthwise + _conv(f'{prefix}.2', out_chs, in_chs, 1) + _bn(f'{prefix}.3', out_chs)


def mmpose_litehrnet_keys(num_modules: tuple[int, ...]) -> list[tuple[str, tuple]]:
    """The state_dict keys and shapes, in order, of mmpose's ``LiteHRNet`` backbone for these module counts."""
    keys = _conv_module('stem.conv1', 3, 32, 3)
    keys += _conv_module('stem.branch1.0', 16, 16, 3, groups=16) + _conv_module('stem.branch1.1', 16, 16, 1)
    keys += _conv_module('stem.expand_conv', 16, 32, 1) + _conv_module('stem.depthwise_conv', 32, 32, 3, groups=32)
    keys += _conv_module('stem.linear_conv', 32, 16, 1)
    prev = (32,)
    for n, chs in enumerate(CHANNELS):
        for i, c in enumerate(chs):
            if i < len(prev) and prev[i] != c:
                keys += _dw_pw(f'transition{n}.{i}', prev[i], c)
            elif i >= len(prev):  # one new branch per stage: one stride-2 step from the last branch
                keys += _dw_pw(f'transition{n}.{i}.0', prev[-1], c)
        halves = [c // 2 for c in chs]
        squeezed = int(sum(halves) / 8)
        for m in range(num_modules[n]):
            unit = f'stage{n}.{m}'
            for b in range(2):
                block = f'{unit}.layers.{b}'
                crw = f'{block}.cross_resolution_weighting'
                keys += _conv_module(f'{crw}.conv1', sum(halves), squeezed, 1)
                keys += _conv_module(f'{crw}.conv2', squeezed, sum(halves), 1)
                for i, h in enumerate(halves):
                    keys += _conv_module(f'{block}.depthwise_convs.{i}', h, h, 3, groups=h)
                for i, h in enumerate(halves):  # SpatialWeighting(ratio=4): biased convs, no norm
                    keys += _conv_module(f'{block}.spatial_weighting.{i}.conv1', h, h // 4, 1, norm=False)
                    keys += _conv_module(f'{block}.spatial_weighting.{i}.conv2', h // 4, h, 1, norm=False)
            for i in range(len(chs)):
                for j in range(len(chs)):
                    fuse = f'{unit}.fuse_layers.{i}.{j}'
                    if j > i:
                        keys += _conv(f'{fuse}.0', chs[i], chs[j], 1) + _bn(f'{fuse}.1', chs[i])
                    for k in range(i - j):  # j < i: i - j stride-2 steps, the last one to branch i's width
                        keys += _dw_pw(f'{fuse}.{k}', chs[j], chs[i] if k == i - j - 1 else chs[j])
        prev = chs
    rev = CHANNELS[-1][::-1]
    for i, c in enumerate(rev):  # IterativeHead: from the lowest resolution, to the next branch's width
        out = rev[i + 1] if i + 1 < len(rev) else c
        keys += _conv_module(f'head_layer.projects.{i}.depthwise_conv', c, c, 3, groups=c)
        keys += _conv_module(f'head_layer.projects.{i}.pointwise_conv', c, out, 1)
    return keys


@pytest.fixture(scope='module')
def meta_model():
    """One meta-device model per name for the whole module (no weights, no compute)."""
    built: dict[str, nn.Module] = {}

    def get(name: str) -> nn.Module:
        if name not in built:
            built[name] = timm.create_model(name, device='meta')
        return built[name]

    return get


@pytest.mark.parametrize('name', list(CONFIGS))
def test_backbone_keys_and_shapes_are_mmposes(meta_model, name):
    """Our backbone's state_dict equals mmpose's ``backbone.*`` (prefix stripped): names, shapes and order; the
    rest is the head, mmpose's ``keypoint_head.final_layer`` (TopdownHeatmapSimpleHead with no deconvolutions)."""
    model = meta_model(name)
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    expected = mmpose_litehrnet_keys(CONFIGS[name])
    assert ours[: len(expected)] == expected
    assert ours[len(expected) :] == [('final_layer.weight', (17, 40, 1, 1)), ('final_layer.bias', (17,))]


# -- the paper's counts ------------------------------------------------------------------------------------------


def _official_flops(model: nn.Module, input_size: tuple[int, int, int]) -> tuple[int, int]:
    """(conv multiply-adds, the paper's FLOPs): the official ``tools/summary_network.py`` count (its torchstat copy),
    on the meta device.

    torchstat hooks every leaf module and keeps its last call's count: convs as multiply-adds plus one add per bias
    element; BN 2 per element; ReLU 1 per element; adaptive pooling per its window formula; ``nn.Upsample`` N*H*W
    of its output (it indexes the batch away, so channels do not count). Sigmoid and functional ops (the
    cross-resolution pooling and resizes, the iterative head's upsampling) count nothing. A module called more than
    once counts once: each exchange unit's shared ``relu`` is counted for its last branch only. The official fuse
    upsampling is an ``nn.Upsample`` leaf after the conv + BN; here it is inside :class:`FuseUp`, so its count is
    taken there.
    """
    last: dict[str, tuple[int, int]] = {}  # module name: (conv multiply-adds, torchstat FLOPs) of its last call

    def count(name: str, module: nn.Module, x: torch.Tensor, out: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            macs = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups * out.numel()
            last[name] = (macs, macs + (out.numel() if module.bias is not None else 0))
        elif isinstance(module, nn.BatchNorm2d):
            last[name] = (0, 2 * x.numel())
        elif isinstance(module, nn.ReLU):
            last[name] = (0, x.numel())
        elif isinstance(module, nn.AdaptiveAvgPool2d):
            (h, w), (oh, ow) = x.shape[-2:], out.shape[-2:]
            rows = [math.ceil((i + 1) * h / oh) - math.floor(i * h / oh) + 1 for i in range(oh)]
            cols = [math.ceil((j + 1) * w / ow) - math.floor(j * w / ow) + 1 for j in range(ow)]
            last[name] = (0, x.shape[0] * x.shape[1] * sum(rows) * sum(cols))
        elif isinstance(module, FuseUp):
            last[name] = (0, out.shape[0] * out.shape[2] * out.shape[3])

    hooks = [
        m.register_forward_hook(lambda m, args, out, name=name: count(name, m, args[0], out))
        for name, m in model.named_modules()
    ]
    with torch.no_grad():
        model(torch.empty(1, *input_size, device='meta'))
    for hook in hooks:
        hook.remove()
    return sum(macs for macs, _ in last.values()), sum(flops for _, flops in last.values())


# the official README's table (the paper's Table): (input size, params in M, FLOPs in M = 2^20). The 384x288 and
# MPII (16 joints) rows match too (461.6, 717.8, 273.4, 425.3); they are left out here for time.
PAPER = {'litehrnet_18': ((3, 256, 192), 1.1, 205.2), 'litehrnet_30': ((3, 256, 192), 1.8, 319.2)}


@pytest.mark.parametrize('name', list(PAPER))
def test_params_and_flops_are_the_papers(meta_model, name):
    """Params and FLOPs as the paper's table at 256x192, to its rounding (FLOPs in M = 2^20, as torchstat prints).

    The paper's FLOPs are not the project's GFLOPs: ``arch_stats`` counts conv multiply-adds only (the HRNet
    tables' convention: 198.6 M multiply-adds = 0.185 "GFLOPs" for Lite-HRNet-18), while the paper's count
    (torchstat, see :func:`_official_flops`) adds BN, ReLU, pooling and upsampling elements and bias adds, about
    3 % more. Both include the iterative head and the 1x1 ``final_layer`` (17 joints).
    """
    input_size, params_m, flops_m = PAPER[name]
    stats = arch_stats(name, input_size)
    assert round(stats.params / 1e6, 1) == params_m
    macs, flops = _official_flops(meta_model(name), input_size)
    assert round(flops / 2**20, 1) == flops_m
    assert macs == stats.gflops * 2**30  # the two counters agree on the convolutions


# -- shapes ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(('size', 'heatmap'), [((256, 192), (64, 48)), ((250, 190), (63, 48)), ((33, 47), (9, 12))])
def test_any_input_size_gives_heatmaps_at_a_quarter(meta_model, size, heatmap):
    """Stride-2 3x3 convs with padding 1 round up, twice in the stem: ceil(H / 4) x ceil(W / 4). The official fixed
    x2 upsampling fails where a side is not a multiple of 32 (250x190); the fuse resizes target the actual size."""
    model = meta_model('litehrnet_18')
    assert model(torch.empty(1, 3, *size, device='meta')).shape == (1, 17, *heatmap)


def test_an_odd_input_runs_and_num_classes_sets_the_heatmaps():
    torch.manual_seed(0)
    model = timm.create_model('litehrnet_18', num_classes=16).eval()
    x = torch.randn(1, 3, 62, 46)
    with torch.no_grad():
        features = model.forward_features(x)
        heatmaps = model.forward_head(features)
    assert heatmaps.shape == (1, 16, 16, 12) and torch.isfinite(heatmaps).all()
    assert features.shape == (1, 40, 16, 12)
    assert timm.create_model('litehrnet_18', num_classes=0, device='meta').final_layer.__class__ is nn.Identity


def test_features_only_gives_the_stem_and_the_four_branches():
    torch.manual_seed(0)
    model = timm.create_model('litehrnet_18', features_only=True)
    assert model.feature_info.channels() == [32, 40, 80, 160, 320]
    assert model.feature_info.reduction() == [4, 4, 8, 16, 32]
    features = model(torch.randn(1, 3, 62, 46))
    assert [tuple(f.shape[1:]) for f in features] == [(32, 16, 12), (40, 16, 12), (80, 8, 6), (160, 4, 3), (320, 2, 2)]


def test_selected_features_prune_what_they_do_not_read():
    """No head left, and every remaining parameter gets a gradient (DDP without find_unused_parameters); fuse row 0
    stays though branch 0 is not selected, as the lower rows read its sum."""
    torch.manual_seed(0)
    out_indices = (2, 4)
    model = timm.create_model('litehrnet_18', features_only=True, out_indices=out_indices)
    names = [n for n, _ in model.named_parameters()]
    assert not [n for n in names if 'head_layer' in n or 'final_layer' in n]
    chs = [32, 40, 80, 160, 320]
    assert model.feature_info.channels() == [chs[i] for i in out_indices]
    sum(f.sum() for f in model(torch.randn(1, 3, 48, 48))).backward()
    assert [len(row) for row in model.model.stage2[-1].fuse_layers] == [4, 4, 0, 4]
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_fuse_counts_branch_zero_twice_and_lower_rows_read_row_zeros_sum():
    """The official fuse, written out for two branches: y0 = 2 x0 + up(x1), y1 = 2 down(y0) + x1 (pre-ReLU y0;
    the official ``y += ...`` rewrites branch 0 in place), as the released checkpoints were trained."""
    torch.manual_seed(0)
    unit = LiteHRModule(LiteStageSpec(1, (8, 16), num_blocks=0), nn.BatchNorm2d).eval()
    x0, x1 = torch.randn(1, 8, 9, 7), torch.randn(1, 16, 5, 4)
    with torch.no_grad():
        up = unit.fuse_layers[0][1][1](unit.fuse_layers[0][1][0](x1))
        y0 = 2 * x0 + F.interpolate(up, size=(9, 7), mode='nearest')
        y1 = 2 * unit.fuse_layers[1][0](y0) + x1
        out = unit([x0, x1])
    torch.testing.assert_close(out[0], y0.relu())
    torch.testing.assert_close(out[1], y1.relu())


# -- timm and the tasks layer ------------------------------------------------------------------------------------


@pytest.mark.parametrize('name', list(CONFIGS))
def test_registered_with_an_untagged_default_cfg(meta_model, name):
    model = meta_model(name)
    cfg = model.pretrained_cfg
    assert (cfg['input_size'], cfg['mean'], cfg['std']) == ((3, 256, 192), IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
    assert not cfg.get('tag') and not cfg.get('url') and not cfg.get('hf_hub_id')
    assert cfg['classifier'] == 'final_layer' and model.get_classifier() is model.final_layer
    with pytest.raises(ValueError, match='no pretrained weights'):
        timm.create_model(name, pretrained=True)


def test_estimate_pose_reads_it_as_a_top_down_heatmap_model():
    torch.manual_seed(0)
    model = timm.create_model('litehrnet_18').eval()
    assert model_decoder(model) == 'topdown_heatmaps'
    image = np.random.default_rng(0).integers(0, 255, (120, 90, 3), dtype=np.uint8)
    poses = estimate_pose(model, image, boxes=[[10, 20, 60, 80]], flip=False)
    assert poses.keypoints.shape == (1, 17, 3)
    inside = (poses.keypoints[0, :, 0] >= 0) & (poses.keypoints[0, :, 0] <= 90)
    assert inside.all()


def _unit_scale(model: nn.Module, h: int, w: int) -> nn.Module:
    """Random weights with activations near unit scale, as trained ones have (the official N(0, 0.001) init
    shrinks them toward zero, where a relative error means nothing): He-normal convolutions, then each BatchNorm's
    running statistics from one train-mode batch."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / m.weight[0].numel()) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                m.momentum = 1.0
        model.train()(torch.randn(2, 3, h, w, generator=g))
    return model.eval()


def test_the_cpu_fast_path_runs_lite_hrnet_and_matches_eager():
    """optimize_for_inference swaps only plain Sequentials: Lite-HRNet's fuse steps are Sequential subclasses with a
    forward of their own (the target size), which a FusedConv in their place broke (TypeError on the first call)."""
    model = _unit_scale(timm.create_model('litehrnet_18'), 130, 98)
    x = torch.randn(1, 3, 130, 98, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x)
    fast = hrnet_zoo.optimize_for_inference(model)
    with torch.no_grad():
        got = fast(x)
    assert expected.abs().mean() > 0.1  # a scale where the relative error below is meaningful
    assert ((got - expected).norm() / expected.norm()).item() < 1e-4
