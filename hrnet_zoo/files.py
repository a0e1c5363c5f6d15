"""Atomic file writes, the one way this package writes a file that someone may read while it is written, or that a
failure must not leave half-written: into a temporary file beside the target, flushed to disk, then renamed over it.

Standard library only: the loopback Hub server uses it too.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ['check_writable_folder', 'new_folders', 'write_atomically', 'write_text_atomically']


def check_writable_folder(folder: str | Path, what: str) -> None:
    """Refuse, before any work, a folder that cannot be written or made: its nearest existing ancestor must be a
    writable folder. ``what`` names the output in the message (``'cannot write x.onnx'``)."""
    folder = Path(folder)
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path('.'))  # '.' ends a relative path
    if not existing.is_dir():
        raise NotADirectoryError(f'{what}: {existing} is a file, not a folder')
    if not os.access(existing, os.W_OK):
        raise PermissionError(f'{what}: {existing} is not writable')


@contextlib.contextmanager
def new_folders(folder: str | Path) -> Iterator[Path]:
    """Make ``folder`` and its missing parents for the body, and remove the ones made here again if the body
    fails (a failed command leaves nothing behind, not even an empty folder)."""
    folder = Path(folder)
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    except BaseException:
        for path in made:  # deepest first; a folder the body filled is kept
            with contextlib.suppress(OSError):
                path.rmdir()
        raise


def write_atomically(path: str | Path, write: Callable[[Path], None], *, make_parents: bool = False) -> None:
    """``write(tmp)`` into a temporary file beside ``path``, then rename it over ``path``: readers see the old file
    or the new one, and a failure (an exception, Ctrl-C) leaves no partial file. The result gets a new file's
    usual mode (``mkstemp`` makes it owner-only)."""
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise FileNotFoundError(f'No such folder for {path}: {path.parent}')
    fd, name = tempfile.mkstemp(prefix=f'.{path.name}.', suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)
        write(tmp)
        with tmp.open('rb+') as f:  # the bytes reach the disk before the name points at them
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomically(path: str | Path, text: str, *, make_parents: bool = False) -> None:
    """:func:`write_atomically` for a UTF-8 text file."""
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding='utf-8'), make_parents=make_parents)
