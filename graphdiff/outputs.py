"""Where results go: output paths checked before the long work, and finished results kept when a write fails.

Every command that writes a file (``sample``, ``evaluate``, ``predict``, ``quickstart``) calls
:func:`check_output_path` on each output before it trains, samples or scores anything, so a typo in a suffix, a
directory given as a file, an output that would replace one of the command's own inputs, or an unwritable folder is
reported at once. :func:`write_or_rescue` writes the finished result; if that still fails (the disk filled up, the
folder became read-only), it writes the result to a rescue file in the system's temporary directory and says where.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from graphdiff.errors import ConfigError, GraphdiffError

T = TypeVar("T")


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file (hard links and symbolic links included)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_output_path(path: str | os.PathLike, suffixes: Sequence[str] = (), inputs: Iterable[object] = (),
                      option: str = "--output") -> Path:
    """Check, before any work, that ``path`` can receive a result.

    Args:
        path: the file to write.
        suffixes: accepted endings (lower case, e.g. ``(".json",)``); empty: any.
        inputs: the command's input files (``None`` entries and non-paths such as ``qm9:test`` are skipped); writing
            over one of them is refused.
        option: the option's name, for the message.

    Raises:
        ConfigError: one line saying what is wrong and what to do.
    """
    out = Path(path)
    if str(path).strip() == "":
        raise ConfigError(f"{option}: empty file name")
    if out.is_dir():
        example = out / f"result{suffixes[0] if suffixes else ''}"
        raise ConfigError(f"{option} {out}: is a directory; give a file name, e.g. {example}")
    for item in inputs:
        if isinstance(item, str | os.PathLike) and Path(item).exists() and same_file(out, item):
            raise ConfigError(f"{option} {out}: would overwrite the input {item}; choose another file name")
    if suffixes and not out.name.lower().endswith(tuple(suffixes)):
        raise ConfigError(f"{option} {out}: unsupported file type {out.suffix or '(none)'}; "
                          f"use one of {', '.join(suffixes)}")
    folder = out.parent if str(out.parent) else Path(".")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{option} {out}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {out}: cannot write in {existing} (permission denied); choose another folder")
    if out.exists() and not os.access(out, os.W_OK) and not os.access(folder, os.W_OK):
        raise ConfigError(f"{option} {out}: the file is read-only")
    return out


def write_or_rescue(write: Callable[[Path], T], path: str | os.PathLike, what: str) -> T:
    """``write(path)``; if it fails with an ``OSError``, ``write(rescue)`` into the temporary directory instead.

    Raises:
        GraphdiffError: after a rescue, naming the reason and where ``what`` was kept (the result is not lost);
            or, when the rescue fails too, both reasons.
    """
    path = Path(path)
    try:
        return write(path)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        rescue = Path(tempfile.gettempdir()) / f"graphdiff-rescued-{stamp}-{os.getpid()}-{path.name}"
        try:
            write(rescue)
        except OSError as again:
            raise GraphdiffError(f"could not write {what} to {path} ({reason}) nor to {rescue} "
                                 f"({again.strerror or again})") from None
        raise GraphdiffError(f"could not write {what} to {path} ({reason}); they were saved to {rescue}") from None
