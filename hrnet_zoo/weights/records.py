"""What a weights record is: one pretrained tag (``<arch>.<tag>``), its source, its metrics, and the facts derived
from it (head, width, label and keypoint sets, timm's pretrained cfg). The records themselves are in
:mod:`.manifest` (torchvision's ``Weights`` design: one record per tag drives everything else).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from ..data.keypoints import KEYPOINT_SETS, KEYPOINTS, KeypointSet
from ..data.labels import CLASS_FLIP_PAIRS, LABELS, PALETTES
from ..specs import HEADS, HeadSpec, parse_arch
from .counts import COUNTS

__all__ = [
    'BACKBONE_TASK',
    'CITATION',
    'HUB_ORG',
    'PAPER',
    'PAPER_ID',
    'Metric',
    'Source',
    'WeightsRecord',
]

HUB_ORG = 'hrnet-zoo'  # the Hugging Face organisation every hf_hub_id points into
# The task of ImageNet-pretrained backbones: their records carry no trained head.
BACKBONE_TASK = 'image-classification'

PAPER = 'Deep High-Resolution Representation Learning for Visual Recognition'
PAPER_ID = 'arXiv:1908.07919'
CITATION = """@article{WangSCJDZLMTWLX19,
  title={Deep High-Resolution Representation Learning for Visual Recognition},
  author={Jingdong Wang and Ke Sun and Tianheng Cheng and Borui Jiang and Chaorui Deng and Yang Zhao
          and Dong Liu and Yadong Mu and Mingkui Tan and Xinggang Wang and Wenyu Liu and Bin Xiao},
  journal={TPAMI},
  year={2019}
}"""


@dataclass(frozen=True)
class Metric:
    """A published number, as the official README reports it."""

    type: str  # model-index metric type: 'mIoU', 'AP', 'accuracy', 'PCKh'
    name: str  # human readable
    value: float
    split: str = 'validation'


@dataclass(frozen=True)
class Source:
    """Where the official checkpoint comes from and which layout its state_dict has."""

    file_name: str
    url: str
    codebase: str  # the official repository that released it
    # how the release is packaged: 'official', 'official_seg', 'inplace_abn', 'timm' or 'mmdet'; informative,
    # since convert.py detects the layout from the keys themselves
    layout: str
    sha256: str | None = None  # of the official file, once it has been downloaded and checked
    trained_by: str = 'Microsoft'  # who trained and released the weights, for the card's credit line
    # the file's direct download (None: only a page, a Google Drive or OneDrive link); `pretrained=True` downloads
    # it, checks `hash_prefix` (the first hex digits of its sha256, from OpenMMLab's file names) and converts it
    direct_url: str | None = None
    hash_prefix: str | None = None
    config: str | None = None  # the training config in `codebase`


@dataclass(frozen=True)
class WeightsRecord:
    """One pretrained tag. ``upsample_mode`` / ``align_corners`` are the fuse resize it was trained with."""

    arch: str
    tag: str
    task: str  # 'image-classification' (backbone pretraining), 'image-segmentation', 'keypoint-detection', ...
    dataset: str  # Hub dataset id
    dataset_name: str
    num_classes: int
    input_size: tuple[int, int, int]
    source: Source
    metrics: tuple[Metric, ...]
    upsample_mode: str = 'nearest'
    align_corners: bool | None = None
    label_names: tuple[str, ...] | None = None
    mean: tuple[float, ...] = IMAGENET_DEFAULT_MEAN
    std: tuple[float, ...] = IMAGENET_DEFAULT_STD
    crop_pct: float = 1.0
    interpolation: str = 'bilinear'
    license: str = 'mit'
    notes: tuple[str, ...] = field(default=())
    # The Hub repo the weights are fetched from; None: this project's own `HUB_ORG/<arch>.<tag>`, filled by
    # `hrnet-zoo release`. Weights another organisation already hosts (timm's ImageNet backbones) name its repo.
    hub_repo: str | None = None
    # True once `hrnet-zoo release` has published it to HUB_ORG: the Hub copy is read first, the direct download is
    # the fallback (set by the manifest's PUBLISHED list)
    published: bool = False
    # what the dataset facts of hrnet_zoo.data call its labels (a key of LABELS or KEYPOINTS); None: see label_names
    label_set: str | None = None
    keypoint_set: str | None = None
    # how its heatmaps were decoded in training and test: 'standard' (argmax + quarter-pixel shift), 'dark' or
    # 'udp' (mmpose's UDPHeatmap), and whether the flip test shifts the flipped heatmap by one pixel
    decoding: str = 'standard'
    shift_heatmap: bool = True
    # the decoder of its output, where it is not its head's (a face model is HRNetV2 with heatmaps); '' for the head's
    decoder_override: str = ''
    # constructor arguments its checkpoint needs besides the fuse resize (mmdetection's FCOS: fpn_stride=2)
    model_kwargs: tuple[tuple[str, Any], ...] = ()
    # the channel order its checkpoint's first conv was trained on; 'bgr' files are stored with conv1's input
    # channels reversed at conversion, so every model here takes RGB
    input_order: str = 'rgb'

    def __post_init__(self) -> None:
        if self.label_names is None and (self.label_set or self.keypoint_set):
            names = LABELS[self.label_set].names if self.label_set else KEYPOINTS[self.keypoint_set].names
            object.__setattr__(self, 'label_names', names)

    @property
    def name(self) -> str:
        return f'{self.arch}.{self.tag}'

    @property
    def hf_hub_id(self) -> str:
        return self.hub_repo or f'{HUB_ORG}/{self.name}'

    @property
    def released_here(self) -> bool:
        """Whether this project publishes the weights (``hrnet-zoo release``), or reads another organisation's repo."""
        return self.hf_hub_id.startswith(f'{HUB_ORG}/')

    @property
    def backbone_only(self) -> bool:
        """ImageNet pretraining: the backbone is trained, the task head is not."""
        return self.task == BACKBONE_TASK

    @property
    def head(self) -> str:
        return parse_arch(self.arch)[0]

    @property
    def head_spec(self) -> HeadSpec:
        return HEADS[self.head]

    @property
    def width(self) -> str:
        return parse_arch(self.arch)[1]

    @property
    def decoder(self) -> str:
        """How the model's output becomes an answer (a key of :data:`~hrnet_zoo.specs.DECODERS`)."""
        return self.decoder_override or self.head_spec.decoder

    @property
    def direct(self) -> bool:
        """Whether ``pretrained=True`` can download the original file itself (and convert it on load)."""
        return self.source.direct_url is not None

    @property
    def keypoints(self) -> KeypointSet | None:
        """Joint names, flip pairs and skeleton of a keypoint tag (None where the labels are not a known joint set)."""
        if self.keypoint_set:
            return KEYPOINTS[self.keypoint_set]
        return KEYPOINT_SETS.get(self.label_names)

    @property
    def class_flip_pairs(self) -> tuple[tuple[int, int], ...]:
        """Left-right class pairs a flip test swaps (LIP's body parts; none for most datasets)."""
        if self.label_set:
            return LABELS[self.label_set].class_flip_pairs
        return CLASS_FLIP_PAIRS.get(self.label_names, ())

    @property
    def palette(self) -> tuple[tuple[int, int, int], ...] | None:
        """The dataset's class colours, where it defines them (None: draw with a generated palette)."""
        if self.label_set:
            return LABELS[self.label_set].palette
        return PALETTES.get(self.label_names)

    @property
    def params(self) -> int:
        """Parameters of the model this tag builds (with its num_classes)."""
        return COUNTS[self.name][0]

    @property
    def gflops(self) -> float:
        """Official-convention GFLOPs (multiply-adds / 2^30) at ``input_size``."""
        return COUNTS[self.name][1]

    def pretrained_cfg(self) -> dict:
        """The timm pretrained cfg for this tag."""
        return dict(
            hf_hub_id=self.hf_hub_id,
            num_classes=self.num_classes,
            label_names=self.label_names,
            input_size=self.input_size,
            fixed_input_size=False,
            interpolation=self.interpolation,
            crop_pct=self.crop_pct,
            mean=self.mean,
            std=self.std,
            first_conv='conv1',
            classifier=self.head_spec.classifier,
            license=self.license,
            origin_url=self.source.url,
            paper_name=PAPER,
            paper_ids=PAPER_ID,
            notes=self.notes or None,
        )
