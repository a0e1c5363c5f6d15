"""The models: the backbone (:mod:`.backbone`), one file per head (:mod:`.heads`), the public base class and the
builder (:mod:`.builder`), and the registered entrypoints with timm's default cfgs (:mod:`.hrnet`); the Lite-HRNet
family beside them (:mod:`.litehrnet`, its pose models and entrypoints in :mod:`.litehrnet_pose`). Importing it
registers every architecture with timm."""

from . import higherhrnet, hrnet, litehrnet_pose  # noqa: F401  (registers the entrypoints with timm)
from .backbone import HRNetBackbone
from .builder import MODEL_CLASSES, HRNet, create_hrnet, register_head
from .heads import HRNetV1, HRNetV2, HRNetV2OCR, HRNetV2p
from .litehrnet import LiteHRNetBackbone
from .litehrnet_pose import LiteHRNetPose

__all__ = [
    'MODEL_CLASSES',
    'HRNet',
    'HRNetBackbone',
    'HRNetV1',
    'HRNetV2',
    'HRNetV2OCR',
    'HRNetV2p',
    'LiteHRNetBackbone',
    'LiteHRNetPose',
    'create_hrnet',
    'register_head',
]
