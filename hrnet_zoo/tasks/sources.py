"""Frames in, one at a time: an image, a folder, a glob, a video file, a webcam, or images already in memory.

:func:`read_source` resolves what it is given at once (a missing file, an empty folder, a glob that matches nothing,
an unknown extension or a video PyAV cannot open is refused before any frame is read) and then reads lazily, one
frame at a time, so a long video or a large folder streams in constant memory. Videos and webcams go through PyAV
(the ``video`` extra), imported only when a video is opened.
"""

from __future__ import annotations

import glob
import sys
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch import Tensor

from .inputs import load_image

__all__ = [
    'IMAGE_EXTENSIONS',
    'VIDEO_EXTENSIONS',
    'Frame',
    'FrameSource',
    'SourceItem',
    'import_av',
    'open_av',
    'read_source',
]

# containers FFmpeg reads as video; Pillow also claims .mpg / .mpeg (single MPEG-1 frames), video wins
VIDEO_EXTENSIONS = frozenset({'.mp4', '.m4v', '.mov', '.avi', '.mkv', '.webm', '.mpg', '.mpeg', '.wmv', '.flv',
                              '.ts', '.3gp', '.ogv'})  # fmt: skip
IMAGE_EXTENSIONS = frozenset(
    ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN and ext not in VIDEO_EXTENSIONS
)
VIDEO_EXTRA = "pip install 'hrnet_zoo[video]'"


@dataclass
class Frame:
    """One image of a source: its running ``index`` over the whole source, its ``name`` (the file name, or
    ``frame_000123`` for video frames and images given in memory), ``pixels`` (float ``[3, H, W]`` in 0..1, as
    :func:`~.inputs.load_image` gives), and for video its ``time`` (seconds) and ``fps``. ``source``: the file or
    device it came from (None for images in memory)."""

    index: int
    name: str
    pixels: Tensor
    time: float | None = None
    fps: Fraction | None = None
    source: str | None = None

    @property
    def is_video(self) -> bool:
        """Whether the frame is one of a video's or a webcam's (it has a frame rate)."""
        return self.fps is not None


@dataclass(frozen=True)
class SourceItem:
    """One resolved input: ``kind`` is ``'image'``, ``'video'``, ``'webcam'`` or ``'memory'``; ``path`` the file (or
    the device) for the first three; ``named``: given by name rather than found in a folder or by a glob (a broken
    named image is an error, a broken image found in a folder is skipped)."""

    kind: str
    path: Path | None = None
    value: Any = field(default=None, repr=False)
    named: bool = True
    device: str | None = None  # webcam: the index as given


def import_av() -> Any:
    """The ``av`` module (PyAV), with a clear error naming the ``video`` extra when it is not installed."""
    try:
        import av  # optional: only video needs it, so it is imported here, when a video is opened
    except ImportError:
        raise ImportError(f'reading or writing video needs PyAV: {VIDEO_EXTRA}') from None
    return av


def open_av(target: str, **kwargs: Any) -> Any:
    """``av.open(target, **kwargs)``, with a clear error when PyAV (the ``video`` extra) is missing."""
    return import_av().open(target, **kwargs)


def _av_errors() -> tuple[type[BaseException], ...]:
    return (import_av().FFmpegError, OSError, ValueError)


def _webcam_target(index: str) -> tuple[str, dict[str, Any]]:
    """The FFmpeg device and input format of webcam ``index`` on this platform."""
    if sys.platform.startswith('linux'):
        return f'/dev/video{index}', dict(format='v4l2')
    if sys.platform == 'darwin':
        return index, dict(format='avfoundation', options=dict(framerate='30'))
    if sys.platform == 'win32':
        # dshow names devices, not numbers: 'video=<name>' as ffmpeg -list_devices prints it
        return (index if index.startswith('video=') else f'video={index}'), dict(format='dshow')
    raise ValueError(f'webcams are read on Linux (v4l2), macOS (avfoundation) and Windows (dshow), not {sys.platform}')


def _is_webcam(source: Any) -> bool:
    if isinstance(source, bool):
        return False
    if isinstance(source, int):
        return True
    return isinstance(source, str) and source.isdigit() and not Path(source).exists()


def _is_glob(text: str) -> bool:
    return any(c in text for c in '*?[') and not Path(text).exists()


def _file_item(path: Path, named: bool) -> SourceItem:
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return SourceItem('video', path, named=named)
    if suffix in IMAGE_EXTENSIONS:
        return SourceItem('image', path, named=named)
    raise ValueError(f'{path}: unknown extension {path.suffix or "(none)"!r}; expected an image (.jpg, .png, .webp, '
                     f'...) or a video ({", ".join(sorted(VIDEO_EXTENSIONS))})')  # fmt: skip


def _media_in(paths: Iterable[Path]) -> list[SourceItem]:
    """The images and videos among ``paths``, sorted, each by its extension; other files are left out."""
    media = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
    kinds = [(p, p.suffix.lower()) for p in sorted(paths) if p.is_file()]
    return [
        SourceItem('video' if ext in VIDEO_EXTENSIONS else 'image', p, named=False) for p, ext in kinds if ext in media
    ]


def _resolve(source: Any) -> list[SourceItem]:
    if isinstance(source, (list, tuple)):
        items = [item for s in source for item in _resolve(s)]
        if not items:
            raise ValueError('no input: the list of sources is empty')
        return items
    if isinstance(source, (Image.Image, np.ndarray, Tensor)):
        return [SourceItem('memory', value=source)]
    if _is_webcam(source):
        return [SourceItem('webcam', Path(str(source)), device=str(source))]
    if not isinstance(source, (str, Path)):
        raise TypeError(f'expected a path, folder, glob, video, webcam index, PIL image, numpy array or tensor, '
                        f'got {type(source).__name__}')  # fmt: skip
    text = str(source)
    if isinstance(source, str) and _is_glob(text):
        items = _media_in(Path(p) for p in glob.glob(text, recursive=True))
        if not items:
            raise ValueError(f'no image or video matches {text!r}')
        return items
    path = Path(source)
    if path.is_dir():
        items = [item for item in _media_in(path.iterdir()) if item.kind == 'image']
        if not items:
            raise ValueError(f'{path} holds no images ({", ".join(sorted({".jpg", ".png", ".webp", ".bmp"}))}, ...); '
                             'give a folder of images, a video file or a glob')  # fmt: skip
        return items
    if not path.exists():
        raise FileNotFoundError(f'No such image, video or folder: {path}')
    item = _file_item(path, named=True)
    if item.kind == 'video':
        _probe(item)
    return [item]


def _probe(item: SourceItem) -> None:
    """Open the video and find its video stream, so a corrupt file is refused before any work."""
    assert item.path is not None
    try:
        with open_av(str(item.path)) as container:
            if not container.streams.video:
                raise ValueError(f'{item.path} has no video stream')
    except _av_errors() as err:
        raise ValueError(f'{item.path} is not a video PyAV can read ({err})') from None


class FrameSource:
    """An iterator of :class:`Frame`: lazy, one frame in memory at a time. ``items``: what the source resolved to;
    ``skipped``: the broken images found in folders or by globs that were left out (each with a warning)."""

    def __init__(self, source: Any) -> None:
        self.items: list[SourceItem] = _resolve(source)
        self.skipped: list[Path] = []
        self._frames = self._read()

    def __iter__(self) -> FrameSource:
        return self

    def __next__(self) -> Frame:
        return next(self._frames)

    def close(self) -> None:
        """Stop reading (closes an open video)."""
        self._frames.close()

    def _read(self) -> Iterator[Frame]:
        index = 0
        for item in self.items:
            if item.kind == 'memory':
                pixels = load_image(item.value)
                for image in pixels if pixels.ndim == 4 else [pixels]:  # a batch tensor is several frames
                    yield Frame(index, f'frame_{index:06d}', image)
                    index += 1
            elif item.kind == 'image':
                assert item.path is not None
                try:
                    pixels = load_image(item.path)
                except (ValueError, OSError) as err:
                    if item.named:
                        raise
                    warnings.warn(f'skipped {item.path}: {err}', stacklevel=2)
                    self.skipped.append(item.path)
                    continue
                yield Frame(index, item.path.name, pixels, source=str(item.path))
                index += 1
            else:
                for frame in _video_frames(item, index):
                    yield frame
                    index += 1


def _video_frames(item: SourceItem, start: int) -> Iterator[Frame]:
    """The frames of a video file or a webcam, decoded one at a time to RGB."""
    assert item.path is not None
    if item.kind == 'webcam':
        assert item.device is not None
        target, options = _webcam_target(item.device)
        try:
            container = open_av(target, **options)
        except _av_errors() as err:
            raise ValueError(f'cannot open webcam {item.device} ({target}): {err}') from None
        name = f'webcam {item.device} ({target})'
    else:
        name = str(item.path)
        try:
            container = open_av(name)
        except _av_errors() as err:
            raise ValueError(f'{item.path} is not a video PyAV can read ({err})') from None
    with container:
        stream = container.streams.video[0]
        stream.thread_type = 'AUTO'  # frame-parallel decoding where the codec has it
        fps = stream.average_rate or stream.guessed_rate or Fraction(25)
        index = start
        try:
            for decoded in container.decode(stream):
                array = decoded.to_ndarray(format='rgb24')
                time = float(decoded.time) if decoded.time is not None else (index - start) / float(fps)
                yield Frame(index, f'frame_{index - start:06d}', load_image(array), time, Fraction(fps), str(item.path))
                index += 1
        except _av_errors() as err:
            raise ValueError(f'{name}: cannot decode frame {index - start} ({err})') from None


def read_source(source: Any) -> FrameSource:
    """The frames of ``source``, lazily, in constant memory.

    ``source``: an image path; a folder (its images, sorted by name; other files ignored); a glob pattern
    (``'shots/*.jpg'``, ``'**'`` recurses); a video file (PyAV); a webcam index (``0`` or ``'0'``: ``/dev/video0``
    with v4l2 on Linux, avfoundation on macOS, dshow on Windows); a PIL image, numpy HWC uint8 array or float tensor
    (``[N, 3, H, W]``: N frames); or a list of those. A broken image in a folder or glob is skipped with a warning
    and listed in ``.skipped``; a named one that cannot be read raises ``ValueError``.
    """
    return FrameSource(source)
