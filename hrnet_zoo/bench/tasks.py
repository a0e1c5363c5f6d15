"""``hrnet-zoo bench --suite tasks``: what :mod:`hrnet_zoo.tasks` costs around the forward pass.

Three rows: ``segment`` of a 1024x2048 image at one scale (HRNetV2), returning the class ids; the same call with
its full-size probabilities read (computed on first access: 19 floats a pixel); and ``estimate_pose`` of 10 boxes
with the flip test (HRNetV1 at its tag's crop size). Each call runs with the model wrapped so its forward is timed
apart; the time outside it (decoding the image, normalising, resizing, cropping, upsampling, decoding heatmaps) is
reported as a ratio to the forward, medians over the repeats.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import timm
import torch
from PIL import Image
from torch import Tensor, nn

from .. import models  # noqa: F401  (registers the architectures that timm.create_model builds here)
from ..data.keypoints import COCO_KEYPOINTS, KEYPOINT_SETS
from ..tasks import estimate_pose, segment
from .harness import machine_info

__all__ = ['SUITE', 'TimedForward', 'run']

SUITE = 'tasks'


class TimedForward(nn.Module):
    """The model, with the wall time of each forward recorded; carries the attributes tasks reads."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.head = model.head
        self.pretrained_cfg = model.pretrained_cfg
        self.head_align_corners = model.head_align_corners
        self.num_classes = model.num_classes
        self.seconds = 0.0

    def forward(self, x: Tensor) -> Tensor:
        t0 = time.perf_counter()
        out = self.model(x)
        self.seconds += time.perf_counter() - t0
        return out


def _measure(call: Callable[[], Any], timed: TimedForward, repeats: int, warmup: int) -> dict[str, Any]:
    totals, forwards = [], []
    for r in range(warmup + repeats):
        timed.seconds = 0.0
        t0 = time.perf_counter()
        call()
        total = time.perf_counter() - t0
        if r >= warmup:
            totals.append(total)
            forwards.append(timed.seconds)
    outside = [t - f for t, f in zip(totals, forwards)]
    return dict(total_ms=statistics.median(totals) * 1e3, forward_ms=statistics.median(forwards) * 1e3,
                outside_ms=statistics.median(outside) * 1e3,
                outside_vs_forward=statistics.median(o / f for o, f in zip(outside, forwards)),
                times_ms=[round(t * 1e3, 1) for t in totals])  # fmt: skip


def _image(height: int, width: int) -> Image.Image:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, 'RGB')


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats, warmup = (min(args.repeats, 2), min(args.warmup, 1)) if args.quick else (args.repeats, args.warmup)
    info = machine_info()
    print(f'CPU: {info["cpu"]}, {info["cores"]} cores, torch threads {info["torch_threads"]}; torch {info["torch"]}')
    seg_size = (128, 256) if args.quick else (1024, 2048)
    seg = TimedForward(timm.create_model(f'hrnetv2_{args.width}').eval())
    seg_image = _image(*seg_size)
    # the COCO crop (256x192) and joints whatever the width's default tag: the cost does not depend on the weights
    pose = TimedForward(
        timm.create_model(f'hrnetv1_{args.width}', pretrained_cfg_overlay=dict(input_size=(3, 256, 192))).eval()
    )
    joints = KEYPOINT_SETS[COCO_KEYPOINTS]
    pose_image = _image(480, 640)
    rng = np.random.default_rng(1)
    boxes = [[float(rng.uniform(0, 400)), float(rng.uniform(0, 200)), float(rng.uniform(60, 200)),
              float(rng.uniform(120, 260))] for _ in range(10)]  # fmt: skip
    rows = [
        dict(row=f'segment {seg_size[0]}x{seg_size[1]}, 1 scale, hrnetv2_{args.width}',
             **_measure(lambda: segment(seg, seg_image), seg, repeats, warmup)),
        dict(row='  the same, reading .probabilities (full size)',
             **_measure(lambda: segment(seg, seg_image).probabilities, seg, repeats, warmup)),
        dict(row=f'estimate_pose 10 boxes + flip, hrnetv1_{args.width} {pose.pretrained_cfg["input_size"][1:]}',
             **_measure(lambda: estimate_pose(pose, pose_image, boxes, joints=joints), pose, repeats, warmup)),
    ]  # fmt: skip
    print(f'{"row":<58} {"total ms":>9} {"forward ms":>11} {"outside ms":>11} {"outside/forward":>16}')
    for r in rows:
        print(f'{r["row"]:<58} {r["total_ms"]:>9.1f} {r["forward_ms"]:>11.1f} {r["outside_ms"]:>11.1f} '
              f'{100 * r["outside_vs_forward"]:>15.1f}%')  # fmt: skip
    print(f'medians of {repeats} repeats (+{warmup} warm-up); outside = total - forward, per call; batch 1 image')
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(machine=info, rows=rows), indent=1))
        print(f'wrote {args.json}')
    return 0
