"""Hostile and careless input: nothing runs code, nothing is lost, nothing is silently wrong, errors are one line.

Each class of the hardening issue has tests here (the dataset-cache and unpickling ones live in tests/datasets/):
files that would run code, a kill during a checkpoint save, options that must take effect or be refused on a
checkpoint, a table of bad arguments for every subcommand, strict metrics JSON, and late errors.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import networkx as nx
import pytest
import torch
import yaml

import graphdiff.api as gd
from graphdiff.cli import main
from graphdiff.errors import ConfigError, GraphdiffError
from graphdiff.lightning_cli import run_lightning
from tests.test_cli import write_config


def run(*args: str) -> int:
    return main([str(a) for a in args])


def one_line_error(capsys) -> str:
    """The single ``graphdiff: error:`` line on stderr (and no traceback)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("graphdiff: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny comm20 model trained for 3 steps through the CLI: ``(work dir, config, last.ckpt)``."""
    work = tmp_path_factory.mktemp("tiny")
    config = write_config(work / "config.yaml", "comm20", work / "data")
    assert run("fit", "--config", config) == 0
    return work, config, work / "ckpt" / "last.ckpt"


# ---------------------------------------------------------------------------------------------- 1. no code runs
class _Boom:
    """Pickling this object makes unpickling call ``os.system`` (or ``builtins.exec``) with a command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_with_code_in_its_pickle_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}, "graphdiff": {"model_class": "x"}, "x": _Boom(marker)},
               evil)
    with pytest.raises(GraphdiffError, match="refused|not a readable"):
        gd.load_model(evil)
    assert run("sample", "--ckpt_path", evil, "--output", tmp_path / "s.json") == 2
    assert "evil.ckpt" in one_line_error(capsys)
    assert run("test", "--ckpt_path", evil) == 2
    one_line_error(capsys)
    assert not marker.exists()


@pytest.mark.parametrize("model_class", ["os.system", "builtins.exec", "subprocess.Popen", "graphdiff.io.write_json",
                                         "pathlib.Path.touch"])
def test_checkpoint_naming_a_callable_builds_nothing(tiny, tmp_path, model_class, monkeypatch):
    _, _, last = tiny
    ckpt = torch.load(last, weights_only=True)
    ckpt["graphdiff"]["model_class"] = model_class
    marker = tmp_path / "ran"
    ckpt["hyper_parameters"] = {"args": f"touch {marker}", "path": str(marker)}
    evil = tmp_path / "evil.ckpt"
    torch.save(ckpt, evil)
    calls = []
    monkeypatch.setattr(os, "system", lambda *a, **k: calls.append(a))
    with pytest.raises(GraphdiffError, match="not a registered graphdiff model"):
        gd.load_model(evil)
    assert not calls and not marker.exists()


@pytest.mark.parametrize("where", ["model", "callback", "logger"])
def test_checkpoint_config_naming_foreign_classes_is_refused(tiny, tmp_path, where, capsys):
    _, _, last = tiny
    ckpt = torch.load(last, weights_only=True)
    marker = tmp_path / "ran"
    evil_class = {"class_path": "subprocess.Popen", "init_args": {"args": ["touch", str(marker)]}}
    config = ckpt["graphdiff"]["config"]
    if where == "model":
        config["model"] = evil_class
    elif where == "callback":
        config["trainer"]["callbacks"] = [evil_class]
    else:
        config["trainer"]["logger"] = evil_class
    evil = tmp_path / "evil.ckpt"
    torch.save(ckpt, evil)
    assert run("test", "--ckpt_path", evil) == 2
    line = one_line_error(capsys)
    assert "subprocess.Popen" in line
    assert not marker.exists()


def test_registered_user_model_is_loadable(tiny, tmp_path):
    from graphdiff.lit import DiscreteDiffusionModel, register_model, registered_models

    class MyModel(DiscreteDiffusionModel):
        pass

    _, _, last = tiny
    ckpt = torch.load(last, weights_only=True)
    ckpt["graphdiff"]["model_class"] = f"{MyModel.__module__}.{MyModel.__qualname__}"
    path = tmp_path / "mine.ckpt"
    torch.save(ckpt, path)
    with pytest.raises(GraphdiffError, match="not a registered"):
        gd.load_model(path)
    register_model(MyModel)
    try:
        assert type(gd.load_model(path)) is MyModel
    finally:  # keep the registry as it was for other tests
        import graphdiff.lit.base as base

        for key in [k for k, v in registered_models().items() if v is MyModel]:
            del base._MODELS[key]


# ---------------------------------------------------------------------------------------------- 2. nothing lost
KILL_DURING_SAVE = textwrap.dedent("""
    import os, signal, sys
    import torch
    saves = {"n": 0}
    real_save = torch.save
    def save(obj, f, *args, **kwargs):
        saves["n"] += isinstance(obj, dict) and "global_step" in obj  # checkpoints only, not dataset caches
        if saves["n"] == int(os.environ["KILL_AT_SAVE"]):
            f.write(b"half a checkpoint" * 1000)
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *args, **kwargs)
    torch.save = save
    from graphdiff.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_kill_during_a_checkpoint_save_keeps_a_loadable_last_ckpt(tmp_path):
    """SIGKILL in the middle of writing the 3rd checkpoint, with $TMPDIR on another file system where there is one:
    the previous last.ckpt is intact, loads, and resuming works; the half-written temporary file is cleaned."""
    config = write_config(tmp_path / "config.yaml", "comm20", tmp_path / "data", max_steps=6,
                          check_val_every_n_epoch=1000)
    blob = yaml.safe_load(config.read_text())
    blob["trainer"]["callbacks"].append({"class_path": "graphdiff.callbacks.LastCheckpoint",
                                         "init_args": {"every_n_train_steps": 1}})
    config.write_text(yaml.safe_dump(blob))
    script = tmp_path / "kill.py"
    script.write_text(KILL_DURING_SAVE)
    other_fs = Path("/dev/shm") if Path("/dev/shm").is_dir() else tmp_path
    env = {**os.environ, "KILL_AT_SAVE": "3", "TMPDIR": str(other_fs), "PYTHONPATH": str(Path.cwd())}
    proc = subprocess.run([sys.executable, str(script), "fit", "--config", str(config)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    last = tmp_path / "ckpt" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["global_step"] == 2  # the save of step 3 was killed; step 2's file is whole
    leftovers = list(last.parent.glob(".last.ckpt.*"))
    assert leftovers, "the kill should have left the half-written temporary file behind"
    assert run("fit", "--config", config, "--ckpt_path", last, "--trainer.max_steps", "4") == 0
    assert torch.load(last, weights_only=True)["global_step"] == 4
    assert not list(last.parent.glob(".last.ckpt.*"))


def test_a_run_shorter_than_its_validation_interval_still_writes_last_ckpt(tmp_path):
    config = write_config(tmp_path / "config.yaml", "comm20", tmp_path / "data", max_steps=4,
                          check_val_every_n_epoch=1000)
    blob = yaml.safe_load(config.read_text())
    blob["trainer"]["callbacks"] = []  # no ModelCheckpoint at all: graphdiff's LastCheckpoint still saves
    blob["trainer"]["default_root_dir"] = str(tmp_path / "run")
    config.write_text(yaml.safe_dump(blob))
    assert run("fit", "--config", config) == 0
    found = list((tmp_path / "run").rglob("last.ckpt"))
    assert len(found) == 1
    assert torch.load(found[0], weights_only=True)["global_step"] == 4


def test_api_fit_keeps_last_ckpt_and_mode_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        model = gd.fit([nx.cycle_graph(n) for n in (4, 5, 6, 5, 4, 6, 5, 4, 6, 5)], output_dir=tmp_path / "api",
                       max_epochs=1, batch_size=4, T=5, model={"n_layers": 1, "extra_features": "none"},
                       eval_samples=2)
    finally:
        os.umask(old)
    last = tmp_path / "api" / "checkpoints" / "last.ckpt"
    assert last.is_file() and model.info.max_nodes == 6
    assert last.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("inputs", ["samples", "reference"])
def test_evaluate_refuses_to_overwrite_its_input(tmp_path, capsys, inputs):
    samples, reference = tmp_path / "s.smi", tmp_path / "r.smi"
    samples.write_text("CCO\nCCN\n")
    reference.write_text("CCO\nCCC\n")
    target = samples if inputs == "samples" else reference
    before = target.read_bytes()
    assert run("evaluate", "--samples", samples, "--reference", reference, "--output", target) == 2
    assert "would overwrite the input" in one_line_error(capsys)
    assert target.read_bytes() == before


def test_sample_refuses_to_overwrite_the_checkpoint(tiny, tmp_path, capsys):
    _, _, last = tiny
    copy = tmp_path / "model.json"
    copy.write_bytes(last.read_bytes())
    assert run("sample", "--ckpt_path", copy, "--output", copy) == 2
    assert "would overwrite the input" in one_line_error(capsys)
    assert copy.read_bytes() == last.read_bytes()


def test_a_failed_write_keeps_the_samples(tiny, tmp_path, capsys, monkeypatch):
    """The output cannot be written after sampling (disk full, folder gone read-only): the samples are rescued."""
    import graphdiff.sample_files as sample_files

    _, _, last = tiny
    out = tmp_path / "out" / "s.json"
    real = sample_files.write_samples

    def failing(path, graphs, info, decoding=None):
        if Path(path) == out:
            raise OSError(28, "No space left on device")
        return real(path, graphs, info)

    monkeypatch.setattr(sample_files, "write_samples", failing)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert run("sample", "--ckpt_path", last, "--num_samples", "3", "--steps", "2", "--output", out) == 2
    line = one_line_error(capsys)
    assert "No space left on device" in line and "saved to" in line
    rescued = list(tmp_path.glob("graphdiff-rescued-*-s.json"))
    assert len(rescued) == 1 and len(json.loads(rescued[0].read_text())) == 3


# ---------------------------------------------------------------------------------------------- 3. no silent result
def test_test_from_checkpoint_uses_the_command_line_sample_steps(tiny):
    _, _, last = tiny
    cli = run_lightning(["test", "--ckpt_path", str(last), "--model.sample_steps", "3", "--trainer.logger", "false"])
    assert cli.model.hparams.sample_steps == 3
    cli = run_lightning(["test", "--ckpt_path", str(last), "--trainer.logger", "false"])
    assert cli.model.hparams.sample_steps is None  # the checkpoint's own value


def test_resume_with_a_new_learning_rate_trains_at_that_rate(tiny, tmp_path):
    _, config, last = tiny
    resumed = tmp_path / "resume.ckpt"
    resumed.write_bytes(last.read_bytes())
    cli = run_lightning(["fit", "--config", str(config), "--ckpt_path", str(resumed), "--model.lr", "0.0123",
                         "--trainer.max_steps", "4", "--trainer.callbacks", "[]",
                         "--trainer.default_root_dir", str(tmp_path / "r")])
    assert cli.trainer.global_step == 4
    assert cli.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0123)


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--model.T", "7", "cannot change model.T"),
    ("--model.transition", "uniform", "cannot change model.transition"),
    ("--model.model", '{"n_layers": 3}', "cannot change model.model"),
    ("--model.amsgrad", "false", "cannot change model.amsgrad"),
    ("--data.dataset", "sbm", "differs in"),
])
def test_resume_with_options_that_cannot_take_effect_is_refused(tiny, tmp_path, capsys, option, value, message):
    _, config, last = tiny
    assert run("fit", "--config", config, "--ckpt_path", last, option, value, "--trainer.max_steps", "4") == 2
    assert message in one_line_error(capsys)


def test_a_config_of_another_family_on_a_checkpoint_is_refused(tiny, tmp_path, capsys):
    _, config, last = tiny
    blob = yaml.safe_load(Path(config).read_text())
    blob["model"] = {"class_path": "graphdiff.lit.ScoreSDEModel", "init_args": {}}
    other = tmp_path / "sde.yaml"
    other.write_text(yaml.safe_dump(blob))
    assert run("fit", "--config", other, "--ckpt_path", last, "--trainer.max_steps", "4") == 2
    line = one_line_error(capsys)
    assert "holds a DiscreteDiffusionModel" in line and "ScoreSDEModel" in line


def _strict_json(path: Path) -> dict:
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_metrics_of_all_invalid_molecules_are_null_with_a_reason(tmp_path, capsys):
    samples, reference, out = tmp_path / "s.smi", tmp_path / "r.smi", tmp_path / "m.json"
    samples.write_text("\n\nC1CC\nXX\n")
    reference.write_text("CCO\nc1ccccc1\nCCN\nCC(=O)O\n")
    assert run("evaluate", "--samples", samples, "--reference", reference, "--output", out) == 0
    result = _strict_json(out)
    assert result["validity"] == 0.0 and result["fcd"] is None
    assert result["not_computed"]["fcd"] == "no valid molecule among the 4 samples"
    assert "n/a (no valid molecule" in capsys.readouterr().out


def test_metrics_of_all_empty_graphs_are_null_with_a_reason(tmp_path):
    samples, reference, out = tmp_path / "s.json", tmp_path / "r.json", tmp_path / "m.json"
    samples.write_text(json.dumps([{"num_nodes": 0, "edges": []}] * 3))
    reference.write_text(json.dumps([{"num_nodes": 4, "edges": [[0, 1], [1, 2], [2, 3]]}] * 3))
    for folds in ("1", "3"):
        assert run("evaluate", "--samples", samples, "--reference", reference, "--output", out,
                   "--folds", folds) == 0
        result = _strict_json(out)
        assert result["degree"] is None
        assert result["not_computed"]["degree"] == "all 3 samples are empty graphs (no nodes)"


def test_binary_file_is_not_scored_as_smiles(tmp_path, capsys):
    binary = tmp_path / "s.smi"
    binary.write_bytes(bytes(range(256)) * 4)
    reference = tmp_path / "r.smi"
    reference.write_text("CCO\n")
    assert run("evaluate", "--samples", binary, "--reference", reference) == 2
    assert "binary data" in one_line_error(capsys)


def test_api_fit_with_a_missing_file_does_not_read_the_name_as_smiles(tmp_path):
    with pytest.raises(GraphdiffError, match="no such file"):
        gd.fit(str(tmp_path / "some.smi"), output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kwargs", [{"max_epochs": 0}, {"batch_size": -2}, {"ema_decay": 1.5}, {"devices": "many"},
                                    {"lamda_edge": 2.0}, {"T": 0}])
def test_api_fit_bad_arguments(tmp_path, kwargs):
    with pytest.raises(GraphdiffError) as info:
        gd.fit(["CCO", "CCN", "CCC", "CCCl"] * 3, output_dir=tmp_path / "out", **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    ((0,), {}, "num_samples=0"),
    ((-3,), {}, "num_samples=-3"),
    ((2.5,), {}, "expected an integer"),
    ((4,), {"steps": 0}, "steps=0"),
    ((4,), {"steps": 11}, "exceeds the model's T=10"),
    ((4,), {"batch_size": 0}, "batch_size=0"),
    ((4,), {"num_nodes": 0}, "num_nodes must be >= 1"),
    ((4,), {"num_nodes": 500}, "exceeds the model's maximum"),
    ((4,), {"num_nodes": [3, 4]}, "one per sample"),
    ((4,), {"num_nodes": 3.5}, "num_nodes"),
    ((4,), {"seed": "x"}, "seed"),
    ((4,), {"temperature": 2}, "unknown sampling option"),
])
def test_api_sampling_bad_arguments(tiny, args, kwargs, message):
    _, _, last = tiny
    model = gd.load_model(last)
    with pytest.raises(GraphdiffError, match=message) as info:
        gd.sample_graphs(model, *args, **kwargs)
    assert "\n" not in str(info.value)


def test_api_sample_molecules_of_a_graph_model(tiny):
    model = gd.load_model(tiny[2])
    with pytest.raises(GraphdiffError, match="not molecules"):
        gd.sample_molecules(model, 2)


# ---------------------------------------------------------------------------------------------- 4/5. every subcommand
def _bad_cases(work: Path, config: Path, last: Path) -> list[tuple[list[str], str]]:
    smi = work / "ok.smi"
    smi.write_text("CCO\nCCN\n")
    binary = work / "bin.smi"
    binary.write_bytes(b"\x00\x01\x02")
    corrupt = work / "corrupt.ckpt"
    corrupt.write_bytes(b"PK\x03\x04 truncated")
    a_file = work / "plain.txt"
    a_file.write_text("x")
    out = str(work / "out.json")
    return [
        (["sample", "--ckpt_path", last, "--output", out, "--num_samples", "0"], "positive integer"),
        (["sample", "--ckpt_path", last, "--output", out, "--num_samples", "-3"], "positive integer"),
        (["sample", "--ckpt_path", last, "--output", out, "--steps", "0"], "positive integer"),
        (["sample", "--ckpt_path", last, "--output", out, "--steps", "999"], "exceeds the model's T"),
        (["sample", "--ckpt_path", last, "--output", out, "--batch_size", "0"], "positive integer"),
        (["sample", "--ckpt_path", last, "--output", out, "--batch_size", "-1"], "positive integer"),
        (["sample", "--ckpt_path", last, "--output", out, "--num_nodes", "999"], "maximum"),
        (["sample", "--ckpt_path", last, "--output", str(work / "out.xyz")], "unsupported file type"),
        (["sample", "--ckpt_path", last, "--output", str(work / "out.smi")], "holds molecules"),
        (["sample", "--ckpt_path", last, "--output", str(work)], "is a directory"),
        (["sample", "--ckpt_path", last, "--output", str(a_file / "x.json")], "is a file, not a directory"),
        (["sample", "--ckpt_path", last, "--output", out, "--image", str(work / "g.jpg")], "unsupported file type"),
        (["sample", "--ckpt_path", last, "--output", out, "--device", "nonsense"], "device 'nonsense'"),
        (["sample", "--ckpt_path", last, "--output", out, "--device", "cuda:7"], "device 'cuda:7'"),
        (["sample", "--ckpt_path", str(work / "missing.ckpt"), "--output", out], "no such checkpoint"),
        (["sample", "--ckpt_path", corrupt, "--output", out], "corrupt"),
        (["sample", "--ckpt_path", str(work), "--output", out], "is a directory"),
        (["sample", "--output", out], "required"),
        (["evaluate", "--samples", smi, "--reference", smi, "--folds", "0"], "positive integer"),
        (["evaluate", "--samples", smi, "--reference", smi, "--folds", "-2"], "positive integer"),
        (["evaluate", "--samples", smi, "--reference", smi, "--output", str(work / "m.csv")], "unsupported file"),
        (["evaluate", "--samples", binary, "--reference", smi], "binary data"),
        (["evaluate", "--samples", str(work / "none.smi"), "--reference", smi], "no such file"),
        (["evaluate", "--samples", smi, "--reference", "comm20:nosplit", "--root", str(work / "data")], "split"),
        (["evaluate", "--samples", smi, "--reference", smi, "--protocol", "nope"], "invalid choice"),
        (["quickstart", "--num_samples", "0"], "positive integer"),
        (["quickstart", "--steps", "0"], "positive integer"),
        (["quickstart", "--steps", "500", "--output", str(work / "qs")], "exceeds the config's T"),
        (["quickstart", "--config", str(work / "none.yaml")], "no such config"),
        (["quickstart", "--output", str(a_file)], "is a file"),
        (["data", "info", "no_such_dataset"], "unknown dataset"),
        (["data", "info", "comm20", "--root", str(a_file)], str(a_file)),
        (["data", "info", "comm20", "-o", "nonsense=1", "--root", str(work / "data")], "unknown option"),
        (["data", "info", str(work / "g.json"), "-o", "foo=1"], "foo"),
        (["fit", "--config", config, "--trainer.max_steps", "abc"], "max_steps"),
        (["fit", "--config", config, "--trainer.accelerator", "nonsense"], "accelerator"),
        (["fit", "--config", config, "--trainer.devices", "0"], "devices"),
        (["fit", "--config", config, "--data.batch_size", "0"], "batch_size"),
        (["fit", "--config", config, "--data.batch_size", "-4"], "batch_size"),
        (["fit", "--config", config, "--model.lr", "-1"], "model.lr"),
        (["fit", "--config", config, "--model.eval_samples", "0"], "model.eval_samples"),
        (["fit", "--config", config, "--model.sample_steps", "50"], "model.sample_steps"),
        (["fit", "--config", config, "--ckpt_path", str(work / "missing.ckpt")], "no such checkpoint"),
        (["fit", "--config", config, "--ckpt_path", corrupt], "corrupt"),
        (["fit", "--config", str(work / "none.yaml")], "none.yaml"),
        (["test", "--ckpt_path", str(work / "missing.ckpt")], "no such checkpoint"),
        (["test", "--ckpt_path", corrupt], "corrupt"),
        (["predict", "--ckpt_path", last, "--output", str(work / "p.xyz")], "unsupported file type"),
        (["nonsense"], "invalid choice"),
    ]


def test_every_subcommand_rejects_bad_arguments_in_one_line(tiny, tmp_path, capsys):
    work, config, last = tiny
    (tmp_path / "g.json").write_text(json.dumps([{"num_nodes": 3, "edges": [[0, 1]]}] * 10))
    failures = []
    for args, expected in _bad_cases(tmp_path, config, last):
        code = run(*args)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("graphdiff: error:")]
        if code != 2 or len(lines) != 1 or "Traceback" in err or expected not in lines[0]:
            failures.append((args, code, err.strip()[-400:]))
    assert not failures, "\n".join(map(str, failures))


def test_late_errors_come_before_the_work(tiny, tmp_path, monkeypatch, capsys):
    """Bad outputs and step counts are refused before any training or sampling."""
    from graphdiff.lit import GenerativeModel

    def no_work(*args, **kwargs):
        raise AssertionError("the expensive work started before the arguments were checked")

    monkeypatch.setattr(GenerativeModel, "generate", no_work)
    monkeypatch.setattr("graphdiff.lightning_cli.run_lightning", no_work)
    _, _, last = tiny
    out = str(tmp_path / "s.json")
    for args in (["sample", "--ckpt_path", last, "--output", str(tmp_path / "s.xyz")],
                 ["sample", "--ckpt_path", last, "--output", out, "--chain", str(tmp_path / "c.gif")],
                 ["sample", "--ckpt_path", last, "--output", out, "--steps", "11"],
                 ["quickstart", "--steps", "101", "--output", str(tmp_path / "q")],
                 ["quickstart", "--output", str(tmp_path / "s.json"), "--num_samples", "0"]):
        assert run(*args) == 2, args
        one_line_error(capsys)


def test_one_line_errors_from_the_api_are_graphdiff_errors(tiny):
    with pytest.raises(ConfigError):
        gd.load_model(tiny[2]).generate(0)


def test_quickstart_stopped_before_its_first_validation_still_samples(tmp_path, monkeypatch):
    """The quickstart config validates every 100 epochs; a 1-epoch run has only the last.ckpt LastCheckpoint wrote."""
    config = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
    monkeypatch.setenv("GRAPHDIFF_ROOT", str(tmp_path / "data"))
    out = tmp_path / "qs"
    assert run("quickstart", "--config", config, "--output", out, "--max_epochs", "1", "--num_samples", "3",
               "--steps", "2") == 0
    metrics = _strict_json(out / "metrics.json")
    assert metrics["checkpoint"].endswith("last.ckpt") and metrics["num_samples"] == 3
    assert len(json.loads((out / "samples.json").read_text())) == 3


def test_last_checkpoint_and_model_checkpoint_share_one_last_ckpt(tmp_path):
    """Both write last.ckpt in the same folder: there must be one file, never a last-v1.ckpt beside it."""
    config = write_config(tmp_path / "config.yaml", "comm20", tmp_path / "data", max_steps=6,
                          check_val_every_n_epoch=1, limit_train_batches=2, val_check_interval=None)
    blob = yaml.safe_load(config.read_text())
    blob["trainer"]["callbacks"].append({"class_path": "graphdiff.callbacks.LastCheckpoint",
                                         "init_args": {"every_n_train_steps": 1}})
    config.write_text(yaml.safe_dump(blob))
    assert run("fit", "--config", config) == 0
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert "last.ckpt" in names and not [n for n in names if n.startswith("last-v")], names
    assert torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)["global_step"] == 6
