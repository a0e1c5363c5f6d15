"""``hrnet-zoo``: a thin command line over the package (list, convert, publish, release, cards, demo, predict,
evaluate, export, bench).

Each subcommand parses its arguments and calls one function of the package; each group of them lives in a module
of its own here, which adds its parsers with ``add_parsers``. Expected failures (a missing file, an unknown model,
an unreachable Hub) print one line and exit non-zero, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..export import ExportError
from ..version import __version__
from . import bench, evaluate, export, predict, weights

DESCRIPTION = (
    'HRNet for timm: list the architectures; convert, publish and release their weights; predict with them, '
    'evaluate the answers, export and benchmark the models.'
)
# in the order `hrnet-zoo --help` lists them
_GROUPS = (weights, predict, evaluate, export, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='hrnet-zoo', description=DESCRIPTION)
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    sub = parser.add_subparsers(dest='command', required=True)
    for group in _GROUPS:
        group.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, ExportError, OSError) as err:
        print(f'hrnet-zoo {args.command}: error: {err}', file=sys.stderr)
        return 1
