"""The nine HRNet widths as data.

Stage layouts follow the official HRNet-Image-Classification configs (``cls_hrnet_*.yaml``), which the
segmentation, pose and detection releases share. Only the channel lists and the small models' module
and block counts differ between widths, so every width is a :class:`HRNetSpec` value, not a code path.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ['StageSpec', 'HRNetSpec', 'WIDTHS', 'get_spec']


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
    stem_width: int = 64

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
    )


WIDTHS: dict[str, HRNetSpec] = {
    # small_v1: one 32-plane bottleneck (128 channels out), 16-wide branches, one module per stage
    'w18_small_v1': HRNetSpec(
        stage1=StageSpec(1, (1,), (32,), 'bottleneck'),
        stage2=StageSpec(1, (2, 2), (16, 32)),
        stage3=StageSpec(1, (2, 2, 2), (16, 32, 64)),
        stage4=StageSpec(1, (2, 2, 2, 2), (16, 32, 64, 128)),
    ),
    # small_v2 (mmseg's "hr18s"): two 64-plane bottlenecks, 2 blocks per branch, 1/3/2 modules
    'w18_small_v2': HRNetSpec(
        stage1=StageSpec(1, (2,), (64,), 'bottleneck'),
        stage2=StageSpec(1, (2, 2), (18, 36)),
        stage3=StageSpec(3, (2, 2, 2), (18, 36, 72)),
        stage4=StageSpec(2, (2, 2, 2, 2), (18, 36, 72, 144)),
    ),
    **{f'w{w}': _standard(w) for w in (18, 30, 32, 40, 44, 48, 64)},
}


def get_spec(width: str) -> HRNetSpec:
    """Look up a width by name (``'w48'``, ``'w18_small_v2'``); unknown names list the valid ones."""
    try:
        return WIDTHS[width]
    except KeyError:
        raise ValueError(f'Unknown HRNet width {width!r}; expected one of: {", ".join(WIDTHS)}') from None
