"""The harness's results: one :class:`Contender` per timed thing, its row (medians, ratios to the peers in its group,
GFLOP/s and fraction of the matmul peak), the printed table and an optional plot."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ['PEER_COLUMNS', 'REFERENCES', 'Contender', 'peer_table', 'plot', 'summarise', 'table']


@dataclass
class Contender:
    """One timed thing: ``fn()`` runs it once; ``flops`` real FLOPs per call (for GFLOP/s)."""

    group: str
    name: str
    fn: Callable[[], Any]
    flops: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)
    times: list[float] = field(default_factory=list)
    cpu_times: list[float] = field(default_factory=list)


REFERENCES = ('timm', 'openvino')  # the peers every row is also given as a ratio to, when in its group


def summarise(contenders: list[Contender], peaks: dict[str, float]) -> list[dict[str, Any]]:
    by_group: dict[str, dict[str, Contender]] = {}
    for c in contenders:
        by_group.setdefault(c.group, {})[c.name] = c
    rows = []
    for c in contenders:
        med = statistics.median(c.times)
        row = dict(group=c.group, name=c.name, **c.meta, median_ms=med * 1e3, min_ms=min(c.times) * 1e3,
                   cpu_median_ms=statistics.median(c.cpu_times) * 1e3,
                   times_ms=[round(t * 1e3, 2) for t in c.times])  # fmt: skip
        if c.flops:
            row['gflop_per_s'] = c.flops / med / 1e9
            peak = peaks.get(str(c.meta.get('dtype', '')).replace('_autocast', ''))
            if peak and c.group.startswith(('b', 'full', 'train')):
                row['fraction_of_peak'] = row['gflop_per_s'] / peak
        for ref_name in REFERENCES:
            ref = by_group[c.group].get(ref_name)
            if ref is None or c.name == ref_name:
                continue
            row[f'speedup_vs_{ref_name}'] = statistics.median(ref.times) / med
            row[f'cpu_speedup_vs_{ref_name}'] = statistics.median(ref.cpu_times) / statistics.median(c.cpu_times)
            # the machine's speed drifts over seconds (a shared VM host): the ratio within each round, where
            # the two ran back to back, then the median of those, is the steadier figure
            per_round = [a / b for a, b in zip(ref.times, c.times)]
            row[f'paired_speedup_vs_{ref_name}'] = statistics.median(per_round)
            if len(per_round) >= 2:
                # their spread says whether a ratio near 1 is resolved: 'inclusive' keeps it within the rounds'
                row[f'paired_quartiles_vs_{ref_name}'] = statistics.quantiles(per_round, n=4, method='inclusive')
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f'{"case / dtype / format":<36} {"contender":<19} {"median ms":>10} {"min ms":>9} {"vs timm":>8} '
        f'{"paired":>7} {"cpu-time":>8} {"GFLOP/s":>8} {"% peak":>7} {"vs OV":>7} {"OV q1-q3":>9} {"extra":>12}'
    ]
    for r in rows:
        speed = f'{r["speedup_vs_timm"]:.2f}x' if 'speedup_vs_timm' in r else ''
        cpu = f'{r["cpu_speedup_vs_timm"]:.2f}x' if 'cpu_speedup_vs_timm' in r else ''
        paired = f'{r["paired_speedup_vs_timm"]:.2f}x' if 'paired_speedup_vs_timm' in r else ''
        gf = f'{r["gflop_per_s"]:.0f}' if 'gflop_per_s' in r else ''
        pk = f'{100 * r["fraction_of_peak"]:.0f}%' if 'fraction_of_peak' in r else ''
        ov = f'{r["paired_speedup_vs_openvino"]:.2f}x' if 'paired_speedup_vs_openvino' in r else ''
        ov_spread = ''
        if 'paired_quartiles_vs_openvino' in r:
            q1, _, q3 = r['paired_quartiles_vs_openvino']
            ov_spread = f'{q1:.2f}-{q3:.2f}'
        extra = ''
        if 'peak_mib' in r:
            extra = f'{r["peak_mib"]:.0f} MiB'
        elif 'compile_s' in r:
            extra = f'compile {r["compile_s"]:.0f}s'
        lines.append(
            f'{r["group"]:<36} {r["name"]:<19} {r["median_ms"]:>10.1f} {r["min_ms"]:>9.1f} {speed:>8} {paired:>7} '
            f'{cpu:>8} {gf:>8} '
            f'{pk:>7} {ov:>7} {ov_spread:>9} {extra:>12}'
        )
    return '\n'.join(lines)


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print(f'--plot: matplotlib is not installed; skipped {path}')
        return False
    pts = [(f'{r["group"]}\n{r["name"]}', r['speedup_vs_timm']) for r in rows if 'speedup_vs_timm' in r]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(pts) + 1.5))
    ax.barh([p[0] for p in pts], [p[1] for p in pts], color='tab:blue')
    ax.axvline(1.0, color='k', lw=0.8)
    ax.set_xlabel('speed-up vs timm (median time ratio, same run)')
    ax.set_title(title)
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# the README's peer table: (column title, contender, dtype); every group is the channels_last one of its dtype
PEER_COLUMNS = (
    ('timm fp32 CL', 'timm', 'fp32'),
    ('ORT fp32', 'onnxruntime', 'fp32'),
    ('OpenVINO f32', 'openvino', 'fp32'),
    ('ours fast fp32', 'ours_fast', 'fp32'),
    ('ours oneDNN Graph fp32', 'ours_onednn_graph', 'fp32'),
    ('ours → OV f32', 'ours_openvino', 'fp32'),
    ('OpenVINO bf16', 'openvino', 'bf16'),
    ('ours fast bf16', 'ours_fast', 'bf16'),
    ('ours oneDNN Graph bf16', 'ours_onednn_graph', 'bf16'),
    ('ours → OV bf16', 'ours_openvino', 'bf16'),
)


def _peer_cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return '—'
    cell = f'{row["median_ms"]:.0f} ms'
    if row['name'].startswith('ours') and 'paired_speedup_vs_openvino' in row:
        cell += f' ({row["paired_speedup_vs_openvino"]:.2f}x)'
    return cell


def peer_table(results: list[dict[str, Any]]) -> str:
    """A markdown table of saved ``hrnet-zoo bench --json`` results: one line per width and case, each contender's
    median, and for ours the median per-round ratio OpenVINO / ours (above 1: ours is faster)."""
    lines = [
        '| width | input | ' + ' | '.join(title for title, _, _ in PEER_COLUMNS) + ' |',
        '|' + '---|' * (2 + len(PEER_COLUMNS)),
    ]
    full_model_lines = []  # after the feature rows: a different input and a different model
    for result in results:
        width = result['args']['width']
        by_case: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        for row in result['rows']:
            if 'case' not in row or row.get('format') == 'nchw':
                continue
            by_case.setdefault(row['case'], {})[(row['name'], row['dtype'])] = row
        for case, cells in by_case.items():
            first = next(iter(cells.values()))
            size = 'x'.join(str(s) for s in (first['batch'], *first['size']))
            full = case.startswith('full')
            line = [f'{width} (full V2 model)' if full else width, size]
            line += [_peer_cell(cells.get((name, dtype))) for _, name, dtype in PEER_COLUMNS]
            (full_model_lines if full else lines).append('| ' + ' | '.join(line) + ' |')
    return '\n'.join(lines + full_model_lines)
