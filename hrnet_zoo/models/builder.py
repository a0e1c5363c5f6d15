"""The public HRNet base class, the head-class registry and the builder timm's entrypoints call.

Paper: Deep High-Resolution Representation Learning for Visual Recognition (Wang et al., TPAMI 2020),
https://arxiv.org/abs/1908.07919. Official code: https://github.com/HRNet (MIT).

The backbone is one class (:class:`~hrnet_zoo.models.backbone.HRNetBackbone`); the models differ only in their
head, whose facts are a row of :data:`~hrnet_zoo.specs.HEADS` and whose modules and model class live in
``heads/<name>.py``, registered here by :func:`register_head`. :class:`HRNet` is what every model class shares
(timm's model interface: ``forward_intermediates``, ``group_matcher``, ...). ``features_only=True`` goes through
timm's ``FeatureGetterNet`` and returns the stem (64 channels, stride 2) and the four final branches (C, 2C, 4C, 8C
at strides 4, 8, 16, 32). The registered names and timm's default cfgs are in :mod:`hrnet_zoo.models.hrnet`.

Every head takes the fine-tuning controls of mmseg / mmpose / torchvision: ``frozen_stages``, ``norm_eval`` and
``norm_layer`` (see :class:`~hrnet_zoo.models.backbone.HRNetBackbone`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from timm.models import build_model_with_cfg, get_pretrained_cfg
from timm.models._features import feature_take_indices  # no public name in timm 1.0.31
from torch import Tensor, nn

from ..specs import HEADS, arch_name, get_spec, parse_arch
from ..weights.manifest import MANIFEST
from ..weights.pretrained import (
    SAFETENSORS_ONLY,
    WeightsFetchError,
    checked_pretrained_filter,
    direct_weights,
    is_original_checkpoint,
    named_fetch_errors,
    original_checkpoint_weights,
)
from .backbone import HRNetBackbone, NormLayer
from .layers import branch_intermediates, concat_branches

__all__ = ['HRNet', 'MODEL_CLASSES', 'create_hrnet', 'register_head']


_AFTER_STEM = ('conv2', 'bn2', 'layer1', 'transition1', 'stage2', 'transition2', 'stage3', 'transition3', 'stage4')


class HRNet(HRNetBackbone):
    """What every head shares: timm's model interface around the backbone. Subclass it for a new head.

    Each subclass names its :class:`~hrnet_zoo.specs.HeadSpec` in ``head`` and is registered with
    :func:`register_head`; an instance knows its ``arch`` (``'hrnetv2_w48'``), ``head`` (``'v2'``) and ``width``
    (``'w48'``). Every option but the width is keyword-only (documented in :class:`~hrnet_zoo.HRNetV2`).
    """

    head: ClassVar[str]

    def __init__(
        self,
        width: str = 'w18',
        *,
        in_chans: int = 3,
        upsample_mode: str = 'nearest',
        align_corners: bool | None = None,
        output_stride: int = 32,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        norm_layer: NormLayer | None = None,
        frozen_stages: int = -1,
        norm_eval: bool = False,
    ) -> None:
        if output_stride != 32:
            # dilating the low-resolution branches would break the exchange units' stride-2 fuse paths
            raise ValueError(
                f'HRNet keeps its branches at strides 4-32, so output_stride must be 32, got {output_stride} '
                '(DeepLabV3/V3+ need 8 or 16; use a decoder that takes multi-scale features: Unet, FPN, UPerNet)'
            )
        multi_scale_output = HEADS[self.head].multi_scale_output
        super().__init__(
            get_spec(width),
            in_chans=in_chans,
            multi_scale_output=multi_scale_output,
            upsample_mode=upsample_mode,
            align_corners=align_corners,
            device=device,
            dtype=dtype,
            norm_layer=norm_layer,
            frozen_stages=frozen_stages,
            norm_eval=norm_eval,
        )
        self.width = width
        self.arch = arch_name(self.head, width)
        # every bilinear resize in the heads follows the checkpoint's align_corners, as the official heads do
        self.head_align_corners = bool(align_corners)

    def representation(self, branches: list[Tensor]) -> Tensor:
        """HRNetV2's: all branches resized to 1/4 and concatenated (15C channels)."""
        return concat_branches(branches, self.head_align_corners)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.representation(self.forward_branches(self.forward_stem(x)))

    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = 'NCHW',
        intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """timm's feature API. Index 0 is the stem (stride 2), 1-4 the final branches (strides 4-32).

        Returns the intermediates, or ``(forward_features(x), intermediates)`` unless ``intermediates_only``.
        """
        if output_fmt != 'NCHW':
            raise ValueError(f'HRNet features are NCHW only, got output_fmt={output_fmt!r}')
        return branch_intermediates(self, x, indices, stop_early, intermediates_only, self.representation)

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Remove what the selected features do not need (the head, unread fuse rows), for DDP without
        ``find_unused_parameters``. Returns the absolute indices kept."""
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        if prune_head:
            self.remove_head()
            if max_index == 0:  # the stem alone: forward_intermediates stops after it
                for name in _AFTER_STEM:
                    setattr(self, name, nn.Identity())
            else:
                self.prune_unread({i - 1 for i in take_indices if i > 0})
        return take_indices

    def remove_head(self) -> None:
        raise NotImplementedError

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        """Stem, then stage 1 blocks, transitions and exchange units in depth order (for layer-wise LR decay)."""
        if coarse:
            blocks = [(r'^(?:layer|stage)(\d+)', None), (r'^transition(\d+)', (99999,))]
        else:
            blocks = [
                (r'^layer(1)\.(\d+)', None),
                (r'^stage(\d+)\.(\d+)', None),
                (r'^transition(\d+)', (99999,)),  # joins the group before it: the end of stage n
            ]
        return dict(stem=r'^conv[12]|^bn[12]', blocks=blocks)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        super().set_grad_checkpointing(enable)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


# Every head's model class, by head name; filled by @register_head in heads/<name>.py.
MODEL_CLASSES: dict[str, type[HRNet]] = {}

_ModelClass = TypeVar('_ModelClass', bound=type[HRNet])


def register_head(cls: _ModelClass) -> _ModelClass:
    """Class decorator: ``cls`` builds the architectures of its head (``cls.head``, a key of ``HEADS``)."""
    if cls.head not in HEADS:
        raise ValueError(f'{cls.__name__}.head is {cls.head!r}, which has no row in HEADS; add one to specs.py')
    if MODEL_CLASSES.get(cls.head, cls) is not cls:
        raise ValueError(f'head {cls.head!r} is registered twice: {MODEL_CLASSES[cls.head].__name__}, {cls.__name__}')
    MODEL_CLASSES[cls.head] = cls
    return cls


def _resolve_tag(arch: str, pretrained_cfg: Any) -> str | None:
    if isinstance(pretrained_cfg, str):
        return pretrained_cfg
    if isinstance(pretrained_cfg, dict):
        return pretrained_cfg.get('tag')
    if pretrained_cfg is not None:
        return getattr(pretrained_cfg, 'tag', None)
    default = get_pretrained_cfg(arch)
    return default.tag if default is not None else None


def create_hrnet(arch: str, pretrained: bool = False, **kwargs: Any) -> HRNet:
    """Build a registered HRNet (``'hrnetv2_w48'``) through timm's ``build_model_with_cfg``.

    Args:
        arch: ``hrnet<head>_<width>``; unknown names list the valid ones.
        pretrained: load the weights of the tag (``pretrained_cfg``, or the default tag of the manifest), through
            timm's loader, safetensors only, checked against the model.
        **kwargs: the model class's (``num_classes``, ``in_chans``, ``upsample_mode``, ``align_corners``,
            ``output_stride``, ``device``, ``dtype``, ``norm_layer``, ``frozen_stages``, ``norm_eval`` as documented
            in :class:`~hrnet_zoo.HRNetV2`; ``out_channels`` for :class:`~hrnet_zoo.HRNetV2p`; ``mid_channels``,
            ``key_channels``, ``aux_output`` for :class:`~hrnet_zoo.HRNetV2OCR`) and timm's (``features_only``,
            ``out_indices``, ``pretrained_cfg``, ``pretrained_cfg_overlay``, ``cache_dir``, ...).

    A pretrained tag selects the fuse upsampling its checkpoint was trained with; explicit ``upsample_mode`` /
    ``align_corners`` kwargs override it.
    """
    head, width = parse_arch(arch)
    record = MANIFEST.get(f'{arch}.{_resolve_tag(arch, kwargs.get("pretrained_cfg"))}')
    if record is not None and 'upsample_mode' not in kwargs:
        kwargs['upsample_mode'] = record.upsample_mode
        kwargs.setdefault('align_corners', record.align_corners)
    for key, value in record.model_kwargs if record is not None else ():
        kwargs.setdefault(key, value)
    user_overlay = dict(kwargs.get('pretrained_cfg_overlay') or {})
    # safetensors only: timm would otherwise fall back to pytorch_model.bin (a pickle) when the Hub fails to answer
    kwargs['pretrained_cfg_overlay'] = {**SAFETENSORS_ONLY, **user_overlay}
    if pretrained:
        _direct_source(arch, head, width, record, user_overlay, kwargs)

    def build() -> HRNet:
        with named_fetch_errors(arch, pretrained, kwargs, record):  # Hub errors name the repo, file and revision
            return build_model_with_cfg(
                MODEL_CLASSES[head],
                arch,
                pretrained,
                width=width,
                feature_cfg=dict(feature_cls='getter'),
                pretrained_filter_fn=partial(checked_pretrained_filter, cache_dir=kwargs.get('cache_dir')),
                **kwargs,
            )

    try:
        return build()
    except WeightsFetchError:
        if not (record is not None and record.direct and record.published and not _overridden(user_overlay)):
            raise
    # a published tag whose Hub copy could not be read: its direct download is the fallback
    kwargs['pretrained_cfg_overlay']['file'] = str(_direct_file(record, head, width, kwargs))
    return build()


def _overridden(overlay: dict[str, Any]) -> bool:
    """Whether the caller named the weights themselves (a file, a state_dict, a URL or a Hub repo)."""
    return any(overlay.get(key) for key in ('file', 'state_dict', 'url', 'hf_hub_id'))


def _expected_shapes(head: str, width: str, kwargs: dict[str, Any]):
    """The state_dict shapes of the model a checkpoint must fit, built on the meta device."""

    def shapes(num_classes: int | None) -> dict[str, torch.Size]:
        resize = {k: kwargs[k] for k in ('upsample_mode', 'align_corners') if k in kwargs}
        classes = {} if num_classes is None else {'num_classes': num_classes}
        model = MODEL_CLASSES[head](width, device='meta', **resize, **classes)
        return {k: v.shape for k, v in model.state_dict().items()}

    return shapes


def _direct_file(record: Any, head: str, width: str, kwargs: dict[str, Any]) -> Path:
    return direct_weights(record, _expected_shapes(head, width, kwargs), cache_dir=kwargs.get('cache_dir'))


def _direct_source(
    arch: str, head: str, width: str, record: Any, overlay: dict[str, Any], kwargs: dict[str, Any]
) -> None:
    """Point timm's loader at a safetensors file where the weights are not read from the Hub: an original checkpoint
    the caller passed as ``file=`` (converted in memory), or a direct-download tag that is not published (downloaded,
    converted and cached once)."""
    named = kwargs.get('pretrained_cfg')
    if isinstance(named, dict) and named.get('source') in ('local-dir', 'hf-hub'):
        return  # the caller named a folder or a Hub repo (timm's `local-dir:` / `hf-hub:` names)
    file = overlay.get('file')
    if file and is_original_checkpoint(file):
        name = record.name if record is not None else arch
        state_dict = original_checkpoint_weights(file, name, _expected_shapes(head, width, kwargs))
        kwargs['pretrained_cfg_overlay'].pop('file')
        kwargs['pretrained_cfg_overlay']['state_dict'] = state_dict  # the filter keeps the model's head if it has none
        return
    if record is not None and record.direct and not record.published and not _overridden(overlay):
        kwargs['pretrained_cfg_overlay']['file'] = str(_direct_file(record, head, width, kwargs))
