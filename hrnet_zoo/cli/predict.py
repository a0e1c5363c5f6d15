"""``hrnet-zoo predict``: segmentation or pose of images, folders, globs, videos and webcams, drawn, with the answers
as JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..tasks.predict import PICTURE_FORMATS, predict_files

SHOWN = 10  # written files named one per line; more are counted


def _box(text: str) -> tuple[float, float, float, float]:
    try:
        x, y, w, h = (float(v) for v in text.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected x,y,w,h (four numbers), got {text!r}') from None
    return x, y, w, h


def _cmd_predict(args: argparse.Namespace) -> int:
    try:
        summary = predict_files(
            args.sources,
            args.model,
            args.out,
            json_path=args.json,
            weights=args.weights,
            boxes=args.boxes,
            scales=args.scales,
            flip=args.flip,
            crop_size=args.crop_size,
            detector=args.detector,
            score_threshold=args.score_threshold,
            max_people=args.max_people,
        )
    except ImportError as err:  # PyAV missing for a video: its message names the extra to install
        raise ValueError(str(err)) from None
    pictures = [p for p in summary.written if p != summary.json]
    for path in pictures if len(pictures) <= SHOWN else []:
        print(f'wrote {path}')
    if len(pictures) > SHOWN:
        print(f'wrote {len(pictures)} files in {args.out}')
    if summary.json is not None:
        print(f'wrote {summary.json}')
    print(summary.line())
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('predict', help='segmentation or pose of images, folders, videos or a webcam, drawn, with JSON')
    p.add_argument(
        'sources',
        nargs='+',
        metavar='SRC',
        help="image files, folders of images, glob patterns ('shots/*.jpg'), video files, or a webcam index (0)",
    )
    p.add_argument('--model', required=True, help='<arch>.<tag> of a segmentation or pose model')
    p.add_argument(
        '--weights',
        type=Path,
        default=None,
        help="a folder written by convert, or a model.safetensors (default: the tag's Hub weights)",
    )
    p.add_argument(
        '--boxes',
        type=_box,
        nargs='+',
        default=None,
        metavar='X,Y,W,H',
        help='person boxes in image pixels, the same for every frame (pose; default: the person detector, or the '
        'whole image for faces, hands and animals)',
    )
    p.add_argument(
        '--detector',
        default=None,
        metavar='NAME',
        help='person pose: the torchvision detection model that finds the people (e.g. fasterrcnn_resnet50_fpn_v2)',
    )
    p.add_argument('--score-threshold', type=float, default=None, help='person pose: the lowest detector box score')
    p.add_argument('--max-people', type=int, default=None, help='person pose: at most this many people per frame')
    p.add_argument('--scales', type=float, nargs='+', default=[1.0], help='segmentation test scales (default: 1)')
    p.add_argument('--flip', action='store_true', help='flip testing')
    p.add_argument(
        '--crop-size',
        type=int,
        nargs=2,
        default=None,
        metavar=('H', 'W'),
        help='segmentation: the official sliding window (default: each scaled image whole)',
    )
    p.add_argument(
        '--out',
        type=Path,
        required=True,
        help=f'one picture ({", ".join(PICTURE_FORMATS)}) for one image; else a folder, made if missing: a picture '
        'per image, <stem>.mp4 per video, JSON',
    )
    p.add_argument(
        '--json',
        type=Path,
        default=None,
        help='write the answers here (default for a folder --out: keypoints.json or segmentation.json in it)',
    )
    p.set_defaults(func=_cmd_predict)
