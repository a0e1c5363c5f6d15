"""Model cards, generated from the weights manifest with huggingface_hub's ``ModelCard``.

``model_cards/<arch>.<tag>.md`` in the repository is the output of :func:`write_cards`; a test fails when a
committed card differs from what this module produces, so cards never drift from the manifest.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from ..weights.manifest import CITATION, MANIFEST, PAPER, PAPER_ID, WeightsRecord, get_record

__all__ = ['model_card', 'write_cards']

# The Hub pipeline tag is the task's, except for ImageNet-pretrained backbones, which have no classifier.
_BACKBONE_PIPELINE_TAG = 'image-feature-extraction'
_LICENSE_NAMES = {'mit': 'MIT', 'apache-2.0': 'Apache-2.0'}
_SHOWN_LABELS = 10  # longer label lists are cut to their first names and a count
_OPENMMLAB = 'OpenMMLab'
_TIMM = '[timm](https://github.com/huggingface/pytorch-image-models)'

# What the output of each decoder is, for the card's "Outputs" line and its usage example.
_OUTPUTS = {
    'topdown_heatmaps': 'keypoint heatmaps',
    'segmentation_logits': 'class logits per pixel',
    'feature_pyramid': 'pyramid levels',
}
_HEATMAP_USAGE = 'heatmaps = model(x)  # (1, num_keypoints, H/4, W/4): one heatmap per keypoint'


def _eval_results(record: WeightsRecord) -> list[EvalResult] | None:
    if record.backbone_only:
        return None  # the ImageNet numbers belong to the classification model, not to this backbone + head
    return [
        EvalResult(
            task_type=record.task,
            dataset_type=record.dataset,
            dataset_name=record.dataset_name,
            dataset_split=metric.split,
            metric_type=metric.type,
            metric_name=metric.name,
            metric_value=metric.value,
        )
        for metric in record.metrics
    ]


def _license(record: WeightsRecord) -> str:
    return _LICENSE_NAMES.get(record.license, record.license)


def _trainer(record: WeightsRecord) -> str:
    """Who trained the weights, as the card names them."""
    by = record.source.trained_by
    return 'the HRNet authors at Microsoft' if by == 'Microsoft' else by


def _head_summary(record: WeightsRecord) -> str:
    spec = record.head_spec
    if record.decoder == spec.decoder:
        return spec.summary
    # e.g. a face or hand model: HRNetV2's head, trained to give one heatmap per keypoint instead of class logits
    head = spec.summary.split(', then ')[0]
    return (
        f'{head}, then a 1x1 conv + BN + ReLU and a 1x1 conv giving one heatmap per keypoint at 1/4 resolution '
        '(per-keypoint heatmaps, not class logits)'
    )


def _outputs(record: WeightsRecord) -> str:
    if record.decoder == 'feature_pyramid':
        return '5 pyramid levels of 256 channels (strides 4 to 64); no classifier'
    what = _OUTPUTS[record.decoder]
    names = record.label_names
    if not names:
        return f'{record.num_classes} {what}'
    shown = ', '.join(names[:_SHOWN_LABELS])
    more = f', ... ({len(names)} in all)' if len(names) > _SHOWN_LABELS else ''
    return f'{record.num_classes} {what} ({shown}{more})'


def _decoding(record: WeightsRecord) -> str:
    if record.decoder != 'topdown_heatmaps':
        return ''
    shift = 'on' if record.shift_heatmap else 'off'
    return f'\n- Heatmap decoding it was evaluated with: {record.decoding} (flip-test heatmap shift {shift})'


def _papers(record: WeightsRecord) -> str:
    papers = [f'*{PAPER}* (Wang et al., TPAMI 2020, {PAPER_ID})']
    if record.head == 'v2_ocr':
        papers.append(
            '*Object-Contextual Representations for Semantic Segmentation* (Yuan, Chen and Wang, ECCV 2020, '
            'arXiv:1909.11065)'
        )
    return ' and '.join(papers)


def _usage(record: WeightsRecord) -> str:
    size = record.input_size
    usage = _HEATMAP_USAGE if record.decoder == 'topdown_heatmaps' else record.head_spec.usage
    lines = [
        'import hrnet_zoo  # registers the HRNet models with timm',
        'import timm',
        'import torch',
        '',
        f"model = timm.create_model('{record.name}', pretrained=True).eval()",
        'config = timm.data.resolve_model_data_config(model)  # mean, std, input size',
        f'x = torch.randn(1, {size[0]}, {size[1]}, {size[2]})  # a normalised image batch',
        'with torch.no_grad():',
        f'    {usage}',
        '',
        '# the multi-branch backbone: stem (64 ch, stride 2) and four branches (strides 4 to 32)',
        f"backbone = timm.create_model('{record.name}', pretrained=True, features_only=True)",
    ]
    return '\n'.join(lines)


def _provenance(record: WeightsRecord) -> tuple[str, str, str]:
    """Where the weights come from: the intro's clause, the source section and the credit line."""
    source = record.source
    license = _license(record)
    trainer = _trainer(record)
    if not record.released_here:  # read from another organisation's repo (timm's ImageNet backbones)
        provenance = (
            f'read by timm from [{record.hf_hub_id}](https://huggingface.co/{record.hf_hub_id}), where timm hosts '
            'them; hrnet_zoo does not re-upload them'
        )
        conversion = (
            f"- Weights: `model.safetensors` of {record.hf_hub_id} (timm's copy; its pickle is never read)\n"
            f'- Trained by {trainer}, code at {source.codebase}\n'
            '- At load time the ImageNet classification head (`incre_modules`, `downsamp_modules`, `final_layer`,\n'
            "  `classifier`) is dropped; every backbone key is timm's, one to one, and loads strictly."
        )
        credit = (
            f'The weights were trained by {trainer} and are released under the {license} license (as timm records it).'
        )
        return provenance, conversion, credit
    if source.trained_by == _OPENMMLAB:
        trained = f'- Trained by OpenMMLab with {source.codebase}, config `{source.config}`'
        credit = (
            f'The weights were trained and released by OpenMMLab ({source.codebase}, config `{source.config}`) under\n'
            'the Apache-2.0 license; the HRNet architecture and its official code are by the HRNet authors\n'
            "(Microsoft, MIT license, https://github.com/HRNet). This conversion keeps the weights' license."
        )
    else:
        trained = f'- Trained by {trainer}, code at {source.codebase}'
        credit = (
            f'The weights were trained and released by {trainer} under the {license} license, with the official\n'
            'code at https://github.com/HRNet; this conversion keeps that license.'
        )
    hand = f'`timm.create_model({record.name!r}, pretrained=True, pretrained_cfg_overlay=dict(file=PATH))`'
    if record.direct:
        check = f'its sha256 must start with `{source.hash_prefix}`' if source.hash_prefix else 'no hash in its name'
        provenance = (
            f'trained by {trainer}; `pretrained=True` downloads the original file and converts it on load for\n{_TIMM}'
        )
        conversion = (
            f'- Weights: `{source.file_name}`, downloaded from {source.direct_url} ({check})\n'
            f'{trained}\n'
            "- `pretrained=True` fetches it into torch.hub's cache (through `HRNET_ZOO_MIRROR` when set), converts\n"
            "  its keys to these models' (checked against the model) and keeps a safetensors copy beside it, which\n"
            '  every later load reads alone.\n'
            f'- A copy downloaded by hand loads with {hand}.'
        )
        if record.published:
            conversion += (
                f'\n- Also published, converted, as [{record.hf_hub_id}](https://huggingface.co/{record.hf_hub_id}).'
            )
        return provenance, conversion, credit
    sha = f'`{source.sha256}`' if source.sha256 else 'not recorded yet'
    if record.published:
        provenance = f'trained by {trainer}; the official file, converted to safetensors for\n{_TIMM} by hrnet_zoo'
    else:
        provenance = (
            f'trained by {trainer}; the official file has no direct download, so `pretrained=True` loads it once\n'
            f'`hrnet-zoo release` has published it (not yet), or from a copy downloaded by hand'
        )
    where = 'published' if record.published else 'to be published by `hrnet-zoo release` (not there yet)'
    conversion = (
        f'- Official release: `{source.file_name}` from {source.codebase} ({source.url}); no direct download\n'
        f'- sha256 of the official file: {sha}\n'
        f'- Hub copy: {record.hf_hub_id}, {where}; until then load the downloaded file with\n  {hand}\n'
        f'- Converted with `hrnet-zoo convert {source.file_name} --model {record.name} --out DIR`; the keys are the\n'
        '  official ones, checked against the model before writing.'
    )
    return provenance, conversion, credit


def model_card(name: str) -> ModelCard:
    """The card of ``<arch>.<tag>``: front matter (license, datasets, model-index) and a body, from its record."""
    record = get_record(name)
    size = 'x'.join(str(s) for s in record.input_size[1:])
    data = ModelCardData(
        library_name='timm',
        license=record.license,
        datasets=[record.dataset],
        tags=['hrnet', 'hrnet_zoo', 'timm', record.task],
        pipeline_tag=_BACKBONE_PIPELINE_TAG if record.backbone_only else record.task,
        model_name=record.name,
        eval_results=_eval_results(record),
    )
    upsample = record.upsample_mode + (f', align_corners={record.align_corners}' if record.align_corners else '')
    metrics = '\n'.join(f'- {m.name}: {m.value} ({record.dataset_name}, {m.split})' for m in record.metrics)
    provenance, conversion, credit = _provenance(record)
    # the OpenMMLab credit note is the credit section's now
    notes = ''.join(f'\n- {note}' for note in record.notes if not note.startswith('Trained and released by'))
    body = f"""# Model card for {record.name}

{record.head_spec.display_name}-{record.width.upper()} from {_papers(record)},
{record.task.replace('-', ' ')} weights trained on {record.dataset_name}, {provenance}.

Head: {_head_summary(record)}.

## Model details
- Architecture: `{record.arch}` (width {record.width}, head {record.head})
- Params (M): {record.params / 1e6:.3f}
- GFLOPs at {size}: {record.gflops:.2f} (conv + linear multiply-adds / 2^30, the official tables' convention)
- Input size: {size}, {_normalisation(record)}
- Outputs: {_outputs(record)}{_decoding(record)}
- Fuse-layer upsampling it was trained with: {upsample} (set by this tag; `upsample_mode=` overrides it){notes}

## Published results (as reported by {_trainer(record)})
{metrics}

## Usage
Requires `pip install hrnet_zoo`: timm only knows these architectures once `hrnet_zoo` is imported.

```python
{_usage(record)}
```

## Source and conversion
{conversion}

## License and credit
{credit} Please cite the paper:

```bibtex
{CITATION}
```
"""
    return ModelCard(f'---\n{data.to_yaml()}\n---\n\n{body}')


def _normalisation(record: WeightsRecord) -> str:
    if (record.mean, record.std) == (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD):
        return 'ImageNet mean/std normalisation'
    return f'mean {record.mean}, std {record.std}'


def write_cards(out_dir: str | Path, names: list[str] | None = None) -> list[Path]:
    """Write ``<name>.md`` for every manifest entry (or ``names``) into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names or list(MANIFEST):
        path = out_dir / f'{name}.md'
        path.write_text(str(model_card(name)) + '\n', encoding='utf-8')
        paths.append(path)
    return paths
