"""Model cards, generated from the weights manifest with huggingface_hub's ``ModelCard``.

``model_cards/<arch>.<tag>.md`` in the repository is the output of :func:`write_cards`; a test fails when a
committed card differs from what this module produces, so cards never drift from the manifest.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..weights.manifest import CITATION, MANIFEST, WeightsRecord, get_record

__all__ = ['model_card', 'write_cards']

# The Hub pipeline tag is the task's, except for ImageNet-pretrained backbones, which have no classifier.
_BACKBONE_PIPELINE_TAG = 'image-feature-extraction'
_LICENSE_NAMES = {'mit': 'MIT', 'apache-2.0': 'Apache 2.0'}


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


def _usage(record: WeightsRecord) -> str:
    size = record.input_size
    lines = [
        'import hrnet_zoo  # registers the HRNet models with timm',
        'import timm',
        'import torch',
        '',
        f"model = timm.create_model('{record.name}', pretrained=True).eval()",
        'config = timm.data.resolve_model_data_config(model)  # mean, std, input size',
        f'x = torch.randn(1, {size[0]}, {size[1]}, {size[2]})  # a normalised image batch',
        'with torch.no_grad():',
    ]
    lines += [
        f'    {record.head_spec.usage}',
        '',
        '# the multi-branch backbone: stem (64 ch, stride 2) and four branches (strides 4 to 32)',
        f"backbone = timm.create_model('{record.name}', pretrained=True, features_only=True)",
    ]
    return '\n'.join(lines)


def _provenance(record: WeightsRecord) -> tuple[str, str, str]:
    """Where the weights come from: the intro's clause, the source section and the credit line."""
    source = record.source
    license = _LICENSE_NAMES.get(record.license, record.license)
    if not record.released_here:  # read from another organisation's repo (timm's ImageNet backbones)
        provenance = (
            f'read by timm from [{record.hf_hub_id}](https://huggingface.co/{record.hf_hub_id}), where timm hosts '
            'them; hrnet_zoo does not re-upload them'
        )
        conversion = (
            f"- Weights: `model.safetensors` of {record.hf_hub_id} (timm's copy; its pickle is never read)\n"
            f'- Trained by {source.trained_by}, code at {source.codebase}\n'
            '- At load time the ImageNet classification head (`incre_modules`, `downsamp_modules`, `final_layer`,\n'
            "  `classifier`) is dropped; every backbone key is timm's, one to one, and loads strictly."
        )
        credit = f'The weights are released by {source.trained_by} under the {license} license (as timm records it).'
        return provenance, conversion, credit
    sha = f'`{source.sha256}`' if source.sha256 else 'not recorded yet'
    timm = '[timm](https://github.com/huggingface/pytorch-image-models)'
    provenance = f'converted from the official release to safetensors for\n{timm} by hrnet_zoo'
    conversion = (
        f'- Official release: `{source.file_name}` from {source.codebase} ({source.url})\n'
        f'- sha256 of the official file: {sha}\n'
        f'- Converted with `hrnet-zoo convert {source.file_name} --model {record.name} --out DIR`; the keys are the\n'
        '  official ones, checked against the model before writing.'
    )
    credit = (
        f'The weights are released by {source.trained_by} under the {license} license, with the official code at\n'
        'https://github.com/HRNet; this conversion keeps that license.'
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
    labels = f'{record.num_classes}' + (f' ({", ".join(record.label_names)})' if record.label_names else '')
    metrics = '\n'.join(f'- {m.name}: {m.value} ({record.dataset_name})' for m in record.metrics)
    provenance, conversion, credit = _provenance(record)
    notes = ''.join(f'\n- {note}' for note in record.notes)
    body = f"""# Model card for {record.name}

{record.head_spec.display_name}-{record.width.upper()} from *Deep High-Resolution Representation
Learning for Visual Recognition* (Wang et al., TPAMI 2020), {record.task.replace('-', ' ')} weights trained on
{record.dataset_name}, {provenance}.

Head: {record.head_spec.summary}.

## Model details
- Architecture: `{record.arch}` (width {record.width}, head {record.head})
- Params (M): {record.params / 1e6:.3f}
- GFLOPs at {size}: {record.gflops:.2f} (conv + linear multiply-adds / 2^30, the official tables' convention)
- Input size: {size}, ImageNet mean/std normalisation
- Outputs: {labels}
- Fuse-layer upsampling it was trained with: {upsample} (set by this tag; `upsample_mode=` overrides it){notes}

## Published results (official)
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
