"""``hrnet-zoo list | convert | publish | release | cards | demo``: the architectures, and the weights' way from an
official file to the Hub."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..demo import run_demo
from ..publish.cards import write_cards
from ..publish.client import publish
from ..publish.convert import convert_checkpoint
from ..publish.release import FAILED, LOCK_NAME, release, summary_table
from ..specs import ARCHS
from ..stats import arch_stats
from ..weights.manifest import MANIFEST, default_tag


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


def add_parsers(sub: argparse._SubParsersAction) -> None:
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
