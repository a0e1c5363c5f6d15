"""hrnet_zoo.convert: every released layout end to end against timm's own HRNet, and every refusal.

The inputs are written out by hand in official_layouts.py (no hrnet_zoo code); the reference outputs are timm's
raw branches (``features_only=True, feature_location=''``) with the same source tensors loaded, and the heads
computed with torch.nn.functional from the hand-made head tensors.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import json
import pickle
from pathlib import Path

import official_layouts as ol
import pytest
import timm
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from timm.models._hub import load_model_config_from_path
from torch import Tensor, nn

import hrnet_zoo
from hrnet_zoo.cli import main as cli
from hrnet_zoo.publish.convert import convert_checkpoint, convert_state_dict, load_checkpoint
from hrnet_zoo.weights import MANIFEST

TOL = 1e-5
SMALL = 'w18_small_v1'


pytestmark = pytest.mark.usefixtures('one_thread')


class _StubCard:
    def __init__(self, name: str) -> None:
        self.name = name

    def save(self, path) -> None:
        Path(path).write_text(f'# {self.name} (stub card)\n')


@pytest.fixture(autouse=True)
def model_cards(request, monkeypatch):
    """A stand-in for the model card, so that these tests exercise the converter alone; tests that use the
    ``real_card`` fixture write the real one."""
    if 'real_card' not in request.fixturenames:
        monkeypatch.setattr('hrnet_zoo.publish.convert.model_card', _StubCard)


class Source:
    """A randomised timm HRNet of one width, its state_dict, and timm's reference branches on one input."""

    def __init__(self, width: str, seed: int) -> None:
        self.width = width
        self.sd = {k: v.clone() for k, v in ol.randomised_timm_hrnet(width, seed).state_dict().items()}
        self.backbone = ol.backbone(self.sd)
        self.x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(seed))  # sides: multiples of 32
        with torch.no_grad():
            self.ref = ol.timm_features(width, self.backbone)(self.x)
        self.channels = [r.shape[1] for r in self.ref[1:]]
        assert all(0.01 < r.std() < 10 for r in self.ref)  # activations neither vanished nor blown up


@pytest.fixture(scope='module')
def small() -> Source:
    return Source(SMALL, seed=0)


@pytest.fixture(scope='module')
def w18() -> Source:
    return Source('w18', seed=5)


def save_pth(obj, path: Path) -> Path:
    torch.save(obj, path)
    return path


def our_model(arch: str, tensors: dict[str, Tensor], num_classes: int | None = None) -> nn.Module:
    """Our model with nearest fuse upsampling (as timm), the converted tensors loaded; only the head may be left."""
    kwargs = {} if num_classes is None else {'num_classes': num_classes}
    model = timm.create_model(arch, upsample_mode='nearest', align_corners=None, **kwargs).eval()
    result = model.load_state_dict(tensors, strict=False)
    assert not result.unexpected_keys
    assert all(k.startswith(('final_layer.', 'last_layer.', 'neck.')) for k in result.missing_keys)
    return model


def assert_close(ours: Tensor, ref: Tensor) -> None:
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max().item() < TOL * max(1.0, ref.abs().max().item())


def check_backbone(model: nn.Module, src: Source, v1: bool = False) -> None:
    """Stem and branches against timm's; V1 leaves branches 1-3 of the last unit unfused, so only branch 0."""
    with torch.no_grad():
        feats = model.forward_intermediates(src.x, indices=[0, 1, 2, 3, 4], intermediates_only=True)
    for ours, ref in list(zip(feats, src.ref))[: 2 if v1 else 5]:
        assert ours.shape == ref.shape
        assert (ours - ref).abs().max().item() < TOL


def check_tensors(out: dict[str, Tensor], expected: dict[str, Tensor]) -> None:
    """Every tensor at its official name, bit for bit."""
    assert not expected.keys() - out.keys()
    for k, v in expected.items():
        assert torch.equal(out[k], v), k


def convert_file(checkpoint: Path, model: str, out: Path, via_cli: bool) -> dict[str, Tensor]:
    if via_cli:
        assert cli(['convert', str(checkpoint), '--model', model, '--out', str(out)]) == 0
    else:
        assert convert_checkpoint(checkpoint, model, out) == out
    return load_file(out / 'model.safetensors')


# ---------------------------------------------------------------------------------------------------------------
# Layouts


@pytest.mark.parametrize(
    'layout, via',
    [('fullmodel', 'python'), ('fullmodel_wrapped', 'state_dict'), ('inplace_abn', 'state_dict'), ('mmseg', 'cli')],
)
def test_segmentation_layouts(small, tmp_path, layout, via):
    head = ol.seg_head(sum(small.channels), 19, conv_bias=layout != 'mmseg')  # mmseg's conv has no bias
    build = {
        'fullmodel': lambda: ol.seg_fullmodel(small.backbone, head),
        'fullmodel_wrapped': lambda: ol.seg_fullmodel(small.backbone, head, wrap=True),
        'inplace_abn': lambda: ol.seg_fullmodel(small.backbone, head, abn=True),
        'mmseg': lambda: ol.mmseg(small.backbone, head),
    }[layout]
    ckpt = save_pth(build(), tmp_path / f'{layout}.pth')
    if via == 'state_dict':
        out = convert_state_dict(load_checkpoint(ckpt), 'hrnetv2_w18_small_v1.cityscapes')
    else:  # default tag: cityscapes
        out = convert_file(ckpt, 'hrnetv2_w18_small_v1', tmp_path / 'out', via_cli=via == 'cli')

    expected = {**small.backbone, **head}
    if layout == 'inplace_abn':  # no counters in the file: fresh zeros
        nbt = {k for k in expected if k.endswith('num_batches_tracked')}
        assert all(out[k].dtype == torch.int64 and out[k].item() == 0 for k in nbt)
        expected = {k: v for k, v in expected.items() if k not in nbt}
    check_tensors(out, expected)
    model = our_model('hrnetv2_w18_small_v1', out, num_classes=19)
    check_backbone(model, small)
    with torch.no_grad():
        assert_close(model(small.x), ol.seg_logits(small.ref[1:], head))


@pytest.mark.parametrize('layout', ['official', 'mmpose0', 'mmpose1'])
def test_pose_layouts(small, tmp_path, layout):
    head = ol.pose_head(small.channels[0], 17)
    bb = ol.pose_backbone(small.sd, SMALL)
    obj = {'official': {**bb, **head}, 'mmpose0': ol.mmpose(bb, head, 0), 'mmpose1': ol.mmpose(bb, head, 1)}[layout]
    sd = load_checkpoint(save_pth(obj, tmp_path / 'pose.pth'))
    out = convert_state_dict(sd, 'hrnetv1_w18_small_v1')  # no tag: the head's 17 joints come from the file
    assert out.keys() == timm.create_model('hrnetv1_w18_small_v1', num_classes=17).state_dict().keys()
    check_tensors(out, {**bb, **head})
    model = our_model('hrnetv1_w18_small_v1', out, num_classes=17)
    check_backbone(model, small, v1=True)
    with torch.no_grad():
        assert_close(model(small.x), ol.heatmaps(small.ref[1:], head))


def test_pose_w32_tagged(tmp_path):
    """A tagged standard-width pose model; the forward is checked on small_v1 and w18 (cheaper)."""
    sd = ol.randomised_timm_hrnet('w32', seed=4).state_dict()
    head = ol.pose_head(32, 17)
    bb = ol.pose_backbone(sd, 'w32')
    # the pose repo's training checkpoint: DataParallel keys inside a dict that also names the model
    wrapped = {f'module.{k}': v for k, v in {**bb, **head}.items()}
    ckpt = save_pth({'epoch': 210, 'model': 'pose_hrnet', 'state_dict': wrapped}, tmp_path / 'checkpoint.pth')
    out = convert_file(ckpt, 'hrnetv1_w32.coco_256x192', tmp_path / 'out', via_cli=False)
    assert out.keys() == {**bb, **head}.keys()
    check_tensors(out, {**bb, **head})


@pytest.mark.parametrize('v1', [False, True], ids=['mmdet', 'mmdet_v1'])
def test_detection_layouts(small, tmp_path, v1):
    neck = ol.hrfpn(sum(small.channels))
    sd = load_checkpoint(save_pth(ol.mmdet(small.backbone, neck, v1=v1), tmp_path / 'det.pth'))
    out = convert_state_dict(sd, 'hrnetv2p_w18_small_v1')  # rpn / roi / bbox heads dropped
    check_tensors(out, {**small.backbone, **neck})
    model = our_model('hrnetv2p_w18_small_v1', out)
    check_backbone(model, small)
    with torch.no_grad():
        for ours, ref in zip(model(small.x), ol.pyramid(small.ref[1:], neck), strict=True):
            assert_close(ours, ref)


def test_detection_w18_tagged_via_cli(w18, tmp_path, capsys):
    neck = ol.hrfpn(sum(w18.channels))
    ckpt = save_pth(ol.mmdet(w18.backbone, neck), tmp_path / 'faster_rcnn_hrnetv2p_w18_1x.pth')
    out = convert_file(ckpt, 'hrnetv2p_w18.coco', tmp_path / 'out', via_cli=True)
    assert capsys.readouterr().out.strip() == f'wrote {tmp_path / "out"}'
    check_tensors(out, {**w18.backbone, **neck})
    model = our_model('hrnetv2p_w18', out)
    check_backbone(model, w18)
    with torch.no_grad():
        for ours, ref in zip(model(w18.x), ol.pyramid(w18.ref[1:], neck), strict=True):
            assert_close(ours, ref)


@pytest.mark.parametrize(
    'layout, model',
    [
        ('official_cls', 'hrnetv1_w18_small_v1.in1k'),  # V1: the unused fuse rows are dropped too
        ('timm_safetensors', 'hrnetv2p_w18_small_v1'),  # default tag: in1k
        ('mmpretrain', 'hrnetv2_w18_small_v1.in1k'),
        ('seg_into_in1k', 'hrnetv2_w18_small_v1.in1k'),  # an ImageNet tag ships the backbone only
    ],
)
def test_backbone_only(small, tmp_path, layout, model):
    if layout == 'timm_safetensors':
        ckpt = tmp_path / 'model.safetensors'
        save_file(small.sd, ckpt)
    else:
        obj = {
            'official_cls': small.sd,
            'mmpretrain': ol.mmpretrain(small.backbone),
            'seg_into_in1k': ol.seg_fullmodel(small.backbone, ol.seg_head(240, 19)),
        }[layout]
        ckpt = save_pth(obj, tmp_path / 'in.pth')
    if layout in ('official_cls', 'timm_safetensors'):
        out = convert_file(ckpt, model, tmp_path / 'out', via_cli=layout == 'timm_safetensors')
    else:
        out = convert_state_dict(load_checkpoint(ckpt), model)
    v1 = model.startswith('hrnetv1')
    expected = ol.pose_backbone(small.sd, SMALL) if v1 else small.backbone
    assert out.keys() == expected.keys()  # backbone only: the cls head and any task head are gone
    check_tensors(out, expected)
    check_backbone(our_model(model.split('.')[0], out), small, v1=v1)


# ---------------------------------------------------------------------------------------------------------------
# The output folder


@pytest.fixture
def real_card() -> None:
    """Requested by tests that write the real model card (see ``model_cards``)."""


def test_output_folder(small, tmp_path, real_card):
    ckpt = save_pth(ol.seg_fullmodel(small.backbone, ol.seg_head(240, 19)), tmp_path / 'seg.pth')
    out = convert_checkpoint(ckpt, 'hrnetv2_w18_small_v1.cityscapes', tmp_path / 'out')
    assert sorted(p.name for p in out.iterdir()) == ['README.md', 'config.json', 'model.safetensors']
    assert 'hrnetv2_w18_small_v1.cityscapes' in (out / 'README.md').read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith('.')] == []  # no temp folders left

    with safe_open(out / 'model.safetensors', 'pt') as f:
        meta = f.metadata()
    assert meta['arch'] == 'hrnetv2_w18_small_v1' and meta['tag'] == 'cityscapes'
    assert meta['source_sha256'] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert meta['source_file'] == 'seg.pth' and meta['hrnet_zoo_version'] == hrnet_zoo.__version__

    cfg = json.loads((out / 'config.json').read_text())
    assert cfg['architecture'] == 'hrnetv2_w18_small_v1' and cfg['num_classes'] == 19
    assert cfg['pretrained_cfg']['tag'] == 'cityscapes'
    assert cfg['model_args']['upsample_mode'] == 'bilinear' and cfg['model_args']['align_corners'] is False
    pretrained_cfg, arch, model_args = load_model_config_from_path(out)
    assert arch == cfg['architecture'] and model_args == cfg['model_args']
    model = timm.create_model(arch, **model_args)
    model.load_state_dict(load_file(out / 'model.safetensors'), strict=True)
    assert model.upsample_mode == 'bilinear'
    tensors = load_file(out / 'model.safetensors')
    assert all(t.is_contiguous() and t.device.type == 'cpu' for t in tensors.values())


def test_backbone_only_folder_loads_through_timm(small, tmp_path):
    """timm's own local-dir loader fills the untrained head and loads every backbone key."""
    ckpt = tmp_path / 'model.safetensors'
    save_file(small.sd, ckpt)
    out = convert_checkpoint(ckpt, 'hrnetv2_w18_small_v1.in1k', tmp_path / 'out')
    model = timm.create_model(f'local-dir:{out}', pretrained=True).eval()
    own = model.state_dict()
    check_tensors(own, small.backbone)
    assert model.num_classes == MANIFEST['hrnetv2_w18_small_v1.in1k'].num_classes


def test_replaces_a_previous_conversion_only_after_success(small, tmp_path):
    ckpt = save_pth(small.sd, tmp_path / 'cls.pth')
    out = tmp_path / 'out'
    convert_checkpoint(ckpt, 'hrnetv2_w18_small_v1.in1k', out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    with pytest.raises(ValueError, match='w18_small_v1'):  # fails after loading: the folder is untouched
        convert_checkpoint(ckpt, 'hrnetv2_w32.in1k', out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    convert_checkpoint(ckpt, 'hrnetv2p_w18_small_v1.in1k', out)  # success replaces it
    with safe_open(out / 'model.safetensors', 'pt') as f:
        assert f.metadata()['arch'] == 'hrnetv2p_w18_small_v1'
    assert json.loads((out / 'config.json').read_text())['architecture'] == 'hrnetv2p_w18_small_v1'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['cls.pth', 'out']  # no temp or old folders left


def test_failed_convert_leaves_no_folder(tmp_path):
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint\n')
    with pytest.raises(ValueError, match='notes.pth'):
        convert_checkpoint(text, 'hrnetv2_w18_small_v1', tmp_path / 'out')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['notes.pth']


def test_failure_while_writing_leaves_nothing_half_written(small, tmp_path, monkeypatch):
    """The card is written last: failing there must leave neither a partial folder nor a changed one."""
    ckpt = save_pth(small.sd, tmp_path / 'cls.pth')

    class Broken(_StubCard):
        def save(self, path) -> None:
            assert (Path(path).parent / 'model.safetensors').exists()  # the weights were written already
            raise OSError('disk full')

    monkeypatch.setattr('hrnet_zoo.publish.convert.model_card', Broken)
    with pytest.raises(OSError, match='disk full'):
        convert_checkpoint(ckpt, 'hrnetv2_w18_small_v1.in1k', tmp_path / 'new')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['cls.pth']

    monkeypatch.setattr('hrnet_zoo.publish.convert.model_card', _StubCard)
    out = convert_checkpoint(ckpt, 'hrnetv2_w18_small_v1.in1k', tmp_path / 'out')
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr('hrnet_zoo.publish.convert.model_card', Broken)
    with pytest.raises(OSError, match='disk full'):
        convert_checkpoint(ckpt, 'hrnetv2p_w18_small_v1.in1k', out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['cls.pth', 'out']


def test_refuses_to_replace_an_unrelated_folder(small, tmp_path):
    ckpt = save_pth(small.sd, tmp_path / 'cls.pth')
    home = tmp_path / 'home'
    home.mkdir()
    (home / 'thesis.tex').write_text('years of work')
    with pytest.raises(FileExistsError, match='thesis.tex'):
        convert_checkpoint(ckpt, 'hrnetv2_w18_small_v1.in1k', home)
    assert [p.name for p in home.iterdir()] == ['thesis.tex']


# ---------------------------------------------------------------------------------------------------------------
# Refusals


class Payload:
    """Unpickling this runs code: it writes a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f'open({str(self.marker)!r}, "w").write("ran")',)


@pytest.mark.filterwarnings('ignore:Detected pickle protocol')
@pytest.mark.parametrize('writer', ['torch', 'pickle'])
def test_refuses_code_in_a_pickle(small, tmp_path, writer):
    marker = tmp_path / 'marker'
    evil = tmp_path / 'evil.pth'
    obj = {**small.backbone, 'x': Payload(marker)}
    if writer == 'torch':
        torch.save(obj, evil)
    else:
        evil.write_bytes(pickle.dumps(obj, protocol=4))
    with pytest.raises(ValueError, match='not a plain weights file') as err:
        load_checkpoint(evil)
    assert str(evil) in str(err.value)
    with pytest.raises(ValueError, match='not a plain weights file'):
        convert_checkpoint(evil, 'hrnetv2_w18_small_v1.in1k', tmp_path / 'out')
    assert not marker.exists() and not (tmp_path / 'out').exists()
    # the payload is live: an unrestricted load runs it (so the checks above can fail)
    torch.load(evil, weights_only=False) if writer == 'torch' else pickle.loads(evil.read_bytes())
    assert marker.read_text() == 'ran'


def test_refuses_another_width(w18, tmp_path):
    ckpt = save_pth(w18.sd, tmp_path / 'w18.pth')
    with pytest.raises(ValueError, match=r'w18 weights.*hrnetv2p_w32 is w32'):
        convert_checkpoint(ckpt, 'hrnetv2p_w32.coco', tmp_path / 'out')
    assert not (tmp_path / 'out').exists()
    with pytest.raises(ValueError, match=r'w18 weights.*w18_small_v2'):  # same C, other layer1
        convert_state_dict(w18.sd, 'hrnetv2_w18_small_v2')


def test_lists_missing_unexpected_and_reshaped_keys(small):
    sd = dict(small.backbone)
    removed = sorted(k for k in sd if k.startswith('stage4.0.fuse_layers.3.'))[:8]
    for k in removed:
        del sd[k]
    sd['stage2.0.extra.weight'] = torch.zeros(3)
    sd['bn2.weight'] = torch.ones(65)
    with pytest.raises(ValueError) as err:
        convert_state_dict(sd, 'hrnetv2_w18_small_v1')
    msg = str(err.value)
    assert '8 missing' in msg and removed[0] in msg and '(2 more)' in msg
    assert '1 unexpected: stage2.0.extra.weight' in msg
    assert '1 with another shape: bn2.weight [65] (model: [64])' in msg
    assert '\n' not in msg


def test_task_tag_needs_its_head(small):
    with pytest.raises(ValueError, match=r'hrnetv2_w18_small_v1\.in1k'):
        convert_state_dict(small.sd, 'hrnetv2_w18_small_v1.cityscapes')


@pytest.mark.parametrize(
    'content, match',
    [
        ('truncated', 'not a readable .safetensors file'),
        ('list', 'expected a state_dict'),
        ('no_stem', 'not an HRNet checkpoint'),
        ('empty', 'not a PyTorch checkpoint'),
    ],
)
def test_refuses_non_checkpoints(small, tmp_path, content, match):
    path = tmp_path / ('x.safetensors' if content == 'truncated' else 'x.pth')
    if content == 'truncated':
        save_file(small.backbone, path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif content == 'list':
        torch.save([torch.zeros(1)], path)
    elif content == 'no_stem':
        torch.save({'fc.weight': torch.zeros(1)}, path)
    else:
        path.write_bytes(b'')
    with pytest.raises(ValueError, match=match) as err:
        convert_state_dict(load_checkpoint(path), 'hrnetv2_w18_small_v1')
    assert content == 'no_stem' or str(path) in str(err.value)


def test_manifest_sha256(small, tmp_path, monkeypatch):
    ckpt = save_pth(small.sd, tmp_path / 'cls.pth')
    name = 'hrnetv2_w18_small_v1.in1k'
    record = MANIFEST[name]
    wrong = 'ab' * 32
    monkeypatch.setitem(
        MANIFEST, name, dataclasses.replace(record, source=dataclasses.replace(record.source, sha256=wrong))
    )
    with pytest.raises(ValueError, match=wrong) as err:
        convert_checkpoint(ckpt, name, tmp_path / 'out')
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert digest in str(err.value) and not (tmp_path / 'out').exists()
    monkeypatch.setitem(
        MANIFEST, name, dataclasses.replace(record, source=dataclasses.replace(record.source, sha256=digest))
    )
    assert convert_checkpoint(ckpt, name, tmp_path / 'out').is_dir()


@pytest.mark.parametrize('kind', ['missing', 'directory', 'text'])
def test_cli_errors_are_one_line(tmp_path, capsys, kind):
    path = tmp_path / 'ckpt.pth'
    if kind == 'directory':
        path.mkdir()
    elif kind == 'text':
        path.write_text('hello\n')
    assert cli(['convert', str(path), '--model', 'hrnetv2_w18_small_v1', '--out', str(tmp_path / 'out')]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and 'Traceback' not in captured.err
    assert captured.out == '' and not (tmp_path / 'out').exists()
