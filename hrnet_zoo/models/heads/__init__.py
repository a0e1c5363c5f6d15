"""One file per head: its modules and its model class, registered with the builder on import. What a head is (its
keys, classifier, task, decoder) is its row of :data:`~hrnet_zoo.specs.HEADS`."""

from .ocr import HRNetV2OCR
from .v1 import HRNetV1
from .v2 import HRNetV2
from .v2p import HRNetV2p

__all__ = ['HRNetV1', 'HRNetV2', 'HRNetV2OCR', 'HRNetV2p']
