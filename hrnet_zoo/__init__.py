"""hrnet_zoo: HRNetV1 / V2 / V2p / V2-OCR for timm. Importing it registers the 36 models with timm.

The package is laid out by layer, and imports only point down (``tests/test_layout.py`` checks it):

* the model core, flat as in timm: :mod:`.specs` (widths and heads as data), :mod:`.backbone`, :mod:`.heads` and
  :mod:`.ocr` (the head modules), :mod:`.models` (classes, builder), :mod:`.registry` (the registered names);
* :mod:`.weights`: the manifest, safetensors I/O, file checks, timm's pretrained path, convert, cards;
* :mod:`.hub`: the publish client, and a Hub-protocol server for loopback use;
* :mod:`.export`: ONNX and OpenVINO export, checked against eager PyTorch;
* :mod:`.fast`: the CPU inference fast path (its OpenVINO backend runs the export);
* :mod:`.tasks`, above the models: image in, answer out (segmentation, top-down pose, pictures, ``predict``);
* on top: :mod:`.stats`, :mod:`.detection`, :mod:`.demo`, :mod:`.bench`, :mod:`.bench_tasks` and :mod:`.cli`.
"""

from . import registry, tasks  # noqa: F401  (importing registry registers every architecture with timm)
from .fast import optimize_for_inference
from .models import HRNetV1, HRNetV2, HRNetV2OCR, HRNetV2p, create_hrnet
from .specs import HEADS, WIDTHS, HeadSpec, HRNetSpec, StageSpec, get_head, get_spec
from .version import __version__
from .weights.manifest import ARCHS, HUB_ORG, MANIFEST, WeightsRecord, get_record

__all__ = [
    'ARCHS',
    'HEADS',
    'HUB_ORG',
    'MANIFEST',
    'WIDTHS',
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
