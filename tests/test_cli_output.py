"""What the command prints: -v / -q, and Lightning's notices that are not about the run left out."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import graphdiff.lightning_cli
from graphdiff.cli import main


def _level() -> int:
    return logging.getLogger("graphdiff").level


@pytest.mark.parametrize(("argv", "level"), [
    (["data", "list"], logging.INFO),
    (["-q", "data", "list"], logging.ERROR),
    (["--quiet", "data", "list"], logging.ERROR),
    (["data", "-q", "list"], logging.ERROR),
    (["data", "list", "-q"], logging.ERROR),
    (["-v", "data", "list"], logging.DEBUG),
    (["data", "list", "--verbose"], logging.DEBUG),
])
def test_verbosity_before_or_after_the_subcommand(argv: list[str], level: int,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 0
    assert "comm20" in capsys.readouterr().out
    assert _level() == level


def test_lightning_commands_get_their_own_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    given = []
    monkeypatch.setattr(graphdiff.lightning_cli, "run_lightning", given.append)
    assert main(["-q", "fit", "--config", "comm20", "-v", "--trainer.max_epochs", "1"]) == 0
    assert given == [["fit", "--config", "comm20", "-v", "--trainer.max_epochs", "1"]]
    assert _level() == logging.ERROR
    assert main(["test", "--ckpt_path", "x.ckpt"]) == 0
    assert given[-1] == ["test", "--ckpt_path", "x.ckpt"] and _level() == logging.INFO


def test_a_wrong_global_option_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--loud", "fit"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("graphdiff: error:") and "\n" not in err and "--loud" in err


def test_quickstart_prints_no_lightning_advertisements(tmp_path: Path) -> None:
    """Lightning's "💡 Tip" lines (litlogger, litmodels) and its tensorboardX notice are left out; the rest of its
    output (the model summary, why training stopped) stays."""
    env = {**os.environ, "GRAPHDIFF_ROOT": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-m", "graphdiff.cli", "quickstart", "--max_epochs", "1", "--num_samples", "2", "--steps", "2",
         "--output", str(tmp_path / "out")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    for notice in ("💡", "Tip:", "litlogger", "litmodels", "tensorboardX"):
        assert notice not in output, output
    assert "Trainable params" in output and "`Trainer.fit` stopped" in output
    assert (tmp_path / "out" / "metrics.json").is_file()
