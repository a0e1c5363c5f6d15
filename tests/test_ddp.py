"""DistributedDataParallel with 2 CPU processes (gloo): replicas stay identical with find_unused_parameters=False.

DDP without ``find_unused_parameters`` raises in the step after one where a parameter got no gradient, so these
runs also prove every parameter of V1, V2, V2p, V2-OCR and features_only models takes part in the loss (and that
frozen stages, which have no gradient by design, need no find_unused_parameters either).
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
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

import hrnet_zoo  # noqa: F401

pytestmark = pytest.mark.subprocess  # DDP workers: mp.spawn and torchrun

ROOT = Path(__file__).resolve().parents[1]
WORLD_SIZE = 2
STEPS = 3

# name -> (model, create_model kwargs, wrap in DDP); 'control' trains without DDP, so its replicas must differ
CASES: dict[str, tuple[str, dict, bool]] = {
    'v1': ('hrnetv1_w18_small_v1', dict(num_classes=5), True),
    'v2': ('hrnetv2_w18_small_v1', dict(num_classes=3), True),
    'v2p': ('hrnetv2p_w18_small_v1', {}, True),
    'v2_features': ('hrnetv2_w18_small_v1', dict(features_only=True), True),
    'v1_features_1234': ('hrnetv1_w18_small_v1', dict(features_only=True, out_indices=(1, 2, 3, 4)), True),
    # the auxiliary logits in the loss, as the official 0.4 x aux + 1.0 x main training does
    'v2_ocr_aux': ('hrnetv2_ocr_w18_small_v1', dict(num_classes=3, aux_output=True), True),
    'v2_frozen': ('hrnetv2_w18_small_v1', dict(num_classes=3, frozen_stages=2, norm_eval=True), True),
    'control': ('hrnetv2_w18_small_v1', dict(num_classes=3), False),
}


def _loss(out: Tensor | list[Tensor]) -> Tensor:
    outs = out if isinstance(out, (list, tuple)) else [out]
    return sum((o.float() ** 2).mean() for o in outs)


def _flat_params(model: nn.Module) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _worker(rank: int, store: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{store}', rank=rank, world_size=WORLD_SIZE)
    results = {}
    for case, (name, kwargs, use_ddp) in CASES.items():
        torch.manual_seed(100 + rank)  # different initial weights: DDP must broadcast rank 0's
        model = timm.create_model(name, **kwargs)
        if case == 'v2':
            model.set_grad_checkpointing(True)
        net = DistributedDataParallel(model, find_unused_parameters=False) if use_ddp else model
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        start = _flat_params(model).clone()
        for step in range(STEPS):
            gen = torch.Generator().manual_seed(1000 * rank + step)  # each replica its own data
            x = torch.randn(2, 3, 64, 72, generator=gen)
            optimizer.zero_grad()
            _loss(net(x)).backward()
            missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
            assert not missing, f'{case}: no gradient for {missing[:5]}'
            optimizer.step()
        flat = _flat_params(model)
        gathered = [torch.empty_like(flat) for _ in range(WORLD_SIZE)]
        dist.all_gather(gathered, flat)
        results[case] = dict(
            identical=all(torch.equal(gathered[0], g) for g in gathered[1:]),
            changed=not torch.equal(start, flat),
        )
    dist.destroy_process_group()
    (Path(out_dir) / f'rank{rank}.json').write_text(json.dumps(results))


def test_ddp_replicas_identical(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / 'store'), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    results = [json.loads((tmp_path / f'rank{r}.json').read_text()) for r in range(WORLD_SIZE)]
    assert results[0] == results[1]
    for case, (_, _, use_ddp) in CASES.items():
        assert results[0][case]['changed'], f'{case}: the weights did not train'
        # the control proves the comparison can fail: without DDP, different data -> different weights
        assert results[0][case]['identical'] == use_ddp, f'{case}: replicas identical={results[0][case]}'


def test_sync_batchnorm_conversion() -> None:
    """convert_sync_batchnorm swaps every BatchNorm2d and keeps the state dict (SyncBatchNorm itself only trains
    on GPUs, so the CPU DDP runs above use per-process BatchNorm)."""
    torch.manual_seed(0)
    model = timm.create_model('hrnetv2_w18_small_v1', num_classes=3).eval()
    num_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
    keys = list(model.state_dict())
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(model).eval()
    assert sum(isinstance(m, nn.SyncBatchNorm) for m in synced.modules()) == num_bn > 0
    assert not any(type(m) is nn.BatchNorm2d for m in synced.modules())
    assert list(synced.state_dict()) == keys
    with torch.no_grad():
        torch.testing.assert_close(synced(x), expected)


def _torchrun(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')])}
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={WORLD_SIZE}']
    cmd += [str(ROOT / 'examples' / script), '--no-progress', '--device', 'cpu', *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize('script', ['finetune_segmentation.py', 'finetune_pose.py'])
def test_example_under_torchrun(script: str) -> None:
    """The fine-tuning examples run unchanged under torchrun (gloo, DDP, grad checkpointing)."""
    proc = _torchrun(script, '--steps', '3', '--eval-every', '3', '--train-size', '16', '--val-size', '8')
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert '2 process(es)' in proc.stdout
    assert 'replicas identical: True' in proc.stdout, proc.stdout


def test_sync_bn_on_cpu_is_a_clear_error() -> None:
    """PyTorch's SyncBatchNorm trains on GPUs only; the example says so before DDP fails less clearly."""
    sys.path.insert(0, str(ROOT / 'examples'))
    try:
        import _common
    finally:
        sys.path.remove(str(ROOT / 'examples'))
    args = _common.argparse.Namespace(grad_checkpointing=False, sync_bn=True)
    runtime = _common.Runtime(torch.device('cpu'), rank=0, world_size=2)
    with pytest.raises(SystemExit, match='--sync-bn needs CUDA devices'):
        _common.prepare_model(nn.Conv2d(1, 1, 1), args, runtime)
