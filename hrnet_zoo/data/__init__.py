"""Dataset facts as plain data: the keypoint layouts and class labels HRNet checkpoints are trained on.

:mod:`.keypoints` holds each pose dataset's joint names (in heatmap order), flip pairs, skeleton and OKS sigmas;
:mod:`.labels` each segmentation dataset's class names (in output order), colours and flip pairs. Both are keyed
by dataset id (``KEYPOINTS['coco']``, ``LABELS['cityscapes']``), with lookups by names tuple for the weights
records. Standard library only: importing it loads neither torch nor the rest of the package.
"""

from .keypoints import COCO_KEYPOINTS, KEYPOINT_SETS, KEYPOINTS, MPII_JOINTS, KeypointSet
from .labels import CITYSCAPES_LABELS, CLASS_FLIP_PAIRS, LABELS, LIP_LABELS, PALETTES, LabelSet

__all__ = [
    'CITYSCAPES_LABELS',
    'CLASS_FLIP_PAIRS',
    'COCO_KEYPOINTS',
    'KEYPOINTS',
    'KEYPOINT_SETS',
    'LABELS',
    'LIP_LABELS',
    'MPII_JOINTS',
    'PALETTES',
    'KeypointSet',
    'LabelSet',
]
