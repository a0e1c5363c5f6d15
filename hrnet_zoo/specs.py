"""The nine HRNet widths, the backbone families and the paper's heads, as data: the bottom layer every other
module reads.

Stage layouts follow the official HRNet-Image-Classification configs (``cls_hrnet_*.yaml``), which the
segmentation, pose and detection releases share. Only the channel lists and the small models' module
and block counts differ between widths, so every width is a :class:`HRNetSpec` value, not a code path. A width
names its backbone family (:data:`FAMILIES`) and timm's name for the same backbone. Lite-HRNet's two widths are
:class:`LiteHRNetSpec` values in :data:`LITE_WIDTHS`.

What a head is (its state_dict prefix, classifier, default class count, task, display name, card text) is one
:class:`HeadSpec` in :data:`HEADS`; the models, the weights manifest, the converter, the file checks, the cards
and the publisher read it from there; the head's modules and model class live in its own file,
``hrnet_zoo/models/heads/<name>.py``. An architecture name is ``hrnet<head>_<width>`` (``hrnetv2p_w32``,
``hrnetv2_ocr_w48``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

__all__ = [
    'StageSpec',
    'HRNetSpec',
    'LiteStageSpec',
    'LiteHRNetSpec',
    'FamilySpec',
    'HeadSpec',
    'DECODERS',
    'FAMILIES',
    'WIDTHS',
    'LITE_WIDTHS',
    'HEADS',
    'ARCHS',
    'get_spec',
    'get_lite_spec',
    'get_head',
    'arch_name',
    'parse_arch',
]


@dataclass(frozen=True)
class StageSpec:
    """One stage: ``num_modules`` exchange units, each with ``num_blocks[b]`` residual blocks on branch ``b``."""

    num_modules: int
    num_blocks: tuple[int, ...]
    num_channels: tuple[int, ...]
    block: str = 'basic'  # 'basic' or 'bottleneck'

    @property
    def num_branches(self) -> int:
        return len(self.num_channels)


@dataclass(frozen=True)
class HRNetSpec:
    """A whole HRNet backbone: stage 1 (bottlenecks on one branch) and the three multi-branch stages."""

    stage1: StageSpec
    stage2: StageSpec
    stage3: StageSpec
    stage4: StageSpec
    timm_name: str  # timm's own architecture with this backbone (its ImageNet weights are read from there)
    stem_width: int = 64
    family: str = 'hrnet'  # a key of FAMILIES

    @property
    def stages(self) -> tuple[StageSpec, StageSpec, StageSpec]:
        return self.stage2, self.stage3, self.stage4

    @property
    def branch_channels(self) -> tuple[int, ...]:
        """Channels of the four final branches: C, 2C, 4C, 8C."""
        return self.stage4.num_channels


def _standard(width: int) -> HRNetSpec:
    """The w18 ... w64 layout: 1/1/4/3 modules, 4 blocks per branch, 4 bottlenecks of 64 planes in stage 1."""
    c = (width, 2 * width, 4 * width, 8 * width)
    return HRNetSpec(
        stage1=StageSpec(1, (4,), (64,), 'bottleneck'),
        stage2=StageSpec(1, (4, 4), c[:2]),
        stage3=StageSpec(4, (4, 4, 4), c[:3]),
        stage4=StageSpec(3, (4, 4, 4, 4), c),
        timm_name=f'hrnet_w{width}',
    )


WIDTHS: dict[str, HRNetSpec] = {
    # small_v1: one 32-plane bottleneck (128 channels out), 16-wide branches, one module per stage
    'w18_small_v1': HRNetSpec(
        stage1=StageSpec(1, (1,), (32,), 'bottleneck'),
        stage2=StageSpec(1, (2, 2), (16, 32)),
        stage3=StageSpec(1, (2, 2, 2), (16, 32, 64)),
        stage4=StageSpec(1, (2, 2, 2, 2), (16, 32, 64, 128)),
        timm_name='hrnet_w18_small',  # timm spells this one without the _v1
    ),
    # small_v2 (mmseg's "hr18s"): two 64-plane bottlenecks, 2 blocks per branch, 1/3/2 modules
    'w18_small_v2': HRNetSpec(
        stage1=StageSpec(1, (2,), (64,), 'bottleneck'),
        stage2=StageSpec(1, (2, 2), (18, 36)),
        stage3=StageSpec(3, (2, 2, 2), (18, 36, 72)),
        stage4=StageSpec(2, (2, 2, 2, 2), (18, 36, 72, 144)),
        timm_name='hrnet_w18_small_v2',
    ),
    **{f'w{w}': _standard(w) for w in (18, 30, 32, 40, 44, 48, 64)},
}


@dataclass(frozen=True)
class LiteStageSpec:
    """One Lite-HRNet stage: ``num_modules`` units, each ``num_blocks`` conditional channel weighting blocks across
    all its branches (``num_channels[b]`` on branch ``b``), then a fuse; ``reduce_ratio`` squeezes the
    cross-resolution weighting."""

    num_modules: int
    num_channels: tuple[int, ...]
    num_blocks: int = 2
    reduce_ratio: int = 8

    @property
    def num_branches(self) -> int:
        return len(self.num_channels)


@dataclass(frozen=True)
class LiteHRNetSpec:
    """A Lite-HRNet backbone (Yu et al., CVPR 2021): a shuffle-style stem, then the stages, as the official
    ``litehrnet_<n>_coco_256x192.py`` configs (``stem``, ``stages_spec``; ``with_head=True``)."""

    stages: tuple[LiteStageSpec, ...]
    stem_channels: int = 32
    stem_out_channels: int = 32
    stem_expand_ratio: float = 1.0
    family: str = 'litehrnet'  # a key of FAMILIES

    @property
    def branch_channels(self) -> tuple[int, ...]:
        return self.stages[-1].num_channels


def _lite(num_modules: tuple[int, int, int]) -> LiteHRNetSpec:
    """Lite-HRNet-18 and -30 differ only in their module counts: branches 40, 80, 160, 320, two blocks each."""
    channels = (40, 80, 160, 320)
    return LiteHRNetSpec(tuple(LiteStageSpec(m, channels[: n + 2]) for n, m in enumerate(num_modules)))


LITE_WIDTHS: dict[str, LiteHRNetSpec] = {'18': _lite((2, 4, 2)), '30': _lite((3, 8, 3))}


def get_lite_spec(width: str) -> LiteHRNetSpec:
    """Look up a Lite-HRNet width by name (``'18'``, ``'30'``); unknown names list the valid ones."""
    try:
        return LITE_WIDTHS[width]
    except KeyError:
        raise ValueError(f'Unknown Lite-HRNet width {width!r}; expected one of: {", ".join(LITE_WIDTHS)}') from None


@dataclass(frozen=True)
class FamilySpec:
    """A backbone family: its display name and its widths. A second family (Lite-HRNet) adds a row here and its
    own backbone file, not branches in this one's."""

    name: str
    display_name: str
    widths: tuple[str, ...]


FAMILIES: dict[str, FamilySpec] = {
    'hrnet': FamilySpec('hrnet', 'HRNet', tuple(w for w, spec in WIDTHS.items() if spec.family == 'hrnet')),
    'litehrnet': FamilySpec('litehrnet', 'Lite-HRNet', tuple(LITE_WIDTHS)),
}


def get_spec(width: str) -> HRNetSpec:
    """Look up a width by name (``'w48'``, ``'w18_small_v2'``); unknown names list the valid ones."""
    try:
        return WIDTHS[width]
    except KeyError:
        raise ValueError(f'Unknown HRNet width {width!r}; expected one of: {", ".join(WIDTHS)}') from None


@dataclass(frozen=True)
class HeadSpec:
    """One representation head: everything the package needs to know about it besides its module."""

    name: str  # as in the architecture names: 'v1' -> hrnetv1_<width>
    display_name: str  # 'HRNetV1'
    task: str  # the task its released weights solve by default (Hub task names); a record may say otherwise
    # how its output becomes an answer (a key of DECODERS); the tasks layer dispatches on it, never on `task`
    decoder: str
    # the head's attributes, hence its state_dict prefixes: official key names
    modules: tuple[str, ...]
    part: str  # how errors name it: 'pose head'
    default_num_classes: int  # 0: no classifier
    # timm's pretrained_cfg['classifier']: the module a different num_classes re-initialises (None: no classifier)
    classifier: str | tuple[str, ...] | None
    # the weight whose output channels are the class count, for checkpoints of unknown num_classes
    num_classes_key: str | None
    # False: the last exchange unit fuses into branch 0 only (the official pose model), so its other fuse rows
    # are absent from checkpoints and from the model
    multi_scale_output: bool
    summary: str  # one sentence for the model cards
    usage: str  # the usage line the model cards show: what calling the model returns
    # (old prefix, new prefix) renames the official loader applies to the files this head loads
    official_renames: tuple[tuple[str, str], ...] = ()

    @property
    def prefixes(self) -> tuple[str, ...]:
        """The state_dict prefixes of the head's tensors (``str.startswith`` takes the tuple)."""
        return tuple(f'{module}.' for module in self.modules)

    @property
    def described(self) -> str:
        """``'pose head (final_layer)'``, for messages."""
        return f'{self.part} ({", ".join(self.modules)})'


# What a head's output is, and so how the tasks layer reads it: top-down keypoint heatmaps, per-pixel class logits,
# a feature pyramid that a detector reads (nothing to decode here), or bottom-up heatmaps and tags (HigherHRNet, a
# model that names its decoder itself: see tasks.inputs.model_decoder).
DECODERS = ('topdown_heatmaps', 'segmentation_logits', 'feature_pyramid', 'bottomup_heatmaps_tags')

HEADS: dict[str, HeadSpec] = {
    'v1': HeadSpec(
        name='v1',
        display_name='HRNetV1',
        task='keypoint-detection',
        decoder='topdown_heatmaps',
        modules=('final_layer',),
        part='pose head',
        default_num_classes=17,
        classifier='final_layer',
        num_classes_key='final_layer.weight',
        multi_scale_output=False,
        summary='HRNetV1: the high-resolution branch alone, a 1x1 conv to per-keypoint heatmaps at 1/4 resolution',
        usage='heatmaps = model(x)  # (1, num_keypoints, H/4, W/4)',
    ),
    'v2': HeadSpec(
        name='v2',
        display_name='HRNetV2',
        task='image-segmentation',
        decoder='segmentation_logits',
        modules=('last_layer',),
        part='segmentation head',
        default_num_classes=19,
        classifier='last_layer.3',
        num_classes_key='last_layer.3.weight',
        multi_scale_output=True,
        summary='HRNetV2: all four branches upsampled to 1/4 resolution and concatenated, then a 1x1 conv + BN + '
        'ReLU and a 1x1 classifier giving per-pixel logits at 1/4 resolution',
        usage='logits = model(x)  # (1, num_classes, H/4, W/4); upsample to the label size',
    ),
    'v2p': HeadSpec(
        name='v2p',
        display_name='HRNetV2p',
        task='object-detection',
        decoder='feature_pyramid',
        modules=('neck',),
        part='HRFPN neck',
        default_num_classes=0,
        classifier=None,
        num_classes_key=None,
        multi_scale_output=True,
        summary='HRNetV2p: the HRNetV2 concatenation reduced to 256 channels and pooled into a 5-level pyramid '
        '(strides 4 to 64), a 3x3 conv per level, for detectors such as Faster R-CNN',
        usage='levels = model(x)  # 5 maps of 256 channels at strides 4, 8, 16, 32, 64',
    ),
    'v2_ocr': HeadSpec(
        name='v2_ocr',
        display_name='HRNetV2-OCR',
        task='image-segmentation',
        decoder='segmentation_logits',
        modules=('aux_head', 'conv3x3_ocr', 'ocr_distri_head', 'cls_head'),  # ocr_gather_head has no tensors
        part='OCR head',
        default_num_classes=19,
        # both 1x1 convs to the classes: a new num_classes re-initialises the two
        classifier=('cls_head', 'aux_head.3'),
        num_classes_key='cls_head.weight',
        multi_scale_output=True,
        summary='HRNetV2-OCR: the HRNetV2 concatenation gives soft object regions (aux_head) and, through a 3x3 '
        'conv to 512 channels, pixel features; object-region representations gathered from them weight each '
        'pixel (object-contextual representations, Yuan et al., ECCV 2020), then a 1x1 classifier (cls_head) '
        'gives per-pixel logits at 1/4 resolution',
        usage='logits = model(x)  # (1, num_classes, H/4, W/4); model.aux_output = True: (logits, aux_logits)',
        # the official init_weights loads HRNetV2 segmentation files with their head as the auxiliary one
        official_renames=(('last_layer.', 'aux_head.'),),
    ),
}

# Every architecture: hrnetv1_*, hrnetv2_*, hrnetv2p_*, then hrnetv2_ocr_*, each over the family's widths.
ARCHS: tuple[str, ...] = tuple(f'hrnet{head}_{width}' for head in HEADS for width in FAMILIES['hrnet'].widths)


def get_head(name: str) -> HeadSpec:
    """Look up a head by name (``'v2p'``); unknown names list the valid ones."""
    try:
        return HEADS[name]
    except KeyError:
        raise ValueError(f'Unknown HRNet head {name!r}; expected one of: {", ".join(HEADS)}') from None


def arch_name(head: str, width: str) -> str:
    return f'hrnet{head}_{width}'


def did_you_mean(name: str, choices: list[str]) -> str:
    """``"did you mean 'x'? "`` for the closest choices, or nothing."""
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    return f'did you mean {" or ".join(repr(c) for c in close)}? ' if close else ''


def parse_arch(arch: str) -> tuple[str, str]:
    """``'hrnetv2p_w32'`` -> ``('v2p', 'w32')``, ``'hrnetv2_ocr_w48'`` -> ``('v2_ocr', 'w48')``; unknown names
    list the valid ones."""
    # head names may hold an underscore ('v2_ocr'), so match whole known names rather than split on the first one
    for head in HEADS:
        width = arch.removeprefix(f'hrnet{head}_') if arch.startswith(f'hrnet{head}_') else None
        if width in WIDTHS:
            return head, width
    hint = did_you_mean(arch, list(ARCHS))
    raise ValueError(f'Unknown HRNet architecture {arch!r}; {hint}expected one of: {", ".join(ARCHS)}')
