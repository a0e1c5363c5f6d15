"""The main job, offline: official checkpoint -> convert -> publish with its card -> fetch through timm -> check.

``hrnet-zoo demo`` starts a local Hub-protocol server (unless ``--endpoint`` names one), then runs the client
side in a child process, because huggingface_hub reads ``HF_ENDPOINT`` once, when it is first imported.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import timm
import torch

from .hub.server import HubServer
from .publish.client import check_folder, publish
from .publish.convert import convert_checkpoint
from .specs import get_spec
from .weights.manifest import get_record

__all__ = ['run_demo']


def _official_checkpoint(model_name: str, path: Path) -> None:
    """Write a randomly initialised checkpoint in the official layout of ``model_name``'s source.

    The backbone comes from timm's own HRNet (whose keys are the official ones, with its ImageNet head); a task
    head comes from a fresh model of ours, whose head keys are the official ones too. Segmentation checkpoints get
    the ``model.`` prefix of the official FullModel, detection ones mmdetection's names.
    """
    record = get_record(model_name)
    state = timm.create_model(get_spec(record.width).timm_name).state_dict()  # official keys, with the ImageNet head
    if not record.backbone_only:  # ImageNet releases carry only the classification head
        torch.manual_seed(0)
        fresh = timm.create_model(record.arch, num_classes=record.num_classes)
        prefix = record.head_spec.prefixes
        state.update({k: v for k, v in fresh.state_dict().items() if k.startswith(prefix)})
    if record.source.layout == 'official_seg':
        state = {f'model.{k}': v for k, v in state.items()}
    elif record.source.layout == 'mmdet':
        state = {_mmdet_name(k, record.head_spec.prefixes): v for k, v in state.items()}
    torch.save(state, path)


def _mmdet_name(key: str, neck_prefix: tuple[str, ...]) -> str:
    """mmdetection's name of one of our keys: the backbone under ``backbone.``, the HRFPN convs in ConvModules."""
    if not key.startswith(neck_prefix):
        return f'backbone.{key}'
    parts = key.split('.')  # neck.reduction_conv.weight -> neck.reduction_conv.conv.weight, likewise fpn_convs.i
    return '.'.join([*parts[:-1], 'conv', parts[-1]])


def _client(model_name: str, workdir: Path) -> int:
    """Runs with HF_ENDPOINT already set: convert, publish, fetch back, compare, print."""
    record = get_record(model_name)
    checkpoint = workdir / record.source.file_name
    print(f'1. official checkpoint ({record.source.layout} layout, random weights): {checkpoint}')
    _official_checkpoint(record.name, checkpoint)

    out = convert_checkpoint(checkpoint, record.name, workdir / 'converted')
    print(f'2. converted: {", ".join(sorted(p.name for p in out.iterdir()))} in {out}')

    result = publish(out, record.hf_hub_id, commit_message=f'{record.name} (hrnet_zoo demo)')
    print(f'3. published {result.repo_id} at {result.commit_id[:12]} (downloaded again and verified)')

    cache = workdir / 'fetch-cache'
    fetched = timm.create_model(record.name, pretrained=True, cache_dir=cache).eval()
    local = check_folder(out).eval()
    x = torch.randn(1, 3, 256, 320, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got, want = fetched(x), local(x)
    got, want = (got, want) if isinstance(got, list) else ([got], [want])
    diff = max((g - w).abs().max().item() for g, w in zip(got, want))
    print(f"4. timm.create_model('{record.name}', pretrained=True) fetched {record.hf_hub_id}")
    print(f'   output {[tuple(g.shape) for g in got]}; max |fetched - converted| = {diff:.1e}')

    backbone = timm.create_model(record.name, pretrained=True, features_only=True, cache_dir=cache).eval()
    with torch.no_grad():
        features = backbone(x)
    print('5. features_only=True, pretrained=True: multi-branch features for a 256x320 input')
    for info, feature in zip(backbone.feature_info.get_dicts(), features):
        print(f'   {info["module"]:<16} stride {info["reduction"]:>2}  {tuple(feature.shape)}')
    if diff != 0.0:
        print('FAILED: the fetched model differs from the converted one', file=sys.stderr)
        return 1
    print('OK: the weights fetched through timm are bit-identical to the converted checkpoint')
    return 0


def run_demo(model: str = 'hrnetv2_w18_small_v1.cityscapes', endpoint: str | None = None,
             workdir: str | Path | None = None) -> int:  # fmt: skip
    """Run the main job; returns the exit status."""
    with tempfile.TemporaryDirectory(prefix='hrnet_zoo_demo_') as tmp:
        work = Path(workdir) if workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        server = None
        if endpoint is None:
            server = HubServer(work / 'hub')
            server.start()
            endpoint = server.url
            print(f'0. local Hub-protocol server at {endpoint} (files in {work / "hub"})')
        env = dict(os.environ, HF_ENDPOINT=endpoint, HF_HUB_DISABLE_XET='1', HF_HOME=str(work / 'hf-home'),
                   HF_HUB_DISABLE_TELEMETRY='1', HF_HUB_DISABLE_PROGRESS_BARS='1')  # fmt: skip
        try:
            cmd = [sys.executable, '-m', 'hrnet_zoo.demo', '--model', model, '--workdir', str(work)]
            return subprocess.run(cmd, env=env, check=False).returncode
        finally:
            if server is not None:
                server.stop()


if __name__ == '__main__':  # the client half, started by run_demo with HF_ENDPOINT set
    parser = argparse.ArgumentParser()
    parser.add_argument('--model', required=True)
    parser.add_argument('--workdir', type=Path, required=True)
    args = parser.parse_args()
    sys.exit(_client(args.model, args.workdir))
