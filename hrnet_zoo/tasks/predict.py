"""What ``hrnet-zoo predict`` does, as functions: build the model (Hub weights, or a local file checked against it),
predict each image, draw it, and write the picture and the JSON whole or not at all."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import timm
import torch
from PIL import Image

from .._moved import moved_attribute
from ..specs import HEADS, parse_arch
from ..weights.checks import load_pretrained_file
from ..weights.manifest import get_record
from .draw import draw_pose, draw_segmentation, to_pil
from .inputs import ImageInput, head_task, load_image, model_decoder, model_record
from .pose import check_boxes, estimate_pose
from .segmentation import segment

__all__ = ['PREDICT_DECODERS', 'PREDICT_TASKS', 'build_model', 'check_request', 'check_task', 'predict_image']

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


def __getattr__(name: str) -> Any:
    return moved_attribute(__name__, name, {'write_atomically': 'hrnet_zoo.files'})
