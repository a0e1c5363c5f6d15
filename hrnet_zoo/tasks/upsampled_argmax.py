"""The class ids of bilinearly upsampled logits, without upsampling the logits.

``upsampled_argmax(logits, size, align_corners)`` equals
``F.interpolate(logits, size, mode='bilinear', align_corners=align_corners).argmax(1)`` (the first maximum, up to
float rounding at exact ties) at a fraction of its cost: the full-resolution logits of a 1024x2048 Cityscapes image
are 160 MB that a single-scale prediction never needs, and their argmax over 19 channels costs more than the rest
of the post-processing together.

Why it is exact. A bilinear output pixel is a convex combination of the logits at the four corners of its
low-resolution cell. If class ``k`` is the first maximum at all four corners it is the first maximum of the
combination, so the class is known wherever a cell's corners agree: almost everywhere but at object boundaries.
Inside a boundary cell, class ``c`` can win only if its largest corner logit reaches the largest smallest-corner
logit of any class; this leaves two candidates in most cells, and then the winner is the sign of one interpolated
difference. Pixels of the few cells with more candidates are interpolated over every class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['first_argmax', 'upsampled_argmax']

# pixels whose source coordinate lies this close to a low-resolution row or column are checked against both
# neighbouring cells: torch's float coordinate and ours may fall on either side of it
_EDGE_TOLERANCE = 1e-3


def first_argmax(scores: Tensor, dim: int = 1) -> Tensor:
    """``scores.argmax(dim)`` (the first maximum) for up to 255 classes, in a third of its time on CPU: torch's
    argmax over a non-innermost dimension is several times slower than a max and a comparison."""
    classes = scores.shape[dim]
    if classes > 255:
        return scores.argmax(dim)
    peak = scores.amax(dim, keepdim=True)
    shape = [1] * scores.ndim
    shape[dim] = classes
    rank = torch.arange(classes - 1, -1, -1, dtype=torch.uint8, device=scores.device).view(shape)
    return (classes - 1 - (scores == peak).to(torch.uint8).mul_(rank).amax(dim)).long()


def _source_index(out_size: int, in_size: int, align_corners: bool, device: torch.device) -> tuple[Tensor, ...]:
    """Per output row (or column): the two source indices, the weight of the second, and the index of the other
    cell to check where the coordinate is within tolerance of a source row (else the first index again)."""
    dst = torch.arange(out_size, dtype=torch.float64, device=device)
    if align_corners:
        src = dst * ((in_size - 1) / (out_size - 1) if out_size > 1 else 0.0)
    else:
        src = ((dst + 0.5) * (in_size / out_size) - 0.5).clamp_min(0.0)  # torch clamps negative coordinates to 0
    first = src.floor().long().clamp_max(in_size - 1)
    second = (first + 1).clamp_max(in_size - 1)
    weight = (src - first).clamp(0.0, 1.0)
    near_first = (weight < _EDGE_TOLERANCE) & (first > 0)
    near_second = (weight > 1 - _EDGE_TOLERANCE) & (second < in_size - 1)
    other = torch.where(near_first, first - 1, torch.where(near_second, second, first))
    return first, second, weight.float(), other


def _corners(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The four corners of every cell ``(i, j)``-``(i + 1, j + 1)`` of ``x [..., h, w]``, the last row and column
    repeated (a cell at the border is the pixel itself, as torch clamps the second index)."""
    padded = F.pad(x, (0, 1, 0, 1), mode='replicate')
    return padded[..., :-1, :-1], padded[..., :-1, 1:], padded[..., 1:, :-1], padded[..., 1:, 1:]


def upsampled_argmax(logits: Tensor, size: tuple[int, int], align_corners: bool) -> Tensor:
    """``[N, H, W]`` int64: the first-maximum class of ``logits [N, C, h, w]`` bilinearly resized to ``size``."""
    batch, classes, height, width = logits.shape
    logits = logits.float()
    rows = _source_index(size[0], height, align_corners, logits.device)
    cols = _source_index(size[1], width, align_corners, logits.device)
    low_ids = first_argmax(logits)
    c00, c01, c10, c11 = _corners(low_ids[:, None].float())
    agree = ((c00 == c01) & (c00 == c10) & (c00 == c11))[:, 0]
    # one gather to full size of the class where a cell agrees and a marker where it does not (a byte per pixel
    # for up to 255 classes)
    unknown = 255 if classes < 255 else -1
    code = torch.where(agree, low_ids, unknown).to(torch.uint8 if classes < 255 else torch.long)
    full = code.index_select(1, rows[0]).index_select(2, cols[0])
    known = full != unknown
    if bool((rows[3] != rows[0]).any() or (cols[3] != cols[0]).any()):
        known &= full == code.index_select(1, rows[3]).index_select(2, cols[3])
    ids = full.long()
    for i in range(batch):
        pixels = (~known[i]).view(-1).nonzero().squeeze(1)
        if len(pixels):
            ids[i].view(-1).index_copy_(0, pixels, _boundary_ids(logits[i], pixels, size[1], rows, cols))
    return ids


def _boundary_ids(logits: Tensor, pixels: Tensor, out_width: int, rows: tuple[Tensor, ...],
                  cols: tuple[Tensor, ...]) -> Tensor:  # fmt: skip
    """The classes of the flat output ``pixels`` (``[C, h, w]`` logits of one image) whose cells disagree."""
    classes, height, width = logits.shape
    y, x = pixels // out_width, pixels % out_width
    y0, y1, wy = (r.index_select(0, y) for r in rows[:3])
    x0, x1, wx = (c.index_select(0, x) for c in cols[:3])
    cell = y0 * width + x0
    cells, pixel_cell = torch.unique(cell, return_inverse=True)

    # per boundary cell: the corners' logits [4, C, m] and the classes that can win somewhere inside it
    flat = logits.reshape(classes, -1)
    cy, cx = cells // width, cells % width
    cy1, cx1 = (cy + 1).clamp_max(height - 1), (cx + 1).clamp_max(width - 1)
    corner = torch.stack([flat.index_select(1, r + c) for r in (cy * width, cy1 * width) for c in (cx, cx1)])
    highest, lowest = corner.amax(0), corner.amin(0)
    # a class whose best corner is below some class's worst corner loses at every point of the cell; the margin
    # keeps rounding of the interpolation from deciding a near tie here
    floor = lowest.amax(0, keepdim=True)
    candidates = highest >= floor - 1e-5 * floor.abs()
    two = candidates.sum(0) == 2

    out = torch.empty(len(pixels), dtype=torch.long, device=logits.device)
    # two candidates a < b: a wins where the interpolated a - b is >= 0 (ties go to the first class)
    pair = two.index_select(0, pixel_cell)
    if bool(pair.any()):
        ranked = torch.where(candidates, torch.arange(classes, device=logits.device)[:, None], classes)
        first, second = ranked.min(0).values, torch.where(candidates, ranked, -1).max(0).values
        sel = two.nonzero().squeeze(1)
        diff = corner[:, first[sel], sel] - corner[:, second[sel], sel]  # [4, cells with two candidates]
        slot = torch.full_like(two, -1, dtype=torch.long)
        slot[sel] = torch.arange(len(sel), device=logits.device)
        where = pair.nonzero().squeeze(1)
        index = slot.index_select(0, pixel_cell.index_select(0, where))
        d = diff.index_select(1, index)
        ly, lx = wy.index_select(0, where), wx.index_select(0, where)
        value = torch.lerp(torch.lerp(d[0], d[1], lx), torch.lerp(d[2], d[3], lx), ly)
        winner = torch.where(value >= 0, first[sel].index_select(0, index), second[sel].index_select(0, index))
        out.index_copy_(0, where, winner)
    rest = (~pair).nonzero().squeeze(1)
    if len(rest):
        r0, r1 = y0.index_select(0, rest) * width, y1.index_select(0, rest) * width
        c0, c1 = x0.index_select(0, rest), x1.index_select(0, rest)
        lx, ly = wx.index_select(0, rest), wy.index_select(0, rest)
        top = torch.lerp(flat.index_select(1, r0 + c0), flat.index_select(1, r0 + c1), lx)
        bottom = torch.lerp(flat.index_select(1, r1 + c0), flat.index_select(1, r1 + c1), lx)
        out.index_copy_(0, rest, first_argmax(torch.lerp(top, bottom, ly), dim=0))
    return out
