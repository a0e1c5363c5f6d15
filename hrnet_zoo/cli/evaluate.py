"""``hrnet-zoo evaluate``: score predictions against ground truth, or run a tag on its validation set and score it."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from ..tasks.evaluate import coco_keypoint_metrics, evaluate_tag, segmentation_metrics

USAGE = (
    'hrnet-zoo evaluate --predictions RESULTS.json --annotations GT.json | --predictions DIR --annotations DIR '
    '--num-classes N | TAG --data ROOT'
)


def _jsonable(metrics: dict[str, Any]) -> dict[str, Any]:
    """NaN (a class in neither the ground truth nor the predictions) as JSON's null."""

    def clean(v: Any) -> Any:
        return None if isinstance(v, float) and math.isnan(v) else v

    return {k: [clean(x) for x in v] if isinstance(v, list) else clean(v) for k, v in metrics.items()}


def _table(metrics: dict[str, Any]) -> str:
    rows = []
    for key, value in metrics.items():
        if isinstance(value, list):
            rows += [f'  {key}[{i}]'.ljust(10) + f'{v:8.2f}' for i, v in enumerate(value)]
        else:
            rows.append(f'{key:<10}{value:8.4f}' if key.startswith(('AP', 'AR')) else f'{key:<10}{value:8.2f}')
    return '\n'.join(rows)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    scoring = args.predictions is not None or args.annotations is not None
    if scoring == (args.tag is not None) or (scoring and (args.predictions is None or args.annotations is None)):
        raise ValueError(f'give either TAG --data ROOT, or --predictions and --annotations; usage: {USAGE}')
    if scoring:
        if args.data or args.limit or args.detections or args.out or args.weights:
            raise ValueError('--data, --limit, --detections, --out and --weights go with TAG; scoring files takes '
                             '--predictions, --annotations (and --num-classes for label PNG folders)')  # fmt: skip
        if args.predictions.is_dir() or args.annotations.is_dir():
            if args.num_classes is None:
                raise ValueError('scoring label PNG folders needs --num-classes N (19 for Cityscapes)')
            metrics = segmentation_metrics(args.predictions, args.annotations, args.num_classes, args.ignore_index)
        else:
            if args.num_classes is not None:
                raise ValueError('--num-classes is for label PNG folders; a COCO results file has keypoints')
            try:
                metrics = coco_keypoint_metrics(args.predictions, args.annotations)
            except ImportError as err:  # pycocotools is an extra: its line, not a traceback
                raise ValueError(str(err)) from None
    else:
        if args.data is None:
            raise ValueError(f'{args.tag} needs its validation set: --data ROOT (COCO val2017 or Cityscapes)')
        metrics = evaluate_tag(
            args.tag, args.data, limit=args.limit, batch_size=args.batch_size, detections=args.detections,
            out_dir=args.out, weights=args.weights,
        )  # fmt: skip
    print(json.dumps(_jsonable(metrics)) if args.json else _table(metrics))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        'evaluate',
        help='score predictions against ground truth (COCO keypoints AP, segmentation mIoU), or run a tag on its '
        'validation set and score it',
    )
    p.add_argument('tag', nargs='?', default=None, metavar='TAG', help='<arch>.<tag> to run on --data')
    p.add_argument('--data', type=Path, default=None, help='the validation set: a COCO or Cityscapes folder')
    p.add_argument('--limit', type=int, default=None, metavar='N', help='the first N images only')
    p.add_argument('--batch-size', type=int, default=32, help='pose: person boxes a forward (default: 32)')
    p.add_argument('--detections', type=Path, default=None, help='pose: a COCO person detection results file '
                   '(default: the ground truth boxes)')  # fmt: skip
    p.add_argument('--out', type=Path, default=None, metavar='DIR', help='write the predictions here')
    p.add_argument('--weights', type=Path, default=None, help="a converted folder or model.safetensors (default: "
                   "the tag's Hub weights)")  # fmt: skip
    p.add_argument('--predictions', type=Path, default=None, help='a COCO keypoint results JSON, or a folder of PNGs')
    p.add_argument('--annotations', type=Path, default=None, help='a COCO keypoints ground truth JSON, or a folder')
    p.add_argument('--num-classes', type=int, default=None, help='label PNG folders: the number of classes')
    p.add_argument('--ignore-index', type=int, default=255, help='label PNG folders: the ignored label (255)')
    p.add_argument('--json', action='store_true', help='print the metrics as one JSON object')
    p.set_defaults(func=_cmd_evaluate)
