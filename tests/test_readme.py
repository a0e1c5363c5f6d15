"""README.md against the code: its weights table is the one the manifest renders, and every ```python block in it
runs, each in its own process, against a loopback mirror that serves a fake checkpoint (in the record's own
layout, ``mmlab_layouts``) for every direct-download tag the block names, and the loopback Hub holding timm's own
repo (pushed by timm) for every ImageNet tag it names. A folder a block reads is first written as README says, by
``hrnet-zoo convert``."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import timm
import torch
from fake_records import fake_file, official_state
from file_server import FileServer
from hub_fixtures import HUB_ENV
from timm.models import push_to_hf_hub

import hrnet_zoo  # noqa: F401  (registers the models)
from hrnet_zoo.publish.weights_table import readme_table, render_table
from hrnet_zoo.specs import ARCHS
from hrnet_zoo.weights.manifest import MANIFEST, default_tag
from hrnet_zoo.weights.sources import MIRROR_ENV

REPO_ROOT = Path(__file__).resolve().parents[1]
README = (REPO_ROOT / 'README.md').read_text(encoding='utf-8')
SKIP_MARK = '<!-- not run by tests:'
# the blocks README marks as not run, by their reason: what tests cannot have (today none)
SKIPPED: set[str] = set()
# folders README's blocks read, and the tag `hrnet-zoo convert FILE --model TAG --out FOLDER` writes them for
CONVERTED = {'out/w48': 'hrnetv2_w48.cityscapes'}
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
    assert sorted(skipped) == sorted(SKIPPED)
    assert README.count(SKIP_MARK) == len(skipped)


def _named_records(code: str) -> list[str]:
    """The records a block loads: every tag it names, and the default tag of every architecture it names."""
    names = []
    for name in _NAME.findall(code):
        arch, _, tag = name.partition('.')
        if arch not in ARCHS:
            continue
        full = f'{arch}.{tag or default_tag(arch)}'
        if full in MANIFEST and full not in names:
            names.append(full)
    return names


def _direct_names(code: str) -> list[str]:
    """The direct-download records a block loads, and those of the folders it reads."""
    names = _named_records(code) + [name for folder, name in CONVERTED.items() if f"'{folder}'" in code]
    return [name for name in dict.fromkeys(names) if MANIFEST[name].direct]


def _timm_repos(code: str) -> list[str]:
    """The repos of timm's the block's records read (``timm/hrnet_w18.ms_in1k``)."""
    repos = [MANIFEST[name].hf_hub_id for name in _named_records(code) if not MANIFEST[name].direct]
    return [repo for repo in dict.fromkeys(repos) if repo.startswith('timm/')]


def _push_timm_repo(repo_id: str) -> None:
    """What the Hub's timm/hrnet_* repos hold, pushed by timm itself: random weights of timm's own model."""
    torch.manual_seed(0)
    push_to_hf_hub(timm.create_model(repo_id.removeprefix('timm/').partition('.')[0]), repo_id, model_card={})


@pytest.fixture(scope='module')
def mirror(tmp_path_factory):
    """One file server for every block, and one torch.hub cache, so a file is converted once."""
    server = FileServer({}).__enter__()
    yield server, tmp_path_factory.mktemp('readme_torch_home'), {}
    server.__exit__(None, None, None)


# the runner: set each named record's hash prefix to its fake file's (the real prefixes name the real files), write
# the folders the block reads with the CLI, then run the block as a script
_RUNNER = """
import dataclasses, json, sys
import hrnet_zoo
from hrnet_zoo.cli import main
from hrnet_zoo.weights.manifest import MANIFEST
for name, prefix in json.loads(sys.argv[1]).items():
    record = MANIFEST[name]
    MANIFEST[name] = dataclasses.replace(record, source=dataclasses.replace(record.source, hash_prefix=prefix))
for file, name, folder in json.loads(sys.argv[4]):
    assert main(['convert', file, '--model', name, '--out', folder]) == 0, (file, name, folder)
code = open(sys.argv[2], encoding='utf-8').read()
exec(compile(code, sys.argv[3], 'exec'), {'__name__': '__main__'})
"""

BLOCKS = _blocks()


@pytest.mark.subprocess
@pytest.mark.parametrize('line', [line for line, _, _ in BLOCKS], ids=lambda line: f'README.md:{line}')
def test_readme_python_block_runs(line, mirror, hub, tmp_path):
    code, why = next((code, why) for at, code, why in BLOCKS if at == line)
    if why:
        pytest.skip(f'marked in README: {why}')
    server, torch_home, made = mirror
    repos = _timm_repos(code)
    for repo_id in repos:
        _push_timm_repo(repo_id)
    for name in _direct_names(code):
        if name not in made:
            made[name] = data = fake_file(name)
            server.files[urlsplit(MANIFEST[name].source.direct_url).path] = data
    for file_name, name in HAND_FILES.items():
        if file_name in code:
            torch.save(official_state(name), tmp_path / file_name)
    converted = []
    for folder, name in CONVERTED.items():
        if f"'{folder}'" in code:
            file = tmp_path / MANIFEST[name].source.file_name
            file.write_bytes(made[name])  # the file the mirror serves: as downloaded by hand
            converted.append((str(file), name, folder))
    script = tmp_path / 'block.py'
    script.write_text(code, encoding='utf-8')
    named = {name: hashlib.sha256(made[name]).hexdigest()[:8] for name in _direct_names(code)}
    env = {k: v for k, v in os.environ.items() if not k.startswith(('HF_', 'HRNET_ZOO_'))}
    env.update({
        MIRROR_ENV: server.url,
        'TORCH_HOME': str(torch_home),
        'HF_HOME': str(tmp_path / 'hf_home'),
        # the loopback Hub for a block that reads timm's repos; elsewhere nothing listens: no other block may read it
        'HF_ENDPOINT': hub.url if repos else 'http://127.0.0.1:9',
        'PYTHONPATH': str(REPO_ROOT),
        **HUB_ENV,
    })  # fmt: skip
    args = [sys.executable, '-c', _RUNNER, json.dumps(named), str(script), f'README.md:{line}', json.dumps(converted)]
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f'README.md:{line} failed:\n{done.stderr[-3000:]}'
