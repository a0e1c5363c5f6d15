"""Pictures out as a video, with PyAV (the ``video`` extra): the codec from the extension, yuv420p, even sizes, the
source's frame rate; written to a temporary file beside the target and renamed once complete
(:func:`~hrnet_zoo.files.write_atomically`), so a failed run leaves no partial video."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from ..files import write_atomically
from .sources import import_av, open_av

__all__ = ['VIDEO_CODECS', 'pick_codec', 'write_video']

# per container, the encoders to try in order: H.264 where FFmpeg was built with libx264, else MPEG-4 part 2,
# which every FFmpeg build has
VIDEO_CODECS: dict[str, tuple[str, ...]] = {
    '.mp4': ('libx264', 'mpeg4'),
    '.m4v': ('libx264', 'mpeg4'),
    '.mov': ('libx264', 'mpeg4'),
    '.mkv': ('libx264', 'mpeg4'),
    '.avi': ('mpeg4',),
    '.webm': ('libvpx-vp9', 'libvpx'),
}


def pick_codec(path: str | Path) -> str:
    """The first encoder of :data:`VIDEO_CODECS` for ``path``'s extension that this FFmpeg build has."""
    suffix = Path(path).suffix.lower()
    if suffix not in VIDEO_CODECS:
        raise ValueError(f'{path}: a video is written as {", ".join(VIDEO_CODECS)}, not {suffix or "(no extension)"}')
    av = import_av()

    for name in VIDEO_CODECS[suffix]:
        try:
            av.codec.Codec(name, 'w')
        except (av.FFmpegError, ValueError):
            continue
        return name
    raise ValueError(f'this FFmpeg build has none of the encoders {", ".join(VIDEO_CODECS[suffix])} for {suffix}')


def _even(array: np.ndarray) -> np.ndarray:
    """yuv420p halves the chroma planes: an odd height or width gets its last row or column repeated."""
    pad = ((0, array.shape[0] % 2), (0, array.shape[1] % 2), (0, 0))
    return np.pad(array, pad, mode='edge') if any(p[1] for p in pad[:2]) else array


def write_video(path: str | Path, pictures: Iterable[Image.Image | np.ndarray], fps: float | Fraction) -> int:
    """Encode ``pictures`` (PIL images or HWC uint8 RGB arrays, all one size, read lazily one at a time) into the
    video ``path`` at ``fps`` frames per second. Returns the number of frames written. The file appears whole or not
    at all: an error while encoding, or in the iterable, leaves nothing at ``path``."""
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1_000_000)
    if rate <= 0:
        raise ValueError(f'fps must be positive, got {fps}')
    codec = pick_codec(path)  # checked before the temporary file exists
    count = 0

    def encode(tmp: Path) -> None:
        nonlocal count
        av = import_av()

        with open_av(str(tmp), mode='w') as container:
            stream = None
            size = None
            for picture in pictures:
                array = _even(np.asarray(picture.convert('RGB') if isinstance(picture, Image.Image) else picture))
                if stream is None:
                    stream = container.add_stream(codec, rate=rate)
                    stream.width, stream.height = array.shape[1], array.shape[0]
                    stream.pix_fmt = 'yuv420p'
                    size = array.shape
                elif array.shape != size:
                    raise ValueError(f'frame {count} is {array.shape[1]}x{array.shape[0]}, the video is '
                                     f'{size[1]}x{size[0]}; every frame of a video has one size')  # fmt: skip
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format='rgb24')
                frame.pts = count
                frame.time_base = 1 / rate
                container.mux(stream.encode(frame))
                count += 1
            if stream is None:
                raise ValueError(f'no frames to write to {path}')
            container.mux(stream.encode(None))  # flush the encoder's delayed frames

    write_atomically(path, encode)
    return count
