"""The old module paths and names of the package, kept importing with a ``DeprecationWarning`` that names the new one.

Modules that moved are served by a finder on ``sys.meta_path`` that answers only for the names in
:data:`MOVED_MODULES` (``import hrnet_zoo.backbone`` gives :mod:`hrnet_zoo.models.backbone` itself, so classes and
``isinstance`` checks are the same objects). A module that was split in two is served as a module holding the
public names of its parts. Names that moved out of a module that still exists are served by that module's
``__getattr__`` through :func:`moved_attribute`. Standard library only; nothing in the package imports an old path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from typing import Any

__all__ = ['MOVED_MODULES', 'moved_attribute']

# old module -> the module (or, for one that was split, the modules) that holds its contents now
MOVED_MODULES: dict[str, tuple[str, ...]] = {
    'hrnet_zoo.backbone': ('hrnet_zoo.models.backbone',),
    'hrnet_zoo.heads': ('hrnet_zoo.models.layers', 'hrnet_zoo.models.heads.v2', 'hrnet_zoo.models.heads.v2p'),
    'hrnet_zoo.ocr': ('hrnet_zoo.models.heads.ocr',),
    'hrnet_zoo.registry': ('hrnet_zoo.models.hrnet',),
    'hrnet_zoo.detection': ('hrnet_zoo.models.detection',),
    'hrnet_zoo.weights.convert': ('hrnet_zoo.publish.convert',),
    'hrnet_zoo.weights.cards': ('hrnet_zoo.publish.cards',),
    'hrnet_zoo.hub.client': ('hrnet_zoo.publish.client',),
    'hrnet_zoo.hub.release': ('hrnet_zoo.publish.release',),
    'hrnet_zoo.bench_peers': ('hrnet_zoo.bench.peers',),
    'hrnet_zoo.bench_profile': ('hrnet_zoo.bench.profile',),
    'hrnet_zoo.bench_report': ('hrnet_zoo.bench.report',),
    'hrnet_zoo.bench_tasks': ('hrnet_zoo.bench.tasks',),
}


def _warn(old: str, new: str) -> None:
    warnings.warn(f'{old} moved to {new}; import it from there (the old name will be removed)', DeprecationWarning, 3)


def moved_attribute(module: str, name: str, moved: dict[str, str]) -> Any:
    """For a module's ``__getattr__``: ``name`` from the module ``moved[name]`` now holds it, with a warning; an
    AttributeError for names that never were there."""
    if name not in moved:
        raise AttributeError(f'module {module!r} has no attribute {name!r}')
    _warn(f'{module}.{name}', f'{moved[name]}.{name}')
    return getattr(importlib.import_module(moved[name]), name)


class _MovedLoader(importlib.abc.Loader):
    def __init__(self, old: str, targets: tuple[str, ...]) -> None:
        self.old, self.targets = old, targets

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        _warn(self.old, ' and '.join(self.targets))
        parts = [importlib.import_module(target) for target in self.targets]
        if len(parts) == 1:
            return parts[0]  # the module itself: the import system binds it under the old name too
        merged = types.ModuleType(self.old, f'The public names of {", ".join(self.targets)} (deprecated path).')
        for part in parts:
            for name in getattr(part, '__all__', ()):
                setattr(merged, name, getattr(part, name))
        merged.__all__ = [name for part in parts for name in getattr(part, '__all__', ())]
        return merged

    def exec_module(self, module: types.ModuleType) -> None:
        pass  # created whole in create_module


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED_MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedLoader(fullname, MOVED_MODULES[fullname]))


if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
    sys.meta_path.insert(0, _MovedFinder())
