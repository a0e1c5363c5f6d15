"""Wall time of ``import hrnet_zoo`` and of ``hrnet-zoo list``, each in fresh processes: the median of N runs,
with ``import timm`` (what every timm plugin pays anyway) timed the same way as the peer. ``--against DIR`` times
another checkout of hrnet_zoo (``git worktree add DIR <commit>``) in the same rounds, interleaved, so a before /
after comparison shares the machine's drift.

    python benchmarks/import_time.py --runs 15 [--against /tmp/before] [--json benchmarks/results/import_time.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

CASES = {
    'import timm': [sys.executable, '-c', 'import timm'],
    'import hrnet_zoo': [sys.executable, '-c', 'import hrnet_zoo'],
    'hrnet-zoo list': [sys.executable, '-m', 'hrnet_zoo.cli', 'list'],
}
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cpu() -> str:
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            return next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor() or 'unknown'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=15)
    parser.add_argument('--against', help='another hrnet_zoo checkout, timed in the same rounds')
    parser.add_argument('--json', help='also write the timings here')
    args = parser.parse_args(argv)
    roots = {'': HERE} | ({' (against)': os.path.abspath(args.against)} if args.against else {})
    cases = {
        f'{name}{label}': (command, {**os.environ, 'PYTHONPATH': root})
        for label, root in roots.items()
        for name, command in CASES.items()
        if not (label and name == 'import timm')
    }
    for command, env in cases.values():  # warm the OS file cache and the .pyc files
        subprocess.run(command, check=True, capture_output=True, env=env, cwd=env['PYTHONPATH'])
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.runs):  # interleaved, so drift in the machine hits every case alike
        for name, (command, env) in cases.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, env=env, cwd=env['PYTHONPATH'])
            times[name].append(time.perf_counter() - start)
    result = {
        'cpu': _cpu(),
        'runs': args.runs,
        'median_s': {name: round(statistics.median(t), 4) for name, t in times.items()},
    }
    print(f'CPU: {result["cpu"]}, {args.runs} runs each, median wall time of a fresh process')
    for name, median in result['median_s'].items():
        print(f'  {name:30s} {median:.3f} s')
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
