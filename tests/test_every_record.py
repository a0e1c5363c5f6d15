"""Every direct-download record (OpenMMLab's zoos, the HRNet-OCR release) loads with ``pretrained=True`` from the
loopback mirror: a fake file in the record's own layout (``fake_records``, from OpenMMLab's configs) is served at the
record's URL path through ``HRNET_ZOO_MIRROR``, downloaded, hash-checked, converted, and the model holds exactly the
served backbone tensors. The per-layout details (head keys, the converted cache, faults) are in
test_direct_weights.py; this is the sweep over every record, so a wrong URL, layout, class count or model setting
of any one record fails here."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import replace
from urllib.parse import urlsplit

import pytest
import timm
import torch
from fake_records import fake_checkpoint, file_bytes
from file_server import FileServer

import hrnet_zoo  # noqa: F401  (registers the models)
from hrnet_zoo.weights.manifest import MANIFEST
from hrnet_zoo.weights.sources import MIRROR_ENV


def _same_file(name: str) -> tuple:
    """Records whose fake files are alike (one is made per run of these)."""
    record = MANIFEST[name]
    return record.source.layout, record.arch, record.num_classes, tuple(sorted(dict(record.model_kwargs).items()))


DIRECT = sorted((name for name, record in MANIFEST.items() if record.direct), key=lambda n: (_same_file(n), n))
# the prefix under which each layout stores the backbone (ours has none)
BACKBONE_PREFIX = {'official_seg': 'model.', 'inplace_abn': 'model.'}


def test_the_sweep_covers_every_direct_record():
    assert len(DIRECT) == len({r.source.direct_url for r in MANIFEST.values() if r.direct}) >= 190


@pytest.fixture(scope='module')
def mirror(tmp_path_factory):
    """One loopback file server, one torch.hub folder (emptied after each record: w48 files are 260 MB), and the
    fake file of the records alike, made once."""
    hub_dir = tmp_path_factory.mktemp('every_record_hub')
    before = torch.hub.get_dir()
    torch.hub.set_dir(str(hub_dir))
    server = FileServer({}).__enter__()
    yield server, hub_dir, {}
    server.__exit__(None, None, None)
    torch.hub.set_dir(before)


@pytest.mark.sweep
@pytest.mark.parametrize('name', DIRECT)
def test_every_direct_record_loads_from_the_mirror(name, mirror, monkeypatch):
    server, hub_dir, made = mirror
    key = _same_file(name)
    if key not in made:
        made.clear()  # one at a time: their bytes are large
        checkpoint = fake_checkpoint(name)
        made[key] = checkpoint, file_bytes(name, checkpoint)
    checkpoint, data = made[key]
    record = MANIFEST[name]
    path = urlsplit(record.source.direct_url).path
    server.files.clear()
    server.files[path] = data
    server.requests.clear()
    # the real prefix names the real file: this record's is set to the fake's
    source = replace(record.source, hash_prefix=hashlib.sha256(data).hexdigest()[:8])
    monkeypatch.setitem(MANIFEST, name, replace(record, source=source))
    monkeypatch.setenv(MIRROR_ENV, server.url)
    try:
        ours = timm.create_model(name, pretrained=True).state_dict()
        assert {requested for _, requested in server.requests} == {path}
    finally:
        shutil.rmtree(hub_dir / 'checkpoints', ignore_errors=True)
    theirs = checkpoint.get('state_dict', checkpoint)
    prefix = BACKBONE_PREFIX.get(record.source.layout, 'backbone.')
    served = {k.removeprefix(prefix): v for k, v in theirs.items() if k.startswith(prefix)}
    if record.input_order == 'bgr':  # mmdet's FCOS was trained on BGR: its first conv takes RGB reversed
        served['conv1.weight'] = served['conv1.weight'].flip(1)
    shared = [k for k in served if k in ours and not k.startswith(('last_layer', 'final_layer', 'neck', 'cls_head'))]
    assert len(shared) > 100, f'{name}: only {len(shared)} backbone tensors in common with the served file'
    for k in shared:
        assert torch.equal(ours[k], served[k]), f'{name}: {k} is not the served tensor'
