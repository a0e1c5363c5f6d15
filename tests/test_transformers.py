"""transformers' timm wrapper on models converted and published by the ``hrnet-zoo`` CLI to the loopback Hub.

Once ``hrnet_zoo`` is imported (it registers the architectures with timm), ``AutoModel.from_pretrained`` builds a
``TimmWrapperModel`` and gives timm's outputs:

* ``last_hidden_state`` = ``forward_features``: V1 branch 0 (C channels), V2 / V2p the 15C concatenation, at 1/4;
* ``pooler_output`` = ``forward_head`` of the head without classifier: a map, not a pooled vector (V1: branch 0
  again; V2: the 15C map after conv-BN-ReLU), and for V2p the list of 5 pyramid maps;
* ``hidden_states`` (``output_hidden_states=True``) = ``forward_intermediates``: stem + 4 branches.

``AutoModelForImageClassification`` gives V1 heatmaps / V2 logits as (N, K, H/4, W/4) maps; its ``labels=`` loss
expects (N, K) logits and fails on them; V2p has no classifier and is refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import timm
import torch

import hrnet_zoo
from hrnet_zoo.cli import main as cli

transformers = pytest.importorskip('transformers')

# V2 and V2p with trained heads; V1 from ImageNet backbone weights (timm's hrnet_w18_small layout), head-less here
CASES = ['hrnetv2_w18_small_v1.cityscapes', 'hrnetv1_w18_small_v1.in1k', 'hrnetv2p_w18.coco']


@pytest.fixture(scope='module')
def published(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """``published(name)``: the repo id of a random ``name`` checkpoint in its official layout, converted and
    uploaded with ``hrnet-zoo convert`` and ``hrnet-zoo publish`` (once per module; conftest's Hub server)."""
    repos: dict[str, str] = {}

    def publish(name: str) -> str:
        if name not in repos:
            record = hrnet_zoo.get_record(name)
            tmp = tmp_path_factory.mktemp(name.replace('.', '-'))
            torch.manual_seed(0)
            # ImageNet weights come in the official classification layout, which timm's hrnet_w18_small shares
            source_arch = 'hrnet_w18_small' if name == 'hrnetv1_w18_small_v1.in1k' else record.arch
            source = timm.create_model(source_arch, num_classes=record.num_classes).state_dict()
            torch.save(source, tmp / 'checkpoint.pth')
            folder, repo_id = tmp / 'converted', f'acme/transformers-{name.replace(".", "-")}-{uuid.uuid4().hex[:8]}'
            assert cli(['convert', str(tmp / 'checkpoint.pth'), '--model', name, '--out', str(folder)]) == 0
            # transformers passes num_classes itself, so a config whose model_args repeat it cannot be built
            model_args = json.loads((folder / 'config.json').read_text()).get('model_args', {})
            assert 'num_classes' not in model_args, (
                f'config.json model_args {model_args} repeat num_classes; TimmWrapperModel would raise '
                "TypeError: got multiple values for keyword argument 'num_classes'"
            )
            assert cli(['publish', str(folder), '--repo-id', repo_id, '--no-verify']) == 0
            repos[name] = repo_id
        return repos[name]

    return publish


def _x() -> torch.Tensor:
    return torch.randn(2, 3, 64, 80, generator=torch.Generator().manual_seed(0))


def _equal(got: torch.Tensor | list[torch.Tensor], want: torch.Tensor | list[torch.Tensor]) -> None:
    got, want = (list(v) if isinstance(v, (list, tuple)) else [v] for v in (got, want))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=0)


@pytest.mark.parametrize('name', CASES)
def test_auto_model_matches_timm(hub, hf_home: Path, published: Callable[[str], str], name: str) -> None:
    hub_repo_id = published(name)
    wrapper = transformers.AutoModel.from_pretrained(hub_repo_id, cache_dir=hf_home).eval()
    reference = timm.create_model(f'hf-hub:{hub_repo_id}', pretrained=True, cache_dir=hf_home).eval()
    assert isinstance(wrapper, transformers.TimmWrapperModel)
    assert type(wrapper.timm_model) is type(reference) and wrapper.timm_model.num_classes == 0
    x = _x()
    with torch.no_grad():
        out = wrapper(pixel_values=x, output_hidden_states=True)
        features, intermediates = reference.forward_intermediates(x)
        _equal(out.last_hidden_state, reference.forward_features(x))
        _equal(out.last_hidden_state, features)
        _equal(out.hidden_states, intermediates)
        if isinstance(reference, hrnet_zoo.HRNetV2p):
            _equal(out.pooler_output, reference(x))  # the 5-level pyramid
        else:
            _equal(out.pooler_output, reference.forward_head(features, pre_logits=True))
    assert [h.shape[1] for h in out.hidden_states] == [64, *reference.branch_channels]


def test_image_classification_wrapper_gives_dense_logits(hub, hf_home: Path, published: Callable[[str], str]) -> None:
    hub_repo_id = published(CASES[0])
    model = transformers.AutoModelForImageClassification.from_pretrained(hub_repo_id, cache_dir=hf_home).eval()
    assert isinstance(model, transformers.TimmWrapperForImageClassification)
    reference = timm.create_model(f'hf-hub:{hub_repo_id}', pretrained=True, cache_dir=hf_home).eval()
    x = _x()
    with torch.no_grad():
        logits = model(pixel_values=x).logits
        _equal(logits, reference(x))
    assert logits.shape == (2, reference.num_classes, 16, 20)
    # transformers' classification loss wants (N, num_labels) logits: a dense head cannot use labels=
    with pytest.raises(ValueError, match='Expected input batch_size'):
        model(pixel_values=x, labels=torch.zeros(2, dtype=torch.long))


def test_pyramid_model_has_no_classifier(hub, hf_home: Path, published: Callable[[str], str]) -> None:
    hub_repo_id = published('hrnetv2p_w18.coco')
    with pytest.raises(ValueError, match='no classifier head'):
        transformers.AutoModelForImageClassification.from_pretrained(hub_repo_id, cache_dir=hf_home)


@pytest.mark.subprocess
def test_without_import_hrnet_zoo_the_architecture_is_unknown(tmp_path: Path) -> None:
    """timm has no plugin discovery: a fresh interpreter that skips ``import hrnet_zoo`` cannot build the model."""
    folder = tmp_path / 'local'
    timm.models.save_for_hf(timm.create_model('hrnetv2_w18_small_v1'), folder, safe_serialization=True)
    config = json.loads((folder / 'config.json').read_text())
    config['model_args'].pop('num_classes', None)  # as the CLI writes it (see test_auto_model_matches_timm)
    (folder / 'config.json').write_text(json.dumps(config))
    code = 'import sys, transformers; transformers.AutoModel.from_pretrained(sys.argv[1])'
    proc = subprocess.run([sys.executable, '-c', code, str(folder)], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "ImportError: The model architecture 'hrnetv2_w18_small_v1' is not supported" in proc.stderr
