"""The 36 registered models: shapes, counts, features, the timm model API, exports, bad input."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from helpers import TIMM_NAMES, randomize_batchnorm
from timm.models import group_parameters
from timm.optim import param_groups_layer_decay

import hrnet_zoo
from hrnet_zoo.stats import arch_stats

WIDTHS = list(hrnet_zoo.WIDTHS)
BRANCHES = {  # C per width, written out here rather than read from our specs
    'w18_small_v1': 16, 'w18_small_v2': 18, 'w18': 18, 'w30': 30, 'w32': 32,
    'w40': 40, 'w44': 44, 'w48': 48, 'w64': 64,
}  # fmt: skip
SMALL = 'w18_small_v1'


def _x(h: int, w: int, batch: int = 1, chans: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, chans, h, w, generator=torch.Generator().manual_seed(seed))


def test_36_names_registered():
    names = timm.list_models('hrnetv*')
    expected = {f'hrnet{h}_{w}' for h in ('v1', 'v2', 'v2p', 'v2_ocr') for w in WIDTHS}
    assert set(names) == expected and len(names) == 36


@pytest.mark.parametrize('arch', sorted(hrnet_zoo.ARCHS))
def test_forward_backward_every_param_gets_grad(arch):
    head, width = hrnet_zoo.specs.parse_arch(arch)
    c = BRANCHES[width]
    model = timm.create_model(arch).train()
    x = _x(65, 97, batch=2)
    out = model(x)
    if head == 'v1':
        assert out.shape == (2, 17, 17, 25)
        loss = out.square().mean()
    elif head in ('v2', 'v2_ocr'):
        assert out.shape == (2, 19, 17, 25)
        loss = out.square().mean()
    else:
        assert model.out_channels == 256
        assert [tuple(o.shape) for o in out] == [(2, 256, 17, 25), (2, 256, 8, 12), (2, 256, 4, 6), (2, 256, 2, 3),
                                                  (2, 256, 1, 1)]  # fmt: skip
        loss = sum(o.square().mean() for o in out)
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f'{len(no_grad)} parameters got no gradient: {no_grad[:5]}'
    assert model.num_features == (c if head == 'v1' else 15 * c)


@pytest.mark.parametrize('width', WIDTHS)
def test_features_only_channels_and_reductions(width):
    c = BRANCHES[width]
    for head in ('v1', 'v2', 'v2p', 'v2_ocr'):
        model = timm.create_model(f'hrnet{head}_{width}', features_only=True, device='meta')
        assert model.feature_info.channels() == [64, c, 2 * c, 4 * c, 8 * c]
        assert model.feature_info.reduction() == [2, 4, 8, 16, 32]
    selected = timm.create_model(f'hrnetv2_{width}', features_only=True, out_indices=(-2, -1), device='meta')
    assert selected.feature_info.channels() == [4 * c, 8 * c]


@pytest.mark.parametrize('head', ['v1', 'v2', 'v2p', 'v2_ocr'])
def test_features_only_forward_and_ddp_ready(head):
    model = timm.create_model(f'hrnet{head}_{SMALL}', features_only=True).train()
    feats = model(_x(97, 131))
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 49, 66), (16, 25, 33), (32, 13, 17), (64, 7, 9), (128, 4, 5)]
    sum(f.mean() for f in feats).backward()
    assert all(p.grad is not None for p in model.parameters())
    # a subset of features prunes what it does not read, so DDP needs no find_unused_parameters
    full = timm.create_model(f'hrnet{head}_{SMALL}', features_only=True).eval()
    x = _x(64, 96)
    with torch.no_grad():
        every = full(x)
    for out_indices in [(1, 2), (4,), (2, 3), (0,), (0, 3)]:
        sub = timm.create_model(f'hrnet{head}_{SMALL}', features_only=True, out_indices=out_indices)
        own = sub.model.state_dict()
        sub.model.load_state_dict({k: v for k, v in full.model.state_dict().items() if k in own})
        with torch.no_grad():
            got = sub.eval()(x)
        assert all(torch.allclose(g, every[i], atol=1e-5) for g, i in zip(got, out_indices))
        sum(f.mean() for f in sub.train()(x)).backward()
        no_grad = [n for n, p in sub.named_parameters() if p.grad is None]
        assert not no_grad, (out_indices, no_grad[:5])


# official seg_hrnet.py counts: params (M) and GFLOPs at 1024x2048 with a 19-class head
SEG_TABLE = {
    'w18_small_v1': (1.541, 31.10), 'w18_small_v2': (3.940, 71.58), 'w18': (9.641, 137.28),
    'w30': (26.025, 301.36), 'w32': (29.547, 336.42), 'w40': (45.894, 498.67), 'w44': (55.425, 593.02),
    'w48': (65.859, 696.18), 'w64': (116.640, 1196.91),
}  # fmt: skip


@pytest.mark.parametrize('width', WIDTHS)
def test_param_counts_match_official(width):
    params, _ = SEG_TABLE[width]
    model = timm.create_model(f'hrnetv2_{width}', num_classes=19, device='meta')
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 3) == params


@pytest.mark.parametrize('width', ['w18_small_v1', 'w18', 'w48'])
def test_gflops_match_official(width):
    _, gflops = SEG_TABLE[width]
    stats = arch_stats(f'hrnetv2_{width}', (3, 1024, 2048), num_classes=19)
    assert round(stats.gflops, 2) == gflops


@pytest.mark.parametrize(('width', 'params', 'gflops'), [('w32', 28.536, 7.12), ('w48', 63.596, 14.61)])
def test_pose_counts_match_official(width, params, gflops):
    stats = arch_stats(f'hrnetv1_{width}', (3, 256, 192), num_classes=17)
    assert round(stats.params / 1e6, 3) == params
    assert round(stats.gflops, 2) == gflops


@pytest.mark.parametrize(('width', 'neck', 'backbone'), [('w18', 3.020, 9.562), ('w32', 3.074, 29.306),
                                                          ('w40', 3.104, 45.521), ('w48', 3.135, 65.325)])  # fmt: skip
def test_pyramid_neck_params(width, neck, backbone):
    model = timm.create_model(f'hrnetv2p_{width}', device='meta')
    neck_params = sum(p.numel() for p in model.neck.parameters())
    c = BRANCHES[width]
    assert neck_params == 15 * c * 256 + 256 + 5 * (589824 + 256)
    assert round(neck_params / 1e6, 3) == neck
    assert round((sum(p.numel() for p in model.parameters()) - neck_params) / 1e6, 3) == backbone


@pytest.mark.parametrize('width', WIDTHS)
def test_branches_equal_timm(width):
    """timm's hrnet_<w> weights in our backbone give timm's raw branch features (nearest fuse)."""
    torch.manual_seed(0)
    source = timm.create_model(TIMM_NAMES[width])
    randomize_batchnorm(source)
    state = source.state_dict()
    reference = timm.create_model(TIMM_NAMES[width], features_only=True, feature_location='').eval()
    reference.load_state_dict(state, strict=False)
    ours = timm.create_model(f'hrnetv2_{width}', upsample_mode='nearest').eval()
    missing, unexpected = ours.load_state_dict(state, strict=False)
    assert all(k.startswith('last_layer.') for k in missing)
    assert all(k.startswith(('incre_modules.', 'downsamp_modules.', 'final_layer.', 'classifier.')) for k in unexpected)
    x = _x(64, 96, batch=2)
    with torch.no_grad():
        expected = reference(x)
        got = ours.forward_intermediates(x, intermediates_only=True)
    assert len(got) == 5
    for e, g in zip(expected, got):
        assert (e - g).abs().max().item() < 1e-5


def test_v2_head_matches_an_independent_computation():
    model = timm.create_model(f'hrnetv2_{SMALL}', upsample_mode='bilinear', align_corners=False).eval()
    randomize_batchnorm(model)
    x = _x(97, 131)
    with torch.no_grad():
        branches = model.forward_intermediates(x, indices=[1, 2, 3, 4], intermediates_only=True)
        size = branches[0].shape[-2:]
        cat = torch.cat([branches[0]] + [F.interpolate(b, size, mode='bilinear') for b in branches[1:]], 1)
        conv0, bn, _, conv3 = model.last_layer
        expected = F.conv2d(F.relu(bn(F.conv2d(cat, conv0.weight, conv0.bias))), conv3.weight, conv3.bias)
        assert torch.allclose(model(x), expected, atol=1e-5)
        assert torch.allclose(model.forward_features(x), cat, atol=1e-6)


def test_v2p_pyramid_matches_an_independent_computation():
    model = timm.create_model(f'hrnetv2p_{SMALL}').eval()
    x = _x(128, 192)
    with torch.no_grad():
        rep = model.forward_features(x)
        reduced = F.conv2d(rep, model.neck.reduction_conv.weight, model.neck.reduction_conv.bias)
        for i, (level, conv) in enumerate(zip(model(x), model.neck.fpn_convs)):
            pooled = reduced if i == 0 else F.avg_pool2d(reduced, 2**i)
            assert torch.allclose(level, F.conv2d(pooled, conv.weight, conv.bias, padding=1), atol=1e-5)


@pytest.mark.parametrize('size', [(473, 473), (520, 520), (33, 47), (7, 5), (1, 1)])
@pytest.mark.parametrize('head', ['v1', 'v2', 'v2_ocr'])
def test_any_input_size(head, size):
    model = timm.create_model(f'hrnet{head}_{SMALL}').eval()
    with torch.no_grad():
        out = model(_x(*size))
    h, w = size
    stride4 = lambda n: (((n + 1) // 2) + 1) // 2  # two stride-2 3x3 convs  # noqa: E731
    assert out.shape[-2:] == (stride4(h), stride4(w))
    assert torch.isfinite(out).all()


def test_v2p_sizes_and_clear_error_when_too_small():
    model = timm.create_model(f'hrnetv2p_{SMALL}').eval()
    with torch.no_grad():
        levels = model(_x(473, 473))
        assert [lv.shape[-1] for lv in levels] == [119, 59, 29, 14, 7]
        with pytest.raises(ValueError, match='at least 16x16'):
            model(_x(40, 40))


def test_1025x2049_full_resolution_v2():
    model = timm.create_model(f'hrnetv2_{SMALL}').eval()
    with torch.no_grad():
        assert model(_x(1025, 2049)).shape == (1, 19, 257, 513)


@pytest.mark.parametrize(
    ('x', 'error', 'match'),
    [
        (torch.randn(1, 4, 64, 64), ValueError, 'expects 3 input channels, got 4'),
        (torch.randn(3, 64, 64), ValueError, r'4-D \(N, C, H, W\)'),
        (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), TypeError, 'floating point'),
        (torch.zeros(1, 3, 64, 64, dtype=torch.int64), TypeError, 'floating point'),
    ],
)
def test_bad_input_is_named(x, error, match):
    model = timm.create_model(f'hrnetv2_{SMALL}').eval()
    with pytest.raises(error, match=match):
        model(x)
    features = timm.create_model(f'hrnetv2_{SMALL}', features_only=True).eval()
    with pytest.raises(error, match=match):
        features(x)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match='expected one of: .*w18_small_v1'):
        hrnet_zoo.get_spec('w17')
    with pytest.raises(ValueError, match='hrnetv2p_w64'):
        hrnet_zoo.create_hrnet('hrnetv3_w18')
    with pytest.raises(ValueError, match='in1k'):
        hrnet_zoo.get_record('hrnetv2_w18.cityscapes')


def test_upsample_mode_is_a_setting_and_tags_select_it():
    assert timm.create_model('hrnetv2_w18_small_v1', device='meta').upsample_mode == 'bilinear'  # cityscapes default
    assert timm.create_model('hrnetv2_w18_small_v1.in1k', device='meta').upsample_mode == 'nearest'
    ade = timm.create_model('hrnetv2_w48.ade20k', device='meta')
    assert (ade.upsample_mode, ade.align_corners, ade.num_classes) == ('bilinear', True, 150)
    assert timm.create_model('hrnetv1_w32', device='meta').upsample_mode == 'nearest'
    override = timm.create_model('hrnetv2_w48', upsample_mode='nearest', device='meta')
    assert (override.upsample_mode, override.align_corners) == ('nearest', None)
    with pytest.raises(ValueError, match='align_corners only applies'):
        timm.create_model('hrnetv2_w18', upsample_mode='nearest', align_corners=True, device='meta')
    with pytest.raises(ValueError, match='upsample_mode must be one of'):
        timm.create_model('hrnetv2_w18', upsample_mode='bicubic', device='meta')
    # the setting changes the numbers: same weights, different fuse resize
    torch.manual_seed(0)
    a = timm.create_model(f'hrnetv2_{SMALL}', upsample_mode='nearest').eval()
    b = timm.create_model(f'hrnetv2_{SMALL}', upsample_mode='bilinear').eval()
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        assert not torch.allclose(a(_x(64, 64)), b(_x(64, 64)), atol=1e-4)


@pytest.mark.parametrize('head', ['v1', 'v2', 'v2p', 'v2_ocr'])
def test_grad_checkpointing_same_outputs_and_grads(head):
    torch.manual_seed(0)
    no_dropout = {'dropout': 0.0} if head == 'v2_ocr' else {}  # OCR's Dropout2d would differ between the runs
    model = timm.create_model(f'hrnet{head}_{SMALL}', **no_dropout).train()
    x = _x(64, 96, batch=2)

    def run():
        model.zero_grad()
        out = model(x)
        out = torch.cat([o.flatten() for o in out]) if isinstance(out, list) else out.flatten()
        out.square().mean().backward()
        return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    state = {k: v.clone() for k, v in model.state_dict().items()}
    out_plain, grads_plain = run()
    model.load_state_dict(state)  # BN running stats moved; restore them
    model.set_grad_checkpointing(True)
    out_ckpt, grads_ckpt = run()
    assert torch.allclose(out_plain, out_ckpt, atol=1e-6)
    for name, grad in grads_plain.items():
        assert torch.allclose(grad, grads_ckpt[name], atol=1e-5), name


def test_group_matcher_orders_blocks_by_depth():
    model = timm.create_model('hrnetv2_w18', device='meta')
    groups = group_parameters(model, model.group_matcher())
    names = [groups[i][0] for i in sorted(groups)]
    assert names[0] == 'conv1.weight'
    assert names[1].startswith('layer1.0.')
    assert names[-1].startswith('last_layer.')
    order = [n.split('.')[0] + '.' + n.split('.')[1] for n in names[1:-1]]
    assert order.index('stage2.0') < order.index('stage3.0') < order.index('stage4.0')
    # stem + 4 layer1 blocks + stage2 (1) + stage3 (4) + stage4 (3) + head
    assert len(groups) == 1 + 4 + 1 + 4 + 3 + 1
    decayed = param_groups_layer_decay(model, weight_decay=0.05, layer_decay=0.75)
    assert sum(len(g['params']) for g in decayed) == len(list(model.parameters()))
    coarse = group_parameters(model, model.group_matcher(coarse=True))
    assert len(coarse) == 1 + 4 + 1  # stem, layer1, stage2, stage3, stage4, head


def test_classifier_api():
    model = timm.create_model(f'hrnetv2_{SMALL}', num_classes=5).eval()
    assert model.get_classifier().out_channels == 5
    x = _x(64, 64)
    with torch.no_grad():
        assert model(x).shape[1] == 5
        assert model.forward_head(model.forward_features(x), pre_logits=True).shape[1] == model.head_hidden_size
        model.reset_classifier(0)
        assert model(x).shape[1] == 240
        model.reset_classifier(7)
        assert model(x).shape[1] == 7
    pose = timm.create_model(f'hrnetv1_{SMALL}', num_classes=0).eval()
    with torch.no_grad():
        assert pose(x).shape[1] == 16
    with pytest.raises(ValueError, match='no classifier'):
        timm.create_model(f'hrnetv2p_{SMALL}', num_classes=3)


def test_in_chans_device_dtype():
    model = timm.create_model(f'hrnetv2_{SMALL}', in_chans=1).eval()
    with torch.no_grad():
        assert model(_x(64, 64, chans=1)).shape == (1, 19, 16, 16)
    meta = timm.create_model('hrnetv2_w64', device='meta')
    assert all(p.device.type == 'meta' for p in meta.parameters())
    bf16 = timm.create_model(f'hrnetv1_{SMALL}', dtype=torch.bfloat16).eval()
    assert all(p.dtype == torch.bfloat16 for p in bf16.parameters())
    with torch.no_grad():
        assert bf16(_x(64, 64).bfloat16()).dtype == torch.bfloat16


def test_pretrained_cfgs_per_head():
    for name, (size, classes) in {
        'hrnetv2_w48': ((3, 1024, 2048), 19),
        'hrnetv1_w32': ((3, 256, 192), 17),
        'hrnetv2p_w32': ((3, 800, 1333), 0),
        'hrnetv2_w30': ((3, 224, 224), 19),
    }.items():
        cfg = timm.create_model(name, device='meta').pretrained_cfg
        assert tuple(cfg['input_size']) == size and cfg['num_classes'] == classes
        assert tuple(cfg['mean']) == (0.485, 0.456, 0.406) and tuple(cfg['std']) == (0.229, 0.224, 0.225)
        record = hrnet_zoo.get_record(f'{name}.{cfg["tag"]}')
        assert cfg['hf_hub_id'] == record.hf_hub_id  # ours, or timm's own repo for the ImageNet backbones
        assert cfg['hf_hub_id'].startswith(f'{hrnet_zoo.HUB_ORG}/{name}.' if record.released_here else 'timm/hrnet_')
        model = timm.create_model(name, device='meta')
        assert cfg['first_conv'] + '.weight' in model.state_dict()
        if cfg['classifier']:
            assert cfg['classifier'] + '.weight' in model.state_dict()


def test_forward_intermediates_contract():
    model = timm.create_model(f'hrnetv2_{SMALL}').eval()
    x = _x(64, 96)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x)
        assert torch.equal(final, model.forward_features(x))
        assert len(inter) == len(model.feature_info) == 5
        only = model.forward_intermediates(x, indices=[0], stop_early=True, intermediates_only=True)
        assert len(only) == 1 and torch.equal(only[0], inter[0])
        last2 = model.forward_intermediates(x, indices=2, intermediates_only=True)
        assert [t.shape[1] for t in last2] == [64, 128]
    kept = model.prune_intermediate_layers([1, 2])
    assert kept == [1, 2] and isinstance(model.last_layer, torch.nn.Sequential) and len(model.last_layer) == 0


@pytest.mark.export
def test_torchscript():
    for head in ('v1', 'v2', 'v2p'):
        model = timm.create_model(f'hrnet{head}_{SMALL}').eval()
        scripted = torch.jit.script(model)
        x = _x(97, 131)
        with torch.no_grad():
            a, b = model(x), scripted(x)
        a, b = (a, b) if head != 'v2p' else (torch.cat([t.flatten() for t in a]), torch.cat([t.flatten() for t in b]))
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.export
@pytest.mark.parametrize('head', ['v1', 'v2', 'v2p', 'v2_ocr'])
def test_compile_fullgraph_no_graph_break(head):
    model = timm.create_model(f'hrnet{head}_{SMALL}').eval()
    x = _x(64, 96)
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    compiled = torch.compile(model, fullgraph=True, backend='eager')
    with torch.no_grad():
        out, ref = compiled(x), model(x)
    out, ref = (out[0], ref[0]) if head == 'v2p' else (out, ref)
    assert torch.allclose(out, ref, atol=1e-6)


@pytest.mark.export
@pytest.mark.parametrize('head', ['v1', 'v2', 'v2p', 'v2_ocr'])
def test_export_dynamic_height_width(head):
    model = timm.create_model(f'hrnet{head}_{SMALL}').eval()
    h, w = torch.export.Dim('h', min=128, max=4096), torch.export.Dim('w', min=128, max=4096)
    program = torch.export.export(model, (_x(160, 224),), dynamic_shapes={'x': {2: h, 3: w}})
    for size in [(160, 224), (257, 131)]:
        x = _x(*size, seed=1)
        with torch.no_grad():
            got, ref = program.module()(x), model(x)
        got, ref = (got[-1], ref[-1]) if head == 'v2p' else (got, ref)
        assert got.shape == ref.shape and torch.allclose(got, ref, atol=1e-5)


@pytest.mark.export
@pytest.mark.parametrize('head', ['v2', 'v2_ocr'])
def test_onnx_dynamic_height_width_runs_in_onnxruntime(tmp_path, head):
    ort = pytest.importorskip('onnxruntime')
    model = timm.create_model(f'hrnet{head}_{SMALL}').eval()
    randomize_batchnorm(model)
    path = tmp_path / 'hrnet.onnx'
    torch.onnx.export(
        model, (_x(160, 224),), str(path), input_names=['image'], output_names=['logits'], dynamo=False,
        dynamic_axes={'image': {0: 'n', 2: 'h', 3: 'w'}, 'logits': {0: 'n', 2: 'h4', 3: 'w4'}}, opset_version=17,
    )  # fmt: skip
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    for size in [(160, 224), (97, 131), (473, 473)]:
        x = _x(*size, batch=2, seed=2)
        (got,) = session.run(None, {'image': x.numpy()})
        with torch.no_grad():
            ref = model(x)
        assert got.shape == tuple(ref.shape)
        assert torch.linalg.norm(torch.from_numpy(got) - ref) / torch.linalg.norm(ref) < 1e-4


def test_cli_list(capsys):
    from hrnet_zoo.cli import main

    assert main(['list']) == 0
    out = capsys.readouterr().out
    assert 'hrnetv2_w48' in out and '696.18' in out and '65.859' in out
    assert len([line for line in out.splitlines() if line.startswith('hrnet')]) == 36
    assert 'hrnetv2_ocr_w48' in out and '1206.37' in out and '70.373' in out
