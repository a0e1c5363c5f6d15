"""Semantic segmentation, image to class ids, as the official test does it (HRNet-Semantic-Segmentation, branch
HRNet-OCR, ``BaseDataset.inference`` / ``multi_scale_inference``).

Per scale the normalised image is resized (bilinear, long side ``round(long * scale)``); each window (the whole
image without ``crop_size``) is run, its logits upsampled to the window with the checkpoint's ``align_corners``,
averaged with the flipped pass's logits flipped back (left and right classes swapped where the dataset has them,
as LIP's test does), then ``exp``; overlapping windows are averaged; each scale's
map is upsampled to the image and the scales are summed. Class ids are the argmax of that sum; the probabilities are
the sum normalised per pixel (the softmax, at one scale).

At one scale on the whole image (the default) the same answer costs far less: the ids come from the low-resolution
logits (:func:`~hrnet_zoo.tasks.upsampled_argmax.upsampled_argmax`, exact), the flip is averaged before the
upsampling (bilinear resizing commutes with mirroring), and the 4-byte-per-class full-size probabilities are
computed when first read, as a softmax (``exp`` divided by its sum, without the overflow of a bare ``exp``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .inputs import ImageInput, model_record, normalize, require_decoder, to_batch
from .upsampled_argmax import first_argmax, upsampled_argmax

__all__ = ['SegmentationResult', 'segment', 'sliding_windows']

TASK = 'image-segmentation'
DECODER = 'segmentation_logits'  # the output segment reads


@dataclass
class SegmentationResult:
    """``class_ids [N, H, W]`` (int64) and ``probabilities [N, C, H, W]`` at the image's size, and class names.

    ``probabilities`` is computed on first access (a float per class and pixel: 160 MB for a Cityscapes image).
    """

    class_ids: Tensor
    label_names: tuple[str, ...]
    compute_probabilities: Callable[[], Tensor] = field(repr=False)

    @cached_property
    def probabilities(self) -> Tensor:
        return self.compute_probabilities()

    def class_areas(self, index: int = 0) -> list[dict[str, Any]]:
        """The classes present in image ``index``: id, name, pixel count and fraction, largest first."""
        ids = self.class_ids[index]
        counts = torch.bincount(ids.flatten(), minlength=len(self.label_names))
        total = ids.numel()
        rows = [dict(id=i, name=self.label_names[i], pixels=int(n), fraction=int(n) / total)
                for i, n in enumerate(counts.tolist()) if n]  # fmt: skip
        return sorted(rows, key=lambda r: -r['pixels'])


def sliding_windows(height: int, width: int, crop: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """The official windows ``(h0, h1, w0, w1)`` over an image at least ``crop`` large: stride 2/3 of the crop,
    the last row and column ending at the border (and padded to the crop by the caller)."""
    stride_h, stride_w = int(crop[0] * 2.0 / 3.0), int(crop[1] * 2.0 / 3.0)
    rows = math.ceil((height - crop[0]) / stride_h) + 1
    cols = math.ceil((width - crop[1]) / stride_w) + 1
    return [(r * stride_h, min(r * stride_h + crop[0], height), c * stride_w, min(c * stride_w + crop[1], width))
            for r in range(rows) for c in range(cols)]  # fmt: skip


def _pad_to(x: Tensor, size: tuple[int, int], value: Tensor) -> Tensor:
    """Pad bottom and right to ``size`` with a per-channel value (a zero pixel after normalisation)."""
    pad_h, pad_w = max(size[0] - x.shape[-2], 0), max(size[1] - x.shape[-1], 0)
    if not (pad_h or pad_w):
        return x
    out = value.view(1, -1, 1, 1).expand(x.shape[0], -1, x.shape[-2] + pad_h, x.shape[-1] + pad_w).clone()
    out[..., : x.shape[-2], : x.shape[-1]] = x
    return out


def _logits(model: Any, x: Tensor, flip: bool, align_corners: bool, swaps: list[int], upsample: bool) -> Tensor:
    """The logits of ``x`` (upsampled to its size if ``upsample``), averaged with the flipped pass flipped back
    (official ``inference``); ``swaps``: the class order of the flipped pass (left and right classes exchanged, as
    LIP's test does)."""
    batch = torch.cat([x, x.flip(-1)]) if flip else x  # one forward for both passes
    logits = model(batch).float()
    if upsample:
        logits = F.interpolate(logits, size=x.shape[-2:], mode='bilinear', align_corners=align_corners)
    if flip:
        flipped = logits[len(x) :].flip(-1)
        logits = (logits[: len(x)] + (flipped[:, swaps] if swaps else flipped)) * 0.5
    return logits


def _scores(model: Any, x: Tensor, flip: bool, align_corners: bool, swaps: list[int]) -> Tensor:
    """``exp`` of the logits upsampled to ``x``'s size, averaged with the flipped pass (official ``inference``)."""
    return _logits(model, x, flip, align_corners, swaps, upsample=True).exp_()


def segment(
    model: Any,
    image: ImageInput | list[ImageInput],
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    crop_size: tuple[int, int] | None = None,
) -> SegmentationResult:
    """Class ids and probabilities of a segmentation model at the image's own size.

    Args:
        model: a model whose head does image-segmentation (``HEADS[model.head].task``), in eval mode.
        image: a path, PIL image, numpy HWC uint8 array, float tensor in 0..1, or a list of same-size images.
        scales: resize factors of the image; the scales' scores are summed at the image's size.
        flip: also run the horizontally flipped image and average the logits.
        crop_size: ``(h, w)`` of the official sliding window (stride 2/3, padding with a zero pixel); None runs
            each scaled image whole.
    """
    require_decoder(model, DECODER, 'segment', TASK)
    if not scales or any(s <= 0 for s in scales):
        raise ValueError(f'scales must be positive numbers, got {tuple(scales)}')
    align_corners = bool(getattr(model, 'head_align_corners', False))
    x = normalize(to_batch(image), model)
    batch, _, height, width = x.shape
    cfg = model.pretrained_cfg
    pad_value = -torch.tensor(cfg['mean'], dtype=x.dtype, device=x.device) / torch.tensor(
        cfg['std'], dtype=x.dtype, device=x.device
    )
    record = model_record(model)
    swaps: list[int] = []
    if record is not None and record.class_flip_pairs:
        swaps = list(range(record.num_classes))
        for left, right in record.class_flip_pairs:
            swaps[left], swaps[right] = right, left
    if crop_size is None and len(scales) == 1 and _scaled_size(height, width, scales[0]) == (height, width):
        return _segment_whole(model, x, flip, align_corners, swaps)
    total: Tensor | None = None
    with torch.no_grad():
        for scale in scales:
            size = _scaled_size(height, width, scale)
            scaled = x if size == (height, width) else F.interpolate(x, size=size, mode='bilinear', align_corners=False)
            if crop_size is None:
                scores = _scores(model, scaled, flip, align_corners, swaps)
            elif max(size) <= min(crop_size):
                scores = _scores(model, _pad_to(scaled, crop_size, pad_value), flip, align_corners, swaps)
                scores = scores[..., : size[0], : size[1]]
            else:
                scores = _windowed(
                    model, _pad_to(scaled, crop_size, pad_value), crop_size, flip, align_corners, pad_value, swaps
                )
                scores = scores[..., : size[0], : size[1]]
            if scores.shape[-2:] != (height, width):
                scores = F.interpolate(scores, size=(height, width), mode='bilinear', align_corners=align_corners)
            total = scores if total is None else total.add_(scores)
    assert total is not None and total.shape[0] == batch
    class_ids = first_argmax(total)
    probabilities = total.div_(total.sum(1, keepdim=True))
    return SegmentationResult(class_ids, _label_names(model, total.shape[1]), lambda: probabilities)


def _scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """The official resize of one scale: the long side ``round(long * scale)``, the aspect ratio kept."""
    long_side = int(max(height, width) * scale + 0.5)
    if height > width:
        return long_side, int(width * long_side / height + 0.5)
    return int(height * long_side / width + 0.5), long_side


def _segment_whole(model: Any, x: Tensor, flip: bool, align_corners: bool, swaps: list[int]) -> SegmentationResult:
    """One scale, the whole image: the ids from the low-resolution logits (exact), the probabilities when read."""
    height, width = x.shape[-2:]
    with torch.no_grad():
        logits = _logits(model, x, flip, align_corners, swaps, upsample=False)
        class_ids = upsampled_argmax(logits, (height, width), align_corners)

    def probabilities() -> Tensor:
        # the softmax in place (torch.softmax would allocate a second full-size map); shifted values below
        # -87 are clamped there: their exp (under 2e-38, next to the top class's 1) turns subnormal and slow
        with torch.no_grad():
            full = F.interpolate(logits, size=(height, width), mode='bilinear', align_corners=align_corners)
            full -= full.amax(1, keepdim=True)
            full.clamp_min_(-87.0).exp_()
            return full.div_(full.sum(1, keepdim=True))

    return SegmentationResult(class_ids, _label_names(model, logits.shape[1]), probabilities)


def _windowed(
    model: Any, x: Tensor, crop: tuple[int, int], flip: bool, align_corners: bool, pad: Tensor, swaps: list[int]
) -> Tensor:
    height, width = x.shape[-2:]
    scores: Tensor | None = None
    count = torch.zeros(1, 1, height, width, device=x.device)
    for h0, h1, w0, w1 in sliding_windows(height, width, crop):
        window = _pad_to(x[..., h0:h1, w0:w1], crop, pad)
        out = _scores(model, window, flip, align_corners, swaps)
        if scores is None:
            scores = out.new_zeros(x.shape[0], out.shape[1], height, width)
        scores[..., h0:h1, w0:w1] += out[..., : h1 - h0, : w1 - w0]
        count[..., h0:h1, w0:w1] += 1
    assert scores is not None
    return scores.div_(count)


def _label_names(model: Any, num_classes: int) -> tuple[str, ...]:
    record = model_record(model)
    names = record.label_names if record is not None else model.pretrained_cfg.get('label_names')
    if names is None or len(names) != num_classes:
        return tuple(f'class_{i}' for i in range(num_classes))
    return tuple(names)
