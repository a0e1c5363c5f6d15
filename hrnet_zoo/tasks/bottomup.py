"""Bottom-up pose: the whole image in, every person's keypoints out, as HigherHRNet-Human-Pose-Estimation tests it.

The official ``tools/valid.py`` with a COCO config (``experiments/coco/higher_hrnet/*.yaml`` and
``lib/config/default.py``):

* the image is warped (``utils/transforms.resize_align_multi_scale``: ``get_affine_transform`` and
  ``cv2.warpAffine``, zero border) so its short side is the input size times the scale, a multiple of 64, and its
  long side the next multiple of 64 (:func:`multi_scale_size`);
* ``core/inference.get_multi_stage_outputs`` with ``TEST.PROJECT2IMAGE``: the 1/4 output is resized to the 1/2
  one, the heatmaps of both are averaged and the tags taken from the 1/4 output; with the flip test the mirrored
  image's maps are mirrored back and their joints swapped by the flip index; heatmaps and tags are then resized
  (bilinear) to the warped image at scale 1;
* ``aggregate_results``: heatmaps are averaged over flip and scales; the tags of scale 1 (plain and flipped) become
  the tag vector of each pixel, ``[K, H, W, T]`` (the other scales' tags are not used, as there);
* ``core/group.HeatmapParser.parse``: 5x5 max-pool NMS, the top 30 peaks per joint, :func:`match_by_tag` joint by
  joint in the official order, :func:`adjust_people` (half a pixel to the center, a quarter toward the higher
  neighbour), the person score (the mean of its joint scores, taken before refining), and :func:`refine_person`
  (each missing joint at the best heatmap value minus the rounded distance to the person's mean tag);
* ``get_final_preds``: back to image pixels with the inverse of the warp.

The assignment of each joint's detections to the people found so far is scipy's ``linear_sum_assignment`` (the
official code calls the ``munkres`` package; both find an optimal assignment, and only equal-cost ties may be broken
differently). scipy is the optional extra ``hrnet_zoo[bottomup]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.keypoints import KEYPOINTS, KeypointSet
from .inputs import ImageInput, load_image, model_record, normalize, require_decoder
from .pose import PIXEL_STD, Poses, affine_matrix, crop_boxes, joints_of

__all__ = [
    'COCO_JOINT_ORDER',
    'GroupingParams',
    'adjust_people',
    'bottomup_maps',
    'estimate_pose_bottomup',
    'group_people',
    'match_by_tag',
    'multi_scale_size',
    'refine_person',
    'top_k',
]

TASK = 'keypoint-detection'
DECODER = 'bottomup_heatmaps_tags'  # the output estimate_pose_bottomup reads
# group.Params.joint_order: the head first, then shoulders, hips, elbows, wrists, knees, ankles (0-based)
COCO_JOINT_ORDER = (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)


@dataclass(frozen=True)
class GroupingParams:
    """The official ``TEST`` settings of grouping (``lib/core/group.py`` ``Params``), COCO values by default."""

    detection_threshold: float = 0.1  # TEST.DETECTION_THRESHOLD of the HigherHRNet configs
    tag_threshold: float = 1.0  # TEST.TAG_THRESHOLD: the largest tag distance that joins a person
    max_people: int = 30  # DATASET.MAX_NUM_PEOPLE: peaks per joint, and people matched against
    nms_kernel: int = 5  # TEST.NMS_KERNEL (padding NMS_KERNEL // 2)
    use_detection_val: bool = True  # TEST.USE_DETECTION_VAL: the cost is round(distance) * 100 - score
    ignore_too_much: bool = False  # TEST.IGNORE_TOO_MUCH: skip a joint once max_people people exist
    joint_order: tuple[int, ...] | None = None  # None: COCO_JOINT_ORDER for 17 joints, else 0 .. K - 1

    def order(self, num_joints: int) -> tuple[int, ...]:
        if self.joint_order is not None:
            if sorted(self.joint_order) != list(range(num_joints)):
                raise ValueError(f'joint_order must order the {num_joints} joints, got {self.joint_order}')
            return self.joint_order
        return COCO_JOINT_ORDER if num_joints == len(COCO_JOINT_ORDER) else tuple(range(num_joints))


def _linear_sum_assignment():
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        raise ImportError(
            "bottom-up grouping needs scipy (its Hungarian matching): pip install 'hrnet_zoo[bottomup]'"
        ) from None
    return linear_sum_assignment


# -- sizes ------------------------------------------------------------------------------------------------------


def multi_scale_size(
    height: int, width: int, input_size: int, scale: float = 1.0, min_scale: float = 1.0
) -> tuple[tuple[int, int], tuple[float, float], tuple[float, float]]:
    """``get_multi_scale_size``: the warped size ``(w, h)``, the center ``(x, y)`` and the official scale (in units
    of 200 px) for one test scale. The short side becomes ``input_size * scale`` (from the multiple of 64 at
    ``min_scale``), the long side keeps the aspect ratio, rounded up to a multiple of 64."""
    center = (float(int(width / 2.0 + 0.5)), float(int(height / 2.0 + 0.5)))
    min_input = int((min_scale * input_size + 63) // 64 * 64)
    short, long = (width, height) if width < height else (height, width)
    short_resized = int(min_input * scale / min_scale)
    long_resized = int(int((min_input / short * long + 63) // 64 * 64) * scale / min_scale)
    if width < height:
        size = (short_resized, long_resized)
        official = (width / PIXEL_STD, long_resized / short_resized * width / PIXEL_STD)
    else:
        size = (long_resized, short_resized)
        official = (long_resized / short_resized * height / PIXEL_STD, height / PIXEL_STD)
    return size, center, official


# -- the model's maps -------------------------------------------------------------------------------------------


def _stage_maps(outputs: Sequence[Tensor], num_joints: int) -> tuple[Tensor, Tensor]:
    """``get_multi_stage_outputs`` for one forward: every output resized to the last (finest) one, their heatmaps
    averaged, the tags of the first (the only one with tags in the released models)."""
    size = outputs[-1].shape[-2:]
    resized = [o if i == len(outputs) - 1 else F.interpolate(o, size=size, mode='bilinear', align_corners=False)
               for i, o in enumerate(outputs)]  # fmt: skip
    heatmaps = sum(o[:, :num_joints] for o in resized) / len(resized)
    tags = resized[0][:, num_joints:]
    if tags.shape[1] not in (num_joints, 1):
        raise ValueError(f'the first output has {outputs[0].shape[1]} channels; for {num_joints} joints, bottom-up '
                         f'grouping needs {num_joints} heatmaps and {num_joints} tag maps (or one)')  # fmt: skip
    return heatmaps, tags


def bottomup_maps(
    model: Any,
    pixels: Tensor,
    input_size: int,
    scales: Sequence[float] = (1.0,),
    flip: bool = True,
    flip_index: Sequence[int] | None = None,
    num_joints: int = 17,
) -> tuple[Tensor, Tensor, tuple[float, float], tuple[float, float]]:
    """Heatmaps ``[K, H, W]`` and tags ``[K, H, W, T]`` at the warped image's size at scale 1, with the center and
    official scale that map them back to the image (``pixels``: ``[3, h, w]`` in 0..1)."""
    if flip and flip_index is None:
        raise ValueError('flip=True needs the flip index (each joint, its mirror joint)')
    height, width = pixels.shape[-2:]
    min_scale = min(scales)
    (base_w, base_h), _, _ = multi_scale_size(height, width, input_size, 1.0, min_scale)
    if len(scales) > 1 and 1.0 not in scales:
        raise ValueError(f'multi-scale testing takes the tags of scale 1.0, and scales={tuple(scales)} has none')
    heatmap_sum, tag_list = None, []
    for s in sorted(scales, reverse=True):
        size, center, official = multi_scale_size(height, width, input_size, s, min_scale)
        warped = crop_boxes(pixels, torch.tensor([center]), torch.tensor([official]), size)
        x = normalize(warped, model)
        with torch.no_grad():
            outputs = model(torch.cat([x, x.flip(-1)]) if flip else x)
        outputs = (outputs,) if isinstance(outputs, Tensor) else outputs  # one output: heatmaps and tags at 1/4
        heatmaps, tags = _stage_maps([o.float() for o in outputs], num_joints)
        if flip:
            # the mirrored image's maps, mirrored back, each joint's channel read from its mirror joint
            flipped_heatmaps = heatmaps[1:].flip(-1)[:, list(flip_index)]
            flipped_tags = tags[1:].flip(-1)
            if flipped_tags.shape[1] == num_joints:  # a tag per joint (TAG_PER_JOINT)
                flipped_tags = flipped_tags[:, list(flip_index)]
            heatmaps, tags = torch.cat([heatmaps[:1], flipped_heatmaps]), torch.cat([tags[:1], flipped_tags])
        project = dict(size=(base_h, base_w), mode='bilinear', align_corners=False)
        heatmaps, tags = F.interpolate(heatmaps, **project), F.interpolate(tags, **project)
        heatmap_sum = heatmaps.mean(0) if heatmap_sum is None else heatmap_sum + heatmaps.mean(0)
        if s == 1.0 or len(scales) == 1:
            tag_list += list(tags)  # plain, then flipped: [K or 1, H, W] each
    tags = torch.stack(tag_list, -1)
    tags = tags.expand(num_joints, -1, -1, -1) if tags.shape[0] == 1 else tags  # one tag map shared by the joints
    return heatmap_sum / len(scales), tags, center, official


# -- grouping ---------------------------------------------------------------------------------------------------


def top_k(heatmaps: Tensor, tags: Tensor, params: GroupingParams = GroupingParams()) -> tuple[np.ndarray, ...]:
    """``HeatmapParser.top_k``: peaks that are the maximum of their ``nms_kernel`` window, the ``max_people``
    highest per joint. Returns tags ``[K, M, T]``, locations ``[K, M, 2]`` as integer ``(x, y)``, values ``[K, M]``."""
    num_joints, height, width = heatmaps.shape
    pooled = F.max_pool2d(heatmaps[None], params.nms_kernel, 1, params.nms_kernel // 2)[0]
    peaks = heatmaps * (pooled == heatmaps)
    values, index = peaks.reshape(num_joints, -1).topk(min(params.max_people, height * width), dim=1)
    flat_tags = tags.reshape(num_joints, height * width, -1)
    tag_k = torch.gather(flat_tags, 1, index[..., None].expand(-1, -1, flat_tags.shape[-1]))
    loc_k = torch.stack([index % width, index // width], -1)
    return tag_k.numpy(), loc_k.numpy(), values.numpy()


def match_by_tag(
    tag_k: np.ndarray, loc_k: np.ndarray, val_k: np.ndarray, params: GroupingParams = GroupingParams()
) -> np.ndarray:
    """``group.match_by_tag``: people ``[P, K, 3 + T]`` as ``(x, y, score, tag...)`` rows per joint (zeros where a
    person has no such joint), in the order they were found.

    Joint by joint (``params.order``), the detections above the threshold are assigned to the people so far by
    the Hungarian algorithm on the distance of their tag to each person's mean tag (rounded, times 100, minus the
    detection's score with ``use_detection_val``); an assignment farther than ``tag_threshold`` (or no person
    left) starts a new person. As in the official code a person is keyed by the first tag value of its first
    joint, so a detection whose first tag value equals a person's key joins that person.
    """
    linear_sum_assignment = _linear_sum_assignment()
    num_joints, _, tag_dim = tag_k.shape
    people: dict[float, np.ndarray] = {}
    person_tags: dict[float, list[np.ndarray]] = {}

    def start(tag: np.ndarray, row: np.ndarray, joint: int) -> None:
        key = float(tag[0])
        people.setdefault(key, np.zeros((num_joints, 3 + tag_dim)))[joint] = row
        person_tags[key] = [tag]

    for i, joint in enumerate(params.order(num_joints)):
        # float64 rows (integer locations joined to float32 scores and tags), float32 tags: the official dtypes
        rows = np.concatenate([loc_k[joint], val_k[joint][:, None], tag_k[joint]], 1)
        keep = rows[:, 2] > params.detection_threshold
        rows, tags = rows[keep], tag_k[joint][keep]
        if len(rows) == 0:
            continue
        if i == 0 or not people:
            for tag, row in zip(tags, rows):
                start(tag, row, joint)
            continue
        keys = list(people)[: params.max_people]
        if params.ignore_too_much and len(keys) == params.max_people:
            continue
        means = np.stack([np.mean(person_tags[k], axis=0) for k in keys])
        distance = np.linalg.norm(rows[:, None, 3:] - means[None], ord=2, axis=2)
        cost = np.round(distance) * 100 - rows[:, 2:3] if params.use_detection_val else distance.copy()
        if len(rows) > len(keys):  # more detections than people: the extra columns are "a new person"
            cost = np.concatenate([cost, np.full((len(rows), len(rows) - len(keys)), 1e10)], 1)
        for r, c in zip(*linear_sum_assignment(cost)):
            if c < len(keys) and distance[r, c] < params.tag_threshold:
                people[keys[c]][joint] = rows[r]
                person_tags[keys[c]].append(tags[r])
            else:
                start(tags[r], rows[r], joint)
    found = np.stack(list(people.values())) if people else np.zeros((0, num_joints, 3 + tag_dim))
    return found.astype(np.float32)


def _quarter(row: np.ndarray, at: int, size: int) -> float:
    """+0.25 where the next value of ``row`` (at ``at + 1``, clamped) is higher than the previous one, else -0.25."""
    return 0.25 if row[min(at + 1, size - 1)] > row[max(at - 1, 0)] else -0.25


def adjust_people(people: np.ndarray, heatmaps: np.ndarray) -> np.ndarray:
    """``HeatmapParser.adjust``: each found joint moves half a pixel (to its pixel's center) and a quarter pixel
    toward its higher horizontal and vertical neighbour (down or left where they are equal)."""
    out = people.copy()
    _, height, width = heatmaps.shape
    for person in out:
        for joint, row in enumerate(person):
            if row[2] > 0:
                x, y = row[0], row[1]
                xi, yi = int(x), int(y)
                hm = heatmaps[joint]
                row[0] = x + 0.5 + _quarter(hm[yi], xi, width)
                row[1] = y + 0.5 + _quarter(hm[:, xi], yi, height)
    return out


def refine_person(heatmaps: np.ndarray, tags: np.ndarray, person: np.ndarray) -> np.ndarray:
    """``HeatmapParser.refine``: every joint the person lacks (score 0) is placed at the maximum of its heatmap minus
    the rounded distance of each pixel's tag to the person's mean tag, half a pixel and a quarter toward the higher
    neighbour, with that pixel's heatmap value as score; it stays missing where that value is not positive.
    ``heatmaps [K, H, W]``, ``tags [K, H, W, T]``, ``person [K, 3 + T]``."""
    out = person.copy()
    found = out[:, 2] > 0
    xy = out[found, :2].astype(np.int32)
    mean_tag = np.mean(tags[np.flatnonzero(found), xy[:, 1], xy[:, 0]], axis=0)
    _, height, width = heatmaps.shape
    for joint in np.flatnonzero(~found):
        hm = heatmaps[joint]
        # one tag component at a time: numpy reduces a trailing axis of 1 or 2 values very slowly
        distance = np.sqrt(sum((tags[joint, ..., t] - mean_tag[t]) ** 2 for t in range(len(mean_tag))))
        y, x = np.unravel_index(np.argmax(hm - np.round(distance)), hm.shape)
        value = hm[y, x]
        if value > 0:
            out[joint, 0] = x + 0.5 + _quarter(hm[y], x, width)
            out[joint, 1] = y + 0.5 + _quarter(hm[:, x], y, height)
            out[joint, 2] = value
    return out


def group_people(
    heatmaps: Tensor,
    tags: Tensor,
    params: GroupingParams = GroupingParams(),
    adjust: bool = True,
    refine: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``HeatmapParser.parse``: people ``[P, K, 3 + T]`` in heatmap pixels and their scores ``[P]`` (the mean joint
    score after ``adjust`` and before ``refine``). ``heatmaps [K, H, W]``, ``tags [K, H, W, T]``."""
    heatmaps, tags = heatmaps.detach().float().cpu(), tags.detach().float().cpu()
    people = match_by_tag(*top_k(heatmaps, tags, params), params)
    heatmaps_np, tags_np = heatmaps.numpy(), tags.numpy()
    if adjust:
        people = adjust_people(people, heatmaps_np)
    scores = people[:, :, 2].mean(1) if len(people) else np.zeros(0, dtype=np.float32)
    if refine:
        people = np.stack([refine_person(heatmaps_np, tags_np, p) for p in people]) if len(people) else people
    return people, scores


# -- the task ---------------------------------------------------------------------------------------------------


def _joints(model: Any, joints: KeypointSet | None) -> KeypointSet:
    if joints is not None:
        return joints
    if model_record(model) is not None:
        return joints_of(model)
    # no record yet: the released HigherHRNets are COCO models, so 17 joints are COCO's
    if getattr(model, 'num_classes', None) == len(KEYPOINTS['coco'].names):
        return KEYPOINTS['coco']
    return joints_of(model)


def _flip_index(joints: KeypointSet) -> list[int]:
    index = list(range(len(joints.names)))
    for left, right in joints.flip_pairs:
        index[left], index[right] = right, left
    return index


def _boxes(keypoints: Tensor) -> Tensor:
    """x, y, w, h of each person's found joints (score > 0)."""
    found = keypoints[..., 2] > 0
    inf = torch.tensor(float('inf'))
    x, y = keypoints[..., 0], keypoints[..., 1]
    x0, y0 = torch.where(found, x, inf).amin(1), torch.where(found, y, inf).amin(1)
    x1, y1 = torch.where(found, x, -inf).amax(1), torch.where(found, y, -inf).amax(1)
    return torch.stack([x0, y0, x1 - x0, y1 - y0], 1)


def estimate_pose_bottomup(
    model: Any,
    image: ImageInput,
    *,
    scales: Sequence[float] = (1.0,),
    flip: bool = True,
    joints: KeypointSet | None = None,
    input_size: int | None = None,
    params: GroupingParams = GroupingParams(),
    adjust: bool = True,
    refine: bool = True,
) -> Poses:
    """Every person's keypoints in one image, without boxes: HigherHRNet's heatmaps and tags, grouped.

    Args:
        model: a model whose output is bottom-up heatmaps and tags (``higherhrnet_w32``, ``higherhrnet_w48``), in
            eval mode; ``model(x)`` returns its outputs, 1/4 first (heatmaps and tags), finest last.
        image: a path, PIL image, HWC uint8 array or ``[3, H, W]`` float tensor in 0..1.
        scales: test scales (the official ``TEST.SCALE_FACTOR``); more than one must include 1.0, whose tags are used.
        flip: the flip test (``TEST.FLIP_TEST``), with the joint set's flip pairs.
        joints: names and flip pairs; None reads the record's, or COCO's for a 17-joint model without one.
        input_size: the short side at scale 1 (multiple of 64); None is the model's pretrained ``input_size``.
        params: grouping settings (:class:`GroupingParams`, the official COCO test values by default).
        adjust, refine: the official ``TEST.ADJUST`` and ``TEST.REFINE``.

    Returns :class:`~.pose.Poses`: ``keypoints [N, K, 3]`` as ``(x, y, score)`` in image pixels (a joint with score 0
    was not found; its position means nothing), ``boxes [N, 4]`` the found joints' extent ``x, y, w, h``, and
    ``scores [N]`` each person's mean joint score, the official person score.
    """
    require_decoder(model, DECODER, 'estimate_pose_bottomup', TASK)
    joints = _joints(model, joints)
    if flip and not joints.flip_pairs:
        raise ValueError('flip=True needs the left-right joint pairs, and the joint set has none; pass joints= (with '
                         'flip_pairs) or flip=False')  # fmt: skip
    if not scales or min(scales) <= 0:
        raise ValueError(f'scales must be positive, got {tuple(scales)}')
    pixels = load_image(image)
    if pixels.ndim == 4:
        if len(pixels) != 1:
            raise ValueError('estimate_pose_bottomup takes one image; call once per image')
        pixels = pixels[0]
    size = int(input_size or model.pretrained_cfg['input_size'][-1])
    num_joints = len(joints.names)
    heatmaps, tags, center, official = bottomup_maps(
        model, pixels, size, scales, flip, _flip_index(joints) if flip else None, num_joints
    )
    people, scores = group_people(heatmaps, tags, params, adjust, refine)
    keypoints = torch.from_numpy(people[:, :, :3].astype(np.float32))
    if len(keypoints):
        height, width = heatmaps.shape[-2:]
        inverse = affine_matrix(torch.tensor([center]), torch.tensor([official]), (width, height), inverse=True)[0]
        xy = keypoints[..., :2].double() @ inverse[:, :2].T + inverse[:, 2]
        keypoints = torch.cat([xy.float(), keypoints[..., 2:]], -1)
    return Poses(keypoints, _boxes(keypoints), joints, torch.from_numpy(np.asarray(scores, dtype=np.float32)))
