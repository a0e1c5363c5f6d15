"""Helpers several test files share: timm's names of the widths, BatchNorm randomisation, a small pose model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
# timm's classification HRNet of each width, written out here rather than read from our specs (timm's
# `hrnet_w18_small` is the official small_v1)
TIMM_NAMES = {
    'w18_small_v1': 'hrnet_w18_small', 'w18_small_v2': 'hrnet_w18_small_v2', 'w18': 'hrnet_w18', 'w30': 'hrnet_w30',
    'w32': 'hrnet_w32', 'w40': 'hrnet_w40', 'w44': 'hrnet_w44', 'w48': 'hrnet_w48', 'w64': 'hrnet_w64',
}  # fmt: skip


def coco_body_model(input_size: tuple[int, int, int] = (3, 64, 48)) -> nn.Module:
    """A random hrnetv1_w18_small_v1 that reads as the COCO body tag ``hrnetv1_w32.coco_256x192`` (17 joints, their
    flip pairs, a person dataset), cropping ``input_size``: the tag's record drives the tasks, the width keeps them
    quick."""
    import timm

    model = timm.create_model('hrnetv1_w18_small_v1').eval()
    model.pretrained_cfg = dict(model.pretrained_cfg, architecture='hrnetv1_w32', tag='coco_256x192',
                                input_size=input_size)  # fmt: skip
    return model


def randomize_batchnorm(
    model: nn.Module,
    *,
    seed: int = 0,
    gain: tuple[float, float] | None = (0.5, 1.5),
    shift: float = 0.1,
    mean: float = 0.1,
    var: tuple[float, float] = (0.5, 2.0),
) -> nn.Module:
    """Give every BatchNorm2d non-trivial statistics (and, with ``gain``, affine terms), so that equivalence and
    folding tests see more than identity BNs. ``gain`` below 1 keeps deep random activations O(1); None leaves the
    affine terms alone. Returns ``model``."""
    generator = torch.Generator().manual_seed(seed)

    def uniform(n: int, low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=generator) * mean)
                m.running_var.copy_(uniform(n, *var))
                if gain is not None and m.affine:
                    m.weight.copy_(uniform(n, *gain))
                    m.bias.copy_(torch.randn(n, generator=generator) * shift)
    return model


def offline_tensor_sum(name: str, key: str, cache_dir: Path) -> float:
    """In a fresh process with HF_HUB_OFFLINE=1 and no reachable endpoint: the float64 sum of tensor ``key`` of
    ``timm.create_model(name, pretrained=True, cache_dir=cache_dir)``, so from the warm cache only."""
    script = (
        'import hrnet_zoo, timm\n'
        f'm = timm.create_model({name!r}, pretrained=True, cache_dir={str(cache_dir)!r})\n'
        f'print(float(m.state_dict()[{key!r}].double().sum()))\n'
    )
    env = dict(os.environ, HF_HUB_OFFLINE='1', HF_ENDPOINT='http://127.0.0.1:9', PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return float(done.stdout.strip())
