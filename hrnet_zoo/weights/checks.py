"""A weights file against a model: refuse what does not fit, before anything changes.

:func:`check_pretrained_file` / :func:`load_pretrained_file` compare a ``model.safetensors`` (and the ``config.json``
beside it) with a model: architecture, width, head, num_classes, fuse upsampling, every key and shape. The model is
touched only after every check has passed, so a refused file leaves it bit for bit as it was. A model is anything
with the attributes every HRNet model here has (``arch``, ``head``, ``width``, ``num_classes``, ``upsample_mode``,
``align_corners``), so this module needs no model class.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..specs import ARCHS, HEADS, WIDTHS, get_spec
from .io import FLOAT_DTYPES, IntegrityError, few, read_safetensors_header, verify_safetensors

__all__ = [
    'WIDTH_KEY',
    'check_pretrained_file',
    'compare_with_model',
    'drop_unused_keys',
    'key_mismatch',
    'load_pretrained_file',
    'model_arch',
    'width_of',
]

WIDTH_KEY = 'stage4.0.branches.0.0.conv1.weight'  # out channels = C, the width
# The official ImageNet classification head (HRNet-Image-Classification, and timm's `hrnet_*` Hub files): no model
# here has it. Its `final_layer.<i>.` Sequential is not the pose head's `final_layer.weight`.
IMAGENET_HEAD = re.compile(r'^(incre_modules|downsamp_modules|classifier)\.|^final_layer\.\d+\.')


def drop_unused_keys(state_dict: Mapping[str, Tensor], head: str, width: str) -> dict[str, Tensor]:
    """Without what no ``hrnet<head>_<width>`` has: the ImageNet classification head and, for a head that reads
    branch 0 only, the last exchange unit's fuse rows into branches 1-3."""
    sd = {k: v for k, v in state_dict.items() if not IMAGENET_HEAD.match(k)}
    if HEADS[head].multi_scale_output:
        return sd
    other_rows = re.compile(rf'^stage4\.{get_spec(width).stage4.num_modules - 1}\.fuse_layers\.[1-9]\.')
    return {k: v for k, v in sd.items() if not other_rows.match(k)}


def key_mismatch(shapes: Mapping[str, Sequence[int]], expected: Mapping[str, Sequence[int]]) -> str | None:
    """What differs between tensors' shapes and a model's: missing, unexpected and reshaped keys (None: nothing)."""
    missing = sorted(expected.keys() - shapes.keys())
    unexpected = sorted(shapes.keys() - expected.keys())
    reshaped = [
        f'{k} {list(shapes[k])} (model: {list(expected[k])})'
        for k in sorted(expected.keys() & shapes.keys())
        if tuple(shapes[k]) != tuple(expected[k])
    ]
    parts = [
        f'{len(names)} {kind}: {few(names)}'
        for kind, names in (('missing', missing), ('unexpected', unexpected), ('with another shape', reshaped))
        if names
    ]
    return '; '.join(parts) or None


def model_arch(model: torch.nn.Module) -> str:
    """``'hrnetv2_w18_small_v1'`` for an HRNetV2 of width w18_small_v1 (every HRNet model knows its ``arch``)."""
    arch = getattr(model, 'arch', None)
    if not isinstance(model, torch.nn.Module) or arch not in ARCHS:
        kinds = ' / '.join(head.display_name for head in HEADS.values())
        raise TypeError(f'expected an {kinds} model, got {type(model).__name__}')
    return arch


def width_of(shapes: Mapping[str, tuple[int, ...]]) -> str | None:
    """The width whose branch-0 channels and stage-1 block count match these shapes (None: not recognisable)."""
    weight = shapes.get(WIDTH_KEY)
    if weight is None or len(weight) != 4:
        return None
    blocks = len({k.split('.')[1] for k in shapes if k.startswith('layer1.')})
    found = [n for n, s in WIDTHS.items() if s.branch_channels[0] == weight[0] and s.stage1.num_blocks[0] == blocks]
    return found[0] if found else f'an unknown width ({weight[0]} channels, {blocks} layer1 blocks)'


def compare_with_model(
    shapes: Mapping[str, Sequence[int]], model: torch.nn.Module, what: str, full: bool = True
) -> bool:
    """Refuse tensors of another width or head, and (``full``) any key or shape the model does not have; returns
    whether the tensors are backbone-only."""
    arch, head, width = model_arch(model), model.head, model.width
    found = width_of(shapes)
    if found is not None and found != width:
        raise IntegrityError(
            f'{what} holds {found} weights ({WIDTH_KEY} has {shapes[WIDTH_KEY][0]} output channels), but the model '
            f'{arch} is {width} ({get_spec(width).branch_channels[0]} channels)'
        )
    others = [h for h in HEADS.values() if h.name != head and any(k.startswith(h.prefixes) for k in shapes)]
    if others:
        raise IntegrityError(
            f'{what} holds the {others[0].described} of hrnet{others[0].name}, but the model {arch} has the '
            f'{HEADS[head].described}'
        )
    prefix = HEADS[head].prefixes
    backbone_only = not any(k.startswith(prefix) for k in shapes)
    if not full:
        return backbone_only
    own = model.state_dict()
    expected = {k: tuple(v.shape) for k, v in own.items() if not (backbone_only and k.startswith(prefix))}
    # a FrozenBatchNorm2d has no counter, and drops the file's when loading
    shapes = {k: s for k, s in shapes.items() if k in expected or not k.endswith('.num_batches_tracked')}
    mismatch = key_mismatch(shapes, expected)
    if mismatch:
        raise IntegrityError(f'{what} does not fit {arch}: {mismatch}')
    return backbone_only


def _check_config(config: Mapping[str, Any], model: torch.nn.Module, where: str) -> None:
    arch = model_arch(model)
    named = config.get('architecture')
    if named != arch:
        raise IntegrityError(f'{where} is for {named!r}, but the model is {arch}')
    pretrained_cfg = config.get('pretrained_cfg') or {}
    classes = config.get('num_classes', pretrained_cfg.get('num_classes'))
    if classes is not None and classes != model.num_classes:
        raise IntegrityError(
            f'{where} says num_classes={classes}, but the model has num_classes={model.num_classes} '
            f'(create it with num_classes={classes}, load, then reset_classifier)'
        )
    args = config.get('model_args') or {}
    trained = (args.get('upsample_mode', 'nearest'), args.get('align_corners'))
    if trained != (model.upsample_mode, model.align_corners):
        raise IntegrityError(
            f'{where}: the weights were trained with upsample_mode={trained[0]!r}, align_corners={trained[1]}, but '
            f'the model uses upsample_mode={model.upsample_mode!r}, align_corners={model.align_corners}'
        )


def check_pretrained_file(
    model: torch.nn.Module,
    path: str | Path,
    *,
    config: str | Path | Mapping[str, Any] | None = 'auto',
    expected_sha256: str | None = None,
    require_digest: bool = False,
) -> dict[str, Tensor]:
    """Everything :func:`load_pretrained_file` checks, without touching the model. Returns the full state_dict
    to load (a backbone-only file keeps the model's own head).

    ``config``: a ``config.json`` path or mapping, ``'auto'`` for the one beside the file if there is one, or None.
    """
    path = Path(path)
    arch = model_arch(model)
    header = read_safetensors_header(path)
    named = header.metadata.get('arch')
    if named is not None and named != arch:
        raise IntegrityError(f'{path} holds weights for {named}, but the model is {arch}')
    if config == 'auto':
        config = path.with_name('config.json') if path.with_name('config.json').is_file() else None
    if isinstance(config, (str, Path)):
        try:
            config_data = json.loads(Path(config).read_text(encoding='utf-8'))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise IntegrityError(f'{config} is not a readable config.json: {err}') from None
        if not isinstance(config_data, dict):
            raise IntegrityError(f'{config} is not a timm config (a JSON object)')
        _check_config(config_data, model, str(config))
    elif config is not None:
        _check_config(config, model, 'config')
    backbone_only = compare_with_model({k: e.shape for k, e in header.tensors.items()}, model, str(path))
    float_params = {k for k, v in model.state_dict().items() if v.is_floating_point()}
    kinds = [k for k, e in header.tensors.items() if (e.dtype in FLOAT_DTYPES) != (k in float_params)]
    if kinds:
        raise IntegrityError(f'{path}: {len(kinds)} tensors have a dtype of another kind than the model: {few(kinds)}')
    tensors, _ = verify_safetensors(path, expected_sha256=expected_sha256, require_digest=require_digest)
    if backbone_only:
        prefix = HEADS[model.head].prefixes
        tensors.update({k: v for k, v in model.state_dict().items() if k.startswith(prefix)})
    return tensors


def load_pretrained_file(model: torch.nn.Module, path: str | Path, **kwargs: Any) -> dict[str, str]:
    """Load a ``model.safetensors`` into ``model`` after :func:`check_pretrained_file` has passed; a refused file
    raises :class:`IntegrityError` (or FileNotFoundError) and leaves the model unchanged. Returns the file's
    metadata."""
    tensors = check_pretrained_file(model, path, **kwargs)
    with torch.no_grad():
        model.load_state_dict(tensors, strict=True)
    return read_safetensors_header(path).metadata
