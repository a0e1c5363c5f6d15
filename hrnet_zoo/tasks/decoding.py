"""Heatmap decoding as mmpose 1.x does it for UDP (Huang et al., CVPR 2020, "The Devil is in the Details: Delving
into Unbiased Data Processing for Human Pose Estimation"), batched in torch.

The pipeline of mmpose's ``td-hm_hrnet-*_udp-*`` configs (``configs/body_2d_keypoint/topdown_heatmap/coco/``):

* the crop: ``TopdownAffine(use_udp=True)`` warps the image with :func:`udp_warp_matrix`
  (``mmpose/structures/bbox/transforms.py: get_udp_warp_matrix``); center and scale are in image pixels, the scale
  being the box's ``w, h`` times 1.25 grown to the input aspect ratio (``bbox_xyxy2cs``, ``_fix_aspect_ratio``);
* the flip test: ``test_cfg=dict(flip_test=True, flip_mode='heatmap', shift_heatmap=False)``, the flipped crop's
  heatmaps turned back with :func:`flip_heatmaps` and averaged with the plain ones;
* the codec: ``UDPHeatmap(heatmap_type='gaussian')`` decoded by :func:`decode_udp`, to input (crop) space;
* the model: ``TopdownPoseEstimator.add_pred_to_datasample`` maps to image pixels with :func:`input_to_image`.

Shapes follow ``hrnet_zoo.tasks.pose``: heatmaps ``[N, K, H, W]``, keypoints ``[N, K, 2]`` as ``(x, y)`` in
float64, scores ``[N, K, 1]`` in float32, affine matrices ``[N, 2, 3]`` in float64. Sizes are ``(w, h)`` as in
mmpose. Unlike ``pose.py`` (MSRA, scale in units of 200 px), every scale here is in pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'UDP_BLUR_KERNEL_SIZE',
    'apply_affine',
    'blur_heatmaps',
    'decode_udp',
    'flip_heatmaps',
    'heatmap_maximum',
    'input_to_image',
    'invert_affine',
    'refine_dark_udp',
    'udp_warp_matrix',
]

# ``UDPHeatmap(blur_kernel_size=11)``, the codec default; no mmpose UDP config sets it, so the 384x288 ones (sigma 3)
# decode with 11 as well
UDP_BLUR_KERNEL_SIZE = 11
_EPS32 = 1.1920928955078125e-07  # np.finfo(np.float32).eps, added to the Hessian's diagonal by mmpose
# cv2.getGaussianKernel's fixed kernels, used for ksize <= 7 when sigma <= 0 (cv2.GaussianBlur(..., 0))
_SMALL_KERNELS = {
    1: (1.0,),
    3: (0.25, 0.5, 0.25),
    5: (0.0625, 0.25, 0.375, 0.25, 0.0625),
    7: (0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125),
}


def _maps(heatmaps: Tensor) -> Tensor:
    if heatmaps.ndim != 4:
        raise ValueError(f'heatmaps must be [N, K, H, W], got shape {tuple(heatmaps.shape)}')
    return heatmaps.detach().to(torch.float64)


def heatmap_maximum(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """``mmpose/codecs/utils/post_processing.py: get_heatmap_maximum``: the first maximum of each map as ``(x, y)``
    ``[N, K, 2]`` (float64) and its value ``[N, K, 1]``; a map whose maximum is not positive gives ``(-1, -1)``."""
    maps = _maps(heatmaps)
    n, k, _, width = maps.shape
    values, index = maps.reshape(n, k, -1).max(-1)
    coords = torch.stack([index % width, index // width], -1).to(torch.float64)
    coords = torch.where((values > 0).unsqueeze(-1), coords, torch.full_like(coords, -1.0))
    return coords, values.unsqueeze(-1)


def _gaussian_kernel(size: int, dtype: torch.dtype) -> Tensor:
    """``cv2.getGaussianKernel(size, 0)``: the fixed kernels up to 7 taps, else sigma from the size."""
    if size in _SMALL_KERNELS:
        return torch.tensor(_SMALL_KERNELS[size], dtype=dtype)
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    taps = torch.arange(size, dtype=dtype) - (size - 1) / 2
    weights = torch.exp(-(taps**2) / (2 * sigma**2))
    return weights / weights.sum()


def blur_heatmaps(heatmaps: Tensor, kernel_size: int = UDP_BLUR_KERNEL_SIZE) -> Tensor:
    """``mmpose/codecs/utils/post_processing.py: gaussian_blur``: ``cv2.GaussianBlur((k, k), 0)`` of each map
    padded with ``(k - 1) // 2`` zeros, rescaled to the map's own maximum. Where the blurred maximum is 0 (an
    all-zero map) the map stays 0, where mmpose's ``0 / 0`` gives NaN. Float64 ``[N, K, H, W]``."""
    if kernel_size < 1 or kernel_size % 2 != 1:
        raise ValueError(f'the blur kernel size must be odd and positive, got {kernel_size}')
    maps = _maps(heatmaps)
    n, k, h, w = maps.shape
    weights = _gaussian_kernel(kernel_size, maps.dtype)
    flat = maps.reshape(n * k, 1, h, w)
    flat = F.conv2d(flat, weights.view(1, 1, 1, -1), padding=(0, kernel_size // 2))
    flat = F.conv2d(flat, weights.view(1, 1, -1, 1), padding=(kernel_size // 2, 0))
    blurred = flat.reshape(n, k, h, w)
    peak, blurred_peak = maps.amax((-2, -1), keepdim=True), blurred.amax((-2, -1), keepdim=True)
    usable = blurred_peak != 0
    factor = torch.where(usable, peak / torch.where(usable, blurred_peak, torch.ones_like(blurred_peak)), 0.0)
    return blurred * factor


def refine_dark_udp(coords: Tensor, heatmaps: Tensor, blur_kernel_size: int = UDP_BLUR_KERNEL_SIZE) -> Tensor:
    """``mmpose/codecs/utils/refinement.py: refine_keypoints_dark_udp``: one Newton step of the log of the blurred
    heatmap from the integer maximum ``coords`` ``[N, K, 2]`` (heatmap pixels).

    The maps are blurred (:func:`blur_heatmaps`), clipped to ``[1e-3, 50]``, logged and padded by one pixel
    repeating the edge; with ``f(dx, dy)`` that padded log map around the maximum::

        g = 0.5 * (f(1, 0) - f(-1, 0), f(0, 1) - f(0, -1))
        hxx = f(1, 0) - 2 f(0, 0) + f(-1, 0),   hyy = f(0, 1) - 2 f(0, 0) + f(0, -1)
        hxy = 0.5 * (f(1, 1) - f(1, 0) - f(0, 1) + 2 f(0, 0) - f(-1, 0) - f(0, -1) + f(-1, -1))
        coords -= inverse(H + eps I) @ g,   eps = float32 epsilon

    Keypoints at ``(-1, -1)`` (no positive maximum) are left there, where mmpose reads a wrapped-around index (and
    NaN from the blur of an all-zero map); a singular Hessian leaves the keypoint where it is (mmpose raises).
    Returns float64 ``[N, K, 2]``."""
    maps = _maps(heatmaps)
    coords = coords.to(torch.float64)
    log = blur_heatmaps(maps, blur_kernel_size).clamp(1e-3, 50.0).log()
    padded = F.pad(log, (1, 1, 1, 1), mode='replicate')
    n, k, height, width = padded.shape
    valid = (coords >= 0).all(-1)
    x = coords[..., 0].clamp(0, width - 3).long() + 1
    y = coords[..., 1].clamp(0, height - 3).long() + 1
    flat = padded.reshape(n, k, -1)

    def f(ox: int, oy: int) -> Tensor:
        return flat.gather(-1, ((y + oy) * width + x + ox).unsqueeze(-1)).squeeze(-1)

    i, ix1, ix1_, iy1, iy1_ = f(0, 0), f(1, 0), f(-1, 0), f(0, 1), f(0, -1)
    dx, dy = 0.5 * (ix1 - ix1_), 0.5 * (iy1 - iy1_)
    dxx = ix1 - 2 * i + ix1_ + _EPS32
    dyy = iy1 - 2 * i + iy1_ + _EPS32
    dxy = 0.5 * (f(1, 1) - ix1 - iy1 + 2 * i - ix1_ - iy1_ + f(-1, -1))
    det = dxx * dyy - dxy * dxy
    usable = valid & (det != 0)
    det = torch.where(usable, det, torch.ones_like(det))
    # inverse(H) @ g with the symmetric 2x2 inverse written out
    step = torch.stack([dyy * dx - dxy * dy, dxx * dy - dxy * dx], -1) / det.unsqueeze(-1)
    usable = usable & torch.isfinite(step).all(-1)
    return coords - torch.where(usable.unsqueeze(-1), step, torch.zeros_like(step))


def decode_udp(
    heatmaps: Tensor, input_size: tuple[int, int], blur_kernel_size: int = UDP_BLUR_KERNEL_SIZE
) -> tuple[Tensor, Tensor]:
    """``mmpose/codecs/udp_heatmap.py: UDPHeatmap.decode`` (``heatmap_type='gaussian'``), batched: keypoints
    ``[N, K, 2]`` in input (crop) space and scores ``[N, K, 1]`` from heatmaps ``[N, K, H, W]``.

    The maximum (:func:`heatmap_maximum`, whose value is the score), the DARK-UDP step (:func:`refine_dark_udp`),
    then ``keypoints / (W - 1, H - 1) * input_size`` with ``input_size = (w, h)``, as the codec's ``decode`` writes
    it. Note that this is ``input_size``, not the encoder's ``scale_factor = (input_size - 1) / (heatmap_size - 1)``:
    the unbiased crop pixel is ``keypoints * (w - 1) / w``, and :func:`input_to_image` of these keypoints equals
    the inverse :func:`udp_warp_matrix` applied to that crop pixel, so image coordinates come out unbiased.
    A map with no positive value decodes to ``(-1, -1)`` scaled the same way, score its maximum."""
    maps = _maps(heatmaps)
    height, width = maps.shape[-2:]
    if height < 2 or width < 2:
        raise ValueError(f'UDP decoding divides by the heatmap size - 1, so it needs 2x2 maps at least, got {width}x'
                         f'{height}')  # fmt: skip
    coords, scores = heatmap_maximum(maps)
    coords = refine_dark_udp(coords, maps, blur_kernel_size)
    factor = coords.new_tensor([input_size[0] / (width - 1), input_size[1] / (height - 1)])
    return coords * factor, scores.to(torch.float32)


def _pairs(center: Tensor | Sequence[float], scale: Tensor | Sequence[float]) -> tuple[Tensor, Tensor]:
    center = torch.as_tensor(center, dtype=torch.float64).reshape(-1, 2)
    scale = torch.as_tensor(scale, dtype=torch.float64).reshape(-1, 2)
    return torch.broadcast_tensors(center, scale)


def invert_affine(matrix: Tensor) -> Tensor:
    """The inverse of each 2x3 affine matrix ``[N, 2, 3]`` (``cv2.invertAffineTransform``), float64."""
    matrix = torch.as_tensor(matrix, dtype=torch.float64)
    linear, shift = matrix[..., :2], matrix[..., 2:]
    a, b, c, d = linear[..., 0, 0], linear[..., 0, 1], linear[..., 1, 0], linear[..., 1, 1]
    det = a * d - b * c
    inverse = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2) / det[..., None, None]
    return torch.cat([inverse, -inverse @ shift], -1)


def udp_warp_matrix(
    center: Tensor | Sequence[float],
    scale: Tensor | Sequence[float],
    rot: float | Tensor | Sequence[float],
    output_size: tuple[int, int],
    inverse: bool = False,
) -> Tensor:
    """``mmpose/structures/bbox/transforms.py: get_udp_warp_matrix``, the crop of ``TopdownAffine(use_udp=True)``:
    image pixels to output pixels (``inverse``: back), ``[N, 2, 3]`` float64.

    With ``S = diag((w - 1) / scale_w, (h - 1) / scale_h)`` and ``R`` the rotation by ``rot`` degrees, a point
    ``p`` goes to ``S R (p - center) + S scale / 2``: unrotated, the box edges ``center -/+ scale / 2`` land on
    the first and last output pixel centres, 0 and ``w - 1``. ``center`` and ``scale`` are ``[N, 2]`` (or ``[2]``)
    image pixels; ``rot`` is one angle or one per box; ``output_size`` is ``(w, h)``."""
    center, scale = _pairs(center, scale)
    rad = torch.as_tensor(rot, dtype=torch.float64).reshape(-1) * (math.pi / 180)
    rad = rad.expand(len(center)) if rad.numel() == 1 else rad
    cos, sin = torch.cos(rad), torch.sin(rad)
    sx, sy = (output_size[0] - 1) / scale[:, 0], (output_size[1] - 1) / scale[:, 1]
    cx, cy = center.unbind(1)
    row_x = torch.stack([cos * sx, -sin * sx, sx * (-cx * cos + cy * sin + 0.5 * scale[:, 0])], 1)
    row_y = torch.stack([sin * sy, cos * sy, sy * (-cx * sin - cy * cos + 0.5 * scale[:, 1])], 1)
    matrix = torch.stack([row_x, row_y], 1)
    return invert_affine(matrix) if inverse else matrix


def apply_affine(points: Tensor, matrix: Tensor) -> Tensor:
    """Points ``[N, K, 2]`` through the affine matrix of their box ``[N, 2, 3]`` (``cv2.transform``), float64."""
    points, matrix = torch.as_tensor(points, dtype=torch.float64), torch.as_tensor(matrix, dtype=torch.float64)
    return points @ matrix[:, :, :2].transpose(1, 2) + matrix[:, :, 2].unsqueeze(1)


def input_to_image(
    keypoints: Tensor, center: Tensor | Sequence[float], scale: Tensor | Sequence[float], input_size: tuple[int, int]
) -> Tensor:
    """``mmpose/models/pose_estimators/topdown.py: TopdownPoseEstimator.add_pred_to_datasample``: keypoints
    ``[N, K, 2]`` decoded to input space (:func:`decode_udp`) back to image pixels, ``keypoints / input_size *
    scale + center - 0.5 * scale`` with the crop's ``center`` / ``scale`` ``[N, 2]`` (pixels, the
    ``input_center`` / ``input_scale`` after the aspect-ratio fix) and ``input_size = (w, h)``. Rotation is not
    undone (mmpose tests with none). Float64."""
    center, scale = _pairs(center, scale)
    size = center.new_tensor([input_size[0], input_size[1]])
    keypoints = torch.as_tensor(keypoints, dtype=torch.float64)
    return keypoints / size * scale.unsqueeze(1) + (center - 0.5 * scale).unsqueeze(1)


def flip_heatmaps(heatmaps: Tensor, flip_pairs: Sequence[Sequence[int]], shift: bool) -> Tensor:
    """``mmpose/models/utils/tta.py: flip_heatmaps`` with ``flip_mode='heatmap'``: heatmaps ``[N, K, H, W]`` of
    a horizontally flipped crop back to the unflipped one: mirror, swap each ``(left, right)`` pair (mmpose's
    ``flip_indices``), and with ``shift`` (``test_cfg.shift_heatmap``) move every map one pixel right keeping
    column 0. The UDP configs use ``shift_heatmap=False`` (the UDP crop mirrors pixel ``x`` to ``w - 1 - x``
    exactly); the plain ``td-hm_hrnet`` (MSRA) configs use ``True``. The flip test averages the result with the
    plain heatmaps. Keeps the input's dtype."""
    if heatmaps.ndim != 4:
        raise ValueError(f'heatmaps must be [N, K, H, W], got shape {tuple(heatmaps.shape)}')
    order = list(range(heatmaps.shape[1]))
    for left, right in flip_pairs:
        order[left], order[right] = right, left
    out = heatmaps.flip(-1)[:, order]
    if shift:
        out = torch.cat([out[..., :1], out[..., :-1]], -1)
    return out
