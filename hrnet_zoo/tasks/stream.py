"""Answers frame by frame: :func:`predict_stream` runs a pose or segmentation model over a source (an image, a
folder, a glob, a video, a webcam; see :func:`~.sources.read_source`) and yields one :class:`Answer` per frame as
soon as that frame is done, so a video streams in constant memory. Each answer carries its timings, split into the
person detector, the model's forward passes and the rest (reading the frame, crops, decoding).

:func:`coco_keypoint_results` turns pose answers into the COCO results format that ``COCO.loadRes`` reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from .detect import default_detector
from .draw import draw_pose, draw_segmentation, to_pil
from .inputs import model_decoder, model_record
from .pose import DECODER as POSE_DECODER
from .pose import Detector, Poses, estimate_pose, finds_people
from .segmentation import DECODER as SEGMENTATION_DECODER
from .segmentation import SegmentationResult, segment
from .sources import Frame, FrameSource, read_source

__all__ = ['Answer', 'Timings', 'coco_keypoint_results', 'predict_stream']


@dataclass
class Timings:
    """Seconds one frame cost: in the person ``detector``, in the model's ``forward`` passes, and the ``rest``
    (reading and decoding the frame, crops, normalising, decoding heatmaps or upsampling logits)."""

    detector: float = 0.0
    forward: float = 0.0
    rest: float = 0.0

    @property
    def total(self) -> float:
        """The frame's seconds, all parts together."""
        return self.detector + self.forward + self.rest


@dataclass
class Answer:
    """One frame's answer: ``poses`` for a keypoint model or ``segmentation`` for a segmentation model (the other is
    None), its :class:`Timings`, and :meth:`picture`, the drawing, made when first asked for."""

    frame: Frame
    poses: Poses | None
    segmentation: SegmentationResult | None
    timings: Timings
    palette: Any = field(default=None, repr=False)
    _picture: Image.Image | None = field(default=None, repr=False)

    def picture(self) -> Image.Image:
        """The frame with the answer drawn on it (skeletons and boxes, or the class colours), cached."""
        if self._picture is None:
            image = to_pil(self.frame.pixels)
            if self.poses is not None:
                self._picture = draw_pose(image, self.poses)
            else:
                assert self.segmentation is not None
                self._picture = draw_segmentation(image, self.segmentation.class_ids[0], self.palette)
        return self._picture


class _Timed:
    """Calls ``target`` (built by ``factory`` on the first call when given instead) and adds each call's wall time
    to ``seconds``; every other attribute is the target's, so a timed model still passes as the model."""

    def __init__(self, target: Any = None, factory: Callable[[], Any] | None = None) -> None:
        self._target, self._factory, self.seconds = target, factory, 0.0

    def _get(self) -> Any:
        if self._target is None and self._factory is not None:
            self._target = self._factory()  # built when first needed: a face model never builds the detector
        return self._target

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        target = self._get()
        start = time.perf_counter()
        out = target(*args, **kwargs)
        _wait_for(out)
        self.seconds += time.perf_counter() - start
        return out

    def __getattr__(self, name: str) -> Any:
        if name.startswith('_'):
            raise AttributeError(name)
        return getattr(self._get(), name)


def _wait_for(out: Any) -> None:
    """CUDA runs asynchronously: the time of a call is only its own once the device has finished it."""
    tensors = out if isinstance(out, (tuple, list)) else [out]
    for tensor in tensors:
        if isinstance(tensor, Tensor) and tensor.is_cuda:
            torch.cuda.synchronize(tensor.device)
            return


def _estimate(
    model: Any,
    pixels: Tensor,
    boxes: Tensor | None,
    box_scores: Tensor | None,
    detector: Any,
    flip: bool | None,
    decode: str | None,
) -> Poses:
    options: dict[str, Any] = {} if flip is None else dict(flip=flip)
    return estimate_pose(model, pixels, boxes, decode=decode, detector=detector, box_scores=box_scores, **options)


def _frames(source: Any) -> Iterator[Frame]:
    if isinstance(source, FrameSource):
        return source
    if isinstance(source, Iterator):  # frames made elsewhere, e.g. a generator of Frame
        return source
    return read_source(source)


def predict_stream(
    model: Any,
    source: Any,
    *,
    detector: Detector | None = None,
    boxes: Tensor | Sequence[Sequence[float]] | None = None,
    box_scores: Tensor | Sequence[float] | None = None,
    flip: bool | None = None,
    decode: str | None = None,
    scales: Sequence[float] = (1.0,),
    crop_size: tuple[int, int] | None = None,
) -> Iterator[Answer]:
    """One :class:`Answer` per frame of ``source``, each yielded as soon as its frame is done (a generator: the
    next frame is read only when the next answer is asked for).

    Args:
        model: a top-down pose model (keypoint heatmaps) or a segmentation model, in eval mode.
        source: anything :func:`~.sources.read_source` takes, a :class:`~.sources.FrameSource`, or an iterator of
            :class:`~.sources.Frame`.
        detector: pose, with ``boxes=None``: ``detector(pixels) -> (boxes xywh [M, 4], scores [M])`` of people; None
            uses :func:`~.detect.default_detector` (built on first use; faces, hands and animals never call it).
        boxes: pose: the same boxes (x, y, w, h in pixels) for every frame, with ``box_scores`` (default 1).
        flip: the flip test; None is the task's default (pose: on, as the official test; segmentation: off).
        decode: pose: ``'default'``, ``'dark'`` or ``'udp'``; None follows the model's record.
        scales, crop_size: segmentation: the test scales and the sliding window (see :func:`~.segmentation.segment`).
    """
    decoder = model_decoder(model)
    if decoder not in (POSE_DECODER, SEGMENTATION_DECODER):
        raise ValueError(f'predict_stream reads keypoint heatmaps or segmentation logits, not {decoder} output')
    pose = decoder == POSE_DECODER
    if not pose and (boxes is not None or detector is not None):
        raise ValueError('boxes and detector are for keypoint models; a segmentation model labels every pixel')
    if pose and (tuple(scales) != (1.0,) or crop_size):
        raise ValueError('scales and crop_size are for segmentation models; a pose model crops each box')
    timed_model = _Timed(model)
    timed_detector: _Timed | None = None
    if pose and boxes is None and (detector is not None or finds_people(model)):
        timed_detector = _Timed(detector) if detector is not None else _Timed(factory=default_detector)
    box_tensor = None if boxes is None else torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, 4)
    score_tensor = None if box_scores is None else torch.as_tensor(box_scores, dtype=torch.float32)
    record = model_record(model)
    palette = record.palette if record is not None else None
    return _answers(timed_model, timed_detector, _frames(source), pose, box_tensor, score_tensor, flip, decode,
                    tuple(scales), crop_size, palette)  # fmt: skip


def _answers(
    model: _Timed,
    detector: _Timed | None,
    frames: Iterator[Frame],
    pose: bool,
    boxes: Tensor | None,
    box_scores: Tensor | None,
    flip: bool | None,
    decode: str | None,
    scales: tuple[float, ...],
    crop_size: tuple[int, int] | None,
    palette: Any,
) -> Iterator[Answer]:
    start = time.perf_counter()
    for frame in frames:
        forward_before = model.seconds
        detector_before = detector.seconds if detector is not None else 0.0
        if pose:
            poses = _estimate(model, frame.pixels, boxes, box_scores, detector, flip, decode)
            result = None
        else:
            poses = None
            result = segment(model, frame.pixels, scales=scales, flip=bool(flip), crop_size=crop_size)
        total = time.perf_counter() - start
        forward = model.seconds - forward_before
        in_detector = detector.seconds - detector_before if detector is not None else 0.0
        timings = Timings(in_detector, forward, max(total - forward - in_detector, 0.0))
        yield Answer(frame, poses, result, timings, palette)
        start = time.perf_counter()  # the consumer's time between answers is not this frame's


def coco_keypoint_results(answers: Iterable[Answer], image_ids: Mapping[str, int] | None = None) -> list[dict]:
    """Pose answers in the COCO keypoint results format (``COCO.loadRes`` reads the list): per person
    ``image_id``, ``category_id`` 1, ``keypoints`` flat ``[x, y, v] * K`` with v the keypoint's score (the heatmap
    peak, not a probability), ``score`` (``Poses.scores``: box score x mean keypoint score above 0.2), and
    ``bbox`` (x, y, w, h, which ``loadRes`` recomputes from the keypoints). Image ids are the frame indices, or
    ``image_ids[frame.name]`` (COCO ids by file name) when given."""
    results = []
    for answer in answers:
        if answer.poses is None:
            raise ValueError('coco_keypoint_results takes the answers of a keypoint model, not a segmentation model')
        name = answer.frame.name
        if image_ids is not None and name not in image_ids:
            raise ValueError(f'{name} has no COCO image id in the mapping given ({len(image_ids)} file names)')
        image_id = answer.frame.index if image_ids is None else int(image_ids[name])
        poses = answer.poses
        for person, score, box in zip(poses.keypoints.tolist(), poses.scores.tolist(), poses.boxes.tolist()):
            results.append(dict(image_id=image_id, category_id=1, keypoints=[float(v) for p in person for v in p],
                                score=float(score), bbox=[float(v) for v in box]))  # fmt: skip
    return results
