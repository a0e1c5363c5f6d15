"""The ``.in1k`` tags read timm's own Hub repos: timm's ``push_to_hf_hub`` publishes random ``hrnet_w18`` and
``hrnet_w18_small`` weights (timm's layout: classification head, every fuse row, a pickle beside the safetensors) on
the loopback Hub, and our V1 / V2 / V2p models and ``features_only`` must load exactly those backbone tensors.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from helpers import TIMM_NAMES, offline_tensor_sum
from huggingface_hub import HfApi
from timm.models import push_to_hf_hub

import hrnet_zoo
from hrnet_zoo.weights.checks import drop_unused_keys

REPO_ROOT = Path(__file__).resolve().parents[1]
# timm's architecture -> the tags that must read its `.ms_in1k` repo
CASES = {'hrnet_w18': ['hrnetv2_w18.in1k', 'hrnetv2p_w18.in1k'], 'hrnet_w18_small': ['hrnetv1_w18_small_v1.in1k']}


def _push(timm_name: str, seed: int) -> dict[str, torch.Tensor]:
    """Random weights of timm's own model, pushed by timm to ``timm/<name>.ms_in1k``; returns them."""
    torch.manual_seed(seed)
    model = timm.create_model(timm_name)
    for p in model.parameters():  # away from the initialisation, so a freshly built model cannot pass by chance
        p.data.add_(torch.randn_like(p) * 0.01)
    push_to_hf_hub(model, f'timm/{timm_name}.ms_in1k', model_card={'details': {}})
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope='module')
def pushed() -> dict[str, dict[str, torch.Tensor]]:
    """Pushed once for the module, to the session's loopback Hub (conftest points HF_ENDPOINT at it)."""
    return {name: _push(name, seed) for seed, name in enumerate(CASES)}


def test_timms_repos_hold_a_pickle_beside_the_safetensors(hub, pushed):
    """What timm's own push writes (and what timm/hrnet_* on the Hub hold): the loader must pick the safetensors."""
    files = set(HfApi().list_repo_files('timm/hrnet_w18.ms_in1k'))
    assert {'model.safetensors', 'pytorch_model.bin', 'config.json'} <= files


@pytest.mark.parametrize('name', [n for names in CASES.values() for n in names])
def test_in1k_tags_load_timms_backbone_tensors(hub, hf_home, pushed, name):
    record = hrnet_zoo.get_record(name)
    timm_name = TIMM_NAMES[record.width]
    assert record.hf_hub_id == f'timm/{timm_name}.ms_in1k' and not record.released_here
    source = pushed[timm_name]
    hub.requests.clear()
    model = timm.create_model(name, pretrained=True, cache_dir=hf_home)
    state = model.state_dict()
    head = record.head_spec.prefixes
    backbone = [k for k in state if not k.startswith(head)]
    assert backbone and set(backbone) <= set(source)  # every backbone key is timm's, one to one
    assert all(torch.equal(state[k], source[k]) for k in backbone)
    fresh = timm.create_model(name)  # the untrained head has the shape of this tag, not ImageNet's
    assert {k: v.shape for k, v in state.items() if k.startswith(head)} == {
        k: v.shape for k, v in fresh.state_dict().items() if k.startswith(head)
    }
    paths = [path for _, path in hub.requests]
    assert any(p.endswith(f'/timm/{timm_name}.ms_in1k/resolve/main/model.safetensors') for p in paths)
    assert not any('pytorch_model.bin' in p or f'/{hrnet_zoo.HUB_ORG}/' in p for p in paths), paths

    features = timm.create_model(name, pretrained=True, features_only=True, cache_dir=hf_home)
    feature_state = {k.removeprefix('model.'): v for k, v in features.state_dict().items()}
    assert set(backbone) <= set(feature_state)
    assert all(torch.equal(feature_state[k], source[k]) for k in backbone)


def test_a_timm_repo_of_another_width_is_refused(hub, hf_home, pushed):
    with pytest.raises(Exception, match='w18_small_v1 weights'):
        timm.create_model(
            'hrnetv2_w18.in1k',
            pretrained=True,
            cache_dir=hf_home,
            pretrained_cfg_overlay=dict(hf_hub_id='timm/hrnet_w18_small.ms_in1k'),
        )


@pytest.mark.subprocess
def test_in1k_offline_with_a_warm_cache(hub, hf_home, pushed):
    name = 'hrnetv1_w18_small_v1.in1k'
    timm.create_model(name, pretrained=True, cache_dir=hf_home)  # warm the cache
    before = len(hub.requests)
    key = 'stage4.0.branches.0.0.conv1.weight'
    got = offline_tensor_sum(name, key, hf_home)
    assert got == pytest.approx(float(pushed['hrnet_w18_small'][key].double().sum()), rel=1e-9)
    assert len(hub.requests) == before


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_every_timm_hosted_tag_fits_timms_architecture_key_for_key():
    """For every record read from a timm repo, timm's own architecture of that repo (ssld: conv bias in its head
    only) holds exactly our backbone keys and shapes once its ImageNet head (and V1's unused fuse rows) is dropped."""
    hosted = {r.name: r for r in hrnet_zoo.MANIFEST.values() if not r.released_here}
    # per head: the nine widths' ms_in1k, plus aug (w18), gluon (both small widths) and ssld (w18, w48)
    assert len(hosted) == 14 * len(hrnet_zoo.HEADS) and all(
        r.hf_hub_id.startswith('timm/hrnet_') for r in hosted.values()
    )
    theirs: dict[str, dict[str, tuple[int, ...]]] = {}
    for record in hosted.values():
        timm_arch = record.hf_hub_id.removeprefix('timm/').partition('.')[0]
        if timm_arch not in theirs:
            theirs[timm_arch] = _shapes(timm.create_model(timm_arch, device='meta'))
        model = timm.create_model(record.arch, device='meta')
        prefix = record.head_spec.prefixes
        ours = {k: s for k, s in _shapes(model).items() if not k.startswith(prefix)}
        assert drop_unused_keys(theirs[timm_arch], model.head, model.width) == ours, record.name
