"""The inference engines a CPU user would pick instead of ours, as contenders for ``hrnet-zoo bench``.

ONNX Runtime and OpenVINO run the ONNX export of the very model ours runs (:mod:`hrnet_zoo.export`, checked
against eager PyTorch before it is used), in the same interleaved loop and with the same thread count. Both are
optional: where one is not installed, the harness says so in one line and goes on without it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ..export import export_model
from ..fast.openvino_backend import compile_config

__all__ = ['ENGINES', 'PeerEngines', 'engine_versions']

# engine -> (module to import, distribution name for its version)
ENGINES = {'onnxruntime': ('onnxruntime', 'onnxruntime'), 'openvino': ('openvino', 'openvino')}


def engine_versions() -> dict[str, str | None]:
    """The installed version of each peer engine and of onnxscript (which the export needs); None if absent."""
    names = [dist for _, dist in ENGINES.values()] + ['onnxscript']
    versions: dict[str, str | None] = {}
    for dist in names:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


class PeerEngines:
    """One ONNX export of ``model`` (dynamic in batch and size), and callables that run it in each engine.

    Sessions are made per input shape and precision, once, outside the timed loop. ``skipped`` holds one line
    per engine that cannot run here.
    """

    def __init__(self, model: nn.Module, workdir: str | Path | None = None) -> None:
        self.skipped: list[str] = []
        self._tmp = tempfile.TemporaryDirectory(prefix='hrnet_bench_', dir=workdir)
        versions = engine_versions()
        self.available = [name for name, (module, _) in ENGINES.items() if importlib.util.find_spec(module) is not None]
        for name in ENGINES:
            if name not in self.available:
                self.skipped.append(f'{name} not installed: its rows are skipped (pip install {name})')
        self.path: Path | None = None
        if self.available and versions['onnxscript'] is None:
            self.skipped.append('onnxscript not installed: the ONNX export the peers run needs it; peers skipped')
            self.available = []
        if self.available:
            self.path = Path(self._tmp.name) / 'model.onnx'
            export_model(model, self.path)

    def close(self) -> None:
        self._tmp.cleanup()

    def runner(self, engine: str, x: Tensor, dtype: str, threads: int) -> Callable[[], Any] | None:
        """A callable running the export on ``x`` in ``engine`` at ``dtype`` ('fp32' or 'bf16'); None where the
        engine has no such precision on CPU (ONNX Runtime's CPU convolutions are fp32 only)."""
        if engine not in self.available or self.path is None:
            return None
        feed = x.float().contiguous().numpy()  # both engines take fp32 NCHW; OpenVINO converts inside for bf16
        if engine == 'onnxruntime':
            if dtype != 'fp32':
                return None
            import onnxruntime  # optional: present, per self.available

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            session = onnxruntime.InferenceSession(str(self.path), options, providers=['CPUExecutionProvider'])
            name = session.get_inputs()[0].name
            return lambda: session.run(None, {name: feed})
        request = self.openvino_request(list(feed.shape), dtype, threads)
        return lambda: request.infer([feed])

    def openvino_request(self, shape: list[int], dtype: str, threads: int, perf_count: bool = False) -> Any:
        """An OpenVINO infer request for the export compiled at the static ``shape``; with ``perf_count``, it
        keeps per-node timings (``request.profiling_info``) for ``hrnet-zoo bench --profile``."""
        import openvino  # optional: callers check self.available

        core = openvino.Core()
        reshaped = core.read_model(str(self.path))
        reshaped.reshape(shape)  # static shapes: what a serving user would compile for
        config = compile_config('bf16' if dtype == 'bf16' else 'f32', threads)
        if perf_count:
            config['PERF_COUNT'] = True
        return core.compile_model(reshaped, 'CPU', config).create_infer_request()
