"""Released HRNet checkpoints -> a folder ready for the Hub: ``model.safetensors``, ``config.json`` and the card.

Reading a checkpoint and mapping its keys (every supported layout) is :mod:`hrnet_zoo.weights.layouts`; this
module builds the target model, checks the result against it strictly, and writes the folder whole or not at all.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import timm
import torch
from safetensors.torch import save_file
from timm.models._hub import save_config_for_hf  # no public name in timm 1.0.31
from torch import Tensor

from ..models.builder import create_hrnet
from ..specs import HEADS, parse_arch
from ..version import __version__
from ..weights.io import DIGEST_KEY, few, sha256_file, tensors_digest
from ..weights.layouts import MMLAB_RENAMES, check_checkpoint_path, detect_layout, load_checkpoint, to_our_layout
from ..weights.manifest import MANIFEST, default_tag, get_record
from ..weights.pretrained import fill_untrained_head
from .cards import model_card

__all__ = ['MMLAB_RENAMES', 'convert_checkpoint', 'convert_state_dict', 'detect_layout', 'load_checkpoint']

_FOLDER_FILES = {'model.safetensors', 'config.json', 'README.md'}


def convert_state_dict(state_dict: Mapping[str, Tensor], model_name: str) -> dict[str, Tensor]:
    """A released state_dict (any supported layout, wrapped or not) in this package's names for ``model_name``
    (``<arch>`` or ``<arch>.<tag>``), checked against the model built on the meta device; see
    :func:`~hrnet_zoo.weights.layouts.to_our_layout`."""
    arch = model_name.partition('.')[0]

    def expected(num_classes: int | None) -> dict[str, torch.Size]:
        kwargs = {} if num_classes is None else {'num_classes': num_classes}
        return {k: v.shape for k, v in create_hrnet(arch, device='meta', **kwargs).state_dict().items()}

    return to_our_layout(state_dict, model_name, expected)


def _replace_folder(out_dir: Path, write: Callable[[Path], None]) -> None:
    """Write into a temp folder beside ``out_dir``, then rename it into place: never a half-written folder."""
    out_dir = out_dir.resolve()  # `.` and `..` have no name to put a sibling beside
    if out_dir.exists():
        if not out_dir.is_dir():
            raise FileExistsError(f'{out_dir} exists and is not a folder')
        other = sorted(p.name for p in out_dir.iterdir() if p.name not in _FOLDER_FILES)
        if other:  # guard against `--out ~`: only a previous conversion is replaced
            raise FileExistsError(
                f'{out_dir} holds files other than a converted model ({few(other)}); not replacing it'
            )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f'.{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}'
    old = out_dir.parent / f'.{out_dir.name}.old-{uuid.uuid4().hex[:8]}'
    tmp.mkdir()
    try:
        write(tmp)
        if out_dir.exists():
            out_dir.rename(old)
        tmp.rename(out_dir)
    except BaseException:
        if old.exists() and not out_dir.exists():
            old.rename(out_dir)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _tag_for_file(arch: str, file_name: str) -> str | None:
    """The tag whose official file this is, by its name (OpenMMLab's hash-named files make it unique)."""
    named = [r.tag for r in MANIFEST.values() if r.arch == arch and r.source.file_name == file_name]
    return named[0] if named else None


def _refuse_dropping_a_trained_head(state_dict: Mapping[str, Tensor], arch: str, checkpoint: Path) -> None:
    """An untagged conversion that fell back to a backbone-only tag must not drop a trained head."""
    head = HEADS[parse_arch(arch)[0]]
    converted = convert_state_dict(state_dict, arch)  # the architecture alone keeps a head the file has
    if any(k.startswith(head.prefixes) for k in converted):
        tags = [r.tag for r in MANIFEST.values() if r.arch == arch and not r.backbone_only]
        raise ValueError(
            f'{checkpoint} holds a trained {head.described}, and {arch} without a tag means a backbone-only tag '
            f'that would drop it; name the tag it was trained for: {arch}.<tag>, one of {few(tags) or "(none)"}'
        )


def convert_checkpoint(checkpoint: str | Path, model_name: str, out_dir: str | Path) -> Path:
    """Convert a released checkpoint for ``<arch>[.<tag>]`` into ``out_dir``: ``model.safetensors``,
    ``config.json`` (timm's) and ``README.md`` (the model card). Returns ``out_dir``.

    Refuses a file whose sha256 differs from the manifest's, and any state_dict that does not load strictly.
    """
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    arch, _, tag = model_name.partition('.')
    parse_arch(arch)
    if tag:
        get_record(model_name)  # an unknown tag fails first, with the tags that exist
    check_checkpoint_path(checkpoint)
    named = tag or _tag_for_file(arch, checkpoint.name)
    record = get_record(f'{arch}.{named or default_tag(arch)}')
    digest = sha256_file(checkpoint)  # before unpickling anything
    if record.source.sha256 and digest != record.source.sha256.lower():
        raise ValueError(
            f'{checkpoint} has sha256 {digest}, but {record.name} expects {record.source.sha256} '
            f'({record.source.file_name}); refusing to convert another file'
        )
    claimed = named is not None  # the file is that record's by the caller's word or by its name
    if claimed and record.source.hash_prefix and not digest.startswith(record.source.hash_prefix.lower()):
        raise ValueError(
            f'{checkpoint} has sha256 {digest[:16]}..., but {record.name} is the file whose sha256 starts with '
            f'{record.source.hash_prefix} ({record.source.file_name}); refusing to convert another file'
        )
    state_dict = load_checkpoint(checkpoint)
    if not tag and record.backbone_only:
        _refuse_dropping_a_trained_head(state_dict, arch, checkpoint)
    tensors = convert_state_dict(state_dict, record.name)

    # through timm's factory, which records the kwargs that config.json's model_args carry
    model = timm.create_model(
        record.name,
        num_classes=record.num_classes,
        upsample_mode=record.upsample_mode,
        align_corners=record.align_corners,
        **dict(record.model_kwargs),
    )
    model.load_state_dict(fill_untrained_head(tensors, model), strict=True)
    own = model.state_dict()
    tensors = {k: own[k].detach().cpu().contiguous() for k in sorted(tensors)}  # in the model's dtype
    metadata = {
        'format': 'pt',
        'arch': arch,
        'tag': record.tag,
        'source_sha256': digest,
        'source_file': checkpoint.name,
        'hrnet_zoo_version': __version__,
    }
    metadata[DIGEST_KEY] = tensors_digest(tensors, metadata)  # safetensors has no checksum of its own

    def write(folder: Path) -> None:
        save_file(tensors, str(folder / 'model.safetensors'), metadata=metadata)
        model_args = dict(upsample_mode=record.upsample_mode, align_corners=record.align_corners)
        model_args.update(record.model_kwargs)
        save_config_for_hf(model, str(folder / 'config.json'), model_args=model_args)
        # timm 1.0.31 also writes num_classes into model_args; transformers' TimmWrapper passes it itself and
        # then fails on the duplicate. timm reads the top-level num_classes, so the copy is redundant.
        config = json.loads((folder / 'config.json').read_text())
        config.get('model_args', {}).pop('num_classes', None)
        (folder / 'config.json').write_text(json.dumps(config, indent=4))
        model_card(record.name).save(folder / 'README.md')

    _replace_folder(out_dir, write)
    return out_dir
