"""``graphdiff search``: grid and component-wise searches over sampler settings, for the flow and the discrete
families, the table and the plot, and bad settings as one-line errors."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from graphdiff.cli import main
from tests.test_families import TINY

PNG = b"\x89PNG\r\n\x1a\n"


def run(*args) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module", params=["flow", "discrete"])
def checkpoint(request, tmp_path_factory):
    work = tmp_path_factory.mktemp(f"search-{request.param}")
    config = {
        "seed_everything": 0,
        "model": TINY[request.param],
        "data": {"dataset": "comm20", "batch_size": 8, "root": str(work / "data")},
        "trainer": {"accelerator": "cpu", "max_steps": 2, "logger": False, "enable_progress_bar": False,
                    "limit_val_batches": 1, "num_sanity_val_steps": 0, "default_root_dir": str(work / "run")},
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    assert run("fit", "--config", work / "config.yaml") == 0
    return request.param, next((work / "run").rglob("last.ckpt"))


def test_grid_search_writes_one_row_per_setting(checkpoint, tmp_path):
    family, ckpt = checkpoint
    out, picture = tmp_path / "search.csv", tmp_path / "search.png"
    params = ["-p", "steps=2,4"] + (["-p", "eta=0,5", "-p", "time_distortion=identity,polydec"]
                                    if family == "flow" else [])
    assert run("search", "--ckpt_path", ckpt, *params, "--mode", "grid", "--num_samples", "4", "--output", out,
               "--plot", picture) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == (8 if family == "flow" else 2)
    assert {"steps", "degree", "clustering", "seconds"} <= set(rows[0])
    if family == "flow":
        settings = {(r["steps"], r["eta"], r["time_distortion"]) for r in rows}
        assert len(settings) == 8
    assert picture.read_bytes()[:8] == PNG


@pytest.mark.parametrize("checkpoint", ["flow"], indirect=True)  # needs settings besides steps
def test_componentwise_search_keeps_the_best_and_moves_on(checkpoint, tmp_path):
    _, ckpt = checkpoint
    out = tmp_path / "search.json"
    assert run("search", "--ckpt_path", ckpt, "-p", "steps=2,3", "-p", "eta=0,5", "-p", "omega=0,0.1",
               "--num_samples", "4", "--target", "clustering", "--output", out) == 0
    rows = json.loads(out.read_text())
    # per number of steps: the base setting, then 2 etas, then 2 omegas
    assert len(rows) == 2 * (1 + 2 + 2)
    for steps in (2, 3):
        mine = [r for r in rows if r["steps"] == steps]
        etas = mine[1:3]
        best_eta = min([mine[0], *etas], key=lambda r: r["clustering"])["eta"]  # ties keep the earlier
        assert all(r["eta"] == best_eta for r in mine[3:]), mine


@pytest.mark.parametrize(("checkpoint", "param", "message"), [
    ("flow", "temperature=1,2", "no such setting"), ("discrete", "temperature=1,2", "no such setting"),
    ("discrete", "eta=0,5", "no such setting"), ("flow", "steps=a", "not a value"),
    ("discrete", "steps=a", "not a value"), ("flow", "eta", "expected NAME=")], indirect=["checkpoint"])
def test_bad_search_settings_are_one_line(checkpoint, tmp_path, capsys, param, message):
    _, ckpt = checkpoint
    assert run("search", "--ckpt_path", ckpt, "-p", param, "--output", tmp_path / "s.csv") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and message in err
