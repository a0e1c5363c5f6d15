"""Reading weights: what exists (:mod:`.records`, and :mod:`.manifest` with a record per ``<arch>.<tag>``, and its
params / GFLOPs in :mod:`.counts`), safetensors I/O and digests (:mod:`.io`), checks of a file against a model
(:mod:`.checks`) and timm's pretrained path (:mod:`.pretrained`). Everything that writes weights (convert, cards,
the Hub client, release) is in :mod:`hrnet_zoo.publish`.

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
