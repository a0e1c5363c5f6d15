"""ONNX and OpenVINO export, dynamic in batch, height and width, checked against eager PyTorch before it counts.

The ONNX graph comes from torch's dynamo exporter (``torch.onnx.export(..., dynamo=True)``, which needs
``onnxscript``); the legacy TorchScript exporter is deprecated. OpenVINO's IR is converted from that ONNX graph by
OpenVINO's own ``convert_model``. Either way the written model is run, in ONNX Runtime or OpenVINO, at a size it was
not traced at and compared with the eager model; only then is it moved into place, so a failed export leaves no
file behind.

Every head exports, V2p's list of five pyramid levels included: its outputs are ``output0`` ... ``output4``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import Tensor, nn

from .files import check_writable_folder, new_folders
from .specs import parse_arch
from .weights.manifest import get_record

__all__ = ['ExportError', 'ExportResult', 'FORMATS', 'check_export_target', 'export_model', 'load_for_export']

# format -> (file suffix, module that runs it for the check, pip package)
FORMATS = {'onnx': ('.onnx', 'onnxruntime', 'onnxruntime'), 'openvino': ('.xml', 'openvino', 'openvino')}
_TRACE_SIZE = (2, 256, 320)  # batch 2: a batch of 1 would be specialised to 1 by the tracer
_CHECK_SIZE = (1, 193, 259)  # odd, and not the traced size: the check proves the dims are really dynamic
MAX_RELATIVE_ERROR = 1e-4  # fp32 against eager fp32, ``||a - b|| / ||b||`` per output


class ExportError(RuntimeError):
    """The exporter, or the check of what it wrote against eager PyTorch, failed."""


@dataclass(frozen=True)
class ExportResult:
    path: Path  # the .onnx file, or OpenVINO's .xml (its .bin lies beside it)
    check_size: tuple[int, int, int]  # (batch, height, width) the exported graph was compared at
    max_relative_error: float
    output_names: tuple[str, ...]


def load_for_export(name: str, weights: str | Path | None = None) -> nn.Module:
    """``<arch>`` (random weights), ``<arch>.<tag>`` (that tag's Hub weights, as ``pretrained=True``), or either
    with ``weights``: a ``model.safetensors`` or a folder written by ``hrnet-zoo convert``, loaded offline through
    timm's ``pretrained_cfg_overlay=dict(file=...)``."""
    arch, _, tag = name.partition('.')
    parse_arch(arch)  # unknown names fail here, listing the valid ones
    if tag:
        get_record(name)  # and unknown tags, listing the architecture's
    if weights is None:
        return timm.create_model(name, pretrained=bool(tag)).eval()
    path = Path(weights)
    path = path / 'model.safetensors' if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(
            f'no weights file {path}: expected a model.safetensors, or a folder written by `hrnet-zoo convert`'
        )
    return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()


def _outputs(y: Tensor | Sequence[Tensor]) -> list[Tensor]:
    return list(y) if isinstance(y, (list, tuple)) else [y]


def _require(module: str, package: str, fmt: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ExportError(f'--format {fmt} needs {package}: pip install {package}')


def _write_onnx(model: nn.Module, path: Path, in_chans: int, output_names: list[str]) -> None:
    batch, h, w = _TRACE_SIZE
    x = torch.randn(batch, in_chans, h, w)
    dims = {0: torch.export.Dim('batch', max=1024), 2: torch.export.Dim('height', min=32, max=8192),
            3: torch.export.Dim('width', min=32, max=8192)}  # fmt: skip
    log = io.StringIO()  # the exporter prints its progress; keep it for the error message only
    try:
        with contextlib.redirect_stdout(log):
            program = torch.onnx.export(
                model, (x,), dynamo=True, dynamic_shapes=(dims,), input_names=['image'], output_names=output_names,
                verbose=False,
            )  # fmt: skip
        program.save(str(path))
    except Exception as err:  # the exporter raises many types; name the step and the first line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(f'torch.onnx.export (dynamo) failed: {first}\n{log.getvalue()}'.rstrip()) from err


def _run_onnx(path: Path, x: Tensor) -> list[Tensor]:
    import onnxruntime  # optional: checked by _require before any export starts

    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    return [torch.from_numpy(y) for y in session.run(None, {'image': x.numpy()})]


def _run_openvino(path: Path, x: Tensor) -> list[Tensor]:
    import openvino  # optional: checked by _require before any export starts

    compiled = openvino.Core().compile_model(str(path), 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})
    result = compiled(x.numpy())
    return [torch.from_numpy(result[out].copy()) for out in compiled.outputs]


def _relative_error(got: Tensor, ref: Tensor) -> float:
    return ((got.float() - ref.float()).norm() / ref.float().norm().clamp_min(1e-12)).item()


def _check(run, path: Path, model: nn.Module, in_chans: int) -> float:
    batch, h, w = _CHECK_SIZE
    x = torch.randn(batch, in_chans, h, w, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = _outputs(model(x))
    got = run(path, x)
    if len(got) != len(ref) or any(tuple(g.shape) != tuple(r.shape) for g, r in zip(got, ref)):
        raise ExportError(
            f'the exported graph gives shapes {[tuple(g.shape) for g in got]} at {h}x{w}, eager PyTorch '
            f'{[tuple(r.shape) for r in ref]}'
        )
    error = max(_relative_error(g, r) for g, r in zip(got, ref))
    if not error <= MAX_RELATIVE_ERROR:
        raise ExportError(f'the exported graph differs from eager PyTorch at {h}x{w}: relative error {error:.2g} '
                          f'> {MAX_RELATIVE_ERROR:g}')  # fmt: skip
    return error


def check_export_target(out: str | Path, format: str) -> Path:
    """Refuse, before any work, an output path or format that cannot succeed; returns ``out`` as a Path."""
    if format not in FORMATS:
        raise ValueError(f'unknown export format {format!r}; expected one of: {", ".join(FORMATS)}')
    suffix, runtime, package = FORMATS[format]
    out = Path(out)
    if out.suffix != suffix:
        raise ValueError(f'--format {format} writes a {suffix} file; got --out {out}')
    check_writable_folder(out.parent, f'cannot write {out}')  # a missing folder is made when the graph is written
    if out.is_dir():
        raise IsADirectoryError(f'cannot write {out}: it is a folder')
    _require('onnxscript', 'onnxscript', format)  # the dynamo exporter's graph builder
    _require(runtime, package, format)
    return out


def export_model(model: nn.Module, out: str | Path, format: str = 'onnx') -> ExportResult:
    """Export an HRNet model (any head, or ``features_only``) to ``out`` as ONNX or OpenVINO IR, in fp32.

    The graph takes ``image`` (N, C, H, W) of any batch and size and gives ``output`` (or ``output0`` ...
    ``outputK`` for a list). It is run at a size it was not traced at and compared with ``model``; only a graph
    within ``MAX_RELATIVE_ERROR`` is written to ``out`` (``.xml`` + ``.bin`` for OpenVINO). Raises
    :class:`ExportError` otherwise, leaving nothing at ``out``.
    """
    out = check_export_target(out, format)
    model = model.eval()
    in_chans = next(p for p in model.parameters()).shape[1]  # the stem's input channels
    with torch.no_grad():
        n_outputs = len(_outputs(model(torch.zeros(1, in_chans, 64, 64))))
    output_names = ['output'] if n_outputs == 1 else [f'output{i}' for i in range(n_outputs)]

    # everything is written in a temporary folder beside ``out``, checked there, then moved in
    with new_folders(out.parent), tempfile.TemporaryDirectory(dir=out.parent, prefix=f'.{out.name}.') as tmp:
        onnx_path = Path(tmp) / 'model.onnx'
        _write_onnx(model, onnx_path, in_chans, output_names)
        if format == 'onnx':
            staged = {onnx_path: out}
            error = _check(_run_onnx, onnx_path, model, in_chans)
        else:
            import openvino  # optional: checked by _require above

            xml_path = Path(tmp) / 'model.xml'
            openvino.save_model(openvino.convert_model(str(onnx_path)), str(xml_path), compress_to_fp16=False)
            staged = {xml_path: out, xml_path.with_suffix('.bin'): out.with_suffix('.bin')}
            error = _check(_run_openvino, xml_path, model, in_chans)
        for src, dst in staged.items():  # same filesystem: each move is atomic
            os.replace(src, dst)
    return ExportResult(out, _CHECK_SIZE, error, tuple(output_names))
