"""HigherHRNet (Cheng et al., CVPR 2020, https://arxiv.org/abs/1908.10357): bottom-up pose on the HRNetV1 backbone,
registered with timm as ``higherhrnet_w32`` (COCO input 512x512) and ``higherhrnet_w48`` (640x640).

The backbone is the project's HRNet of that width with the last exchange unit fusing into branch 0 only, as the
official ``pose_higher_hrnet.py`` builds it (``multi_scale_output=False``, the row of HRNetV1 in
:data:`~hrnet_zoo.specs.HEADS`, which is why ``head`` is ``'v1'``); the head is :mod:`.heads.higher`, with the official
state_dict keys (``final_layers.*``, ``deconv_layers.*``) beside the backbone's (``conv1``, ``layer1.*``,
``stage4.*``, ...). ``forward`` returns a tuple of two tensors, ``(quarter, half)``: ``[N, 2K, H/4, W/4]`` (K
heatmaps, then K associative-embedding tag maps) and ``[N, K, H/2, W/2]`` (heatmaps). The tasks layer reads it as the
``'bottomup_heatmaps_tags'`` decoder (:attr:`HigherHRNet.decoder`), and
:func:`~hrnet_zoo.tasks.bottomup.estimate_pose_bottomup` groups the joints into people.

These architectures are outside the head table (no ``hrnet<head>_<width>`` name) and have no weights records yet:
their default cfgs are untagged and name no file, so ``pretrained=True`` is refused.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import Tensor, nn

from .builder import HRNet
from .heads.higher import HIGHER_HEADS, higher_outputs, make_deconv_layers, make_final_layers

__all__ = ['HigherHRNet', 'create_higherhrnet']

DECODER = 'bottomup_heatmaps_tags'
_INPUT_SIZES = {'w32': 512, 'w48': 640}  # the official COCO configs' DATASET.INPUT_SIZE


class HigherHRNet(HRNet):
    """HigherHRNet: HRNetV1's backbone, heatmaps + tags at 1/4 (``final_layers.0``), and a deconvolution module
    (``deconv_layers.0``) giving heatmaps at 1/2 (``final_layers.1``).

    Args:
        width: ``'w32'`` or ``'w48'`` (the widths the paper and the official configs have a head for).
        num_classes: joints (17 for COCO).
        tag_per_joint: a tag map per joint (the official ``TAG_PER_JOINT``, every released model), else one.
        **kwargs: ``in_chans``, ``upsample_mode``, ``align_corners``, ``device``, ``dtype``, ``norm_layer``,
            ``frozen_stages``, ``norm_eval``, as documented in :class:`~hrnet_zoo.HRNetV2`.
    """

    head = 'v1'  # the backbone of HRNetV1's row: the last exchange unit fuses into branch 0 only
    decoder: ClassVar[str] = DECODER

    def __init__(self, width: str = 'w32', num_classes: int = 17, tag_per_joint: bool = True, **kwargs: Any) -> None:
        if width not in HIGHER_HEADS:
            raise ValueError(f'HigherHRNet has a head for widths {", ".join(HIGHER_HEADS)}, got {width!r}')
        if num_classes < 1:
            raise ValueError(f'HigherHRNet needs at least one joint, got num_classes={num_classes}')
        super().__init__(width, **kwargs)
        dd = dict(device=kwargs.get('device'), dtype=kwargs.get('dtype'))
        self.arch = f'higherhrnet_{width}'
        self.num_classes = num_classes
        self.tag_per_joint = tag_per_joint
        self.num_features = self.head_hidden_size = self.branch_channels[0]
        spec = HIGHER_HEADS[width]
        self.cat_output = spec.cat_output
        self.out_channels = spec.out_channels(num_classes, tag_per_joint)
        self.final_layers = make_final_layers(self.num_features, spec, num_classes, tag_per_joint, **dd)
        self.deconv_layers = make_deconv_layers(self.num_features, spec, num_classes, tag_per_joint, self.norm_layer,
                                                **dd)  # fmt: skip
        self._init_weights()

    def representation(self, branches: list[Tensor]) -> Tensor:
        return branches[0]

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> tuple[Tensor, ...] | Tensor:
        """The outputs, 1/4 first (``pre_logits``: branch 0 itself)."""
        return x if pre_logits else higher_outputs(x, self.final_layers, self.deconv_layers, self.cat_output)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """``(quarter [N, 2K, H/4, W/4], half [N, K, H/2, W/2])``: heatmaps and tags at 1/4, heatmaps at 1/2."""
        return higher_outputs(self.forward_features(x), self.final_layers, self.deconv_layers, self.cat_output)

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.final_layers

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new head for ``num_classes`` joints (every head layer depends on it: the deconvolution reads the
        1/4 outputs)."""
        if num_classes < 1:
            raise ValueError(f'HigherHRNet needs at least one joint, got num_classes={num_classes}')
        dd = dict(device=self.conv1.weight.device, dtype=self.conv1.weight.dtype)
        spec = HIGHER_HEADS[self.width]
        self.num_classes = num_classes
        self.out_channels = spec.out_channels(num_classes, self.tag_per_joint)
        self.final_layers = make_final_layers(self.num_features, spec, num_classes, self.tag_per_joint, **dd)
        self.deconv_layers = make_deconv_layers(self.num_features, spec, num_classes, self.tag_per_joint,
                                                self.norm_layer, **dd)  # fmt: skip

    def remove_head(self) -> None:
        """For ``features_only``: the head's layers go (``forward_intermediates`` does not read them)."""
        self.num_classes = 0
        self.final_layers = nn.ModuleList()
        self.deconv_layers = nn.ModuleList()


def _cfg(width: str) -> dict[str, Any]:
    size = _INPUT_SIZES[width]
    return dict(
        num_classes=17,
        input_size=(3, size, size),
        fixed_input_size=False,
        interpolation='bilinear',
        crop_pct=1.0,
        mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD,
        first_conv='conv1',
        # a different joint count changes every head layer: the 1/4 outputs feed the deconvolution
        classifier=('final_layers.0', 'final_layers.1', 'deconv_layers.0.0.0'),
        paper_name='HigherHRNet: Scale-Aware Representation Learning for Bottom-Up Human Pose Estimation',
        paper_ids='arXiv:1908.10357',
        origin_url='https://github.com/HRNet/HigherHRNet-Human-Pose-Estimation',
        license='mit',
    )


# timm's register_model reads default_cfgs from the module that defines the entrypoint
default_cfgs = generate_default_cfgs({f'higherhrnet_{width}': _cfg(width) for width in _INPUT_SIZES})


def create_higherhrnet(arch: str, pretrained: bool = False, **kwargs: Any) -> HigherHRNet:
    """Build ``higherhrnet_<width>`` through timm's ``build_model_with_cfg`` (``features_only`` etc. as there)."""
    if pretrained:
        raise ValueError(f'{arch} has no published weights yet: build it with pretrained=False (and load a '
                         'state_dict in our keys with load_state_dict)')  # fmt: skip
    width = arch.removeprefix('higherhrnet_')
    return build_model_with_cfg(
        HigherHRNet, arch, pretrained, width=width, feature_cfg=dict(feature_cls='getter'), **kwargs
    )


@register_model
def higherhrnet_w32(pretrained: bool = False, **kwargs: Any) -> HigherHRNet:
    """HigherHRNet-W32: bottom-up heatmaps and tags at 1/4, heatmaps at 1/2 (COCO input 512x512)."""
    return create_higherhrnet('higherhrnet_w32', pretrained, **kwargs)


@register_model
def higherhrnet_w48(pretrained: bool = False, **kwargs: Any) -> HigherHRNet:
    """HigherHRNet-W48: bottom-up heatmaps and tags at 1/4, heatmaps at 1/2 (COCO input 640x640)."""
    return create_higherhrnet('higherhrnet_w48', pretrained, **kwargs)
