"""HRNetV2-OCR against the official head, its checkpoints in both layouts, the auxiliary loss, and the fine-tuning
controls every head has (frozen_stages, norm_eval, norm_layer)."""

from __future__ import annotations

from functools import partial

import official_layouts as ol
import official_ocr as oo
import pytest
import timm
import torch
import torch.nn.functional as F
from helpers import randomize_batchnorm
from safetensors.torch import save_file
from timm.layers import BatchNormAct2d
from torch import Tensor, nn
from torchvision.ops import FrozenBatchNorm2d

import hrnet_zoo
from hrnet_zoo import cli
from hrnet_zoo.cli import weights as cli_weights
from hrnet_zoo.publish.convert import convert_state_dict, load_checkpoint
from hrnet_zoo.stats import arch_stats
from hrnet_zoo.weights.checks import load_pretrained_file

SMALL = 'w18_small_v1'
OCR = f'hrnetv2_ocr_{SMALL}'

pytestmark = pytest.mark.usefixtures('one_thread')


def _x(h: int, w: int, batch: int = 1, seed: int = 0) -> Tensor:
    return torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _ocr_model(**kwargs) -> nn.Module:
    """The official OCR setting: bilinear fuse with align_corners=True, in the head too."""
    return timm.create_model(OCR, upsample_mode='bilinear', align_corners=True, **kwargs)


def _head_vs_official(model: nn.Module, head: dict[str, Tensor], x: Tensor) -> None:
    with torch.no_grad():
        branches = model.forward_intermediates(x, indices=[1, 2, 3, 4], intermediates_only=True)
        main, aux = oo.ocr_logits(branches, head)
        got_main, got_aux = model.forward_with_aux(x)
        assert torch.equal(model(x), got_main)
    assert torch.equal(got_main, main) and torch.equal(got_aux, aux)  # bit for bit


# ---------------------------------------------------------------------------------------------------------------
# The model


def test_equals_the_official_head_bit_for_bit():
    model = _ocr_model(num_classes=7).eval()
    randomize_batchnorm(model)
    head = oo.ocr_head(240, 7)
    model.load_state_dict({**model.state_dict(), **head}, strict=True)  # every official name is ours
    _head_vs_official(model, head, _x(97, 131))


def test_keys_settings_and_counts():
    model = timm.create_model('hrnetv2_ocr_w48', device='meta')
    keys = model.state_dict().keys()
    backbone = ('conv1.', 'conv2.', 'bn1.', 'bn2.', 'layer1.', 'transition', 'stage')
    assert {k for k in keys if not k.startswith(backbone)} == set(oo.ocr_head(720, 19))
    cfg = model.pretrained_cfg
    assert cfg['tag'] == 'cityscapes' and cfg['num_classes'] == 19 and tuple(cfg['input_size']) == (3, 1024, 2048)
    assert (model.upsample_mode, model.align_corners, model.head_align_corners) == ('bilinear', True, True)
    assert cfg['classifier'] == ('cls_head', 'aux_head.3')
    assert model.ocr_distri_head.conv_bn_dropout[2].p == 0.05
    # the paper's HRNetV2-W48 + OCR row: 70.3M / 1206.3 GFLOPs (both truncated, as the README's 65.8M)
    stats = arch_stats('hrnetv2_ocr_w48', (3, 1024, 2048))
    assert stats.params == 70_372_678 and round(stats.gflops, 2) == 1206.37


@pytest.mark.parametrize('width', ['w18_small_v2', 'w32'])
def test_every_width_builds_the_same_head(width):
    model = timm.create_model(f'hrnetv2_ocr_{width}', device='meta')
    c = sum(model.branch_channels)
    assert model.conv3x3_ocr[0].weight.shape == (512, c, 3, 3)
    assert model.aux_head[0].weight.shape == (c, c, 1, 1)
    small = timm.create_model(f'hrnetv2_ocr_{width}', mid_channels=64, key_channels=32, device='meta')
    assert small.cls_head.weight.shape == (19, 64, 1, 1)
    assert small.ocr_distri_head.object_context_block.f_pixel[0].weight.shape == (32, 64, 1, 1)


def test_training_step_with_the_auxiliary_loss():
    torch.manual_seed(0)
    model = _ocr_model(num_classes=5, aux_output=True).train()
    x, target = _x(64, 80, batch=2), torch.randint(0, 5, (2, 64, 80))
    main, aux = model(x)
    assert main.shape == aux.shape == (2, 5, 16, 20)

    def upsampled(logits: Tensor) -> Tensor:
        return F.interpolate(logits, size=target.shape[-2:], mode='bilinear', align_corners=True)

    loss = F.cross_entropy(upsampled(main), target) + 0.4 * F.cross_entropy(upsampled(aux), target)
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not no_grad, no_grad[:5]
    model.eval()
    with torch.no_grad():
        assert isinstance(model(x), Tensor)  # eval: the logits alone, whatever aux_output says


def test_classifier_api():
    model = _ocr_model().eval()
    model.reset_classifier(4)
    assert model.cls_head.out_channels == model.aux_head[3].out_channels == model.num_classes == 4
    with torch.no_grad():
        assert model(_x(64, 64)).shape == (1, 4, 16, 16)
        pre = model.forward_head(model.forward_features(_x(64, 64)), pre_logits=True)
        assert pre.shape[1] == model.head_hidden_size == 512
    with pytest.raises(ValueError, match='num_classes >= 1'):
        timm.create_model(OCR, num_classes=0)


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints


@pytest.fixture(scope='module')
def small_backbone() -> dict[str, Tensor]:
    return ol.backbone(ol.randomised_timm_hrnet(SMALL, seed=3).state_dict())


def _check_converted(out: dict[str, Tensor], expected: dict[str, Tensor]) -> None:
    assert out.keys() == expected.keys()
    for k, v in expected.items():
        assert torch.equal(out[k], v), k


@pytest.mark.parametrize('layout', ['fullmodel', 'fullmodel_wrapped', 'torch04', 'last_layer'])
def test_official_files(small_backbone, tmp_path, layout):
    head = oo.ocr_head(240, 19)
    stored = dict(head)
    if layout == 'last_layer':  # the aux head under HRNetV2's name, which the official loader renames
        stored = {k.replace('aux_head.', 'last_layer.'): v for k, v in head.items()}
    sd = {f'model.{k}': v for k, v in {**small_backbone, **stored}.items()}  # FullModel
    sd['loss.criterion.weight'] = torch.rand(19)
    if layout == 'torch04':  # InPlaceABN: no counters
        sd = {k: v for k, v in sd.items() if not k.endswith('num_batches_tracked')}
    obj = {'epoch': 484, 'state_dict': sd} if layout == 'fullmodel_wrapped' else sd
    torch.save(obj, tmp_path / 'ocr.pth')
    out = convert_state_dict(load_checkpoint(tmp_path / 'ocr.pth'), OCR)
    expected = {**small_backbone, **head}
    if layout == 'torch04':
        assert all(out[k].item() == 0 for k in expected if k.endswith('num_batches_tracked'))
        out = {k: v for k, v in out.items() if not k.endswith('num_batches_tracked')}
        expected = {k: v for k, v in expected.items() if not k.endswith('num_batches_tracked')}
    _check_converted(out, expected)
    model = _ocr_model().eval()
    model.load_state_dict(convert_state_dict(load_checkpoint(tmp_path / 'ocr.pth'), OCR), strict=True)
    _head_vs_official(model, head, _x(64, 96))


def test_mmseg_ocrnet(small_backbone, tmp_path):
    head = oo.ocr_head(240, 19, biases=False)  # mmseg's ConvModules before a BN have no bias
    mm_backbone = {f'backbone.{ol._mm_norms(k)}': v for k, v in small_backbone.items()}
    torch.save(oo.mmseg_ocrnet(mm_backbone, head), tmp_path / 'ocrnet.pth')
    out = convert_state_dict(load_checkpoint(tmp_path / 'ocrnet.pth'), OCR)
    _check_converted(out, {**small_backbone, **head})  # the two absent biases come back as zeros
    model = _ocr_model().eval()
    model.load_state_dict(out, strict=True)
    _head_vs_official(model, head, _x(64, 96))


def test_official_w48_cityscapes_file_fits_its_tag():
    sd = ol.backbone(timm.create_model('hrnet_w48').state_dict())
    head = oo.ocr_head(720, 19)
    out = convert_state_dict({f'model.{k}': v for k, v in {**sd, **head}.items()}, 'hrnetv2_ocr_w48.cityscapes')
    assert out.keys() == timm.create_model('hrnetv2_ocr_w48', device='meta').state_dict().keys()
    # an HRNetV2 segmentation file is no OCR model: its head alone is refused, not silently half-loaded
    seg = {f'model.{k}': v for k, v in {**sd, **ol.seg_head(720, 19)}.items()}
    with pytest.raises(ValueError, match='missing: .*cls_head'):
        convert_state_dict(seg, 'hrnetv2_ocr_w48.cityscapes')
    assert not any(k.startswith('aux_head.') for k in convert_state_dict(seg, 'hrnetv2_ocr_w48.in1k'))


def test_manifest_records():
    records = [r for r in hrnet_zoo.MANIFEST.values() if r.head == 'v2_ocr' and r.source.trained_by == 'Microsoft']
    records = [r for r in records if not r.backbone_only]  # the official release; mmseg's OCRNets have their own
    assert [r.tag for r in records] == ['cityscapes', 'cityscapes_trainval', 'lip', 'pascal_context', 'cocostuff',
                                        'ade20k']  # fmt: skip
    assert all(r.align_corners is True and r.upsample_mode == 'bilinear' for r in records)
    assert all(r.source.url.endswith('/HRNet-OCR/' + r.source.file_name) for r in records)
    assert [r.metrics[0].value for r in records] == [81.6, 82.3, 56.48, 56.2, 39.7, 44.5]
    assert hrnet_zoo.weights.default_tag('hrnetv2_ocr_w48') == 'cityscapes'


# ---------------------------------------------------------------------------------------------------------------
# Fine-tuning controls

FROZEN = {  # mmseg's HRNet._freeze_stages, written out
    -1: (),
    0: ('conv1.', 'bn1.', 'conv2.', 'bn2.'),
    1: ('conv1.', 'bn1.', 'conv2.', 'bn2.', 'layer1.', 'transition1.'),
    2: ('conv1.', 'bn1.', 'conv2.', 'bn2.', 'layer1.', 'transition1.', 'stage2.', 'transition2.'),
    4: ('conv1.', 'bn1.', 'conv2.', 'bn2.', 'layer1.', 'transition1.', 'stage2.', 'transition2.', 'stage3.',
        'transition3.', 'stage4.'),
}  # fmt: skip


def _step(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """One SGD step on a squared-logits loss; returns the state before it."""
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.1)
    out = model(x)
    out = torch.cat([o.flatten() for o in out]) if isinstance(out, (list, tuple)) else out
    out.square().mean().backward()
    optimizer.step()
    return before


@pytest.mark.parametrize(('head', 'frozen'), [('v2', 0), ('v2', 1), ('v1', 2), ('v2_ocr', 4), ('v2p', -1)])
def test_frozen_stages(head, frozen):
    torch.manual_seed(0)
    model = timm.create_model(f'hrnet{head}_{SMALL}', frozen_stages=frozen).train()
    prefixes = FROZEN[frozen]
    for name, param in model.named_parameters():
        assert param.requires_grad == (not name.startswith(prefixes)), name
    frozen_bns = [m for n, m in model.named_modules() if n.startswith(prefixes) and isinstance(m, nn.BatchNorm2d)]
    assert all(not m.training for m in frozen_bns) and len(frozen_bns) == (0 if frozen < 0 else len(frozen_bns))
    before = _step(model, _x(64, 64, batch=2))
    after = model.state_dict()
    for key, value in before.items():
        if key.endswith('num_batches_tracked'):
            continue
        unchanged = torch.equal(after[key], value)
        assert unchanged == key.startswith(prefixes), key  # frozen: weights and statistics; the rest moved
    model.train()  # .train() again keeps the frozen norms in eval
    assert all(not m.training for m in frozen_bns)


def test_norm_eval_keeps_every_statistic():
    torch.manual_seed(0)
    model = timm.create_model(OCR, norm_eval=True, dropout=0.0).train()
    assert model.training and not any(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    before = _step(model, _x(64, 64, batch=2))
    after = model.state_dict()
    for key, value in before.items():
        is_stat = key.endswith(('running_mean', 'running_var', 'num_batches_tracked'))
        assert torch.equal(after[key], value) == is_stat, key


NORMS = {
    'sync': nn.SyncBatchNorm,
    'frozen': FrozenBatchNorm2d,
    'timm': partial(BatchNormAct2d, apply_act=False),
}


@pytest.mark.parametrize('norm', list(NORMS))
@pytest.mark.parametrize('head', ['v2', 'v2_ocr'])
def test_norm_layer_builds_and_loads_pretrained(head, norm, tmp_path):
    """Every norm is the class asked for, and a plain model's weights file loads through the checked loader."""
    torch.manual_seed(0)
    arch = f'hrnet{head}_{SMALL}'
    plain = randomize_batchnorm(timm.create_model(arch).eval())
    model = timm.create_model(arch, norm_layer=NORMS[norm]).eval()
    cls = NORMS[norm].func if isinstance(NORMS[norm], partial) else NORMS[norm]
    assert not any(type(m) is nn.BatchNorm2d for m in model.modules())
    num_bn = sum(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert sum(isinstance(m, cls) for m in model.modules()) == num_bn
    path = tmp_path / 'model.safetensors'
    save_file({k: v.contiguous() for k, v in plain.state_dict().items()}, str(path), metadata={'format': 'pt'})
    load_pretrained_file(model, path, config=None)
    x = _x(64, 64)
    with torch.no_grad():
        got, ref = model(x), plain(x)
    # FrozenBatchNorm2d folds the statistics in another order: rounding differs, nothing more
    assert torch.linalg.norm(got - ref) / torch.linalg.norm(ref) < 1e-5


def test_convert_sync_batchnorm_keeps_ocr_outputs():
    torch.manual_seed(0)
    model = randomize_batchnorm(_ocr_model().eval())
    x = _x(64, 64)
    with torch.no_grad():
        expected = model(x)
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(model).eval()
    assert not any(type(m) is nn.BatchNorm2d for m in synced.modules())
    with torch.no_grad():
        torch.testing.assert_close(synced(x), expected)


def test_cli_list_at_another_input_size(capsys, monkeypatch):
    monkeypatch.setattr(cli_weights, 'ARCHS', ('hrnetv2_ocr_w18_small_v1', 'hrnetv2_ocr_w48'))
    assert cli.main(['list', '--input-size', '1024x2048']) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith('hrnet')]
    assert [row[:4] for row in lines] == [
        ['hrnetv2_ocr_w18_small_v1', '3.842', '271.29', '1024x2048'],
        ['hrnetv2_ocr_w48', '70.373', '1206.37', '1024x2048'],
    ]
    with pytest.raises(SystemExit):
        cli.main(['list', '--input-size', '1024'])
