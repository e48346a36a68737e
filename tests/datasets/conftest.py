"""Dataset tests read graphdiff's log records through pytest's ``caplog``."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def graphdiff_records_reach_caplog(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the ``graphdiff`` logger's records reach the root logger, where ``caplog`` listens, even after
    ``graphdiff.log.configure`` (which the command line calls) gave it its own handler and stopped propagation."""
    monkeypatch.setattr(logging.getLogger("graphdiff"), "propagate", True)
