"""Person boxes for top-down pose: estimate_pose without boxes (a detector for people, the whole image for faces),
the official person score, and PersonDetector (torchvision's detector, its weights fetched through the loopback
mirror and hash-checked; its boxes filtered, sorted and turned into x, y, w, h). Tiny random models throughout."""

from __future__ import annotations

import hashlib
import io
import json
import re
from urllib.parse import urlsplit

import pytest
import timm
import torch
from file_server import FileServer
from helpers import coco_body_model
from PIL import Image
from safetensors.torch import save_file
from torch import nn
from torchvision.models import get_model_weights

from hrnet_zoo import MANIFEST
from hrnet_zoo.cli import main as cli
from hrnet_zoo.data.keypoints import KEYPOINTS, PERSON_SETS
from hrnet_zoo.tasks import pose as pose_module
from hrnet_zoo.tasks import stream as stream_module
from hrnet_zoo.tasks.detect import DEFAULT_DETECTOR, PersonDetector
from hrnet_zoo.tasks.pose import Poses, estimate_pose
from hrnet_zoo.weights.sources import MIRROR_ENV, DirectDownloadError

pytestmark = pytest.mark.usefixtures('one_thread')

HEIGHT, WIDTH = 80, 96
BOXES = torch.tensor([[4.0, 6.0, 30.0, 50.0], [50.0, 8.0, 40.0, 60.0]], dtype=torch.float64)
BOX_SCORES = torch.tensor([0.9, 0.6])


@pytest.fixture(scope='module')
def body_model():
    return coco_body_model()


@pytest.fixture(scope='module')
def face_model():
    """The WFLW face tag's model (98 landmarks, not a person set), random weights, 64x64 crops."""
    model = timm.create_model('hrnetv2_w18.mmpose_wflw_256x256').eval()
    model.pretrained_cfg = dict(model.pretrained_cfg, input_size=(3, 64, 64))
    return model


def image():
    return torch.rand(3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(0))


def official_person_score(keypoints, box_score, threshold=0.2):
    """lib/dataset/coco.py ``evaluate``, written out: the mean of the keypoint scores above the threshold (0 if
    none is), times the box score."""
    kept = [score for _, _, score in keypoints if score > threshold]
    return (sum(kept) / len(kept) if kept else 0.0) * box_score


class Calls:
    """A detector that answers ``boxes, scores`` and counts its calls."""

    def __init__(self, boxes=BOXES, scores=BOX_SCORES):
        self.boxes, self.scores, self.calls = boxes, scores, 0

    def __call__(self, pixels):
        assert pixels.shape == (3, HEIGHT, WIDTH)
        self.calls += 1
        return self.boxes.clone(), self.scores.clone()


def refuse_default_detector(monkeypatch):
    def refuse():
        raise AssertionError('the default detector was asked for')

    monkeypatch.setattr(pose_module, 'default_detector', refuse)


# -- estimate_pose without boxes -----------------------------------------------------------------------------------


def test_the_detectors_boxes_are_the_ones_posed(body_model):
    detector = Calls()
    found = estimate_pose(body_model, image(), detector=detector, flip=True)
    given = estimate_pose(body_model, image(), BOXES, flip=True)
    assert detector.calls == 1
    torch.testing.assert_close(found.boxes, BOXES)
    torch.testing.assert_close(found.keypoints, given.keypoints)
    # the box scores carry into the person scores; given boxes count as 1
    expected = [official_person_score(p, s) for p, s in zip(found.keypoints.tolist(), BOX_SCORES.tolist())]
    torch.testing.assert_close(found.scores, torch.tensor(expected), rtol=1e-6, atol=1e-7)
    expected = [official_person_score(p, 1.0) for p in given.keypoints.tolist()]
    torch.testing.assert_close(given.scores, torch.tensor(expected), rtol=1e-6, atol=1e-7)


def test_a_person_model_asks_the_default_detector(body_model, monkeypatch):
    detector = Calls()
    monkeypatch.setattr(pose_module, 'default_detector', lambda: detector)
    poses = estimate_pose(body_model, image(), flip=False)
    assert detector.calls == 1 and len(poses) == 2
    torch.testing.assert_close(poses.boxes, BOXES)


def test_nobody_found_is_an_empty_answer_without_a_forward(body_model, monkeypatch):
    def no_forward(*args):
        raise AssertionError('the model ran with no box to crop')

    monkeypatch.setattr(body_model, 'forward', no_forward)
    nobody = Calls(torch.zeros(0, 4, dtype=torch.float64), torch.zeros(0))
    poses = estimate_pose(body_model, image(), detector=nobody)
    assert nobody.calls == 1
    assert poses.keypoints.shape == (0, 17, 3) and poses.boxes.shape == (0, 4) and poses.scores.shape == (0,)
    assert poses.to_list() == []


def test_a_face_model_takes_the_whole_image_without_a_detector(face_model, monkeypatch):
    refuse_default_detector(monkeypatch)
    poses = estimate_pose(face_model, image(), flip=False)
    assert poses.boxes.tolist() == [[0.0, 0.0, WIDTH, HEIGHT]]
    assert poses.keypoints.shape == (1, 98, 3)
    whole = estimate_pose(face_model, image(), [0, 0, WIDTH, HEIGHT], flip=False)
    torch.testing.assert_close(poses.keypoints, whole.keypoints)


def test_box_scores_must_match_the_boxes(body_model):
    with pytest.raises(ValueError, match='3 box scores for 2 boxes'):
        estimate_pose(body_model, image(), BOXES, box_scores=[0.5, 0.5, 0.5])


def test_person_sets_are_known_sets_and_leave_out_faces_hands_and_animals():
    assert PERSON_SETS <= set(KEYPOINTS)
    people = {r.dataset for r in MANIFEST.values() if r.task == 'keypoint-detection' and r.dataset in PERSON_SETS}
    assert people == {'aic', 'coco', 'coco_wholebody', 'crowdpose', 'exlpose', 'h36m', 'halpe', 'humanart', 'mpii',
                      'posetrack18'}  # fmt: skip
    # the macaque tags share COCO's joints, but no person detector finds a monkey
    assert 'macaque' in {r.dataset for r in MANIFEST.values()} and 'macaque' not in PERSON_SETS


def test_to_list_names_each_joint_and_carries_the_person_score():
    keypoints = torch.tensor([[[1.0, 2.0, 0.9], [3.0, 4.0, 0.1]]])
    joints = KEYPOINTS['coco']
    joints = type(joints)(joints.names[:2], (), ())
    poses = Poses(keypoints, torch.tensor([[0.0, 0.0, 5.0, 6.0]]), joints, torch.tensor([0.45]))
    (person,) = poses.to_list()
    assert person['box'] == [0.0, 0.0, 5.0, 6.0]
    assert person['score'] == pytest.approx(0.45)
    assert person['keypoints'][joints.names[1]] == dict(x=3.0, y=4.0, score=pytest.approx(0.1))
    # no scores given: box score 1, mean of the keypoint scores above 0.2
    assert Poses(keypoints, poses.boxes, joints).scores.tolist() == pytest.approx([0.9])


def test_one_command_finds_the_people_of_a_photo(tmp_path, monkeypatch, capsys):
    """``hrnet-zoo predict photo --model <person tag>`` with no --boxes: the default detector's people, posed."""
    detector = Calls()
    monkeypatch.setattr(stream_module, 'default_detector', lambda: detector)
    model = timm.create_model('hrnetv1_w32')
    weights = tmp_path / 'random.safetensors'
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, weights)
    photo = tmp_path / 'people.jpg'
    Image.new('RGB', (WIDTH, HEIGHT), 'gray').save(photo)
    out = tmp_path / 'out'
    # the COCO body tag (a person dataset), random weights
    argv = ['predict', str(photo), '--model', 'hrnetv1_w32.coco_256x192', '--weights', str(weights),
            '--out', str(out)]  # fmt: skip
    assert cli(argv) == 0
    assert detector.calls == 1
    data = json.loads((out / 'keypoints.json').read_text())
    assert [a['bbox'] for a in data['annotations']] == BOXES.tolist()
    assert sorted(p.name for p in out.iterdir()) == ['keypoints.json', 'people.png']
    assert re.search(r'^1 frames?, 2 people', capsys.readouterr().out, re.MULTILINE)


# -- PersonDetector ------------------------------------------------------------------------------------------------


class FixedDetections(nn.Module):
    """Stands in for torchvision's detector: the same detections (x1, y1, x2, y2) whatever the image."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # the device PersonDetector reads
        self.images = []

    def forward(self, images):
        self.images.append(images)
        boxes = [[10.0, 20.0, 40.0, 80.0], [0.0, 0.0, 90.0, 70.0], [5.0, 5.0, 25.0, 45.0], [1.0, 1.0, 2.0, 2.0],
                 [30.0, 10.0, 50.0, 60.0]]  # fmt: skip
        scores = [0.6, 0.99, 0.95, 0.3, 0.6]
        return [dict(boxes=torch.tensor(boxes), labels=torch.tensor([1, 3, 1, 1, 1]), scores=torch.tensor(scores))]


@pytest.fixture(scope='module')
def random_detector():
    return PersonDetector(pretrained=False, min_size=96, max_size=128)


def test_people_only_above_the_threshold_best_first_as_xywh(random_detector):
    detector = random_detector
    detector.model, before = FixedDetections(), detector.model
    try:
        boxes, scores = detector(image())
        assert scores.tolist() == pytest.approx([0.95, 0.6, 0.6])  # the car (label 3) and the 0.3 box are gone
        assert boxes.dtype == torch.float64
        assert boxes.tolist() == [[5.0, 5.0, 20.0, 40.0], [10.0, 20.0, 30.0, 60.0], [30.0, 10.0, 20.0, 50.0]]
        detector.max_people = 1
        boxes, scores = detector(image())
        assert boxes.tolist() == [[5.0, 5.0, 20.0, 40.0]] and scores.tolist() == pytest.approx([0.95])
        (images,) = detector.model.images[:1]
        assert len(images) == 1 and images[0].shape == (3, HEIGHT, WIDTH)  # one image, as given (0..1)
    finally:
        detector.model, detector.max_people = before, 20


def test_a_random_detector_runs_and_answers_in_its_format(random_detector):
    detector = PersonDetector(pretrained=False, min_size=96, max_size=128, score_threshold=0.0, max_people=3)
    detector.model = random_detector.model  # the same random network, this detector's filtering
    boxes, scores = detector(image())
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) == len(scores) <= 3
    assert (boxes[:, 2:] >= 0).all() and scores.dtype == torch.float32
    assert scores.tolist() == sorted(scores.tolist(), reverse=True)


def test_bad_requests_name_what_was_expected():
    with pytest.raises(ValueError, match="unknown detector 'yolo'.*fasterrcnn_mobilenet_v3_large_fpn"):
        PersonDetector('yolo', pretrained=False)
    with pytest.raises(ValueError, match='score_threshold must be in 0..1'):
        PersonDetector(score_threshold=1.5, pretrained=False)
    with pytest.raises(ValueError, match='max_people must be at least 1'):
        PersonDetector(max_people=0, pretrained=False)
    detector = PersonDetector.__new__(PersonDetector)
    with pytest.raises(ValueError, match=r'one RGB image \[3, H, W\]'):
        detector(torch.rand(1, 3, 8, 8))


@pytest.fixture
def served_weights(random_detector, tmp_path, monkeypatch):
    """torchvision's COCO weights file of the default detector, faked (random tensors), at its URL's path on a
    loopback server that HRNET_ZOO_MIRROR points to; torch.hub's cache in tmp_path."""
    state = {
        k: torch.randn_like(v) if v.is_floating_point() else v for k, v in random_detector.model.state_dict().items()
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    url = get_model_weights(DEFAULT_DETECTOR).DEFAULT.url
    before = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / 'hub'))
    with FileServer({urlsplit(url).path: data}) as server:
        monkeypatch.setenv(MIRROR_ENV, server.url)
        try:
            yield server, state, hashlib.sha256(data).hexdigest()[:8], tmp_path / 'hub' / 'checkpoints'
        finally:
            torch.hub.set_dir(before)


def test_weights_come_through_the_mirror_once_and_load(served_weights):
    server, state, digest, cache = served_weights
    detector = PersonDetector(hash_prefix=digest, min_size=96, max_size=128)
    for key, value in detector.model.state_dict().items():
        torch.testing.assert_close(value, state[key], msg=key)
    assert [method for method, _ in server.requests].count('GET') == 1
    asked = len(server.requests)
    PersonDetector(hash_prefix=digest, min_size=96, max_size=128)  # from the cache: nothing asked
    assert len(server.requests) == asked
    assert [p.name for p in cache.iterdir()] == [urlsplit(detector.url).path.rsplit('/', 1)[-1]]


def test_a_file_that_is_not_torchvisions_is_refused_and_not_kept(served_weights):
    server, _, _, cache = served_weights
    with pytest.raises(DirectDownloadError, match='fb6a3cc7') as refused:  # the hash in torchvision's file name
        PersonDetector(min_size=96, max_size=128)
    assert 'fasterrcnn_mobilenet_v3_large_fpn weights' in str(refused.value) and MIRROR_ENV in str(refused.value)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_offline_the_detector_says_what_to_unset(served_weights, monkeypatch):
    server, _, digest, _ = served_weights
    monkeypatch.setenv('HRNET_ZOO_OFFLINE', '1')
    with pytest.raises(DirectDownloadError, match='unset HRNET_ZOO_OFFLINE to download it'):
        PersonDetector(hash_prefix=digest, min_size=96, max_size=128)
    assert server.requests == []  # offline: nothing asked
