"""Fine-tune an HRNetV2 segmentation model on a synthetic dataset (shapes on noise) and watch mIoU rise.

The model gets a new head for 4 classes (background, disc, square, triangle; each class has its own
colour, jittered, so that a small model learns it in minutes on a CPU). Training uses timm's layer-wise
LR decay over the model's ``group_matcher``, gradient checkpointing, AMP on CUDA, and a progress bar::

    python examples/finetune_segmentation.py                      # CPU: about 2 minutes
    python examples/finetune_segmentation.py --model hrnetv2_w18 --pretrained --steps 1000
    torchrun --nproc_per_node=2 examples/finetune_segmentation.py  # DDP: nccl on GPUs, gloo on CPU

Multi-node: run the same command on every node with
``--nnodes=N --node_rank=<0..N-1> --rdzv_backend=c10d --rdzv_endpoint=<host of node 0>:29500``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

import hrnet_zoo  # noqa: E402,F401  (registers the hrnet* models with timm)

CLASSES = ('background', 'disc', 'square', 'triangle')
COLOURS = torch.tensor([[0.0, 0.0, 0.0], [0.9, 0.2, 0.2], [0.2, 0.8, 0.3], [0.2, 0.3, 0.9]])  # per shape class


def render_shapes(num_images: int, size: int, seed: int) -> tuple[Tensor, Tensor]:
    """``num_images`` noisy images with 1-3 rotated shapes each (class colour + jitter), and their label maps.

    Returns images (N, 3, size, size), normalised to about zero mean, and labels (N, size, size) int64.
    """
    g = torch.Generator().manual_seed(seed)

    def uniform(lo: float, hi: float) -> float:
        return lo + (hi - lo) * torch.rand((), generator=g).item()

    coords = torch.arange(size, dtype=torch.float32) + 0.5
    ys, xs = torch.meshgrid(coords, coords, indexing='ij')
    images = torch.empty(num_images, 3, size, size)
    labels = torch.zeros(num_images, size, size, dtype=torch.long)
    for i in range(num_images):
        img = torch.rand(3, 1, 1, generator=g) + 0.25 * torch.randn(3, size, size, generator=g)
        for _ in range(int(torch.randint(1, 4, (), generator=g))):
            cls = int(torch.randint(1, len(CLASSES), (), generator=g))
            r = uniform(0.1, 0.22) * size
            cx, cy, angle = uniform(r, size - r), uniform(r, size - r), uniform(0.0, 2 * math.pi)
            dx, dy = xs - cx, ys - cy
            if cls == 1:  # disc
                inside = dx**2 + dy**2 <= r**2
            elif cls == 2:  # square, rotated
                u = dx * math.cos(angle) + dy * math.sin(angle)
                v = -dx * math.sin(angle) + dy * math.cos(angle)
                inside = (u.abs() <= 0.8 * r) & (v.abs() <= 0.8 * r)
            else:  # equilateral triangle with circumradius r: three half-planes
                inside = torch.ones_like(dx, dtype=torch.bool)
                for k in range(3):
                    a = angle + 2 * math.pi * k / 3
                    inside &= dx * math.cos(a) + dy * math.sin(a) <= r / 2
            colour = (COLOURS[cls] + 0.15 * torch.randn(3, generator=g)).view(3, 1)
            img[:, inside] = colour + 0.1 * torch.randn(3, int(inside.sum()), generator=g)
            labels[i][inside] = cls
        images[i] = (img - 0.5) / 0.3
    return images, labels


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default='hrnetv2_w18_small_v1', help='an hrnetv2_<width> model (or name.tag)')
    _common.add_common_args(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> _common.History:
    args = parse_args(argv)
    rt = _common.setup(args)
    ocr = args.model.startswith('hrnetv2_ocr_')
    # OCR: training returns (logits, aux_logits), for the official 1.0 x main + 0.4 x aux loss
    model_args = dict(num_classes=len(CLASSES), **({'aux_output': True} if ocr else {}))
    model = timm.create_model(args.model, pretrained=args.pretrained, **model_args)
    if not isinstance(model, (hrnet_zoo.HRNetV2, hrnet_zoo.HRNetV2OCR)):
        raise SystemExit(
            f'--model must be an HRNetV2 segmentation model (hrnetv2_<width> or hrnetv2_ocr_<width>), got {args.model}'
        )
    prepared = _common.prepare_model(model, args, rt)

    train_set = TensorDataset(*render_shapes(args.train_size, args.img_size, seed=args.seed))
    val_set = TensorDataset(*render_shapes(args.val_size, args.img_size, seed=args.seed + 10**6))
    train_loader = _common.make_loader(train_set, args.batch_size, rt, train=True, args=args)
    val_loader = _common.make_loader(val_set, args.batch_size, rt, train=False, args=args)

    def loss_fn(net: nn.Module, images: Tensor, labels: Tensor) -> Tensor:
        # logits come at 1/4 resolution; compare them with the labels at full resolution, as HRNet does
        out = net(images)
        weighted = zip(out, (1.0, 0.4)) if isinstance(out, tuple) else [(out, 1.0)]
        return sum(
            weight
            * F.cross_entropy(
                F.interpolate(logits, size=labels.shape[-2:], mode='bilinear', align_corners=False).float(), labels
            )
            for logits, weight in weighted
        )

    @torch.no_grad()
    def evaluate() -> float:
        """mIoU over the validation set (every process scores its shard; confusion matrices are summed)."""
        model.eval()
        n = len(CLASSES)
        confusion = torch.zeros(n * n, dtype=torch.float64, device=rt.device)
        for images, labels in val_loader:
            images, labels = images.to(rt.device), labels.to(rt.device)
            logits = F.interpolate(model(images), size=labels.shape[-2:], mode='bilinear', align_corners=False)
            confusion += torch.bincount(labels.flatten() * n + logits.argmax(1).flatten(), minlength=n * n)
        confusion = _common.all_reduce_sum(confusion, rt).view(n, n)
        union = confusion.sum(0) + confusion.sum(1) - confusion.diag()
        iou = confusion.diag() / union.clamp(min=1)
        return iou[union > 0].mean().item()

    history = _common.train(prepared, train_loader, loss_fn, evaluate, 'mIoU', args, rt)
    rt.print(history.summary())
    _common.save(prepared, args, rt, model_args)
    _common.cleanup(rt)
    return history


if __name__ == '__main__':
    main()
