"""Person pose on a video, frame by frame: frames per second and where the time goes (the person detector, the pose
model's forward passes, the rest: decoding the frame, crops, heatmap decoding), medians over frames, in one process.

With no ``--video`` a short synthetic clip is made with PyAV: stick figures walking across a grey floor. No download
is possible on a sealed machine: ``--no-pretrained`` runs the pose model with random weights, and a detector whose
weights cannot be fetched runs with random weights (its time is measured on every frame; the pose then runs on the
synthetic figures' boxes, or the whole frame for a ``--video``), which the output says.

    python benchmarks/video_pose.py --no-pretrained                  # ~8 frames of 240x320, well under a minute
    python benchmarks/video_pose.py --no-pretrained --small --save   # 120x160; JSON to benchmarks/results/<cpu>_<isa>/
    python benchmarks/video_pose.py --video walk.mp4 --model hrnetv1_w32.coco_256x192 --frames 50
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import av  # noqa: E402
import numpy as np  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from machine import cpu_kind, cpu_name, isa_flags  # noqa: E402  (benchmarks/machine.py)
from PIL import Image, ImageDraw  # noqa: E402

import hrnet_zoo  # noqa: E402, F401 (registers the models)
from hrnet_zoo.files import write_text_atomically  # noqa: E402
from hrnet_zoo.tasks.detect import DEFAULT_DETECTOR, PersonDetector  # noqa: E402
from hrnet_zoo.tasks.sources import read_source  # noqa: E402
from hrnet_zoo.tasks.stream import predict_stream  # noqa: E402

HERE = Path(__file__).resolve().parent


def figure_boxes(index: int, height: int, width: int) -> list[tuple[float, float, float, float]]:
    """The x, y, w, h of the two stick figures in frame ``index``."""
    h = 0.8 * height
    w = 0.3 * h
    boxes = []
    for k, speed in enumerate((0.02, -0.015)):
        x = ((0.15 + 0.5 * k + speed * index) % 0.8) * width
        boxes.append((x, 0.1 * height, w, h))
    return boxes


def synthetic_video(path: Path, frames: int, height: int, width: int, fps: int = 15) -> None:
    """Stick figures (head, body, swinging arms and legs) walking over grey, encoded with PyAV."""
    with av.open(str(path), 'w') as container:
        stream = container.add_stream('mpeg4', rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, 'yuv420p'
        for i in range(frames):
            picture = Image.new('RGB', (width, height), (110, 110, 110))
            pen = ImageDraw.Draw(picture)
            for x, y, w, h in figure_boxes(i, height, width):
                cx, swing, line = x + w / 2, w * 0.4 * np.sin(i / 2), max(2, int(w / 8))
                pen.ellipse([cx - w / 5, y, cx + w / 5, y + w / 2.5], fill=(230, 190, 160))
                hip, neck = y + 0.55 * h, y + w / 2.5
                pen.line([cx, neck, cx, hip], fill=(40, 60, 160), width=line * 2)
                for sign in (1, -1):
                    pen.line([cx, neck + 0.1 * h, cx + sign * swing, neck + 0.35 * h], fill=(230, 190, 160), width=line)
                    pen.line([cx, hip, cx + sign * swing, y + h], fill=(30, 30, 30), width=line)
            frame = av.VideoFrame.from_ndarray(np.asarray(picture), format='rgb24')
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


class RandomDetector:
    """torchvision's detector with random weights: its forward is timed like a real one's, and the boxes given back
    are ``boxes_of(frame index)`` (the synthetic figures', or the whole frame), since random boxes mean nothing."""

    def __init__(self, name: str, boxes_of) -> None:
        self.model = PersonDetector(name, pretrained=False).model
        self.boxes_of, self.calls = boxes_of, 0

    def __call__(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            self.model([pixels])
        boxes = torch.tensor(self.boxes_of(self.calls, *pixels.shape[-2:]), dtype=torch.float64)
        self.calls += 1
        return boxes, torch.ones(len(boxes))


def build_detector(name: str, boxes_of, pretrained: bool) -> tuple[object, str]:
    """The person detector and what its weights are."""
    if pretrained:
        try:
            detector = PersonDetector(name)
            detector(torch.zeros(3, 64, 64))  # built (and its weights fetched) now, not inside the timed loop
            return detector, 'pretrained (COCO)'
        except (OSError, ValueError, RuntimeError) as err:
            print(f'detector {name}: its weights cannot be fetched ({err}); random weights instead')
    return RandomDetector(name, boxes_of), 'random weights (no download); the pose runs on known boxes'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--video', type=Path, help='a video to read (default: a synthetic clip)')
    parser.add_argument('--model', default='hrnetv1_w32', help='pose <arch>[.<tag>] (default: hrnetv1_w32)')
    parser.add_argument('--no-pretrained', action='store_true', help='random pose weights (nothing downloaded)')
    parser.add_argument('--detector', default=DEFAULT_DETECTOR, help='a torchvision detection model name')
    parser.add_argument('--no-pretrained-detector', action='store_true', help='random detector weights')
    parser.add_argument('--frames', type=int, default=8, help='frames of the synthetic clip, or read of --video')
    parser.add_argument('--size', type=int, nargs=2, default=(240, 320), metavar=('H', 'W'))
    parser.add_argument('--small', action='store_true', help='a 120x160 clip (the quickest run)')
    parser.add_argument('--warmup', type=int, default=1, help='first frames left out of the medians')
    parser.add_argument('--flip', action='store_true', help='the flip test (twice the pose forward)')
    parser.add_argument('--threads', type=int, default=None, help='torch threads (default: torch default)')
    parser.add_argument('--save', action='store_true', help='write benchmarks/results/<cpu-kind>/video_pose.json')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    height, width = (120, 160) if args.small else args.size
    with tempfile.TemporaryDirectory() as tmp:
        video = args.video
        if video is None:
            video = Path(tmp) / 'walk.mp4'
            synthetic_video(video, args.frames, height, width)
            boxes_of = figure_boxes
        else:
            boxes_of = lambda index, h, w: [(0.0, 0.0, float(w), float(h))]  # noqa: E731
        model = timm.create_model(args.model, pretrained=not args.no_pretrained).eval()
        cfg = model.pretrained_cfg
        name = f'{cfg["architecture"]}.{cfg["tag"]}'
        detector, detector_weights = build_detector(args.detector, boxes_of, not args.no_pretrained_detector)
        rows, people = [], 0
        start = time.perf_counter()
        for answer in predict_stream(model, read_source(video), detector=detector, flip=args.flip):
            rows.append(answer.timings)
            people += len(answer.poses.keypoints)
            if len(rows) >= args.frames:
                break
        wall = time.perf_counter() - start
    timed = rows[args.warmup :] or rows

    def median(part: str) -> float:
        return statistics.median(getattr(t, part) for t in timed)

    result = dict(
        model=name,
        pose_weights='random' if args.no_pretrained else 'pretrained',
        input_size=list(cfg['input_size']),
        detector=args.detector,
        detector_weights=detector_weights,
        video=str(args.video) if args.video else f'synthetic {height}x{width}, 2 stick figures',
        frames=len(rows),
        frames_in_medians=len(timed),
        people=people,
        flip=args.flip,
        median_s=dict(
            detector=median('detector'), forward=median('forward'), rest=median('rest'), total=median('total')
        ),  # fmt: skip
        fps_median=1 / median('total'),
        fps_wall=len(rows) / wall,
        machine=dict(
            cpu=cpu_name(),
            isa=isa_flags(),
            cores=os.cpu_count(),
            torch_threads=torch.get_num_threads(),
            torch=torch.__version__,
            torchvision=torchvision.__version__,
            timm=timm.__version__,
        ),  # fmt: skip
    )
    machine = result['machine']
    print(f'{name} ({result["pose_weights"]} weights) + {args.detector} ({detector_weights})')
    isa = ' '.join(machine['isa']) or 'no AVX2'
    print(f'CPU: {machine["cpu"]} ({isa}), {machine["cores"]} cores, torch {machine["torch"]}, '
          f'{machine["torch_threads"]} threads; {result["video"]}, {len(rows)} frames, {people} people')  # fmt: skip
    print(f'medians over {len(timed)} frames (the first {args.warmup} left out); each part is its own median, so '
          'the parts need not add up to the frame')  # fmt: skip
    total = result['median_s']['total']
    for part in ('detector', 'forward', 'rest'):
        seconds = result['median_s'][part]
        print(f'  {part:9s} {seconds * 1000:8.1f} ms  {100 * seconds / total:5.1f}%')
    print(f'  {"frame":9s} {total * 1000:8.1f} ms  -> {result["fps_median"]:.2f} frames/s '
          f'({result["fps_wall"]:.2f} over the whole run)')  # fmt: skip
    if args.save:
        path = HERE / 'results' / cpu_kind(machine['cpu'], machine['isa']) / 'video_pose.json'
        write_text_atomically(path, json.dumps(result, indent=2) + '\n', make_parents=True)
        print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
