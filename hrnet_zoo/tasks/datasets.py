"""Validation sets on disk, read lazily: COCO val2017 keypoints and Cityscapes val, as the official test code reads
them.

COCO: the ground truth is ``ROOT/annotations/person_keypoints_val2017.json`` and the images ``ROOT/val2017/`` (the
layout mmpose documents) or ``ROOT/images/val2017/`` (deep-high-resolution-net.pytorch's). The person boxes of the
``use_gt_bbox`` protocol are those of ``COCODataset._load_coco_keypoint_annotation_kernal``: non-crowd persons with a
labelled keypoint, the box clipped to the image (``x2 = min(width - 1, x1 + max(0, w - 1))``) and kept where the
annotation's area is positive. Detector boxes come from a COCO results file (person category, score at least
``TEST.IMAGE_THRE``, 0.0 in the official configs).

Cityscapes: ``ROOT/leftImg8bit/val/<city>/*_leftImg8bit.png`` with ``ROOT/gtFine/val/<city>/*_gtFine_labelTrainIds.png``
or, where only those exist, ``*_gtFine_labelIds.png`` mapped to train ids
(:data:`~hrnet_zoo.data.labels.CITYSCAPES_TRAIN_IDS`, 255 ignored).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..data.labels import CITYSCAPES_TRAIN_IDS

__all__ = [
    'CITYSCAPES_SUFFIXES',
    'CityscapesSample',
    'CityscapesVal',
    'CocoKeypointsVal',
    'label_files',
    'read_json',
    'read_label_png',
]

DETECTION_SCORE_THRESHOLD = 0.0  # TEST.IMAGE_THRE of the official COCO configs
PERSON = 1  # COCO's person category id
COCO_ANNOTATIONS = ('annotations/person_keypoints_val2017.json',)
COCO_IMAGES = ('val2017', 'images/val2017')  # mmpose's layout, then the official code's
# the name endings of Cityscapes' images and label files; a file's key is its name without them
IMAGE_SUFFIX, TRAIN_IDS_SUFFIX, LABEL_IDS_SUFFIX = '_leftImg8bit', '_gtFine_labelTrainIds', '_gtFine_labelIds'
CITYSCAPES_SUFFIXES = (IMAGE_SUFFIX, TRAIN_IDS_SUFFIX, LABEL_IDS_SUFFIX)
_TRAIN_ID_LOOKUP = np.full(256, 255, dtype=np.uint8)
_TRAIN_ID_LOOKUP[list(CITYSCAPES_TRAIN_IDS)] = list(CITYSCAPES_TRAIN_IDS.values())


def read_json(path: str | Path, what: str) -> Any:
    """The parsed JSON file ``path``, with one clear line for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'No such {what}: {path}')
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f'{path} is not a JSON file ({err}); expected {what}') from None


def read_label_png(path: str | Path, train_ids: bool = False) -> np.ndarray:
    """A label PNG as a ``[H, W]`` uint8 array of class ids (``train_ids``: Cityscapes label ids mapped to train
    ids)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'No such label file: {path}')
    with Image.open(path) as image:
        if image.mode not in ('L', 'P', 'I', 'I;16'):
            raise ValueError(f'{path} is a {image.mode} image; a label PNG holds one class id per pixel (mode L or P)')
        labels = np.asarray(image)
    if labels.max(initial=0) > 255:
        raise ValueError(f'{path} has class ids above 255; expected 8-bit label ids')
    labels = labels.astype(np.uint8)
    return _TRAIN_ID_LOOKUP[labels] if train_ids else labels


def _key(path: Path) -> str:
    stem = path.stem
    for suffix in CITYSCAPES_SUFFIXES:
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def label_files(folder: str | Path) -> dict[str, tuple[Path, bool]]:
    """The label PNGs under ``folder`` (searched recursively) by key, with whether each holds Cityscapes label ids to
    map. The key is the file's stem without a Cityscapes ending; in a Cityscapes ``gtFine`` folder only the
    ``*_gtFine_labelTrainIds.png`` files count (``*_gtFine_labelIds.png`` where those are absent)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'No such folder of label PNGs: {folder}')
    paths = sorted(folder.rglob('*.png'))
    train = [p for p in paths if p.stem.endswith(TRAIN_IDS_SUFFIX)]
    ids = [p for p in paths if p.stem.endswith(LABEL_IDS_SUFFIX)]
    chosen = [(p, False) for p in train] or [(p, True) for p in ids]
    if not chosen:
        chosen = [(p, False) for p in paths if '_gtFine_' not in p.stem]
    found: dict[str, tuple[Path, bool]] = {}
    for path, mapped in chosen:
        key = _key(path)
        if key in found:
            raise ValueError(f'two label files have the name {key!r}: {found[key][0]} and {path}; names must be unique')
        found[key] = (path, mapped)
    if not found:
        raise FileNotFoundError(f'No label PNGs in {folder}')
    return found


class CocoKeypointsVal:
    """COCO val2017 keypoints under ``root``: the ground truth, and per image its file and person boxes.

    ``limit`` keeps the first images in the annotation file's order (``COCO.getImgIds()``)."""

    def __init__(self, root: str | Path, limit: int | None = None) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f'No such COCO folder: {root}')
        annotations = next((root / a for a in COCO_ANNOTATIONS if (root / a).is_file()), None)
        images = next((root / i for i in COCO_IMAGES if (root / i).is_dir()), None)
        if annotations is None or images is None:
            raise FileNotFoundError(
                f'{root} is not a COCO val2017 folder: expected {COCO_ANNOTATIONS[0]} and {COCO_IMAGES[0]}/ (or '
                f'{COCO_IMAGES[1]}/) in it'
            )
        self.root, self.image_folder, self.annotation_file = root, images, annotations
        self.annotations: dict[str, Any] = read_json(annotations, 'COCO keypoints annotation file')
        if not isinstance(self.annotations, dict) or 'images' not in self.annotations:
            raise ValueError(f'{annotations} is not a COCO annotation file (no "images" list)')
        infos = self.annotations['images'][:limit] if limit is not None else self.annotations['images']
        self.images: list[dict[str, Any]] = list(infos)
        self._infos = {int(i['id']): i for i in self.images}
        self.image_ids = [int(i['id']) for i in self.images]
        self._persons: dict[int, list[dict[str, Any]]] = {i: [] for i in self.image_ids}
        for ann in self.annotations.get('annotations', []):
            if ann.get('image_id') in self._persons:
                self._persons[ann['image_id']].append(ann)

    def __len__(self) -> int:
        return len(self.images)

    def image_path(self, info: dict[str, Any]) -> Path:
        """The image file of an ``images`` entry."""
        return self.image_folder / info['file_name']

    def gt_boxes(self, image_id: int) -> np.ndarray:
        """``[N, 4]`` x, y, w, h: the official ``use_gt_bbox`` boxes of the image (cleaned, non-crowd persons with
        keypoints)."""
        info = self._infos[image_id]
        width, height = info['width'], info['height']
        boxes = []
        for ann in self._persons[image_id]:
            if ann.get('iscrowd', 0) or ann.get('category_id') != PERSON or max(ann.get('keypoints') or [0]) == 0:
                continue
            x, y, w, h = ann['bbox']
            x1, y1 = max(0.0, x), max(0.0, y)
            x2, y2 = min(width - 1.0, x1 + max(0.0, w - 1)), min(height - 1.0, y1 + max(0.0, h - 1))
            if ann['area'] > 0 and x2 >= x1 and y2 >= y1:
                boxes.append([x1, y1, x2 - x1, y2 - y1])
        return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)

    def detections(
        self, path: str | Path, threshold: float = DETECTION_SCORE_THRESHOLD
    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Per image of this set: the person boxes ``[M, 4]`` and scores ``[M]`` of a COCO detection results file,
        those scoring at least ``threshold``."""
        rows = read_json(path, 'COCO detection results file')
        if not isinstance(rows, list) or any(not isinstance(r, dict) or not {'image_id', 'bbox', 'score'} <= set(r)
                                             for r in rows):  # fmt: skip
            raise ValueError(f'{path} is not a COCO detection results file (a list of image_id, bbox, score objects)')
        found: dict[int, tuple[list, list]] = {i: ([], []) for i in self.image_ids}
        for row in rows:
            if row.get('category_id', PERSON) != PERSON or row['score'] < threshold or row['image_id'] not in found:
                continue
            found[row['image_id']][0].append(row['bbox'])
            found[row['image_id']][1].append(row['score'])
        return {i: (np.asarray(b, dtype=np.float64).reshape(-1, 4), np.asarray(s, dtype=np.float64))
                for i, (b, s) in found.items()}  # fmt: skip

    def restricted_annotations(self) -> dict[str, Any]:
        """The ground truth of the kept images only (``limit``)."""
        kept = set(self.image_ids)
        persons = [a for a in self.annotations.get('annotations', []) if a['image_id'] in kept]
        return dict(self.annotations, images=self.images, annotations=persons)


@dataclass(frozen=True)
class CityscapesSample:
    """One Cityscapes image: its key (``<city>_<seq>_<frame>``), image file and label file."""

    key: str
    image: Path
    label: Path
    label_ids: bool  # the label file holds label ids, mapped to train ids when read

    def read_label(self) -> np.ndarray:
        """The ``[H, W]`` train ids (255 ignored)."""
        return read_label_png(self.label, train_ids=self.label_ids)


class CityscapesVal:
    """Cityscapes val under ``root``: the images of ``leftImg8bit/val`` paired with their ``gtFine/val`` labels, sorted
    by name; ``limit`` keeps the first ones."""

    def __init__(self, root: str | Path, limit: int | None = None) -> None:
        root = Path(root)
        images, labels = root / 'leftImg8bit' / 'val', root / 'gtFine' / 'val'
        if not images.is_dir() or not labels.is_dir():
            raise FileNotFoundError(f'{root} is not a Cityscapes folder: expected leftImg8bit/val/<city>/ and '
                                    'gtFine/val/<city>/ in it')  # fmt: skip
        paths = sorted(images.glob(f'*/*{IMAGE_SUFFIX}.png'))
        if not paths:
            raise FileNotFoundError(f'No *{IMAGE_SUFFIX}.png images in {images}/<city>/')
        targets = label_files(labels)
        self.samples: list[CityscapesSample] = []
        for path in paths[:limit] if limit is not None else paths:
            key = _key(path)
            if key not in targets:
                raise FileNotFoundError(f'No label file for {path}: expected {labels}/{path.parent.name}/'
                                        f'{key}{TRAIN_IDS_SUFFIX}.png')  # fmt: skip
            self.samples.append(CityscapesSample(key, path, *targets[key]))

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[CityscapesSample]:
        return iter(self.samples)
