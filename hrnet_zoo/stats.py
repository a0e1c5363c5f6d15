"""Parameter and FLOP counts, in the convention of the official HRNet tables.

The official ``modelsummary.py`` counts the multiply-adds of convolutions and linear layers (no bias, BN,
activation, resize or pooling) and divides by 2^30, calling the result "GFLOPs". torch's own
``FlopCounterMode`` counts the same operations as 2 FLOPs per multiply-add, so ``GFLOPs = flops / 2 / 2^30``.
Counting runs on the meta device: no memory, no compute.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ['ArchStats', 'arch_stats', 'count_params', 'count_gflops']


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_gflops(model: torch.nn.Module, input_size: tuple[int, int, int]) -> float:
    """Official-convention GFLOPs (conv + linear multiply-adds / 2^30) of one image of ``input_size``."""
    param = next(model.parameters())
    x = torch.empty((1, *input_size), device=param.device, dtype=param.dtype)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() / 2 / 2**30


class ArchStats(NamedTuple):
    params: int
    gflops: float
    input_size: tuple[int, int, int]


@functools.lru_cache(maxsize=256)  # cards and `list` ask for the same architectures again
def _cached_stats(name: str, input_size: tuple[int, int, int] | None) -> ArchStats:
    return _measure(name, input_size)


def arch_stats(name: str, input_size: tuple[int, int, int] | None = None, **kwargs) -> ArchStats:
    """Params and GFLOPs of ``name`` (``arch`` or ``arch.tag``) at ``input_size`` (default: its pretrained cfg's)."""
    if kwargs:
        return _measure(name, input_size, **kwargs)
    return _cached_stats(name, None if input_size is None else tuple(input_size))


def _measure(name: str, input_size: tuple[int, int, int] | None = None, **kwargs) -> ArchStats:
    model = timm.create_model(name, device='meta', **kwargs)
    input_size = tuple(input_size or model.pretrained_cfg['input_size'])
    return ArchStats(count_params(model), count_gflops(model, input_size), input_size)
