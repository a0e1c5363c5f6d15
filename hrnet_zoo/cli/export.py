"""``hrnet-zoo export``: ONNX or OpenVINO IR of a model, checked against eager PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..export import FORMATS, check_export_target, export_model, load_for_export


def _cmd_export(args: argparse.Namespace) -> int:
    check_export_target(args.out, args.format)  # before a model is built or fetched
    model = load_for_export(args.model, args.weights)
    result = export_model(model, args.out, args.format)
    batch, h, w = result.check_size
    outputs = ', '.join(result.output_names)
    print(f'wrote {result.path} ({args.format}: dynamic batch, height and width; outputs {outputs}); checked '
          f'against eager PyTorch at {batch}x{h}x{w}: relative error {result.max_relative_error:.1e}')  # fmt: skip
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('export', help='ONNX or OpenVINO IR, dynamic in size, checked against eager PyTorch')
    p.add_argument(
        'model', help='<arch> (random weights) or <arch>.<tag> (its Hub weights), e.g. hrnetv2_w48.cityscapes'
    )
    p.add_argument('--format', choices=sorted(FORMATS), default='onnx')
    p.add_argument(
        '--out', type=Path, required=True, help='the .onnx file, or the .xml of OpenVINO IR (.bin beside it)'
    )
    p.add_argument(
        '--weights', type=Path, default=None, help='a model.safetensors, or a folder from `hrnet-zoo convert`'
    )
    p.set_defaults(func=_cmd_export)
