"""The command line end to end: fit, resume, test from a checkpoint alone, sample to every format, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from graphdiff.cli import main
from graphdiff.datasets.graph_formats import read_graph_file

TINY_MODEL = {
    "class_path": "graphdiff.lit.DiscreteDiffusionModel",
    "init_args": {
        "T": 10,
        "model": {
            "n_layers": 1,
            "hidden_mlp_dims": {"X": 8, "E": 8, "y": 8},
            "hidden_dims": {"dx": 8, "de": 8, "dy": 8, "n_head": 2, "dim_ffX": 8, "dim_ffE": 8, "dim_ffy": 8},
            "extra_features": "cycles",
        },
        "eval_samples": 4,
        "test_samples": 4,
        "sample_batch_size": 4,
    },
}

SMILES = ["CCO", "CC(=O)O", "c1ccccc1", "CC[N+](C)(C)C", "OC1CCCCC1", "CCN", "C#N", "CC(C)O", "O=C=O", "CCCl"] * 3


def write_config(path: Path, dataset: str, root: Path, **trainer) -> Path:
    config = {
        "seed_everything": 0,
        "model": TINY_MODEL,
        "data": {"dataset": dataset, "batch_size": 8, "root": str(root)},
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_steps": 3, "logger": False, "enable_progress_bar": False,
            "enable_model_summary": False, "default_root_dir": str(path.parent / "run"), "limit_val_batches": 1,
            "num_sanity_val_steps": 0,
            "callbacks": [{"class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
                           "init_args": {"dirpath": str(path.parent / "ckpt"), "save_last": True}}],
            **trainer,
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


def run(*args: str) -> int:
    return main(list(args))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model fitted for 3 steps on comm20, then resumed to 5 steps."""
    work = tmp_path_factory.mktemp("fit")
    config = write_config(work / "config.yaml", "comm20", work / "data")
    assert run("fit", "--config", str(config)) == 0
    last = work / "ckpt" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 3
    assert run("fit", "--config", str(config), "--trainer.max_steps", "5", "--ckpt_path", str(last)) == 0
    assert torch.load(last, weights_only=True)["global_step"] == 5
    return work, last


def test_checkpoint_is_self_describing(trained):
    _, last = trained
    ckpt = torch.load(last, weights_only=True)
    meta = ckpt["graphdiff"]
    assert meta["model_class"] == "graphdiff.lit.DiscreteDiffusionModel"
    assert meta["config"]["data"]["dataset"] == "comm20"
    assert ckpt["hyper_parameters"]["dataset_info"]["name"] == "comm20"


def test_test_from_checkpoint_alone_in_another_directory(trained, tmp_path, monkeypatch):
    _, last = trained
    monkeypatch.chdir(tmp_path)
    assert run("test", "--ckpt_path", str(last), "--trainer.logger", "false") == 0


@pytest.mark.parametrize("suffix", [".json", ".npz", ".graphml"])
def test_sample_to_graph_formats_and_read_back(trained, tmp_path, suffix):
    _, last = trained
    out = tmp_path / f"samples{suffix}"
    assert run("sample", "--ckpt_path", str(last), "--num_samples", "5", "--steps", "5", "--output", str(out),
               "--num_nodes", "12") == 0
    parsed = read_graph_file(out)
    assert len(parsed.triples) == 5
    assert all(x.numel() == 12 for x, _, _ in parsed.triples)


def _test_split(last: Path):
    from graphdiff.datasets.datamodule import open_dataset

    root = torch.load(last, weights_only=True)["graphdiff"]["config"]["data"]["root"]
    dataset = open_dataset("comm20", root=root)
    return root, dataset.split("test"), dataset.info


def test_predict_generates_one_graph_per_test_graph_with_its_size(trained, tmp_path, monkeypatch):
    _, last = trained
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "pred.json"
    assert run("predict", "--ckpt_path", str(last), "--trainer.logger", "false", "--output", str(out)) == 0
    _, test, _ = _test_split(last)
    sizes = sorted(x.numel() for x, _, _ in read_graph_file(out).triples)
    assert sizes == sorted(test.num_nodes.tolist())


def test_evaluate_command(trained, tmp_path, capsys):
    _, last = trained
    root, test, info = _test_split(last)
    samples, metrics = tmp_path / "s.json", tmp_path / "m.json"
    assert run("sample", "--ckpt_path", str(last), "--num_samples", "8", "--steps", "5", "--output", str(samples)) == 0
    assert run("evaluate", "--samples", str(samples), "--reference", "comm20:test", "--root", root,
               "--output", str(metrics)) == 0
    result = json.loads(metrics.read_text())
    assert {"degree", "clustering", "orbit", "spectral", "unique", "novel"} <= set(result)
    assert "degree" in capsys.readouterr().out
    # the test split scored against itself: every MMD is zero, and every graph is in the reference
    from graphdiff.sample_files import write_samples

    write_samples(samples, test, info)
    assert run("evaluate", "--samples", str(samples), "--reference", "comm20:test", "--root", root,
               "--metrics", "degree,clustering,spectral", "--output", str(metrics)) == 0
    result = json.loads(metrics.read_text())
    assert all(abs(result[k]) < 1e-9 for k in ("degree", "clustering", "spectral")), result


def test_sampling_is_seeded(trained, tmp_path):
    _, last = trained
    a, b, c = (tmp_path / f"{k}.json" for k in "abc")
    for path, seed in ((a, "3"), (b, "3"), (c, "4")):
        assert run("sample", "--ckpt_path", str(last), "--num_samples", "4", "--steps", "5", "--seed", seed,
                   "--output", str(path)) == 0
    assert json.loads(a.read_text()) == json.loads(b.read_text())
    assert json.loads(a.read_text()) != json.loads(c.read_text())


def test_pictures(trained, tmp_path):
    _, last = trained
    grid, chain = tmp_path / "grid.png", tmp_path / "chain.png"
    assert run("sample", "--ckpt_path", str(last), "--num_samples", "4", "--steps", "5", "--output",
               str(tmp_path / "s.npz"), "--image", str(grid), "--chain", str(chain)) == 0
    for png in (grid, chain):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_molecules_from_a_smiles_file(tmp_path):
    smi = tmp_path / "mols.smi"
    smi.write_text("\n".join(SMILES) + "\n")
    config = write_config(tmp_path / "config.yaml", str(smi), tmp_path / "data", max_steps=2)
    blob = yaml.safe_load(config.read_text())
    blob["data"]["dataset"] = "comm20"  # --data.path retargets a config written for another dataset
    config.write_text(yaml.safe_dump(blob))
    assert run("fit", "--config", str(config), "--data.path", str(smi)) == 0
    last = tmp_path / "ckpt" / "last.ckpt"
    out_smi, out_sdf = tmp_path / "gen.smi", tmp_path / "gen.sdf"
    assert run("sample", "--ckpt_path", str(last), "--num_samples", "6", "--steps", "5", "--output", str(out_smi)) == 0
    assert run("sample", "--ckpt_path", str(last), "--num_samples", "6", "--steps", "5", "--output", str(out_sdf)) == 0
    lines = out_smi.read_text().split("\n")
    assert len(lines) == 7 and lines[-1] == ""  # one line per sample, invalid ones empty
    from rdkit import Chem

    assert sum(1 for _ in Chem.SDMolSupplier(str(out_sdf), sanitize=False)) == 6
    for line in lines[:-1]:
        assert line == "" or Chem.MolFromSmiles(line) is not None


def test_bad_inputs_give_one_line_errors(tmp_path, capsys):
    corrupt = tmp_path / "bad.ckpt"
    corrupt.write_bytes(b"not a checkpoint")
    assert run("sample", "--ckpt_path", str(corrupt), "--output", str(tmp_path / "x.json")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("graphdiff: error:") and "bad.ckpt" in err and "\n" not in err
    assert not (tmp_path / "x.json").exists()

    assert run("data", "info", "no_such_dataset") == 2
    assert "unknown dataset 'no_such_dataset'" in capsys.readouterr().err

    empty = tmp_path / "empty.smi"
    empty.write_text("")
    assert run("data", "info", str(empty), "--root", str(tmp_path / "d")) == 2
    err = capsys.readouterr().err.strip()
    assert "empty.smi" in err and "\n" not in err


def test_data_info_json(tmp_path, capsys):
    assert run("data", "info", "comm20", "--json", "--root", str(tmp_path)) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["split_sizes"] == {"train": 64, "val": 16, "test": 20}
    assert 12 <= info["node_count_range"][0] <= info["node_count_range"][1] <= 20
    assert np.isclose(sum(info["edge_marginals"]), 1.0)


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    """fit with 2 gloo processes: DDP fails on parameters without gradient; samples are gathered across ranks."""
    config = write_config(tmp_path / "config.yaml", "comm20", tmp_path / "data", max_steps=2, devices=2,
                          strategy="ddp", max_epochs=1, limit_train_batches=2)
    blob = yaml.safe_load(config.read_text())
    blob["model"]["init_args"]["eval_every_n_epochs"] = 1
    blob["trainer"]["logger"] = {"class_path": "pytorch_lightning.loggers.CSVLogger",
                                 "init_args": {"save_dir": str(tmp_path / "logs")}}
    config.write_text(yaml.safe_dump(blob))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "graphdiff.cli", "fit", "--config", str(config)],
                          capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = (next((tmp_path / "logs").rglob("metrics.csv"))).read_text()
    header, *rows = [line.split(",") for line in metrics.strip().splitlines()]
    column = header.index("val/num_samples")
    assert [float(r[column]) for r in rows if r[column]] == [4.0]
