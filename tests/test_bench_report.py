"""``hrnet-zoo bench --peer-table``: the README's table of ours against ONNX Runtime and OpenVINO, made from saved
``--json`` results. The rows come from :func:`summarise` over contenders with set times; nothing is timed."""

from __future__ import annotations

import json

import pytest

from hrnet_zoo.bench.report import PEER_COLUMNS, Contender, summarise, table
from hrnet_zoo.cli import main


def _result(width: str, case: str, batch: int, size: list[int], times: dict[tuple[str, str], list[float]]) -> dict:
    contenders = [
        Contender(f'{case}/{dtype}/channels_last', name, fn=lambda: None,
                  meta=dict(case=case, batch=batch, size=size, dtype=dtype, format='channels_last'),
                  times=seconds, cpu_times=seconds)
        for (name, dtype), seconds in times.items()
    ]  # fmt: skip
    return dict(args=dict(width=width), rows=summarise(contenders, peaks={}))


def test_peer_table_gives_each_contender_its_median_and_ours_the_per_round_ratio(tmp_path, capsys) -> None:
    # three rounds; OpenVINO fp32 drifts (0.30, 0.20, 0.40 s) while ours runs at 0.25 s: the per-round ratios are
    # 1.2, 0.8, 1.6, their median 1.2, and the ratio of medians 0.30 / 0.25 = 1.2 too; ours bf16 against
    # OpenVINO bf16: 0.10/0.05, 0.12/0.10, 0.09/0.10 -> 2.0, 1.2, 0.9, median 1.2, ratio of medians 1.0
    features = _result('w18', 'b8_224x224', 8, [224, 224], {
        ('timm', 'fp32'): [0.5, 0.5, 0.5],
        ('openvino', 'fp32'): [0.30, 0.20, 0.40],
        ('ours_fast', 'fp32'): [0.25, 0.25, 0.25],
        ('openvino', 'bf16'): [0.10, 0.12, 0.09],
        ('ours_fast', 'bf16'): [0.05, 0.10, 0.10],
    })  # fmt: skip
    full = _result('w18', 'full_v2_1024x2048', 1, [1024, 2048], {
        ('openvino', 'fp32'): [2.0, 2.0, 2.0],
        ('ours_openvino', 'fp32'): [1.0, 4.0, 2.0],  # ratios 2, 0.5, 1
    })  # fmt: skip
    paths = []
    for name, result in (('full.json', full), ('b8.json', features)):
        paths.append(tmp_path / name)
        paths[-1].write_text(json.dumps(result))
    assert main(['bench', '--peer-table', *map(str, paths)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    header = [cell.strip() for cell in lines[0].strip('|').split('|')]
    assert header == ['width', 'input'] + [title for title, _, _ in PEER_COLUMNS]
    rows = [dict(zip(header, (cell.strip() for cell in line.strip('|').split('|')))) for line in lines[2:]]
    assert len(rows) == 2
    b8, whole = rows  # the full model's line goes after the feature lines whatever the order of the files
    assert (b8['width'], b8['input'], whole['width'], whole['input']) == (
        'w18', '8x224x224', 'w18 (full V2 model)', '1x1024x2048')  # fmt: skip
    assert b8['timm fp32 CL'] == '500 ms' and b8['OpenVINO f32'] == '300 ms'
    assert b8['ours fast fp32'] == '250 ms (1.20x)'
    assert b8['ours fast bf16'] == '100 ms (1.20x)'  # the per-round median, not 0.10 / 0.10
    assert b8['ORT fp32'] == '—' and b8['ours → OV f32'] == '—'  # contenders the run did not have
    assert whole['ours → OV f32'] == '2000 ms (1.00x)' and whole['timm fp32 CL'] == '—'


def test_peer_table_refuses_a_file_that_is_not_a_bench_result(tmp_path, capsys) -> None:
    broken, other = tmp_path / 'broken.json', tmp_path / 'other.json'
    broken.write_text('{"rows": [')
    other.write_text('[1, 2]')
    for path in (broken, other, tmp_path / 'missing.json'):
        assert main(['bench', '--peer-table', str(path)]) == 2
        out = capsys.readouterr().out
        assert str(path) in out and 'expected a JSON written by hrnet-zoo bench --json' in out


def test_rows_carry_the_quartiles_of_the_per_round_ratio_and_the_table_prints_them() -> None:
    # five rounds, ours steady at 0.25 s, OpenVINO drifting: per-round ratios 1.2, 0.8, 1.6, 1.0, 2.0, so sorted
    # 0.8, 1.0, 1.2, 1.6, 2.0, whose inclusive quartiles are the 2nd, 3rd and 4th of them
    result = _result('w18', 'b8_224x224', 8, [224, 224], {
        ('openvino', 'fp32'): [0.30, 0.20, 0.40, 0.25, 0.50],
        ('ours_fast', 'fp32'): [0.25] * 5,
    })  # fmt: skip
    ours = next(r for r in result['rows'] if r['name'] == 'ours_fast')
    assert ours['paired_quartiles_vs_openvino'] == pytest.approx([1.0, 1.2, 1.6])
    assert ours['paired_speedup_vs_openvino'] == pytest.approx(1.2)
    line = next(line for line in table(result['rows']).splitlines() if 'ours_fast' in line)
    assert ' 1.20x ' in line and ' 1.00-1.60 ' in line
    openvino = next(r for r in result['rows'] if r['name'] == 'openvino')
    assert 'paired_quartiles_vs_openvino' not in openvino  # no ratio of a row to itself
