"""Small file helpers: atomic writes and content fingerprints."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
import socket
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

import torch

from graphdiff.errors import DataError
from graphdiff.log import get_logger

T = TypeVar("T")

#: Temporary files whose name carries no writer (written before graphdiff recorded one) are stale once
#: untouched for this long.
UNOWNED_TEMP_AGE_S = 24 * 3600


def current_umask() -> int:
    """The process's file-mode creation mask.

    Read from ``/proc/self/status`` where there is one (Linux), which does not change the mask; elsewhere
    ``os.umask`` must set it to read it, which briefly races with other threads creating files.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


#: Environment variable naming graphdiff's data root (processed datasets, reference statistics).
ROOT_ENV = "GRAPHDIFF_ROOT"


def default_root() -> Path:
    """The data root: ``$GRAPHDIFF_ROOT`` if set, else ``./data``."""
    return Path(os.environ.get(ROOT_ENV, "data"))


def read_cache_file(path: Path | None, read: Callable[[Path], T]) -> T | None:
    """``read(path)`` for a cache file, or ``None`` when there is no file or it is damaged (then a one-line
    warning: the caller recomputes the value and writes the file again)."""
    if path is None or not path.is_file():
        return None
    try:
        return read(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        get_logger(__name__).warning("%s: damaged cache file (%s: %s); recomputing", path, type(exc).__name__,
                                     str(exc).splitlines()[0] if str(exc) else "")
        return None


def new_file_mode() -> int:
    """The permission bits ``open(path, "w")`` gives a new file: ``0o666`` less the umask."""
    return 0o666 & ~current_umask()


def _host_tag() -> str:
    """8 hex digits naming this machine in temporary file names (PIDs mean nothing on another host)."""
    return hashlib.sha256(socket.gethostname().encode("utf-8")).hexdigest()[:8]


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file next to ``path`` and move it over ``path`` only if the block succeeds.

    A crash or an exception mid-write leaves any previous ``path`` untouched and no partial file. The
    temporary file is ``.<name>.<host>-<pid>.<random>.tmp`` (so :func:`remove_stale_temp_files` can tell
    whether its writer is gone after a kill), and ``path`` gets the permissions a plain ``open()`` would
    give it (``0o666`` less the umask), not ``mkstemp``'s private ``0o600``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = f"{_host_tag()}-{os.getpid()}"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{owner}.", suffix=".tmp")
    try:
        os.chmod(tmp, new_file_mode())
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temp_files(path: str | os.PathLike) -> int:
    """Delete the temporary files that killed :func:`atomic_write` calls left next to ``path``.

    A file ``.<name>.<host>-<pid>.<random>.tmp`` is removed when it was written on this machine by a
    process that no longer exists; a file of a live process (this one included), or of another machine,
    is kept unless untouched for :data:`UNOWNED_TEMP_AGE_S`, as are files that name no writer.

    Returns:
        The number of files removed.
    """
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(?:([0-9a-f]{{8}})-(\d+)\.)?[a-z0-9_]{{8}}\.tmp")
    try:
        candidates = list(path.parent.iterdir())
    except OSError:
        return 0
    host, removed = _host_tag(), 0
    for tmp in candidates:
        match = pattern.fullmatch(tmp.name)
        if match is None:
            continue
        tag, pid = match.groups()
        try:
            if tag == host:
                stale = not _process_exists(int(pid))
            else:
                stale = time.time() - tmp.stat().st_mtime > UNOWNED_TEMP_AGE_S
            if stale:
                tmp.unlink()
                removed += 1
        except OSError:  # gone already, or not ours to delete
            continue
    return removed


def _process_exists(pid: int) -> bool:
    """True if a process ``pid`` exists on this machine (zombies included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OverflowError:
        return False
    return True


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, strictly valid JSON, atomically: NaN and infinities become ``null``
    (``json`` would write bare ``NaN``, which other parsers reject)."""
    with atomic_write(path, "w", encoding="utf-8") as f:
        json.dump(finite_or_none(obj), f, indent=2, sort_keys=False, allow_nan=False)
        f.write("\n")


def finite_or_none(obj: Any) -> Any:
    """``obj`` with every non-finite float (in nested dicts, lists and tuples) replaced by ``None``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_or_none(v) for v in obj]
    return obj


def torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` atomically."""
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def text_sha256(text: str) -> str:
    """Hex SHA-256 of a string (used to fingerprint generator settings)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_file_bytes(path: str | os.PathLike) -> bytes:
    """A file's bytes, decompressed when the name ends in ``.gz``.

    Raises:
        DataError: missing, unreadable, truncated or corrupt gzip, or empty.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: truncated or corrupt gzip file ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not data.strip():
        raise DataError(f"{path}: file is empty")
    return data


def read_file_text(path: str | os.PathLike) -> str:
    """A text file (UTF-8, a byte-order mark dropped), decompressed when the name ends in ``.gz``; binary data (a
    NUL byte) is refused rather than decoded.

    Raises:
        DataError: as :func:`read_file_bytes`, or not UTF-8 text.
    """
    data = read_file_bytes(path)
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{path}: binary data (a NUL byte at byte {nul}), not a text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    return text
