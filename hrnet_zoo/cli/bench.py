"""``hrnet-zoo bench``: speed and memory against timm (and the task suite), in one process."""

from __future__ import annotations

import argparse

from ..bench import harness
from ..bench import tasks as bench_tasks


def _cmd_bench(args: argparse.Namespace) -> int:
    return bench_tasks.run(args) if args.suite == bench_tasks.SUITE else harness.run(args)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('bench', help='speed and memory against timm, in one process')
    harness.add_arguments(p)
    p.set_defaults(func=_cmd_bench)
