"""The downstream libraries users fine-tune with: segmentation_models_pytorch (``tu-`` encoders), torchvision
detection (Faster / Mask R-CNN on ``hrnet_zoo.models.detection``), and the fine-tuning examples. Each runs the real
library.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import timm
import torch
from helpers import TIMM_NAMES, randomize_batchnorm
from torch import nn

import hrnet_zoo
from hrnet_zoo import WIDTHS, get_spec
from hrnet_zoo.models.detection import (
    LEVEL_NAMES,
    LEVEL_STRIDES,
    HRNetFPN,
    anchor_generator,
    freeze_batch_norm,
    hrnet_fpn_backbone,
    roi_pooler,
)

smp = pytest.importorskip('segmentation_models_pytorch')
detection = pytest.importorskip('torchvision.models.detection')

ROOT = Path(__file__).resolve().parents[1]
SMALL = 'w18_small_v1'
ODD = (97, 129)  # Unet resizes its skips, so it takes any size
DIVISIBLE = (64, 96)  # the other smp decoders insist on multiples of 32


pytestmark = pytest.mark.usefixtures('one_thread')  # small CPU workloads: one thread beats fighting over cores


# --- segmentation_models_pytorch -------------------------------------------------------------------------------


@pytest.mark.parametrize('arch', [f'hrnetv2_{w}' for w in WIDTHS] + ['hrnetv1_w18', 'hrnetv2p_w18'])
def test_smp_unet_every_width_on_meta(arch: str) -> None:
    """smp probes the strides on the meta device; the whole Unet builds and runs there at an odd size."""
    with torch.device('meta'):
        model = smp.Unet(f'tu-{arch}', encoder_weights=None, classes=3)
        out = model(torch.empty(2, 3, *ODD))
    assert out.shape == (2, 3, *ODD) and out.is_meta
    c = get_spec(arch.split('_', 1)[1]).branch_channels
    assert model.encoder.out_channels == [3, 64, *c]


@pytest.mark.parametrize(
    ('decoder', 'size'),
    [('Unet', ODD), ('FPN', DIVISIBLE), ('UPerNet', DIVISIBLE), ('Segformer', DIVISIBLE), ('UnetPlusPlus', DIVISIBLE)],
)
def test_smp_decoder_trains(decoder: str, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = getattr(smp, decoder)(f'tu-hrnetv2_{SMALL}', encoder_weights=None, classes=3)
    x = torch.randn(2, 3, *size)
    out = model(x)
    assert out.shape == (2, 3, *size)
    nn.functional.cross_entropy(out, torch.randint(0, 3, (2, *size))).backward()
    stem = model.encoder.model.model.conv1.weight.grad
    assert stem is not None and torch.isfinite(stem).all() and stem.abs().sum() > 0
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing[:5]


@pytest.mark.parametrize('decoder', ['FPN', 'UPerNet', 'Segformer', 'UnetPlusPlus'])
def test_smp_decoders_need_multiples_of_32(decoder: str) -> None:
    """smp's own input check (not ours): these decoders add maps by scale factor, so H and W must divide by 32."""
    with torch.device('meta'):
        model = getattr(smp, decoder)(f'tu-hrnetv2_{SMALL}', encoder_weights=None)
        with pytest.raises(RuntimeError, match='divisible by 32'):
            model(torch.empty(1, 3, *ODD))


@pytest.mark.parametrize(('decoder', 'stride'), [('DeepLabV3Plus', 16), ('DeepLabV3', 8)])
def test_smp_deeplab_is_a_clear_error(decoder: str, stride: int) -> None:
    with pytest.raises(ValueError, match=f'output_stride must be 32, got {stride}.*DeepLabV3'):
        getattr(smp, decoder)('tu-hrnetv2_w18', encoder_weights=None)


# --- torchvision detection -------------------------------------------------------------------------------------


def _targets(sizes: list[tuple[int, int]], masks: bool) -> list[dict[str, torch.Tensor]]:
    targets = []
    for h, w in sizes:
        boxes = torch.tensor([[0.1 * w, 0.15 * h, 0.6 * w, 0.7 * h], [0.4 * w, 0.3 * h, 0.9 * w, 0.8 * h]])
        t = dict(boxes=boxes, labels=torch.tensor([1, 2]))
        if masks:
            t['masks'] = torch.zeros(2, h, w, dtype=torch.uint8)
            for m, (x0, y0, x1, y1) in zip(t['masks'], boxes.int().tolist()):
                m[y0:y1, x0:x1] = 1
        targets.append(t)
    return targets


# small images and few RoIs keep a CPU step to seconds; everything else is torchvision's default
FAST = dict(min_size=96, max_size=128, rpn_post_nms_top_n_train=100, rpn_post_nms_top_n_test=50)
FAST.update(box_batch_size_per_image=32, box_detections_per_img=10)


@pytest.mark.parametrize('detector', ['FasterRCNN', 'MaskRCNN'])
def test_torchvision_detector_train_and_eval(detector: str) -> None:
    torch.manual_seed(0)
    masks = detector == 'MaskRCNN'
    model = getattr(detection, detector)(hrnet_fpn_backbone(f'hrnetv2p_{SMALL}'), num_classes=3, **FAST)
    sizes = [(90, 120), (97, 129)]
    images = [torch.rand(3, h, w) for h, w in sizes]

    model.train()
    losses = model(images, _targets(sizes, masks))
    expected = {'loss_classifier', 'loss_box_reg', 'loss_objectness', 'loss_rpn_box_reg'} | (
        {'loss_mask'} if masks else set()
    )
    assert set(losses) == expected
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    body = model.backbone.body
    for p in (body.conv1.weight, body.stage4[0].branches[3][0].conv1.weight, body.neck.fpn_convs[4].weight):
        assert p.grad is not None and p.grad.abs().sum() > 0

    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2
    for o, (h, w) in zip(out, sizes):
        n = len(o['boxes'])
        assert 0 < n <= FAST['box_detections_per_img'] and o['boxes'].shape == (n, 4)
        assert o['labels'].shape == o['scores'].shape == (n,)
        assert (o['boxes'][:, 2] <= w).all() and (o['boxes'][:, 3] <= h).all()
        if masks:
            assert o['masks'].shape == (n, 1, h, w)


def test_hrnet_fpn_backbone_levels() -> None:
    backbone = hrnet_fpn_backbone(f'hrnetv2p_{SMALL}', out_channels=64).eval()
    assert isinstance(backbone, HRNetFPN) and backbone.out_channels == 64
    with torch.no_grad():
        feats = backbone(torch.randn(1, 3, 128, 160))
    assert list(feats) == list(LEVEL_NAMES)
    for f, s in zip(feats.values(), LEVEL_STRIDES):
        assert f.shape == (1, 64, 128 // s, 160 // s)
    # the helpers describe the same five levels torchvision's defaults assume
    assert anchor_generator().num_anchors_per_location() == [3] * len(LEVEL_NAMES)
    assert roi_pooler().featmap_names == list(LEVEL_NAMES[:4])


@pytest.mark.parametrize('name', ['hrnetv2_w18_small_v1', 'hrnetv1_w18_small_v1'])
def test_hrnet_fpn_backbone_rejects_other_heads(name: str) -> None:
    with pytest.raises(TypeError, match='HRNetV2p'):
        hrnet_fpn_backbone(name)


def test_frozen_batch_norm() -> None:
    torch.manual_seed(0)
    model = timm.create_model(f'hrnetv2p_{SMALL}').eval()
    randomize_batchnorm(model, gain=None)  # non-trivial statistics, so a wrong copy would show
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        frozen = freeze_batch_norm(model)
        got = frozen(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in frozen.modules())
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4)
    # torchvision's default for pretrained backbones: frozen BN; from scratch: trainable BN
    assert not any(
        isinstance(m, nn.BatchNorm2d) for m in hrnet_fpn_backbone(f'hrnetv2p_{SMALL}', frozen_bn=True).modules()
    )
    assert any(isinstance(m, nn.BatchNorm2d) for m in hrnet_fpn_backbone(f'hrnetv2p_{SMALL}').modules())


# --- the fine-tuning examples ----------------------------------------------------------------------------------


def _example(name: str):
    sys.path.insert(0, str(ROOT / 'examples'))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(ROOT / 'examples'))


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


@pytest.mark.slow
def test_example_segmentation_learns(capsys: pytest.CaptureFixture) -> None:
    example = _example('finetune_segmentation')
    args = ['--steps', '30', '--eval-every', '30', '--train-size', '64', '--val-size', '16', '--no-progress']
    history = example.main(args)
    assert history.steps == [0, 30] and len(history.losses) == 30
    assert all(math.isfinite(v) for v in history.losses)
    assert _mean(history.losses[-5:]) < 0.5 * _mean(history.losses[:5])
    assert history.metrics[-1] > history.metrics[0] + 0.1  # mIoU (seed 0: about 0.01 -> 0.28)
    out = capsys.readouterr().out
    assert '12 LR groups (layer decay 0.9)' in out and 'grad checkpointing True' in out
    assert 'mIoU' in out


@pytest.mark.slow
def test_example_pose_learns(capsys: pytest.CaptureFixture) -> None:
    example = _example('finetune_pose')
    args = ['--steps', '40', '--eval-every', '40', '--train-size', '64', '--val-size', '16', '--no-progress']
    history = example.main(args)
    assert history.steps == [0, 40] and len(history.losses) == 40
    # 40 steps lower the heatmap loss reliably; PCK needs about 100 (see the README's full run)
    assert _mean(history.losses[-5:]) < 0.85 * _mean(history.losses[:5])
    assert 'PCK@0.05' in capsys.readouterr().out


def test_examples_reject_the_wrong_head() -> None:
    with pytest.raises(SystemExit, match='HRNetV2 segmentation'):
        _example('finetune_segmentation').main(['--model', 'hrnetv1_w18_small_v1', '--steps', '1'])
    with pytest.raises(SystemExit, match='HRNetV1 pose'):
        _example('finetune_pose').main(['--model', 'hrnetv2_w18_small_v1', '--steps', '1'])


def _publish_in1k(name: str, tmp_path: Path) -> dict[str, torch.Tensor]:
    """Random ImageNet weights in the official layout, converted and published to the loopback Hub under
    ``name``'s own repo; returns the published tensors."""
    from safetensors.torch import load_file

    from hrnet_zoo.publish.client import publish
    from hrnet_zoo.publish.convert import convert_checkpoint

    torch.manual_seed(1)
    checkpoint = tmp_path / 'in1k.pth'
    torch.save(timm.create_model(TIMM_NAMES['w18_small_v1']).state_dict(), checkpoint)  # shares the official layout
    folder = convert_checkpoint(checkpoint, name, tmp_path / 'converted')
    publish(folder, hrnet_zoo.get_record(name).hf_hub_id, verify=False)
    return load_file(folder / 'model.safetensors')


def test_smp_pretrained_encoder_from_the_hub(hub, tmp_path: Path) -> None:
    """``tu-<arch>.<tag>`` with ``encoder_weights=True`` loads our published weights through timm."""
    name = f'hrnetv2_{SMALL}.in1k'
    tensors = _publish_in1k(name, tmp_path)
    model = smp.Unet(f'tu-{name}', encoder_weights=True, classes=2)
    encoder = model.encoder.model.model.state_dict()
    assert set(tensors) == set(encoder)  # backbone-only weights, and a features_only model without head
    assert all(torch.equal(encoder[k], v) for k, v in tensors.items())


def test_detection_backbone_pretrained_from_the_hub(hub, tmp_path: Path) -> None:
    """Pretrained backbones get torchvision's FrozenBatchNorm2d by default, holding the published statistics."""
    name = f'hrnetv2p_{SMALL}.in1k'
    tensors = _publish_in1k(name, tmp_path)
    backbone = hrnet_fpn_backbone(name, pretrained=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())
    state = backbone.body.state_dict()
    loaded = {k: v for k, v in tensors.items() if not k.endswith('num_batches_tracked')}
    assert loaded and all(torch.equal(state[k], v) for k, v in loaded.items())
