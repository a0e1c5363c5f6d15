"""What the benchmark scripts record of the CPU they ran on: its name, the extensions that decide convolution speed,
and the results folder named after both (a VM may name only the vendor: 'AMD EPYC')."""

from __future__ import annotations

import platform
import re
from pathlib import Path

__all__ = ['cpu_kind', 'cpu_name', 'isa_flags']

ISA_FLAGS = ('avx2', 'fma', 'avx512f', 'avx512_bf16', 'avx512_vnni', 'amx_bf16', 'amx_tile')


def _cpuinfo(field: str) -> str | None:
    try:
        for line in Path('/proc/cpuinfo').read_text(encoding='utf-8').splitlines():
            if line.startswith(field):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    return _cpuinfo('model name') or platform.processor() or 'unknown'


def isa_flags() -> list[str]:
    """The CPU's vector and matrix extensions that decide the speed of convolutions (AVX2, AVX-512, bf16, AMX)."""
    return [flag for flag in (_cpuinfo('flags') or '').split() if flag in ISA_FLAGS]


def cpu_kind(name: str, isa: list[str]) -> str:
    """A folder name for the CPU and its widest matrix / vector extension: ('AMD EPYC', [..., 'avx2']) ->
    'amd_epyc_avx2'; with AVX-512 BF16 -> 'amd_epyc_avx512_bf16'."""
    widest = next((flag for flag in ('amx_bf16', 'avx512_bf16', 'avx512f', 'avx2') if flag in isa), 'no_avx2')
    return f'{re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "unknown"}_{widest}'
