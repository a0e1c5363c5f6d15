"""The models: the backbone (:mod:`.backbone`), one file per head (:mod:`.heads`), the public base class and the
builder (:mod:`.builder`), and the registered entrypoints with timm's default cfgs (:mod:`.hrnet`). Importing it
registers every architecture with timm."""

from . import hrnet  # noqa: F401  (registers the entrypoints with timm)
from .backbone import HRNetBackbone
from .builder import MODEL_CLASSES, HRNet, create_hrnet, register_head
from .heads import HRNetV1, HRNetV2, HRNetV2OCR, HRNetV2p

__all__ = [
    'MODEL_CLASSES',
    'HRNet',
    'HRNetBackbone',
    'HRNetV1',
    'HRNetV2',
    'HRNetV2OCR',
    'HRNetV2p',
    'create_hrnet',
    'register_head',
]
