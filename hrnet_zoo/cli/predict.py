"""``hrnet-zoo predict``: segmentation or pose of images, drawn, with the answer as JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..files import write_atomically
from ..tasks.inputs import load_image
from ..tasks.predict import build_model, check_request, check_task, predict_image


def _box(text: str) -> tuple[float, float, float, float]:
    try:
        x, y, w, h = (float(v) for v in text.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected x,y,w,h (four numbers), got {text!r}') from None
    return x, y, w, h


def _cmd_predict(args: argparse.Namespace) -> int:
    task = check_task(args.model)  # a head predict does not serve is refused before any download
    several = len(args.images) > 1
    if several and not args.out.is_dir():
        raise ValueError(f'with {len(args.images)} images --out must be an existing folder, got {args.out}')
    pictures = [args.out / f'{Path(p).stem}.png' for p in args.images] if several else [args.out]
    for out in [*pictures, *([args.json] if args.json else [])]:
        if not out.parent.is_dir():
            raise FileNotFoundError(f'No such folder for {out}: {out.parent}')
    pixels = [load_image(p) for p in args.images]  # every image is read and every box checked before the model
    for image in pixels:
        check_request(task, image, args.boxes, args.scales, args.crop_size)
    model = build_model(args.model, args.weights)
    entries = []
    results = []
    for path, image in zip(args.images, pixels):
        picture, entry = predict_image(
            model, image, boxes=args.boxes, scales=args.scales, flip=args.flip, crop_size=args.crop_size
        )
        entries.append(dict(image=str(path), **entry))
        results.append(picture)
    for picture, out in zip(results, pictures):  # written only once every image has its answer
        write_atomically(out, lambda tmp, picture=picture: picture.save(tmp, format='PNG'))
        print(f'wrote {out}')
    if args.json:
        text = json.dumps(dict(model=args.model, task=task, images=entries), indent=1)
        write_atomically(args.json, lambda tmp: tmp.write_text(text, encoding='utf-8'))
        print(f'wrote {args.json}')
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('predict', help='segmentation or pose of images, drawn, with the answer as JSON')
    p.add_argument('images', nargs='+', metavar='IMAGE', help='image files (several: --out is a folder)')
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
        help='person boxes in image pixels (pose; default: the whole image)',
    )
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
    p.add_argument('--out', type=Path, required=True, help='the picture (PNG), or a folder for several images')
    p.add_argument('--json', type=Path, default=None, help='write the answer here')
    p.set_defaults(func=_cmd_predict)
