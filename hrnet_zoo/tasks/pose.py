"""Top-down pose, person boxes to keypoints in image pixels, as deep-high-resolution-net.pytorch tests it.

Each box becomes a center and scale (``COCODataset._xywh2cs``); the crop is the official ``get_affine_transform``
(rotation 0) applied with ``grid_sample``, on the 0..1 image (so the border is a zero pixel, as ``cv2.warpAffine``
fills it) and then normalised; heatmaps are decoded as ``core/inference.get_final_preds`` with
``TEST.POST_PROCESS`` (argmax, a quarter pixel toward the higher neighbour, the inverse transform); flip testing is
``utils/transforms.flip_back`` plus the ``TEST.SHIFT_HEATMAP`` one-pixel shift. DARK decoding (Zhang et al., CVPR
2020, "Distribution-Aware Coordinate Representation", as mmpose implements it) is offered as ``decode='dark'``.

A model with a manifest record is tested as its record says: ``decoding='dark'`` decodes with DARK, and
``decoding='udp'`` (mmpose's ``TopdownAffine(use_udp=True)`` and ``UDPHeatmap``) crops with
:func:`~.decoding.udp_warp_matrix` of the box's center and scale in pixels (the same box, grown to the input aspect
ratio and padded 1.25, times 200), decodes with :func:`~.decoding.decode_udp` and maps back with
:func:`~.decoding.input_to_image`; the flip test shifts the flipped heatmaps only where ``record.shift_heatmap``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.keypoints import PERSON_SETS, KeypointSet
from .decoding import decode_udp, flip_heatmaps, input_to_image, udp_warp_matrix
from .detect import default_detector
from .inputs import ImageInput, load_image, model_record, normalize, require_decoder

__all__ = [
    'Poses',
    'check_boxes',
    'joints_of',
    'affine_matrix',
    'box_to_center_scale',
    'crop_boxes',
    'decode_dark',
    'decode_heatmaps',
    'estimate_pose',
    'flip_back',
    'heatmap_argmax',
    'finds_people',
    'person_scores',
]

TASK = 'keypoint-detection'
DECODER = 'topdown_heatmaps'  # the output estimate_pose reads
PIXEL_STD = 200.0  # the official unit of scale: a box of 200 px has scale 1
DECODES = ('default', 'dark', 'udp')  # estimate_pose's decode=; a record's 'standard' decoding is 'default'
IN_VIS_THRE = 0.2  # the official TEST.IN_VIS_THRE: keypoints scored above it count toward the person's score
Detector = Callable[[Tensor], tuple[Tensor, Tensor]]


def _boxes(boxes: Tensor | Sequence[Sequence[float]] | Sequence[float]) -> Tensor:
    out = torch.as_tensor(boxes, dtype=torch.float64)
    out = out.unsqueeze(0) if out.ndim == 1 else out
    if out.ndim != 2 or out.shape[1] != 4:
        raise ValueError(f'boxes must be x, y, w, h rows, got shape {tuple(out.shape)}')
    return out


def box_to_center_scale(
    box_xywh: Tensor | Sequence[float] | Sequence[Sequence[float]],
    aspect_ratio: float,
    pixel_std: float = PIXEL_STD,
    padding: float = 1.25,
) -> tuple[Tensor, Tensor]:
    """``COCODataset._xywh2cs``: the box grown to the model's aspect ratio (width / height), in units of
    ``pixel_std``, times ``padding``. Returns ``center [N, 2]`` and ``scale [N, 2]`` (float64)."""
    box = _boxes(box_xywh)
    x, y, w, h = box.unbind(1)
    center = torch.stack([x + w * 0.5, y + h * 0.5], 1)
    w, h = (
        torch.where(w > aspect_ratio * h, w, h * aspect_ratio),
        torch.where(w > aspect_ratio * h, w / aspect_ratio, h),
    )
    return center, torch.stack([w, h], 1) / pixel_std * padding


def affine_matrix(center: Tensor, scale: Tensor, output_size: tuple[int, int], inverse: bool = False) -> Tensor:
    """``get_affine_transform(center, scale, rot=0, output_size=(w, h), inv=inverse)`` as ``[N, 2, 3]`` (float64).

    With no rotation the official three-point construction is a similarity: the box center goes to the output
    center and ``scale[0] * 200`` pixels of width to ``output_size[0]``; ``scale[1]`` is not read."""
    center, scale = torch.as_tensor(center, dtype=torch.float64), torch.as_tensor(scale, dtype=torch.float64)
    center, scale = center.reshape(-1, 2), scale.reshape(-1, 2)
    out_w, out_h = output_size
    zoom = out_w / (scale[:, 0] * PIXEL_STD)
    if inverse:
        factor, shift_x, shift_y = 1 / zoom, center[:, 0] - out_w * 0.5 / zoom, center[:, 1] - out_h * 0.5 / zoom
    else:
        factor, shift_x, shift_y = zoom, out_w * 0.5 - zoom * center[:, 0], out_h * 0.5 - zoom * center[:, 1]
    zero = torch.zeros_like(factor)
    return torch.stack([torch.stack([factor, zero, shift_x], 1), torch.stack([zero, factor, shift_y], 1)], 1)


def crop_boxes(image: Tensor, center: Tensor, scale: Tensor, output_size: tuple[int, int]) -> Tensor:
    """The official crop (``cv2.warpAffine`` of ``get_affine_transform``, bilinear, zero border) of a ``[3, H, W]``
    image for each center / scale: ``[N, 3, output_size[1], output_size[0]]``."""
    return _warp(image, affine_matrix(center, scale, output_size, inverse=True), output_size)


def _warp(image: Tensor, inverse: Tensor, output_size: tuple[int, int]) -> Tensor:
    """``cv2.warpAffine`` (bilinear, zero border) of a ``[3, H, W]`` image with each ``inverse`` matrix (output pixel
    to image pixel, ``[N, 2, 3]``): ``[N, 3, output_size[1], output_size[0]]``."""
    out_w, out_h = output_size
    ys, xs = torch.meshgrid(torch.arange(out_h, dtype=torch.float64), torch.arange(out_w, dtype=torch.float64),
                            indexing='ij')  # fmt: skip
    points = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(1, -1, 3)
    src = points @ inverse.transpose(1, 2)  # [N, out_h * out_w, 2]
    height, width = image.shape[-2:]
    # warpAffine samples at integer pixel positions: align_corners=True maps -1 / 1 to the first / last pixel
    grid = torch.stack([src[..., 0] * 2 / max(width - 1, 1) - 1, src[..., 1] * 2 / max(height - 1, 1) - 1], -1)
    grid = grid.reshape(-1, out_h, out_w, 2).to(image.dtype)
    batch = image.unsqueeze(0).expand(len(grid), -1, -1, -1)
    return F.grid_sample(batch, grid, mode='bilinear', padding_mode='zeros', align_corners=True)


def flip_back(heatmaps: Tensor, flip_pairs: Sequence[Sequence[int]], shift: bool = True) -> Tensor:
    """Heatmaps of a flipped crop back to the unflipped one: mirror, swap each left-right pair, and (``shift``, the
    official ``TEST.SHIFT_HEATMAP``) move every map one pixel right, keeping column 0."""
    out = heatmaps.flip(-1)
    order = list(range(out.shape[1]))
    for left, right in flip_pairs:
        order[left], order[right] = right, left
    out = out[:, order]
    if shift:
        out = torch.cat([out[..., :1], out[..., :-1]], -1)
    return out


def heatmap_argmax(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """``get_max_preds``: the first maximum of each map as ``(x, y)`` [N, K, 2] and its value [N, K, 1]; a map
    whose maximum is not positive gives (0, 0)."""
    n, k, _, width = heatmaps.shape
    values, index = heatmaps.reshape(n, k, -1).max(-1)
    coords = torch.stack([index % width, index // width], -1).to(torch.float64)
    return coords * (values > 0).unsqueeze(-1), values.unsqueeze(-1)


def _to_image(coords: Tensor, center: Tensor, scale: Tensor, heatmap_size: tuple[int, int]) -> Tensor:
    inv = affine_matrix(center, scale, heatmap_size, inverse=True)
    return coords @ inv[:, :, :2].transpose(1, 2) + inv[:, :, 2].unsqueeze(1)


def _at(maps: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """``maps[n, k, y[n, k], x[n, k]]`` (indices clamped into the map; callers mask the ones that fell outside)."""
    height, width = maps.shape[-2:]
    flat = (y.clamp(0, height - 1) * width + x.clamp(0, width - 1)).long()
    return maps.reshape(*maps.shape[:2], -1).gather(-1, flat.unsqueeze(-1)).squeeze(-1)


def decode_heatmaps(heatmaps: Tensor, center: Tensor, scale: Tensor) -> tuple[Tensor, Tensor]:
    """``get_final_preds`` with ``TEST.POST_PROCESS``: keypoints ``[N, K, 2]`` in image pixels and scores
    ``[N, K, 1]`` from heatmaps ``[N, K, h, w]`` of crops made with ``center`` / ``scale``."""
    heatmaps = heatmaps.detach().to(torch.float64)
    height, width = heatmaps.shape[-2:]
    coords, scores = heatmap_argmax(heatmaps)
    px, py = torch.floor(coords[..., 0] + 0.5), torch.floor(coords[..., 1] + 0.5)
    inside = (px > 1) & (px < width - 1) & (py > 1) & (py < height - 1)  # the official bounds, 1 excluded
    dx = _at(heatmaps, px + 1, py) - _at(heatmaps, px - 1, py)
    dy = _at(heatmaps, px, py + 1) - _at(heatmaps, px, py - 1)
    coords = coords + torch.stack([dx.sign(), dy.sign()], -1) * 0.25 * inside.unsqueeze(-1)
    return _to_image(coords, center, scale, (width, height)), scores.to(torch.float32)


def _gaussian_blur(maps: Tensor, kernel: int) -> Tensor:
    """cv2.GaussianBlur with sigma 0 (from the kernel size) on a zero-padded map, as mmpose's DARK does it."""
    sigma = 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8
    taps = torch.arange(kernel, dtype=maps.dtype) - (kernel - 1) / 2
    weights = torch.exp(-(taps**2) / (2 * sigma**2))
    weights = weights / weights.sum()
    n, k, h, w = maps.shape
    flat = maps.reshape(n * k, 1, h, w)
    flat = F.conv2d(flat, weights.view(1, 1, 1, -1), padding=(0, kernel // 2))
    flat = F.conv2d(flat, weights.view(1, 1, -1, 1), padding=(kernel // 2, 0))
    return flat.reshape(n, k, h, w)


def decode_dark(
    heatmaps: Tensor, center: Tensor, scale: Tensor, blur_kernel: int | None = None
) -> tuple[Tensor, Tensor]:
    """DARK decoding: the argmax refined by a second-order Taylor step of the log of the blurred heatmap (its
    maximum kept), then the inverse transform. ``blur_kernel`` defaults to mmpose's (11 for 64-row maps, 17 for
    96). Scores are the raw maxima, as in :func:`decode_heatmaps`."""
    heatmaps = heatmaps.detach().to(torch.float64)
    height, width = heatmaps.shape[-2:]
    coords, scores = heatmap_argmax(heatmaps)
    if blur_kernel is None:
        blur_kernel = int(round(11 * height / 64)) | 1
    peak = heatmaps.amax((-2, -1), keepdim=True)
    blurred = _gaussian_blur(heatmaps, blur_kernel)
    blurred = blurred * (peak / blurred.amax((-2, -1), keepdim=True).clamp_min(1e-12))
    log = blurred.clamp_min(1e-10).log()
    px, py = coords[..., 0], coords[..., 1]
    inside = (px > 1) & (px < width - 2) & (py > 1) & (py < height - 2)

    def at(ox: int, oy: int) -> Tensor:
        return _at(log, px + ox, py + oy)

    dx, dy = 0.5 * (at(1, 0) - at(-1, 0)), 0.5 * (at(0, 1) - at(0, -1))
    dxx = 0.25 * (at(2, 0) - 2 * at(0, 0) + at(-2, 0))
    dyy = 0.25 * (at(0, 2) - 2 * at(0, 0) + at(0, -2))
    dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    det = dxx * dyy - dxy * dxy
    usable = inside & (det != 0)
    det = torch.where(usable, det, torch.ones_like(det))
    # the Newton step -H^-1 g, with the 2x2 inverse written out
    offset = -torch.stack([dyy * dx - dxy * dy, dxx * dy - dxy * dx], -1) / det.unsqueeze(-1)
    coords = coords + offset * usable.unsqueeze(-1)
    return _to_image(coords, center, scale, (width, height)), scores.to(torch.float32)


def person_scores(keypoints: Tensor, box_scores: Tensor | None = None, threshold: float = IN_VIS_THRE) -> Tensor:
    """The official person score (``lib/dataset/coco.py`` ``evaluate``): the box score times the mean of the
    keypoint scores above ``threshold``, 0 where none is. ``keypoints [N, K, 3]``; ``box_scores [N]`` (1 if None)."""
    scores = keypoints[..., 2].double()
    above = scores > threshold
    mean = (scores * above).sum(-1) / above.sum(-1).clamp_min(1)
    box_scores = torch.ones(len(keypoints)) if box_scores is None else torch.as_tensor(box_scores)
    return (mean * box_scores.double()).float()


@dataclass
class Poses:
    """Per box: ``keypoints [N, K, 3]`` as ``(x, y, score)`` in image pixels, in the joint set's order; the boxes
    ``[N, 4]`` (x, y, w, h); and ``scores [N]``, each person's :func:`person_scores` (the detector's box score, 1
    for boxes given without one, times the mean keypoint score above 0.2).

    A keypoint's score is its heatmap's peak: higher is surer, and about 1 at a well-placed joint of the training
    data, but it is not a probability (it can pass 1, and is not calibrated across models)."""

    keypoints: Tensor
    boxes: Tensor
    joints: KeypointSet
    scores: Tensor | None = None  # None: computed with box scores of 1

    def __post_init__(self) -> None:
        if self.scores is None:
            self.scores = person_scores(self.keypoints)

    def __len__(self) -> int:
        return len(self.keypoints)

    def to_list(self) -> list[dict[str, Any]]:
        """JSON-ready: per person, its ``box`` (x, y, w, h), ``score`` and ``{name: {x, y, score}}``."""
        return [dict(box=[float(v) for v in box], score=float(score),
                     keypoints={name: dict(x=float(x), y=float(y), score=float(s))
                                for name, (x, y, s) in zip(self.joints.names, person.tolist())})
                for box, score, person in zip(self.boxes.tolist(), self.scores.tolist(), self.keypoints)]  # fmt: skip


def joints_of(model: Any) -> KeypointSet:
    """The joint set of the model's manifest record, or numbered joints without pairs where none is known."""
    record = model_record(model)
    if record is not None and record.keypoints is not None:
        return record.keypoints
    return KeypointSet(tuple(f'joint_{i}' for i in range(model.num_classes)), (), ())


def _name(model: Any) -> str:
    cfg = getattr(model, 'pretrained_cfg', None) or {}
    return f'{cfg.get("architecture", type(model).__name__)}.{cfg.get("tag")}'


def check_boxes(boxes: Tensor, height: int, width: int) -> None:
    """Refuse a box of zero area or one that does not overlap the image."""
    for x, y, w, h in boxes.tolist():
        if not (w > 0 and h > 0):
            raise ValueError(f'box {x:g},{y:g},{w:g},{h:g} has zero area (x, y, w, h with w, h > 0)')
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
            raise ValueError(f'box {x:g},{y:g},{w:g},{h:g} lies outside the {width}x{height} image')


def _decode_of(record: Any, decode: str | None) -> str:
    if decode is None:
        decoding = record.decoding if record is not None else 'standard'
        decode = 'default' if decoding == 'standard' else decoding
    if decode not in DECODES:
        raise ValueError(f'decode must be one of {", ".join(DECODES)}, got {decode!r}')
    return decode


def _shift_of(record: Any, decode: str) -> bool:
    """Whether the flip test shifts the flipped heatmaps: the record's ``shift_heatmap`` where ``decode`` is its own
    decoding, else the method's (the UDP crop mirrors exactly, the official one is a pixel off)."""
    if record is not None and decode == ('default' if record.decoding == 'standard' else record.decoding):
        return record.shift_heatmap
    return decode != 'udp'


def finds_people(model: Any) -> bool:
    """Whether the model's boxes are whole people (its record's dataset is in
    :data:`~hrnet_zoo.data.keypoints.PERSON_SETS`), so that ``boxes=None`` asks a person detector for them. By the
    dataset, not the joint layout: the macaque tags share COCO's 17 joints."""
    record = model_record(model)
    return record is not None and record.dataset in PERSON_SETS


def estimate_pose(
    model: Any,
    image: ImageInput,
    boxes: Tensor | Sequence[Sequence[float]] | Sequence[float] | None = None,
    flip: bool = True,
    decode: str | None = None,
    joints: KeypointSet | None = None,
    *,
    detector: Detector | None = None,
    box_scores: Tensor | Sequence[float] | None = None,
) -> Poses:
    """Keypoints of each box ``x, y, w, h`` (image pixels) in one image: people, faces, hands, animals.

    Args:
        model: a model whose output is top-down heatmaps (its record's decoder, else its head's), in eval mode; its
            pretrained cfg gives the crop size (``input_size``) and mean / std.
        boxes: None finds them: a ``detector`` given, or for a person model (:func:`finds_people`) the default
            one, gives them; for a face, hand or animal model the whole image is the box.
        flip: the flip test (flipped crops, heatmaps flipped back with the joint pairs and, unless the record says
            ``shift_heatmap=False`` or the decoding is UDP, shifted one pixel).
        decode: ``'default'`` (the official post-processing), ``'dark'`` or ``'udp'`` (mmpose's UDP crop and
            decoding); None follows the model's record (``decoding``), ``'default'`` without one.
        joints: names, flip pairs and skeleton; None reads them from the model's manifest record.
        detector: ``detector(image [3, H, W] in 0..1) -> (boxes [M, 4] x, y, w, h, scores [M])``, asked for the
            people when ``boxes`` is None; None is :func:`~.detect.default_detector` for a person model (its weights
            are fetched once), and none for the others.
        box_scores: the scores of given ``boxes`` (default 1), which :attr:`Poses.scores` multiplies.

    No person found (or an empty ``boxes``) gives empty poses, ``keypoints [0, K, 3]``, without running the model.
    """
    require_decoder(model, DECODER, 'estimate_pose', TASK)
    record = model_record(model)
    decode = _decode_of(record, decode)
    if joints is None:
        joints = joints_of(model)
        # flipping without swapping left and right would mix the joints; a known set without pairs (a hand) has none
        if flip and not joints.flip_pairs and (record is None or record.keypoints is None):
            raise ValueError(f'flip=True needs the left-right joint pairs, and {_name(model)} has no joint set in the '
                             'manifest (not a keypoint tag); pass joints= or flip=False')  # fmt: skip
    pixels = load_image(image)
    if pixels.ndim == 4:
        if len(pixels) != 1:
            raise ValueError('estimate_pose takes one image (its boxes are in its pixels); call once per image')
        pixels = pixels[0]
    if boxes is None and (detector is not None or finds_people(model)):
        boxes, box_scores = (detector or default_detector())(pixels)
    elif boxes is None:
        boxes = [0.0, 0.0, float(pixels.shape[-1]), float(pixels.shape[-2])]
    boxes = _boxes(boxes)
    box_scores = None if box_scores is None else torch.as_tensor(box_scores, dtype=torch.float32).reshape(-1)
    if box_scores is not None and len(box_scores) != len(boxes):
        raise ValueError(f'{len(box_scores)} box scores for {len(boxes)} boxes: give one score per box')
    if len(boxes) == 0:
        return Poses(torch.zeros(0, len(joints.names), 3), boxes, joints, torch.zeros(0))
    check_boxes(boxes, *pixels.shape[-2:])
    _, in_h, in_w = model.pretrained_cfg['input_size']
    if decode == 'udp':
        # mmpose's GetBBoxCenterScale(padding=1.25) and TopdownAffine's aspect-ratio fix, in pixels
        center, scale = box_to_center_scale(boxes, in_w / in_h, pixel_std=1.0)
        inverse = udp_warp_matrix(center, scale, 0.0, (in_w, in_h), inverse=True)
    else:
        center, scale = box_to_center_scale(boxes, in_w / in_h)
        inverse = affine_matrix(center, scale, (in_w, in_h), inverse=True)
    crops = normalize(_warp(pixels, inverse, (in_w, in_h)), model)
    with torch.no_grad():
        heatmaps = model(torch.cat([crops, crops.flip(-1)]) if flip else crops).float()  # one forward for both
    if flip:
        flipped = flip_heatmaps(heatmaps[len(boxes) :], joints.flip_pairs, shift=_shift_of(record, decode))
        heatmaps = (heatmaps[: len(boxes)] + flipped) * 0.5
    if heatmaps.shape[1] != len(joints.names):
        raise ValueError(f'the model gives {heatmaps.shape[1]} heatmaps, but the joint set has {len(joints.names)}')
    if decode == 'udp':
        coords, scores = decode_udp(heatmaps.cpu(), (in_w, in_h))
        coords = input_to_image(coords, center, scale, (in_w, in_h))
    else:
        coords, scores = (decode_dark if decode == 'dark' else decode_heatmaps)(heatmaps.cpu(), center, scale)
    keypoints = torch.cat([coords.float(), scores], -1)
    return Poses(keypoints, boxes, joints, person_scores(keypoints, box_scores))
