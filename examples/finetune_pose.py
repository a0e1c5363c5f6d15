"""Fine-tune an HRNetV1 pose model on synthetic keypoints and watch PCK rise.

Each image holds a chain of 4 markers (disc, square, cross, ring; each with its own colour, jittered)
joined by a line, on noise. The model gets a new 4-heatmap head and learns Gaussian
heatmaps at 1/4 resolution with the MSE loss of the official pose code. Training uses timm's layer-wise
LR decay over the model's ``group_matcher``, gradient checkpointing, AMP on CUDA, and a progress bar::

    python examples/finetune_pose.py                               # CPU: about 2 minutes
    torchrun --nproc_per_node=2 examples/finetune_pose.py          # DDP: nccl on GPUs, gloo on CPU

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

KEYPOINTS = ('disc', 'square', 'cross', 'ring')
COLOURS = torch.tensor([[0.9, 0.2, 0.2], [0.2, 0.8, 0.3], [0.2, 0.3, 0.9], [0.9, 0.9, 0.2]])  # per keypoint
STRIDE = 4  # HRNetV1 heatmaps are at 1/4 of the input resolution


def render_keypoints(num_images: int, size: int, seed: int) -> tuple[Tensor, Tensor]:
    """Noisy images with a chain of the 4 markers, and the markers' centres (N, 4, 2) as (x, y) pixels."""
    g = torch.Generator().manual_seed(seed)

    def uniform(lo: float, hi: float) -> float:
        return lo + (hi - lo) * torch.rand((), generator=g).item()

    coords = torch.arange(size, dtype=torch.float32) + 0.5
    ys, xs = torch.meshgrid(coords, coords, indexing='ij')
    r = 0.06 * size  # marker radius
    margin = 1.5 * r
    images = torch.empty(num_images, 3, size, size)
    points = torch.empty(num_images, len(KEYPOINTS), 2)
    for i in range(num_images):
        img = torch.rand(3, 1, 1, generator=g) + 0.25 * torch.randn(3, size, size, generator=g)
        # a random walk of 4 points, each step 20-35 % of the image, kept inside the margins
        p = [(uniform(margin, size - margin), uniform(margin, size - margin))]
        for _ in range(len(KEYPOINTS) - 1):
            step, angle = uniform(0.2, 0.35) * size, uniform(0.0, 2 * math.pi)
            x = min(max(p[-1][0] + step * math.cos(angle), margin), size - margin)
            y = min(max(p[-1][1] + step * math.sin(angle), margin), size - margin)
            p.append((x, y))
        line_colour = torch.rand(3, 1, generator=g)
        for (x0, y0), (x1, y1) in zip(p[:-1], p[1:]):
            # distance of every pixel to the segment, a 1.5 px wide line
            vx, vy = x1 - x0, y1 - y0
            t = (((xs - x0) * vx + (ys - y0) * vy) / max(vx * vx + vy * vy, 1e-6)).clamp(0, 1)
            on_line = (xs - x0 - t * vx) ** 2 + (ys - y0 - t * vy) ** 2 <= 0.75**2
            img[:, on_line] = line_colour
        for k, (x, y) in enumerate(p):
            dx, dy = xs - x, ys - y
            if k == 0:
                inside = dx**2 + dy**2 <= r**2
            elif k == 1:
                inside = (dx.abs() <= 0.85 * r) & (dy.abs() <= 0.85 * r)
            elif k == 2:
                inside = ((dx.abs() <= r) & (dy.abs() <= 0.3 * r)) | ((dy.abs() <= r) & (dx.abs() <= 0.3 * r))
            else:
                inside = ((dx**2 + dy**2) <= r**2) & ((dx**2 + dy**2) >= (0.55 * r) ** 2)
            img[:, inside] = (COLOURS[k] + 0.15 * torch.randn(3, generator=g)).view(3, 1)
        images[i] = (img - 0.5) / 0.3
        points[i] = torch.tensor(p)
    return images, points


def heatmaps(points: Tensor, size: int, sigma: float = 1.5) -> Tensor:
    """Gaussian targets (N, K, H/4, W/4): cell j covers pixels [4j, 4j + 4), so its centre is at 4j + 2."""
    cells = math.ceil(size / STRIDE)
    grid = torch.arange(cells, dtype=points.dtype, device=points.device)
    cx = points[..., 0, None] / STRIDE - 0.5  # (N, K, 1), in cell units
    cy = points[..., 1, None] / STRIDE - 0.5
    gx = torch.exp(-((grid - cx) ** 2) / (2 * sigma**2))  # (N, K, W)
    gy = torch.exp(-((grid - cy) ** 2) / (2 * sigma**2))  # (N, K, H)
    return gy[..., :, None] * gx[..., None, :]


def decode(maps: Tensor) -> Tensor:
    """Heatmap argmax, shifted a quarter cell toward the higher neighbour, to (x, y) pixels (N, K, 2)."""
    n, k, h, w = maps.shape
    flat = maps.float().flatten(2).argmax(-1)
    y, x = (flat // w), (flat % w)
    m = maps.float().flatten(0, 1)
    idx = torch.arange(n * k, device=maps.device)
    yf, xf = y.flatten(), x.flatten()
    right = m[idx, yf, (xf + 1).clamp(max=w - 1)] - m[idx, yf, (xf - 1).clamp(min=0)]
    down = m[idx, (yf + 1).clamp(max=h - 1), xf] - m[idx, (yf - 1).clamp(min=0), xf]
    px = x.float() + 0.25 * torch.sign(right).view(n, k)
    py = y.float() + 0.25 * torch.sign(down).view(n, k)
    return torch.stack([(px + 0.5) * STRIDE, (py + 0.5) * STRIDE], dim=-1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default='hrnetv1_w18_small_v1', help='an hrnetv1_<width> model (or name.tag)')
    parser.add_argument('--pck-threshold', type=float, default=0.05, help='PCK radius as a fraction of the image')
    _common.add_common_args(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> _common.History:
    args = parse_args(argv)
    rt = _common.setup(args)
    model_args = dict(num_classes=len(KEYPOINTS))
    model = timm.create_model(args.model, pretrained=args.pretrained, **model_args)
    if not isinstance(model, hrnet_zoo.HRNetV1):
        raise SystemExit(f'--model must be an HRNetV1 pose model (hrnetv1_<width>), got {args.model}')
    # the official pose code's head init: tiny heatmaps at first, so the MSE starts near the targets' scale
    nn.init.normal_(model.final_layer.weight, std=1e-3)
    nn.init.zeros_(model.final_layer.bias)
    prepared = _common.prepare_model(model, args, rt)

    train_set = TensorDataset(*render_keypoints(args.train_size, args.img_size, seed=args.seed))
    val_set = TensorDataset(*render_keypoints(args.val_size, args.img_size, seed=args.seed + 10**6))
    train_loader = _common.make_loader(train_set, args.batch_size, rt, train=True, args=args)
    val_loader = _common.make_loader(val_set, args.batch_size, rt, train=False, args=args)

    def loss_fn(net: nn.Module, images: Tensor, points: Tensor) -> Tensor:
        # the official JointsMSELoss (all joints visible): 0.5 * mean squared error per heatmap
        return 0.5 * F.mse_loss(net(images).float(), heatmaps(points, images.shape[-1]))

    @torch.no_grad()
    def evaluate() -> float:
        """PCK: the fraction of keypoints found within ``pck_threshold * img_size`` pixels."""
        model.eval()
        hits = torch.zeros(2, dtype=torch.float64, device=rt.device)  # (correct, total)
        for images, points in val_loader:
            images, points = images.to(rt.device), points.to(rt.device)
            dist = (decode(model(images)) - points).norm(dim=-1)
            hits += torch.stack([(dist <= args.pck_threshold * args.img_size).sum(), torch.tensor(dist.numel())])
        hits = _common.all_reduce_sum(hits, rt)
        return (hits[0] / hits[1]).item()

    history = _common.train(prepared, train_loader, loss_fn, evaluate, f'PCK@{args.pck_threshold}', args, rt)
    rt.print(history.summary())
    _common.save(prepared, args, rt, model_args)
    _common.cleanup(rt)
    return history


if __name__ == '__main__':
    main()
