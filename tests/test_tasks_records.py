"""hrnet_zoo.tasks following a model's manifest record: mmpose's UDP crop, decoding and unshifted flip test written
out by hand, DARK by default for DARK tags, and faces, hands, whole-body and animal tags through estimate_pose,
predict_image and draw_pose (small random models: the shapes and names are under test, not the answers)."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from torch import nn

from hrnet_zoo import tasks
from hrnet_zoo.tasks.predict import check_task, predict_image
from hrnet_zoo.weights.manifest import MANIFEST

pytestmark = pytest.mark.usefixtures('one_thread')

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)
UDP_TAG = 'hrnetv1_w32.mmpose_coco_256x192_udp'
HEAT_W, HEAT_H = 48, 64  # the heatmaps of a 192 x 256 crop


class HeatmapStub(nn.Module):
    """A 'pose model' of a manifest tag whose output is fixed: ``maps`` for the plain crops and ``flipped`` (if
    given) for the flipped ones of the flip test; it keeps the crops it was given in ``seen``."""

    head = 'v1'

    def __init__(self, name: str, maps: torch.Tensor, flipped: torch.Tensor | None = None) -> None:
        super().__init__()
        arch, tag = name.split('.', 1)
        self.num_classes = maps.shape[1]
        self.pretrained_cfg = dict(architecture=arch, tag=tag, mean=MEAN, std=STD, input_size=(3, 256, 192))
        self.maps, self.flipped, self.seen = maps, flipped, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x
        n = len(self.maps)
        if len(x) == n:
            return self.maps.float()
        return torch.cat([self.maps, self.flipped]).float()


def _gaussians(points: list[tuple[float, float]], sigma: float = 2.0) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(HEAT_H, dtype=torch.float64), torch.arange(HEAT_W, dtype=torch.float64),
                            indexing='ij')  # fmt: skip
    return torch.stack([torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)) for x, y in points])[None]


def _mmpose_center_scale(box: tuple[float, float, float, float], aspect: float) -> tuple[np.ndarray, np.ndarray]:
    """``bbox_xywh2xyxy`` + ``bbox_xyxy2cs(padding=1.25)`` + ``TopdownAffine._fix_aspect_ratio``, in pixels."""
    x, y, w, h = box
    center = np.array([x + w / 2, y + h / 2])
    sw, sh = w * 1.25, h * 1.25
    sw, sh = (sw, sw / aspect) if sw > sh * aspect else (sh * aspect, sh)
    return center, np.array([sw, sh])


def _udp_image_point(heat: tuple[float, float], center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """A heatmap point in image pixels by mmpose's UDP equations: ``UDPHeatmap.decode`` gives ``heat / (W - 1, H -
    1) * input_size`` in the crop, and ``add_pred_to_datasample`` ``crop / input_size * scale + center - scale / 2``."""
    crop = np.array(heat) / np.array([HEAT_W - 1, HEAT_H - 1]) * np.array([192, 256])
    return crop / np.array([192, 256]) * scale + center - 0.5 * scale


SUB_PIXEL = [(10.3, 20.7), (30.85, 40.15), (24.5, 31.5), (5.2, 50.6), (40.4, 12.25)]
BOXES = [(60.0, 40.0, 120.0, 160.0), (35.5, 20.25, 200.0, 90.0)]  # tall (height padded) and wide (width padded)


@pytest.mark.parametrize('box', BOXES)
def test_udp_record_decodes_as_the_mmpose_equations(box):
    points = SUB_PIXEL * 4  # 20 of COCO's 17 joints are cut to 17
    model = HeatmapStub(UDP_TAG, _gaussians(points[:17]))
    assert MANIFEST[UDP_TAG].decoding == 'udp' and not MANIFEST[UDP_TAG].shift_heatmap
    poses = tasks.estimate_pose(model, torch.rand(3, 240, 320), [box], flip=False)
    center, scale = _mmpose_center_scale(box, 192 / 256)
    want = np.stack([_udp_image_point(p, center, scale) for p in points[:17]])
    np.testing.assert_allclose(poses.keypoints[0, :, :2].numpy(), want, atol=0.02)
    np.testing.assert_allclose(poses.keypoints[0, :, 2].numpy(), model.maps[0].amax((-2, -1)).numpy(), rtol=1e-6)
    assert list(poses.to_list()[0]['keypoints']) == list(MANIFEST[UDP_TAG].keypoints.names)
    # the explicit argument overrides the record: the official crop and decoding put the points elsewhere
    official = tasks.estimate_pose(model, torch.rand(3, 240, 320), [box], flip=False, decode='default')
    assert (official.keypoints[0, :, :2].double() - torch.tensor(want)).abs().max() > 0.1


def test_udp_crop_is_get_udp_warp_matrix():
    """Crop pixel ``(u, v)`` samples the image at ``center - scale / 2 + (u, v) * scale / (size - 1)``: a ramp image
    (x and y in two channels) shows where each crop pixel was read."""
    height, width = 240, 320
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                            indexing='ij')  # fmt: skip
    ramp = torch.stack([xs / width, ys / height, torch.zeros_like(xs)])
    box = (100.0, 60.0, 100.0, 110.0)  # padded, the crop stays inside the image
    model = HeatmapStub(UDP_TAG, _gaussians(SUB_PIXEL * 4)[:, :17])
    tasks.estimate_pose(model, ramp, [box], flip=False)
    crop = model.seen[0].double() * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)
    center, scale = _mmpose_center_scale(box, 192 / 256)
    u = center[0] - scale[0] / 2 + np.arange(192) * scale[0] / 191
    v = center[1] - scale[1] / 2 + np.arange(256) * scale[1] / 255
    np.testing.assert_allclose(crop[0].numpy() * width, np.broadcast_to(u, (256, 192)), atol=1e-3)
    np.testing.assert_allclose(crop[1].numpy() * height, np.broadcast_to(v[:, None], (256, 192)), atol=1e-3)


def test_udp_flip_test_mirrors_without_the_shift():
    """The flipped crop's heatmaps, mirrored by hand (column x to W - 1 - x, left and right joints swapped), are
    exactly the plain ones, so the average decodes where the plain maps alone do; a one-pixel shift would not."""
    joints = MANIFEST[UDP_TAG].keypoints
    points = (SUB_PIXEL * 4)[:17]
    swap = list(range(17))
    for left, right in joints.flip_pairs:
        swap[left], swap[right] = right, left
    mirrored = [None] * 17
    for j, (x, y) in enumerate(points):
        mirrored[swap[j]] = (HEAT_W - 1 - x, y)
    model = HeatmapStub(UDP_TAG, _gaussians(points), _gaussians(mirrored))
    box = BOXES[0]
    flipped = tasks.estimate_pose(model, torch.rand(3, 240, 320), [box], flip=True)
    assert torch.equal(model.seen[1], model.seen[0].flip(-1))  # the second crop is the first mirrored
    center, scale = _mmpose_center_scale(box, 192 / 256)
    want = np.stack([_udp_image_point(p, center, scale) for p in points])
    np.testing.assert_allclose(flipped.keypoints[0, :, :2].numpy(), want, atol=0.02)
    # the same model tested as a 'standard' one shifts the mirrored maps, which then miss the plain ones
    shifted = tasks.flip_back(_gaussians(mirrored), joints.flip_pairs, shift=True)
    assert (shifted - _gaussians(points)).abs().max() > 0.1


def test_dark_record_decodes_with_dark_by_default():
    name = 'hrnetv1_w32.mmpose_coco_256x192_dark'
    assert MANIFEST[name].decoding == 'dark'
    model = HeatmapStub(name, _gaussians((SUB_PIXEL * 4)[:17]))
    image, box = torch.rand(3, 240, 320), [BOXES[0]]
    default = tasks.estimate_pose(model, image, box, flip=False).keypoints
    assert torch.equal(default, tasks.estimate_pose(model, image, box, flip=False, decode='dark').keypoints)
    assert not torch.equal(default, tasks.estimate_pose(model, image, box, flip=False, decode='default').keypoints)


def _small(name: str, size: tuple[int, int]) -> nn.Module:
    """The tag's model, random weights, at a small crop (the record still names its joints and decoding)."""
    torch.manual_seed(0)
    return timm.create_model(name, pretrained_cfg_overlay=dict(input_size=(3, *size))).eval()


@pytest.mark.parametrize(
    ('name', 'size', 'count'),
    [
        ('hrnetv2_w18.mmpose_wflw_256x256', (64, 64), 98),  # a face: HRNetV2's head, no skeleton
        ('hrnetv2_w18.mmpose_onehand10k_256x256_udp', (64, 64), 21),  # a hand, UDP
        ('hrnetv1_w32.mmpose_coco_wholebody_256x192', (64, 48), 133),
        ('hrnetv1_w32.mmpose_ap10k_256x256', (64, 64), 17),  # an animal
    ],
)
def test_face_hand_wholebody_and_animal_tags_predict_their_points(name, size, count):
    record = MANIFEST[name]
    assert record.decoder == 'topdown_heatmaps' and check_task(name) == 'keypoint-detection'
    model = _small(name, size)
    image = (np.random.default_rng(0).uniform(0, 255, (90, 120, 3))).astype(np.uint8)
    poses = tasks.estimate_pose(model, image, [(20.0, 10.0, 60.0, 70.0)])  # the flip test, with the record's pairs
    assert poses.keypoints.shape == (1, count, 3) and torch.isfinite(poses.keypoints).all()
    assert poses.joints == record.keypoints
    picture, entry = predict_image(model, image)  # no boxes: the whole image
    people = entry['people']
    assert len(people) == 1 and people[0]['box'] == [0.0, 0.0, 120.0, 90.0]
    assert list(people[0]['keypoints']) == list(record.keypoints.names) and len(people[0]['keypoints']) == count
    assert picture.size == (120, 90)
    # every point drawn, even of a set without a skeleton
    drawn = tasks.draw_pose(Image.fromarray(image), poses, min_score=-np.inf)
    assert drawn.size == (120, 90) and drawn.getpixel((20, 40)) == (0, 255, 0)  # the box's left edge


def test_segment_refuses_a_face_model_naming_what_it_needs():
    model = _small('hrnetv2_w18.mmpose_wflw_256x256', (64, 64))
    assert model.head == 'v2'  # the segmentation models' head, but keypoint heatmaps
    with pytest.raises(ValueError, match='segment needs a image-segmentation model') as error:
        tasks.segment(model, torch.rand(3, 64, 64))
    assert 'hrnetv2_w18.mmpose_wflw_256x256 does keypoint-detection' in str(error.value)
    assert '\n' not in str(error.value)
