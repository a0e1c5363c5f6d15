"""hrnet_zoo.tasks.evaluate / datasets and ``hrnet-zoo evaluate``: COCO keypoint AP equals pycocotools called
directly, mIoU equals a confusion matrix counted here, OKS-NMS equals its formula written out here, and a tag runs
end to end on tiny synthetic COCO and Cityscapes folders (random weights, nothing downloaded)."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import sys

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from hrnet_zoo.cli import main as cli
from hrnet_zoo.data.keypoints import KEYPOINTS
from hrnet_zoo.demo import _official_checkpoint
from hrnet_zoo.publish.convert import convert_checkpoint
from hrnet_zoo.tasks.datasets import CocoKeypointsVal
from hrnet_zoo.tasks.evaluate import (
    COCO_METRICS,
    coco_keypoint_metrics,
    evaluate_tag,
    oks_nms,
    rescore,
    segmentation_metrics,
)
from hrnet_zoo.tasks.pose import estimate_pose
from hrnet_zoo.tasks.segmentation import segment

pytestmark = pytest.mark.usefixtures('one_thread')

POSE_TAG, SEG_TAG = 'hrnetv1_w32.coco_256x192', 'hrnetv2_w18_small_v1.cityscapes'
# COCO's sigmas as pycocotools' cocoeval.py writes them
COCO_SIGMAS = (
    np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89])
    / 10.0
)


# -- COCO keypoint metrics ---------------------------------------------------------------------------------------


def _person(rng, ann_id, image_id, x, y, w, h, visible=17):
    xs, ys = x + rng.uniform(0, w, 17), y + rng.uniform(0, h, 17)
    flags = np.array([2] * visible + [0] * (17 - visible))
    keypoints = np.stack([xs * (flags > 0), ys * (flags > 0), flags], 1).ravel()
    return dict(id=ann_id, image_id=image_id, category_id=1, iscrowd=0, bbox=[x, y, w, h], area=w * h * 0.6,
                num_keypoints=visible, keypoints=[float(v) for v in keypoints])  # fmt: skip


def _coco_gt(seed=0, width=640, height=480):
    """Five images: large, medium and small persons, a crowd region, a person without keypoints, an empty image."""
    rng = np.random.default_rng(seed)
    boxes = {1: [(20, 30, 200, 300), (300, 40, 60, 90)], 2: [(100, 100, 30, 40), (400, 50, 150, 350)],
             3: [(50, 60, 120, 110)], 5: [(10, 10, 80, 160), (200, 200, 25, 30), (400, 100, 140, 200)]}  # fmt: skip
    annotations = []
    for image_id, rows in boxes.items():
        for box in rows:
            annotations.append(_person(rng, len(annotations) + 1, image_id, *box, visible=int(rng.integers(5, 18))))
    annotations[-1] = _person(rng, annotations[-1]['id'], 5, 400, 100, 140, 200, visible=0)  # no keypoints
    crowd = dict(id=100, image_id=3, category_id=1, iscrowd=1, bbox=[300, 200, 200, 150], area=20000.0,
                 num_keypoints=0, keypoints=[0.0] * 51,
                 segmentation=[[300, 200, 500, 200, 500, 350, 300, 350]])  # fmt: skip
    annotations.append(crowd)
    images = [dict(id=i, width=width, height=height, file_name=f'{i:012d}.jpg') for i in (1, 2, 3, 4, 5)]
    categories = [dict(id=1, name='person', supercategory='person', keypoints=list(KEYPOINTS['coco'].names),
                       skeleton=[])]  # fmt: skip
    return dict(images=images, annotations=annotations, categories=categories)


def _predictions(gt, seed=1):
    """Noisy copies of the persons, a duplicate, false positives (in the crowd, on the empty image), misses."""
    rng = np.random.default_rng(seed)
    out = []
    for ann in gt['annotations']:
        if ann['iscrowd'] or ann['id'] == 3:  # person 3 is missed
            continue
        points = np.asarray(ann['keypoints']).reshape(17, 3)
        x, y, w, h = ann['bbox']
        noise = rng.normal(0, 0.05 * math.sqrt(w * h), (17, 2))
        guess = np.where(points[:, 2:] > 0, points[:, :2], [x + w / 2, y + h / 2]) + noise
        row = np.concatenate([guess, rng.uniform(0.1, 1, (17, 1))], 1)
        out.append(dict(image_id=ann['image_id'], category_id=1, keypoints=row.ravel().tolist(),
                        score=float(rng.uniform(0.3, 1))))  # fmt: skip
    out.append(dict(out[0], score=0.2))  # a duplicate of the first person
    for image_id, (x, y) in ((3, (350, 250)), (4, (100, 100)), (2, (600, 440))):
        row = np.concatenate([rng.uniform(0, 40, (17, 2)) + (x, y), rng.uniform(0, 1, (17, 1))], 1)
        out.append(dict(image_id=image_id, category_id=1, keypoints=row.ravel().tolist(), score=0.5))
    return out


def _pycocotools_stats(gt, results, image_ids=None, sigmas=None):
    """COCOeval called directly, as its README shows."""
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = copy.deepcopy(gt)
        truth.createIndex()
        found = truth.loadRes(copy.deepcopy(results))
        evaluator = COCOeval(truth, found, 'keypoints')
        if image_ids is not None:
            evaluator.params.imgIds = image_ids
        if sigmas is not None:
            evaluator.params.kpt_oks_sigmas = np.asarray(sigmas)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def test_coco_metrics_are_pycocotools(tmp_path, capsys):
    gt = _coco_gt()
    results = _predictions(gt)
    expected = _pycocotools_stats(gt, results)
    metrics = coco_keypoint_metrics(results, gt)
    assert list(metrics) == ['AP', 'AP50', 'AP75', 'APm', 'APl', 'AR', 'AR50', 'AR75', 'ARm', 'ARl']
    np.testing.assert_allclose(list(metrics.values()), expected, rtol=0, atol=1e-9)
    assert 0 < metrics['AP'] < 1 and 0 < metrics['APm'] and 0 < metrics['APl']  # a case that is not degenerate
    assert capsys.readouterr().out == ''  # pycocotools' prints are silenced
    # from files, and restricted to some images
    (tmp_path / 'gt.json').write_text(json.dumps(gt))
    (tmp_path / 'res.json').write_text(json.dumps(results))
    assert coco_keypoint_metrics(tmp_path / 'res.json', tmp_path / 'gt.json') == metrics
    part = coco_keypoint_metrics(results, gt, image_ids=[2, 5])
    np.testing.assert_allclose(list(part.values()), _pycocotools_stats(gt, results, [2, 5]), rtol=0, atol=1e-9)
    assert part != metrics
    assert results == _predictions(gt)  # the caller's list is left as it was


def test_coco_metrics_by_hand():
    gt = _coco_gt()
    gt['annotations'] = [a for a in gt['annotations'] if a['id'] == 2]  # one medium person (60 x 90 box)
    perfect = [dict(image_id=1, category_id=1, keypoints=gt['annotations'][0]['keypoints'], score=0.9)]
    metrics = coco_keypoint_metrics(perfect, gt)
    for key in ('AP', 'AP50', 'AP75', 'APm', 'AR', 'ARm'):  # pycocotools sums to 1 within rounding
        assert metrics[key] == pytest.approx(1.0, abs=1e-12)
    assert metrics['APl'] == -1.0  # no large person: pycocotools' "nothing to score"
    wrong = [dict(perfect[0], keypoints=[v + 300 if i % 3 != 2 else v for i, v in enumerate(perfect[0]['keypoints'])])]
    assert coco_keypoint_metrics(wrong, gt)['AP'] == 0.0
    nothing = coco_keypoint_metrics([], gt)  # pycocotools: 0 where there is a person to find, else -1
    assert nothing['AP'] == nothing['AR'] == nothing['APm'] == 0.0 and nothing['APl'] == nothing['ARl'] == -1.0


def test_coco_metrics_take_the_sigmas_of_other_keypoint_sets():
    names = KEYPOINTS['crowdpose'].names
    rng = np.random.default_rng(3)
    gt = dict(images=[dict(id=1, width=300, height=300)], categories=[dict(id=1, name='person', keypoints=list(names))],
              annotations=[])  # fmt: skip
    results = []
    for i, (x, y) in enumerate([(10, 10), (150, 120)]):
        points = np.stack([x + rng.uniform(0, 100, 14), y + rng.uniform(0, 120, 14), np.full(14, 2.0)], 1)
        gt['annotations'].append(dict(id=i + 1, image_id=1, category_id=1, iscrowd=0, bbox=[x, y, 100, 120],
                                      area=9000.0, num_keypoints=14, keypoints=points.ravel().tolist()))  # fmt: skip
        points[:, :2] += rng.normal(0, 4, (14, 2))
        results.append(dict(image_id=1, category_id=1, keypoints=points.ravel().tolist(), score=0.8 - i / 10))
    crowdpose = (0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089, 0.079, 0.079)
    expected = _pycocotools_stats(gt, results, sigmas=crowdpose)
    np.testing.assert_allclose(list(coco_keypoint_metrics(results, gt).values()), expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(list(coco_keypoint_metrics(results, gt, sigmas='crowdpose').values()), expected,
                               rtol=0, atol=1e-9)  # fmt: skip
    unknown = dict(gt, categories=[dict(id=1, name='person', keypoints=[f'p{i}' for i in range(14)])])
    with pytest.raises(ValueError, match="14 keypoints per person, not COCO's 17.*pass sigmas="):
        coco_keypoint_metrics(results, unknown)
    np.testing.assert_allclose(list(coco_keypoint_metrics(results, unknown, sigmas=crowdpose).values()), expected,
                               rtol=0, atol=1e-9)  # fmt: skip
    with pytest.raises(ValueError, match='sigmas has 17 values'):
        coco_keypoint_metrics(results, unknown, sigmas=COCO_SIGMAS)


def test_coco_metrics_refuse_bad_input(tmp_path):
    gt = _coco_gt()
    results = _predictions(gt)
    short = [dict(results[0], keypoints=results[0]['keypoints'][:42])]
    with pytest.raises(ValueError, match='has 14 keypoints, the ground truth 17'):
        coco_keypoint_metrics(short, gt)
    with pytest.raises(ValueError, match='image 99, which the ground truth does not have'):
        coco_keypoint_metrics([dict(results[0], image_id=99)], gt)
    with pytest.raises(FileNotFoundError, match='No such COCO keypoint results file'):
        coco_keypoint_metrics(tmp_path / 'missing.json', gt)
    (tmp_path / 'bad.json').write_text('{not json')
    with pytest.raises(ValueError, match='is not a JSON file'):
        coco_keypoint_metrics(results, tmp_path / 'bad.json')


# -- rescoring and OKS-NMS ---------------------------------------------------------------------------------------


def _oks_written_out(a, b, area_a, area_b, sigmas):
    total = 0.0
    for k in range(len(sigmas)):
        d2 = (a[k][0] - b[k][0]) ** 2 + (a[k][1] - b[k][1]) ** 2
        total += math.exp(-d2 / (2 * ((area_a + area_b) / 2 + np.spacing(1)) * (2 * sigmas[k]) ** 2))
    return total / len(sigmas)


def _nms_written_out(people, threshold, sigmas):
    remaining = sorted(range(len(people)), key=lambda i: -people[i]['score'])
    keep = []
    while remaining:
        best = remaining.pop(0)
        keep.append(best)
        remaining = [i for i in remaining if _oks_written_out(people[best]['keypoints'], people[i]['keypoints'],
                     people[best]['area'], people[i]['area'], sigmas) <= threshold]  # fmt: skip
    return keep


def test_oks_nms_is_the_formula():
    rng = np.random.default_rng(0)
    base = np.concatenate([rng.uniform(0, 100, (17, 2)), rng.uniform(0, 1, (17, 1))], 1)
    far = base + [200, 0, 0]
    people = [
        dict(keypoints=base, score=0.9, area=5000.0),
        dict(keypoints=base + [0.5, 0.3, 0], score=0.8, area=5200.0),  # a duplicate of 0: suppressed
        dict(keypoints=far, score=0.7, area=5000.0),
        dict(keypoints=far + [9, 7, 0], score=0.95, area=400.0),  # 9, 7 px from 2, but small: OKS 0.29, both kept
        dict(keypoints=base + [3, -2, 0], score=0.1, area=5000.0),  # OKS 0.87 with 0: kept at 0.9, not at 0.5
    ]
    sigmas = COCO_SIGMAS
    expected = _nms_written_out(people, 0.9, sigmas)
    assert oks_nms(people, 0.9) == expected
    assert expected == [3, 0, 2, 4]  # by score, 1 suppressed by 0 (OKS 0.996)
    assert oks_nms(people, 0.5) == _nms_written_out(people, 0.5, sigmas) == [3, 0, 2]
    for threshold in (0.3, 0.5, 0.99):
        assert oks_nms(people, threshold) == _nms_written_out(people, threshold, sigmas)
    flat = [dict(p, keypoints=p['keypoints'].ravel().tolist()) for p in people]
    other = rng.uniform(0.02, 0.1, 17)
    assert oks_nms(flat, 0.5, sigmas=other) == _nms_written_out(people, 0.5, other)
    assert oks_nms([]) == []
    with pytest.raises(ValueError, match='14 sigmas for people of 17 keypoints'):
        oks_nms(people, sigmas=other[:14])


def test_rescore_is_box_score_times_mean_confident_keypoint_score():
    person = dict(keypoints=[[0, 0, 0.9], [1, 1, 0.1], [2, 2, 0.5], [3, 3, 0.2]], score=0.5)
    nobody = dict(keypoints=[[0, 0, 0.1], [1, 1, 0.2]], score=1.0)
    assert rescore([person, nobody]) == pytest.approx([0.5 * (0.9 + 0.5) / 2, 0.0], abs=1e-12)
    assert rescore([person], threshold=0.05) == pytest.approx([0.5 * (0.9 + 0.1 + 0.5 + 0.2) / 4], abs=1e-12)


# -- segmentation metrics ----------------------------------------------------------------------------------------


def _label_maps(seed=0, classes=5, absent=3):
    rng = np.random.default_rng(seed)
    pairs = []
    for height, width in ((20, 30), (17, 25), (9, 40)):
        gt = rng.integers(0, classes, (height, width)).astype(np.uint8)
        pred = np.where(rng.uniform(size=gt.shape) < 0.6, gt, rng.integers(0, classes, gt.shape)).astype(np.uint8)
        gt[gt == absent], pred[pred == absent] = 0, 1  # a class neither side has
        gt[rng.uniform(size=gt.shape) < 0.15] = 255
        pairs.append((pred, gt))
    return pairs


def _metrics_written_out(pairs, classes, ignore=255):
    conf = np.zeros((classes, classes), dtype=np.int64)
    for pred, gt in pairs:
        keep = gt != ignore
        np.add.at(conf, (gt[keep].astype(int), pred[keep].astype(int)), 1)
    iou = []
    for c in range(classes):
        hits = conf[c, c]
        union = sum(conf[c, j] for j in range(classes)) + sum(conf[i, c] for i in range(classes)) - hits
        iou.append(100.0 * hits / union if union else float('nan'))
    present = [v for v in iou if not math.isnan(v)]
    return sum(present) / len(present), iou, 100.0 * sum(conf[c, c] for c in range(classes)) / conf.sum()


def _save(folder, name, labels):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels).save(folder / name)


def test_segmentation_metrics_are_one_confusion_matrix(tmp_path):
    pairs = _label_maps()
    miou, iou, aacc = _metrics_written_out(pairs, 5)
    for i, (pred, gt) in enumerate(pairs):  # Cityscapes-style names on one side, in city folders
        _save(tmp_path / 'pred', f'city_{i:06d}.png', pred)
        _save(tmp_path / 'gt' / 'city', f'city_{i:06d}_gtFine_labelTrainIds.png', gt)
    for metrics in (
        segmentation_metrics(tmp_path / 'pred', tmp_path / 'gt', 5),
        segmentation_metrics([p for p, _ in pairs], [g for _, g in pairs], 5),
    ):
        assert list(metrics) == ['mIoU', 'IoU', 'aAcc']
        assert math.isnan(metrics['IoU'][3]) and math.isnan(iou[3])
        np.testing.assert_allclose(metrics['IoU'], iou, rtol=0, atol=1e-9)
        assert metrics['mIoU'] == pytest.approx(miou, abs=1e-9) and metrics['aAcc'] == pytest.approx(aacc, abs=1e-9)
    # the mean of the per-image mIoUs is another number: the matrix is summed first
    per_image = np.mean([_metrics_written_out([pair], 5)[0] for pair in pairs])
    assert abs(per_image - miou) > 1e-3


def test_segmentation_metrics_refuse_mismatches(tmp_path):
    pairs = _label_maps()
    _save(tmp_path / 'pred', 'a.png', pairs[0][0])
    _save(tmp_path / 'pred', 'b.png', pairs[1][0])
    _save(tmp_path / 'gt', 'a.png', pairs[0][1])
    _save(tmp_path / 'gt', 'b.png', pairs[0][1])
    with pytest.raises(ValueError, match=r'\(b\).*must have its label map'):
        segmentation_metrics(tmp_path / 'pred', tmp_path / 'gt', 5)
    _save(tmp_path / 'gt', 'c.png', pairs[0][1])
    with pytest.raises(FileNotFoundError, match="no prediction for ground truth 'c'"):
        segmentation_metrics(tmp_path / 'pred', tmp_path / 'gt', 5)
    with pytest.raises(ValueError, match=r'class id 4; expected 0\.\.3'):
        segmentation_metrics([pairs[0][0]], [pairs[0][1]], 4)
    with pytest.raises(FileNotFoundError, match='No such folder of label PNGs'):
        segmentation_metrics(tmp_path / 'nowhere', tmp_path / 'gt', 5)


def test_coco_folder_boxes_are_the_official_use_gt_bbox_ones(tmp_path):
    """The official layout (images/val2017), and _load_coco_keypoint_annotation_kernal's box cleaning by hand."""
    (tmp_path / 'annotations').mkdir()
    (tmp_path / 'images' / 'val2017').mkdir(parents=True)
    kept = dict(image_id=1, category_id=1, iscrowd=0, area=50.0, keypoints=[1.0, 1.0, 2.0] + [0.0] * 48)
    persons = [
        dict(kept, id=1, bbox=[-5.0, 10.0, 30.0, 20.0]),  # clipped left: x1 0, x2 = 0 + 29
        dict(kept, id=2, bbox=[50.0, 40.0, 30.0, 30.0]),  # clipped right and bottom: x2 = 63, y2 = 47
        dict(kept, id=3, bbox=[5.0, 5.0, 10.0, 10.0], iscrowd=1),  # a crowd region
        dict(kept, id=4, bbox=[5.0, 5.0, 10.0, 10.0], keypoints=[0.0] * 51),  # no keypoint labelled
        dict(kept, id=5, bbox=[5.0, 5.0, 10.0, 10.0], area=0.0),  # no area
        dict(kept, id=6, bbox=[5.0, 5.0, 10.0, 10.0], category_id=2),  # not a person
        dict(kept, id=7, bbox=[70.0, 5.0, 10.0, 10.0]),  # right of the image: x2 < x1
        dict(kept, id=8, bbox=[5.0, 5.0, 10.0, 10.0], image_id=2),  # the other image
    ]
    gt = dict(images=[dict(id=1, width=64, height=48, file_name='a.jpg'), dict(id=2, width=64, height=48,
              file_name='b.jpg')], annotations=persons, categories=[])  # fmt: skip
    (tmp_path / 'annotations' / 'person_keypoints_val2017.json').write_text(json.dumps(gt))
    data = CocoKeypointsVal(tmp_path, limit=1)
    assert data.image_ids == [1] and data.image_path(data.images[0]) == tmp_path / 'images' / 'val2017' / 'a.jpg'
    np.testing.assert_array_equal(data.gt_boxes(1), [[0, 10, 29, 19], [50, 40, 13, 7]])
    assert [a['id'] for a in data.restricted_annotations()['annotations']] == [1, 2, 3, 4, 5, 6, 7]


def test_coco_scoring_without_pycocotools_names_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, 'pycocotools.coco', None)  # what an environment without it imports
    with pytest.raises(ImportError, match=r"pip install 'hrnet_zoo\[coco\]'"):
        coco_keypoint_metrics([], _coco_gt())
    (tmp_path / 'gt.json').write_text(json.dumps(_coco_gt()))
    (tmp_path / 'res.json').write_text('[]')
    _refused(['evaluate', '--predictions', str(tmp_path / 'res.json'), '--annotations', str(tmp_path / 'gt.json')],
             tmp_path, capsys, "pip install 'hrnet_zoo[coco]'")  # fmt: skip


# -- evaluate_tag on tiny synthetic folders ----------------------------------------------------------------------


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory):
    """Three 64 x 48 images with one or two persons each (and a crowd region), COCO's val2017 layout."""
    root = tmp_path_factory.mktemp('coco')
    (root / 'annotations').mkdir()
    (root / 'val2017').mkdir()
    rng = np.random.default_rng(5)
    boxes = {7: [(2, 3, 20, 40)], 3: [(1, 2, 18, 30), (38, 10, 24, 36)], 9: [(30, 5, 30, 40)]}
    gt = dict(images=[], annotations=[], categories=_coco_gt()['categories'])
    for image_id, rows in boxes.items():
        name = f'{image_id:012d}.jpg'
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(root / 'val2017' / name)
        gt['images'].append(dict(id=image_id, width=64, height=48, file_name=name))
        for box in rows:
            gt['annotations'].append(_person(rng, len(gt['annotations']) + 1, image_id, *box, visible=12))
    gt['annotations'].append(dict(id=50, image_id=3, category_id=1, iscrowd=1, bbox=[20, 20, 10, 10], area=100.0,
                                  num_keypoints=0, keypoints=[0.0] * 51))  # fmt: skip
    (root / 'annotations' / 'person_keypoints_val2017.json').write_text(json.dumps(gt))
    return root


@pytest.fixture(scope='module')
def pose_model():
    torch.manual_seed(0)
    overlay = dict(input_size=(3, 64, 48))
    return timm.create_model('hrnetv1_w18_small_v1', num_classes=17, pretrained_cfg_overlay=overlay).eval()


def test_evaluate_tag_pose_scores_what_it_writes(coco_root, pose_model, tmp_path):
    metrics = evaluate_tag(POSE_TAG, coco_root, model=pose_model, out_dir=tmp_path / 'out', progress=False)
    results = json.loads((tmp_path / 'out' / 'keypoints_val2017_results.json').read_text())
    gt = json.loads((coco_root / 'annotations' / 'person_keypoints_val2017.json').read_text())
    assert list(metrics) == list(COCO_METRICS)
    np.testing.assert_allclose(list(metrics.values()), _pycocotools_stats(gt, results), rtol=0, atol=1e-9)
    assert sorted(r['image_id'] for r in results) == [3, 3, 7, 9]  # one per non-crowd person (far apart: no NMS)
    # image 7: the official use_gt_bbox box (x2 = x1 + w - 1), flip test, the record's decoding
    (entry,) = [r for r in results if r['image_id'] == 7]
    image = np.asarray(Image.open(coco_root / 'val2017' / '000000000007.jpg'))
    poses = estimate_pose(pose_model, image, [[2, 3, 19, 39]], flip=True, joints=KEYPOINTS['coco'])
    np.testing.assert_allclose(entry['keypoints'], poses.keypoints[0].double().ravel().numpy(), atol=1e-4)
    scores = poses.keypoints[0, :, 2].double()
    confident = scores[scores > 0.2]
    assert entry['score'] == pytest.approx(float(confident.mean()) if len(confident) else 0.0, abs=1e-6)


def test_evaluate_tag_pose_limit_and_detections(coco_root, pose_model, tmp_path):
    gt = json.loads((coco_root / 'annotations' / 'person_keypoints_val2017.json').read_text())
    metrics = evaluate_tag(POSE_TAG, coco_root, limit=1, model=pose_model, out_dir=tmp_path / 'one', progress=False)
    results = json.loads((tmp_path / 'one' / 'keypoints_val2017_results.json').read_text())
    assert {r['image_id'] for r in results} == {7}  # the first image of the annotation file
    one = dict(gt, images=gt['images'][:1], annotations=[a for a in gt['annotations'] if a['image_id'] == 7])
    np.testing.assert_allclose(list(metrics.values()), _pycocotools_stats(one, results), rtol=0, atol=1e-9)
    detections = [dict(image_id=3, category_id=1, bbox=[0, 0, 30, 40], score=0.9),
                  dict(image_id=3, category_id=1, bbox=[35, 5, 28, 40], score=0.6),
                  dict(image_id=9, category_id=2, bbox=[30, 5, 30, 40], score=0.99)]  # not a person  # fmt: skip
    (tmp_path / 'dets.json').write_text(json.dumps(detections))
    evaluate_tag(POSE_TAG, coco_root, detections=tmp_path / 'dets.json', model=pose_model, out_dir=tmp_path / 'det',
                 progress=False, batch_size=1)  # fmt: skip
    results = json.loads((tmp_path / 'det' / 'keypoints_val2017_results.json').read_text())
    assert {r['image_id'] for r in results} == {3} and 1 <= len(results) <= 2
    for r in results:  # its box's score times the mean of its keypoint scores above 0.2
        scores = np.asarray(r['keypoints'][2::3])
        mean = scores[scores > 0.2].mean() if (scores > 0.2).any() else 0.0
        assert min(abs(r['score'] - 0.9 * mean), abs(r['score'] - 0.6 * mean)) < 1e-6


@pytest.fixture(scope='module')
def cityscapes_root(tmp_path_factory):
    """Two 32 x 64 images of Cityscapes' val layout, their ground truth as label ids (mapped when read)."""
    root = tmp_path_factory.mktemp('cityscapes')
    rng = np.random.default_rng(2)
    for name in ('aachen_000000_000019', 'berlin_000001_000019'):
        city = name.split('_')[0]
        for sub in ('leftImg8bit', 'gtFine'):
            (root / sub / 'val' / city).mkdir(parents=True)
        pixels = rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / 'leftImg8bit' / 'val' / city / f'{name}_leftImg8bit.png')
        ids = rng.choice([0, 4, 7, 8, 11, 21, 23, 26, 33], (32, 64)).astype(np.uint8)
        Image.fromarray(ids).save(root / 'gtFine' / 'val' / city / f'{name}_gtFine_labelIds.png')
    return root


# the labelId -> trainId rows of cityscapesScripts' table for the ids above
TRAIN_IDS = {0: 255, 4: 255, 7: 0, 8: 1, 11: 2, 21: 8, 23: 10, 26: 13, 33: 18}


@pytest.fixture(scope='module')
def seg_model():
    torch.manual_seed(1)
    return timm.create_model('hrnetv2_w18_small_v1', num_classes=19).eval()


def test_evaluate_tag_segmentation(cityscapes_root, seg_model, tmp_path):
    metrics = evaluate_tag(SEG_TAG, cityscapes_root, model=seg_model, out_dir=tmp_path / 'out', progress=False)
    written = sorted(p.name for p in (tmp_path / 'out').iterdir())
    assert written == ['aachen_000000_000019.png', 'berlin_000001_000019.png']
    pairs = []
    for path in sorted((cityscapes_root / 'leftImg8bit' / 'val').rglob('*.png')):
        key = path.name.removesuffix('_leftImg8bit.png')
        pred = np.asarray(Image.open(tmp_path / 'out' / f'{key}.png'))
        np.testing.assert_array_equal(pred, segment(seg_model, path).class_ids[0].numpy())
        ids = np.asarray(Image.open(path.parents[2].parent / 'gtFine' / 'val' / path.parent.name /
                                    f'{key}_gtFine_labelIds.png'))  # fmt: skip
        pairs.append((pred, np.vectorize(TRAIN_IDS.get)(ids).astype(np.uint8)))
    miou, iou, aacc = _metrics_written_out(pairs, 19)
    np.testing.assert_allclose(metrics['IoU'], iou, rtol=0, atol=1e-9)
    assert metrics['mIoU'] == pytest.approx(miou, abs=1e-9) and metrics['aAcc'] == pytest.approx(aacc, abs=1e-9)
    evaluate_tag(SEG_TAG, cityscapes_root, limit=1, model=seg_model, out_dir=tmp_path / 'one', progress=False)
    assert [p.name for p in (tmp_path / 'one').iterdir()] == ['aachen_000000_000019.png']


def test_evaluate_tag_refuses_wrong_layouts(coco_root, cityscapes_root, seg_model, tmp_path):
    with pytest.raises(FileNotFoundError, match='is not a COCO val2017 folder: expected annotations/person_keypoints'):
        evaluate_tag(POSE_TAG, cityscapes_root, model=seg_model, progress=False)
    with pytest.raises(FileNotFoundError, match='is not a Cityscapes folder: expected leftImg8bit/val'):
        evaluate_tag(SEG_TAG, coco_root, model=seg_model, progress=False)
    with pytest.raises(ValueError, match='evaluate_tag reads COCO val2017.*MPII'):
        evaluate_tag('hrnetv1_w32.mpii_256x256', coco_root, progress=False)
    with pytest.raises(ValueError, match='detections are person boxes for pose tags'):
        evaluate_tag(SEG_TAG, cityscapes_root, detections=tmp_path / 'd.json', model=seg_model, progress=False)


def test_a_failed_run_leaves_no_predictions(cityscapes_root, tmp_path):
    class Broken(torch.nn.Module):
        """Segments the first image, then fails (as a run stopped half-way would)."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = timm.create_model('hrnetv2_w18_small_v1', num_classes=19).eval()
            self.head, self.pretrained_cfg, self.calls = self.inner.head, self.inner.pretrained_cfg, 0

        def forward(self, x):
            self.calls += 1
            if self.calls > 1:
                raise RuntimeError('out of memory')
            return self.inner(x)

    with pytest.raises(RuntimeError, match='out of memory'):
        evaluate_tag(SEG_TAG, cityscapes_root, model=Broken(), out_dir=tmp_path / 'out', progress=False)
    assert list(tmp_path.iterdir()) == []


# -- the CLI -----------------------------------------------------------------------------------------------------


def test_cli_scores_files_and_folders(tmp_path, capsys):
    gt = _coco_gt()
    results = _predictions(gt)
    (tmp_path / 'gt.json').write_text(json.dumps(gt))
    (tmp_path / 'res.json').write_text(json.dumps(results))
    assert cli(['evaluate', '--predictions', str(tmp_path / 'res.json'), '--annotations', str(tmp_path / 'gt.json'),
                '--json']) == 0  # fmt: skip
    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == list(COCO_METRICS)
    np.testing.assert_allclose(list(printed.values()), _pycocotools_stats(gt, results), rtol=0, atol=1e-9)
    files = ['--predictions', str(tmp_path / 'res.json'), '--annotations', str(tmp_path / 'gt.json')]
    assert cli(['evaluate', *files]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[0] == 'AP' and len(table.splitlines()) == 10
    pairs = _label_maps()
    for i, (pred, truth) in enumerate(pairs):
        _save(tmp_path / 'pred', f'{i}.png', pred)
        _save(tmp_path / 'labels', f'{i}.png', truth)
    argv = ['evaluate', '--predictions', str(tmp_path / 'pred'), '--annotations', str(tmp_path / 'labels')]
    assert cli([*argv, '--num-classes', '5', '--json']) == 0
    printed = json.loads(capsys.readouterr().out)
    miou, iou, aacc = _metrics_written_out(pairs, 5)
    assert list(printed) == ['mIoU', 'IoU', 'aAcc'] and printed['IoU'][3] is None  # NaN is JSON's null
    assert printed['mIoU'] == pytest.approx(miou, abs=1e-9) and printed['aAcc'] == pytest.approx(aacc, abs=1e-9)


def test_cli_runs_a_tag(cityscapes_root, tmp_path, capsys):
    _official_checkpoint(SEG_TAG, tmp_path / 'official.pth')
    weights = convert_checkpoint(tmp_path / 'official.pth', SEG_TAG, tmp_path / 'converted')
    argv = ['evaluate', SEG_TAG, '--data', str(cityscapes_root), '--weights', str(weights), '--limit', '1']
    assert cli([*argv, '--out', str(tmp_path / 'out'), '--json']) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == ['mIoU', 'IoU', 'aAcc'] and len(printed['IoU']) == 19
    assert [p.name for p in (tmp_path / 'out').iterdir()] == ['aachen_000000_000019.png']
    truth = {'aachen_000000_000019': _cityscapes_train_ids(cityscapes_root)}
    scored = segmentation_metrics(tmp_path / 'out', truth, 19)
    assert printed['mIoU'] == pytest.approx(scored['mIoU'], abs=1e-9)


def _cityscapes_train_ids(root):
    ids = np.asarray(Image.open(root / 'gtFine/val/aachen/aachen_000000_000019_gtFine_labelIds.png'))
    return np.vectorize(TRAIN_IDS.get)(ids).astype(np.uint8)


def _refused(argv, tmp_path, capsys, match):
    before = set(tmp_path.iterdir())
    assert cli(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err and 'Traceback' not in err, err
    assert err.startswith('hrnet-zoo evaluate: error: ')
    assert set(tmp_path.iterdir()) == before


def test_cli_refuses_bad_input_in_one_line(coco_root, tmp_path, capsys):
    gt = _coco_gt()
    (tmp_path / 'gt.json').write_text(json.dumps(gt))
    short = [dict(r, keypoints=r['keypoints'][:42]) for r in _predictions(gt)]
    (tmp_path / 'short.json').write_text(json.dumps(short))
    files = ['--annotations', str(tmp_path / 'gt.json')]
    _refused(['evaluate', '--predictions', str(tmp_path / 'no.json'), *files], tmp_path, capsys, 'No such')
    _refused(['evaluate', '--predictions', str(tmp_path / 'short.json'), *files], tmp_path, capsys,
             'has 14 keypoints, the ground truth 17')  # fmt: skip
    _refused(['evaluate', '--predictions', str(tmp_path)], tmp_path, capsys, 'give either TAG --data ROOT')
    _refused(['evaluate', '--predictions', str(tmp_path), '--annotations', str(tmp_path)], tmp_path, capsys,
             'needs --num-classes')  # fmt: skip
    _refused(['evaluate', SEG_TAG, '--data', str(coco_root), '--out', str(tmp_path / 'out')], tmp_path, capsys,
             'is not a Cityscapes folder')  # fmt: skip
    _refused(['evaluate', POSE_TAG], tmp_path, capsys, 'needs its validation set: --data ROOT')
