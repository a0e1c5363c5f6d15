"""HRNetV1 / HRNetV2 / HRNetV2p / HRNetV2-OCR for timm: the model classes and the builder.

Paper: Deep High-Resolution Representation Learning for Visual Recognition (Wang et al., TPAMI 2020),
https://arxiv.org/abs/1908.07919. Official code: https://github.com/HRNet (MIT).

The backbone is one class (:class:`~hrnet_zoo.backbone.HRNetBackbone`); the models differ only in their head,
whose facts are a record of :data:`~hrnet_zoo.specs.HEADS`. ``features_only=True`` goes through timm's
``FeatureGetterNet`` and returns the stem (64 channels, stride 2) and the four final branches (C, 2C, 4C, 8C at
strides 4, 8, 16, 32). The registered names and timm's default cfgs are in :mod:`hrnet_zoo.registry`.

Every head takes the fine-tuning controls of mmseg / mmpose / torchvision: ``frozen_stages``, ``norm_eval`` and
``norm_layer`` (see :class:`~hrnet_zoo.backbone.HRNetBackbone`).
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

import torch
from timm.models import build_model_with_cfg, get_pretrained_cfg
from timm.models._features import feature_take_indices  # no public name in timm 1.0.31
from torch import Tensor, nn

from .backbone import HRNetBackbone, NormLayer
from .heads import PyramidNeck, SegmentationHead, classifier, concat_branches
from .ocr import ObjectContextDistribute, ObjectRegionGather, conv_norm_relu
from .specs import HEADS, arch_name, get_spec, parse_arch
from .weights.manifest import MANIFEST
from .weights.pretrained import SAFETENSORS_ONLY, checked_pretrained_filter, named_fetch_errors

__all__ = ['HRNetV1', 'HRNetV2', 'HRNetV2p', 'HRNetV2OCR', 'MODEL_CLASSES', 'create_hrnet']


_AFTER_STEM = ('conv2', 'bn2', 'layer1', 'transition1', 'stage2', 'transition2', 'stage3', 'transition3', 'stage4')


class _HRNet(HRNetBackbone):
    """What every head shares: timm's model interface around the backbone.

    Each subclass names its :class:`~hrnet_zoo.specs.HeadSpec` in ``head``; an instance knows its ``arch``
    (``'hrnetv2_w48'``), ``head`` (``'v2'``) and ``width`` (``'w48'``).
    """

    head: ClassVar[str]

    def __init__(
        self,
        width: str = 'w18',
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
            in_chans,
            multi_scale_output,
            upsample_mode,
            align_corners,
            device,
            dtype,
            norm_layer,
            frozen_stages,
            norm_eval,
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
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        stem = self.forward_stem(x)
        intermediates = [stem] if 0 in take_indices else []
        if max_index == 0 and (intermediates_only or stop_early):
            return intermediates if intermediates_only else (stem, intermediates)
        branches = self.forward_branches(stem)
        intermediates += [branches[i - 1] for i in take_indices if i > 0]
        if intermediates_only:
            return intermediates
        return self.representation(branches), intermediates

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


class HRNetV1(_HRNet):
    """HRNetV1 (pose): the last exchange unit fuses into the high-resolution branch only; a 1x1 conv on it
    gives ``num_classes`` keypoint heatmaps at 1/4 resolution (``final_layer``).

    Args:
        width: one of :data:`~hrnet_zoo.specs.WIDTHS` (``'w18_small_v1'`` ... ``'w64'``).
        num_classes: keypoints (17 for COCO); 0 returns the high-resolution branch itself.
        **kwargs: ``in_chans``, ``upsample_mode``, ``align_corners``, ``output_stride``, ``device``, ``dtype``,
            as documented in :class:`HRNetV2`.
    """

    head = 'v1'

    def __init__(self, width: str = 'w32', num_classes: int = 17, **kwargs: Any) -> None:
        super().__init__(width, **kwargs)
        dd = dict(device=kwargs.get('device'), dtype=kwargs.get('dtype'))
        self.num_classes = num_classes
        self.num_features = self.head_hidden_size = self.branch_channels[0]
        self.final_layer = classifier(self.num_features, num_classes, **dd)
        self._init_weights()

    def representation(self, branches: list[Tensor]) -> Tensor:
        return branches[0]

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return x if pre_logits else self.final_layer(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.final_layer

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.final_layer = classifier(self.num_features, num_classes, device=self.conv1.weight.device)

    def remove_head(self) -> None:
        self.reset_classifier(0)


class HRNetV2(_HRNet):
    """HRNetV2 (segmentation): the 15C concatenation, then 1x1 conv + BN + ReLU + 1x1 conv to
    ``num_classes`` logits at 1/4 resolution (``last_layer``).

    Args:
        width: one of :data:`~hrnet_zoo.specs.WIDTHS` (``'w18_small_v1'`` ... ``'w64'``).
        num_classes: classes (19 for Cityscapes); 0 returns the 15C hidden layer (``pre_logits``).
        in_chans: input image channels (pretrained weights adapt their stem to it).
        upsample_mode: the resize inside the exchange units' fuse layers: ``'nearest'`` (the ImageNet, pose and
            detection weights, and timm) or ``'bilinear'`` (the segmentation weights). A pretrained tag sets the
            one its checkpoint was trained with.
        align_corners: for ``'bilinear'`` (None means False); also used by every bilinear resize in the head.
        output_stride: must be 32: the branches stay at strides 4 to 32 (refused otherwise, with why).
        device, dtype: factory kwargs for the parameters (``'meta'`` works).
        norm_layer: the class of every norm, backbone and head (``nn.SyncBatchNorm``, torchvision's
            ``FrozenBatchNorm2d``, timm's); default BatchNorm2d.
        frozen_stages: -1 (default) trains everything; 0 freezes the stem; i >= 1 also layer1, transition1 and
            stages 2 ... i with their transitions (mmseg's semantics).
        norm_eval: keep every BatchNorm in eval mode during training.
    """

    head = 'v2'

    def __init__(self, width: str = 'w48', num_classes: int = 19, **kwargs: Any) -> None:
        super().__init__(width, **kwargs)
        dd = dict(device=kwargs.get('device'), dtype=kwargs.get('dtype'))
        self.num_classes = num_classes
        self.num_features = self.head_hidden_size = sum(self.branch_channels)
        self.last_layer = SegmentationHead(self.num_features, num_classes, self.norm_layer, **dd)
        self._init_weights()

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return self.last_layer(x, pre_logits)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.last_layer[3]

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.last_layer[3] = classifier(self.num_features, num_classes, device=self.conv1.weight.device)

    def remove_head(self) -> None:
        self.num_classes = 0
        self.last_layer = nn.Sequential()


class HRNetV2p(_HRNet):
    """HRNetV2p (detection): the 15C concatenation reduced to 256 channels and pooled into five levels at
    strides 4, 8, 16, 32, 64, a 3x3 conv each (``neck``). ``forward`` returns the five maps.

    Args:
        width: one of :data:`~hrnet_zoo.specs.WIDTHS` (``'w18_small_v1'`` ... ``'w64'``).
        num_classes: must be 0: the model returns a feature pyramid, not logits.
        **kwargs: ``in_chans``, ``upsample_mode``, ``align_corners``, ``output_stride``, ``device``, ``dtype``,
            as documented in :class:`HRNetV2`.
        out_channels: channels of every pyramid level.
    """

    head = 'v2p'

    def __init__(self, width: str = 'w32', num_classes: int = 0, out_channels: int = 256, **kwargs: Any) -> None:
        if num_classes != 0:
            raise ValueError(
                f'HRNetV2p has no classifier (it returns a feature pyramid); got num_classes={num_classes}'
            )
        super().__init__(width, **kwargs)
        dd = dict(device=kwargs.get('device'), dtype=kwargs.get('dtype'))
        self.num_classes = 0
        self.num_features = self.head_hidden_size = sum(self.branch_channels)
        self.out_channels = out_channels
        self.neck = PyramidNeck(self.num_features, out_channels, **dd)
        self._init_weights()

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> list[Tensor]:
        return [x] if pre_logits else self.neck(x)

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return nn.Identity()

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if num_classes != 0:
            raise ValueError(f'HRNetV2p has no classifier; got num_classes={num_classes}')

    def remove_head(self) -> None:
        self.neck = nn.Identity()


class HRNetV2OCR(_HRNet):
    """HRNetV2-OCR (segmentation): the 15C concatenation gives soft object regions (``aux_head``, the HRNetV2
    head) and, through ``conv3x3_ocr``, pixel features; each pixel is enriched with the object-region features
    it attends to (``ocr_gather_head``, ``ocr_distri_head``), then ``cls_head`` gives the logits at 1/4 resolution.

    ``forward`` returns the main logits. For the official training loss (0.4 x aux + 1.0 x main), set
    ``aux_output=True`` (constructor kwarg or attribute): in training mode ``forward`` then returns
    ``(logits, aux_logits)``; in eval it still returns the logits alone, so evaluation and export are unchanged.
    :meth:`forward_with_aux` returns both in either mode.

    Args:
        width: one of :data:`~hrnet_zoo.specs.WIDTHS` (``'w18_small_v1'`` ... ``'w64'``).
        num_classes: classes (19 for Cityscapes), at least 1: the object regions are the classes.
        mid_channels: channels of the pixel and region features (official ``MID_CHANNELS``, 512).
        key_channels: channels of the attention's queries and keys (official ``KEY_CHANNELS``, 256).
        dropout: of ``ocr_distri_head`` (official 0.05).
        aux_output: see above.
        **kwargs: as documented in :class:`HRNetV2`.
    """

    head = 'v2_ocr'

    def __init__(
        self,
        width: str = 'w48',
        num_classes: int = 19,
        mid_channels: int = 512,
        key_channels: int = 256,
        dropout: float = 0.05,
        aux_output: bool = False,
        **kwargs: Any,
    ) -> None:
        _check_regions(num_classes)
        super().__init__(width, **kwargs)
        dd = dict(device=kwargs.get('device'), dtype=kwargs.get('dtype'))
        norm = self.norm_layer
        self.num_classes = num_classes
        self.num_features = sum(self.branch_channels)
        self.head_hidden_size = mid_channels
        self.aux_output = aux_output
        self.aux_head = SegmentationHead(self.num_features, num_classes, norm, **dd)
        self.conv3x3_ocr = conv_norm_relu(self.num_features, mid_channels, 3, norm, **dd)
        self.ocr_gather_head = ObjectRegionGather()
        self.ocr_distri_head = ObjectContextDistribute(mid_channels, key_channels, mid_channels, dropout, norm, **dd)
        self.cls_head = classifier(mid_channels, num_classes, **dd)
        self._init_weights()

    def _head(self, x: Tensor, pre_logits: bool = False) -> tuple[Tensor, Tensor]:
        aux = self.aux_head(x)
        feats = self.conv3x3_ocr(x)
        feats = self.ocr_distri_head(feats, self.ocr_gather_head(feats, aux))
        return (feats if pre_logits else self.cls_head(feats)), aux

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return self._head(x, pre_logits)[0]

    def forward_with_aux(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits, aux_logits)``, both at 1/4 resolution, in train or eval mode."""
        return self._head(self.forward_features(x))

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        logits, aux = self._head(self.forward_features(x))
        if self.aux_output and self.training:
            return logits, aux
        return logits

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.cls_head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new class count replaces both convs to the classes: ``cls_head`` and the regions' ``aux_head.3``."""
        _check_regions(num_classes)
        self.num_classes = num_classes
        device = self.conv1.weight.device
        self.cls_head = classifier(self.head_hidden_size, num_classes, device=device)
        self.aux_head[3] = classifier(self.num_features, num_classes, device=device)

    def remove_head(self) -> None:
        self.num_classes = 0
        for name in HEADS[self.head].modules:
            setattr(self, name, nn.Identity())


def _check_regions(num_classes: int) -> None:
    if num_classes < 1:
        raise ValueError(
            f'HRNetV2-OCR needs num_classes >= 1 (its object regions are the classes), got {num_classes}; for '
            'features use forward_features, features_only=True or hrnetv2_<width>'
        )


MODEL_CLASSES: dict[str, type[_HRNet]] = {cls.head: cls for cls in (HRNetV1, HRNetV2, HRNetV2p, HRNetV2OCR)}


def _resolve_tag(arch: str, pretrained_cfg: Any) -> str | None:
    if isinstance(pretrained_cfg, str):
        return pretrained_cfg
    if isinstance(pretrained_cfg, dict):
        return pretrained_cfg.get('tag')
    if pretrained_cfg is not None:
        return getattr(pretrained_cfg, 'tag', None)
    default = get_pretrained_cfg(arch)
    return default.tag if default is not None else None


def create_hrnet(arch: str, pretrained: bool = False, **kwargs: Any) -> _HRNet:
    """Build a registered HRNet (``'hrnetv2_w48'``) through timm's ``build_model_with_cfg``.

    Args:
        arch: ``hrnet<head>_<width>``; unknown names list the valid ones.
        pretrained: load the weights of the tag (``pretrained_cfg``, or the default tag of the manifest), through
            timm's loader, safetensors only, checked against the model.
        **kwargs: the model class's (``num_classes``, ``in_chans``, ``upsample_mode``, ``align_corners``,
            ``output_stride``, ``device``, ``dtype``, ``norm_layer``, ``frozen_stages``, ``norm_eval`` as documented
            in :class:`HRNetV2`; ``out_channels`` for :class:`HRNetV2p`; ``mid_channels``, ``key_channels``,
            ``aux_output`` for :class:`HRNetV2OCR`) and timm's (``features_only``,
            ``out_indices``, ``pretrained_cfg``, ``pretrained_cfg_overlay``, ``cache_dir``, ...).

    A pretrained tag selects the fuse upsampling its checkpoint was trained with; explicit ``upsample_mode`` /
    ``align_corners`` kwargs override it.
    """
    head, width = parse_arch(arch)
    record = MANIFEST.get(f'{arch}.{_resolve_tag(arch, kwargs.get("pretrained_cfg"))}')
    if record is not None and 'upsample_mode' not in kwargs:
        kwargs['upsample_mode'] = record.upsample_mode
        kwargs.setdefault('align_corners', record.align_corners)
    # safetensors only: timm would otherwise fall back to pytorch_model.bin (a pickle) when the Hub fails to answer
    kwargs['pretrained_cfg_overlay'] = {**SAFETENSORS_ONLY, **(kwargs.get('pretrained_cfg_overlay') or {})}
    with named_fetch_errors(arch, pretrained, kwargs):  # Hub errors name the repo, the file and the revision
        return build_model_with_cfg(
            MODEL_CLASSES[head],
            arch,
            pretrained,
            width=width,
            feature_cfg=dict(feature_cls='getter'),
            pretrained_filter_fn=partial(checked_pretrained_filter, cache_dir=kwargs.get('cache_dir')),
            **kwargs,
        )
