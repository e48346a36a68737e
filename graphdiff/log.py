"""graphdiff's one logger and its progress bars.

Every module logs through ``graphdiff.log.get_logger(__name__)`` (children of the ``graphdiff`` logger), and long jobs
show a bar with :func:`progress`. The command line sets the verbosity with ``-v`` / ``-q``
(:func:`configure`): warnings and one-line notices by default, details with ``-v``, errors only with ``-q`` (which
also hides progress bars). Library users keep the usual :mod:`logging` control: nothing is printed until
:func:`configure` is called or the application configures logging itself.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

ROOT = "graphdiff"
#: ``$GRAPHDIFF_PROGRESS=0`` hides progress bars, ``1`` shows them even when stderr is not a terminal.
PROGRESS_ENV = "GRAPHDIFF_PROGRESS"

_progress_enabled: bool | None = None  # None: bars when stderr is a terminal


def get_logger(name: str = ROOT) -> logging.Logger:
    """The logger of a graphdiff module (``__name__``), a child of the ``graphdiff`` logger."""
    if name != ROOT and not name.startswith(ROOT + "."):
        name = f"{ROOT}.{name}"
    return logging.getLogger(name)


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"graphdiff: {record.levelname.lower()}: {text}"
        return f"graphdiff: {text}"


def configure(verbosity: int = 0) -> None:
    """Print graphdiff's log records on stderr, one line each.

    Args:
        verbosity: ``-1`` errors only and no progress bars (``-q``); ``0`` warnings and notices (default);
            ``1`` and more: details (``-v``).
    """
    global _progress_enabled
    logger = logging.getLogger(ROOT)
    level = logging.ERROR if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    logger.setLevel(level)
    if not any(getattr(h, "_graphdiff", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_OneLine())
        handler._graphdiff = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    if verbosity < 0:
        _progress_enabled = False


def progress_enabled() -> bool:
    """Whether :func:`progress` draws a bar: ``$GRAPHDIFF_PROGRESS``, else off after ``-q``, else when stderr is a
    terminal."""
    env = os.environ.get(PROGRESS_ENV)
    if env is not None:
        return env.strip() not in ("", "0", "false", "no")
    if _progress_enabled is not None:
        return _progress_enabled
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it",
             enabled: bool | None = None) -> Iterator[T]:
    """``iterable`` with a tqdm bar on stderr when progress is enabled (see :func:`progress_enabled`)."""
    if not (progress_enabled() if enabled is None else enabled):
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, desc=desc, total=total, unit=unit, leave=False, file=sys.stderr)
