"""What the two fine-tuning examples share: distributed setup, AMP, the optimizer with layer-wise LR decay,
the training loop with a progress bar, and a replica check.

Runs as one process (``python examples/finetune_segmentation.py``) or under ``torchrun`` (one process per GPU,
or several CPU processes): ``torchrun --nproc_per_node=2 examples/finetune_segmentation.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from timm.optim import param_groups_layer_decay
from timm.scheduler import CosineLRScheduler
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm


@dataclass
class History:
    """What training reports: the metric at step 0 and after each evaluation, and every step's loss."""

    metric_name: str
    steps: list[int] = field(default_factory=list)
    metrics: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)

    def summary(self) -> str:
        first, last, best = self.metrics[0], self.metrics[-1], max(self.metrics)
        return f'{self.metric_name} {first:.3f} -> {last:.3f} (best {best:.3f})'


@dataclass
class Runtime:
    """Where this process runs: its device, its rank and the world size (1 without torchrun)."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def print(self, *args: object) -> None:
        if self.main:
            print(*args, flush=True)


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Training flags both examples take."""
    parser.add_argument('--pretrained', action='store_true', help='start from the pretrained weights of --model')
    parser.add_argument('--img-size', type=int, default=64, help='side of the square synthetic images')
    parser.add_argument('--train-size', type=int, default=256, help='synthetic training images')
    parser.add_argument('--val-size', type=int, default=32, help='synthetic validation images')
    parser.add_argument('--steps', type=int, default=300, help='optimizer steps')
    parser.add_argument('--batch-size', type=int, default=8, help='images per process and step')
    parser.add_argument('--lr', type=float, default=4e-3, help='peak learning rate (of the head)')
    parser.add_argument('--weight-decay', type=float, default=0.01)
    parser.add_argument('--layer-decay', type=float, default=0.9, help="timm's layer-wise LR decay (1 = off)")
    parser.add_argument('--warmup-steps', type=int, default=10)
    parser.add_argument('--eval-every', type=int, default=50, help='validate every N steps (and at the end)')
    parser.add_argument(
        '--grad-checkpointing',
        action=argparse.BooleanOptionalAction,
        default=True,
        help='recompute activations in backward (less memory, about 30%% slower)',
    )
    parser.add_argument(
        '--amp',
        choices=('auto', 'off', 'bf16', 'fp16'),
        default='auto',
        help='mixed precision: auto = bf16 (or fp16 with loss scaling) on CUDA, off on CPU',
    )
    parser.add_argument(
        '--sync-bn',
        action=argparse.BooleanOptionalAction,
        default=None,
        help='SyncBatchNorm under torchrun (default: on for CUDA; PyTorch supports it on GPUs only)',
    )
    parser.add_argument('--backend', default=None, help='torch.distributed backend (default: nccl on CUDA, else gloo)')
    parser.add_argument('--device', default=None, help='default: cuda if available, else cpu')
    parser.add_argument('--workers', type=int, default=0, help='DataLoader workers per process')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--save', default=None, help='write the fine-tuned model with timm.models.save_for_hf here')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def setup(args: argparse.Namespace) -> Runtime:
    """Join the process group when started by torchrun (``WORLD_SIZE`` > 1) and pick this process's device."""
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    device_type = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    device = torch.device(device_type, local_rank) if device_type == 'cuda' else torch.device(device_type)
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    rank = 0
    if world_size > 1:
        backend = args.backend or ('nccl' if device.type == 'cuda' else 'gloo')
        dist.init_process_group(backend)
        rank = dist.get_rank()
    # the same seed everywhere: DDP broadcasts rank 0's initial weights anyway, and the dataset is the same
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    return Runtime(device, rank, world_size, local_rank)


def cleanup(rt: Runtime) -> None:
    if rt.distributed:
        dist.destroy_process_group()


def make_optimizer(model: nn.Module, args: argparse.Namespace) -> tuple[torch.optim.Optimizer, CosineLRScheduler]:
    """AdamW over timm's layer-wise LR decay groups (from the model's ``group_matcher``: the stem gets
    ``lr * layer_decay ** depth``, the new head the full ``lr``), warmup then cosine decay per step."""
    groups = param_groups_layer_decay(model, weight_decay=args.weight_decay, layer_decay=args.layer_decay)
    optimizer = torch.optim.AdamW(groups, lr=args.lr)
    scheduler = CosineLRScheduler(
        optimizer,
        t_initial=args.steps,
        lr_min=args.lr * 0.01,
        warmup_t=args.warmup_steps,
        warmup_lr_init=args.lr * 0.01,
        t_in_epochs=False,
    )
    return optimizer, scheduler


def prepare_model(model: nn.Module, args: argparse.Namespace, rt: Runtime) -> nn.Module:
    """Gradient checkpointing, the device, SyncBatchNorm and DDP (``find_unused_parameters=False``: every HRNet
    parameter gets a gradient, so DDP needs no extra graph traversal)."""
    if args.grad_checkpointing:
        model.set_grad_checkpointing(True)
    model.to(rt.device)
    if not rt.distributed:
        return model
    sync_bn = rt.device.type == 'cuda' if args.sync_bn is None else args.sync_bn
    if sync_bn and rt.device.type != 'cuda':
        # DDP would refuse it anyway: "ValueError: SyncBatchNorm layers only work with GPU modules"
        raise SystemExit('--sync-bn needs CUDA devices: PyTorch implements SyncBatchNorm for GPUs only')
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    elif rt.device.type != 'cuda':
        rt.print('note: SyncBatchNorm is GPU-only in PyTorch; each CPU process normalises with its own batch')
    device_ids = [rt.device.index] if rt.device.type == 'cuda' else None
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=False)


def autocast_settings(args: argparse.Namespace, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, whether to scale the loss)."""
    amp = args.amp
    if amp == 'auto':
        if device.type != 'cuda':
            return None, False
        amp = 'bf16' if torch.cuda.is_bf16_supported() else 'fp16'
    if amp == 'off':
        return None, False
    return (torch.bfloat16, False) if amp == 'bf16' else (torch.float16, True)


def make_loader(dataset: Dataset, batch_size: int, rt: Runtime, train: bool, args: argparse.Namespace) -> DataLoader:
    """A DistributedSampler shards the data over the processes (each sees ``1/world_size`` of it)."""
    sampler = DistributedSampler(dataset, shuffle=train, seed=args.seed, drop_last=train) if rt.distributed else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train and sampler is None,
        sampler=sampler,
        drop_last=train,
        num_workers=args.workers,
        pin_memory=rt.device.type == 'cuda',
    )


def forever(loader: DataLoader) -> Iterator:
    """Batches without end; a new shuffle (and sampler epoch) each pass."""
    epoch = 0
    while True:
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def train(
    model: nn.Module,
    train_loader: DataLoader,
    loss_fn: Callable[[nn.Module, Tensor, Tensor], Tensor],
    evaluate: Callable[[], float],
    metric_name: str,
    args: argparse.Namespace,
    rt: Runtime,
) -> History:
    """The loop: autocast forward, (scaled) backward, step, LR schedule, periodic evaluation.

    ``model`` is the prepared (maybe DDP-wrapped) model; ``loss_fn(model, images, targets)`` runs it;
    ``evaluate()`` returns the validation metric (the same on every process).
    """
    base = model.module if isinstance(model, DistributedDataParallel) else model
    optimizer, scheduler = make_optimizer(base, args)
    amp_dtype, scale_loss = autocast_settings(args, rt.device)
    scaler = torch.amp.GradScaler(rt.device.type, enabled=scale_loss)
    rt.print(
        f'{type(base).__name__} {args.model}: {sum(p.numel() for p in base.parameters()) / 1e6:.2f}M params, '
        f'{len(optimizer.param_groups)} LR groups (layer decay {args.layer_decay}), device {rt.device}, '
        f'{rt.world_size} process(es), amp {amp_dtype or "off"}, grad checkpointing {args.grad_checkpointing}'
    )
    history = History(metric_name, steps=[0], metrics=[evaluate()])
    rt.print(f'step 0: {metric_name} {history.metrics[-1]:.3f}')
    batches = forever(train_loader)
    bar = tqdm(total=args.steps, disable=not rt.main or args.no_progress, dynamic_ncols=True, leave=False)
    smooth = math.nan
    for step in range(1, args.steps + 1):
        model.train()
        images, targets = next(batches)
        images = images.to(rt.device, non_blocking=True)
        targets = targets.to(rt.device, non_blocking=True)
        autocast = (
            torch.autocast(rt.device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
        )
        with autocast:
            loss = loss_fn(model, images, targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step_update(step)
        history.losses.append(loss.item())
        smooth = history.losses[-1] if math.isnan(smooth) else 0.9 * smooth + 0.1 * history.losses[-1]
        bar.update(1)
        bar.set_postfix(loss=f'{smooth:.4f}', lr=f'{optimizer.param_groups[-1]["lr"]:.2e}')
        if step % args.eval_every == 0 or step == args.steps:
            history.steps.append(step)
            history.metrics.append(evaluate())
            msg = f'step {step}: loss {smooth:.4f} {metric_name} {history.metrics[-1]:.3f}'
            if bar.disable:
                rt.print(msg)
            else:
                bar.write(msg)
    bar.close()
    if rt.distributed:
        rt.print(f'replicas identical: {replicas_identical(base)}')
    return history


def replicas_identical(model: nn.Module) -> bool:
    """Whether every process holds bit-identical parameters (collective: call on all ranks)."""
    flat = torch.cat([p.detach().reshape(-1).float() for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    return all(torch.equal(gathered[0], g) for g in gathered[1:])


def all_reduce_sum(t: Tensor, rt: Runtime) -> Tensor:
    if rt.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def save(model: nn.Module, args: argparse.Namespace, rt: Runtime, model_args: dict) -> None:
    """Rank 0 writes ``config.json`` + ``model.safetensors`` (loadable with ``timm.create_model('local-dir:...')``)."""
    if args.save and rt.main:
        from timm.models import save_for_hf

        base = model.module if isinstance(model, DistributedDataParallel) else model
        save_for_hf(base, args.save, model_args=model_args, safe_serialization=True)
        rt.print(f'saved to {args.save}')
