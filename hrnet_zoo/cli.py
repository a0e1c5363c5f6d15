"""``hrnet-zoo``: a thin command line over the package (list, convert, publish, release, cards, demo, predict,
export, bench).

Each subcommand parses its arguments and calls one function of the package. Expected failures (a missing
file, an unknown model, an unreachable Hub) print one line and exit non-zero, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .bench import harness as bench
from .bench import tasks as bench_tasks
from .demo import run_demo
from .export import FORMATS, ExportError, check_export_target, export_model, load_for_export
from .files import write_atomically
from .publish.cards import write_cards
from .publish.client import publish
from .publish.convert import convert_checkpoint
from .publish.release import FAILED, LOCK_NAME, release, summary_table
from .specs import ARCHS
from .stats import arch_stats
from .tasks.inputs import load_image
from .tasks.predict import build_model, check_request, check_task, predict_image
from .weights.manifest import MANIFEST, default_tag


def _input_size(text: str) -> tuple[int, int, int]:
    """``'1024x2048'`` -> ``(3, 1024, 2048)``."""
    try:
        height, width = (int(side) for side in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected HEIGHTxWIDTH such as 1024x2048, got {text!r}') from None
    return 3, height, width


def _cmd_list(args: argparse.Namespace) -> int:
    rows = []
    for arch in ARCHS:
        default = MANIFEST[f'{arch}.{default_tag(arch)}']  # its counts are data: nothing is built or run here
        tags = [r.tag for r in MANIFEST.values() if r.arch == arch]
        params, gflops, size = default.params, default.gflops, default.input_size
        if args.input_size is not None and args.input_size != size:  # counted afresh, on the meta device
            params, gflops, size = arch_stats(default.name, args.input_size)
        rows.append(dict(arch=arch, params_m=params / 1e6, gflops=gflops, input_size=size, tags=tags))
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f'{"architecture":<24} {"params (M)":>10} {"GFLOPs":>9}  {"input":<12} pretrained tags (first = default)')
    for r in rows:
        size = 'x'.join(str(s) for s in r['input_size'][1:])
        print(f'{r["arch"]:<24} {r["params_m"]:>10.3f} {r["gflops"]:>9.2f}  {size:<12} {", ".join(r["tags"])}')
    where = 'the given' if args.input_size else "the default tag's"
    print(f'GFLOPs: conv + linear multiply-adds / 2^30 at {where} input size, as the official tables.')
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    out = convert_checkpoint(args.checkpoint, args.model, args.out)
    print(f'wrote {out}')
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    result = publish(
        args.folder,
        args.repo_id,
        revision=args.revision,
        private=args.private,
        commit_message=args.commit_message,
        verify=not args.no_verify,
    )
    print(f'published {args.repo_id} at {result.commit_id}' + (' (verified)' if result.verified else ''))
    return 0


def _cmd_release(args: argparse.Namespace) -> int:
    results = release(args.folder, args.only, dry_run=args.dry_run, lock_path=args.lock,
                      echo=lambda line: print(line, flush=True))  # fmt: skip
    print(summary_table(results))
    return 1 if any(r.status == FAILED for r in results) else 0


def _cmd_cards(args: argparse.Namespace) -> int:
    paths = write_cards(args.out)
    print(f'wrote {len(paths)} model cards to {args.out}')
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(model=args.model, endpoint=args.endpoint, workdir=args.workdir)


def _cmd_export(args: argparse.Namespace) -> int:
    check_export_target(args.out, args.format)  # before a model is built or fetched
    model = load_for_export(args.model, args.weights)
    result = export_model(model, args.out, args.format)
    batch, h, w = result.check_size
    outputs = ', '.join(result.output_names)
    print(f'wrote {result.path} ({args.format}: dynamic batch, height and width; outputs {outputs}); checked '
          f'against eager PyTorch at {batch}x{h}x{w}: relative error {result.max_relative_error:.1e}')  # fmt: skip
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    return bench_tasks.run(args) if args.suite == bench_tasks.SUITE else bench.run(args)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='hrnet-zoo', description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True)

    p = sub.add_parser('list', help='the 36 architectures with params, GFLOPs and pretrained tags')
    p.add_argument('--json', action='store_true', help='machine-readable output')
    p.add_argument('--input-size', type=_input_size, default=None, metavar='HxW',
                   help="count at this input size (e.g. 1024x2048) instead of each default tag's")  # fmt: skip
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser('convert', help='official checkpoint -> model.safetensors + config.json + README.md')
    p.add_argument('checkpoint', type=Path, help='.pth / .pth.tar / .safetensors file in any supported layout')
    p.add_argument('--model', required=True, help='<arch>.<tag>, e.g. hrnetv2_w48.cityscapes')
    p.add_argument('--out', type=Path, required=True, help='output folder')
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser('publish', help='upload a converted folder to the Hub in one commit, then verify it')
    p.add_argument('folder', type=Path)
    p.add_argument('--repo-id', required=True, help='ORG/NAME')
    p.add_argument('--revision', default=None, help='branch to commit to (default: main)')
    p.add_argument('--private', action='store_true')
    p.add_argument('--commit-message', default=None)
    p.add_argument('--no-verify', action='store_true', help='skip the download-and-compare check')
    p.set_defaults(func=_cmd_publish)

    p = sub.add_parser('release', help='convert, check and publish every manifest tag from a folder of official files')
    p.add_argument('folder', type=Path, metavar='DIR', help='the official checkpoints, by manifest `source.file_name` '
                   '(direct downloads missing there are fetched into it)')  # fmt: skip
    p.add_argument('--only', action='append', default=[], metavar='GLOB', help='<arch>.<tag> glob (repeatable)')
    p.add_argument('--dry-run', action='store_true', help='say what would be published; upload nothing')
    p.add_argument('--lock', type=Path, default=None, help=f'the sha256 lock file (default: DIR/{LOCK_NAME})')
    p.set_defaults(func=_cmd_release)

    p = sub.add_parser('cards', help='regenerate the model cards of every manifest entry')
    p.add_argument('--out', type=Path, default=Path('model_cards'))
    p.set_defaults(func=_cmd_cards)

    p = sub.add_parser('demo', help='the offline main job: make, convert, publish, fetch and check a checkpoint')
    p.add_argument('--model', default='hrnetv2_w18_small_v1.cityscapes', help='<arch>.<tag> to run it for')
    p.add_argument('--endpoint', default=None, help='a Hub to publish to (default: a local one started for the run)')
    p.add_argument('--workdir', type=Path, default=None, help='where to keep the files (default: a temp folder)')
    p.set_defaults(func=_cmd_demo)

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

    p = sub.add_parser('export', help='ONNX or OpenVINO IR, dynamic in size, checked against eager PyTorch')
    p.add_argument(
        'model', help='<arch> (random weights) or <arch>.<tag> (its Hub weights), e.g. hrnetv2_w48.cityscapes'
    )
    p.add_argument('--format', choices=sorted(FORMATS), default='onnx')
    p.add_argument(
        '--out', type=Path, required=True, help='the .onnx file, or the .xml of OpenVINO IR (.bin beside it)'
    )
    p.add_argument(
        '--weights', type=Path, default=None, help='a model.safetensors, or a folder from `hrnet-zoo convert`'
    )
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser('bench', help='speed and memory against timm, in one process')
    bench.add_arguments(p)
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, ExportError, OSError) as err:
        print(f'hrnet-zoo {args.command}: error: {err}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
