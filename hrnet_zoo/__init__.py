"""hrnet_zoo: HRNetV1 / V2 / V2p for timm. Importing it registers the 27 models with timm."""

from .inference import optimize_for_inference
from .models import HRNetV1, HRNetV2, HRNetV2p, create_hrnet
from .specs import WIDTHS, HRNetSpec, StageSpec, get_spec
from .weights import ARCHS, HUB_ORG, MANIFEST, WeightsRecord, get_record

__version__ = '0.1.0'

__all__ = [
    'ARCHS',
    'HUB_ORG',
    'MANIFEST',
    'WIDTHS',
    'HRNetSpec',
    'HRNetV1',
    'HRNetV2',
    'HRNetV2p',
    'StageSpec',
    'WeightsRecord',
    'create_hrnet',
    'get_record',
    'get_spec',
    'optimize_for_inference',
]
