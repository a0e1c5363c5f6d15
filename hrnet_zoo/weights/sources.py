"""Direct downloads of official checkpoints (OpenMMLab, torchvision-style URLs) into torch.hub's cache.

* :func:`fetch` returns the cached file when it is there (and matches its hash prefix), and otherwise downloads it
  with :func:`torch.hub.download_url_to_file`, through the mirror in ``HRNET_ZOO_MIRROR`` if one is set.
* :func:`cache_path` is torch.hub's own layout, ``<torch.hub.get_dir()>/checkpoints/<file name>``, so a file that
  torch.hub (or timm) downloaded is found here, and the other way round.
* :func:`hash_prefix_of` reads the sha256 prefix that OpenMMLab and torchvision put in their file names.
* Every failure is one line, a :class:`DirectDownloadError`: the URL, the cache path, why, and what to do next.

What torch.hub does and this module does not repeat: the temporary file beside the target (``<dst>.<uuid>.partial``),
removed on any exception, Ctrl-C included, and the move into place. What it does not do, and this module adds:

* Timeouts. torch.hub calls ``urlopen`` without one, so a silent server hangs it for ever. A short probe (``HEAD``,
  with its own timeout, in a helper thread so that name resolution is bounded too) fails at once when nothing
  answers; the transfer itself runs with a socket default timeout (see :func:`_socket_default_timeout`).
* A transfer cut short. ``http.client`` ends a body at EOF without checking ``Content-Length``, so torch.hub would
  move a truncated file into place. torch.hub downloads here to a staging name; its size is checked against the
  length the probe announced, and its sha256 against the prefix, before it is renamed into the cache.
* Leftovers. Whatever is left under the staging name (by a Ctrl-C between torch.hub's ``open`` and its ``try``) is
  removed; ``.partial`` files that nobody has written to for an hour (a killed process) are swept before a download.
"""

from __future__ import annotations

import glob
import http.client
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import torch

from .io import sha256_file

__all__ = [
    'CONNECT_TIMEOUT_ENV',
    'MIRROR_ENV',
    'OFFLINE_ENVS',
    'READ_TIMEOUT_ENV',
    'DirectDownloadError',
    'cache_path',
    'fetch',
    'hash_prefix_of',
    'is_offline',
    'mirrored',
]

MIRROR_ENV = 'HRNET_ZOO_MIRROR'
OFFLINE_ENVS = ('HRNET_ZOO_OFFLINE', 'HF_HUB_OFFLINE')
CONNECT_TIMEOUT_ENV = 'HRNET_ZOO_CONNECT_TIMEOUT'
READ_TIMEOUT_ENV = 'HRNET_ZOO_READ_TIMEOUT'
CONNECT_TIMEOUT = 3.0  # s, for the probe: name resolution, connect (and TLS), and the answer to a HEAD
READ_TIMEOUT = 30.0  # s, the longest silence during the transfer
STALE_PARTIAL_S = 3600.0  # a .partial file not written to for this long belongs to a dead process

_HAND_HINT = 'download it by hand and pass pretrained_cfg_overlay=dict(file=PATH)'
_TRUE = frozenset({'1', 'ON', 'YES', 'TRUE'})  # huggingface_hub's reading of its boolean switches
_DATE = r'(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])'
_HEX8 = r'[0-9a-f]{8}'
_EXTENSIONS = re.compile(r'(?:\.[A-Za-z][A-Za-z0-9]*)+$')
_HASH_AND_DATE = re.compile(rf'-(?P<hash>{_HEX8})_{_DATE}$')  # mmpose: ..._256x192-c78dce93_20200708
_HASH_DASH_DATE = re.compile(rf'_(?P<hash>{_HEX8})-{_DATE}$')  # the same, the other way round
_TRAILING_HASH = re.compile(r'-(?P<hash>[0-9a-f]{8,64})$')  # torchvision, mmdet, mmseg: ...-93db27d0
_PARTIAL = re.compile(r'\.[0-9a-f]{32}\.partial(?:\.[0-9a-f]{32}\.partial)?$')  # torch.hub's, and ours + torch.hub's

_timeout_lock = threading.Lock()
_timeout_users = 0
_timeout_set: float | None = None  # what we set as the socket default, None while we set nothing
_verified: dict[tuple[str, int, int, int, int], str] = {}  # (path, dev, inode, size, mtime_ns) -> sha256


class DirectDownloadError(OSError):
    """A checkpoint that could not be fetched. ``str()`` is one line: the URL, the cache path, why, what to do.

    ``url`` is the URL that was tried (after mirroring), ``path`` the cache path it was to be saved at, ``reason``
    the why alone.
    """

    def __init__(self, message: str, url: str = '', path: Path | None = None, reason: str = '') -> None:
        super().__init__(message)
        self.url = url
        self.path = path
        self.reason = reason


# -- names, paths, URLs


def _file_name(url: str) -> str:
    return os.path.basename(urlsplit(url).path)


def cache_path(url: str, cache_dir: str | Path | None = None) -> Path:
    """Where :func:`fetch` keeps ``url``: ``<torch.hub.get_dir()>/checkpoints/<file name>`` as torch.hub does, or
    ``<cache_dir>/<file name>``. The file name is the URL's last path segment, as it stands in the URL."""
    name = _file_name(url)
    if not name:
        raise ValueError(f'{url!r} names no file (its path ends with "/" or is empty)')
    folder = Path(torch.hub.get_dir()) / 'checkpoints' if cache_dir is None else Path(cache_dir).expanduser()
    return folder / name


def mirrored(url: str, mirror: str | None = None) -> str:
    """``url`` with its scheme and host (and port) replaced by the mirror's, its path kept (after the mirror's own
    path, if it has one) with its query. ``mirror`` defaults to ``$HRNET_ZOO_MIRROR``; unset or empty, and for
    anything but http(s) URLs, ``url`` is returned as it is."""
    if mirror is None:
        mirror = os.environ.get(MIRROR_ENV, '')
    mirror = mirror.strip()
    if not mirror:
        return url
    base = urlsplit(mirror)
    if base.scheme not in ('http', 'https') or not base.netloc or base.query or base.fragment:
        raise ValueError(
            f'{MIRROR_ENV}={mirror!r} is not a mirror URL: give a scheme, a host and at most a path, '
            'like http://127.0.0.1:8123 or https://mirror.example/some/prefix'
        )
    parts = urlsplit(url)
    if parts.scheme not in ('http', 'https'):
        return url
    path = base.path.rstrip('/') + '/' + parts.path.lstrip('/')
    return urlunsplit((base.scheme, base.netloc, path, parts.query, ''))


def hash_prefix_of(file_name: str) -> str | None:
    """The sha256 prefix in an OpenMMLab / torchvision file name, or None if the name carries none.

    ``resnet18-f37072fd.pth``, ``..._20200130-56651a6d.pth``, ``..._20200601_014216-93db27d0.pth``: the hex after
    the last ``-``. ``..._256x192-c78dce93_20200708.pth`` and ``..._c78dce93-20200708.pth``: the hex beside the date.
    A trailing token that reads as a date (``-20200708``) is not taken for a hash. Also accepts a path or a URL.
    """
    name = re.split(r'[/\\]', file_name.split('?', 1)[0].split('#', 1)[0])[-1]
    stem = _EXTENSIONS.sub('', name)
    for pattern in (_HASH_AND_DATE, _HASH_DASH_DATE, _TRAILING_HASH):
        match = pattern.search(stem)
        if match and not re.fullmatch(_DATE, match['hash']):
            return match['hash']
    return None


# -- switches


def is_offline() -> str | None:
    """The variable (``HRNET_ZOO_OFFLINE`` or ``HF_HUB_OFFLINE``) that forbids downloads, or None."""
    for name in OFFLINE_ENVS:
        if os.environ.get(name, '').strip().upper() in _TRUE:
            return name
    return None


def _seconds(name: str, default: float) -> float:
    value = os.environ.get(name, '').strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise ValueError(f'{name}={value!r}: give a timeout in seconds, a number > 0')
    return seconds


# -- the download


def fetch(url: str, hash_prefix: str | None = None, cache_dir: str | Path | None = None, progress: bool = True) -> Path:
    """The local path of ``url``'s file: from the cache when it is there, downloaded into it otherwise.

    ``hash_prefix``: the first 8 or more hex digits of the file's sha256. None takes it from the file name
    (:func:`hash_prefix_of`) when the name carries one; ``''`` checks nothing. A cached file is used only if it
    matches too (hashed once per process; later calls compare its size, inode and mtime). A cached file that does
    not match is downloaded again, and replaced only by a file that does.

    Downloads go to ``mirrored(url)``, with a progress bar on stderr if ``progress``. Offline
    (``HRNET_ZOO_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``) nothing is downloaded. Raises :class:`DirectDownloadError`;
    after any failure (Ctrl-C included) no new file is left in the cache folder.
    """
    path = cache_path(url, cache_dir)
    expected = _expected_prefix(hash_prefix, path.name)
    cached_problem = _cache_problem(path, expected)
    if cached_problem is None:
        return path
    source = mirrored(url)
    offline = is_offline()
    if offline is not None:
        reason = f'offline ({offline}={os.environ[offline]}) and {cached_problem}'
        hint = f'unset {offline} to download it, or {_HAND_HINT}'
        raise _error(url, source, path, reason, hint)
    _download(url, source, path, expected, progress)
    return path


def _expected_prefix(hash_prefix: str | None, name: str) -> str | None:
    if hash_prefix is None:
        return hash_prefix_of(name)
    if hash_prefix == '':
        return None
    prefix = hash_prefix.strip().lower()
    if not re.fullmatch(r'[0-9a-f]{8,64}', prefix):
        raise ValueError(f'hash_prefix={hash_prefix!r}: give the first 8 or more hex digits of the sha256')
    return prefix


def _cache_problem(path: Path, expected: str | None) -> str | None:
    """Why the cached ``path`` cannot be used, or None if it can."""
    try:
        problem = _mismatch(path, expected) if path.is_file() else 'not in the cache'
    except FileNotFoundError:  # removed between the two looks
        problem = 'not in the cache'
    if problem is None or problem == 'not in the cache':
        return problem
    return f'the cached file does not match ({problem})'


def _mismatch(path: Path, expected: str | None) -> str | None:
    """Why ``path`` does not match ``expected`` (None: it does, or nothing is expected)."""
    if expected is None:
        return None
    digest = _digest(path)
    if digest.startswith(expected):
        return None
    return f'sha256 mismatch: expected {expected}..., got {digest}'


def _key(path: Path) -> tuple[str, int, int, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _digest(path: Path) -> str:
    """The sha256 of ``path``, computed once per process and file identity (device, inode, size, mtime): a file
    replaced or rewritten since is hashed again."""
    key = _key(path)
    digest = _verified.get(key)
    if digest is None:
        digest = _verified[key] = sha256_file(path)
    return digest


def _download(url: str, source: str, path: Path, expected: str | None, progress: bool) -> None:
    connect_timeout = _seconds(CONNECT_TIMEOUT_ENV, CONNECT_TIMEOUT)
    read_timeout = _seconds(READ_TIMEOUT_ENV, READ_TIMEOUT)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _error(url, source, path, f'cannot create the cache folder ({_describe(exc)})') from exc
    _sweep_stale_partials(path)
    size = _probe(url, source, path, connect_timeout)
    staging = path.with_name(f'{path.name}.{uuid.uuid4().hex}.partial')
    try:
        try:
            with _socket_default_timeout(read_timeout):
                torch.hub.download_url_to_file(source, str(staging), hash_prefix=None, progress=progress)
        except TimeoutError as exc:
            raise _error(url, source, path, f'the transfer stalled (no data for {read_timeout:g} s)') from exc
        except (OSError, http.client.HTTPException) as exc:
            raise _error(url, source, path, _describe(exc)) from exc
        got = staging.stat().st_size
        if size is not None and got != size:
            raise _error(url, source, path, f'the transfer was cut short: got {got} of {size} bytes')
        problem = _mismatch(staging, expected)
        if problem is not None:
            raise _error(url, source, path, problem)
        digest = _verified.pop(_key(staging), None)
        os.replace(staging, path)
        if digest is not None:  # a rename keeps inode and mtime: the next call need not hash the file again
            _verified[_key(path)] = digest
    finally:
        _remove_quietly(staging)
        for leftover in glob.glob(glob.escape(str(staging)) + '.*.partial'):
            _remove_quietly(Path(leftover))


def _probe(url: str, source: str, path: Path, timeout: float) -> int | None:
    """``HEAD source`` within ``timeout`` seconds in all (name resolution included): the announced size, or None.

    Raises :class:`DirectDownloadError` if nothing answers or the answer is an error. The request runs in a daemon
    thread because ``getaddrinfo`` honours no timeout; one that does not return in time is left to finish alone.
    """
    result: dict[str, object] = {}

    def head() -> None:
        try:
            request = urllib.request.Request(source, method='HEAD', headers={'User-Agent': 'torch.hub'})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                length = response.headers.get('Content-Length')
                result['size'] = int(length) if length and length.isdigit() else None
        except BaseException as exc:  # handed to the caller's thread
            result['error'] = exc

    thread = threading.Thread(target=head, name='hrnet_zoo-probe', daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise _error(url, source, path, f'no answer within {timeout:g} s')
    error = result.get('error')
    if isinstance(error, urllib.error.HTTPError) and error.code in (403, 405, 501):
        return None  # a server that refuses HEAD only: the GET says whether the file is there
    if isinstance(error, TimeoutError) or (
        isinstance(error, urllib.error.URLError) and isinstance(error.reason, TimeoutError)
    ):
        raise _error(url, source, path, f'no answer within {timeout:g} s') from error
    if isinstance(error, BaseException):
        raise _error(url, source, path, _describe(error)) from error
    return result.get('size')  # type: ignore[return-value]


@contextmanager
def _socket_default_timeout(seconds: float) -> Iterator[None]:
    """``socket.setdefaulttimeout(seconds)`` while any download runs, if no default was set before.

    torch.hub's ``urlopen`` takes no timeout, so the socket default is the only way to bound its connect and reads
    without replacing its code or patching urllib. The default is read when a socket is created, so the window
    matters only for sockets other threads create meanwhile: they get a ``seconds`` timeout (30 s by default)
    instead of none. The lock and the count make overlapping downloads in several threads set it once and restore
    it once, after the last one; a default set by the user (not None) is left as it is.
    """
    global _timeout_users, _timeout_set
    with _timeout_lock:
        if _timeout_users == 0 and socket.getdefaulttimeout() is None:
            socket.setdefaulttimeout(seconds)
            _timeout_set = seconds
        _timeout_users += 1
    try:
        yield
    finally:
        with _timeout_lock:
            _timeout_users -= 1
            if _timeout_users == 0 and _timeout_set is not None:
                if socket.getdefaulttimeout() == _timeout_set:  # nobody changed it meanwhile
                    socket.setdefaulttimeout(None)
                _timeout_set = None


def _sweep_stale_partials(path: Path) -> None:
    """Remove ``<name>.<uuid>.partial`` files beside ``path`` that nobody has written to for an hour: what a killed
    process (torch.hub's or ours) left. A live download writes at least every ``READ_TIMEOUT`` seconds."""
    now = time.time()
    for name in glob.glob(glob.escape(str(path)) + '.*.partial'):
        candidate = Path(name)
        if not _PARTIAL.search(candidate.name[len(path.name) :]):
            continue
        try:
            if now - candidate.stat().st_mtime > STALE_PARTIAL_S:
                candidate.unlink()
        except OSError:
            pass  # gone already, or not ours to remove


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


# -- messages


def _describe(exc: BaseException) -> str:
    """The reason in a few words: "connection refused", "HTTP 404 Not Found", ..."""
    if isinstance(exc, urllib.error.HTTPError):
        return f'HTTP {exc.code} {exc.reason}'.strip()
    if isinstance(exc, urllib.error.URLError):
        if not isinstance(exc.reason, BaseException):
            return _one_line(str(exc.reason))
        exc = exc.reason
    if isinstance(exc, ConnectionRefusedError):
        return 'connection refused (nothing listening)'
    if isinstance(exc, socket.gaierror):
        return f'host not found ({_one_line(exc.strerror or str(exc))})'
    if isinstance(exc, TimeoutError):
        return 'timed out'
    if isinstance(exc, http.client.IncompleteRead):
        return f'the connection closed after {len(exc.partial)} bytes, {exc.expected} more expected'
    if isinstance(exc, (ConnectionError, http.client.HTTPException)):
        return f'the connection was lost ({type(exc).__name__}: {_one_line(str(exc))})'
    return f'{type(exc).__name__}: {_one_line(str(exc))}'


def _one_line(text: str) -> str:
    return ' '.join(text.split())


def _error(url: str, source: str, path: Path, reason: str, hint: str | None = None) -> DirectDownloadError:
    where = source if source == url else f'{source} (mirror of {url})'
    if hint is None:
        mirror = os.environ.get(MIRROR_ENV, '').strip()
        other = f'check {MIRROR_ENV}={mirror}' if mirror else f'set {MIRROR_ENV} to a mirror of it'
        hint = f'{_HAND_HINT}, or {other}'
    message = _one_line(f'could not fetch {where} into {path}: {reason}; {hint}')
    return DirectDownloadError(message, url=source, path=path, reason=reason)
