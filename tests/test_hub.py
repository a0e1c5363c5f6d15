"""The weights flow end to end on the loopback Hub: convert -> publish -> timm's pretrained=True -> same outputs.

Everything goes through the unmodified huggingface_hub client and timm's own loader (HF_ENDPOINT points at the
server conftest.py started).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from helpers import TIMM_NAMES
from huggingface_hub import HfApi
from safetensors.torch import load_file

import hrnet_zoo
from hrnet_zoo.publish.cards import model_card
from hrnet_zoo.publish.client import publish
from hrnet_zoo.publish.convert import convert_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[1]


def _x(h: int = 128, w: int = 160, chans: int = 3) -> torch.Tensor:
    return torch.randn(2, chans, h, w, generator=torch.Generator().manual_seed(0))


def _outputs(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        out = model.eval()(x)
    return out if isinstance(out, list) else [out]


def _converted(name: str, tmp_path: Path, seed: int = 0) -> tuple[Path, dict[str, torch.Tensor]]:
    """A randomly initialised checkpoint of ``name`` in the plain official layout, converted."""
    record = hrnet_zoo.get_record(name)
    torch.manual_seed(seed)
    source = timm.create_model(record.arch, num_classes=record.num_classes).state_dict()
    checkpoint = tmp_path / f'{name}-{seed}.pth'
    torch.save(source, checkpoint)
    out = convert_checkpoint(checkpoint, name, tmp_path / f'{name}-{seed}')
    return out, load_file(out / 'model.safetensors')


@pytest.mark.parametrize('name', ['hrnetv1_w32.coco_256x192', 'hrnetv2_w18_small_v1.cityscapes', 'hrnetv2p_w18.coco'])
def test_round_trip_each_head(hub, hf_home, tmp_path, name):
    folder, tensors = _converted(name, tmp_path)
    result = publish(folder, hrnet_zoo.get_record(name).hf_hub_id)
    assert result.verified and len(result.commit_id) == 40
    fetched = timm.create_model(name, pretrained=True, cache_dir=hf_home)
    state = fetched.state_dict()
    assert all(torch.equal(state[k], v) for k, v in tensors.items())
    local = timm.create_model(name)
    local.load_state_dict(tensors)
    for got, want in zip(_outputs(fetched, _x()), _outputs(local, _x())):
        assert torch.equal(got, want)
    assert any(path.endswith('/resolve/' + result.commit_id + '/model.safetensors') or 'model.safetensors' in path
               for _, path in hub.requests)  # fmt: skip


def test_default_tag_hf_hub_prefix_and_features(hub, hf_home, tmp_path):
    name = 'hrnetv2_w18_small_v1.cityscapes'
    folder, tensors = _converted(name, tmp_path, seed=1)
    publish(folder, hrnet_zoo.get_record(name).hf_hub_id)
    default = timm.create_model('hrnetv2_w18_small_v1', pretrained=True, cache_dir=hf_home)
    assert default.pretrained_cfg['tag'] == 'cityscapes' and default.upsample_mode == 'bilinear'
    by_id = timm.create_model(f'hf-hub:{hrnet_zoo.HUB_ORG}/{name}', pretrained=True, cache_dir=hf_home)
    for got, want in zip(_outputs(by_id, _x()), _outputs(default, _x())):
        assert torch.equal(got, want)
    backbone = timm.create_model(name, pretrained=True, features_only=True, cache_dir=hf_home).eval()
    with torch.no_grad():
        feats = backbone(_x())
        want = default.forward_intermediates(_x(), intermediates_only=True)
    assert [f.shape[1] for f in feats] == [64, 16, 32, 64, 128]
    assert all(torch.equal(f, w) for f, w in zip(feats, want))


def test_fine_tuning_kwargs_keep_the_backbone(hub, hf_home, tmp_path):
    name = 'hrnetv2_w18_small_v1.cityscapes'
    folder, tensors = _converted(name, tmp_path, seed=2)
    publish(folder, hrnet_zoo.get_record(name).hf_hub_id)
    five = timm.create_model(name, pretrained=True, num_classes=5, cache_dir=hf_home).state_dict()
    assert five['last_layer.3.weight'].shape[0] == 5
    assert torch.equal(five['last_layer.0.weight'], tensors['last_layer.0.weight'])
    assert torch.equal(five['stage4.0.fuse_layers.0.1.0.weight'], tensors['stage4.0.fuse_layers.0.1.0.weight'])
    gray = timm.create_model(name, pretrained=True, in_chans=1, cache_dir=hf_home).state_dict()
    assert gray['conv1.weight'].shape[1] == 1
    assert torch.allclose(gray['conv1.weight'][:, 0], tensors['conv1.weight'].sum(1), atol=1e-6)
    assert torch.equal(gray['last_layer.3.weight'], tensors['last_layer.3.weight'])


def test_imagenet_backbone_weights_leave_a_fresh_head(hub, hf_home, tmp_path):
    name = 'hrnetv1_w18_small_v1.in1k'
    torch.manual_seed(3)
    timm_state = timm.create_model(TIMM_NAMES['w18_small_v1']).state_dict()  # official classification layout
    checkpoint = tmp_path / 'hrnet_w18_small_v1.pth'
    torch.save(timm_state, checkpoint)
    folder = convert_checkpoint(checkpoint, name, tmp_path / 'out')
    tensors = load_file(folder / 'model.safetensors')
    assert not any(k.startswith(('final_layer', 'incre_modules', 'classifier')) for k in tensors)
    assert not any(k.startswith('stage4.0.fuse_layers.1.') for k in tensors)  # V1 fuses into branch 0 only
    publish(folder, hrnet_zoo.get_record(name).hf_hub_id)
    model = timm.create_model(name, pretrained=True, cache_dir=hf_home)
    assert model.upsample_mode == 'nearest' and model.num_classes == 17
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in tensors.items())


def test_pinned_revision_after_a_second_publish(hub, hf_home, tmp_path):
    name = 'hrnetv2p_w18_small_v1.in1k'
    repo_id = hrnet_zoo.get_record(name).hf_hub_id
    first_folder, first = _converted(name, tmp_path, seed=4)
    first_commit = publish(first_folder, repo_id).commit_id
    second_folder, second = _converted(name, tmp_path, seed=5)
    second_commit = publish(second_folder, repo_id).commit_id
    assert first_commit != second_commit
    key = 'conv1.weight'
    latest = timm.create_model(name, pretrained=True, cache_dir=hf_home).state_dict()[key]
    pinned = timm.create_model(f'hf-hub:{repo_id}@{first_commit}', pretrained=True, cache_dir=hf_home)
    overlay = timm.create_model(
        name, pretrained=True, cache_dir=hf_home, pretrained_cfg_overlay=dict(hf_hub_id=f'{repo_id}@{first_commit}')
    )
    assert torch.equal(latest, second[key])
    assert torch.equal(pinned.state_dict()[key], first[key])
    assert torch.equal(overlay.state_dict()[key], first[key])


@pytest.mark.subprocess
def test_offline_with_a_warm_cache(hub, hf_home, tmp_path):
    name = 'hrnetv2_w18_small_v1.cityscapes'
    folder, tensors = _converted(name, tmp_path, seed=6)
    publish(folder, hrnet_zoo.get_record(name).hf_hub_id)
    timm.create_model(name, pretrained=True, cache_dir=hf_home)  # warm the cache
    script = (
        'import hrnet_zoo, timm, sys\n'
        f'm = timm.create_model({name!r}, pretrained=True, cache_dir={str(hf_home)!r})\n'
        "print(float(m.state_dict()['conv1.weight'].sum()))\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE='1', HF_ENDPOINT='http://127.0.0.1:9', PYTHONPATH=str(REPO_ROOT))
    requests_before = len(hub.requests)
    done = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.strip()) == pytest.approx(float(tensors['conv1.weight'].sum()), rel=1e-6)
    assert len(hub.requests) == requests_before  # nothing reached the server


def test_publish_refuses_a_folder_with_pickles_or_missing_files(hub, tmp_path):
    name = 'hrnetv2_w18_small_v1.cityscapes'
    folder, _ = _converted(name, tmp_path, seed=7)
    (folder / 'pytorch_model.bin').write_bytes(b'not allowed')
    with pytest.raises(ValueError, match='pickle'):
        publish(folder, 'acme/refused')
    (folder / 'pytorch_model.bin').unlink()
    (folder / 'README.md').unlink()
    with pytest.raises(ValueError, match='missing README.md'):
        publish(folder, 'acme/refused')
    assert not any('acme/refused' in path for _, path in hub.requests)  # nothing was sent


def test_interrupted_publish_leaves_the_previous_revision(hub, tmp_path):
    name = 'hrnetv2_w18_small_v1.cityscapes'
    repo_id = 'acme/interrupted-publish'
    first_folder, _ = _converted(name, tmp_path, seed=8)
    first = publish(first_folder, repo_id, verify=False).commit_id
    second_folder, _ = _converted(name, tmp_path, seed=9)
    hub.inject('status_500', method='POST', path_contains='/commit/', times=10)
    with pytest.raises(Exception):  # noqa: B017 - huggingface_hub's HTTP error, after its retries
        publish(second_folder, repo_id, verify=False)
    hub.clear_faults()
    assert HfApi().repo_info(repo_id).sha == first
    retried = publish(second_folder, repo_id).commit_id
    assert HfApi().repo_info(repo_id).sha == retried != first


def test_committed_cards_match_the_manifest():
    committed = {p.stem: p.read_text(encoding='utf-8') for p in (REPO_ROOT / 'model_cards').glob('*.md')}
    assert set(committed) == set(hrnet_zoo.MANIFEST)
    stale = [name for name in hrnet_zoo.MANIFEST if committed[name] != str(model_card(name)) + '\n']
    assert not stale, f'regenerate with `hrnet-zoo cards`: {stale}'


def test_card_metadata_and_usage():
    card = model_card('hrnetv2_w48.cityscapes')
    assert card.data.library_name == 'timm' and card.data.license == 'mit'
    assert card.data.eval_results[0].metric_value == 80.9  # the HRNet-OCR release file, the one that downloads
    assert '```python\nimport hrnet_zoo' in card.text
    assert '696.18' in card.text and '65.859' in card.text and 'Wang' in card.text
    config_name = 'hrnetv2_w48.ade20k'
    assert 'align_corners=True' in model_card(config_name).text


def test_converted_config_is_timms(tmp_path):
    folder, _ = _converted('hrnetv2_w18_small_v1.cityscapes', tmp_path, seed=10)
    config = json.loads((folder / 'config.json').read_text())
    assert config['architecture'] == 'hrnetv2_w18_small_v1'
    assert config['num_classes'] == 19
    assert config['model_args']['upsample_mode'] == 'bilinear'
