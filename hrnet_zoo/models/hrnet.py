"""The 36 registered names: timm's default cfgs (one per manifest record) and one written-out ``@register_model``
entrypoint per architecture, each a call of :func:`~hrnet_zoo.models.builder.create_hrnet`.

timm's ``register_model`` reads ``default_cfgs`` from the module that defines the entrypoint, so the two live
together here, above the model classes; timm lists them under this module's name (``timm.list_models(module='hrnet')``
lists timm's own HRNets too, which share the name).
"""

from __future__ import annotations

from typing import Any

from timm.models import generate_default_cfgs, register_model

from ..weights.manifest import MANIFEST
from .builder import create_hrnet
from .heads import HRNetV1, HRNetV2, HRNetV2OCR, HRNetV2p

__all__: list[str] = []  # the entrypoints are reached through timm

default_cfgs = generate_default_cfgs({name: record.pretrained_cfg() for name, record in MANIFEST.items()})


@register_model
def hrnetv1_w18_small_v1(pretrained: bool = False, **kwargs: Any) -> HRNetV1:
    """HRNetV1-W18-Small-V1: pose heatmaps."""
    return create_hrnet('hrnetv1_w18_small_v1', pretrained, **kwargs)


@register_model
def hrnetv1_w18_small_v2(pretrained: bool = False, **kwargs: Any) -> HRNetV1:
    """HRNetV1-W18-Small-V2: pose heatmaps."""
    return create_hrnet('hrnetv1_w18_small_v2', pretrained, **kwargs)


@register_model
def hrnetv1_w18(pretrained: bool = False, **kwargs: Any) -> HRNetV1:
    """HRNetV1-W18: pose heatmaps."""
    return create_hrnet('hrnetv1_w18', pretrained, **kwargs)


@register_model
def hrnetv1_w30(pretrained: bool = False, **kwargs: Any) -> HRNetV1:
    """HRNetV1-W30: pose heatmaps."""
    return create_hrnet('hrnetv1_w30', pretrained, **kwargs)


@register_model
def hrnetv1_w32(pretrained: bool = False, **kwargs: Any) -> HRNetV1:
    """HRNetV1-W32: pose heatmaps."""
    return create_hrnet('hrnetv1_w32', pretrained, **kwargs)


@register_model
def hrnetv1_w40(pretrained: bool = False, **kwargs: Any) -> HRNetV1:
    """HRNetV1-W40: pose heatmaps."""
    return create_hrnet('hrnetv1_w40', pretrained, **kwargs)


@register_model
def hrnetv1_w44(pretrained: bool = False, **kwargs: Any) -> HRNetV1:
    """HRNetV1-W44: pose heatmaps."""
    return create_hrnet('hrnetv1_w44', pretrained, **kwargs)


@register_model
def hrnetv1_w48(pretrained: bool = False, **kwargs: Any) -> HRNetV1:
    """HRNetV1-W48: pose heatmaps."""
    return create_hrnet('hrnetv1_w48', pretrained, **kwargs)


@register_model
def hrnetv1_w64(pretrained: bool = False, **kwargs: Any) -> HRNetV1:
    """HRNetV1-W64: pose heatmaps."""
    return create_hrnet('hrnetv1_w64', pretrained, **kwargs)


@register_model
def hrnetv2_w18_small_v1(pretrained: bool = False, **kwargs: Any) -> HRNetV2:
    """HRNetV2-W18-Small-V1: segmentation logits."""
    return create_hrnet('hrnetv2_w18_small_v1', pretrained, **kwargs)


@register_model
def hrnetv2_w18_small_v2(pretrained: bool = False, **kwargs: Any) -> HRNetV2:
    """HRNetV2-W18-Small-V2: segmentation logits."""
    return create_hrnet('hrnetv2_w18_small_v2', pretrained, **kwargs)


@register_model
def hrnetv2_w18(pretrained: bool = False, **kwargs: Any) -> HRNetV2:
    """HRNetV2-W18: segmentation logits."""
    return create_hrnet('hrnetv2_w18', pretrained, **kwargs)


@register_model
def hrnetv2_w30(pretrained: bool = False, **kwargs: Any) -> HRNetV2:
    """HRNetV2-W30: segmentation logits."""
    return create_hrnet('hrnetv2_w30', pretrained, **kwargs)


@register_model
def hrnetv2_w32(pretrained: bool = False, **kwargs: Any) -> HRNetV2:
    """HRNetV2-W32: segmentation logits."""
    return create_hrnet('hrnetv2_w32', pretrained, **kwargs)


@register_model
def hrnetv2_w40(pretrained: bool = False, **kwargs: Any) -> HRNetV2:
    """HRNetV2-W40: segmentation logits."""
    return create_hrnet('hrnetv2_w40', pretrained, **kwargs)


@register_model
def hrnetv2_w44(pretrained: bool = False, **kwargs: Any) -> HRNetV2:
    """HRNetV2-W44: segmentation logits."""
    return create_hrnet('hrnetv2_w44', pretrained, **kwargs)


@register_model
def hrnetv2_w48(pretrained: bool = False, **kwargs: Any) -> HRNetV2:
    """HRNetV2-W48: segmentation logits."""
    return create_hrnet('hrnetv2_w48', pretrained, **kwargs)


@register_model
def hrnetv2_w64(pretrained: bool = False, **kwargs: Any) -> HRNetV2:
    """HRNetV2-W64: segmentation logits."""
    return create_hrnet('hrnetv2_w64', pretrained, **kwargs)


@register_model
def hrnetv2p_w18_small_v1(pretrained: bool = False, **kwargs: Any) -> HRNetV2p:
    """HRNetV2p-W18-Small-V1: a 5-level feature pyramid for detection."""
    return create_hrnet('hrnetv2p_w18_small_v1', pretrained, **kwargs)


@register_model
def hrnetv2p_w18_small_v2(pretrained: bool = False, **kwargs: Any) -> HRNetV2p:
    """HRNetV2p-W18-Small-V2: a 5-level feature pyramid for detection."""
    return create_hrnet('hrnetv2p_w18_small_v2', pretrained, **kwargs)


@register_model
def hrnetv2p_w18(pretrained: bool = False, **kwargs: Any) -> HRNetV2p:
    """HRNetV2p-W18: a 5-level feature pyramid for detection."""
    return create_hrnet('hrnetv2p_w18', pretrained, **kwargs)


@register_model
def hrnetv2p_w30(pretrained: bool = False, **kwargs: Any) -> HRNetV2p:
    """HRNetV2p-W30: a 5-level feature pyramid for detection."""
    return create_hrnet('hrnetv2p_w30', pretrained, **kwargs)


@register_model
def hrnetv2p_w32(pretrained: bool = False, **kwargs: Any) -> HRNetV2p:
    """HRNetV2p-W32: a 5-level feature pyramid for detection."""
    return create_hrnet('hrnetv2p_w32', pretrained, **kwargs)


@register_model
def hrnetv2p_w40(pretrained: bool = False, **kwargs: Any) -> HRNetV2p:
    """HRNetV2p-W40: a 5-level feature pyramid for detection."""
    return create_hrnet('hrnetv2p_w40', pretrained, **kwargs)


@register_model
def hrnetv2p_w44(pretrained: bool = False, **kwargs: Any) -> HRNetV2p:
    """HRNetV2p-W44: a 5-level feature pyramid for detection."""
    return create_hrnet('hrnetv2p_w44', pretrained, **kwargs)


@register_model
def hrnetv2p_w48(pretrained: bool = False, **kwargs: Any) -> HRNetV2p:
    """HRNetV2p-W48: a 5-level feature pyramid for detection."""
    return create_hrnet('hrnetv2p_w48', pretrained, **kwargs)


@register_model
def hrnetv2p_w64(pretrained: bool = False, **kwargs: Any) -> HRNetV2p:
    """HRNetV2p-W64: a 5-level feature pyramid for detection."""
    return create_hrnet('hrnetv2p_w64', pretrained, **kwargs)


@register_model
def hrnetv2_ocr_w18_small_v1(pretrained: bool = False, **kwargs: Any) -> HRNetV2OCR:
    """HRNetV2-OCR-W18-Small-V1: segmentation logits through object-contextual representations."""
    return create_hrnet('hrnetv2_ocr_w18_small_v1', pretrained, **kwargs)


@register_model
def hrnetv2_ocr_w18_small_v2(pretrained: bool = False, **kwargs: Any) -> HRNetV2OCR:
    """HRNetV2-OCR-W18-Small-V2: segmentation logits through object-contextual representations."""
    return create_hrnet('hrnetv2_ocr_w18_small_v2', pretrained, **kwargs)


@register_model
def hrnetv2_ocr_w18(pretrained: bool = False, **kwargs: Any) -> HRNetV2OCR:
    """HRNetV2-OCR-W18: segmentation logits through object-contextual representations."""
    return create_hrnet('hrnetv2_ocr_w18', pretrained, **kwargs)


@register_model
def hrnetv2_ocr_w30(pretrained: bool = False, **kwargs: Any) -> HRNetV2OCR:
    """HRNetV2-OCR-W30: segmentation logits through object-contextual representations."""
    return create_hrnet('hrnetv2_ocr_w30', pretrained, **kwargs)


@register_model
def hrnetv2_ocr_w32(pretrained: bool = False, **kwargs: Any) -> HRNetV2OCR:
    """HRNetV2-OCR-W32: segmentation logits through object-contextual representations."""
    return create_hrnet('hrnetv2_ocr_w32', pretrained, **kwargs)


@register_model
def hrnetv2_ocr_w40(pretrained: bool = False, **kwargs: Any) -> HRNetV2OCR:
    """HRNetV2-OCR-W40: segmentation logits through object-contextual representations."""
    return create_hrnet('hrnetv2_ocr_w40', pretrained, **kwargs)


@register_model
def hrnetv2_ocr_w44(pretrained: bool = False, **kwargs: Any) -> HRNetV2OCR:
    """HRNetV2-OCR-W44: segmentation logits through object-contextual representations."""
    return create_hrnet('hrnetv2_ocr_w44', pretrained, **kwargs)


@register_model
def hrnetv2_ocr_w48(pretrained: bool = False, **kwargs: Any) -> HRNetV2OCR:
    """HRNetV2-OCR-W48: segmentation logits through object-contextual representations."""
    return create_hrnet('hrnetv2_ocr_w48', pretrained, **kwargs)


@register_model
def hrnetv2_ocr_w64(pretrained: bool = False, **kwargs: Any) -> HRNetV2OCR:
    """HRNetV2-OCR-W64: segmentation logits through object-contextual representations."""
    return create_hrnet('hrnetv2_ocr_w64', pretrained, **kwargs)
