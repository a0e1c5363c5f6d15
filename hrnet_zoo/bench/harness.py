"""``hrnet-zoo bench``: speed and memory of our HRNet against timm's ``hrnet_<w>``, in one process.

Every contender of a suite is timed in turn inside each repeat (round-robin), so a noisy neighbour slows
all of them alike; we report the median over repeats and ratios of medians from the same run. The fp32
(and bf16) matmul peak, the best median over square products of a few sizes, is one more set of contenders of
the same loop, so "fraction of peak" compares numbers measured under the same conditions.

Conventions: ``GMACs`` is the official HRNet "GFLOPs" (conv + linear multiply-adds / 2^30, from
:func:`hrnet_zoo.stats.count_gflops`); achieved ``GFLOP/s`` counts 2 FLOPs per multiply-add and 1e9 FLOPs
per GFLOP, like the matmul peak (``2 n^3 / 1e9`` per ``n x n`` product).

The peer is timm's ``hrnet_<w>`` with ``features_only=True, feature_location=''``: the same backbone work
as our ``hrnetv2_<w>`` with ``features_only=True`` (timm only accepts sides that are multiples of 32).
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import statistics
import subprocess
import time
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import timm
import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .. import models  # noqa: F401  (registers the architectures that timm.create_model builds here)
from ..fast.memory import reuse_freed_memory
from ..fast.onednn_graph import OneDNNGraphModule
from ..fast.optimize import optimize_for_inference, unwrap_features
from ..files import write_atomically
from ..specs import get_spec
from ..stats import count_gflops
from .peers import PeerEngines, engine_versions
from .profile import DTYPES, format_profile, profile_cases, profile_json
from .report import Contender, peer_table, plot, summarise, table

__all__ = ['add_arguments', 'run', 'machine_info', 'LiveBytes']

SUITES = ('peak', 'infer', 'train')
# the inference contenders by name, as in the table's "contender" column and the JSON rows' "name"
INFER_CONTENDERS = ('timm', 'ours', 'ours_fast', 'ours_onednn_graph', 'ours_openvino', 'onnxruntime', 'openvino')
# the contenders that need an ONNX export of the model first (tens of seconds each on 2 cores)
EXPORTED_CONTENDERS = ('ours_openvino', 'onnxruntime', 'openvino')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--width', default='w18', help='HRNet width, e.g. w18, w18_small_v2, w48 (default: w18)')
    parser.add_argument('--head', default='v2', choices=('v1', 'v2', 'v2p'), help='full model to time (default: v2)')
    parser.add_argument(
        '--suite',
        default='all',
        choices=(*SUITES, 'tasks', 'all'),
        help='what to measure; tasks: segment / estimate_pose outside the forward (default: all = the others)',
    )
    parser.add_argument('--repeats', type=int, default=5, help='timed rounds; medians are over these')
    parser.add_argument('--warmup', type=int, default=1, help='untimed rounds first')
    parser.add_argument(
        '--dtype',
        nargs='+',
        default=['fp32', 'bf16'],
        choices=tuple(DTYPES),
        help='inference precisions; bf16 = pure bf16 weights and input (default: fp32 bf16)',
    )
    parser.add_argument(
        '--case',
        default='all',
        choices=('b1', 'b8', 'all'),
        help='inference inputs: b1 = batch 1 at 512x1024, b8 = batch 8 at 224x224 (default: both)',
    )
    parser.add_argument('--compile', action='store_true', help='also time torch.compile (slow: ~1 min per model)')
    parser.add_argument(
        '--full-size',
        type=int,
        nargs=2,
        default=(1024, 2048),
        metavar=('H', 'W'),
        help='input of the full-model row (default: 1024 2048)',
    )
    parser.add_argument('--no-full', action='store_true', help='skip the full-model row')
    parser.add_argument(
        '--only',
        nargs='+',
        default=None,
        choices=INFER_CONTENDERS,
        metavar='NAME',
        help='time only these inference contenders (the matmul peaks always run): fewer per round leaves room for '
        f'more repeats, e.g. --only openvino ours_onednn_graph; one of {", ".join(INFER_CONTENDERS)}',
    )
    parser.add_argument('--no-peers', action='store_true', help='skip ONNX Runtime and OpenVINO (run on our export)')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: torch default)')
    parser.add_argument('--json', type=Path, default=None, help='write the results here')
    parser.add_argument('--plot', type=Path, default=None, help='write a PNG of the speed-ups here (needs matplotlib)')
    parser.add_argument(
        '--quick',
        action='store_true',
        help='smoke run of about a minute on 2 cores: tiny inputs, 2 repeats, and none of the contenders that need '
        f'an ONNX export first ({", ".join(EXPORTED_CONTENDERS)}) unless --only names them',
    )
    parser.add_argument(
        '--profile',
        action='store_true',
        help='instead of timing, print a per-op profile of our fast path and of OpenVINO for each --case and '
        '--dtype (torch.profiler; OpenVINO PERF_COUNT)',
    )
    parser.add_argument(
        '--peer-table',
        type=Path,
        nargs='+',
        default=None,
        metavar='JSON',
        help='instead of timing, print the markdown table of ours against ONNX Runtime and OpenVINO from saved '
        '--json results (the one in README.md)',
    )


# ----------------------------------------------------------------------------------------------------- machine


def _cpu_flags() -> list[str]:
    try:
        text = subprocess.run(['lscpu'], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        text = Path('/proc/cpuinfo').read_text() if Path('/proc/cpuinfo').exists() else ''
    for line in text.splitlines():
        if line.lower().startswith('flags'):
            return line.split(':', 1)[1].split()
    return []


def machine_info() -> dict[str, Any]:
    """What the numbers depend on: CPU, ISA, cores, threads, library versions."""
    flags = _cpu_flags()
    model_name = ''
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                model_name = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    isa = [f for f in flags if f.startswith(('avx512', 'amx')) or f in ('avx2', 'fma', 'avx_vnni')]
    return dict(
        cpu=model_name or platform.processor(),
        cores=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        torch_cpu_capability=torch.backends.cpu.get_cpu_capability(),
        isa_flags=isa,
        amx_bf16='amx_bf16' in flags,
        torch=torch.__version__,
        timm=timm.__version__,
        python=platform.python_version(),
        mkldnn=torch.backends.mkldnn.is_available(),
        **engine_versions(),
    )


# ------------------------------------------------------------------------------------------------ measuring


def _round_robin(contenders: list[Contender], repeats: int, warmup: int, log: bool = True) -> None:
    for r in range(warmup + repeats):
        # every other round in reverse, so no contender always follows the same one
        for c in contenders if r % 2 == 0 else contenders[::-1]:
            t0, c0 = time.perf_counter(), time.process_time()
            c.fn()
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            if r >= warmup:
                c.times.append(dt)
                c.cpu_times.append(dc)
        if log:
            print(f'  round {r + 1}/{warmup + repeats} done', flush=True)


def _matmul(n: int, dtype: torch.dtype) -> tuple[Callable[[], Any], float]:
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    out = torch.empty(n, n, dtype=dtype)
    return (lambda: torch.mm(a, b, out=out)), 2.0 * n**3


class LiveBytes(TorchDispatchMode):
    """Bytes of tensor storage allocated inside the mode and still alive: current and peak.

    Counts what every aten op returns (activations, gradients, optimizer state, temporaries) until its
    storage is freed; tensors that existed before (the weights) are not counted. oneDNN scratchpads are
    invisible to it. Slows ops down, so it runs in an untimed pass.
    """

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self._live: set[int] = set()

    def _free(self, key: int, nbytes: int) -> None:
        self._live.discard(key)
        self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, Tensor) and not t.is_mkldnn and t.device.type == 'cpu':
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key and key not in self._live:
                    nbytes = storage.nbytes()
                    self._live.add(key)
                    self.current += nbytes
                    self.peak = max(self.peak, self.current)
                    weakref.finalize(storage, self._free, key, nbytes)
        return out


# ------------------------------------------------------------------------------------------------- models


def _ours_features(width: str) -> nn.Module:
    # nearest fuse upsampling, as timm's: a width whose default tag is a segmentation one would otherwise
    # bring the official segmentation models' bilinear upsampling, which is more work
    return timm.create_model(f'hrnetv2_{width}', features_only=True, upsample_mode='nearest').eval()


def _timm_features(width: str) -> nn.Module | None:
    try:
        return timm.create_model(get_spec(width).timm_name, features_only=True, feature_location='').eval()
    except (RuntimeError, KeyError, ValueError):  # a width timm does not have
        return None


def _cl(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).to(memory_format=torch.channels_last)


def _flops(model: nn.Module, size: tuple[int, int], batch: int) -> float:
    """Real FLOPs (2 per multiply-add) of one call on ``batch`` images of ``size``."""
    return count_gflops(model, (3, *size)) * 2**30 * 2 * batch


def _warm_compiler() -> None:
    """Compile a throwaway module once, so the first contender does not pay for importing and initialising
    inductor alone; and switch inductor's on-disk caches off, so a rerun measures a cold compile again."""
    import torch._inductor.config as inductor_config  # loaded lazily by torch

    inductor_config.force_disable_caches = True
    warm = torch.compile(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()))
    with torch.inference_mode():
        warm(torch.randn(1, 3, 16, 16))


def _compiled(model: nn.Module, x: Tensor) -> tuple[Callable[[], Any], float]:
    """``torch.compile(model)`` and its compile time (the first call, which compiles)."""
    torch._dynamo.reset()
    fn = torch.compile(model)
    t0 = time.perf_counter()
    with torch.inference_mode():
        fn(x)
    return fn, time.perf_counter() - t0


def _infer_contenders(args: argparse.Namespace, dtypes: list[str]) -> list[Contender]:
    ours, peer = _ours_features(args.width), _timm_features(args.width)
    peers = _peers(args, ours)
    if args.quick:
        cases = [('b1', 1, (64, 128)), ('b2', 2, (64, 64))]
    else:
        cases = [('b1_512x1024', 1, (512, 1024)), ('b8_224x224', 8, (224, 224))]
        cases = [c for c in cases if getattr(args, 'case', 'all') in ('all', c[0][:2])]
    out: list[Contender] = []
    gen = torch.Generator().manual_seed(0)
    if args.compile:
        _warm_compiler()
    for case, batch, size in cases:
        x = torch.randn(batch, 3, *size, generator=gen)
        xc = x.contiguous(memory_format=torch.channels_last)
        flops = _flops(ours, size, batch)
        for dname in dtypes:
            dt = DTYPES[dname]
            runs: list[tuple[str, str, nn.Module | Callable, Tensor, dict[str, Any]]] = []
            if dname == 'fp32':
                if peer is not None:
                    runs.append(('nchw', 'timm', peer, x, {}))
                runs.append(('nchw', 'ours', ours, x, {}))
                runs.append(('nchw', 'ours_fast', _fast(ours, channels_last=False), x, {}))
            xd = xc.to(dt)
            if peer is not None:
                runs.append(('channels_last', 'timm', _cl(peer).to(dt), xd, {}))
            runs.append(('channels_last', 'ours', _cl(ours).to(dt), xd, {}))
            runs.append(('channels_last', 'ours_fast', _fast(ours, dtype=dt), xd, {}))
            graph_route = _ours_onednn_graph(ours, dt)
            if graph_route is not None:
                runs.append(('channels_last', 'ours_onednn_graph', graph_route, xd, {}))
            if _openvino_route(peers) and _wanted(args, 'ours_openvino'):
                # our other route: the same call with backend='openvino', fed the fp32 NCHW image as a user would
                runs.append(('channels_last', 'ours_openvino', _ours_openvino(ours, dt), x, {}))
            if args.compile:
                # channels_last both; ours with BatchNorm folded first (optimize_for_inference(fuse_ops=False))
                compiled = [('ours_fast', optimize_for_inference(ours, dtype=dt, fuse_ops=False))]
                if peer is not None:
                    compiled.insert(0, ('timm', _cl(peer).to(dt)))
                for who, model in compiled:
                    print(f'  compiling {who} ({case}, {dname}) ...', flush=True)
                    fn, seconds = _compiled(model, xd)
                    runs.append(('compile', who, fn, xd, dict(compile_s=seconds)))
            for fmt, who, model, inp, extra in runs:
                meta = dict(case=case, batch=batch, size=list(size), dtype=dname, format=fmt, who=who, **extra)
                out.append(Contender(f'{case}/{dname}/{fmt}', who, _caller(model, inp), flops, meta))
            out += _peer_contenders(peers, f'{case}/{dname}/channels_last', x, dname, flops,
                                    dict(case=case, batch=batch, size=list(size), dtype=dname))  # fmt: skip
    if not args.no_full:
        size = (64, 128) if args.quick else tuple(args.full_size)
        full = timm.create_model(f'hrnet{args.head}_{args.width}').eval()
        full_peers = _peers(args, full)
        x = torch.randn(1, 3, *size, generator=gen)
        flops = _flops(full, size, 1)
        case = f'full_{args.head}_{size[0]}x{size[1]}'
        for dname in dtypes:
            dt = DTYPES[dname]
            xc = x.contiguous(memory_format=torch.channels_last).to(dt)
            routes = [('ours', _cl(full).to(dt), xc), ('ours_fast', _fast(full, dtype=dt), xc)]
            graph_route = _ours_onednn_graph(full, dt)
            if graph_route is not None:
                routes.append(('ours_onednn_graph', graph_route, xc))
            if _openvino_route(full_peers) and _wanted(args, 'ours_openvino'):
                routes.append(('ours_openvino', _ours_openvino(full, dt), x))
            for who, model, inp in routes:
                meta = dict(case=case, batch=1, size=list(size), dtype=dname, format='channels_last', who=who)
                out.append(Contender(f'{case}/{dname}/channels_last', who, _caller(model, inp), flops, meta))
            out += _peer_contenders(full_peers, f'{case}/{dname}/channels_last', x, dname, flops,
                                    dict(case=case, batch=1, size=list(size), dtype=dname))  # fmt: skip
    return out


def _profile(args: argparse.Namespace, dtypes: list[str], info: dict[str, Any]) -> int:
    """``--profile``: per-op tables of ours_fast and OpenVINO at the timed inputs, instead of timing."""
    cases = [('b1_512x1024', 1, (512, 1024)), ('b8_224x224', 8, (224, 224))]
    cases = [c for c in cases if args.case in ('all', c[0][:2])]
    if args.quick:
        cases = [('b1', 1, (64, 128))]
    model = _ours_features(args.width)
    profiles = profile_cases(model, cases, dtypes, args.repeats, args.warmup, _peers(args, model))
    print(format_profile(profiles))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(
            profile_json(profiles, machine=info, args={k: str(v) for k, v in vars(args).items()}), indent=1
        )
        write_atomically(args.json, lambda tmp: tmp.write_text(text))
        print(f'wrote {args.json}')
    return 0


def _fast(model: nn.Module, **kwargs: Any) -> nn.Module:
    """Our fused route as a serving user would run it, with ``reuse_memory=True``: glibc then keeps freed memory
    for the whole process, so the timm and ours rows of the same run reuse their pages too."""
    return optimize_for_inference(model, reuse_memory=True, **kwargs)


def _ours_onednn_graph(model: nn.Module, dtype: torch.dtype) -> nn.Module | None:
    """``optimize_for_inference(backend='onednn_graph')``, or None (with one line) where this torch cannot run it."""
    print(f"  optimize_for_inference(backend='onednn_graph', dtype={dtype}) ...", flush=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always', RuntimeWarning)
        route = optimize_for_inference(model, dtype=dtype, backend='onednn_graph', reuse_memory=True)
    if not isinstance(route, OneDNNGraphModule):  # its fallback is the ours_fast row, timed already
        why = str(caught[-1].message) if caught else 'no reason given'
        print(f'  ours_onednn_graph rows skipped: {why}')
        return None
    return route


def _openvino_route(peers: PeerEngines | None) -> bool:
    """Whether to time ``optimize_for_inference(backend='openvino')``: with the peers, where OpenVINO runs."""
    return peers is not None and 'openvino' in peers.available


def _ours_openvino(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    print(f"  optimize_for_inference(backend='openvino', dtype={dtype}) ...", flush=True)
    return optimize_for_inference(model, dtype=dtype, backend='openvino')


def _wanted(args: argparse.Namespace, who: str) -> bool:
    """Whether to build contender ``who``: every one, or those --only names (building some takes an export)."""
    return not args.only or who in args.only


def _peers(args: argparse.Namespace, model: nn.Module) -> PeerEngines | None:
    if args.no_peers or not any(_wanted(args, who) for who in EXPORTED_CONTENDERS):
        return None
    print('exporting to ONNX for the peer engines ...', flush=True)
    engines = PeerEngines(model)
    for line in engines.skipped:
        print(line)
    return engines


def _peer_contenders(
    engines: PeerEngines | None, group: str, x: Tensor, dtype: str, flops: float, meta: dict[str, Any]
) -> list[Contender]:
    """ONNX Runtime and OpenVINO on our export, in the group of ours with the same input and precision."""
    if engines is None:
        return []
    out = []
    for who in engines.available:
        fn = engines.runner(who, x, dtype, torch.get_num_threads())
        if fn is not None:
            out.append(Contender(group, who, fn, flops, dict(meta, format='engine', who=who)))
    return out


def _caller(model: Callable, x: Tensor) -> Callable[[], Any]:
    def call() -> Any:
        with torch.inference_mode():
            return model(x)

    return call


# one matrix size is a poor peak: bf16 (AMX) rates measured here ranged 450-1900 GFLOP/s over 512..3072 and
# from call to call, so the peak is the best median over a few square sizes
PEAK_SIZES = (512, 1024, 1536, 2048)


def _peak_contenders(dtypes: list[str], quick: bool) -> list[Contender]:
    out = []
    for dname in dtypes:
        for n in (256, 512) if quick else PEAK_SIZES:
            fn, flops = _matmul(n, DTYPES[dname])
            out.append(Contender(f'peak/{dname}', f'matmul_{n}', fn, flops, dict(dtype=dname, size=n)))
    return out


def _peaks(peak_cs: list[Contender]) -> dict[str, float]:
    """Per dtype, the best median rate (GFLOP/s) over the matrix sizes."""
    peaks: dict[str, float] = {}
    for c in peak_cs:
        rate = c.flops / statistics.median(c.times) / 1e9
        peaks[c.meta['dtype']] = max(rate, peaks.get(c.meta['dtype'], 0.0))
    return peaks


# ------------------------------------------------------------------------------------------------ training


def _train_step(model: nn.Module, x: Tensor, opt: torch.optim.Optimizer, autocast: bool) -> Callable[[], Any]:
    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
            feats = model(x)
            loss = sum(f.float().square().mean() for f in feats)
        loss.backward()
        opt.step()

    return step


def _train_contenders(args: argparse.Namespace) -> list[Contender]:
    size = (64, 128) if args.quick else (512, 1024)
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0)).contiguous(
        memory_format=torch.channels_last
    )
    flops = 3 * _flops(_ours_features(args.width), size, 2)  # backward ~ 2x forward
    variants: list[tuple[str, nn.Module, bool]] = []
    peer = _timm_features(args.width)
    if peer is not None:
        variants.append(('timm', peer, False))
    variants.append(('ours', _ours_features(args.width), False))
    ckpt = _ours_features(args.width)
    unwrap_features(ckpt).set_grad_checkpointing(True)
    variants.append(('ours_ckpt', ckpt, False))
    variants.append(('ours_bf16_autocast', _ours_features(args.width), True))
    out = []
    for who, model, autocast in variants:
        model = model.train().to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        step = _train_step(model, x, opt, autocast)
        meta = dict(case=f'train_b2_{size[0]}x{size[1]}', batch=2, size=list(size), format='channels_last', who=who)
        meta['dtype'] = 'bf16_autocast' if autocast else 'fp32'
        meta['grad_checkpointing'] = who == 'ours_ckpt'
        out.append(Contender('train', who, step, flops, meta))
    return out


def _measure_memory(contenders: list[Contender]) -> None:
    """Peak live bytes of one (untimed) training step per contender, after one warm step."""
    for c in contenders:
        gc.collect()
        with LiveBytes() as live:
            c.fn()
        c.meta['peak_mib'] = live.peak / 2**20


def _print_peer_table(paths: list[Path]) -> int:
    results = []
    for path in paths:
        try:
            results.append(json.loads(path.read_text()))
        except (OSError, ValueError) as e:
            print(f'--peer-table: cannot read {path} ({e}); expected a JSON written by hrnet-zoo bench --json')
            return 2
        if not isinstance(results[-1], dict) or not {'args', 'rows'} <= results[-1].keys():
            print(f'--peer-table: {path} has no "args" and "rows"; expected a JSON written by hrnet-zoo bench --json')
            return 2
    print(peer_table(results))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.peer_table:
        return _print_peer_table(args.peer_table)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.repeats, args.warmup = min(args.repeats, 2), min(args.warmup, 1)
        if not args.no_peers and not (args.only and set(args.only) & set(EXPORTED_CONTENDERS)):
            args.no_peers = True
            print(f'--quick: {", ".join(EXPORTED_CONTENDERS)} skipped (each needs an ONNX export first); '
                  'name them with --only to time them')  # fmt: skip
    suites = set(SUITES) if args.suite == 'all' else {args.suite}
    info = machine_info()
    dtypes = [d for d in args.dtype if d == 'fp32' or info['amx_bf16'] or 'avx512_bf16' in info['isa_flags']]
    if len(dtypes) < len(args.dtype):
        print('bf16 skipped: the CPU has neither AMX-BF16 nor AVX512-BF16')
    print(f'CPU: {info["cpu"]}, {info["cores"]} cores, torch threads {info["torch_threads"]}')
    print(f'ISA: torch capability {info["torch_cpu_capability"]}; flags {" ".join(info["isa_flags"])}')
    print(f'torch {info["torch"]}, timm {info["timm"]}, python {info["python"]}')
    if args.profile:
        return _profile(args, dtypes, info)

    # the matmul peak runs in every timed loop, so each fraction of peak compares like with like
    peak_cs = _peak_contenders(dtypes, args.quick) if suites & {'peak', 'infer'} else []
    results: dict[str, Any] = dict(machine=info, args={k: str(v) for k, v in vars(args).items() if k != 'func'})
    rows: list[dict[str, Any]] = []
    if 'infer' in suites:
        print(f'building inference contenders for {args.width} ...', flush=True)
        infer = _infer_contenders(args, dtypes)
        if args.only:
            infer = [c for c in infer if c.name in args.only]
            if not infer:
                print(f'--only {" ".join(args.only)}: none of these ran here (see the lines above); nothing to time')
                return 2
        results['freed_memory_kept'] = reuse_freed_memory()  # already on where ours_fast ran: say so in the JSON
        if results['freed_memory_kept']:
            print('malloc keeps freed memory (ours_fast, reuse_memory=True): every torch row of this run shares it')
        print(f'timing {len(infer)} inference contenders x {args.repeats} repeats (+{args.warmup} warm-up)')
        _round_robin(peak_cs + infer, args.repeats, args.warmup)
        peaks = _peaks(peak_cs)
        rows += summarise(peak_cs + infer, peaks)
    elif peak_cs:
        _round_robin(peak_cs, args.repeats, args.warmup, log=False)
        peaks = _peaks(peak_cs)
        rows += summarise(peak_cs, peaks)
    else:
        peaks = {}
    if 'train' in suites:
        print('timing training steps ...', flush=True)
        train = _train_contenders(args)
        train_peak = _peak_contenders(['fp32'], args.quick) if 'fp32' not in peaks else []
        _round_robin(train_peak + train, args.repeats, args.warmup)
        peaks.update(_peaks(train_peak))
        _measure_memory(train)
        train_rows = summarise(train, peaks)
        base = next((r for r in train_rows if r['name'] == 'ours'), None)
        for r in train_rows:
            if base is not None and r['name'] != 'ours':
                r['peak_mem_vs_ours'] = r['peak_mib'] / base['peak_mib']
        rows += train_rows
    results['peaks_gflop_per_s'] = peaks
    results['rows'] = rows

    print()
    print(f'hrnet {args.width}: medians of {args.repeats} interleaved repeats; "vs timm" = timm median / ours median')
    print(table(rows))
    print('vs timm: wall-clock ratio of medians; paired: median over rounds of the ratio within a round (the two ran')
    print('back to back); cpu-time: ratio of medians of process CPU time (robust to a busy')
    print('machine when --threads 1). GFLOP/s: 2 FLOPs per multiply-add, 1e9 per GFLOP; % peak: of the matmul')
    print('peak of the same dtype measured in the same loop. Memory: peak live tensor bytes of one training step.')
    print('vs OV: paired ratio against OpenVINO running our ONNX export in the same loop (>1: faster than it).')
    print('OV q1-q3: the quartiles of that per-round ratio; where they straddle 1, the rows are level within noise.')
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(results, indent=1)
        write_atomically(args.json, lambda tmp: tmp.write_text(text))
        print(f'wrote {args.json}')
    if args.plot:
        plot(rows, args.plot, f'hrnet {args.width} on {info["cpu"]} ({info["cores"]} cores)')
    return 0
