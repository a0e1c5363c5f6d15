"""Parameter and FLOP counts, in the convention of the official HRNet tables.

The official ``modelsummary.py`` counts the multiply-adds of convolutions and linear layers (no bias, BN,
activation, resize or pooling) and divides by 2^30, calling the result "GFLOPs". torch's own
``FlopCounterMode`` counts the same operations as 2 FLOPs per multiply-add, so ``GFLOPs = flops / 2 / 2^30``. It
also counts batched matmuls, which the official counter (hooks on Conv2d and Linear modules) does not see: only
the OCR attention has them (2.4 GFLOPs of HRNetV2-OCR-W48 at 1024x2048), and they are left out, as there.
Counting runs on the meta device: no memory, no compute. The counts of every manifest record are kept as data in
:mod:`hrnet_zoo.weights.counts`; ``python -m hrnet_zoo.stats --write`` recounts and rewrites that table.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import NamedTuple

import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

from . import models  # noqa: F401  (registers the architectures that timm.create_model builds here)
from .weights import counts
from .weights.manifest import MANIFEST

__all__ = ['ArchStats', 'arch_stats', 'count_params', 'count_gflops', 'counts_table']


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# what the official counter counts: convolutions, and linear layers (addmm, or mm without a bias)
_CONV_LINEAR_OPS = (torch.ops.aten.convolution, torch.ops.aten.addmm, torch.ops.aten.mm)


def count_gflops(model: torch.nn.Module, input_size: tuple[int, int, int]) -> float:
    """Official-convention GFLOPs (conv + linear multiply-adds / 2^30) of one image of ``input_size``."""
    param = next(model.parameters())
    x = torch.empty((1, *input_size), device=param.device, dtype=param.dtype)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    flops = counter.get_flop_counts()['Global']
    return sum(flops.get(op, 0) for op in _CONV_LINEAR_OPS) / 2 / 2**30


class ArchStats(NamedTuple):
    params: int
    gflops: float
    input_size: tuple[int, int, int]


def arch_stats(name: str, input_size: tuple[int, int, int] | None = None, **kwargs) -> ArchStats:
    """Count params and GFLOPs of ``name`` (``arch`` or ``arch.tag``) at ``input_size`` (default: its pretrained
    cfg's); ``kwargs`` go to ``timm.create_model``."""
    model = timm.create_model(name, device='meta', **kwargs)
    input_size = tuple(input_size or model.pretrained_cfg['input_size'])
    return ArchStats(count_params(model), count_gflops(model, input_size), input_size)


def counts_table() -> str:
    """The ``COUNTS = {...}`` entries of :mod:`hrnet_zoo.weights.counts`, counted afresh for every record."""
    rows = []
    for name in MANIFEST:
        stats = arch_stats(name)
        rows.append(f'    {name!r}: ({stats.params}, {stats.gflops!r}),\n')
    return ''.join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m hrnet_zoo.stats', description='recount the COUNTS table')
    parser.add_argument('--write', action='store_true', help=f'rewrite {Path(counts.__file__).name} in place')
    args = parser.parse_args(argv)
    table = counts_table()
    if not args.write:
        print(table, end='')
        return 0
    path = Path(counts.__file__)
    text = path.read_text(encoding='utf-8')
    # the entries between the dict's opening and closing lines; the docstring above them stays
    entries = re.compile(r'(COUNTS: .*? = \{\n).*?(^\}$)', re.S | re.M)
    updated = entries.sub(lambda m: m.group(1) + table + m.group(2), text)
    path.write_text(updated, encoding='utf-8')
    print(f'wrote {len(MANIFEST)} rows to {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
