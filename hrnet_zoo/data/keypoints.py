"""Keypoint layouts of the datasets HRNet pose checkpoints are trained on, as plain data.

For each dataset: the joint names in the order of the model's heatmap channels, the left-right pairs that flip
testing swaps, the skeleton's limbs (all indices 0-based) and, where the dataset defines them, the per-joint OKS
sigmas of COCO-style evaluation.

Sources. ``coco`` and ``mpii`` keep the names, pairs and limbs the package has always used (those of
deep-high-resolution-net.pytorch's COCO and MPII datasets); every other set, and the sigmas, follow OpenMMLab's
mmpose dataset meta files (``configs/_base_/datasets/<name>.py``, identical in the mmpose 1.3.2 release and on
its main branch as of August 2025): names in ``keypoint_info`` order, flip pairs from each joint's ``swap``
(written once, lower index first) and limbs in ``skeleton_info`` order. An empty ``sigmas`` list there is
``None`` here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ['COCO_KEYPOINTS', 'KEYPOINTS', 'KEYPOINT_SETS', 'MPII_JOINTS', 'PERSON_SETS', 'KeypointSet']


@dataclass(frozen=True)
class KeypointSet:
    """A dataset's joints: names in heatmap order, left-right pairs, the skeleton's limbs and the OKS sigmas."""

    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...] | None = None  # per joint, for OKS; None where the dataset defines none


def _numbered(prefix: str, count: int) -> tuple[str, ...]:
    """``prefix-0`` .. ``prefix-<count - 1>``: the landmark names of the face datasets."""
    return tuple(f'{prefix}-{i}' for i in range(count))


def _hand(prefix: str, root: str) -> tuple[str, ...]:
    """The 21 hand joints: the root, then four joints per finger from the palm outwards, thumb to pinky."""
    fingers = ('thumb', 'forefinger', 'middle_finger', 'ring_finger', 'pinky_finger')
    return (prefix + root, *(f'{prefix}{finger}{i}' for finger in fingers for i in range(1, 5)))


COCO_KEYPOINTS = (
    'nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder', 'right_shoulder', 'left_elbow',
    'right_elbow', 'left_wrist', 'right_wrist', 'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle',
    'right_ankle',
)  # fmt: skip
MPII_JOINTS = (
    'r_ankle', 'r_knee', 'r_hip', 'l_hip', 'l_knee', 'l_ankle', 'pelvis', 'thorax', 'upper_neck', 'head_top', 'r_wrist',
    'r_elbow', 'r_shoulder', 'l_shoulder', 'l_elbow', 'l_wrist',
)  # fmt: skip

_COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))  # fmt: skip
_COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9), (8, 10), (1, 2),
    (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip
_COCO_SIGMAS = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089,
    0.089,
)  # fmt: skip
_COCO = KeypointSet(COCO_KEYPOINTS, _COCO_FLIP_PAIRS, _COCO_SKELETON, _COCO_SIGMAS)

# wrist to each fingertip; shared by the hand sets in the standard joint order
_HAND_SKELETON = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11), (11, 12), (0, 13),
    (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20),
)  # fmt: skip
# the 68-point (iBUG / Multi-PIE) face's mirror pairs: 300W's and COCO-WholeBody's face
_FACE68_FLIP_PAIRS = (
    (0, 16), (1, 15), (2, 14), (3, 13), (4, 12), (5, 11), (6, 10), (7, 9), (17, 26), (18, 25), (19, 24), (20, 23),
    (21, 22), (31, 35), (32, 34), (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46), (48, 54), (49, 53),
    (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67),
)  # fmt: skip
_WHOLEBODY_FACE_SIGMAS = (
    0.042, 0.043, 0.044, 0.043, 0.04, 0.035, 0.031, 0.025, 0.02, 0.023, 0.029, 0.032, 0.037, 0.038, 0.043, 0.041, 0.045,
    0.013, 0.012, 0.011, 0.011, 0.012, 0.012, 0.011, 0.011, 0.013, 0.015, 0.009, 0.007, 0.007, 0.007, 0.012, 0.009,
    0.008, 0.016, 0.01, 0.017, 0.011, 0.009, 0.011, 0.009, 0.007, 0.013, 0.008, 0.011, 0.012, 0.01, 0.034, 0.008, 0.008,
    0.009, 0.008, 0.008, 0.007, 0.01, 0.008, 0.009, 0.009, 0.009, 0.007, 0.007, 0.008, 0.011, 0.008, 0.008, 0.008, 0.01,
    0.008,
)  # fmt: skip
_WHOLEBODY_HAND_SIGMAS = (
    0.029, 0.022, 0.035, 0.037, 0.047, 0.026, 0.025, 0.024, 0.035, 0.018, 0.024, 0.022, 0.026, 0.017, 0.021, 0.021,
    0.032, 0.02, 0.019, 0.022, 0.031,
)  # fmt: skip
_WHOLEBODY_FEET = ('left_big_toe', 'left_small_toe', 'left_heel', 'right_big_toe', 'right_small_toe', 'right_heel')
_WHOLEBODY_FEET_SIGMAS = (0.068, 0.066, 0.066, 0.092, 0.094, 0.094)
_WHOLEBODY_HANDS = _hand('left_', 'hand_root') + _hand('right_', 'hand_root')
_WHOLEBODY = KeypointSet(
    # body 0-16, feet 17-22, face 23-90, left hand 91-111, right hand 112-132
    COCO_KEYPOINTS + _WHOLEBODY_FEET + _numbered('face', 68) + _WHOLEBODY_HANDS,
    flip_pairs=(
        (1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 20), (18, 21), (19, 22), (23, 39),
        (24, 38), (25, 37), (26, 36), (27, 35), (28, 34), (29, 33), (30, 32), (40, 49), (41, 48), (42, 47), (43, 46),
        (44, 45), (54, 58), (55, 57), (59, 68), (60, 67), (61, 66), (62, 65), (63, 70), (64, 69), (71, 77), (72, 76),
        (73, 75), (78, 82), (79, 81), (83, 87), (84, 86), (88, 90), (91, 112), (92, 113), (93, 114), (94, 115),
        (95, 116), (96, 117), (97, 118), (98, 119), (99, 120), (100, 121), (101, 122), (102, 123), (103, 124),
        (104, 125), (105, 126), (106, 127), (107, 128), (108, 129), (109, 130), (110, 131), (111, 132),
    ),
    skeleton=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9), (8, 10),
        (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6), (15, 17), (15, 18), (15, 19), (16, 20), (16, 21),
        (16, 22), (91, 92), (92, 93), (93, 94), (94, 95), (91, 96), (96, 97), (97, 98), (98, 99), (91, 100), (100, 101),
        (101, 102), (102, 103), (91, 104), (104, 105), (105, 106), (106, 107), (91, 108), (108, 109), (109, 110),
        (110, 111), (112, 113), (113, 114), (114, 115), (115, 116), (112, 117), (117, 118), (118, 119), (119, 120),
        (112, 121), (121, 122), (122, 123), (123, 124), (112, 125), (125, 126), (126, 127), (127, 128), (112, 129),
        (129, 130), (130, 131), (131, 132),
    ),
    sigmas=_COCO_SIGMAS + _WHOLEBODY_FEET_SIGMAS + _WHOLEBODY_FACE_SIGMAS + 2 * _WHOLEBODY_HAND_SIGMAS,
)  # fmt: skip

_HALPE_FEET = ('left_big_toe', 'right_big_toe', 'left_small_toe', 'right_small_toe', 'left_heel', 'right_heel')

KEYPOINTS: dict[str, KeypointSet] = {
    # ---- human body
    'coco': _COCO,
    # names, pairs and limbs as before (deep-high-resolution-net.pytorch); mmpose's mpii.py has the same order
    # and pairs, spells the names out (right_ankle) and joins the shoulders to upper_neck instead of thorax;
    # the sigmas are its (adapted from COCO)
    'mpii': KeypointSet(
        MPII_JOINTS,
        flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
        skeleton=(
            (0, 1), (1, 2), (2, 6), (3, 6), (4, 3), (5, 4), (7, 6), (8, 7), (9, 8), (10, 11), (11, 12), (12, 7),
            (13, 7), (14, 13), (15, 14),
        ),
        sigmas=(
            0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026, 0.026, 0.026, 0.062, 0.072, 0.179, 0.179, 0.072,
            0.062,
        ),
    ),
    # mmpose configs/_base_/datasets/mhp.py: MPII's 16 joints with mmpose's names and limbs
    'mhp': KeypointSet(
        (
            'right_ankle', 'right_knee', 'right_hip', 'left_hip', 'left_knee', 'left_ankle', 'pelvis', 'thorax',
            'upper_neck', 'head_top', 'right_wrist', 'right_elbow', 'right_shoulder', 'left_shoulder', 'left_elbow',
            'left_wrist',
        ),
        flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
        skeleton=(
            (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9), (8, 12), (12, 11), (11, 10),
            (8, 13), (13, 14), (14, 15),
        ),
        sigmas=(
            0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026, 0.026, 0.026, 0.062, 0.072, 0.179, 0.179, 0.072,
            0.062,
        ),
    ),
    # mmpose configs/_base_/datasets/crowdpose.py
    'crowdpose': KeypointSet(
        (
            'left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist', 'left_hip',
            'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle', 'top_head', 'neck',
        ),
        flip_pairs=((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)),
        skeleton=(
            (10, 8), (8, 6), (11, 9), (9, 7), (6, 7), (0, 6), (1, 7), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (12, 13),
            (1, 13), (0, 13),
        ),
        sigmas=(0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089, 0.079, 0.079),
    ),
    # mmpose configs/_base_/datasets/aic.py (AI Challenger)
    'aic': KeypointSet(
        (
            'right_shoulder', 'right_elbow', 'right_wrist', 'left_shoulder', 'left_elbow', 'left_wrist', 'right_hip',
            'right_knee', 'right_ankle', 'left_hip', 'left_knee', 'left_ankle', 'head_top', 'neck',
        ),
        flip_pairs=((0, 3), (1, 4), (2, 5), (6, 9), (7, 10), (8, 11)),
        skeleton=(
            (2, 1), (1, 0), (0, 13), (13, 3), (3, 4), (4, 5), (8, 7), (7, 6), (6, 9), (9, 10), (10, 11), (12, 13),
            (0, 6), (3, 9),
        ),
        sigmas=(
            0.01388152, 0.01515228, 0.01057665, 0.01417709, 0.01497891, 0.01402144, 0.03909642, 0.03686941, 0.01981803,
            0.03843971, 0.03412318, 0.02415081, 0.01291456, 0.01236173,
        ),
    ),
    # mmpose configs/_base_/datasets/posetrack18.py: COCO's order with head_bottom / head_top in place of the eyes
    'posetrack18': KeypointSet(
        (
            'nose', 'head_bottom', 'head_top', 'left_ear', 'right_ear', 'left_shoulder', 'right_shoulder', 'left_elbow',
            'right_elbow', 'left_wrist', 'right_wrist', 'left_hip', 'right_hip', 'left_knee', 'right_knee',
            'left_ankle', 'right_ankle',
        ),
        flip_pairs=((3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
        skeleton=(
            (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9), (8, 10),
            (0, 1), (0, 2), (1, 5), (1, 6),
        ),
        sigmas=_COCO_SIGMAS,
    ),
    # mmpose configs/_base_/datasets/h36m.py (Human3.6M, 2D); no sigmas
    'h36m': KeypointSet(
        (
            'root', 'right_hip', 'right_knee', 'right_foot', 'left_hip', 'left_knee', 'left_foot', 'spine', 'thorax',
            'neck_base', 'head', 'left_shoulder', 'left_elbow', 'left_wrist', 'right_shoulder', 'right_elbow',
            'right_wrist',
        ),
        flip_pairs=((1, 4), (2, 5), (3, 6), (11, 14), (12, 15), (13, 16)),
        skeleton=(
            (0, 4), (4, 5), (5, 6), (0, 1), (1, 2), (2, 3), (0, 7), (7, 8), (8, 9), (9, 10), (8, 11), (11, 12),
            (12, 13), (8, 14), (14, 15), (15, 16),
        ),
    ),
    # mmpose configs/_base_/datasets/exlpose.py
    'exlpose': KeypointSet(
        (
            'left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist', 'left_hip',
            'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle', 'head', 'neck',
        ),
        flip_pairs=((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)),
        skeleton=(
            (12, 13), (13, 0), (13, 1), (0, 2), (2, 4), (1, 3), (3, 5), (13, 7), (13, 6), (7, 9), (9, 11), (6, 8),
            (8, 10),
        ),
        sigmas=(0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089, 0.079, 0.079),
    ),
    # mmpose's humanart.py and ochuman.py repeat coco.py's joints, pairs, limbs and sigmas
    'humanart': _COCO,
    'ochuman': _COCO,
    # mmpose configs/_base_/datasets/halpe.py: COCO body, head / neck / hip, feet, the 68 face points, both hands;
    # the finger limbs start at the body wrists (no hand-root limb); all face and hand sigmas are 0.015
    'halpe': KeypointSet(
        COCO_KEYPOINTS + ('head', 'neck', 'hip') + _HALPE_FEET + _numbered('face', 68) + _WHOLEBODY_HANDS,
        flip_pairs=(
            (1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (20, 21), (22, 23), (24, 25),
            (26, 42), (27, 41), (28, 40), (29, 39), (30, 38), (31, 37), (32, 36), (33, 35), (43, 52), (44, 51),
            (45, 50), (46, 49), (47, 48), (57, 61), (58, 60), (62, 71), (63, 70), (64, 69), (65, 68), (66, 73),
            (67, 72), (74, 80), (75, 79), (76, 78), (81, 85), (82, 84), (86, 90), (87, 89), (91, 93), (94, 115),
            (95, 116), (96, 117), (97, 118), (98, 119), (99, 120), (100, 121), (101, 122), (102, 123), (103, 124),
            (104, 125), (105, 126), (106, 127), (107, 128), (108, 129), (109, 130), (110, 131), (111, 132), (112, 133),
            (113, 134), (114, 135),
        ),
        skeleton=(
            (15, 13), (13, 11), (11, 19), (16, 14), (14, 12), (12, 19), (17, 18), (18, 19), (18, 5), (5, 7), (7, 9),
            (18, 6), (6, 8), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6), (15, 20), (15, 22),
            (15, 24), (16, 21), (16, 23), (16, 25), (9, 95), (95, 96), (96, 97), (97, 98), (9, 99), (99, 100),
            (100, 101), (101, 102), (9, 103), (103, 104), (104, 105), (105, 106), (9, 107), (107, 108), (108, 109),
            (109, 110), (9, 111), (111, 112), (112, 113), (113, 114), (10, 116), (116, 117), (117, 118), (118, 119),
            (10, 120), (120, 121), (121, 122), (122, 123), (10, 124), (124, 125), (125, 126), (126, 127), (10, 128),
            (128, 129), (129, 130), (130, 131), (10, 132), (132, 133), (133, 134), (134, 135),
        ),
        sigmas=_COCO_SIGMAS + (0.08, 0.08, 0.08) + (0.089,) * 6 + (0.015,) * 110,
    ),
    # ---- whole body
    'coco_wholebody': _WHOLEBODY,
    # mmpose's ubody2d.py repeats coco_wholebody.py
    'ubody2d': _WHOLEBODY,
    # ---- face
    # mmpose configs/_base_/datasets/coco_wholebody_face.py (its face-51 says id=52, a typo: the key, 51, is the index)
    'coco_wholebody_face': KeypointSet(
        _numbered('face', 68),
        flip_pairs=_FACE68_FLIP_PAIRS,
        skeleton=(),
        sigmas=_WHOLEBODY_FACE_SIGMAS,
    ),
    # mmpose configs/_base_/datasets/300w.py; no limbs, no sigmas
    '300w': KeypointSet(
        _numbered('kpt', 68),
        flip_pairs=_FACE68_FLIP_PAIRS,
        skeleton=(),
    ),
    # mmpose configs/_base_/datasets/300wlp.py: the same 68 points as 300w, but its meta file gives no swaps, so
    # no flip pairs here (mmpose's 300W-LP checkpoint was trained and flip-tested that way). The one set whose
    # flip pairs differ from another set's with the same names: KEYPOINT_SETS answers those names with 300w's
    '300wlp': KeypointSet(
        _numbered('kpt', 68),
        flip_pairs=(),
        skeleton=(),
    ),
    # mmpose configs/_base_/datasets/wflw.py
    'wflw': KeypointSet(
        _numbered('kpt', 98),
        flip_pairs=(
            (0, 32), (1, 31), (2, 30), (3, 29), (4, 28), (5, 27), (6, 26), (7, 25), (8, 24), (9, 23), (10, 22),
            (11, 21), (12, 20), (13, 19), (14, 18), (15, 17), (33, 46), (34, 45), (35, 44), (36, 43), (37, 42),
            (38, 50), (39, 49), (40, 48), (41, 47), (55, 59), (56, 58), (60, 72), (61, 71), (62, 70), (63, 69),
            (64, 68), (65, 75), (66, 74), (67, 73), (76, 82), (77, 81), (78, 80), (83, 87), (84, 86), (88, 92),
            (89, 91), (93, 95), (96, 97),
        ),
        skeleton=(),
    ),
    # mmpose configs/_base_/datasets/cofw.py
    'cofw': KeypointSet(
        _numbered('kpt', 29),
        flip_pairs=((0, 1), (2, 3), (4, 6), (5, 7), (8, 9), (10, 11), (12, 14), (13, 15), (16, 17), (18, 19), (22, 23)),
        skeleton=(),
    ),
    # mmpose configs/_base_/datasets/aflw.py
    'aflw': KeypointSet(
        _numbered('kpt', 19),
        flip_pairs=((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9), (12, 14), (15, 17)),
        skeleton=(),
    ),
    # ---- hand
    # mmpose configs/_base_/datasets/coco_wholebody_hand.py; hands have no left-right pairs
    'coco_wholebody_hand': KeypointSet(
        _hand('', 'wrist'),
        flip_pairs=(),
        skeleton=_HAND_SKELETON,
        sigmas=_WHOLEBODY_HAND_SIGMAS,
    ),
    # mmpose configs/_base_/datasets/onehand10k.py: the same joints and limbs, no sigmas
    'onehand10k': KeypointSet(
        _hand('', 'wrist'),
        flip_pairs=(),
        skeleton=_HAND_SKELETON,
    ),
    # mmpose configs/_base_/datasets/panoptic_hand2d.py (CMU Panoptic)
    'panoptic_hand2d': KeypointSet(
        _hand('', 'wrist'),
        flip_pairs=(),
        skeleton=_HAND_SKELETON,
    ),
    # mmpose configs/_base_/datasets/rhd2d.py: each finger from the tip inwards (thumb4 .. thumb1), unlike the other
    # hand sets
    'rhd2d': KeypointSet(
        (
            'wrist', 'thumb4', 'thumb3', 'thumb2', 'thumb1', 'forefinger4', 'forefinger3', 'forefinger2', 'forefinger1',
            'middle_finger4', 'middle_finger3', 'middle_finger2', 'middle_finger1', 'ring_finger4', 'ring_finger3',
            'ring_finger2', 'ring_finger1', 'pinky_finger4', 'pinky_finger3', 'pinky_finger2', 'pinky_finger1',
        ),
        flip_pairs=(),
        skeleton=(
            (0, 4), (4, 3), (3, 2), (2, 1), (0, 8), (8, 7), (7, 6), (6, 5), (0, 12), (12, 11), (11, 10), (10, 9),
            (0, 16), (16, 15), (15, 14), (14, 13), (0, 20), (20, 19), (19, 18), (18, 17),
        ),
    ),
    # ---- fashion landmarks (DeepFashion); no limbs, no sigmas
    # mmpose configs/_base_/datasets/deepfashion_upper.py
    'deepfashion_upper': KeypointSet(
        ('left collar', 'right collar', 'left sleeve', 'right sleeve', 'left hem', 'right hem'),
        flip_pairs=((0, 1), (2, 3), (4, 5)),
        skeleton=(),
    ),
    # mmpose configs/_base_/datasets/deepfashion_lower.py
    'deepfashion_lower': KeypointSet(
        ('left waistline', 'right waistline', 'left hem', 'right hem'),
        flip_pairs=((0, 1), (2, 3)),
        skeleton=(),
    ),
    # mmpose configs/_base_/datasets/deepfashion_full.py (keys 4-7 say id=0..3, a typo: the key is the index)
    'deepfashion_full': KeypointSet(
        (
            'left collar', 'right collar', 'left sleeve', 'right sleeve', 'left waistline', 'right waistline',
            'left hem', 'right hem',
        ),
        flip_pairs=((0, 1), (2, 3), (4, 5), (6, 7)),
        skeleton=(),
    ),
    # ---- animals
    # mmpose configs/_base_/datasets/ap10k.py
    'ap10k': KeypointSet(
        (
            'L_Eye', 'R_Eye', 'Nose', 'Neck', 'Root of tail', 'L_Shoulder', 'L_Elbow', 'L_F_Paw', 'R_Shoulder',
            'R_Elbow', 'R_F_Paw', 'L_Hip', 'L_Knee', 'L_B_Paw', 'R_Hip', 'R_Knee', 'R_B_Paw',
        ),
        flip_pairs=((0, 1), (5, 8), (6, 9), (7, 10), (11, 14), (12, 15), (13, 16)),
        skeleton=(
            (0, 1), (0, 2), (1, 2), (2, 3), (3, 4), (3, 5), (5, 6), (6, 7), (3, 8), (8, 9), (9, 10), (4, 11), (11, 12),
            (12, 13), (4, 14), (14, 15), (15, 16),
        ),
        sigmas=(
            0.025, 0.025, 0.026, 0.035, 0.035, 0.079, 0.072, 0.062, 0.079, 0.072, 0.062, 0.107, 0.087, 0.089, 0.107,
            0.087, 0.089,
        ),
    ),
    # mmpose configs/_base_/datasets/animalpose.py
    'animalpose': KeypointSet(
        (
            'L_Eye', 'R_Eye', 'L_EarBase', 'R_EarBase', 'Nose', 'Throat', 'TailBase', 'Withers', 'L_F_Elbow',
            'R_F_Elbow', 'L_B_Elbow', 'R_B_Elbow', 'L_F_Knee', 'R_F_Knee', 'L_B_Knee', 'R_B_Knee', 'L_F_Paw', 'R_F_Paw',
            'L_B_Paw', 'R_B_Paw',
        ),
        flip_pairs=((0, 1), (2, 3), (8, 9), (10, 11), (12, 13), (14, 15), (16, 17), (18, 19)),
        skeleton=(
            (0, 1), (0, 2), (1, 3), (0, 4), (1, 4), (4, 5), (5, 7), (6, 7), (5, 8), (8, 12), (12, 16), (5, 9), (9, 13),
            (13, 17), (6, 10), (10, 14), (14, 18), (6, 11), (11, 15), (15, 19),
        ),
        sigmas=(
            0.025, 0.025, 0.026, 0.035, 0.035, 0.1, 0.1, 0.1, 0.107, 0.107, 0.107, 0.107, 0.087, 0.087, 0.087, 0.087,
            0.089, 0.089, 0.089, 0.089,
        ),
    ),
    # mmpose configs/_base_/datasets/horse10.py: no swaps (near / off are the horse's sides), no sigmas
    'horse10': KeypointSet(
        (
            'Nose', 'Eye', 'Nearknee', 'Nearfrontfetlock', 'Nearfrontfoot', 'Offknee', 'Offfrontfetlock',
            'Offfrontfoot', 'Shoulder', 'Midshoulder', 'Elbow', 'Girth', 'Wither', 'Nearhindhock', 'Nearhindfetlock',
            'Nearhindfoot', 'Hip', 'Stifle', 'Offhindhock', 'Offhindfetlock', 'Offhindfoot', 'Ischium',
        ),
        flip_pairs=(),
        skeleton=(
            (0, 1), (1, 12), (12, 16), (16, 21), (21, 17), (17, 11), (11, 10), (10, 8), (8, 9), (9, 12), (2, 3), (3, 4),
            (5, 6), (6, 7), (13, 14), (14, 15), (18, 19), (19, 20),
        ),
    ),
    # mmpose's macaque.py (MacaquePose) repeats coco.py's joints, pairs, limbs and sigmas
    'macaque': _COCO,
    # mmpose configs/_base_/datasets/atrw.py (Amur tigers)
    'atrw': KeypointSet(
        (
            'left_ear', 'right_ear', 'nose', 'right_shoulder', 'right_front_paw', 'left_shoulder', 'left_front_paw',
            'right_hip', 'right_knee', 'right_back_paw', 'left_hip', 'left_knee', 'left_back_paw', 'tail', 'center',
        ),
        flip_pairs=((0, 1), (3, 5), (4, 6), (7, 10), (8, 11), (9, 12)),
        skeleton=(
            (0, 2), (1, 2), (2, 14), (5, 6), (5, 14), (3, 4), (3, 14), (13, 14), (9, 8), (8, 7), (7, 13), (12, 11),
            (11, 10), (10, 13),
        ),
        sigmas=(
            0.0277, 0.0823, 0.0831, 0.0202, 0.0716, 0.0263, 0.0646, 0.0302, 0.044, 0.0316, 0.0333, 0.0547, 0.0263,
            0.0683, 0.0539,
        ),
    ),
    # mmpose configs/_base_/datasets/ak.py
    'animalkingdom': KeypointSet(
        (
            'Head_Mid_Top', 'Eye_Left', 'Eye_Right', 'Mouth_Front_Top', 'Mouth_Back_Left', 'Mouth_Back_Right',
            'Mouth_Front_Bottom', 'Shoulder_Left', 'Shoulder_Right', 'Elbow_Left', 'Elbow_Right', 'Wrist_Left',
            'Wrist_Right', 'Torso_Mid_Back', 'Hip_Left', 'Hip_Right', 'Knee_Left', 'Knee_Right', 'Ankle_Left',
            'Ankle_Right', 'Tail_Top_Back', 'Tail_Mid_Back', 'Tail_End_Back',
        ),
        flip_pairs=((1, 2), (4, 5), (7, 8), (9, 10), (11, 12), (14, 15), (16, 17), (18, 19)),
        skeleton=(
            (1, 0), (2, 0), (3, 4), (3, 5), (6, 4), (6, 5), (0, 13), (13, 20), (20, 21), (21, 22), (0, 7), (0, 8),
            (7, 9), (8, 10), (9, 11), (10, 12), (20, 14), (20, 15), (14, 16), (15, 17), (16, 18), (17, 19),
        ),
        sigmas=(
            0.025, 0.025, 0.025, 0.025, 0.025, 0.025, 0.025, 0.025, 0.025, 0.025, 0.025, 0.025, 0.025, 0.025, 0.025,
            0.025, 0.025, 0.025, 0.025, 0.025, 0.025, 0.025, 0.025,
        ),
    ),
}  # fmt: skip


def _by_names(sets: dict[str, KeypointSet]) -> dict[tuple[str, ...], KeypointSet]:
    """Each names tuple's set: that of the first dataset in ``sets`` with those names.

    Datasets that share names share the layout (tests/test_data.py checks it), but for 300wlp, whose meta file
    lists no flip pairs: its names answer with 300w's set. Sigmas may be missing from some of them (OneHand10K and
    CMU Panoptic define none for the hand that COCO-WholeBody gives sigmas).
    """
    by_names: dict[tuple[str, ...], KeypointSet] = {}
    for keypoint_set in sets.values():
        by_names.setdefault(keypoint_set.names, keypoint_set)
    return by_names


KEYPOINT_SETS: dict[tuple[str, ...], KeypointSet] = _by_names(KEYPOINTS)

# the datasets whose boxes are whole people, so a person detector finds them (faces, hands, animals, clothes: not)
PERSON_SETS = frozenset({
    'aic', 'coco', 'coco_wholebody', 'crowdpose', 'exlpose', 'h36m', 'halpe', 'humanart', 'mhp', 'mpii', 'ochuman',
    'posetrack18', 'ubody2d',
})  # fmt: skip
