"""``optimize_for_inference(model, backend='openvino')``: our checked export run by OpenVINO behind a module call.

Where OpenVINO's CPU kernels beat our fused oneDNN path (measured by ``hrnet-zoo bench``; README, "Against ONNX
Runtime and OpenVINO"), this is the faster route, and the model stays a callable that takes and returns torch
tensors. The graph is our ONNX export converted to OpenVINO IR (:func:`hrnet_zoo.export.export_model`), which is
compared with the eager model at a size it was not traced at before it is used. It is compiled once per input
shape, static, as a serving user would compile it, with torch's thread count.
"""

from __future__ import annotations

import importlib.util
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..export import export_model

__all__ = ['OpenVINOModule', 'PRECISIONS', 'compile_config']

# torch dtype of the weights asked for -> OpenVINO's INFERENCE_PRECISION_HINT
PRECISIONS = {torch.float32: 'f32', torch.bfloat16: 'bf16'}


def compile_config(precision: str, threads: int) -> dict[str, Any]:
    """OpenVINO's CPU compile options for one call at a time, as a serving user would set them (the harness's
    OpenVINO peer uses the same)."""
    return {'INFERENCE_PRECISION_HINT': precision, 'INFERENCE_NUM_THREADS': threads, 'PERFORMANCE_HINT': 'LATENCY'}


class OpenVINOModule(nn.Module):
    """An HRNet model (any head, or ``features_only``) exported and compiled by OpenVINO for CPU inference.

    Call it as the model itself: an (N, C, H, W) tensor in, the model's tensor or list of tensors out, in the
    input's dtype (fp32 or bf16). ``precision`` ('f32' or 'bf16') is what OpenVINO computes in. Each new input
    shape is compiled on its first call (seconds), up to ``max_shapes`` kept. Calls from several threads take
    turns. Not trainable, not deep-copyable.
    """

    max_shapes = 8

    def __init__(self, model: nn.Module, precision: str = 'f32', threads: int | None = None) -> None:
        super().__init__()
        if importlib.util.find_spec('openvino') is None:
            raise ImportError("backend='openvino' needs OpenVINO: pip install 'hrnet_zoo[openvino]'")
        if precision not in PRECISIONS.values():
            raise ValueError(f'unknown OpenVINO precision {precision!r}; expected one of {sorted(PRECISIONS.values())}')
        import openvino  # optional dependency: present, per the check above

        self.precision = precision
        self.threads = threads or torch.get_num_threads()
        self.in_chans = next(p for p in model.parameters()).shape[1]
        # the IR's weights may be memory-mapped from its .bin: the folder lives as long as this module
        self._dir = tempfile.TemporaryDirectory(prefix='hrnet_openvino_')
        was_training = model.training
        try:
            export = export_model(model, Path(self._dir.name) / 'model.xml', format='openvino')
        finally:
            model.train(was_training)  # the caller's model is left as it was (export_model sets eval)
        self.returns_list = export.output_names != ('output',)  # a list is exported as output0 ... outputK
        self.export_error = export.max_relative_error
        self._core = openvino.Core()
        self._graph = self._core.read_model(str(export.path))
        self._requests: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def _request_for(self, shape: tuple[int, ...]) -> Any:
        request = self._requests.get(shape)
        if request is None:
            graph = self._graph.clone()
            graph.reshape(list(shape))  # static shapes: OpenVINO plans its kernels and memory per shape
            config = compile_config(self.precision, self.threads)
            request = self._core.compile_model(graph, 'CPU', config).create_infer_request()
            if len(self._requests) >= self.max_shapes:
                self._requests.popitem(last=False)  # the least recently used shape
            self._requests[shape] = request
        self._requests.move_to_end(shape)
        return request

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f'expected an (N, {self.in_chans}, H, W) image tensor, got shape {tuple(x.shape)}')
        feed = x.detach().to('cpu', torch.float32).contiguous().numpy()  # the IR's input is fp32 NCHW
        with self._lock:
            result = self._request_for(tuple(feed.shape)).infer([feed])  # outputs are copies: safe to keep
        outputs = [torch.from_numpy(result[i]).to(x.dtype) for i in range(len(result))]
        return outputs if self.returns_list else outputs[0]

    def __deepcopy__(self, memo: dict) -> OpenVINOModule:
        raise TypeError('an OpenVINOModule cannot be deep-copied: call optimize_for_inference on the original')

    def extra_repr(self) -> str:
        return f'precision={self.precision}, threads={self.threads}, compiled_shapes={list(self._requests)}'
