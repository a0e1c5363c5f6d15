"""What ``hrnet-zoo predict`` does, as functions: build the model (Hub weights, or a local file checked against it),
stream the sources through it (:func:`~.stream.predict_stream`), draw each answer, and write every picture, label
PNG, video and JSON whole or not at all (:func:`predict_files`)."""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from PIL import Image
from tqdm import tqdm

from .._moved import moved_attribute
from ..files import check_writable_folder, new_folders
from ..files import write_atomically as _write_atomically  # the public name here is the moved one (__getattr__)
from ..specs import HEADS, parse_arch
from ..weights.checks import load_pretrained_file
from ..weights.manifest import get_record
from .detect import PersonDetector
from .draw import draw_pose, draw_segmentation, to_pil
from .inputs import ImageInput, head_task, load_image, model_decoder, model_record
from .pose import IN_VIS_THRE, check_boxes, estimate_pose, joints_of
from .segmentation import segment
from .sources import VIDEO_EXTENSIONS, Frame, FrameSource, SourceItem, read_source
from .stream import Answer, coco_keypoint_results, predict_stream
from .video import write_video

__all__ = [
    'PICTURE_FORMATS',
    'PREDICT_DECODERS',
    'PREDICT_TASKS',
    'SCORE_NOTE',
    'PredictSummary',
    'build_model',
    'check_request',
    'check_task',
    'make_detector',
    'predict_files',
    'predict_image',
]

# what --out may name for one image, and the format written: the extension's, whatever Pillow would guess
PICTURE_FORMATS = {'.jpg': 'JPEG', '.jpeg': 'JPEG', '.png': 'PNG', '.webp': 'WEBP'}
SCORE_NOTE = (f'score = box score x mean keypoint score above {IN_VIS_THRE}; a keypoint score is its heatmap peak, '
              'not a probability')  # fmt: skip

# what predict serves: each decoder and the task it answers
PREDICT_DECODERS = {'segmentation_logits': 'image-segmentation', 'topdown_heatmaps': 'keypoint-detection'}
PREDICT_TASKS = tuple(PREDICT_DECODERS.values())


def check_task(name: str) -> str:
    """The task ``<arch>.<tag>`` answers, refusing tags whose output predict does not read (before anything is
    built)."""
    record = get_record(name)
    head = HEADS[parse_arch(record.arch)[0]]
    if record.decoder not in PREDICT_DECODERS:
        raise ValueError(f'{name} has the {head.described}, which does {record.task}; predict does '
                         f'{" and ".join(PREDICT_TASKS)}')  # fmt: skip
    return PREDICT_DECODERS[record.decoder]


def build_model(name: str, weights: str | Path | None = None) -> torch.nn.Module:
    """``<arch>.<tag>`` in eval mode: with the tag's Hub weights (timm's ``pretrained=True``), or with ``weights``,
    a folder written by ``hrnet-zoo convert`` or a ``model.safetensors``, checked against the model, offline."""
    check_task(name)
    if weights is None:
        return timm.create_model(name, pretrained=True).eval()
    path = Path(weights)
    path = path / 'model.safetensors' if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f'No weights file {path} (--weights takes a converted folder or a model.safetensors)')
    model = timm.create_model(name)
    load_pretrained_file(model, path)  # refuses another arch, head, width, class count or fuse upsampling
    return model.eval()


def check_request(
    task: str,
    pixels: torch.Tensor,
    boxes: Sequence[Sequence[float]] | None,
    scales: Sequence[float],
    crop_size: Sequence[int] | None = None,
) -> None:
    """Refuse options the task does not take, and boxes of zero area or outside the image."""
    if task == 'image-segmentation' and boxes:
        raise ValueError('--boxes is for keypoint models; a segmentation model labels every pixel')
    if task == 'keypoint-detection':
        if tuple(scales) != (1.0,) or crop_size:
            raise ValueError('--scales and --crop-size are for segmentation models; a pose model crops each box')
        if boxes:
            check_boxes(torch.tensor(boxes, dtype=torch.float64), *pixels.shape[-2:])


def predict_image(
    model: torch.nn.Module,
    image: ImageInput,
    boxes: Sequence[Sequence[float]] | None = None,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    crop_size: Sequence[int] | None = None,
) -> tuple[Image.Image, dict[str, Any]]:
    """The picture and the JSON entry of one image: class areas for segmentation, keypoints per box for pose (the
    whole image as one box when ``boxes`` is None)."""
    pixels = load_image(image)
    height, width = pixels.shape[-2:]
    entry: dict[str, Any] = dict(width=width, height=height)
    record = model_record(model)
    task = PREDICT_DECODERS.get(model_decoder(model), head_task(model))
    check_request(task, pixels, boxes, scales, crop_size)
    if task == 'image-segmentation':
        result = segment(model, pixels, scales=scales, flip=flip, crop_size=tuple(crop_size) if crop_size else None)
        entry['classes'] = result.class_areas()
        palette = record.palette if record is not None else None
        picture = draw_segmentation(to_pil(pixels), result.class_ids[0], palette)
    else:
        box_tensor = torch.tensor(boxes if boxes else [[0.0, 0.0, float(width), float(height)]], dtype=torch.float64)
        poses = estimate_pose(model, pixels, box_tensor, flip=flip)
        entry['people'] = poses.to_list()
        picture = draw_pose(to_pil(pixels), poses)
    return picture, entry


class _LazyDetector:
    """A person detector built on its first call: a face, hand or animal model never calls it, so never downloads
    its weights."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build, self._detector = build, None

    def __call__(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._detector is None:
            self._detector = self._build()
        return self._detector(pixels)


def make_detector(
    name: str | None = None, score_threshold: float | None = None, max_people: int | None = None
) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None:
    """The person detector of ``--detector`` / ``--score-threshold`` / ``--max-people`` (built when first called);
    None when none is asked for (:func:`~.stream.predict_stream` then uses the default detector)."""
    options = {k: v for k, v in dict(score_threshold=score_threshold, max_people=max_people).items() if v is not None}
    if name is None and not options:
        return None
    if max_people is not None and max_people < 1:
        raise ValueError(f'--max-people must be at least 1, got {max_people}')
    return _LazyDetector(lambda: PersonDetector(name, **options) if name else PersonDetector(**options))


@dataclass
class PredictSummary:
    """What :func:`predict_files` did: frames answered, people found (pose) or pixels labelled (segmentation),
    broken files skipped, seconds, and the files written (pictures, label PNGs, videos, the JSON)."""

    task: str
    frames: int = 0
    people: int = 0
    pixels: int = 0
    skipped: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    written: list[Path] = field(default_factory=list)
    json: Path | None = None

    def line(self) -> str:
        """One line: frames, people or pixels, skipped files, seconds and frames per second."""
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        found = (f'{self.people} people ({SCORE_NOTE})' if self.task == 'keypoint-detection'
                 else f'{self.pixels} pixels labelled')  # fmt: skip
        skipped = f'{len(self.skipped)} skipped file{"" if len(self.skipped) == 1 else "s"}'
        return f'{self.frames} frames, {found}, {skipped}, {self.seconds:.1f} s ({rate:.2f} frames/s)'


@dataclass
class _Plan:
    """Where each answer goes: one picture (``picture``) or a folder of them (``folder``), and the JSON."""

    task: str
    picture: Path | None
    folder: Path | None
    json: Path | None
    items: dict[str, SourceItem]

    def stem(self, frame: Frame) -> str:
        if self.picture is not None:
            return self.picture.stem
        item = self.items.get(frame.source or '')
        if frame.is_video:
            return _video_stem(item) if item is not None else 'video'
        return Path(frame.name).stem

    def picture_path(self, frame: Frame) -> Path:
        if self.picture is not None:
            return self.picture
        assert self.folder is not None
        return self.folder / f'{self.stem(frame)}.png'

    def labels_path(self, frame: Frame) -> Path:
        if frame.is_video:
            assert self.folder is not None
            return self.folder / f'{self.stem(frame)}_labels' / f'{frame.name}.png'
        picture = self.picture_path(frame)
        return picture.with_name(f'{picture.stem}_labels.png')

    def video_path(self, frame: Frame) -> Path:
        assert self.folder is not None
        return self.folder / f'{self.stem(frame)}.mp4'


def _video_stem(item: SourceItem) -> str:
    assert item.path is not None
    return f'webcam{item.device}' if item.kind == 'webcam' else item.path.stem


def _plan(task: str, items: list[SourceItem], out: Path, json_path: Path | None) -> _Plan:
    """Check every output name before anything runs: the kind of ``--out``, folders that can be made, and no two
    inputs writing one file."""
    suffix = out.suffix.lower()
    one_image = len(items) == 1 and items[0].kind == 'image'
    by_source = {str(item.path): item for item in items if item.path is not None}
    if json_path is not None and json_path.is_dir():
        raise IsADirectoryError(f'--json names the JSON file to write; {json_path} is a folder')
    if suffix in PICTURE_FORMATS and not (out.is_dir() and not one_image):
        if not one_image:
            what = 'a video' if items[0].kind in ('video', 'webcam') and len(items) == 1 else f'{len(items)} inputs'
            raise ValueError(f'--out {out} names one picture, but the input is {what}; give --out a folder '
                             '(made if missing)')  # fmt: skip
        if out.is_dir():
            raise IsADirectoryError(f'--out {out} is a folder; name the picture to write (.jpg, .png, .webp), or '
                                    'give a folder name without a picture extension')  # fmt: skip
        check_writable_folder(out.parent, f'cannot write {out}')
        if json_path is not None:
            check_writable_folder(json_path.parent, f'cannot write {json_path}')
        return _Plan(task, out, None, json_path, by_source)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f'--out {out} is a file; give a folder (made if missing) or, for one image, a new '
                                 f'{"/".join(PICTURE_FORMATS)} file')  # fmt: skip
    if suffix in VIDEO_EXTENSIONS and not out.is_dir():
        raise ValueError(f'--out {out}: a video is written into the folder --out names, as <video stem>.mp4 beside '
                         'its JSON; give --out a folder')  # fmt: skip
    if suffix and not out.is_dir():
        raise ValueError(f'--out {out}: unknown extension {out.suffix!r}; one picture is '
                         f'{", ".join(PICTURE_FORMATS)}, and a folder (for folders, globs, videos, webcams) has '
                         'no extension')  # fmt: skip
    check_writable_folder(out, f'cannot write into {out}')
    json_path = json_path or out / ('keypoints.json' if task == 'keypoint-detection' else 'segmentation.json')
    check_writable_folder(json_path.parent, f'cannot write {json_path}')
    plan = _Plan(task, None, out, json_path, by_source)
    seen: dict[str, Path] = {}
    for item in items:
        assert item.path is not None
        stem = item.path.stem if item.kind == 'image' else _video_stem(item)
        names = [f'{stem}.png' if item.kind == 'image' else f'{stem}.mp4']
        if task == 'image-segmentation':  # the label PNG beside the picture, or a folder of them for a video
            names.append(f'{stem}_labels.png' if item.kind == 'image' else f'{stem}_labels')
        for name in names:
            if name in seen:
                raise ValueError(f'{seen[name]} and {item.path} would both write {out / name}; predict them '
                                 'into different folders')  # fmt: skip
            seen[name] = item.path
    return plan


def _save_picture(path: Path, picture: Image.Image) -> None:
    image_format = PICTURE_FORMATS.get(path.suffix.lower(), 'PNG')
    options = dict(quality=95) if image_format in ('JPEG', 'WEBP') else {}
    _write_atomically(path, lambda tmp: picture.save(tmp, format=image_format, **options))


def _save_labels(path: Path, class_ids: torch.Tensor) -> None:
    """Class ids as a PNG, one pixel each: 8-bit up to 256 classes, else 16-bit."""
    ids = class_ids.detach().cpu().numpy()
    array = ids.astype(np.uint8) if ids.max(initial=0) < 256 else ids.astype(np.uint16)
    _write_atomically(path, lambda tmp: Image.fromarray(array).save(tmp, format='PNG'), make_parents=True)


class _Writer:
    """Writes each answer's files as it comes and gathers the JSON."""

    def __init__(self, plan: _Plan, model_name: str, model: Any, summary: PredictSummary) -> None:
        self.plan, self.summary = plan, summary
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        joints = joints_of(model) if plan.task == 'keypoint-detection' else None
        self.header: dict[str, Any] = dict(model=model_name, task=plan.task)
        if joints is not None:
            self.header['score'] = SCORE_NOTE
            self.header['categories'] = [dict(id=1, name='person', keypoints=list(joints.names),
                                              skeleton=[[a + 1, b + 1] for a, b in joints.skeleton])]  # fmt: skip

    def take(self, answer: Answer) -> Image.Image:
        frame = answer.frame
        height, width = frame.pixels.shape[-2:]
        entry: dict[str, Any] = dict(id=frame.index, file_name=frame.name, width=int(width), height=int(height))
        if frame.source is not None:
            entry['video' if frame.is_video else 'image'] = frame.source
        if frame.time is not None:
            entry['time'] = frame.time
        self.summary.frames += 1
        if answer.poses is not None:
            self.annotations += coco_keypoint_results([answer])
            self.summary.people += len(answer.poses.keypoints)
        else:
            assert answer.segmentation is not None
            labels = self.plan.labels_path(frame)
            _save_labels(labels, answer.segmentation.class_ids[0])
            self.summary.written.append(labels)
            base = self.plan.folder if self.plan.folder is not None else labels.parent
            entry['labels'] = labels.relative_to(base).as_posix()
            entry['classes'] = answer.segmentation.class_areas()
            self.summary.pixels += int(width) * int(height)
        self.images.append(entry)
        return answer.picture()

    def write(self, answers: Iterator[Answer]) -> None:
        for (_, video), group in itertools.groupby(answers, key=lambda a: (a.frame.source, a.frame.is_video)):
            if video:
                first = next(group)
                path = self.plan.video_path(first.frame)
                pictures = (self.take(a) for a in itertools.chain([first], group))
                write_video(path, pictures, first.frame.fps or 25)
                self.summary.written.append(path)
            else:
                for answer in group:
                    picture = self.take(answer)
                    path = self.plan.picture_path(answer.frame)
                    _save_picture(path, picture)
                    self.summary.written.append(path)

    def write_json(self) -> None:
        if self.plan.json is None:
            return
        body = dict(self.header, images=self.images)
        if self.plan.task == 'keypoint-detection':
            body['annotations'] = self.annotations
        text = json.dumps(body, indent=1)
        _write_atomically(self.plan.json, lambda tmp: tmp.write_text(text, encoding='utf-8'))
        self.summary.written.append(self.plan.json)
        self.summary.json = self.plan.json


def predict_files(
    sources: Sequence[Any],
    model_name: str,
    out: str | Path,
    *,
    json_path: str | Path | None = None,
    weights: str | Path | None = None,
    boxes: Sequence[Sequence[float]] | None = None,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    crop_size: Sequence[int] | None = None,
    detector: str | None = None,
    score_threshold: float | None = None,
    max_people: int | None = None,
    progress: bool = True,
) -> PredictSummary:
    """``hrnet-zoo predict``: every frame of ``sources`` (images, folders, globs, videos, webcams; see
    :func:`~.sources.read_source`) through ``model_name``, drawn, with the answers as JSON.

    ``out`` is one picture (``.jpg``, ``.png``, ``.webp``: the format the extension names) for a single image, else
    a folder, made with its parents if missing: ``<stem>.png`` per image, ``<stem>.mp4`` per video (the source's
    frame rate), and for segmentation ``<stem>_labels.png`` (class ids, 8- or 16-bit) beside each picture
    (``<stem>_labels/frame_NNNNNN.png`` for a video). The JSON (``json_path``; for a folder by default
    ``keypoints.json`` / ``segmentation.json`` in it) has ``images`` (``id`` = the frame index, ``file_name``,
    ``width``, ``height``) and, for pose, ``categories`` and ``annotations`` in the COCO results format
    (``COCO.loadRes(data['annotations'])``); for segmentation each image's ``classes`` and ``labels`` file.

    Every input and output name is checked before the model is built. Each file is written whole when its frame is
    done (a video when its last frame is); if the run fails midway, the files already completed stay, the one in
    progress and the JSON are not written, and folders made for the run are removed if they are still empty.
    """
    task = check_task(model_name)  # a head predict does not serve is refused before any download
    if task == 'image-segmentation' and (detector is not None or score_threshold is not None or max_people):
        raise ValueError('--detector, --score-threshold and --max-people are for person pose, not segmentation')
    if boxes and (detector is not None or score_threshold is not None or max_people is not None):
        raise ValueError('--boxes replaces the person detector; give either --boxes or --detector and its options')
    frames = read_source(list(sources))
    plan = _plan(task, frames.items, Path(out), Path(json_path) if json_path is not None else None)
    first = _first_frame(frames)  # a named image that cannot be read is refused here, before the model
    check_request(task, first.pixels, boxes, scales, crop_size)
    person_detector = make_detector(detector, score_threshold, max_people) if task == 'keypoint-detection' else None
    model = build_model(model_name, weights)
    summary = PredictSummary(task, skipped=frames.skipped)
    writer = _Writer(plan, model_name, model, summary)
    folders = {plan.folder if plan.folder is not None else plan.picture.parent}  # type: ignore[union-attr]
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        for folder in sorted(folders | ({plan.json.parent} if plan.json is not None else set())):
            stack.enter_context(new_folders(folder))
        options: dict[str, Any] = dict(flip=flip)
        if task == 'keypoint-detection':
            options.update(boxes=boxes, detector=person_detector)
        else:
            options.update(scales=scales, crop_size=tuple(crop_size) if crop_size else None)
        answers = predict_stream(model, itertools.chain([first], frames), **options)
        total = len(frames.items) if all(i.kind == 'image' for i in frames.items) else None
        bar = tqdm(answers, total=total, unit='frame', file=sys.stderr, disable=None if progress else True)
        try:
            writer.write(iter(bar))
        finally:
            bar.close()
            frames.close()
        writer.write_json()
    summary.seconds = time.perf_counter() - start
    return summary


def _first_frame(frames: FrameSource) -> Frame:
    try:
        return next(frames)
    except StopIteration:
        skipped = f' ({len(frames.skipped)} broken files skipped)' if frames.skipped else ''
        raise ValueError(f'no frame could be read from the input{skipped}') from None


def __getattr__(name: str) -> Any:
    return moved_attribute(__name__, name, {'write_atomically': 'hrnet_zoo.files'})
