"""hrnet_zoo.data: the dataset facts (keypoint layouts, class labels) are consistent and say what the sources say.

The spot checks below were read off the sources named in hrnet_zoo/data/keypoints.py and labels.py (mmpose's
``configs/_base_/datasets/*.py``, mmsegmentation's ``mmseg/datasets/*.py``); the legacy values are the ones
hrnet_zoo.weights.manifest carried before they moved.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from hrnet_zoo.data import (
    CITYSCAPES_LABELS,
    CLASS_FLIP_PAIRS,
    COCO_KEYPOINTS,
    KEYPOINT_SETS,
    KEYPOINTS,
    LABELS,
    LIP_LABELS,
    MPII_JOINTS,
    PALETTES,
    KeypointSet,
    LabelSet,
)

DATA_DIR = Path(__file__).resolve().parents[1] / 'hrnet_zoo' / 'data'

KEYPOINT_COUNTS = {
    'coco': 17, 'mpii': 16, 'mhp': 16, 'crowdpose': 14, 'aic': 14, 'posetrack18': 17, 'h36m': 17, 'exlpose': 14,
    'humanart': 17, 'ochuman': 17, 'halpe': 136, 'coco_wholebody': 133, 'ubody2d': 133, 'coco_wholebody_face': 68,
    '300w': 68, '300wlp': 68, 'wflw': 98, 'cofw': 29, 'aflw': 19, 'coco_wholebody_hand': 21, 'onehand10k': 21,
    'panoptic_hand2d': 21, 'rhd2d': 21, 'deepfashion_upper': 6, 'deepfashion_lower': 4, 'deepfashion_full': 8,
    'ap10k': 17, 'animalpose': 20, 'horse10': 22, 'macaque': 17, 'atrw': 15, 'animalkingdom': 23,
}  # fmt: skip
LABEL_COUNTS = {
    'cityscapes': 19, 'ade20k': 150, 'pascal_voc': 21, 'pascal_voc12aug': 21, 'pascal_context': 60,
    'pascal_context_59': 59, 'coco_stuff': 171, 'lip': 20, 'loveda': 7, 'potsdam': 6, 'vaihingen': 6, 'isaid': 16,
}  # fmt: skip
# mmpose's meta files that give no OKS sigmas (an empty list there)
NO_SIGMAS = {
    '300w', '300wlp', 'wflw', 'cofw', 'aflw', 'onehand10k', 'panoptic_hand2d', 'rhd2d', 'h36m', 'horse10',
    'deepfashion_upper', 'deepfashion_lower', 'deepfashion_full',
}  # fmt: skip

# -- the legacy values, as hrnet_zoo.weights.manifest had them ------------------------------------------------

LEGACY_COCO = (
    'nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder', 'right_shoulder', 'left_elbow',
    'right_elbow', 'left_wrist', 'right_wrist', 'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle',
    'right_ankle',
)  # fmt: skip
LEGACY_COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
LEGACY_COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9), (8, 10),
    (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip
LEGACY_MPII = (
    'r_ankle', 'r_knee', 'r_hip', 'l_hip', 'l_knee', 'l_ankle', 'pelvis', 'thorax', 'upper_neck', 'head_top',
    'r_wrist', 'r_elbow', 'r_shoulder', 'l_shoulder', 'l_elbow', 'l_wrist',
)  # fmt: skip
LEGACY_MPII_FLIP_PAIRS = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))
LEGACY_MPII_SKELETON = (
    (0, 1), (1, 2), (2, 6), (3, 6), (4, 3), (5, 4), (7, 6), (8, 7), (9, 8), (10, 11), (11, 12), (12, 7), (13, 7),
    (14, 13), (15, 14),
)  # fmt: skip
LEGACY_CITYSCAPES = (
    'road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'traffic sign', 'vegetation',
    'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle',
)  # fmt: skip
LEGACY_CITYSCAPES_PALETTE = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0),
    (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)  # fmt: skip
LEGACY_LIP = (
    'background', 'hat', 'hair', 'glove', 'sunglasses', 'upper_clothes', 'dress', 'coat', 'socks', 'pants',
    'jumpsuits', 'scarf', 'skirt', 'face', 'left_arm', 'right_arm', 'left_leg', 'right_leg', 'left_shoe',
    'right_shoe',
)  # fmt: skip
LEGACY_LIP_FLIP_PAIRS = ((14, 15), (16, 17), (18, 19))


# -- counts ------------------------------------------------------------------------------------------------------


def test_every_keypoint_set_is_there_with_its_count():
    assert {name: len(kset.names) for name, kset in KEYPOINTS.items()} == KEYPOINT_COUNTS


def test_every_label_set_is_there_with_its_count():
    assert {name: len(lset.names) for name, lset in LABELS.items()} == LABEL_COUNTS


# -- structure of each keypoint set -------------------------------------------------------------------------------


def _assert_pairs_disjoint(pairs: tuple[tuple[int, int], ...], count: int) -> None:
    flat = [i for pair in pairs for i in pair]
    assert all(len(pair) == 2 and all(type(i) is int for i in pair) for pair in pairs)
    assert all(0 <= i < count for i in flat), 'index out of range'
    assert len(flat) == len(set(flat)), 'an index in two pairs, or paired with itself'


@pytest.mark.parametrize('dataset', sorted(KEYPOINTS))
def test_keypoint_set_is_well_formed(dataset):
    kset = KEYPOINTS[dataset]
    assert isinstance(kset, KeypointSet)
    count = len(kset.names)
    assert all(isinstance(name, str) and name for name in kset.names)
    assert len(set(kset.names)) == count, 'names repeat'
    assert isinstance(kset.flip_pairs, tuple) and isinstance(kset.skeleton, tuple)
    _assert_pairs_disjoint(kset.flip_pairs, count)
    assert all(a < b for a, b in kset.flip_pairs), 'each pair written once, lower index first'
    for a, b in kset.skeleton:
        assert type(a) is int and type(b) is int and 0 <= a < count and 0 <= b < count and a != b
    assert len({frozenset(limb) for limb in kset.skeleton}) == len(kset.skeleton), 'a limb twice'


@pytest.mark.parametrize('dataset', sorted(KEYPOINTS))
def test_sigmas_one_per_joint_or_none(dataset):
    kset = KEYPOINTS[dataset]
    if dataset in NO_SIGMAS:
        assert kset.sigmas is None
    else:
        assert isinstance(kset.sigmas, tuple) and len(kset.sigmas) == len(kset.names)
        assert all(type(s) is float and 0 < s < 1 for s in kset.sigmas)


def test_flip_pairs_swap_left_and_right_where_names_say_so():
    """Where both names of a pair spell out their side, one is the other with left and right exchanged."""
    sides = (('left', 'right'), ('L_', 'R_'), ('_Left', '_Right'))
    checked = 0
    for kset in KEYPOINTS.values():
        for a, b in kset.flip_pairs:
            x, y = kset.names[a], kset.names[b]
            for left, right in sides:
                if left in x and right in y:
                    assert x.replace(left, right) == y, (x, y)
                    checked += 1
                elif right in x and left in y:
                    assert x.replace(right, left) == y, (x, y)
                    checked += 1
    assert checked > 200


# -- datasets that share names ------------------------------------------------------------------------------------


def test_keypoint_sets_by_names_are_derived_from_keypoints():
    assert set(KEYPOINT_SETS) == {kset.names for kset in KEYPOINTS.values()}
    for names, kset in KEYPOINT_SETS.items():
        first = next(k for k in KEYPOINTS.values() if k.names == names)
        assert kset is first


def test_same_names_mean_the_same_layout():
    """Sets with the same names agree on pairs and limbs, and on sigmas where both define them.

    The one known exception: mmpose's 300wlp.py lists no swaps for the 68 points whose pairs 300w.py gives.
    """
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for dataset, kset in KEYPOINTS.items():
        groups[kset.names].append(dataset)
    disagreements = set()
    for names, datasets in groups.items():
        kept = KEYPOINT_SETS[names]
        for dataset in datasets:
            kset = KEYPOINTS[dataset]
            if kset.flip_pairs != kept.flip_pairs:
                disagreements.add((dataset, 'flip_pairs'))
            if kset.skeleton != kept.skeleton:
                disagreements.add((dataset, 'skeleton'))
            if kset.sigmas is not None and kset.sigmas != kept.sigmas:
                disagreements.add((dataset, 'sigmas'))
    assert disagreements == {('300wlp', 'flip_pairs')}
    shared = sorted(sorted(datasets) for datasets in groups.values() if len(datasets) > 1)
    assert shared == [
        ['300w', '300wlp'],
        ['coco', 'humanart', 'macaque', 'ochuman'],
        ['coco_wholebody', 'ubody2d'],
        ['coco_wholebody_hand', 'onehand10k', 'panoptic_hand2d'],
    ]
    assert KEYPOINT_SETS[KEYPOINTS['300wlp'].names] is KEYPOINTS['300w']
    assert KEYPOINT_SETS[KEYPOINTS['onehand10k'].names].sigmas == KEYPOINTS['coco_wholebody_hand'].sigmas


# -- the legacy values ----------------------------------------------------------------------------------------------


def test_legacy_keypoint_values_are_unchanged():
    assert COCO_KEYPOINTS == LEGACY_COCO
    assert MPII_JOINTS == LEGACY_MPII
    coco, mpii = KEYPOINT_SETS[LEGACY_COCO], KEYPOINT_SETS[LEGACY_MPII]
    assert coco is KEYPOINTS['coco'] and mpii is KEYPOINTS['mpii']
    assert (coco.names, coco.flip_pairs, coco.skeleton) == (LEGACY_COCO, LEGACY_COCO_FLIP_PAIRS, LEGACY_COCO_SKELETON)
    assert (mpii.names, mpii.flip_pairs, mpii.skeleton) == (LEGACY_MPII, LEGACY_MPII_FLIP_PAIRS, LEGACY_MPII_SKELETON)
    # positional construction, as the tasks layer does it, still works and leaves sigmas unset
    assert KeypointSet(LEGACY_COCO, LEGACY_COCO_FLIP_PAIRS, LEGACY_COCO_SKELETON).sigmas is None


def test_legacy_label_values_are_unchanged():
    assert CITYSCAPES_LABELS == LEGACY_CITYSCAPES and LIP_LABELS == LEGACY_LIP
    assert LABELS['cityscapes'].names == LEGACY_CITYSCAPES and LABELS['lip'].names == LEGACY_LIP
    assert PALETTES[LEGACY_CITYSCAPES] == LEGACY_CITYSCAPES_PALETTE
    assert CLASS_FLIP_PAIRS == {LEGACY_LIP: LEGACY_LIP_FLIP_PAIRS}
    assert LABELS['cityscapes'].class_flip_pairs == ()


# -- spot checks against the sources ----------------------------------------------------------------------------


def test_coco_sigmas():
    assert KEYPOINTS['coco'].sigmas == (
        0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087,
        0.089, 0.089,
    )  # fmt: skip


def test_coco_wholebody_parts():
    """body 0-16, feet 17-22, face 23-90, left hand 91-111, right hand 112-132."""
    kset = KEYPOINTS['coco_wholebody']
    names = kset.names
    assert names[:17] == LEGACY_COCO
    assert names[17:23] == (
        'left_big_toe', 'left_small_toe', 'left_heel', 'right_big_toe', 'right_small_toe', 'right_heel',
    )  # fmt: skip
    assert names[23:91] == tuple(f'face-{i}' for i in range(68))
    assert names[91:96] == ('left_hand_root', 'left_thumb1', 'left_thumb2', 'left_thumb3', 'left_thumb4')
    assert names[111] == 'left_pinky_finger4'
    assert names[112:114] == ('right_hand_root', 'right_thumb1') and names[132] == 'right_pinky_finger4'
    assert all(n.startswith('left_') for n in names[91:112]) and all(n.startswith('right_') for n in names[112:])
    pairs = set(kset.flip_pairs)
    assert {(17, 20), (18, 21), (19, 22), (23, 39), (30, 32), (88, 90), (91, 112), (111, 132)} <= pairs
    assert len(kset.flip_pairs) == 8 + 3 + 29 + 21
    assert kset.sigmas[17:23] == (0.068, 0.066, 0.066, 0.092, 0.094, 0.094)
    assert kset.sigmas[23:91] == KEYPOINTS['coco_wholebody_face'].sigmas
    assert kset.sigmas[91:112] == kset.sigmas[112:] == KEYPOINTS['coco_wholebody_hand'].sigmas
    # the face set and the hand set are the whole-body parts, renamed and re-indexed
    face = KEYPOINTS['coco_wholebody_face']
    assert face.flip_pairs == tuple((a - 23, b - 23) for a, b in kset.flip_pairs if 23 <= a < 91)
    hand = KEYPOINTS['coco_wholebody_hand']
    assert hand.names[:3] == ('wrist', 'thumb1', 'thumb2') and hand.names[-1] == 'pinky_finger4'
    assert hand.skeleton == tuple((a - 91, b - 91) for a, b in kset.skeleton if 91 <= a < 112)
    assert hand.flip_pairs == ()


def test_face_sets():
    wflw = KEYPOINTS['wflw']
    assert wflw.names[0] == 'kpt-0' and wflw.names[-1] == 'kpt-97'
    assert wflw.flip_pairs[0] == (0, 32) and wflw.flip_pairs[-1] == (96, 97) and len(wflw.flip_pairs) == 44
    assert KEYPOINTS['300w'].flip_pairs[:3] == ((0, 16), (1, 15), (2, 14)) and len(KEYPOINTS['300w'].flip_pairs) == 29
    assert KEYPOINTS['300wlp'].flip_pairs == ()
    assert KEYPOINTS['cofw'].flip_pairs[:4] == ((0, 1), (2, 3), (4, 6), (5, 7))
    assert KEYPOINTS['aflw'].flip_pairs == ((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9), (12, 14), (15, 17))
    assert all(KEYPOINTS[d].skeleton == () for d in ('wflw', '300w', '300wlp', 'cofw', 'aflw', 'coco_wholebody_face'))


def test_body_sets():
    assert KEYPOINTS['crowdpose'].names[-2:] == ('top_head', 'neck')
    assert KEYPOINTS['exlpose'].names[-2:] == ('head', 'neck')
    aic = KEYPOINTS['aic']
    assert aic.names[0] == 'right_shoulder' and aic.names[-2:] == ('head_top', 'neck')
    assert aic.flip_pairs[0] == (0, 3) and aic.sigmas[0] == 0.01388152
    assert KEYPOINTS['posetrack18'].names[:3] == ('nose', 'head_bottom', 'head_top')
    assert KEYPOINTS['posetrack18'].flip_pairs[0] == (3, 4)
    h36m = KEYPOINTS['h36m']
    assert h36m.names[0] == 'root' and h36m.names[10] == 'head' and h36m.flip_pairs[0] == (1, 4)
    mhp = KEYPOINTS['mhp']
    assert mhp.names[0] == 'right_ankle' and mhp.flip_pairs == LEGACY_MPII_FLIP_PAIRS
    assert mhp.sigmas == KEYPOINTS['mpii'].sigmas and mhp.sigmas[:2] == (0.089, 0.083)
    halpe = KEYPOINTS['halpe']
    assert halpe.names[:17] == LEGACY_COCO and halpe.names[17:20] == ('head', 'neck', 'hip')
    assert halpe.names[20] == 'left_big_toe' and halpe.names[26] == 'face-0' and halpe.names[94] == 'left_hand_root'
    assert halpe.names[115] == 'right_hand_root' and (94, 115) in halpe.flip_pairs
    assert (9, 95) in halpe.skeleton and halpe.sigmas[17:20] == (0.08, 0.08, 0.08) and halpe.sigmas[-1] == 0.015
    for dataset in ('humanart', 'ochuman', 'macaque'):
        assert KEYPOINTS[dataset] == KEYPOINTS['coco']


def test_hand_fashion_and_animal_sets():
    assert KEYPOINTS['rhd2d'].names[:3] == ('wrist', 'thumb4', 'thumb3') and KEYPOINTS['rhd2d'].skeleton[0] == (0, 4)
    assert KEYPOINTS['onehand10k'].names == KEYPOINTS['coco_wholebody_hand'].names
    assert KEYPOINTS['deepfashion_full'].names[4:6] == ('left waistline', 'right waistline')
    assert KEYPOINTS['deepfashion_lower'].names == ('left waistline', 'right waistline', 'left hem', 'right hem')
    assert KEYPOINTS['ap10k'].names[:5] == ('L_Eye', 'R_Eye', 'Nose', 'Neck', 'Root of tail')
    assert KEYPOINTS['ap10k'].flip_pairs[1] == (5, 8)
    assert KEYPOINTS['animalpose'].names[2:4] == ('L_EarBase', 'R_EarBase')
    assert KEYPOINTS['horse10'].names[0] == 'Nose' and KEYPOINTS['horse10'].flip_pairs == ()
    assert KEYPOINTS['atrw'].names[-2:] == ('tail', 'center') and KEYPOINTS['atrw'].sigmas[0] == 0.0277
    ak = KEYPOINTS['animalkingdom']
    assert ak.names[0] == 'Head_Mid_Top' and ak.names[-1] == 'Tail_End_Back' and ak.sigmas == (0.025,) * 23


# -- label sets ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('dataset', sorted(LABELS))
def test_label_set_is_well_formed(dataset):
    lset = LABELS[dataset]
    assert isinstance(lset, LabelSet)
    count = len(lset.names)
    assert all(isinstance(name, str) and name for name in lset.names)
    assert len(set(lset.names)) == count, 'names repeat'
    assert lset.palette is not None and len(lset.palette) == count
    for colour in lset.palette:
        assert isinstance(colour, tuple) and len(colour) == 3
        assert all(type(c) is int and 0 <= c <= 255 for c in colour)
    _assert_pairs_disjoint(lset.class_flip_pairs, count)


def test_label_lookups_are_derived_from_labels():
    groups: dict[tuple[str, ...], list[LabelSet]] = defaultdict(list)
    for lset in LABELS.values():
        groups[lset.names].append(lset)
    for names, sets in groups.items():
        assert all(lset == sets[0] for lset in sets), names  # the same names, the same colours and pairs
    assert PALETTES == {names: sets[0].palette for names, sets in groups.items()}
    assert CLASS_FLIP_PAIRS == {
        names: sets[0].class_flip_pairs for names, sets in groups.items() if sets[0].class_flip_pairs
    }
    assert LABELS['pascal_voc12aug'] == LABELS['pascal_voc'] and LABELS['vaihingen'] == LABELS['potsdam']


def test_label_spot_checks():
    ade = LABELS['ade20k']
    assert ade.names[:3] == ('wall', 'building', 'sky') and ade.names[7] == 'bed ' and ade.names[-1] == 'flag'
    assert ade.palette[0] == (120, 120, 120) and ade.palette[-1] == (92, 0, 255)
    voc = LABELS['pascal_voc']
    assert voc.names[0] == 'background' and voc.names[-1] == 'tvmonitor' and voc.palette[1] == (128, 0, 0)
    ctx, ctx59 = LABELS['pascal_context'], LABELS['pascal_context_59']
    assert ctx.names[:2] == ('background', 'aeroplane') and ctx.names[-1] == 'wood'
    assert ctx59.names == ctx.names[1:] and ctx59.palette == ctx.palette[1:]
    stuff = LABELS['coco_stuff']
    assert stuff.names[0] == 'person' and stuff.names[79] == 'toothbrush' and stuff.names[80] == 'banner'
    assert stuff.names[-1] == 'wood' and stuff.palette[0] == (0, 192, 64)
    assert LABELS['lip'].palette[:3] == ((0, 0, 0), (128, 0, 0), (255, 0, 0))
    assert LABELS['loveda'].names == ('background', 'building', 'road', 'water', 'barren', 'forest', 'agricultural')
    assert LABELS['potsdam'].names == ('impervious_surface', 'building', 'low_vegetation', 'tree', 'car', 'clutter')
    assert LABELS['isaid'].names[:2] == ('background', 'ship') and LABELS['isaid'].palette[-1] == (0, 100, 155)


# -- import hygiene -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('module', sorted(p.name for p in DATA_DIR.glob('*.py')))
def test_data_modules_import_only_the_standard_library(module):
    tree = ast.parse((DATA_DIR / module).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            tops = [alias.name.split('.')[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                assert node.level == 1, 'imports from outside hrnet_zoo.data'
                continue
            tops = [node.module.split('.')[0]]
        else:
            continue
        assert all(top in sys.stdlib_module_names or top == '__future__' for top in tops), tops
