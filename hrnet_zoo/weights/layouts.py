"""Released HRNet checkpoints read into this package's names: what a state_dict's layout is, and how its keys map.

The layout is recognised from the keys, never taken from the caller:

* ``official``: HRNet-Image-Classification, deep-high-resolution-net.pytorch (pose) and timm's ``hrnet_*`` Hub
  files, which keep the official names. The ImageNet classification head is dropped.
* ``official_seg``: HRNet-Semantic-Segmentation, saved from its ``FullModel`` wrapper (``model.`` prefix, the
  loss's class-weight buffers under ``loss.``). The InPlaceABN ``master`` branch and torch 0.4 files (the HRNet-OCR
  ``*_torch04.pth`` ones too) have no ``num_batches_tracked``; zeros are added, as a fresh BatchNorm has. For OCR
  models a ``last_layer.*`` head is read as ``aux_head.*``, as the official OCR loader does.
* ``mmlab``: mmsegmentation (FCNHead; OCRNet's FCNHead + OCRHead cascade), mmpose (0.x and 1.x, the HRNetV2
  face / hand head too), mmdetection (also the v1 / HRNet-Object-Detection neck names) and mmpretrain: ``backbone.``
  prefix and the head renames in :data:`MMLAB_RENAMES`.

Whatever the target model does not use is dropped; the rest must match the target's shapes key for key. This is
the reading half of conversion: the timm loading hooks use it on a downloaded file, :mod:`hrnet_zoo.publish.convert`
to write a Hub folder.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from numpy._core import multiarray as np_multiarray
from safetensors.torch import load_file
from torch import Tensor

from ..specs import HEADS, get_spec, parse_arch
from .checks import WIDTH_KEY, drop_unused_keys, key_mismatch, width_of
from .io import few
from .manifest import get_record
from .records import WeightsRecord

__all__ = [
    'MMLAB_RENAMES',
    'check_checkpoint_path',
    'detect_layout',
    'is_safetensors',
    'load_checkpoint',
    'to_our_layout',
]

_OCR_BLOCK = 'ocr_distri_head.object_context_block.'


def _mmseg_attention_renames() -> list[tuple[str, str]]:
    """mmseg's SelfAttentionBlock projections -> the official f_* Sequentials (conv, (norm, ReLU), ...). A
    two-conv projection is a Sequential of ConvModules (``query_project.1.conv``); a one-conv projection is the
    ConvModule itself (``value_project.conv``)."""
    renames = []
    for mm, ours, convs in (
        ('query', 'f_pixel', 2),
        ('key', 'f_object', 2),
        ('value', 'f_down', 1),
        ('out', 'f_up', 1),
    ):
        for i in range(convs):
            mm_name = rf'^decode_head\.1\.object_context_block\.{mm}_project\.' + (rf'{i}\.' if convs > 1 else '')
            renames.append((mm_name + r'conv\.', f'{_OCR_BLOCK}{ours}.{2 * i}.'))
            renames.append((mm_name + r'bn\.', f'{_OCR_BLOCK}{ours}.{2 * i + 1}.0.'))
    return renames


# OpenMMLab names -> ours, (pattern, replacement) applied in order to every key.
MMLAB_RENAMES: tuple[tuple[str, str], ...] = (
    (r'^backbone\.', ''),
    (r'(^|\.)norm([123])\.', r'\1bn\2.'),  # mmcv-style norm names in the stem and residual blocks
    (r'^decode_head\.convs\.0\.conv\.', 'last_layer.0.'),  # mmseg FCNHead: its ConvModule conv has no bias
    (r'^decode_head\.convs\.0\.bn\.', 'last_layer.1.'),
    (r'^decode_head\.conv_seg\.', 'last_layer.3.'),
    (r'^(keypoint_head|head)\.final_layer\.', HEADS['v1'].prefixes[0]),  # mmpose 0.x / 1.x
    (r'^neck\.reduction_conv\.(conv|0)\.', 'neck.reduction_conv.'),  # mmdet ConvModule / mmdet v1 Sequential
    (r'^neck\.fpn_convs?\.(\d+)\.(conv\.)?', r'neck.fpn_convs.\1.'),  # mmdet `fpn_convs.i.conv` / v1 `fpn_conv.i`
    # mmseg OCRNet: CascadeEncoderDecoder with decode_head.0 an FCNHead (the soft object regions) and
    # decode_head.1 an OCRHead; mmseg's SelfAttentionBlock names the official f_pixel / f_object / f_down / f_up
    # query_project / key_project / value_project / out_project, and its ConvModules hold `.conv` and `.bn`
    (r'^decode_head\.0\.convs\.0\.conv\.', 'aux_head.0.'),
    (r'^decode_head\.0\.convs\.0\.bn\.', 'aux_head.1.'),
    (r'^decode_head\.0\.conv_seg\.', 'aux_head.3.'),
    (r'^decode_head\.1\.bottleneck\.conv\.', 'conv3x3_ocr.0.'),
    (r'^decode_head\.1\.bottleneck\.bn\.', 'conv3x3_ocr.1.'),
    (r'^decode_head\.1\.conv_seg\.', HEADS['v2_ocr'].prefixes[-1]),  # the classifier, cls_head
    (r'^decode_head\.1\.object_context_block\.bottleneck\.conv\.', 'ocr_distri_head.conv_bn_dropout.0.'),
    (r'^decode_head\.1\.object_context_block\.bottleneck\.bn\.', 'ocr_distri_head.conv_bn_dropout.1.0.'),
    *(_mmseg_attention_renames()),
)

# Parts of the released files that no model here has: training losses, detector heads, classification heads.
_NOT_MODEL = re.compile(
    r'^(loss|criterion|rpn_head|roi_head|bbox_head|mask_head|bbox_roi_extractor|mask_roi_extractor|shared_head'
    r'|auxiliary_head|data_preprocessor)\.'
    r'|^neck\.(increase_layers|downsample_layers|final_layer)\.'  # mmpretrain's HRFuseScales classification neck
    r'|^head\.fc\.'  # mmpretrain's linear classifier (the official ImageNet head: checks.drop_unused_keys)
)


# ---------------------------------------------------------------------------------------------------------------
# Layout readers: each returns the keys in our names, possibly with parts that are dropped later.


def _read_official(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    return dict(sd)


def _read_official_seg(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k.removeprefix('model.'): v for k, v in sd.items()}


def _read_mmlab(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    out = {}
    for key, value in sd.items():
        for pattern, repl in MMLAB_RENAMES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    for conv in _BIASED_CONVS:
        weight = out.get(f'{conv}.weight')
        if weight is not None and f'{conv}.bias' not in out:
            # mmseg's ConvModule has no bias because a BN follows; a zero bias computes the same
            out[f'{conv}.bias'] = torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)
    return out


# convs with a bias in the official heads (HRNetV2's last_layer.0, OCR's aux_head.0 and conv3x3_ocr.0)
_BIASED_CONVS = ('last_layer.0', 'aux_head.0', 'conv3x3_ocr.0')


def _hrnetv2_pose_head(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """mmpose's HRNetV2 heatmap head (faces, hands) as HRNetV2's: 0.x ``final_layer.{0,1,3}`` (conv, BN, conv) and
    1.x ``head.conv_layers.{0,1}`` + ``head.final_layer`` are the conv + BN + ReLU + classifier of ``last_layer``."""
    pose, seg = HEADS['v1'].prefixes[0], HEADS['v2'].prefixes[0]
    out = {}
    for key, value in sd.items():
        if key.startswith('head.conv_layers.'):  # 1.x: the 1x1 conv (bias) and its BN
            key = seg + key.removeprefix('head.conv_layers.')
        elif key.startswith(pose):
            rest = key.removeprefix(pose)
            key = seg + (rest if rest[:1].isdigit() else f'3.{rest}')  # 0.x Sequential, or 1.x's lone classifier
        out[key] = value
    return out


_READERS: dict[str, Callable[[dict[str, Tensor]], dict[str, Tensor]]] = {
    'mmlab': _read_mmlab,
    'official_seg': _read_official_seg,
    'official': _read_official,
}
_STEMS = {'mmlab': 'backbone.conv1.weight', 'official_seg': 'model.conv1.weight', 'official': 'conv1.weight'}


def detect_layout(state_dict: Mapping[str, Tensor]) -> str:
    """``'official'`` (also timm), ``'official_seg'`` or ``'mmlab'``, from where the stem conv is."""
    for layout, stem in _STEMS.items():
        if stem in state_dict:
            return layout
    keys = list(state_dict)
    raise ValueError(
        f'not an HRNet checkpoint: none of {", ".join(_STEMS.values())} among its {len(keys)} keys '
        f'(first keys: {few(keys)})'
    )


def _unwrap(obj: object, source: str) -> dict[str, Tensor]:
    """The state_dict inside ``{'state_dict': ...}`` / ``{'model': ...}`` wrappers (nested ones too)."""
    while isinstance(obj, Mapping):
        inner = next((obj[k] for k in ('state_dict', 'model') if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f'{source}: expected a state_dict (names -> tensors), got {type(obj).__name__} {obj!r:.60}')
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise ValueError(f'{source}: not a state_dict: {len(bad)} entries are not named tensors ({few(bad)})')
    # DataParallel saves every key under `module.`
    return {k.removeprefix('module.'): v for k, v in obj.items()}


# ---------------------------------------------------------------------------------------------------------------
# Target and checks


def _target(model_name: str) -> tuple[str, WeightsRecord | None]:
    arch, _, tag = model_name.partition('.')
    parse_arch(arch)  # unknown architectures list the valid ones
    return arch, (get_record(model_name) if tag else None)


def _check_width(sd: Mapping[str, Tensor], arch: str, width: str) -> None:
    """Weights of another width fail here, with the width they look like, not with 900 mis-shaped keys."""
    found = width_of({k: tuple(v.shape) for k, v in sd.items()})
    if found is not None and found != width:
        raise ValueError(
            f'the checkpoint holds {found} weights ({WIDTH_KEY} has {sd[WIDTH_KEY].shape[0]} output channels), but '
            f'{arch} is {width} ({get_spec(width).branch_channels[0]} channels)'
        )


def _add_num_batches_tracked(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """InPlaceABN and torch 0.4 BatchNorms have no counter; eval never reads it, a fresh BN starts at 0."""
    out = dict(sd)
    for key in sd:
        if key.endswith('.running_mean'):
            out.setdefault(key.removesuffix('running_mean') + 'num_batches_tracked', torch.zeros((), dtype=torch.long))
    return out


def _check_keys(sd: Mapping[str, Tensor], expected: Mapping[str, torch.Size], model_name: str, layout: str) -> None:
    """The one place where a converted state_dict is compared with the model; every difference is listed."""
    mismatch = key_mismatch({k: v.shape for k, v in sd.items()}, expected)
    if mismatch:
        raise ValueError(f'the checkpoint ({layout} layout) does not fit {model_name}: {mismatch}')


def to_our_layout(
    state_dict: Mapping[str, Tensor],
    model_name: str,
    expected_shapes: Callable[[int | None], Mapping[str, torch.Size]],
) -> dict[str, Tensor]:
    """A released state_dict (any supported layout, wrapped or not) in this package's names for ``model_name``.

    ``model_name`` is ``<arch>`` or ``<arch>.<tag>``. With an ImageNet tag, or without a tag for a backbone-only
    checkpoint, the result holds the backbone only (the model keeps its initialised head); a task tag needs the
    task head. ``expected_shapes(num_classes)`` gives the target model's state_dict shapes (the layer above builds
    it on the meta device). Raises ``ValueError`` listing what is missing, unexpected or of another shape.
    """
    arch, record = _target(model_name)
    head, width = parse_arch(arch)
    sd = _unwrap(state_dict, 'state_dict')
    layout = detect_layout(sd)
    sd = {k: v for k, v in _READERS[layout](sd).items() if not _NOT_MODEL.match(k)}
    if head == 'v2' and layout == 'mmlab':  # mmpose's face / hand models: HRNetV2's head under the pose head's names
        sd = _hrnetv2_pose_head(sd)
    sd = drop_unused_keys(sd, head, width)
    for old, new in HEADS[head].official_renames:  # as the official loader does (HRNetV2's head -> OCR's aux_head)
        sd = {new + k.removeprefix(old) if k.startswith(old) else k: v for k, v in sd.items()}
    _check_width(sd, arch, width)
    sd = _add_num_batches_tracked(sd)

    # ImageNet tags ship the backbone only; other kinds' heads are never used
    keep_head = record is None or not record.backbone_only
    own_head = HEADS[head]
    unused = tuple(p for h in HEADS.values() if h is not own_head or not keep_head for p in h.prefixes)
    sd = {k: v for k, v in sd.items() if not k.startswith(unused)}

    has_head = any(k.startswith(own_head.prefixes) for k in sd)
    if keep_head and record is not None and not has_head:
        raise ValueError(
            f'{model_name} needs a trained {own_head.described} ({record.task}), but the checkpoint ({layout} '
            f'layout) has none; backbone-only weights go to an ImageNet tag such as {arch}.in1k'
        )
    num_classes = record.num_classes if record is not None else None
    if num_classes is None and own_head.num_classes_key in sd:
        num_classes = sd[own_head.num_classes_key].shape[0]
    kwargs = {} if num_classes is None else {'num_classes': num_classes}
    expected = dict(expected_shapes(kwargs.get('num_classes')))
    if not has_head:  # backbone-only: the head is missing by design, the model keeps its initialised one
        expected = {k: s for k, s in expected.items() if not k.startswith(own_head.prefixes)}
    _check_keys(sd, expected, model_name, layout)
    if record is not None and record.input_order == 'bgr':  # trained on BGR: reversed input channels take RGB
        sd['conv1.weight'] = sd['conv1.weight'].flip(1)
    return sd


# ---------------------------------------------------------------------------------------------------------------
# Files

# What OpenMMLab 1.x runners pickle into `meta.dataset_meta` besides tensors: numpy arrays (sigmas, colours). Only
# numpy's array reconstruction is allowed on top of weights_only's tensors and containers; the dotted name covers
# files pickled under numpy 1.x, and `bytes` the data of an empty array.
_NUMPY_ARRAY_GLOBALS = [
    np.ndarray,
    np.dtype,
    bytes,
    np_multiarray._reconstruct,
    (np_multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
    *(cls for cls in vars(np.dtypes).values() if isinstance(cls, type) and issubclass(cls, np.dtype)),
]


def check_checkpoint_path(path: Path) -> None:
    """A checkpoint path that exists and is a file, or an error that says which."""
    if not path.exists():
        raise FileNotFoundError(f'checkpoint not found: {path}')
    if path.is_dir():
        raise IsADirectoryError(f'{path} is a directory; expected a checkpoint file (.pth, .pth.tar, .safetensors)')


def is_safetensors(path: Path) -> bool:
    """By name, or by content: an 8-byte little-endian header length, then the JSON header."""
    if path.suffix == '.safetensors':
        return True
    with path.open('rb') as f:
        head = f.read(9)
    return len(head) == 9 and head[8:] == b'{' and int.from_bytes(head[:8], 'little') < path.stat().st_size


def _reason(err: BaseException) -> str:
    """The first sentence of an error, for a one-line message."""
    text = (str(err).strip().splitlines() or [''])[0].split('. ')[0][:200]
    return f'{type(err).__name__}: {text}' if text else type(err).__name__


def load_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """The state_dict of a ``.pth`` / ``.pth.tar`` / ``.safetensors`` file, unwrapped from training wrappers.

    Pickles are read with ``torch.load(weights_only=True)`` only, with numpy's array reconstruction allowed (the
    ``meta`` of OpenMMLab 1.x checkpoints): a file that would import or call anything else is refused, never
    executed.
    """
    path = Path(path)
    check_checkpoint_path(path)
    if is_safetensors(path):
        try:
            tensors = load_file(path)
        except OSError:
            raise
        except Exception as err:  # SafetensorError: truncated or not safetensors at all
            raise ValueError(f'{path} is not a readable .safetensors file ({_reason(err)})') from err
        return _unwrap(tensors, str(path))
    try:
        with torch.serialization.safe_globals(_NUMPY_ARRAY_GLOBALS):
            obj = torch.load(path, map_location='cpu', weights_only=True)
    except OSError:
        raise
    except pickle.UnpicklingError as err:
        inner = err.__context__ or err  # the weights-only unpickler's own reason
        called = re.search(r'Unsupported global: GLOBAL (\S+)', str(inner))
        if called:
            raise ValueError(
                f'refusing to load {path}: not a plain weights file, unpickling it would call {called.group(1)}; '
                'only tensors and plain containers are read (if you trust the file, re-save its state_dict with '
                'torch.save and convert that)'
            ) from err
        raise ValueError(
            f'refusing to load {path}: not a plain weights file ({_reason(inner)}); expected a PyTorch state_dict '
            '(.pth, .pth.tar) or a .safetensors file'
        ) from err
    except Exception as err:  # EOFError (empty), RuntimeError (bad zip), KeyError (text), ...
        raise ValueError(
            f'{path} is not a PyTorch checkpoint or .safetensors file ({_reason(err)}); '
            'expected a state_dict saved with torch.save, or a .safetensors file'
        ) from err
    return _unwrap(obj, str(path))
