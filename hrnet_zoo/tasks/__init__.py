"""Image in, answer out: segmentation and top-down pose on top of the models, following the official test code.

:func:`segment` returns class ids and probabilities at the image's size (scales, flip, sliding window);
:func:`estimate_pose` returns keypoints in image pixels for person boxes. The official building blocks are public
(:func:`box_to_center_scale`, :func:`affine_matrix`, :func:`crop_boxes`, :func:`decode_heatmaps`,
:func:`flip_back`), with DARK decoding (:func:`decode_dark`) beside them, Pillow pictures of both, and
:func:`upsampled_argmax`: the class ids of upsampled logits without upsampling them.
Which task a model does is its head's, in :data:`~hrnet_zoo.specs.HEADS`; models are duck-typed (see
:mod:`.inputs`).
"""

from .draw import draw_pose, draw_segmentation, generated_palette, to_pil
from .inputs import head_task, load_image, model_record, normalize, to_batch
from .pose import (
    Poses,
    affine_matrix,
    box_to_center_scale,
    crop_boxes,
    decode_dark,
    decode_heatmaps,
    estimate_pose,
    flip_back,
    joints_of,
)
from .segmentation import SegmentationResult, segment, sliding_windows
from .upsampled_argmax import upsampled_argmax

__all__ = [
    'Poses',
    'SegmentationResult',
    'affine_matrix',
    'box_to_center_scale',
    'crop_boxes',
    'decode_dark',
    'decode_heatmaps',
    'draw_pose',
    'draw_segmentation',
    'estimate_pose',
    'flip_back',
    'generated_palette',
    'head_task',
    'joints_of',
    'load_image',
    'model_record',
    'normalize',
    'segment',
    'sliding_windows',
    'to_batch',
    'to_pil',
    'upsampled_argmax',
]
