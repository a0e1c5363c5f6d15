"""``hrnet-zoo bench --profile``: where one forward spends its time, per op, in our fast path and in OpenVINO.

Ours is profiled by ``torch.profiler`` (CPU activity), OpenVINO by its own per-node counters (``PERF_COUNT``) on
our ONNX export (:class:`hrnet_zoo.bench.peers.PeerEngines`), at the input, precision and thread count of the
timed bench. Both give rows of one shape: ``op`` (an aten / mkldnn op for ours; ``node_type/exec_type`` for
OpenVINO), ``calls`` and ``total_ms_per_round`` per forward, and ``share`` of the sum over all rows. Times are
self (exclusive) times, so the rows of one profile add up to the time spent in ops and the shares to 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile

from ..fast.optimize import optimize_for_inference
from .peers import PeerEngines

__all__ = ['profile_torch', 'profile_openvino', 'profile_cases', 'format_profile', 'profile_json']

Row = dict[str, Any]
Case = tuple[str, int, tuple[int, int]]  # (name, batch, (height, width)), as bench's inference cases
DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16}  # the harness's precisions (bench.py imports them)


def _rows(items: Iterable[tuple[str, int, float]], rounds: int) -> list[Row]:
    """(op, calls over all rounds, ms over all rounds) -> rows per round, the most expensive first."""
    items = [(op, calls, ms) for op, calls, ms in items if ms > 0]
    total = sum(ms for _, _, ms in items) or 1.0
    rows = [
        dict(
            op=op,
            # every round runs the same graph, so the count per round is whole; a ragged one is shown as it is
            calls=calls // rounds if calls % rounds == 0 else calls / rounds,
            total_ms_per_round=ms / rounds,
            share=ms / total,
        )
        for op, calls, ms in items
    ]
    return sorted(rows, key=lambda r: r['total_ms_per_round'], reverse=True)


def profile_torch(fn: Callable[[], Any], rounds: int = 5, warmup: int = 1) -> list[Row]:
    """Per-op rows of ``fn`` under ``torch.profiler`` over ``rounds`` calls, sorted by self CPU time.

    The warm-up calls are not profiled: the first call with a shape creates oneDNN primitives (and the fast
    path picks Winograd or direct convolutions), which is not the steady state the bench times.
    """
    for _ in range(warmup):
        fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(rounds):
            fn()
    # self time: an op's own time without its children (aten::conv2d -> ... -> mkldnn_convolution would
    # otherwise be counted four times)
    events = prof.key_averages()
    return _rows(((e.key, e.count, e.self_cpu_time_total / 1e3) for e in events), rounds)


def profile_openvino(
    engines: PeerEngines, x: Tensor, dtype: str, threads: int, rounds: int = 5, warmup: int = 1
) -> list[Row]:
    """Per-node-kind rows of OpenVINO running ``engines``' export on ``x`` at ``dtype`` ('fp32' or 'bf16').

    Compiled as the bench's OpenVINO contender, plus ``PERF_COUNT``; rows aggregate ``node_type/exec_type``
    (e.g. ``Convolution/brgconv_avx512_amx_bf16``), so one kernel choice is one row.
    """
    import openvino  # optional: callers check engines.available

    feed = x.float().contiguous().numpy()  # the export takes fp32 NCHW; bf16 is converted inside
    request = engines.openvino_request(list(feed.shape), dtype, threads, perf_count=True)
    for _ in range(warmup):
        request.infer([feed])
    executed = openvino.ProfilingInfo.Status.EXECUTED
    acc: dict[str, list[float]] = {}
    for _ in range(rounds):
        request.infer([feed])
        # the counters are those of the last infer only, so they are read after each one; nodes fused into
        # a neighbour (a ReLU into its convolution) or without work (Parameter, Result) are not run
        for info in request.profiling_info:
            if info.status != executed:
                continue
            calls_ms = acc.setdefault(f'{info.node_type}/{info.exec_type}', [0, 0.0])
            calls_ms[0] += 1
            calls_ms[1] += info.real_time.total_seconds() * 1e3
    return _rows(((op, int(calls), ms) for op, (calls, ms) in acc.items()), rounds)


def _wall_ms(fn: Callable[[], Any], rounds: int) -> float:
    """Median wall time of one call, outside any profiler: what the profiled times should add up to, about."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return sorted(times)[len(times) // 2]


def profile_cases(
    model: nn.Module,
    cases: list[Case],
    dtypes: list[str],
    rounds: int,
    warmup: int,
    engines: PeerEngines | None,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """One profile per case, dtype and contender: ``ours_fast`` (channels_last, as the bench times it) and
    ``openvino`` where ``engines`` has it. Each: case, batch, size, dtype, who, wall_ms (unprofiled), rows."""
    threads = torch.get_num_threads()
    gen = torch.Generator().manual_seed(0)
    out: list[dict[str, Any]] = []
    for case, batch, size in cases:
        x = torch.randn(batch, 3, *size, generator=gen)
        for dname in dtypes:
            fast = optimize_for_inference(model, dtype=DTYPES[dname], reuse_memory=True)  # as bench times it
            xd = x.contiguous(memory_format=torch.channels_last).to(DTYPES[dname])

            def call(fast: nn.Module = fast, xd: Tensor = xd) -> Any:
                with torch.inference_mode():
                    return fast(xd)

            meta = dict(case=case, batch=batch, size=list(size), dtype=dname)
            log(f'profiling ours_fast ({case}, {dname}) ...')
            rows = profile_torch(call, rounds, warmup)
            out.append(dict(meta, who='ours_fast', wall_ms=_wall_ms(call, rounds), rows=rows))
            if engines is not None and 'openvino' in engines.available:
                log(f'profiling openvino ({case}, {dname}) ...')
                rows = profile_openvino(engines, x, dname, threads, rounds, warmup)
                runner = engines.runner('openvino', x, dname, threads)
                wall = _wall_ms(runner, rounds) if runner is not None else None
                out.append(dict(meta, who='openvino', wall_ms=wall, rows=rows))
    return out


def format_profile(profiles: list[dict[str, Any]], top: int = 15) -> str:
    """Text tables, one per profile: its ``top`` rows and a line for the rest."""
    lines: list[str] = []
    for p in profiles:
        ops_ms = sum(r['total_ms_per_round'] for r in p['rows'])
        wall = f', {p["wall_ms"]:.2f} ms unprofiled' if p['wall_ms'] is not None else ''
        size = 'x'.join(str(s) for s in p['size'])
        lines.append(f'{p["who"]} {p["case"]} ({p["batch"]}x3x{size}) {p["dtype"]}: ops {ops_ms:.2f} ms/round{wall}')
        lines.append(f'  {"op":<48} {"calls":>6} {"ms/round":>9} {"share":>7}')
        for r in p['rows'][:top]:
            op = r['op'] if len(r['op']) <= 48 else r['op'][:45] + '...'
            lines.append(f'  {op:<48} {r["calls"]:>6g} {r["total_ms_per_round"]:>9.3f} {r["share"]:>7.1%}')
        rest = p['rows'][top:]
        if rest:
            ms, share = sum(r['total_ms_per_round'] for r in rest), sum(r['share'] for r in rest)
            lines.append(f'  {f"({len(rest)} more ops)":<48} {"":>6} {ms:>9.3f} {share:>7.1%}')
        lines.append('')
    lines.append('ms/round: self (exclusive) time per forward; share: of the sum over all ops of that profile.')
    lines.append('ours: torch.profiler (CPU); openvino: PERF_COUNT counters, by node type / kernel chosen.')
    return '\n'.join(lines)


def profile_json(profiles: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A JSON-able dict of the profiles, with ``extra`` (the machine, the arguments) beside them."""
    return dict(extra, profiles=profiles)
