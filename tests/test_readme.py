"""README.md against the code: its weights table is the one the manifest renders, and every ```python block in it
runs, each in its own process, against a loopback mirror that serves a small fake checkpoint (in the record's own
layout, ``mmlab_layouts``) for every direct-download tag the block names."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import mmlab_layouts as mm
import pytest
import timm
import torch
from file_server import FileServer

import hrnet_zoo  # noqa: F401  (registers the models)
from hrnet_zoo.publish.weights_table import readme_table, render_table
from hrnet_zoo.specs import ARCHS, parse_arch
from hrnet_zoo.weights.manifest import MANIFEST, default_tag
from hrnet_zoo.weights.sources import MIRROR_ENV

REPO_ROOT = Path(__file__).resolve().parents[1]
README = (REPO_ROOT / 'README.md').read_text(encoding='utf-8')
SKIP_MARK = '<!-- not run by tests:'
# the blocks README marks as not run, by their reason: what tests cannot have
SKIPPED = {
    "reads timm's Hub repos",
    'needs a folder written by hrnet-zoo convert',
}
# files README loads with `pretrained_cfg_overlay=dict(file=...)`, as downloaded by hand: the record they belong to
HAND_FILES = {'pose_hrnet_w32_256x192.pth': 'hrnetv1_w32.coco_256x192'}

_BLOCK = re.compile(r'(?:<!-- not run by tests: (?P<why>[^>]*?) -->\n)?```python\n(?P<code>.*?)```', re.S)
_NAME = re.compile(r"'(?:tu-)?(hrnet[a-z0-9_]+(?:\.[a-z0-9_]+)?)'")


def _blocks() -> list[tuple[int, str, str | None]]:
    return [(README.count('\n', 0, m.start()) + 1, m['code'], m['why']) for m in _BLOCK.finditer(README)]


def test_readme_weights_table_matches_the_manifest():
    assert readme_table(README) == render_table(), 'rerun `python -m hrnet_zoo.publish.weights_table README.md`'


def test_only_the_marked_blocks_are_skipped():
    blocks = _blocks()
    assert README.count('```python') == len(blocks)
    skipped = [why for _, _, why in blocks if why]
    assert sorted(skipped) == sorted(SKIPPED) and len(skipped) <= 3
    assert README.count(SKIP_MARK) == len(skipped)


def _direct_names(code: str) -> list[str]:
    """The direct-download records a block loads: every tag it names, and the default tag of every architecture."""
    names = []
    for name in _NAME.findall(code):
        arch, _, tag = name.partition('.')
        if arch not in ARCHS:
            continue
        full = f'{arch}.{tag or default_tag(arch)}'
        if full in MANIFEST and MANIFEST[full].direct and full not in names:
            names.append(full)
    return names


def _state(name: str) -> dict:
    """The plain model state_dict of a record (the official layout), as a file of its release would hold it."""
    record = MANIFEST[name]
    model = timm.create_model(record.arch, num_classes=record.num_classes, **dict(record.model_kwargs))
    return model.state_dict()


def _fake_checkpoint(name: str) -> bytes:
    record = MANIFEST[name]
    head, width = parse_arch(record.arch)
    layout, n = record.source.layout, record.num_classes
    legacy = layout.startswith('mmpose1')
    if layout == 'mmseg_fcn':
        checkpoint = mm.mmseg_fcn(width, n)
    elif layout == 'mmseg_ocr':
        checkpoint = mm.mmseg_ocrnet(width, n)
    elif layout in ('mmpose0_topdown', 'mmpose1_topdown', 'mmpose0_hrnetv2_head', 'mmpose1_hrnetv2_head'):
        checkpoint = getattr(mm, layout)(width, n)
    elif layout == 'mmdet_hrfpn':
        checkpoint = mm.mmdet_hrfpn(width)
    elif layout in ('official_seg', 'inplace_abn'):  # the FullModel's `model.` prefix; InPlaceABN: no counters
        state = _state(name)
        drop = layout == 'inplace_abn'
        checkpoint = {f'model.{k}': v for k, v in state.items() if not (drop and k.endswith('num_batches_tracked'))}
    else:
        raise AssertionError(f'no fake checkpoint for layout {layout!r} ({name})')
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer, _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


@pytest.fixture(scope='module')
def mirror(tmp_path_factory):
    """One file server for every block, and one torch.hub cache, so a file is converted once."""
    server = FileServer({}).__enter__()
    yield server, tmp_path_factory.mktemp('readme_torch_home'), {}
    server.__exit__(None, None, None)


# the runner: set each named record's hash prefix to its fake file's (the real prefixes name the real files), then
# run the block as a script
_RUNNER = """
import dataclasses, json, sys
import hrnet_zoo
from hrnet_zoo.weights.manifest import MANIFEST
for name, prefix in json.loads(sys.argv[1]).items():
    record = MANIFEST[name]
    MANIFEST[name] = dataclasses.replace(record, source=dataclasses.replace(record.source, hash_prefix=prefix))
code = open(sys.argv[2], encoding='utf-8').read()
exec(compile(code, sys.argv[3], 'exec'), {'__name__': '__main__'})
"""

BLOCKS = _blocks()


@pytest.mark.subprocess
@pytest.mark.parametrize('line', [line for line, _, _ in BLOCKS], ids=lambda line: f'README.md:{line}')
def test_readme_python_block_runs(line, mirror, tmp_path):
    code, why = next((code, why) for at, code, why in BLOCKS if at == line)
    if why:
        pytest.skip(f'marked in README: {why}')
    server, torch_home, prefixes = mirror
    for name in _direct_names(code):
        if name not in prefixes:
            data = _fake_checkpoint(name)
            server.files[urlsplit(MANIFEST[name].source.direct_url).path] = data
            prefixes[name] = hashlib.sha256(data).hexdigest()[:8]
    for file_name, name in HAND_FILES.items():
        if file_name in code:
            torch.save(_state(name), tmp_path / file_name)
    script = tmp_path / 'block.py'
    script.write_text(code, encoding='utf-8')
    named = {name: prefixes[name] for name in _direct_names(code)}
    env = {k: v for k, v in os.environ.items() if not k.startswith(('HF_', 'HRNET_ZOO_'))}
    env.update({
        MIRROR_ENV: server.url,
        'TORCH_HOME': str(torch_home),
        'HF_HOME': str(tmp_path / 'hf_home'),
        'HF_ENDPOINT': 'http://127.0.0.1:9',  # nothing listens: no block may read the Hub
        'HF_HUB_DISABLE_TELEMETRY': '1',
        'PYTHONPATH': str(REPO_ROOT),
    })  # fmt: skip
    args = [sys.executable, '-c', _RUNNER, json.dumps(named), str(script), f'README.md:{line}']
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f'README.md:{line} failed:\n{done.stderr[-3000:]}'
