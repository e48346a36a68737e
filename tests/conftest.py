"""Shared test settings: reference data location and an isolated dataset root."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("GRAPHDIFF_DATA_DIR", str(REPO.parent / "shared" / "data"))


def data_file(*parts: str) -> Path:
    """Path of a reference data file, or skip the test when it is absent."""
    path = Path(os.environ["GRAPHDIFF_DATA_DIR"], *parts)
    if not path.is_file():
        pytest.skip(f"reference data {path} not available")
    return path


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty dataset root, so tests never touch ./data."""
    root = tmp_path / "data"
    monkeypatch.setenv("GRAPHDIFF_ROOT", str(root))
    return root


@pytest.fixture
def one_thread():
    """Run a test with one torch thread (batched eigh is 10-50x slower with 2 threads on a loaded 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _restore_graphdiff_logging(monkeypatch: pytest.MonkeyPatch):
    """``graphdiff.cli.main`` configures the ``graphdiff`` logger (a handler on the test's stderr, no propagation, see
    graphdiff/log.py); undo it after each test, so later tests' ``caplog`` still receives graphdiff's records."""
    from graphdiff import log

    logger = logging.getLogger(log.ROOT)
    saved = (list(logger.handlers), logger.propagate, logger.level)
    monkeypatch.setattr(log, "_progress_enabled", log._progress_enabled)
    yield
    logger.handlers[:] = saved[0]
    logger.propagate = saved[1]
    logger.setLevel(saved[2])
