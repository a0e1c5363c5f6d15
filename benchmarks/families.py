"""Lite-HRNet and HigherHRNet on CPU, batch 1, fp32: ours (eager, NCHW and channels_last; and
``optimize_for_inference`` where it takes the model) against ONNX Runtime and OpenVINO running a static ONNX export
of the same model, in one process, interleaved rounds, medians.

Random weights (nothing can be downloaded here), rescaled by :func:`calibrated` so the maps have trained-like
magnitudes; the timings do not depend on the values otherwise. Every engine's outputs are compared with eager
PyTorch (``||a - b|| / ||b||`` per output, at most 1e-4) before it is timed; a contender that fails its check, or
cannot be built, is left out with one line saying why.

    python benchmarks/families.py                    # litehrnet_18, litehrnet_30, higherhrnet_w32 (~5 min)
    python benchmarks/families.py --quick            # seconds-long smoke run (litehrnet_18, few rounds)
    python benchmarks/families.py --models litehrnet_18 higherhrnet_w48 --save

The peers run a static export (``torch.onnx.export(..., dynamo=True)`` at the benchmark shape, as a serving user
would compile): the project's dynamic export (``hrnet_zoo.export``, which ``PeerEngines`` uses) checks the graph at
an odd size, 193x259, where Lite-HRNet's exported graph does not run (a Concat with 25 against 24 rows), and it
takes about a minute for HigherHRNet-W32 on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import timm  # noqa: E402
import torch  # noqa: E402
from machine import cpu_kind, cpu_name, isa_flags  # noqa: E402  (benchmarks/machine.py)
from torch import nn  # noqa: E402

import hrnet_zoo  # noqa: E402 (registers the models)
from hrnet_zoo.bench.peers import engine_versions  # noqa: E402
from hrnet_zoo.fast.openvino_backend import compile_config  # noqa: E402
from hrnet_zoo.files import write_text_atomically  # noqa: E402

HERE = Path(__file__).resolve().parent
MAX_RELATIVE_ERROR = 1e-4
# model -> (height, width) of its input at batch 1
SIZES = {
    'litehrnet_18': (256, 192),
    'litehrnet_30': (256, 192),
    'higherhrnet_w32': (512, 512),
    'higherhrnet_w48': (640, 640),
}
DEFAULT_MODELS = ('litehrnet_18', 'litehrnet_30', 'higherhrnet_w32')
FPS_MODELS = ('litehrnet_18',)  # the laptop case: frames per second reported too


def outputs(y) -> list[torch.Tensor]:
    return [torch.as_tensor(t) for t in (y if isinstance(y, (list, tuple)) else [y])]


def relative_error(got: list[torch.Tensor], ref: list[torch.Tensor]) -> float:
    """The largest ``||a - b|| / ||b||`` over the outputs; inf where their number or shapes differ."""
    if len(got) != len(ref) or any(tuple(g.shape) != tuple(r.shape) for g, r in zip(got, ref)):
        return float('inf')
    return max(((g.float() - r.float()).norm() / r.float().norm().clamp_min(1e-12)).item() for g, r in zip(got, ref))


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f'{type(err).__name__}: {text.splitlines()[0][:300]}' if text else type(err).__name__


def export_static(model: torch.nn.Module, x: torch.Tensor, path: Path, n_outputs: int) -> None:
    """A static ONNX graph of ``model`` at ``x``'s shape (torch's dynamo exporter; its progress output kept quiet)."""
    names = ['output'] if n_outputs == 1 else [f'output{i}' for i in range(n_outputs)]
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        program = torch.onnx.export(model, (x,), dynamo=True, input_names=['image'], output_names=names)
    program.save(str(path))


def calibrated(model: torch.nn.Module, h: int, w: int) -> torch.nn.Module:
    """Random weights that keep activations near unit scale, as trained ones do: He-normal convolutions, then every
    BatchNorm's running statistics taken from one train-mode batch of two random images.

    The models' own init (N(0, 0.001) convolutions, the official recipe) shrinks the maps to ~1e-17 by the output:
    denormal floats, which slow some engines' kernels down and make the 1e-4 output check meaningless.
    """
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / m.weight[0].numel()) ** 0.5)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = 1.0  # the running statistics become this batch's
        model.train()
        model(torch.randn(2, 3, h, w, generator=g))
    return model.eval()


def build_contenders(name: str, x: torch.Tensor, threads: int, workdir: Path, notes: list[str]) -> dict:
    """name -> (callable, relative error against eager NCHW); ``notes`` gets one line per contender left out."""
    model = calibrated(timm.create_model(name), *x.shape[-2:])
    with torch.inference_mode():
        ref = outputs(model(x))
    contenders: dict[str, tuple[Callable[[], object], float]] = {}

    def add(label: str, run: Callable[[], object], result: Callable[[], list[torch.Tensor]]) -> None:
        try:
            error = relative_error(result(), ref)
        except Exception as err:  # an engine failing at run time: say so and go on without it
            notes.append(f'{name} {label}: left out, its first call failed ({first_line(err)})')
            return
        if not error <= MAX_RELATIVE_ERROR:
            notes.append(f'{name} {label}: left out, relative error {error:.2g} > {MAX_RELATIVE_ERROR:g}')
            return
        contenders[label] = (run, error)

    def torch_run(m: torch.nn.Module, inp: torch.Tensor) -> Callable[[], object]:
        def run():
            with torch.inference_mode():
                return m(inp)

        return run

    eager = torch_run(model, x)
    add('ours eager NCHW', eager, lambda: outputs(eager()))
    model_cl = timm.create_model(name).eval()
    model_cl.load_state_dict(model.state_dict())
    model_cl = model_cl.to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    eager_cl = torch_run(model_cl, x_cl)
    add('ours eager CL', eager_cl, lambda: outputs(eager_cl()))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            fast = hrnet_zoo.optimize_for_inference(model)
        except Exception as err:
            fast = None
            notes.append(f'{name} ours_fast: optimize_for_inference refused it ({first_line(err)})')
    for w in caught:
        notes.append(f'{name} ours_fast: optimize_for_inference warned: {str(w.message).splitlines()[0][:300]}')
    if fast is not None:
        fast_run = torch_run(fast, x_cl)
        add('ours_fast', fast_run, lambda: outputs(fast_run()))

    feed = x.contiguous().numpy()
    path = workdir / f'{name}.onnx'
    start = time.perf_counter()
    try:
        export_static(model, x, path, len(ref))
    except Exception as err:
        notes.append(f'{name} onnxruntime, openvino: left out, the ONNX export failed ({first_line(err)})')
        return contenders
    notes.append(f'{name}: static ONNX export in {time.perf_counter() - start:.1f} s')
    try:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
        input_name = session.get_inputs()[0].name
        ort_run = lambda: session.run(None, {input_name: feed})  # noqa: E731
        add('onnxruntime', ort_run, lambda: outputs([torch.from_numpy(y) for y in ort_run()]))
    except Exception as err:
        notes.append(f'{name} onnxruntime: left out ({first_line(err)})')
    try:
        import openvino

        compiled = openvino.Core().compile_model(str(path), 'CPU', compile_config('f32', threads))
        request = compiled.create_infer_request()
        ov_run = lambda: request.infer([feed])  # noqa: E731

        def ov_result() -> list[torch.Tensor]:
            result = ov_run()
            return [torch.from_numpy(result[out].copy()) for out in compiled.outputs]

        add('openvino', ov_run, ov_result)
    except Exception as err:
        notes.append(f'{name} openvino: left out ({first_line(err)})')
    return contenders


def time_rounds(contenders: dict, rounds: int, min_seconds: float) -> dict[str, list[float]]:
    """Seconds per call of each contender, one sample per round; each sample is the mean of as many calls as fill
    ``min_seconds`` (one call for the large models). Every other round runs the contenders in reverse order."""
    labels = list(contenders)
    calls = {}
    for label in labels:  # warm-up (first-call planning, Winograd choice, allocator), then size the samples
        run = contenders[label][0]
        run()
        start = time.perf_counter()
        run()
        calls[label] = max(1, round(min_seconds / max(time.perf_counter() - start, 1e-6)))
    samples: dict[str, list[float]] = {label: [] for label in labels}
    for r in range(rounds):
        for label in labels if r % 2 == 0 else labels[::-1]:
            run, n = contenders[label][0], calls[label]
            start = time.perf_counter()
            for _ in range(n):
                run()
            samples[label].append((time.perf_counter() - start) / n)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', nargs='+', default=None, choices=sorted(SIZES), help='default: %(default)s')
    parser.add_argument('--rounds', type=int, default=None, help='interleaved rounds (default 15; 3 with --quick)')
    parser.add_argument('--min-seconds', type=float, default=0.2, help='least time per sample (small models)')
    parser.add_argument('--threads', type=int, default=None, help='torch / engine threads (default: torch default)')
    parser.add_argument('--quick', action='store_true', help='litehrnet_18 only, 3 rounds: a smoke run')
    parser.add_argument('--save', action='store_true', help='write benchmarks/results/<cpu-kind>/families.json')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    models = args.models or (['litehrnet_18'] if args.quick else list(DEFAULT_MODELS))
    rounds = args.rounds or (3 if args.quick else 15)
    min_seconds = 0.05 if args.quick else args.min_seconds
    versions = engine_versions()
    machine = dict(
        cpu=cpu_name(),
        isa=isa_flags(),
        torch_cpu_capability=torch.backends.cpu.get_cpu_capability(),
        cores=os.cpu_count(),
        threads=threads,
        torch=torch.__version__,
        timm=timm.__version__,
        onnxruntime=versions['onnxruntime'],
        openvino=versions['openvino'],
        onnxscript=versions['onnxscript'],
        python=platform.python_version(),
    )  # fmt: skip
    print(f'CPU: {machine["cpu"]} ({" ".join(machine["isa"]) or "no AVX2"}; torch capability '
          f'{machine["torch_cpu_capability"]}), {machine["cores"]} cores, {threads} threads; torch {machine["torch"]}, '
          f'timm {machine["timm"]}, onnxruntime {machine["onnxruntime"]}, openvino {machine["openvino"]}')  # fmt: skip
    print(f'batch 1, fp32, {rounds} interleaved rounds, medians; ratio = OpenVINO median / this median (>1: faster)')
    results, notes = [], []
    with tempfile.TemporaryDirectory(prefix='hrnet_families_') as tmp:
        for name in models:
            h, w = SIZES[name]
            x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
            contenders = build_contenders(name, x, threads, Path(tmp), notes)
            samples = time_rounds(contenders, rounds, min_seconds)
            ov = samples.get('openvino')
            ov_median = statistics.median(ov) if ov else None
            for label, seconds in samples.items():
                median = statistics.median(seconds)
                row = dict(
                    model=name,
                    input=[1, 3, h, w],
                    contender=label,
                    median_ms=1000 * median,
                    min_ms=1000 * min(seconds),
                    samples_ms=[1000 * s for s in seconds],
                    max_relative_error=contenders[label][1],
                    openvino_over_this=ov_median / median if ov_median else None,
                    paired_openvino_over_this=statistics.median(o / s for o, s in zip(ov, seconds)) if ov else None,
                    fps=1 / median if name in FPS_MODELS else None,
                )  # fmt: skip
                results.append(row)
            print(f'\n{name} 1x3x{h}x{w}')
            print(f'  {"contender":16s} {"median":>10s} {"min":>10s} {"vs OV":>7s} {"paired":>7s} {"fps":>7s} '
                  f'{"max rel err":>11s}')  # fmt: skip
            for row in (r for r in results if r['model'] == name):
                ratio = f'{row["openvino_over_this"]:.2f}x' if row['openvino_over_this'] else '-'
                paired = f'{row["paired_openvino_over_this"]:.2f}x' if row['paired_openvino_over_this'] else '-'
                fps = f'{row["fps"]:.1f}' if row['fps'] else ''
                print(f'  {row["contender"]:16s} {row["median_ms"]:8.1f} ms {row["min_ms"]:7.1f} ms {ratio:>7s} '
                      f'{paired:>7s} {fps:>7s} {row["max_relative_error"]:11.1e}')  # fmt: skip
    if notes:
        print('\nnotes:')
        for note in notes:
            print(f'  {note}')
    if args.save:
        payload = dict(
            date_utc=datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M'),
            command='python benchmarks/families.py ' + ' '.join(sys.argv[1:] if argv is None else argv),
            rounds=rounds,
            dtype='fp32',
            ratio='openvino_over_this = OpenVINO median / this median; paired = median over rounds of the same ratio',
            max_relative_error_allowed=MAX_RELATIVE_ERROR,
            machine=machine,
            results=results,
            notes=notes,
        )  # fmt: skip
        path = HERE / 'results' / cpu_kind(machine['cpu'], machine['isa']) / 'families.json'
        write_text_atomically(path, json.dumps(payload, indent=2) + '\n', make_parents=True)
        print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
