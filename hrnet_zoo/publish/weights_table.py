"""The README's table of the weights ``timm.create_model(name, pretrained=True)`` loads today, from the manifest.

A tag loads today when its file downloads directly (OpenMMLab's zoos, the HRNet-OCR release), when timm's own Hub
repo holds it (the ImageNet backbones), or once ``hrnet-zoo release`` has published it. README.md holds the rendered
table between :data:`BEGIN` and :data:`END`; a test fails when the two differ, and
``python -m hrnet_zoo.publish.weights_table README.md`` rewrites it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..weights.manifest import ARCHS, MANIFEST, WeightsRecord, default_tag

__all__ = ['BEGIN', 'END', 'GROUPS', 'loads_today', 'readme_table', 'render_table', 'update_readme']

BEGIN = '<!-- weights-table -->'
END = '<!-- /weights-table -->'

# (group key, heading), in the README's order
GROUPS = (
    ('segmentation', 'Semantic segmentation'),
    ('body', 'Body pose'),
    ('wholebody', 'Whole-body pose'),
    ('face', 'Face landmarks'),
    ('hand', 'Hand pose'),
    ('animal', 'Animal pose'),
    ('fashion', 'Fashion landmarks'),
    ('detection', 'Detection backbone + neck (HRFPN)'),
    ('imagenet', 'ImageNet backbones (fresh task head)'),
)
_LICENSES = {'mit': 'MIT', 'apache-2.0': 'Apache-2.0'}
# each direct record's group, as direct_records.json files it
_KINDS = {
    f'{e["arch"]}.{e["tag"]}': e['kind']
    for e in json.loads(Path(__file__).parents[1].joinpath('weights', 'direct_records.json').read_text('utf-8'))
}
_TASK_GROUPS = {'image-segmentation': 'segmentation', 'object-detection': 'detection', 'keypoint-detection': 'body'}


def loads_today(record: WeightsRecord) -> bool:
    """Whether ``pretrained=True`` finds the weights without a file downloaded by hand."""
    return record.direct or record.published or not record.released_here


def _group(record: WeightsRecord) -> str:
    if record.backbone_only:
        return 'imagenet'
    return _KINDS.get(record.name) or _TASK_GROUPS[record.task]


def _source(record: WeightsRecord) -> str:
    if not record.released_here:
        return 'timm' if record.source.trained_by == 'Microsoft' else f'timm ({record.source.trained_by})'
    return 'OpenMMLab' if record.source.trained_by == 'OpenMMLab' else 'official'


def _row(record: WeightsRecord) -> str:
    tag = f'`{record.tag}`' + (' (default)' if default_tag(record.arch) == record.tag else '')
    metric = record.metrics[0]
    size = 'x'.join(str(s) for s in record.input_size[1:])
    license = _LICENSES.get(record.license, record.license)
    cells = (f'`{record.arch}`', tag, record.dataset_name, size, f'{metric.name} {metric.value}', _source(record),
             license)  # fmt: skip
    return '| ' + ' | '.join(cells) + ' |'


def render_table() -> str:
    """The Markdown of every tag that loads today, grouped by task, one row per tag."""
    rows: dict[str, list[str]] = {key: [] for key, _ in GROUPS}
    # per group: by architecture (ARCHS order), each one's default tag first, then the manifest's order
    ordered = sorted(MANIFEST.values(), key=lambda r: (ARCHS.index(r.arch), default_tag(r.arch) != r.tag))
    for record in ordered:
        if loads_today(record):
            rows[_group(record)].append(_row(record))
    total = sum(len(r) for r in rows.values())
    parts = [
        f'{total} tags load with `pretrained=True` today (rendered from the manifest by `publish/weights_table.py`).'
    ]
    for key, heading in GROUPS:
        if not rows[key]:
            continue
        parts += [
            '',
            f'**{heading}** ({len(rows[key])})',
            '',
            '| architecture | tag | dataset | input | headline metric | source | license |',
            '|---|---|---|---|---|---|---|',
            *rows[key],
        ]
    return '\n'.join(parts)


def readme_table(text: str) -> str:
    """What README text holds between the markers."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip('\n')


def update_readme(path: str | Path) -> bool:
    """Rewrite the table between the markers of ``path``; True if it changed."""
    path = Path(path)
    text = path.read_text(encoding='utf-8')
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    new = f'{text[:start]}\n{render_table()}\n{text[end:]}'
    if new == text:
        return False
    path.write_text(new, encoding='utf-8')
    return True


if __name__ == '__main__':
    for arg in sys.argv[1:] or ['README.md']:
        print(f'{arg}: {"updated" if update_readme(arg) else "up to date"}')
