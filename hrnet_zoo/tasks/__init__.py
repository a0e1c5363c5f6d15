"""Image in, answer out: segmentation and top-down pose on top of the models, following the official test code.

:func:`segment` returns class ids and probabilities at the image's size (scales, flip, sliding window);
:func:`estimate_pose` returns keypoints in image pixels for person boxes, found by :class:`PersonDetector` (a
torchvision COCO detector) when none are given, and :func:`estimate_pose_bottomup` every person's without boxes
(HigherHRNet); :func:`predict_stream` answers a photo, folder, video or webcam
frame by frame (:func:`read_source`), and :func:`write_video` and :func:`coco_keypoint_results` write the
answers. The official building blocks are public (:func:`box_to_center_scale`, :func:`affine_matrix`,
:func:`crop_boxes`, :func:`decode_heatmaps`, :func:`flip_back`), with DARK decoding (:func:`decode_dark`) beside
them, Pillow pictures of both, and :func:`upsampled_argmax`: the class ids of upsampled logits without upsampling
them.
Which task a model does is its head's, in :data:`~hrnet_zoo.specs.HEADS`; models are duck-typed (see
:mod:`.inputs`).
"""

from .bottomup import GroupingParams, estimate_pose_bottomup
from .detect import PersonDetector, default_detector
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
    finds_people,
    flip_back,
    joints_of,
    person_scores,
)
from .segmentation import SegmentationResult, segment, sliding_windows
from .sources import Frame, read_source
from .stream import Answer, Timings, coco_keypoint_results, predict_stream
from .upsampled_argmax import upsampled_argmax
from .video import write_video

__all__ = [
    'Answer',
    'Frame',
    'GroupingParams',
    'PersonDetector',
    'Poses',
    'SegmentationResult',
    'Timings',
    'affine_matrix',
    'box_to_center_scale',
    'coco_keypoint_results',
    'crop_boxes',
    'decode_dark',
    'decode_heatmaps',
    'default_detector',
    'draw_pose',
    'draw_segmentation',
    'estimate_pose',
    'estimate_pose_bottomup',
    'finds_people',
    'flip_back',
    'generated_palette',
    'head_task',
    'joints_of',
    'load_image',
    'model_record',
    'normalize',
    'person_scores',
    'predict_stream',
    'read_source',
    'segment',
    'sliding_windows',
    'to_batch',
    'to_pil',
    'upsampled_argmax',
    'write_video',
]
