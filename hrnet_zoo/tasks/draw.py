"""Pictures of predictions, drawn with Pillow: a colour overlay for segmentation, skeletons and points for pose."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from .pose import Poses

__all__ = ['draw_pose', 'draw_segmentation', 'generated_palette', 'to_pil']


def generated_palette(num_classes: int) -> tuple[tuple[int, int, int], ...]:
    """Distinct colours for datasets without their own: the bits of the class id spread over the high bits of R, G
    and B (the PASCAL VOC scheme), so neighbouring ids get far-apart colours."""
    colours = []
    for label in range(num_classes):
        rgb = [0, 0, 0]
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((label >> (3 * bit + channel)) & 1) << (7 - bit)
        colours.append((rgb[0], rgb[1], rgb[2]))
    return tuple(colours)


def to_pil(image: Tensor) -> Image.Image:
    """A ``[3, H, W]`` float image in 0..1 as a PIL RGB image."""
    array = (image.detach().float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(array), 'RGB')


def draw_segmentation(image: Image.Image, class_ids: Tensor, palette: Any = None, alpha: float = 0.5) -> Image.Image:
    """The class colours blended over the image (``alpha``: the colours' weight). ``palette``: one RGB triple per
    class, or None for :func:`generated_palette`."""
    ids = class_ids.detach().cpu().long()
    colours = torch.tensor(palette if palette is not None else generated_palette(int(ids.max()) + 1), dtype=torch.uint8)
    if int(ids.max()) >= len(colours):
        raise ValueError(f'class id {int(ids.max())} has no colour in a palette of {len(colours)}')
    overlay = Image.fromarray(colours[ids].numpy(), 'RGB')
    return Image.blend(image.convert('RGB'), overlay, alpha)


def draw_pose(image: Image.Image, poses: Poses, min_score: float = 0.0, radius: int = 3) -> Image.Image:
    """Each person's box, skeleton and points on a copy of the image; joints scoring ``<= min_score`` are left out."""
    out = image.convert('RGB').copy()
    pen = ImageDraw.Draw(out)
    limb_colours = generated_palette(len(poses.joints.skeleton) + 1)[1:]
    for box, person in zip(poses.boxes.tolist(), poses.keypoints.tolist()):
        x, y, w, h = box
        pen.rectangle([x, y, x + w, y + h], outline=(0, 255, 0), width=2)
        for (a, b), colour in zip(poses.joints.skeleton, limb_colours):
            if person[a][2] > min_score and person[b][2] > min_score:
                pen.line([tuple(person[a][:2]), tuple(person[b][:2])], fill=colour, width=2)
        for px, py, score in person:
            if score > min_score:
                pen.ellipse(
                    [px - radius, py - radius, px + radius, py + radius], fill=(255, 0, 0), outline=(255, 255, 255)
                )
    return out
