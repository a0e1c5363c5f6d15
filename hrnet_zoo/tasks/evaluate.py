"""Answers scored against ground truth, as the official test code scores them.

Pose: COCO keypoint AP / AR by pycocotools' ``COCOeval`` (``iouType='keypoints'``), after the official rescoring and
OKS-NMS of deep-high-resolution-net.pytorch (``lib/dataset/coco.py`` ``evaluate``: each person's score is its box
score times the mean of its keypoint scores above ``TEST.IN_VIS_THRE`` = 0.2; then ``lib/nms/nms.py`` ``oks_nms`` per
image at ``TEST.OKS_THRE`` = 0.9, the area of a person being that of its padded crop box). Segmentation: mIoU, per
class IoU and pixel accuracy from one confusion matrix over all images, in percent, as mmseg's ``IoUMetric`` reports
them (unrounded). :func:`evaluate_tag` runs a tag on COCO val2017 or Cityscapes val and scores it.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..data.keypoints import KEYPOINT_SETS, KEYPOINTS
from ..files import check_writable_folder, new_folders, write_atomically
from ..weights.manifest import get_record
from .datasets import CityscapesVal, CocoKeypointsVal, label_files, read_json, read_label_png
from .inputs import load_image
from .pose import box_to_center_scale, estimate_pose
from .predict import build_model
from .segmentation import segment

__all__ = [
    'COCO_METRICS',
    'ConfusionMatrix',
    'coco_keypoint_metrics',
    'evaluate_tag',
    'oks_nms',
    'rescore',
    'segmentation_metrics',
]

COCO_METRICS = ('AP', 'AP50', 'AP75', 'APm', 'APl', 'AR', 'AR50', 'AR75', 'ARm', 'ARl')  # COCOeval.stats' order
KEYPOINT_SCORE_THRESHOLD = 0.2  # TEST.IN_VIS_THRE
OKS_THRESHOLD = 0.9  # TEST.OKS_THRE
RESULTS_FILE = 'keypoints_val2017_results.json'


def _pycocotools() -> tuple[Any, Any]:
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise ImportError("COCO scoring needs pycocotools: pip install 'hrnet_zoo[coco]'") from None
    return COCO, COCOeval


def _keypoint_count(gt: dict[str, Any]) -> tuple[int, tuple[str, ...]]:
    names = next((tuple(c['keypoints']) for c in gt.get('categories', []) if c.get('keypoints')), ())
    lengths = {len(a['keypoints']) for a in gt.get('annotations', []) if 'keypoints' in a}
    if not names and not lengths:
        raise ValueError('the annotations hold no keypoints (no category with "keypoints" names, no annotation with '
                         '"keypoints"); expected a COCO keypoints ground truth file')  # fmt: skip
    count = len(names) if names else lengths.pop() // 3
    if any(n != 3 * count for n in lengths):
        raise ValueError(f'the annotations mix keypoint counts: {sorted(n // 3 for n in lengths)} per person')
    return count, names


def _resolve_sigmas(count: int, names: tuple[str, ...], sigmas: Sequence[float] | str | None) -> np.ndarray | None:
    """The OKS sigmas: given (values or a keypoint set id), else those of the known set with the ground truth's
    keypoint names, else pycocotools' own COCO sigmas for 17 keypoints (None)."""
    coco = KEYPOINTS['coco'].sigmas
    if isinstance(sigmas, str):
        if sigmas not in KEYPOINTS or KEYPOINTS[sigmas].sigmas is None:
            known = ', '.join(k for k, v in KEYPOINTS.items() if v.sigmas)
            raise ValueError(f'no OKS sigmas for keypoint set {sigmas!r}; sets with sigmas: {known}')
        sigmas = KEYPOINTS[sigmas].sigmas
    if sigmas is None:
        known = KEYPOINT_SETS.get(names)
        if known is not None and known.sigmas is not None and len(known.sigmas) == count and known.sigmas != coco:
            sigmas = known.sigmas
        elif count != 17:
            raise ValueError(f'the ground truth has {count} keypoints per person, not COCO\'s 17, and its keypoint '
                             f'names match no set with OKS sigmas; pass sigmas= ({count} values) or a keypoint set '
                             'id such as "crowdpose"')  # fmt: skip
    if sigmas is None:
        return None
    values = np.asarray(sigmas, dtype=np.float64)
    if values.shape != (count,):
        raise ValueError(f'sigmas has {values.size} values, but the ground truth has {count} keypoints per person')
    return values


def _check_results(results: Any, gt: dict[str, Any], count: int) -> None:
    if not isinstance(results, list):
        raise ValueError('predictions must be a COCO keypoint results list (image_id, category_id, keypoints, score)')
    image_ids = {i['id'] for i in gt.get('images', [])}
    categories = {c['id'] for c in gt.get('categories', [])}
    for row in results:
        if not isinstance(row, dict) or not {'image_id', 'category_id', 'keypoints', 'score'} <= set(row):
            raise ValueError(f'a prediction is not a COCO keypoint result (image_id, category_id, keypoints, score): '
                             f'{str(row)[:80]}')  # fmt: skip
        if len(row['keypoints']) != 3 * count:
            raise ValueError(f'a prediction for image {row["image_id"]} has {len(row["keypoints"]) / 3:g} keypoints, '
                             f'the ground truth {count} (x, y, score each)')  # fmt: skip
        if row['image_id'] not in image_ids:
            raise ValueError(f'a prediction is for image {row["image_id"]}, which the ground truth does not have')
        if row['category_id'] not in categories:
            raise ValueError(f'a prediction has category {row["category_id"]}; the ground truth has '
                             f'{sorted(categories)}')  # fmt: skip


def coco_keypoint_metrics(
    predictions: list[dict[str, Any]] | str | Path,
    annotations: dict[str, Any] | str | Path,
    *,
    sigmas: Sequence[float] | str | None = None,
    image_ids: Sequence[int] | None = None,
    verbose: bool = False,
) -> dict[str, float]:
    """COCO keypoint AP / AR of ``predictions`` (a results list or its JSON file) against ``annotations`` (a COCO
    keypoints ground truth dict or file), by pycocotools' ``COCOeval``, under its names (:data:`COCO_METRICS`).

    Args:
        sigmas: the OKS sigmas per keypoint, or a keypoint set id (``'crowdpose'``); None: those of the known set with
            the ground truth's keypoint names, else pycocotools' COCO sigmas for 17 keypoints.
        image_ids: score these images only (pycocotools' ``params.imgIds``); None: every image of the ground truth.
        verbose: let pycocotools print its progress and table.
    Values are fractions (0..1); -1 where pycocotools has nothing to score (no person of that area).
    """
    coco_class, eval_class = _pycocotools()
    gt = annotations if isinstance(annotations, dict) else read_json(annotations, 'COCO keypoints annotation file')
    results = predictions if isinstance(predictions, list) else read_json(predictions, 'COCO keypoint results file')
    if not isinstance(gt, dict) or not isinstance(gt.get('images'), list):
        raise ValueError('annotations must be a COCO ground truth (a dict with "images", "annotations", "categories")')
    count, names = _keypoint_count(gt)
    resolved = _resolve_sigmas(count, names, sigmas)
    _check_results(results, gt, count)
    output = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with output:
        truth = coco_class()
        truth.dataset = copy.deepcopy(gt)  # pycocotools writes into the annotations it scores
        truth.createIndex()
        if results:
            found = truth.loadRes(copy.deepcopy(results))
        else:  # loadRes refuses an empty list; nothing predicted finds nobody
            found = coco_class()
            found.dataset = dict(images=list(gt['images']), categories=list(gt.get('categories', [])), annotations=[])
            found.createIndex()
        evaluator = eval_class(truth, found, 'keypoints')
        if resolved is not None:
            evaluator.params.kpt_oks_sigmas = resolved
        if image_ids is not None:
            evaluator.params.imgIds = sorted(int(i) for i in image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(value) for name, value in zip(COCO_METRICS, evaluator.stats)}


def rescore(people: Sequence[dict[str, Any]], threshold: float = KEYPOINT_SCORE_THRESHOLD) -> list[float]:
    """The official person scores: each person's ``score`` (its box's) times the mean of its keypoint scores above
    ``threshold`` (0 where none is)."""
    out = []
    for person in people:
        scores = np.asarray(person['keypoints'], dtype=np.float64).reshape(-1, 3)[:, 2]
        valid = scores[scores > threshold]
        out.append(float(person['score']) * (float(valid.mean()) if valid.size else 0.0))
    return out


def oks_nms(
    people: Sequence[dict[str, Any]], threshold: float = OKS_THRESHOLD, sigmas: Sequence[float] | None = None
) -> list[int]:
    """OKS non-maximum suppression: the indices of the people kept, best score first. People are taken by score;
    each suppresses the later ones whose OKS with it is above ``threshold``.

    Each person has ``keypoints`` (``[K, 3]`` or flat), ``score`` and ``area``; the OKS of two people is the mean
    over all keypoints of ``exp(-d^2 / (2 * ((a1 + a2) / 2 + eps) * (2 * sigma)^2))``, ``d`` the distance of the
    keypoints and ``a1``, ``a2`` the areas. ``sigmas`` default to COCO's."""
    if not people:
        return []
    points = np.stack([np.asarray(p['keypoints'], dtype=np.float64).reshape(-1, 3)[:, :2] for p in people])
    scores = np.asarray([p['score'] for p in people], dtype=np.float64)
    areas = np.asarray([p['area'] for p in people], dtype=np.float64)
    sigma = np.asarray(KEYPOINTS['coco'].sigmas if sigmas is None else sigmas, dtype=np.float64)
    if sigma.shape != (points.shape[1],):
        raise ValueError(f'oks_nms: {sigma.size} sigmas for people of {points.shape[1]} keypoints')
    variances = (2 * sigma) ** 2
    order = np.argsort(scores, kind='stable')[::-1]
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        squared = ((points[rest] - points[best]) ** 2).sum(-1)  # [M, K]
        scale = (areas[rest] + areas[best])[:, None] / 2 + np.spacing(1)
        oks = np.exp(-squared / variances / scale / 2).mean(-1)
        order = rest[oks <= threshold]
    return keep


class ConfusionMatrix:
    """Counts of (ground truth class, predicted class) over the non-ignored pixels of image pairs."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if num_classes < 1:
            raise ValueError(f'num_classes must be at least 1, got {num_classes}')
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def add(self, prediction: np.ndarray | torch.Tensor, annotation: np.ndarray | torch.Tensor, name: str = '') -> None:
        """Count one pair of ``[H, W]`` class id maps (``name`` names it in errors)."""
        pred, gt = (np.asarray(a.cpu() if isinstance(a, torch.Tensor) else a) for a in (prediction, annotation))
        what = f' ({name})' if name else ''
        if pred.shape != gt.shape:
            raise ValueError(f'the prediction is {pred.shape} and the ground truth {gt.shape}{what}; each prediction '
                             'must have its label map\'s size')  # fmt: skip
        valid = gt != self.ignore_index
        gt, pred = gt[valid].astype(np.int64), pred[valid].astype(np.int64)
        last = self.num_classes - 1
        for values, kind in ((gt, 'ground truth'), (pred, 'prediction')):
            if values.size and (values.min() < 0 or values.max() > last):
                bad = values[(values < 0) | (values > last)][0]
                raise ValueError(f'the {kind}{what} has class id {bad}; expected 0..{last} (or {self.ignore_index}, '
                                 'ignored, in the ground truth)')  # fmt: skip
        counts = np.bincount(gt * self.num_classes + pred, minlength=self.num_classes**2)
        self.matrix += counts.reshape(self.num_classes, self.num_classes)

    def metrics(self) -> dict[str, Any]:
        """``mIoU`` (the mean over classes present in the ground truth or the predictions), ``IoU`` per class (NaN
        for a class in neither) and ``aAcc`` (pixel accuracy), in percent."""
        hits = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(0) + self.matrix.sum(1) - hits
        with np.errstate(divide='ignore', invalid='ignore'):
            iou = hits / union * 100
            accuracy = hits.sum() / self.matrix.sum() * 100
        present = iou[~np.isnan(iou)]
        return dict(mIoU=float(present.mean()) if present.size else float('nan'), IoU=[float(v) for v in iou],
                    aAcc=float(accuracy))  # fmt: skip


def _label_maps(source: Any, what: str) -> dict[str, Any] | list[Any]:
    """A folder of PNGs by key, a mapping by key, or a sequence of arrays / paths by position."""
    if isinstance(source, (str, Path)):
        return {key: (path, mapped) for key, (path, mapped) in label_files(source).items()}
    if isinstance(source, Mapping):
        return dict(source)
    if isinstance(source, (list, tuple)):
        return list(source)
    raise TypeError(f'{what} must be a folder of label PNGs, a list of arrays or a dict of them, got '
                    f'{type(source).__name__}')  # fmt: skip


def _read(item: Any) -> np.ndarray:
    if isinstance(item, tuple):  # from label_files: (path, holds Cityscapes label ids)
        return read_label_png(*item)
    if isinstance(item, (str, Path)):
        return read_label_png(item)
    return np.asarray(item)


def segmentation_metrics(
    predictions: str | Path | Sequence[Any] | Mapping[str, Any],
    annotations: str | Path | Sequence[Any] | Mapping[str, Any],
    num_classes: int,
    ignore_index: int = 255,
) -> dict[str, Any]:
    """mIoU, per class IoU and aAcc (percent) of predicted class ids against ground truth label maps, from one
    confusion matrix over all pairs (:class:`ConfusionMatrix`).

    Each side is a folder of label PNGs (searched recursively, matched by file name stem; Cityscapes' endings such
    as ``_gtFine_labelTrainIds`` are dropped before matching), a dict of arrays by name, or a list of arrays (matched
    by position)."""
    preds, truths = _label_maps(predictions, 'predictions'), _label_maps(annotations, 'annotations')
    matrix = ConfusionMatrix(num_classes, ignore_index)
    if isinstance(preds, dict) != isinstance(truths, dict):
        raise ValueError('predictions and annotations must both be folders / dicts (matched by name) or both lists')
    if isinstance(preds, list):
        if len(preds) != len(truths):
            raise ValueError(f'{len(preds)} predictions for {len(truths)} ground truth label maps')
        pairs = [(str(i), p, t) for i, (p, t) in enumerate(zip(preds, truths))]
    else:
        missing = sorted(set(truths) - set(preds))
        if missing:
            raise FileNotFoundError(f'no prediction for ground truth {missing[0]!r} ({len(missing)} missing); expected '
                                    f'a file named {missing[0]}.png among the predictions')  # fmt: skip
        extra = sorted(set(preds) - set(truths))
        if extra:
            raise FileNotFoundError(f'no ground truth for prediction {extra[0]!r} ({len(extra)} without one)')
        pairs = [(key, preds[key], truths[key]) for key in sorted(truths)]
    for key, pred, truth in pairs:
        matrix.add(_read(pred), _read(truth), name=key)
    return matrix.metrics()


def _protocol(name: str) -> tuple[Any, str]:
    record = get_record(name)
    if record.decoder == 'topdown_heatmaps' and record.dataset == 'coco' and record.keypoints is not None:
        if len(record.keypoints.names) == 17:
            return record, 'pose'
    if record.decoder == 'segmentation_logits' and record.dataset == 'cityscapes':
        return record, 'segmentation'
    raise ValueError(f'evaluate_tag reads COCO val2017 (body keypoints) and Cityscapes val; {name} is trained on '
                     f'{record.dataset_name} ({record.task}): run it on that set and score the answers with '
                     'hrnet-zoo evaluate --predictions ... --annotations ...')  # fmt: skip


def evaluate_tag(
    name: str,
    data_root: str | Path,
    *,
    limit: int | None = None,
    batch_size: int = 32,
    detections: str | Path | None = None,
    out_dir: str | Path | None = None,
    model: torch.nn.Module | None = None,
    weights: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run tag ``name`` on its validation set under ``data_root`` with its record's test protocol, write the
    predictions into ``out_dir`` (if given) and return their metrics.

    Pose (COCO val2017): the official ``use_gt_bbox`` person boxes, or those of ``detections`` (a COCO detection
    results file), flip test and the record's decoding, ``batch_size`` boxes a forward; then the official rescoring
    and OKS-NMS, scored by :func:`coco_keypoint_metrics` (results JSON: ``out_dir/keypoints_val2017_results.json``).
    Segmentation (Cityscapes val): one scale, the whole image, no flip; ``out_dir/<key>.png`` of train ids, scored by
    :class:`ConfusionMatrix`. ``limit`` runs the first images only and scores against their ground truth.
    ``model`` runs instead of the tag's weights (``weights``: a converted folder or ``model.safetensors``; None: the
    tag's own download).
    """
    record, task = _protocol(name)
    if limit is not None and limit < 1:
        raise ValueError(f'limit must be a positive number of images, got {limit}')
    if batch_size < 1:
        raise ValueError(f'batch_size must be at least 1, got {batch_size}')
    if out_dir is not None:
        check_writable_folder(out_dir, f'cannot write the predictions into {out_dir}')
    if task == 'pose':
        data = CocoKeypointsVal(data_root, limit)
        boxes = data.detections(detections) if detections is not None else None
    else:
        if detections is not None:
            raise ValueError('detections are person boxes for pose tags; a segmentation tag labels every pixel')
        data = CityscapesVal(data_root, limit)
    if model is None:  # the tag's weights, fetched only once the data is known to be there
        model = build_model(name, weights)
    model.eval()
    written: list[Path] = []
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(new_folders(out_dir)) if out_dir is not None else None
        try:
            if task == 'pose':
                return _evaluate_pose(model, record, data, boxes, batch_size, folder, written, progress)
            return _evaluate_segmentation(model, record, data, folder, written, progress)
        except BaseException:
            for path in written:  # a failed run leaves none of its predictions behind
                path.unlink(missing_ok=True)
            raise


def _bar(items: Any, total: int, name: str, progress: bool) -> Any:
    # disable=None: no bar where stderr is not a terminal (a log file, a test)
    return tqdm(items, total=total, desc=name, unit='image', disable=None if progress else True)


def _evaluate_pose(
    model: Any, record: Any, data: CocoKeypointsVal, detections: Any, batch_size: int, folder: Path | None,
    written: list[Path], progress: bool,
) -> dict[str, float]:  # fmt: skip
    joints = record.keypoints
    decode = 'default' if record.decoding == 'standard' else record.decoding
    _, in_h, in_w = model.pretrained_cfg['input_size']
    results: list[dict[str, Any]] = []
    for info in _bar(data.images, len(data), record.name, progress):
        image_id = int(info['id'])
        if detections is None:
            boxes = data.gt_boxes(image_id)
            box_scores = np.ones(len(boxes))  # JointsDataset: a ground truth box scores 1
        else:
            boxes, box_scores = detections[image_id]
        if not len(boxes):
            continue
        pixels = load_image(data.image_path(info))
        height, width = pixels.shape[-2:]
        boxes = boxes.copy()
        # the official crop takes any box; estimate_pose refuses empty ones: a zero side (a cleaned 1-pixel box)
        # grows to 1e-3 px, which moves the crop by at most 5e-4 px; boxes off the image are dropped
        boxes[:, 2:] = np.maximum(boxes[:, 2:], 1e-3)
        inside = (boxes[:, 0] < width) & (boxes[:, 1] < height) & (boxes[:, :2] + boxes[:, 2:] > 0).all(1)
        boxes, box_scores = boxes[inside], box_scores[inside]
        people: list[dict[str, Any]] = []
        for start in range(0, len(boxes), batch_size):
            chunk = torch.from_numpy(boxes[start : start + batch_size])
            poses = estimate_pose(model, pixels, chunk, flip=True, decode=decode, joints=joints)
            _, scale = box_to_center_scale(chunk, in_w / in_h)
            areas = (scale * 200).prod(1).tolist()  # the official "area": of the padded crop box
            for person, score, area in zip(poses.keypoints.double().numpy(), box_scores[start:], areas):
                people.append(dict(keypoints=person, score=float(score), area=area))
        for person, score in zip(people, rescore(people)):
            person['score'] = score
        for index in oks_nms(people, OKS_THRESHOLD, joints.sigmas):
            person = people[index]
            flat = [float(v) for v in person['keypoints'].ravel()]
            results.append(dict(image_id=image_id, category_id=1, keypoints=flat, score=person['score']))
    if folder is not None:
        path = folder / RESULTS_FILE
        text = json.dumps(results)
        write_atomically(path, lambda tmp: tmp.write_text(text, encoding='utf-8'))
        written.append(path)
    return coco_keypoint_metrics(results, data.restricted_annotations(), image_ids=data.image_ids)


def _evaluate_segmentation(
    model: Any, record: Any, data: CityscapesVal, folder: Path | None, written: list[Path], progress: bool
) -> dict[str, Any]:
    matrix = ConfusionMatrix(record.num_classes)
    for sample in _bar(data, len(data), record.name, progress):
        truth = sample.read_label()
        ids = segment(model, load_image(sample.image)).class_ids[0].numpy()
        matrix.add(ids, truth, name=f'{sample.image.name} and {sample.label.name}')
        if folder is not None:
            path = folder / f'{sample.key}.png'
            picture = Image.fromarray(ids.astype(np.uint8))
            write_atomically(path, lambda tmp, picture=picture: picture.save(tmp, format='PNG'))
            written.append(path)
    return matrix.metrics()
