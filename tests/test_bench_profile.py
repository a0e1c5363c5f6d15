"""``hrnet-zoo bench --profile`` (:mod:`hrnet_zoo.bench.profile`): per-op rows of ours (torch.profiler) and of
OpenVINO (PERF_COUNT). Rows and their sums only; no timing is compared."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from torch import nn

from hrnet_zoo.bench import profile as bench_profile
from hrnet_zoo.bench.peers import PeerEngines
from hrnet_zoo.cli import main

WIDTH = 'w18_small_v1'  # the smallest HRNet: its export and profile take seconds


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU()).eval()


def _check_rows(rows: list[dict]) -> None:
    assert rows and all(r['total_ms_per_round'] > 0 and r['calls'] > 0 for r in rows)
    assert sum(r['share'] for r in rows) == pytest.approx(1.0)
    ms = [r['total_ms_per_round'] for r in rows]
    assert ms == sorted(ms, reverse=True)


def test_torch_profile_finds_the_convolution_and_shares_sum_to_one() -> None:
    model, x = _tiny(), torch.randn(1, 3, 96, 96)

    def call() -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    rows = bench_profile.profile_torch(call, rounds=3)
    _check_rows(rows)
    assert any('convolution' in r['op'] for r in rows)  # aten::mkldnn_convolution or another backend's
    relu = next(r for r in rows if r['op'].startswith('aten::relu'))
    assert relu['calls'] == 1  # counted per round, not over the three


def test_format_profile_keeps_the_top_rows_and_sums_the_rest() -> None:
    rows = [dict(op=f'op{i}', calls=1, total_ms_per_round=10.0 - i, share=(10.0 - i) / 55) for i in range(10)]
    profile = dict(case='b1', batch=1, size=[64, 128], dtype='fp32', who='ours_fast', wall_ms=56.0, rows=rows)
    text = bench_profile.format_profile([profile], top=3)
    assert text.splitlines()[0] == 'ours_fast b1 (1x3x64x128) fp32: ops 55.00 ms/round, 56.00 ms unprofiled'
    assert 'op2 ' in text and 'op3 ' not in text
    rest = next(line for line in text.splitlines() if '(7 more ops)' in line)
    assert '28.000' in rest and '50.9%' in rest  # 7 + 6 + ... + 1 ms, 28/55
    assert json.loads(json.dumps(bench_profile.profile_json([profile], machine={})))['profiles'][0]['rows'] == rows


@pytest.mark.export
def test_openvino_profile_of_a_tiny_export_has_a_convolution_row(tmp_path) -> None:
    pytest.importorskip('openvino')
    pytest.importorskip('onnxscript')
    engines = PeerEngines(_tiny(), workdir=tmp_path)
    try:
        rows = bench_profile.profile_openvino(engines, torch.randn(1, 3, 64, 64), 'fp32', threads=1, rounds=3)
    finally:
        engines.close()
    _check_rows(rows)
    conv = [r for r in rows if r['op'].startswith('Convolution/')]
    assert len(conv) == 1 and conv[0]['calls'] == 1  # one convolution, its ReLU fused into it (not run)
    assert not any(r['op'].startswith(('Parameter/', 'Result/')) for r in rows)


@pytest.mark.export
def test_bench_profile_prints_both_tables_and_writes_json(tmp_path, capsys) -> None:
    pytest.importorskip('openvino')
    pytest.importorskip('onnxscript')
    out = tmp_path / 'profile.json'
    # --quick leaves the exported peers out unless --only names one: name openvino, so it is profiled
    argv = ['bench', '--profile', '--quick', '--width', WIDTH, '--threads', '1', '--dtype', 'fp32',
            '--only', 'ours_fast', 'openvino', '--json', str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert 'ours_fast b1 (1x3x64x128) fp32: ops ' in printed and 'openvino b1 (1x3x64x128) fp32: ops ' in printed
    profiles = {p['who']: p for p in json.loads(out.read_text())['profiles']}
    assert set(profiles) == {'ours_fast', 'openvino'}
    for p in profiles.values():
        _check_rows(p['rows'])
        assert p['wall_ms'] > 0 and p['dtype'] == 'fp32' and p['size'] == [64, 128]
    assert any('convolution' in r['op'] for r in profiles['ours_fast']['rows'])
    assert any(r['op'].startswith('Convolution/') for r in profiles['openvino']['rows'])
    assert [p.name for p in tmp_path.iterdir()] == ['profile.json']


def test_bench_profile_without_openvino_says_so_and_profiles_ours(tmp_path, monkeypatch, capsys) -> None:
    real_find_spec = importlib.util.find_spec
    missing = ('openvino', 'onnxruntime')  # neither peer: nothing to export, so this stays quick
    monkeypatch.setattr(
        importlib.util, 'find_spec', lambda name, *a: None if name in missing else real_find_spec(name, *a)
    )
    out = tmp_path / 'profile.json'
    # --quick leaves the exported peers out unless --only names one: name openvino, so its absence is reported
    argv = ['bench', '--profile', '--quick', '--width', WIDTH, '--threads', '1', '--dtype', 'fp32',
            '--only', 'ours_fast', 'openvino', '--json', str(out)]  # fmt: skip
    assert main(argv) == 0
    assert 'openvino not installed: its rows are skipped (pip install openvino)' in capsys.readouterr().out
    assert [p['who'] for p in json.loads(out.read_text())['profiles']] == ['ours_fast']
