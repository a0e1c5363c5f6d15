"""The weights side: the manifest (:mod:`.manifest`, a record per ``<arch>.<tag>``) and its counts, safetensors
I/O and digests (:mod:`.io`), checks of a file against a model (:mod:`.checks`), timm's pretrained path
(:mod:`.pretrained`), and the converter and model cards (:mod:`.convert`, :mod:`.cards`).

Only the manifest is re-exported here, so that importing it pulls in nothing above it.
"""

from .manifest import (
    ARCHS,
    BACKBONE_TASK,
    HEADS,
    HUB_ORG,
    MANIFEST,
    Metric,
    Source,
    WeightsRecord,
    arch_name,
    default_tag,
    get_record,
    parse_arch,
)

__all__ = [
    'ARCHS',
    'BACKBONE_TASK',
    'HEADS',
    'HUB_ORG',
    'MANIFEST',
    'Metric',
    'Source',
    'WeightsRecord',
    'arch_name',
    'default_tag',
    'get_record',
    'parse_arch',
]
