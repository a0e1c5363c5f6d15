"""Publishing converted weights to the Hugging Face Hub, and checking what landed.

All Hub traffic goes through huggingface_hub's ``HfApi`` (create_repo, one commit with every file,
hf_hub_download). The token comes from huggingface_hub's usual places (``HF_TOKEN``, the cached login) and
is never printed. A publish is one commit, so an interrupted upload leaves the repo at its previous revision.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from huggingface_hub import HfApi

from ..specs import HEADS
from ..weights.io import sha256_file, verify_safetensors
from .convert import load_checkpoint

__all__ = ['PUBLISHED_FILES', 'PublishResult', 'publish', 'verify_published', 'check_folder']

PUBLISHED_FILES = ('model.safetensors', 'config.json', 'README.md')
_HEAD_PREFIXES = tuple(p for head in HEADS.values() for p in head.prefixes)  # untrained in backbone-only weights
_PICKLE_SUFFIXES = ('.bin', '.pth', '.pt', '.pkl', '.pickle', '.ckpt', '.tar')


@dataclass(frozen=True)
class PublishResult:
    repo_id: str
    commit_id: str
    verified: bool


def _fixed_input(model: torch.nn.Module) -> torch.Tensor:
    """A deterministic image batch small enough to run anywhere (V2p needs >= 61 px per side)."""
    chans = model.pretrained_cfg.get('input_size', (3,))[0]
    return torch.randn(1, chans, 128, 160, generator=torch.Generator().manual_seed(0))


def check_folder(folder: str | Path) -> torch.nn.Module:
    """Refuse a folder that is not exactly a converted model: the three files, no pickle, weights that load
    strictly into the architecture its config names. Returns that model, weights loaded."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'No such folder to publish: {folder}')
    missing = [name for name in PUBLISHED_FILES if not (folder / name).is_file()]
    if missing:
        raise ValueError(f'{folder} is not a converted model folder: missing {", ".join(missing)}')
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in _PICKLE_SUFFIXES)
    if pickles:
        raise ValueError(f'Refusing to publish pickle files ({", ".join(pickles)}); only safetensors are published')
    try:
        json.loads((folder / 'config.json').read_text())['architecture']
    except (json.JSONDecodeError, KeyError) as err:
        raise ValueError(f'{folder / "config.json"} is not a timm config with an "architecture": {err}') from None
    verify_safetensors(folder / 'model.safetensors')  # structure, recorded digest, finite values
    tensors = load_checkpoint(folder / 'model.safetensors')
    model = timm.create_model(f'local-dir:{folder}', pretrained=True)  # timm's own loader, strict
    expected = model.state_dict()
    unexpected = sorted(set(tensors) - set(expected))
    missing = sorted(k for k in set(expected) - set(tensors) if not k.startswith(_HEAD_PREFIXES))
    if unexpected or missing:
        raise ValueError(
            f'{folder}: model.safetensors does not match its config: '
            f'{len(missing)} missing {missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}'
        )
    return model


def verify_published(
    repo_id: str, commit_id: str, folder: str | Path, local_model: torch.nn.Module, endpoint: str | None = None
) -> None:
    """Download what ``commit_id`` holds into a fresh cache, compare sha256s with ``folder``, then load it
    through timm's own ``hf-hub:`` path and compare outputs with ``local_model`` on a fixed input."""
    folder = Path(folder)
    api = HfApi(endpoint=endpoint)
    with tempfile.TemporaryDirectory(prefix='hrnet_zoo_verify_') as cache:
        for name in PUBLISHED_FILES:
            remote = api.hf_hub_download(repo_id, name, revision=commit_id, cache_dir=cache)
            if sha256_file(remote) != sha256_file(folder / name):
                raise ValueError(f'{repo_id}@{commit_id}: {name} on the Hub differs from the local file')
        if endpoint is None:  # timm resolves hf-hub: through the process-wide endpoint only
            remote_model = timm.create_model(f'hf-hub:{repo_id}@{commit_id}', pretrained=True, cache_dir=cache)
            remote_state = remote_model.state_dict()
            changed = [k for k, v in load_checkpoint(folder / 'model.safetensors').items()
                       if not torch.equal(remote_state[k], v)]  # fmt: skip
            if changed:
                raise ValueError(f'{repo_id}@{commit_id}: {len(changed)} tensors load differently, e.g. {changed[0]}')
            x = _fixed_input(local_model)
            with torch.no_grad():  # backbone features: the head of backbone-only weights is freshly initialised
                got = remote_model.eval().forward_intermediates(x, intermediates_only=True)
                want = local_model.eval().forward_intermediates(x, intermediates_only=True)
            if not all(torch.equal(g, w) for g, w in zip(got, want)):
                raise ValueError(f'{repo_id}@{commit_id}: the published model gives different features')


def publish(
    folder: str | Path,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    verify: bool = True,
    endpoint: str | None = None,
    token: str | None = None,
) -> PublishResult:
    """Upload a converted folder (``model.safetensors``, ``config.json``, ``README.md``) in one commit.

    The folder is checked before anything is sent; the commit names its parent, so a concurrent change to
    the branch makes it fail instead of being overwritten. With ``verify`` the published files are downloaded
    again and compared (see :func:`verify_published`).
    """
    local_model = check_folder(folder)
    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision is not None:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    parent = api.repo_info(repo_id, revision=revision).sha
    arch = json.loads((Path(folder) / 'config.json').read_text())['architecture']
    commit = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        revision=revision,
        allow_patterns=list(PUBLISHED_FILES),
        commit_message=commit_message or f'Publish {arch} weights (hrnet_zoo)',
        parent_commit=parent,
    )
    commit_id = commit.oid
    if verify:
        verify_published(repo_id, commit_id, folder, local_model, endpoint=endpoint)
    return PublishResult(repo_id, commit_id, verify)
