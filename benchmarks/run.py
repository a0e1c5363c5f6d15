"""Run the HRNet benchmark harness: a thin wrapper over ``hrnet-zoo bench`` (see benchmarks/README.md).

python benchmarks/run.py --width w18 --json benchmarks/results/w18.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from hrnet_zoo import bench  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description='HRNet speed and memory against timm, in one process')
    bench.add_arguments(parser)
    return bench.run(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
