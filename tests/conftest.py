"""Shared test settings: reference data location and an isolated dataset root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
