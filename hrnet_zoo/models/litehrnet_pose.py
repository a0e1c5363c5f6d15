"""Lite-HRNet top-down pose models, ``litehrnet_18`` and ``litehrnet_30``: the model class, timm's default cfgs and
the written-out ``@register_model`` entrypoints.

The model is mmpose's top-down Lite-HRNet (``TopdownHeatmapSimpleHead`` with no deconvolution layers): the
backbone's iterative head gives the high-resolution representation (40 channels at 1/4) and a 1x1 conv
(``final_layer``, mmpose's ``keypoint_head.final_layer``) gives the keypoint heatmaps. That head is HRNetV1's, so the
model names the ``'v1'`` row of :data:`~hrnet_zoo.specs.HEADS` as its head, and the tasks layer reads it as a top-down
heatmap model. ``features_only=True`` gives the stem (32 channels, stride 4) and the four final branches (40, 80,
160, 320 at strides 4-32), before the iterative head.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices  # no public name in timm 1.0.31
from torch import Tensor, nn

from ..specs import HEADS, get_lite_spec
from .layers import branch_intermediates, classifier
from .litehrnet import LiteHRNetBackbone, NormLayer

__all__ = ['LiteHRNetPose', 'create_litehrnet']


class LiteHRNetPose(LiteHRNetBackbone):
    """Lite-HRNet + a 1x1 conv to ``num_classes`` keypoint heatmaps at 1/4 resolution (``final_layer``).

    Args:
        width: ``'18'`` or ``'30'`` (:data:`~hrnet_zoo.specs.LITE_WIDTHS`).
        num_classes: keypoints (17 for COCO); 0 returns the 40-channel representation itself.
        in_chans, norm_layer, device, dtype: as :class:`~hrnet_zoo.models.litehrnet.LiteHRNetBackbone`.
    """

    head: ClassVar[str] = 'v1'  # HRNetV1's head (a 1x1 conv on the high-resolution branch): its decoder and keys

    def __init__(
        self,
        width: str = '18',
        num_classes: int = HEADS['v1'].default_num_classes,
        *,
        in_chans: int = 3,
        norm_layer: NormLayer | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(get_lite_spec(width), in_chans=in_chans, norm_layer=norm_layer, device=device, dtype=dtype)
        self.width = width
        self.arch = f'litehrnet_{width}'
        self.head_align_corners = False
        self.num_classes = num_classes
        self.num_features = self.head_hidden_size = self.head_layer.out_channels[0]
        self.final_layer = classifier(self.num_features, num_classes, device=device, dtype=dtype)
        self._init_weights()

    def _init_weights(self) -> None:
        # the official init: every conv N(0, 0.001) (zero bias), every norm weight 1
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """The iterative head's high-resolution output: what ``final_layer`` reads."""
        return self.head_layer(self.forward_branches(self.forward_stem(x)))[0]

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return x if pre_logits else self.final_layer(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = 'NCHW',
        intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """timm's feature API. Index 0 is the stem (stride 4), 1-4 the final branches (strides 4-32).

        Returns the intermediates, or ``(forward_features(x), intermediates)`` unless ``intermediates_only``.
        """
        if output_fmt != 'NCHW':
            raise ValueError(f'Lite-HRNet features are NCHW only, got output_fmt={output_fmt!r}')
        return branch_intermediates(
            self, x, indices, stop_early, intermediates_only, lambda branches: self.head_layer(branches)[0]
        )

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Remove what the selected features do not need (the iterative head and ``final_layer``, unread fuse rows),
        for DDP without ``find_unused_parameters``. Returns the absolute indices kept."""
        take_indices, _ = feature_take_indices(len(self.feature_info), indices)
        if prune_head:
            self.reset_classifier(0)
            self.head_layer = nn.Identity()  # forward_intermediates(intermediates_only=True) never reads it
            self.prune_unread({i - 1 for i in take_indices if i > 0})
        return take_indices

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        """Stem, then each stage's modules in depth order (transitions join the stage after them), then the head."""
        blocks = [(r'^(?:transition|stage)(\d+)', None)] if coarse else [
            (r'^stage(\d+)\.(\d+)', None),
            (r'^transition(\d+)', (-1,)),  # before the stage it feeds
        ]  # fmt: skip
        return dict(stem=r'^stem', blocks=[*blocks, (r'^head_layer', (99999,))])

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.final_layer

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.final_layer = classifier(self.num_features, num_classes, device=self.stem.conv1.conv.weight.device)


def create_litehrnet(arch: str, pretrained: bool = False, **kwargs: Any) -> LiteHRNetPose:
    """Build ``litehrnet_<width>`` through timm's ``build_model_with_cfg`` (``features_only`` and ``out_indices``
    through timm's ``FeatureGetterNet``)."""
    if pretrained:
        raise ValueError(f'{arch} has no pretrained weights in the manifest yet; build it with pretrained=False')
    width = arch.removeprefix('litehrnet_')
    return build_model_with_cfg(
        LiteHRNetPose, arch, False, width=width, feature_cfg=dict(feature_cls='getter'), **kwargs
    )


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return dict(
        num_classes=HEADS['v1'].default_num_classes,
        input_size=(3, 256, 192),
        fixed_input_size=False,
        interpolation='bilinear',
        crop_pct=1.0,
        mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD,
        first_conv='stem.conv1.conv',
        classifier=HEADS['v1'].classifier,
        license='apache-2.0',
        paper_name='Lite-HRNet: A Lightweight High-Resolution Network',
        paper_ids='arXiv:2104.06403',
        **kwargs,
    )


# untagged: no weights yet (mmpose's COCO / MPII / hand checkpoints become tagged cfgs when they are recorded)
default_cfgs = generate_default_cfgs({'litehrnet_18': _cfg(), 'litehrnet_30': _cfg()})


@register_model
def litehrnet_18(pretrained: bool = False, **kwargs: Any) -> LiteHRNetPose:
    """Lite-HRNet-18: top-down pose heatmaps."""
    return create_litehrnet('litehrnet_18', pretrained, **kwargs)


@register_model
def litehrnet_30(pretrained: bool = False, **kwargs: Any) -> LiteHRNetPose:
    """Lite-HRNet-30: top-down pose heatmaps."""
    return create_litehrnet('litehrnet_30', pretrained, **kwargs)
