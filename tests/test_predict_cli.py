"""``hrnet-zoo predict`` on videos, folders and single images: what it writes (a video of as many frames, COCO results,
pictures in the format the extension names, label PNGs equal to segment's class ids), what it skips and counts, and
the bad inputs it refuses in one line before writing anything. Random weights in local safetensors files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file
from test_stream import FPS, FRAMES, HEIGHT, WIDTH, make_video, read_back

from hrnet_zoo.cli import main as cli
from hrnet_zoo.tasks import load_image, segment
from hrnet_zoo.tasks.predict import build_model

pytestmark = pytest.mark.usefixtures('one_thread')

POSE, SEG = 'hrnetv1_w18_small_v1.in1k', 'hrnetv2_w18_small_v1.cityscapes'
BOXES = ['--boxes', '4,6,30,50', '50,8,40,52']


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    """Random weights of a pose and a segmentation tag, as the safetensors files --weights reads."""
    folder = tmp_path_factory.mktemp('weights')
    paths = {}
    for name in (POSE, SEG):
        model = timm.create_model(name)
        paths[name] = folder / f'{name}.safetensors'
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, paths[name])
    return paths


def _args(weights, name):
    return ['--model', name, '--weights', str(weights[name])]


def _picture(path, colour, size=(WIDTH, HEIGHT)):
    Image.new('RGB', size, colour).save(path)
    return path


def test_a_video_gives_a_video_of_as_many_frames_and_coco_results(weights, tmp_path, capsys):
    clip = make_video(tmp_path / 'clip.mp4')
    out = tmp_path / 'made' / 'by' / 'predict'  # missing, parents too
    assert cli(['predict', str(clip), *_args(weights, POSE), *BOXES, '--out', str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ['clip.mp4', 'keypoints.json']
    assert read_back(out / 'clip.mp4') == (FRAMES, (WIDTH, HEIGHT), FPS)
    data = json.loads((out / 'keypoints.json').read_text())
    assert [i['id'] for i in data['images']] == list(range(FRAMES))
    assert all(i['video'] == str(clip) and (i['width'], i['height']) == (WIDTH, HEIGHT) for i in data['images'])
    assert [a['image_id'] for a in data['annotations']] == [i for i in range(FRAMES) for _ in range(2)]
    assert [a['bbox'] for a in data['annotations'][:2]] == [[4, 6, 30, 50], [50, 8, 40, 52]]
    assert all(a['category_id'] == 1 and len(a['keypoints']) == 3 * 17 for a in data['annotations'])
    assert 'not a probability' in data['score']
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith(f'{FRAMES} frames, {2 * FRAMES} people (score = ') and '0 skipped files' in summary


def test_a_folder_with_a_broken_image_skips_and_counts_it(weights, tmp_path, capsys):
    shots = tmp_path / 'shots'
    shots.mkdir()
    _picture(shots / 'a.png', 'red')
    _picture(shots / 'b.jpg', 'green')
    (shots / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n cut short')
    out = tmp_path / 'out'
    with pytest.warns(UserWarning, match='broken.png'):
        assert cli(['predict', str(shots), *_args(weights, POSE), *BOXES, '--out', str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ['a.png', 'b.png', 'keypoints.json']
    data = json.loads((out / 'keypoints.json').read_text())
    assert [(i['id'], i['file_name']) for i in data['images']] == [(0, 'a.png'), (1, 'b.jpg')]
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith('2 frames, 4 people') and '1 skipped file,' in summary


@pytest.mark.parametrize(('name', 'magic', 'image_format'), [('x.jpg', b'\xff\xd8\xff', 'JPEG'),
                                                             ('x.webp', b'RIFF', 'WEBP'),
                                                             ('x.png', b'\x89PNG', 'PNG')])  # fmt: skip
def test_one_image_is_written_in_the_format_its_extension_names(weights, tmp_path, name, magic, image_format):
    photo = _picture(tmp_path / 'photo.png', 'white')
    assert cli(['predict', str(photo), *_args(weights, POSE), *BOXES, '--out', str(tmp_path / name)]) == 0
    assert (tmp_path / name).read_bytes()[: len(magic)] == magic
    with Image.open(tmp_path / name) as written:
        assert written.format == image_format and written.size == (WIDTH, HEIGHT)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({'photo.png', name})  # no JSON unless asked


def test_label_pngs_equal_segments_class_ids(weights, tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / 'street'
    folder.mkdir()
    for name in ('one.png', 'two.png'):
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(folder / name)
    out = tmp_path / 'labels'
    assert cli(['predict', str(folder), *_args(weights, SEG), '--out', str(out)]) == 0
    names = ['one.png', 'one_labels.png', 'segmentation.json', 'two.png', 'two_labels.png']
    assert sorted(p.name for p in out.iterdir()) == names
    model = build_model(SEG, weights[SEG])
    data = json.loads((out / 'segmentation.json').read_text())
    for entry, stem in zip(data['images'], ('one', 'two')):
        with Image.open(out / f'{stem}_labels.png') as labels:
            assert labels.mode == 'L'
            ids = torch.from_numpy(np.asarray(labels).astype(np.int64))
        expected = segment(model, load_image(folder / f'{stem}.png')).class_ids[0]
        assert torch.equal(ids, expected) and entry['labels'] == f'{stem}_labels.png'
        assert sum(c['pixels'] for c in entry['classes']) == 40 * 56


def _refused(argv, tmp_path, capsys, match):
    before = sorted(tmp_path.rglob('*'))
    assert cli(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err and err.startswith('hrnet-zoo predict: error: '), err
    assert sorted(tmp_path.rglob('*')) == before  # nothing written: no file, no temporary, no folder


def test_bad_inputs_are_refused_in_one_line_with_nothing_written(weights, tmp_path, capsys):
    pose = _args(weights, POSE)
    photo = _picture(tmp_path / 'photo.png', 'white')
    corrupt = tmp_path / 'corrupt.mp4'
    corrupt.write_bytes(b'\x00\x00\x00\x18ftypmp42' + bytes(300))
    _refused(['predict', str(corrupt), *pose, '--out', str(tmp_path / 'out')], tmp_path, capsys,
             'corrupt.mp4 is not a video PyAV can read')  # fmt: skip
    (tmp_path / 'empty').mkdir()
    _refused(['predict', str(tmp_path / 'empty'), *pose, '--out', str(tmp_path / 'out')], tmp_path, capsys,
             'holds no images')  # fmt: skip
    (tmp_path / 'taken.png').mkdir()
    _refused(['predict', str(photo), *pose, '--out', str(tmp_path / 'taken.png')], tmp_path, capsys, 'is a folder')
    _refused(['predict', str(photo), *pose, '--out', str(tmp_path / 'out.txt')], tmp_path, capsys,
             "unknown extension '.txt'")  # fmt: skip
    _refused(['predict', str(photo), *pose, '--out', str(tmp_path / 'x.mp4')], tmp_path, capsys,
             'a video is written into the folder --out names')  # fmt: skip
    _refused(['predict', str(photo), str(photo), *pose, '--out', str(tmp_path / 'two.png')], tmp_path, capsys,
             'names one picture')  # fmt: skip
    _refused(['predict', str(photo), *pose, '--json', str(tmp_path / 'empty'), '--out', str(tmp_path / 'o.png')],
             tmp_path, capsys, '--json names the JSON file')  # fmt: skip
    other = tmp_path / 'other'
    other.mkdir()
    _picture(other / 'photo.jpg', 'black')
    _refused(['predict', str(photo), str(other / 'photo.jpg'), *pose, '--out', str(tmp_path / 'out')], tmp_path,
             capsys, 'would both write')  # fmt: skip
    _refused(['predict', str(photo), *pose, *BOXES, '--detector', 'fasterrcnn_resnet50_fpn_v2', '--out',
              str(tmp_path / 'out')], tmp_path, capsys, '--boxes replaces the person detector')  # fmt: skip
    broken_only = tmp_path / 'broken_only'
    broken_only.mkdir()
    (broken_only / 'x.png').write_text('no')
    with pytest.warns(UserWarning, match='x.png'):
        _refused(['predict', str(broken_only), *pose, '--out', str(tmp_path / 'out')], tmp_path, capsys,
                 'no frame could be read from the input (1 broken files skipped)')  # fmt: skip


def test_a_failure_midway_keeps_the_finished_files_only(weights, tmp_path, capsys):
    """The second image's box lies outside it: the first picture stays, no JSON, no temporary."""
    big, small = _picture(tmp_path / 'a_big.png', 'white'), _picture(tmp_path / 'b_small.png', 'white', (20, 20))
    out = tmp_path / 'out'
    argv = ['predict', str(big), str(small), *_args(weights, POSE), '--boxes', '40,30,20,20', '--out', str(out)]
    assert cli(argv) == 1
    assert 'outside the 20x20 image' in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ['a_big.png']
