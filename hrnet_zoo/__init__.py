"""hrnet_zoo: HRNetV1 / V2 / V2p / V2-OCR for timm. Importing it registers the 36 models with timm, and the
Lite-HRNet and HigherHRNet architectures (4 more).

The package is laid out by layer, each folder one layer and each file one thing; imports only point down
(``tests/test_layout.py`` checks it). Bottom to top:

* :mod:`.specs` (widths, backbone families and heads as data), :mod:`.files` (atomic writes) and :mod:`.data`
  (dataset facts: label names, palettes, keypoint sets);
* :mod:`.hub`: a Hub-protocol server and store for loopback use (standard library only);
* :mod:`.weights`: reading weights: the records and manifest, safetensors I/O, file checks, timm's pretrained path;
* :mod:`.models`: the backbone, one file per head (:mod:`.models.heads`), the public base class and builder, the
  registered entrypoints (:mod:`.models.hrnet`), and torchvision detectors (:mod:`.models.detection`);
* :mod:`.export` (ONNX and OpenVINO, checked against eager PyTorch) and :mod:`.fast` (the CPU inference fast path);
* :mod:`.tasks`: image in, answer out (segmentation, top-down pose, pictures, ``predict``);
* :mod:`.publish`: everything that writes weights: convert, cards, the Hub client, release and its lock;
* on top: :mod:`.stats`, :mod:`.demo`, :mod:`.bench` (never imported by the library) and :mod:`.cli`.

Old module paths (``hrnet_zoo.backbone``, ``hrnet_zoo.weights.convert``, ...) still import, with a
``DeprecationWarning`` naming the new one (:mod:`._moved`).
"""

from . import _moved, tasks  # noqa: F401  (the old module paths, and the tasks namespace)
from .fast import optimize_for_inference
from .models import HRNet, HRNetV1, HRNetV2, HRNetV2OCR, HRNetV2p, create_hrnet  # registers every architecture
from .specs import FAMILIES, HEADS, WIDTHS, FamilySpec, HeadSpec, HRNetSpec, StageSpec, get_head, get_spec
from .version import __version__
from .weights.manifest import ARCHS, HUB_ORG, MANIFEST, WeightsRecord, get_record

__all__ = [
    'ARCHS',
    'FAMILIES',
    'HEADS',
    'HUB_ORG',
    'MANIFEST',
    'WIDTHS',
    'FamilySpec',
    'HRNet',
    'HRNetSpec',
    'HRNetV1',
    'HRNetV2',
    'HRNetV2OCR',
    'HRNetV2p',
    'HeadSpec',
    'StageSpec',
    'WeightsRecord',
    '__version__',
    'create_hrnet',
    'get_head',
    'get_record',
    'get_spec',
    'optimize_for_inference',
    'tasks',
]
