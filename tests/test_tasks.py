"""hrnet_zoo.tasks: parity of the pose building blocks with the official formulas (tests/official_postprocess.py),
end-to-end answers from fixed models that can read a synthetic image, and ``hrnet-zoo predict`` on bad input."""

from __future__ import annotations

import json
import os

import numpy as np
import official_postprocess as official
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from hrnet_zoo import tasks
from hrnet_zoo.cli import main as cli
from hrnet_zoo.data.keypoints import COCO_KEYPOINTS, KEYPOINT_SETS, KeypointSet
from hrnet_zoo.demo import _official_checkpoint
from hrnet_zoo.files import write_atomically
from hrnet_zoo.publish.convert import convert_checkpoint
from hrnet_zoo.tasks import inputs
from hrnet_zoo.weights.manifest import MANIFEST

pytestmark = pytest.mark.usefixtures('one_thread')

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)


# -- parity with the official formulas ---------------------------------------------------------------------------


@pytest.mark.parametrize('aspect_ratio', [0.75, 1.0, 4 / 3, 0.5])
def test_box_to_center_scale_is_xywh2cs(aspect_ratio):
    boxes = [(10.0, 20.0, 50.0, 100.0), (0.0, 0.0, 300.0, 40.0), (5.5, 7.25, 60.0, 80.0), (1.0, 2.0, 75.0, 100.0)]
    center, scale = tasks.box_to_center_scale(boxes, aspect_ratio)
    for i, box in enumerate(boxes):
        want_c, want_s = official.xywh2cs(*box, aspect_ratio)
        np.testing.assert_allclose(center[i].numpy(), want_c, rtol=1e-12)
        np.testing.assert_allclose(scale[i].numpy(), want_s, rtol=1e-12)
    assert torch.allclose(scale[:, 0] / scale[:, 1], torch.tensor(aspect_ratio, dtype=torch.float64))


@pytest.mark.parametrize('inverse', [False, True])
def test_affine_matrix_is_get_affine_transform(inverse):
    rng = np.random.default_rng(0)
    centers = rng.uniform(20, 300, (5, 2))
    scales = rng.uniform(0.2, 3.0, (5, 2))
    got = tasks.affine_matrix(torch.tensor(centers), torch.tensor(scales), (48, 64), inverse=inverse)
    for i in range(5):
        want = official.affine_transform(centers[i], scales[i], (48, 64), inv=inverse)
        np.testing.assert_allclose(got[i].numpy(), want, atol=1e-9)


def test_crop_is_warp_affine_of_the_official_transform():
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 1, (37, 53, 3))
    boxes = [(15.0, 10.0, 15.0, 20.0), (-10.0, 10.0, 40.0, 40.0), (30.0, 20.0, 30.0, 30.0)]  # the second, third cross
    center, scale = tasks.box_to_center_scale(boxes, 24 / 32)
    crops = tasks.crop_boxes(torch.tensor(image).permute(2, 0, 1), center, scale, (24, 32))
    assert crops.shape == (3, 3, 32, 24)
    for i in range(3):
        matrix = official.affine_transform(center[i].numpy(), scale[i].numpy(), (24, 32))
        want = official.warp_affine(image, matrix, (24, 32))
        np.testing.assert_allclose(crops[i].permute(1, 2, 0).numpy(), want, atol=1e-9)
        assert (want == 0).any() == (i > 0)  # the boxes that cross the border get the zero border


def _heatmaps_with_peaks(seed: int, n: int = 3, k: int = 17, h: int = 64, w: int = 48) -> tuple[np.ndarray, list]:
    rng = np.random.default_rng(seed)
    maps = rng.uniform(0, 0.5, (n, k, h, w))
    borders = [(0, 0), (w - 1, h - 1), (1, 10), (w - 2, 30), (20, 1), (25, h - 2), (2, 2), (w - 1, 5)]
    peaks = []
    for i in range(n):
        for j in range(k):
            x, y = borders[(i * k + j) % len(borders)] if j % 2 else (rng.integers(0, w), rng.integers(0, h))
            maps[i, j, y, x] = 1.0 + rng.uniform(0, 1)
            peaks.append((i, j, x, y))
    maps[0, 3] = 0.0  # an all-zero map
    maps[1, 4] = -maps[1, 4]  # no positive value
    return maps, peaks


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_decode_heatmaps_is_get_final_preds(seed):
    maps, peaks = _heatmaps_with_peaks(seed)
    rng = np.random.default_rng(seed + 10)
    centers, scales = rng.uniform(50, 400, (3, 2)), rng.uniform(0.5, 2.5, (3, 2))
    coords, scores = tasks.decode_heatmaps(torch.tensor(maps), torch.tensor(centers), torch.tensor(scales))
    want_coords, want_scores = official.get_final_preds(maps, centers, scales)
    np.testing.assert_allclose(coords.numpy(), want_coords, atol=1e-9)
    np.testing.assert_allclose(scores.numpy(), want_scores, rtol=1e-6)
    assert scores[0, 3, 0] == 0  # the all-zero map scores 0 ...
    origin = official.affine_transform(centers[0], scales[0], (48, 64), inv=True) @ np.array([0.0, 0.0, 1.0])
    np.testing.assert_allclose(coords[0, 3].numpy(), origin, atol=1e-9)  # ... at (0, 0) before the transform
    # the known peaks come back (to the quarter step) in heatmap pixels
    back = tasks.affine_matrix(torch.tensor(centers), torch.tensor(scales), (48, 64))
    in_map = coords @ back[:, :, :2].transpose(1, 2) + back[:, :, 2].unsqueeze(1)
    for i, j, x, y in peaks:
        if (i, j) not in ((0, 3), (1, 4)):
            assert abs(in_map[i, j, 0] - x) <= 0.25 + 1e-9 and abs(in_map[i, j, 1] - y) <= 0.25 + 1e-9


def test_flip_back_is_official_with_shift():
    maps = np.random.default_rng(3).uniform(0, 1, (2, 17, 8, 6))
    pairs = KEYPOINT_SETS[COCO_KEYPOINTS].flip_pairs
    got = tasks.flip_back(torch.tensor(maps), pairs)
    np.testing.assert_array_equal(got.numpy(), official.flip_back_shifted(maps, pairs))
    unshifted = tasks.flip_back(torch.tensor(maps), pairs, shift=False)
    np.testing.assert_array_equal(unshifted[:, 0].numpy(), maps[:, 0, :, ::-1])
    np.testing.assert_array_equal(unshifted[:, 1].numpy(), maps[:, 2, :, ::-1])


def test_sliding_windows_are_the_official_loop():
    for size, crop in [((1200, 2100), (1024, 2048)), ((512, 512), (512, 512)), ((700, 900), (300, 400))]:
        assert tasks.sliding_windows(*size, crop) == official.sliding_windows(*size, crop)


def _gaussian_maps(points: list[tuple[float, float]], h: int = 64, w: int = 48, sigma: float = 2.0) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing='ij')
    return torch.stack([torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)) for x, y in points])[None]


def test_dark_finds_sub_pixel_peaks_the_default_decode_rounds():
    points = [(10.3, 20.7), (30.85, 40.15), (24.5, 31.5), (5.2, 58.6)]
    maps = _gaussian_maps(points)
    center, scale = torch.tensor([[24.0, 32.0]]), torch.tensor([[48 / 200, 64 / 200]])  # image = heatmap pixels
    dark, _ = tasks.decode_dark(maps, center, scale)
    default, _ = tasks.decode_heatmaps(maps, center, scale)
    want = torch.tensor(points, dtype=torch.float64)
    assert (dark[0] - want).abs().max() < 0.05
    assert (default[0] - want).abs().max() > 0.1  # the quarter step cannot land there
    assert (default[0] - want).abs().max() <= 0.5


# -- end to end, pose ----------------------------------------------------------------------------------------------


class DotPose(nn.Module):
    """A fixed 'pose model' reading dots: a Gaussian blur (sigma 8 px) sampled every 4th crop pixel, so heatmap pixel
    i sits on crop pixel 4i, as the official decoding assumes. Joint 0 is the red dot; joints 1 and 2 are the green
    dot on the left and on the right half of the crop, so a flipped crop swaps them as it swaps a person's sides."""

    head = 'v1'
    num_classes = 3
    head_align_corners = False
    pretrained_cfg = dict(mean=MEAN, std=STD, input_size=(3, 256, 192))
    joints = KeypointSet(('nose', 'left_eye', 'right_eye'), flip_pairs=((1, 2),), skeleton=((0, 1), (0, 2)))

    def __init__(self) -> None:
        super().__init__()
        taps = torch.arange(33, dtype=torch.float32) - 16
        self.register_buffer('taps', torch.exp(-(taps**2) / (2 * 8.0**2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)  # it reads 0..1 pixels
        red, green = x[:, 0:1], x[:, 1:2]
        maps = torch.cat([red, green], 1).reshape(-1, 1, *x.shape[-2:])
        maps = F.conv2d(maps, self.taps.view(1, 1, 1, -1), stride=(1, 4), padding=(0, 16))
        maps = F.conv2d(maps, self.taps.view(1, 1, -1, 1), stride=(4, 1), padding=(16, 0)).reshape(len(x), 2, 64, 48)
        left = torch.zeros(48)
        left[:24] = 1
        return torch.stack([maps[:, 0], maps[:, 1] * left, maps[:, 1] * (1 - left)], 1)


def _dots(points: dict[int, tuple[int, int]], size: tuple[int, int] = (240, 320)) -> np.ndarray:
    image = np.zeros((*size, 3), dtype=np.uint8)
    for joint, (x, y) in points.items():
        image[y, x, 0 if joint == 0 else 1] = 255
    return image


# box (60, 40, 120, 160): the 192-px crop width covers 150 px, so these dots sit on heatmap pixels exactly
ON_GRID = {0: (120, 70), 1: (95, 120), 2: (145, 120)}
OFF_GRID = {0: (117, 83), 1: (88, 131), 2: (151, 109)}


@pytest.mark.parametrize('flip', [False, True])
@pytest.mark.parametrize('decode', ['default', 'dark'])
@pytest.mark.parametrize('dots', [ON_GRID, OFF_GRID], ids=['on_grid', 'off_grid'])
def test_pose_finds_the_dots(flip, decode, dots):
    model = DotPose()
    poses = tasks.estimate_pose(model, _dots(dots), [(60, 40, 120, 160)], flip=flip, decode=decode, joints=model.joints)
    got = poses.keypoints[0, :, :2]
    want = torch.tensor([dots[j] for j in range(3)], dtype=torch.float32)
    error = (got - want).norm(dim=1).max().item()
    # a heatmap pixel is 4 crop pixels = 3.125 image pixels here. The default decode lands on a quarter of one
    # (<= 0.39 px per axis from the peak, 0.78 where a symmetric peak's neighbours differ by rounding alone); the
    # flip test's one-pixel shift moves half the average by a crop pixel (0.39 px) more. DARK finds the peak itself.
    limit = {('dark', False): 0.1, ('dark', True): 0.5}.get((decode, flip), 1.3)
    assert error <= limit, (got, want)
    assert (poses.keypoints[0, :, 2] > 0).all()
    assert poses.to_list()[0]['keypoints']['left_eye']['x'] == pytest.approx(float(got[1, 0]))


def test_pose_takes_pil_paths_and_several_boxes(tmp_path):
    image = _dots({0: (120, 70), 1: (95, 120), 2: (145, 120)})
    path = tmp_path / 'dots.png'
    Image.fromarray(image).save(path)
    model = DotPose()
    boxes = [(60, 40, 120, 160), (60, 40, 120, 160)]
    from_path = tasks.estimate_pose(model, path, boxes, joints=model.joints).keypoints
    from_pil = tasks.estimate_pose(model, Image.open(path), boxes, joints=model.joints).keypoints
    assert torch.equal(from_path, from_pil) and torch.equal(from_path[0], from_path[1])
    picture = tasks.draw_pose(Image.open(path), tasks.estimate_pose(model, path, boxes[:1], joints=model.joints))
    assert picture.size == (320, 240) and picture.getpixel((60, 100)) == (0, 255, 0)  # the box's left edge


def test_pose_refuses_bad_boxes_and_other_heads():
    model = DotPose()
    image = _dots(ON_GRID)
    with pytest.raises(ValueError, match='zero area'):
        tasks.estimate_pose(model, image, [(10, 10, 0, 20)], joints=model.joints)
    with pytest.raises(ValueError, match='outside'):
        tasks.estimate_pose(model, image, [(400, 10, 20, 20)], joints=model.joints)
    with pytest.raises(ValueError, match='keypoint-detection'):
        tasks.segment(model, image)
    with pytest.raises(ValueError, match='flip pairs|left-right'):
        tasks.estimate_pose(model, image, [(60, 40, 120, 160)])  # no manifest record names its joints


def test_records_expose_joint_sets_and_palettes():
    coco, mpii = MANIFEST['hrnetv1_w32.coco_256x192'].keypoints, MANIFEST['hrnetv1_w32.mpii_256x256'].keypoints
    assert coco.names == COCO_KEYPOINTS and len(mpii.names) == 16
    for joint_set in (coco, mpii):
        for a, b in joint_set.flip_pairs:  # each pair is a left and a right joint of the same part
            left, right = sorted((joint_set.names[a], joint_set.names[b]))
            assert left.replace('left', '').replace('l_', '') == right.replace('right', '').replace('r_', '')
        assert all(0 <= j < len(joint_set.names) for limb in joint_set.skeleton for j in limb)
    assert len(MANIFEST['hrnetv2_w48.cityscapes'].palette) == 19 and len(MANIFEST['hrnetv2_w48.lip'].palette) == 20
    assert MANIFEST['hrnetv2_w48.cityscapes'].palette[0] == (128, 64, 128)  # road


# -- end to end, segmentation ------------------------------------------------------------------------------------


class ColourSeg(nn.Module):
    """A fixed 'segmentation model': logits at 1/4 (average pooling) saying red -> class 1, green -> class 2,
    anything dark -> class 0."""

    head = 'v2'
    num_classes = 3
    head_align_corners = False
    pretrained_cfg = dict(mean=MEAN, std=STD, input_size=(3, 64, 64), label_names=('dark', 'red', 'green'))

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(x.shape))
        x = x * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
        x = F.avg_pool2d(x, 4, ceil_mode=True)
        return 10 * torch.cat([torch.full_like(x[:, :1], 0.5), x[:, :1], x[:, 1:2]], 1)


def _regions(height: int = 96, width: int = 160) -> tuple[np.ndarray, torch.Tensor]:
    labels = torch.zeros(height, width, dtype=torch.long)
    labels[8:56, 16:72] = 1
    labels[40:88, 96:152] = 2
    labels[60:90, 4:40] = 1
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[..., 0] = (labels == 1).numpy() * 255
    image[..., 1] = (labels == 2).numpy() * 255
    return image, labels


def _interior(labels: torch.Tensor, margin: int) -> torch.Tensor:
    """Pixels at least ``margin`` away from a region border (there the 1/4-resolution logits blur)."""
    padded = F.pad(labels[None, None].float(), (margin,) * 4, mode='replicate')
    same = F.max_pool2d(padded, 2 * margin + 1, 1) == F.max_pool2d(-padded, 2 * margin + 1, 1).neg()
    return same[0, 0]


@pytest.mark.parametrize(
    'scales, flip, crop_size',
    [((1.0,), False, None), ((1.0,), True, None), ((0.5, 1.0, 1.5), True, None), ((1.0,), False, (64, 64)),
     ((0.75, 1.25), True, (48, 80)), ((0.5,), False, (64, 96))],
)  # fmt: skip
def test_segment_reads_the_regions_at_full_size(scales, flip, crop_size):
    image, labels = _regions()
    model = ColourSeg()
    result = tasks.segment(model, image, scales=scales, flip=flip, crop_size=crop_size)
    assert result.class_ids.shape == (1, 96, 160) and result.probabilities.shape == (1, 3, 96, 160)
    assert torch.allclose(result.probabilities.sum(1), torch.ones(1, 96, 160))
    inside = _interior(labels, 6)
    assert inside.float().mean() > 0.5
    assert torch.equal(result.class_ids[0][inside], labels[inside])
    assert (result.class_ids[0] == labels).float().mean() > 0.95
    assert result.label_names == ('dark', 'red', 'green')
    areas = {a['name']: a['pixels'] for a in result.class_areas()}
    assert sum(areas.values()) == 96 * 160 and set(areas) == {'dark', 'red', 'green'}
    if crop_size is not None:  # windows of the crop size, padded at the border, twice with flip (one batch)
        assert {c[-2:] for c in model.calls} == {crop_size} and all(c[0] == (2 if flip else 1) for c in model.calls)


def test_segment_single_scale_is_the_softmax_of_the_upsampled_logits():
    image, _ = _regions()
    model = ColourSeg()
    result = tasks.segment(model, image)
    x = (torch.tensor(image).permute(2, 0, 1).float() / 255 - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(
        STD
    ).view(3, 1, 1)
    logits = F.interpolate(model(x[None]), size=(96, 160), mode='bilinear', align_corners=False)
    assert torch.allclose(result.probabilities, logits.softmax(1), atol=1e-6)


class RandomSeg(nn.Module):
    """A fixed random 3x3 conv + average pooling to 1/4: logits that depend on every pixel, for parity."""

    head = 'v2'
    num_classes = 5
    pretrained_cfg = dict(mean=MEAN, std=STD, input_size=(3, 64, 64))

    def __init__(self, align_corners: bool) -> None:
        super().__init__()
        self.head_align_corners = align_corners
        self.conv = nn.Conv2d(3, 5, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(5, 3, 3, 3, generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(x), 4, ceil_mode=True)


@pytest.mark.parametrize(
    'scales, flip, crop_size, align_corners',
    [((1.0,), False, (60, 90), False), ((0.5, 1.0, 1.75), True, (60, 90), True), ((0.75, 1.25), False, (40, 64), False),
     ((0.5,), True, (100, 100), False)],
)  # fmt: skip
def test_segment_is_the_official_multi_scale_inference(scales, flip, crop_size, align_corners):
    image = np.random.default_rng(5).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    model = RandomSeg(align_corners).eval()
    result = tasks.segment(model, image, scales=scales, flip=flip, crop_size=crop_size)
    x = (torch.tensor(image).permute(2, 0, 1).float() / 255 - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(
        STD
    ).view(3, 1, 1)
    with torch.no_grad():
        want = official.seg_multi_scale_inference(model, x[None], scales, flip, crop_size, MEAN, STD, align_corners, 90)
    assert torch.allclose(result.probabilities, want / want.sum(1, keepdim=True), atol=1e-5)
    agree = (result.class_ids == want.argmax(1)).float().mean()
    assert agree > 0.999  # ties aside, the same classes


@pytest.mark.parametrize('flip', [False, True])
@pytest.mark.parametrize('align_corners', [False, True])
def test_segment_of_the_whole_image_is_the_official_inference(flip, align_corners):
    # one scale, no window: the ids come from the low-resolution logits and the flip is averaged before the
    # upsampling; the official code upsamples both passes, averages, then takes exp (one window = the image)
    image = np.random.default_rng(6).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    model = RandomSeg(align_corners).eval()
    result = tasks.segment(model, image, flip=flip)
    x = (torch.tensor(image).permute(2, 0, 1).float() / 255 - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(
        STD
    ).view(3, 1, 1)
    with torch.no_grad():
        want = official.seg_multi_scale_inference(model, x[None], (1.0,), flip, (60, 90), MEAN, STD, align_corners, 90)
    assert torch.equal(result.class_ids, want.argmax(1))
    assert torch.allclose(result.probabilities, want / want.sum(1, keepdim=True), atol=1e-6)


def test_segment_probabilities_stay_finite_where_exp_overflows():
    # an untrained model's logits reach the hundreds: exp overflows to inf (and inf / inf is nan); the softmax
    # of the single-scale path does not, and its classes are the argmax of the logits
    image = np.random.default_rng(8).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    model = RandomSeg(False).eval()
    with torch.no_grad():
        model.conv.weight.mul_(100.0)
    result = tasks.segment(model, image)
    x = normalize_like_the_model(image)
    with torch.no_grad():
        logits = F.interpolate(model(x[None]), size=(32, 48), mode='bilinear', align_corners=False)
    assert logits.abs().max() > 100  # exp of this overflows float32
    assert torch.isfinite(result.probabilities).all()
    assert torch.equal(result.class_ids, logits.argmax(1))
    assert torch.allclose(result.probabilities, logits.softmax(1), atol=1e-6)


def normalize_like_the_model(image: np.ndarray) -> torch.Tensor:
    return (torch.tensor(image).permute(2, 0, 1).float() / 255 - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(
        STD
    ).view(3, 1, 1)


def test_segment_batches_and_refuses_mixed_sizes():
    image, labels = _regions()
    model = ColourSeg()
    batch = tasks.segment(model, [image, image[:, ::-1].copy()])
    assert batch.class_ids.shape == (2, 96, 160)
    assert torch.equal(batch.class_ids[1], batch.class_ids[0].flip(-1))
    with pytest.raises(ValueError, match='different sizes'):
        tasks.segment(model, [image, image[:64]])
    picture = tasks.draw_segmentation(tasks.to_pil(tasks.load_image(image)), batch.class_ids[0], alpha=1.0)
    palette = tasks.generated_palette(3)
    assert picture.getpixel((40, 30)) == palette[1] and picture.getpixel((120, 60)) == palette[2]
    assert len(set(tasks.generated_palette(256))) == 256


class LipArms(nn.Module):
    """Named as the LIP tag: red on the image's left half is class 14 (left_arm), on the right half 15 (right_arm),
    the rest background; mirrored, a left arm shows on the right, as a person's does."""

    head = 'v2'
    num_classes = 20
    head_align_corners = False
    pretrained_cfg = dict(mean=MEAN, std=STD, input_size=(3, 64, 64), architecture='hrnetv2_w48', tag='lip')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        red = F.avg_pool2d(x[:, :1] * STD[0] + MEAN[0], 4)
        left = (torch.arange(red.shape[-1]) < red.shape[-1] // 2).float()
        logits = torch.full((len(x), 20, *red.shape[-2:]), -10.0)
        logits[:, 0] = 5.0
        logits[:, 14], logits[:, 15] = 10 * red[:, 0] * left, 10 * red[:, 0] * (1 - left)
        return logits


def test_flip_swaps_the_left_and_right_classes_of_lip():
    image = np.zeros((64, 128, 3), dtype=np.uint8)
    image[16:48, 8:40, 0] = image[16:48, 88:120, 0] = 255
    result = tasks.segment(LipArms(), image, flip=True)
    assert result.label_names[14:16] == ('left_arm', 'right_arm')
    assert result.class_ids[0, 32, 24] == 14 and result.class_ids[0, 32, 104] == 15
    # without the swap the flipped pass would vote for the other arm and the two would tie
    assert result.probabilities[0, 14, 32, 24] > 0.9


# -- the CLI -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """A folder ``hrnet-zoo convert`` wrote for hrnetv2_w18_small_v1.cityscapes (random weights)."""
    tmp = tmp_path_factory.mktemp('predict')
    _official_checkpoint('hrnetv2_w18_small_v1.cityscapes', tmp / 'official.pth')
    return convert_checkpoint(tmp / 'official.pth', 'hrnetv2_w18_small_v1.cityscapes', tmp / 'converted')


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / 'street.png'
    Image.fromarray(_regions(64, 96)[0]).save(path)
    return path


def test_predict_segmentation_writes_the_picture_and_json(converted, photo, tmp_path, capsys):
    out, answer = tmp_path / 'out.png', tmp_path / 'out.json'
    argv = ['predict', str(photo), '--model', 'hrnetv2_w18_small_v1.cityscapes', '--weights', str(converted)]
    assert (
        cli(
            [
                *argv,
                '--flip',
                '--scales',
                '0.5',
                '1',
                '--crop-size',
                '48',
                '64',
                '--out',
                str(out),
                '--json',
                str(answer),
            ]
        )
        == 0
    )
    assert Image.open(out).size == (96, 64)
    data = json.loads(answer.read_text())
    assert data['task'] == 'image-segmentation' and data['images'][0]['image'] == str(photo)
    classes = data['images'][0]['classes']
    assert sum(c['pixels'] for c in classes) == 64 * 96
    assert {c['name'] for c in classes} <= set(MANIFEST['hrnetv2_w18_small_v1.cityscapes'].label_names)
    # the model.safetensors itself works too
    assert cli([*argv[:-1], str(converted / 'model.safetensors'), '--out', str(out)]) == 0
    # beside the drawing, the class ids as a label PNG (one 8-bit pixel per pixel, Cityscapes has 19 classes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out.json', 'out.png', 'out_labels.png', 'street.png']
    assert data['images'][0]['labels'] == 'out_labels.png' and Image.open(tmp_path / 'out_labels.png').mode == 'L'


def _refused(argv: list[str], tmp_path, capsys, match: str) -> None:
    before = set(tmp_path.iterdir())
    assert cli(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err and 'Traceback' not in err
    assert set(tmp_path.iterdir()) == before  # nothing written, no temporary left behind


def test_predict_refuses_bad_input_in_one_line(converted, photo, tmp_path, capsys):
    seg = ['--model', 'hrnetv2_w18_small_v1.cityscapes', '--weights', str(converted)]
    out = ['--out', str(tmp_path / 'out.png'), '--json', str(tmp_path / 'out.json')]
    _refused(['predict', str(tmp_path / 'missing.png'), *seg, *out], tmp_path, capsys, 'No such image')
    text = tmp_path / 'notes.png'
    text.write_text('not an image')
    _refused(['predict', str(text), *seg, *out], tmp_path, capsys, 'is not an image')
    truncated = tmp_path / 'truncated.png'
    truncated.write_bytes(photo.read_bytes()[:60])
    _refused(['predict', str(truncated), *seg, *out], tmp_path, capsys, 'is not an image')
    pose = ['--model', 'hrnetv1_w18_small_v1.in1k']  # refused before its weights would be fetched
    _refused(['predict', str(photo), *pose, '--boxes', '400,10,20,20', *out], tmp_path, capsys, 'outside')
    _refused(['predict', str(photo), *pose, '--boxes', '10,10,0,20', *out], tmp_path, capsys, 'zero area')
    _refused(['predict', str(photo), '--model', 'hrnetv2p_w18.coco', *out], tmp_path, capsys, 'object-detection')
    _refused(['predict', str(photo), *seg, '--boxes', '1,1,5,5', *out], tmp_path, capsys, '--boxes')
    wrong = tmp_path / 'w32.safetensors'
    _refused(['predict', str(photo), *seg[:3], str(wrong), *out], tmp_path, capsys, 'No weights file')


def test_predict_refuses_an_unreadable_image(photo, tmp_path, capsys, monkeypatch):
    """A file the process may not read (as root every mode reads, so the open is made to refuse, as the OS would)."""

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, 'Permission denied', str(path))

    monkeypatch.setattr(inputs.Image, 'open', refuse)
    out = ['--out', str(tmp_path / 'o.png')]
    _refused(['predict', str(photo), '--model', 'hrnetv2_w18_small_v1.cityscapes', *out], tmp_path, capsys,
             'Permission denied')  # fmt: skip


def test_predict_pose_writes_keypoints_by_name(tmp_path, capsys):
    _official_checkpoint('hrnetv1_w32.coco_256x192', tmp_path / 'pose.pth')
    folder = convert_checkpoint(tmp_path / 'pose.pth', 'hrnetv1_w32.coco_256x192', tmp_path / 'converted')
    photo = tmp_path / 'people.png'
    Image.fromarray(_dots(ON_GRID)).save(photo)
    out, answer = tmp_path / 'pose.png', tmp_path / 'pose.json'
    argv = ['predict', str(photo), '--model', 'hrnetv1_w32.coco_256x192', '--weights', str(folder), '--flip']
    assert cli([*argv, '--boxes', '60,40,120,160', '10,10,50,80', '--out', str(out), '--json', str(answer)]) == 0
    data = json.loads(answer.read_text())  # COCO results, with the joint names in the category
    people = data['annotations']
    assert data['categories'][0]['keypoints'] == list(COCO_KEYPOINTS)
    assert [p['bbox'] for p in people] == [[60, 40, 120, 160], [10, 10, 50, 80]]
    assert all(p['image_id'] == data['images'][0]['id'] and len(p['keypoints']) == 3 * 17 for p in people)
    for person in people:  # random weights: somewhere in (or near) the crop of its box, in image pixels
        x, y, w, h = person['bbox']
        for px, py in zip(person['keypoints'][0::3], person['keypoints'][1::3]):
            assert x - w <= px <= x + 2 * w and y - h <= py <= y + 2 * h
    assert Image.open(out).size == (320, 240)


def test_write_atomically_gives_the_file_a_normal_mode(tmp_path):
    umask = os.umask(0o022)
    try:
        write_atomically(tmp_path / 'out.json', lambda tmp: tmp.write_text('{}'))
    finally:
        os.umask(umask)
    assert (tmp_path / 'out.json').stat().st_mode & 0o777 == 0o644  # not mkstemp's owner-only 0o600
    assert [p.name for p in tmp_path.iterdir()] == ['out.json']
