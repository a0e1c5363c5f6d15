"""Images in, and what a model says about itself: the task of its head, its manifest record, its mean and std.

A model is duck-typed: anything with ``head`` (a key of :data:`~hrnet_zoo.specs.HEADS`) and ``pretrained_cfg``
(``mean``, ``std``, ``input_size``; ``architecture`` and ``tag`` name its manifest record) works, optionally with
``head_align_corners`` (the bilinear resizes of its head; False if absent). Every HRNet model here has them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from ..specs import HEADS, HeadSpec
from ..weights.manifest import MANIFEST, WeightsRecord

__all__ = [
    'ImageInput',
    'head_task',
    'load_image',
    'model_decoder',
    'model_record',
    'normalize',
    'require_decoder',
    'to_batch',
]

ImageInput = str | Path | Image.Image | np.ndarray | Tensor


def load_image(image: ImageInput) -> Tensor:
    """A float image ``[3, H, W]`` (or a batch ``[N, 3, H, W]``) in 0..1, RGB, from a path, a PIL image, a numpy
    HWC uint8 array or a float tensor (already in 0..1)."""
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f'No such image: {path}')
        try:
            with Image.open(path) as opened:
                image = opened.convert('RGB')  # decodes the whole file here, so a truncated one fails here
        except PermissionError:
            raise
        except (UnidentifiedImageError, SyntaxError, ValueError, OSError) as err:  # OSError: truncated data
            raise ValueError(f'{path} is not an image Pillow can read ({err})') from None
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert('RGB'))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (1, 3):
            raise ValueError(f'expected a numpy HWC uint8 image with 1 or 3 channels, got {image.dtype} {image.shape}')
        tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div_(255.0)
        return tensor.expand(3, -1, -1).contiguous() if tensor.shape[0] == 1 else tensor
    if isinstance(image, Tensor):
        if not image.is_floating_point() or image.ndim not in (3, 4) or image.shape[-3] != 3:
            raise ValueError(f'expected a float tensor [3, H, W] or [N, 3, H, W] in 0..1, got {image.dtype} '
                             f'{tuple(image.shape)}')  # fmt: skip
        return image
    raise TypeError(f'expected a path, PIL image, numpy array or tensor, got {type(image).__name__}')


def to_batch(images: ImageInput | list[ImageInput]) -> Tensor:
    """``[N, 3, H, W]`` in 0..1 from one image, a batch tensor, or a list of images of one size."""
    items = images if isinstance(images, (list, tuple)) else [images]
    tensors = [load_image(i) for i in items]
    tensors = [t.unsqueeze(0) if t.ndim == 3 else t for t in tensors]
    sizes = {tuple(t.shape[-2:]) for t in tensors}
    if len(sizes) > 1:
        raise ValueError(f'images of different sizes cannot make one batch: {sorted(sizes)}; call once per image')
    return torch.cat(tensors) if len(tensors) > 1 else tensors[0]


def normalize(x: Tensor, model: Any) -> Tensor:
    """``(x - mean) / std`` with the model's pretrained cfg, on the model's device and dtype."""
    cfg = model.pretrained_cfg
    ref = next(model.parameters(), None)
    device, dtype = (ref.device, ref.dtype) if ref is not None else (x.device, x.dtype)
    mean = torch.tensor(cfg['mean'], device=device, dtype=dtype).view(-1, 1, 1)
    std = torch.tensor(cfg['std'], device=device, dtype=dtype).view(-1, 1, 1)
    return x.to(device=device, dtype=dtype).sub(mean).div_(std)  # one full-size tensor, not two


def _head_spec(model: Any) -> HeadSpec:
    head = getattr(model, 'head', None)
    if head not in HEADS:
        raise TypeError(f'expected an HRNet model (with a head named in HEADS), got {type(model).__name__}')
    return HEADS[head]


def head_task(model: Any) -> str:
    """The task of the model's head in the head table (``'image-segmentation'``, ``'keypoint-detection'``, ...)."""
    return _head_spec(model).task


def model_decoder(model: Any) -> str:
    """How the model's output becomes an answer (a key of :data:`~hrnet_zoo.specs.DECODERS`): its record's decoder
    where its pretrained cfg names one, else the model's own ``decoder`` where it has one (HigherHRNet, whose head
    has no row of its own), else its head's."""
    spec = _head_spec(model)
    record = model_record(model)
    return record.decoder if record is not None else getattr(model, 'decoder', spec.decoder)


def require_decoder(model: Any, decoder: str, what: str, task: str) -> None:
    """Refuse a model whose output is read another way, naming the task ``what`` needs and what the model does (its
    record's task where it has one: a face model has HRNetV2's head but gives keypoint heatmaps)."""
    found = model_decoder(model)
    if found != decoder:
        spec, record = _head_spec(model), model_record(model)
        name = record.name if record is not None else getattr(model, 'arch', spec.display_name)
        does = record.task if record is not None else spec.task
        raise ValueError(f'{what} needs a {task} model ({decoder} output); {name} does {does} ({found} output, '
                         f'from its {spec.described})')  # fmt: skip


def model_record(model: Any) -> WeightsRecord | None:
    """The manifest record the model's pretrained cfg names (None: a model built for no known tag)."""
    cfg = getattr(model, 'pretrained_cfg', None) or {}
    return MANIFEST.get(f'{cfg.get("architecture")}.{cfg.get("tag")}')
