"""Sources, streaming answers and video out: read_source (images, folders, globs, videos, webcams, memory),
predict_stream (one answer per frame, lazily, with timings), coco_keypoint_results (the official person score) and
write_video (PyAV, whole or not at all). Videos are made and read back with PyAV directly; tiny random models."""

from __future__ import annotations

import time
from fractions import Fraction

import av
import numpy as np
import pytest
import timm
import torch
from helpers import coco_body_model
from PIL import Image

from hrnet_zoo.tasks import segment
from hrnet_zoo.tasks.sources import Frame, read_source
from hrnet_zoo.tasks.stream import coco_keypoint_results, predict_stream
from hrnet_zoo.tasks.video import write_video

pytestmark = pytest.mark.usefixtures('one_thread')

FRAMES, HEIGHT, WIDTH, FPS = 6, 64, 96, 12
BOXES = torch.tensor([[4.0, 6.0, 30.0, 50.0], [50.0, 8.0, 40.0, 52.0]], dtype=torch.float64)
BOX_SCORES = torch.tensor([0.9, 0.6])


def make_video(path, frames=FRAMES, height=HEIGHT, width=WIDTH, fps=FPS):
    """A clip written with PyAV itself (not with write_video): a bright square moving right on grey."""
    with av.open(str(path), 'w') as container:
        stream = container.add_stream('mpeg4', rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, 'yuv420p'
        for i in range(frames):
            array = np.full((height, width, 3), 90, np.uint8)
            array[20:44, 8 + 10 * i : 32 + 10 * i] = 250
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format='rgb24')))
        container.mux(stream.encode(None))
    return path


def read_back(path):
    """(frame count, (width, height), average rate) of a video, decoded with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return count, (stream.width, stream.height), stream.average_rate


@pytest.fixture(scope='module')
def pose_model():
    return coco_body_model()


@pytest.fixture(scope='module')
def seg_model():
    return timm.create_model('hrnetv2_w18_small_v1.cityscapes').eval()


def two_people(pixels):
    return BOXES.clone(), BOX_SCORES.clone()


def official_person_score(keypoints, box_score, threshold=0.2):
    """lib/dataset/coco.py ``evaluate``: the mean of the keypoint scores above the threshold, times the box score."""
    total, count = 0.0, 0
    for _, _, score in keypoints:
        if score > threshold:
            total, count = total + score, count + 1
    return (total / count if count else 0.0) * box_score


# -- read_source -----------------------------------------------------------------------------------------------------


def test_a_video_streams_its_frames_with_time_and_fps(tmp_path):
    frames = list(read_source(make_video(tmp_path / 'clip.mp4')))
    assert [f.index for f in frames] == list(range(FRAMES))
    assert [f.name for f in frames] == [f'frame_{i:06d}' for i in range(FRAMES)]
    assert all(f.fps == FPS and f.pixels.shape == (3, HEIGHT, WIDTH) for f in frames)
    assert [f.time for f in frames] == pytest.approx([i / FPS for i in range(FRAMES)])
    # the square moves right: its column of brightest pixels does too
    columns = [int(f.pixels[0, 32].argmax()) for f in frames]
    assert columns == sorted(columns) and columns[0] < columns[-1]


def test_a_folder_skips_a_broken_image_with_a_warning(tmp_path):
    for name in ('b.png', 'a.jpg'):
        Image.new('RGB', (20, 10), 'red').save(tmp_path / name)
    (tmp_path / 'c.png').write_bytes(b'\x89PNG\r\n\x1a\n not really')
    (tmp_path / 'notes.txt').write_text('not an image, not counted')
    source = read_source(tmp_path)
    with pytest.warns(UserWarning, match='c.png'):
        frames = list(source)
    assert [f.name for f in frames] == ['a.jpg', 'b.png'] and [f.index for f in frames] == [0, 1]
    assert source.skipped == [tmp_path / 'c.png']


def test_globs_memory_images_and_lists(tmp_path):
    for name in ('x1.png', 'x2.png', 'y.png'):
        Image.new('RGB', (8, 6), 'blue').save(tmp_path / name)
    assert [f.name for f in read_source(str(tmp_path / 'x*.png'))] == ['x1.png', 'x2.png']
    batch = torch.rand(2, 3, 6, 8)
    mixed = [Image.new('RGB', (8, 6)), np.zeros((6, 8, 3), np.uint8), batch, tmp_path / 'y.png']
    frames = list(read_source(mixed))
    assert [f.name for f in frames] == ['frame_000000', 'frame_000001', 'frame_000002', 'frame_000003', 'y.png']
    assert torch.equal(frames[3].pixels, batch[1]) and frames[4].source == str(tmp_path / 'y.png')


def test_bad_sources_are_refused_in_one_line(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='holds no images'):
        read_source(tmp_path / 'empty')
    with pytest.raises(ValueError, match='no image or video matches'):
        read_source(str(tmp_path / '*.jpg'))
    (tmp_path / 'broken.mp4').write_bytes(b'\x00\x00\x00\x18ftypmp42' + bytes(200))
    with pytest.raises(ValueError, match='broken.mp4 is not a video PyAV can read'):
        read_source(tmp_path / 'broken.mp4')
    (tmp_path / 'table.csv').write_text('a,b\n')
    with pytest.raises(ValueError, match="unknown extension '.csv'"):
        read_source(tmp_path / 'table.csv')
    with pytest.raises(FileNotFoundError, match='No such image'):
        read_source(tmp_path / 'missing.png')
    named = tmp_path / 'named.png'
    named.write_text('text')
    with pytest.raises(ValueError, match='is not an image'):  # named, not found in a folder: an error, not a skip
        list(read_source(named))


def test_a_webcam_that_cannot_be_opened_says_so():
    source = read_source(63)  # no /dev/video63 here
    assert source.items[0].kind == 'webcam'
    with pytest.raises(ValueError, match='cannot open webcam 63'):
        next(source)


# -- predict_stream ------------------------------------------------------------------------------------------------


def test_video_in_video_and_coco_results_out(pose_model, tmp_path):
    answers = list(predict_stream(pose_model, make_video(tmp_path / 'clip.mp4'), detector=two_people, flip=True))
    assert len(answers) == FRAMES
    assert all(a.poses.keypoints.shape == (2, 17, 3) and torch.equal(a.poses.boxes, BOXES) for a in answers)
    out = tmp_path / 'drawn.mp4'
    assert write_video(out, (a.picture() for a in answers), answers[0].frame.fps) == FRAMES
    assert read_back(out) == (FRAMES, (WIDTH, HEIGHT), FPS)
    results = coco_keypoint_results(answers)
    assert [r['image_id'] for r in results] == [i for i in range(FRAMES) for _ in range(2)]
    for result, (frame, person) in zip(results, [(a, p) for a in answers for p in range(2)]):
        keypoints = frame.poses.keypoints[person].tolist()
        assert result['category_id'] == 1 and result['keypoints'] == [v for point in keypoints for v in point]
        assert result['score'] == pytest.approx(official_person_score(keypoints, float(BOX_SCORES[person])), rel=1e-6)
        assert result['bbox'] == BOXES[person].tolist()


def test_the_detectors_boxes_are_the_poses_boxes(pose_model):
    image = torch.rand(3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(0))
    streamed = next(predict_stream(pose_model, image, detector=two_people, flip=False)).poses
    given = next(predict_stream(pose_model, image, boxes=BOXES, flip=False)).poses
    assert torch.equal(streamed.keypoints, given.keypoints)
    nobody = next(predict_stream(pose_model, image, detector=lambda px: (torch.zeros(0, 4), torch.zeros(0))))
    assert nobody.poses.keypoints.shape == (0, 17, 3) and coco_keypoint_results([nobody]) == []


def test_predict_stream_yields_before_reading_the_last_frame(pose_model):
    read = []

    def frames():
        for i in range(4):
            read.append(i)
            yield Frame(i, f'frame_{i:06d}', torch.rand(3, 32, 32))

    answers = predict_stream(pose_model, frames(), boxes=[[0, 0, 32, 32]], flip=False)
    assert read == []  # nothing is read before the first answer is asked for
    first = next(answers)
    assert first.frame.index == 0 and read == [0]
    assert [a.frame.index for a in answers] == [1, 2, 3] and read == [0, 1, 2, 3]


def test_timings_split_detector_forward_and_rest(pose_model):
    pause = 0.05

    def slow_detector(pixels):
        time.sleep(pause)
        return BOXES[:1].clone(), BOX_SCORES[:1].clone()

    calls = []

    class CountingModel(torch.nn.Module):  # the model itself, with a sleep in its forward pass
        def __init__(self):
            super().__init__()
            self.inner = pose_model
            self.head, self.pretrained_cfg = pose_model.head, pose_model.pretrained_cfg
            self.num_classes = pose_model.num_classes

        def forward(self, x):
            calls.append(len(x))
            time.sleep(2 * pause)
            return self.inner(x)

    answer = next(predict_stream(CountingModel(), torch.rand(3, HEIGHT, WIDTH), detector=slow_detector, flip=True))
    timings = answer.timings
    assert calls == [2]  # one forward for the crop and its flip
    assert pause <= timings.detector < 2 * pause <= timings.forward
    assert timings.rest >= 0 and timings.total == pytest.approx(timings.detector + timings.forward + timings.rest)


def test_segmentation_answers_equal_segment(seg_model):
    image = torch.rand(3, 48, 64, generator=torch.Generator().manual_seed(1))
    answer = next(predict_stream(seg_model, [image]))
    assert answer.poses is None
    assert torch.equal(answer.segmentation.class_ids, segment(seg_model, image).class_ids)
    assert answer.picture().size == (64, 48)
    with pytest.raises(ValueError, match='keypoint models'):
        predict_stream(seg_model, image, boxes=BOXES)


def test_coco_ids_from_a_mapping(pose_model, tmp_path):
    Image.new('RGB', (40, 30), 'white').save(tmp_path / '000000000139.jpg')
    answers = list(predict_stream(pose_model, tmp_path, boxes=[[0, 0, 40, 30]], flip=False))
    assert [r['image_id'] for r in coco_keypoint_results(answers, {'000000000139.jpg': 139})] == [139]
    assert coco_keypoint_results(answers)[0]['score'] == pytest.approx(
        official_person_score(answers[0].poses.keypoints[0].tolist(), 1.0), rel=1e-6
    )
    with pytest.raises(ValueError, match='000000000139.jpg has no COCO image id'):
        coco_keypoint_results(answers, {'other.jpg': 1})


# -- write_video -----------------------------------------------------------------------------------------------------


def test_write_video_is_whole_or_absent(tmp_path):
    def failing():
        yield np.zeros((16, 16, 3), np.uint8)
        raise RuntimeError('the model failed on frame 1')

    with pytest.raises(RuntimeError, match='frame 1'):
        write_video(tmp_path / 'out.mp4', failing(), 10)
    sizes = [np.zeros((16, 16, 3), np.uint8), np.zeros((16, 18, 3), np.uint8)]
    with pytest.raises(ValueError, match='every frame of a video has one size'):
        write_video(tmp_path / 'out.mp4', sizes, 10)
    with pytest.raises(ValueError, match='not .gif'):
        write_video(tmp_path / 'out.gif', sizes[:1], 10)
    assert list(tmp_path.iterdir()) == []  # no video, no temporary


def test_odd_sizes_become_even_and_the_rate_is_kept(tmp_path):
    out = tmp_path / 'odd.mp4'
    pictures = [Image.new('RGB', (15, 9), (i * 40, 0, 0)) for i in range(3)]
    assert write_video(out, pictures, Fraction(30000, 1001)) == 3
    assert read_back(out) == (3, (16, 10), Fraction(30000, 1001))
