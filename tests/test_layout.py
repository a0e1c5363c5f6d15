"""The package's shape: imports that only point down, the head table as the one source of head facts, the 36
written-out entrypoints, and the params / GFLOPs table that ``hrnet-zoo list`` and the cards read."""

from __future__ import annotations

import ast
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import timm

import hrnet_zoo
from hrnet_zoo.specs import ARCHS, HEADS, WIDTHS, parse_arch
from hrnet_zoo.stats import arch_stats
from hrnet_zoo.weights.counts import COUNTS
from hrnet_zoo.weights.manifest import MANIFEST

ROOT = Path(hrnet_zoo.__file__).parent
PACKAGE = 'hrnet_zoo'


def _module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(ROOT).with_suffix('').parts]
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob('*.py'))}


def _is_package(name: str) -> bool:
    return MODULES[name].name == '__init__.py'


def _resolve(importer: str, level: int, module: str | None) -> str:
    """The absolute name of ``from <level dots><module> import ...`` written in ``importer``."""
    if level == 0:
        return module or ''
    base = importer.split('.')
    base = base if _is_package(importer) else base[:-1]
    base = base[: len(base) - (level - 1)]
    return '.'.join(base + ([module] if module else []))


def _imports(name: str) -> list[tuple[str, int, bool]]:
    """(imported module of this package, line, inside a function) for every import in ``name``'s source."""
    tree = ast.parse(MODULES[name].read_text(encoding='utf-8'))
    in_function = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            in_function.update(id(child) for child in ast.walk(node) if child is not node)
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, node.level, node.module)
            # `from pkg import sub` imports the submodule; `from mod import obj` imports mod
            targets = [f'{base}.{a.name}' if f'{base}.{a.name}' in MODULES else base for a in node.names]
        for target in targets:
            while target and target not in MODULES and '.' in target:
                target = target.rsplit('.', 1)[0]  # `import hrnet_zoo.weights.io.x` -> the module holding x
            if target in MODULES:
                found.append((target, node.lineno, id(node) in in_function))
    return found


def _edges() -> dict[str, set[str]]:
    """Who imports whom. Importing ``a.b.c`` from outside ``a.b`` also runs ``a.b``'s ``__init__`` first (a module
    inside a package runs after that package's init, and every module is inside the root package, so the root's init
    is an edge only where a module imports ``hrnet_zoo`` itself)."""
    graph: dict[str, set[str]] = {}
    for name in MODULES:
        ancestors = {name.rsplit('.', i)[0] for i in range(1, name.count('.') + 1)}
        targets = set()
        for target, _, _ in _imports(name):
            targets.add(target)  # an explicit import, of an ancestor too, is an edge
            parts = target.split('.')
            targets.update({'.'.join(parts[:i]) for i in range(1, len(parts))} - ancestors)
        graph[name] = targets - {name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_walker_sees_the_packages_modules():
    assert {'hrnet_zoo', 'hrnet_zoo.models', 'hrnet_zoo.weights.manifest', 'hrnet_zoo.hub.server'} <= set(MODULES)
    assert {'hrnet_zoo.models.heads.v1', 'hrnet_zoo.publish.convert', 'hrnet_zoo.bench.harness'} <= set(MODULES)
    graph = _edges()
    # a few edges written out, so a walker that saw nothing would fail here rather than find no cycle
    assert 'hrnet_zoo.specs' in graph['hrnet_zoo.weights.manifest']
    assert {'hrnet_zoo.specs', 'hrnet_zoo.weights.io'} <= graph['hrnet_zoo.weights.checks']
    # from outside a subpackage, its __init__ runs too
    assert {'hrnet_zoo.weights', 'hrnet_zoo.weights.pretrained'} <= graph['hrnet_zoo.models.builder']
    assert {'hrnet_zoo.models.builder', 'hrnet_zoo.models.layers'} <= graph['hrnet_zoo.models.heads.v1']
    assert {'hrnet_zoo.models', 'hrnet_zoo.tasks'} <= graph[PACKAGE]


def test_cycle_detection_finds_a_cycle():
    assert _cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert _cycle({'a': {'b', 'c'}, 'b': {'c'}, 'c': set()}) is None
    graph = _edges()
    graph['hrnet_zoo.specs'] = graph['hrnet_zoo.specs'] | {'hrnet_zoo.models'}  # specs reaching up
    assert _cycle(graph) is not None


def test_imports_point_one_way():
    """No import cycle anywhere in the package, counting imports inside functions and subpackage inits."""
    assert _cycle(_edges()) is None


def test_no_function_level_imports_of_our_own_modules():
    """A lazy import of one of our modules hides an edge (often one that only exists to dodge a cycle)."""
    lazy = [f'{name}:{line} imports {target}' for name in MODULES for target, line, inner in _imports(name) if inner]
    assert lazy == []


def _package(name: str) -> set[str]:
    return {module for module in MODULES if module == name or module.startswith(f'{name}.')}


def _layers() -> list[set[str]]:
    """The layers named in hrnet_zoo/__init__.py, bottom to top."""
    return [
        {'hrnet_zoo.version', 'hrnet_zoo.specs', 'hrnet_zoo.files', 'hrnet_zoo._moved'},
        _package('hrnet_zoo.data'),
        _package('hrnet_zoo.hub'),
        {'hrnet_zoo.weights', 'hrnet_zoo.weights.counts', 'hrnet_zoo.weights.records', 'hrnet_zoo.weights.manifest'},
        {'hrnet_zoo.weights.io'},
        {'hrnet_zoo.weights.sources'},
        {'hrnet_zoo.weights.checks'},
        {'hrnet_zoo.weights.layouts'},
        {'hrnet_zoo.weights.pretrained'},
        {'hrnet_zoo.models.backbone', 'hrnet_zoo.models.layers', 'hrnet_zoo.models.litehrnet'},
        {'hrnet_zoo.models.builder'},
        _package('hrnet_zoo.models.heads'),
        {
            'hrnet_zoo.models',
            'hrnet_zoo.models.hrnet',
            'hrnet_zoo.models.detection',
            'hrnet_zoo.models.litehrnet_pose',
            'hrnet_zoo.models.higherhrnet',
        },
        {'hrnet_zoo.export'},
        _package('hrnet_zoo.fast'),
        _package('hrnet_zoo.tasks'),
        _package('hrnet_zoo.publish'),
        {'hrnet_zoo.stats', 'hrnet_zoo.demo'},
        _package('hrnet_zoo.bench'),
        _package('hrnet_zoo.cli'),
    ]


def test_every_module_has_a_layer():
    """A new module gets a place in the order of _layers (the package root is the one module above every layer)."""
    placed = set().union(*_layers())
    assert set(MODULES) - placed == {PACKAGE}


def test_import_hrnet_zoo_loads_no_bench_and_no_fault_injection():
    loaded = 'sorted(m for m in sys.modules if m.startswith(("hrnet_zoo.bench", "hub_faults")))'
    code = f'import sys, hrnet_zoo; print({loaded})'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == '[]'
    assert not list(ROOT.rglob('*fault*'))  # the fault injection lives in tests/, not in the package


def test_lower_layers_import_nothing_above_them():
    """The layers named in hrnet_zoo/__init__.py, bottom to top: each may import only layers below it."""
    graph = _edges()
    order = _layers()
    for rank, layer in enumerate(order):
        above = set().union(*order[rank + 1 :]) | (set(MODULES) - set().union(*order))
        for name in layer:
            assert not graph[name] & above, f'{name} imports {sorted(graph[name] & above)}'


# -- the head table ---------------------------------------------------------------------------------------------


def test_every_head_has_its_model_class_and_nine_architectures():
    assert set(hrnet_zoo.models.MODEL_CLASSES) == set(HEADS)
    for name, cls in hrnet_zoo.models.MODEL_CLASSES.items():
        assert cls.head == name
    assert ARCHS == tuple(f'hrnet{h}_{w}' for h in HEADS for w in WIDTHS)


@pytest.mark.parametrize('head', list(HEADS))
def test_head_record_describes_its_model(head):
    spec = HEADS[head]
    model = timm.create_model(f'hrnet{head}_w18_small_v1', device='meta')
    assert (model.arch, model.head, model.width) == (f'hrnet{head}_w18_small_v1', head, 'w18_small_v1')
    assert model.num_classes == spec.default_num_classes
    keys = model.state_dict().keys()
    assert all(any(k.startswith(p) for k in keys) for p in spec.prefixes)
    assert all(not k.startswith(other.prefixes) for other in HEADS.values() if other is not spec for k in keys)
    assert model.pretrained_cfg['classifier'] == spec.classifier
    if spec.num_classes_key is not None:
        assert model.state_dict()[spec.num_classes_key].shape[0] == spec.default_num_classes
    last_unit = model.stage4[-1]
    assert all(len(row) > 0 for row in last_unit.fuse_layers[1:]) == spec.multi_scale_output


def test_head_facts_are_written_once():
    """No module besides specs.py spells out a head's key prefix, part name or card text."""
    facts = [f"'{fact}'" for h in HEADS.values() for fact in (*h.prefixes, h.part, h.described, h.summary, h.usage)]
    spelled = {
        name: [fact for fact in facts if fact in MODULES[name].read_text(encoding='utf-8')]
        for name in MODULES
        if name != 'hrnet_zoo.specs'
    }
    assert {name: found for name, found in spelled.items() if found} == {}


# -- the entrypoints --------------------------------------------------------------------------------------------


def _entrypoints() -> dict[str, ast.FunctionDef]:
    tree = ast.parse(MODULES['hrnet_zoo.models.hrnet'].read_text(encoding='utf-8'))
    return {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any(getattr(d, 'id', None) == 'register_model' for d in node.decorator_list)
    }


def test_entrypoints_are_written_out_for_exactly_the_manifest_architectures():
    entrypoints = _entrypoints()
    assert sorted(entrypoints) == sorted({record.arch for record in MANIFEST.values()}) == sorted(ARCHS)
    for name, node in entrypoints.items():
        assert ast.get_docstring(node), name
        (ret,) = [n for n in node.body if isinstance(n, ast.Return)]
        assert isinstance(ret.value, ast.Call) and ret.value.func.id == 'create_hrnet'
        assert ret.value.args[0].value == name, f'{name} builds {ret.value.args[0].value}'  # no copy-paste slips
        assert node.returns.id == hrnet_zoo.models.MODEL_CLASSES[parse_arch(name)[0]].__name__
        assert getattr(hrnet_zoo.models.hrnet, name).__module__ == 'hrnet_zoo.models.hrnet'
        assert timm.models.model_entrypoint(name) is getattr(hrnet_zoo.models.hrnet, name)
    assert set(entrypoints) <= set(timm.list_models(module='hrnet'))  # timm lists them under a module named hrnet


# -- params and GFLOPs as data ----------------------------------------------------------------------------------


def test_counts_table_has_a_row_for_every_record():
    assert list(COUNTS) == list(MANIFEST)


@pytest.mark.parametrize(
    'name',
    ['hrnetv2_w48.cityscapes', 'hrnetv1_w32.coco_256x192', 'hrnetv2p_w18.coco']
    + random.Random(0).sample(sorted(set(MANIFEST) - {'hrnetv2_w48.cityscapes'}), 3),
)
def test_counts_table_matches_a_recount(name):
    stats = arch_stats(name)
    assert COUNTS[name] == (stats.params, stats.gflops)
    assert MANIFEST[name].params == stats.params and MANIFEST[name].gflops == stats.gflops


# -- the names before this layout -------------------------------------------------------------------------------

# (old module, a public name it had, the module that holds that name now), written out from the layout before the
# move (hrnet_zoo 2026-12-06), not read from hrnet_zoo._moved
OLD_NAMES = [
    ('hrnet_zoo.backbone', 'HRNetBackbone', 'hrnet_zoo.models.backbone'),
    ('hrnet_zoo.heads', 'SegmentationHead', 'hrnet_zoo.models.heads.v2'),
    ('hrnet_zoo.heads', 'PyramidNeck', 'hrnet_zoo.models.heads.v2p'),
    ('hrnet_zoo.heads', 'concat_branches', 'hrnet_zoo.models.layers'),
    ('hrnet_zoo.ocr', 'ObjectContextDistribute', 'hrnet_zoo.models.heads.ocr'),
    ('hrnet_zoo.registry', 'hrnetv2_w48', 'hrnet_zoo.models.hrnet'),
    ('hrnet_zoo.detection', 'hrnet_fpn_backbone', 'hrnet_zoo.models.detection'),
    ('hrnet_zoo.weights.convert', 'convert_checkpoint', 'hrnet_zoo.publish.convert'),
    ('hrnet_zoo.weights.cards', 'model_card', 'hrnet_zoo.publish.cards'),
    ('hrnet_zoo.hub.client', 'publish', 'hrnet_zoo.publish.client'),
    ('hrnet_zoo.hub.release', 'release', 'hrnet_zoo.publish.release'),
    ('hrnet_zoo.bench_peers', 'PeerEngines', 'hrnet_zoo.bench.peers'),
    ('hrnet_zoo.bench_profile', 'profile_cases', 'hrnet_zoo.bench.profile'),
    ('hrnet_zoo.bench_report', 'summarise', 'hrnet_zoo.bench.report'),
    ('hrnet_zoo.bench_tasks', 'run', 'hrnet_zoo.bench.tasks'),
    # names that left a module that still exists
    ('hrnet_zoo.hub', 'publish', 'hrnet_zoo.publish.client'),
    ('hrnet_zoo.weights.manifest', 'KEYPOINT_SETS', 'hrnet_zoo.data.keypoints'),
    ('hrnet_zoo.weights.manifest', 'PALETTES', 'hrnet_zoo.data.labels'),
    ('hrnet_zoo.tasks.predict', 'write_atomically', 'hrnet_zoo.files'),
]

# in a fresh process: every old module is imported there for the first time (each old module name is imported once,
# and an import warns when it binds the old name; a moved attribute warns on every access)
_CHECK_OLD_NAME = """
import importlib, json, sys, warnings
import hrnet_zoo
results, seen = [], set()
for old, name, new in json.loads(sys.argv[1]):
    if old in seen:  # a second name from one old module: import that module afresh, so it warns again
        del sys.modules[old]
    seen.add(old)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        value = getattr(importlib.import_module(old), name)
    warned = any(new in str(w.message) for w in caught if issubclass(w.category, DeprecationWarning))
    results.append([str(value is getattr(importlib.import_module(new), name)), str(warned)])
print(json.dumps(results))
"""


@pytest.fixture(scope='module')
def old_name_results() -> dict[str, list[str]]:
    cases = json.dumps(OLD_NAMES)
    out = subprocess.run([sys.executable, '-c', _CHECK_OLD_NAME, cases], capture_output=True, text=True, check=True)
    return {f'{old}.{name}': result for (old, name, _), result in zip(OLD_NAMES, json.loads(out.stdout))}


@pytest.mark.subprocess
@pytest.mark.parametrize(('old', 'name', 'new'), OLD_NAMES, ids=[f'{o}.{n}' for o, n, _ in OLD_NAMES])
def test_old_names_still_work_with_a_deprecation_warning(old_name_results, old, name, new):
    """The same object as at the new path, and a DeprecationWarning that names the new path."""
    assert old_name_results[f'{old}.{name}'] == ['True', 'True']


def test_an_old_module_name_that_never_existed_is_still_an_import_error():
    with pytest.raises(ModuleNotFoundError):
        __import__('hrnet_zoo.no_such_module')
    with pytest.raises(AttributeError, match='no attribute'):
        hrnet_zoo.hub.no_such_name  # noqa: B018


def test_the_hub_package_is_the_server_alone():
    assert hrnet_zoo.hub.__all__ == []
    assert not (ROOT / 'hub_server.py').exists() and not (ROOT / 'hub' / 'client.py').exists()
