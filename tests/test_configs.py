"""The shipped LightningCLI configs: they parse through the real CLI, build the published DiGress models, and a
wrong key is a short error.

The expected values below are typed in from cvignac/DiGress (configs/experiment/*.yaml on top of
configs/model/discrete.yaml and configs/train/train_default.yaml), independently of configs/discrete/*.yaml, so a
config that drifts from the published setting fails here.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from graphdiff.cli import main
from graphdiff.configs import resolve_config
from graphdiff.errors import ConfigError
from graphdiff.info import DatasetInfo
from graphdiff.lightning_cli import GraphDiffCLI, run_lightning
from graphdiff.lit import DiscreteDiffusionModel
from tests.conftest import data_file

REPO = Path(__file__).resolve().parents[1]
DISCRETE = REPO / "configs" / "discrete"
QUICKSTART = REPO / "configs" / "quickstart.yaml"
RECIPES = REPO / "configs" / "recipes"
CONDITIONAL = REPO / "configs" / "conditional"
GUIDANCE = REPO / "configs" / "guidance"
PARD = REPO / "configs" / "pard"

# The reference never passes dim_ffy to its layers, whose default is 2048: every published model ran with it.
REF_FFY = 2048
SPECTRE_MLP = {"X": 128, "E": 64, "y": 128}
SPECTRE_HID = {"dx": 256, "de": 64, "dy": 64, "n_head": 8, "dim_ffX": 256, "dim_ffE": 64, "dim_ffy": REF_FFY}
DEFAULT_MLP = {"X": 256, "E": 128, "y": 128}  # configs/model/discrete.yaml
DEFAULT_HID = {"dx": 256, "de": 64, "dy": 64, "n_head": 8, "dim_ffX": 256, "dim_ffE": 128, "dim_ffy": REF_FFY}
BIG_MOL_MLP = {"X": 256, "E": 128, "y": 256}  # configs/experiment/moses.yaml, guacamol.yaml
BIG_MOL_HID = {"dx": 256, "de": 64, "dy": 128, "n_head": 8, "dim_ffX": 256, "dim_ffE": 128, "dim_ffy": REF_FFY}


def _setting(T, n_layers, mlp, hid, batch, epochs, check_val, eval_every):
    return {"T": T, "n_layers": n_layers, "mlp": mlp, "hid": hid, "batch_size": batch, "max_epochs": epochs,
            "check_val_every_n_epoch": check_val, "eval_every_n_epochs": eval_every}


PLANAR = _setting(1000, 10, SPECTRE_MLP, SPECTRE_HID, 64, 100_000, 100, 400)
SBM = _setting(1000, 8, SPECTRE_MLP, SPECTRE_HID, 12, 50_000, 100, 400)
COMM20 = _setting(500, 8, DEFAULT_MLP, DEFAULT_HID, 256, 1_000_000, 1000, 10_000)
MOSES = _setting(500, 12, BIG_MOL_MLP, BIG_MOL_HID, 256, 300, 1, 4)

PUBLISHED: dict[str, dict[str, Any]] = {
    "planar": PLANAR,
    "sbm": SBM,
    "comm20": COMM20,
    "qm9": _setting(500, 9, DEFAULT_MLP, DEFAULT_HID, 1024, 1000, 5, 20),
    "qm9_h": _setting(500, 7, DEFAULT_MLP, DEFAULT_HID, 512, 2000, 5, 20),
    "moses": MOSES,
    "guacamol": _setting(500, 12, BIG_MOL_MLP, BIG_MOL_HID, 32, 1000, 2, 4),
    # Not published by DiGress: the closest published setting (see each config's header).
    "tree": PLANAR,
    "community_small": COMM20,
    "ego_small": COMM20,
    "enzymes": SBM,
    "grid": {**SBM, "batch_size": 4},  # SBM with a smaller batch for 361-node graphs
    "zinc250k": MOSES,
}
GRAPH_SETS = ("planar", "sbm", "tree", "comm20", "community_small", "ego_small", "grid", "enzymes")
#: Read from the reference data ($GRAPHDIFF_DATA_DIR/graphs/<name>.json.gz); the others are generated.
GDSS_SETS = ("community_small", "ego_small", "grid", "enzymes")
MOLECULE_SETS = ("qm9", "qm9_h", "moses", "zinc250k", "guacamol")


def _fake_molecule_info(name: str) -> DatasetInfo:
    """A molecular DatasetInfo of about the dataset's size, so big data sets need not be downloaded."""
    atoms = {
        "qm9": (["C", "N", "O", "F"], 9, True),
        "qm9_h": (["H", "C", "N", "O", "F"], 29, True),
        "moses": (["C", "N", "S", "O", "F", "Cl", "Br", "N+", "O-"], 27, False),
        "zinc250k": (["C", "N", "O", "F", "P", "S", "Cl", "Br", "I", "N+", "O-", "S-"], 38, True),
        "guacamol": (["C", "N", "O", "F", "B", "Br", "Cl", "I", "P", "S", "Se", "Si", "N+", "O-"], 88, False),
    }
    weights = {"H": 1.008, "C": 12.011, "N": 14.007, "O": 15.999, "F": 18.998, "B": 10.81, "P": 30.974,
               "S": 32.06, "Cl": 35.45, "Br": 79.904, "I": 126.9, "Se": 78.971, "Si": 28.085}
    node_types, max_nodes, kekulized = atoms[name]
    edge_types = ["none", "single", "double", "triple"] + ([] if kekulized else ["aromatic"])
    return DatasetInfo(
        name=name, kind="molecule", node_types=node_types, edge_types=edge_types, max_nodes=max_nodes,
        split_sizes={"train": 10, "val": 2, "test": 2}, node_counts=[0] * max_nodes + [10],
        node_marginals=[1 / len(node_types)] * len(node_types), edge_marginals=[1 / len(edge_types)] * len(edge_types),
        valencies=[4] * len(node_types), atom_weights=[weights[t.rstrip("+-")] for t in node_types],
    )


def _reference_layer_params(h: dict[str, int]) -> int:
    """Parameters of one XEyTransformerLayer of the reference, counted from its definition."""
    dx, de, dy, fx, fe, fy = h["dx"], h["de"], h["dy"], h["dim_ffX"], h["dim_ffE"], h["dim_ffy"]

    def lin(a: int, b: int) -> int:
        return a * b + b

    attention = (3 * lin(dx, dx) + 2 * lin(de, dx) + 4 * lin(dy, dx) + lin(dy, dy) + lin(4 * dx, dy)
                 + lin(4 * de, dy) + lin(dx, dx) + lin(dx, de) + 2 * lin(dy, dy))
    feed_forward = lin(dx, fx) + lin(fx, dx) + lin(de, fe) + lin(fe, de) + lin(dy, fy) + lin(fy, dy)
    norms = 2 * 2 * (dx + de + dy)
    return attention + feed_forward + norms


# ----------------------------------------------------------------------------------------------------------- helpers
class _Parsed(Exception):
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config


class _Built(Exception):
    def __init__(self, cli: GraphDiffCLI) -> None:
        self.cli = cli


_PRINTED: dict[Path, dict[str, Any]] = {}


def printed_config(path: Path) -> dict[str, Any]:
    """:func:`print_config` of ``path``, once per module (building the CLI parser is the slow part)."""
    if path not in _PRINTED:
        _PRINTED[path] = print_config(path)
    return _PRINTED[path]


def print_config(path: Path, *extra: str) -> dict[str, Any]:
    """``graphdiff fit --config PATH --print_config``: the full resolved configuration."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        run_lightning(["fit", "--config", str(path), *extra, "--print_config"])
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(out.getvalue())


def parse_strict(path: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> dict[str, Any]:
    """Parse ``fit --config PATH`` through the real CLI with every check (``--print_config`` skips the check for
    unknown top-level keys), stopping before anything is instantiated."""

    def stop(self: GraphDiffCLI) -> None:
        raise _Parsed(self.config.as_dict())

    monkeypatch.setattr(GraphDiffCLI, "before_instantiate_classes", stop)
    with pytest.raises(_Parsed) as parsed:
        run_lightning(["fit", "--config", str(path), *extra])
    return parsed.value.config["fit"]


def instantiate(path: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> GraphDiffCLI:
    """Build data module, model and trainer exactly as ``graphdiff fit`` does, then stop before training."""
    original = GraphDiffCLI.after_instantiate_classes

    def stop(self: GraphDiffCLI) -> None:
        original(self)
        raise _Built(self)

    monkeypatch.setattr(GraphDiffCLI, "after_instantiate_classes", stop)
    with pytest.raises(_Built) as built:
        run_lightning(["fit", "--config", str(path), *extra])
    return built.value.cli


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dataset root for the module: each small graph set is generated / read once."""
    return tmp_path_factory.mktemp("data")


def check_published(model: DiscreteDiffusionModel, config: dict[str, Any], expected: dict[str, Any]) -> None:
    init = config["model"]["init_args"]
    assert config["model"]["class_path"] == "graphdiff.lit.DiscreteDiffusionModel"
    # The diffusion process.
    assert model.process.T == expected["T"]
    assert init["schedule"] == "cosine" and init["transition"] == "marginal"
    assert type(model.process.transition).__name__ == "MarginalTransition"
    assert init["lambda_edge"] == 5.0
    # The transformer.
    net = model.denoiser.network
    assert len(net.layers) == net.n_layers == expected["n_layers"]
    assert net.hidden_dims == expected["hid"]
    assert net.hidden_mlp_dims == expected["mlp"]
    assert model.denoiser.extra_features.mode == "all"
    assert (model.denoiser.extra_features.molecular is not None) == (model.info.kind == "molecule")
    assert init["model"].get("dropout", 0.1) == 0.1
    # Parameter count: the layers as the reference counts them (graphdiff's last layer drops its unused
    # y update), and a plausible total.
    per_layer = _reference_layer_params(expected["hid"])
    layer_params = sum(p.numel() for p in net.layers.parameters())
    assert 0.9 * per_layer * expected["n_layers"] <= layer_params <= per_layer * expected["n_layers"]
    total = sum(p.numel() for p in model.parameters())
    assert 4e6 < total < 20e6, total
    # Optimisation: AdamW, lr 2e-4, weight decay 1e-12, amsgrad, constant learning rate, no clipping, no EMA.
    opt = model.configure_optimizers()
    assert isinstance(opt, torch.optim.AdamW)
    group = opt.param_groups[0]
    assert group["lr"] == pytest.approx(2e-4) and group["weight_decay"] == pytest.approx(1e-12) and group["amsgrad"]
    trainer = config["trainer"]
    assert trainer.get("gradient_clip_val") is None
    assert not any("EMA" in cb["class_path"] for cb in trainer.get("callbacks") or [])
    # Schedule of training and evaluation.
    assert config["data"]["batch_size"] == expected["batch_size"]
    assert trainer["max_epochs"] == expected["max_epochs"]
    assert trainer["check_val_every_n_epoch"] == expected["check_val_every_n_epoch"]
    assert init["eval_every_n_epochs"] == expected["eval_every_n_epochs"]
    assert init["eval_every_n_epochs"] % trainer["check_val_every_n_epoch"] == 0  # samples on a validation epoch
    assert config["seed_everything"] == 0


# ------------------------------------------------------------------------------------------------------------- tests
def test_one_config_per_dataset_with_its_source() -> None:
    assert sorted(p.stem for p in DISCRETE.glob("*.yaml")) == sorted(PUBLISHED)
    for name in PUBLISHED:
        text = (DISCRETE / f"{name}.yaml").read_text()
        assert yaml.safe_load(text)["data"]["dataset"] == name
        header = text.split("\nseed_everything")[0]
        assert "cvignac/DiGress configs/experiment/" in header, name
        if name in ("tree", "community_small", "ego_small", "enzymes", "grid", "zinc250k"):
            assert "DiGress published no" in header and "Closest published setting" in header, name


def _missing_keys(given: Any, resolved: Any, where: str = "") -> list[str]:
    """Key paths of ``given`` (a config as written) that the resolved configuration lacks."""
    if isinstance(given, dict):
        if not isinstance(resolved, dict):
            return [where or "<root>"]
        return [m for k, v in given.items()
                for m in ([f"{where}{k}"] if k not in resolved else _missing_keys(v, resolved[k], f"{where}{k}."))]
    if isinstance(given, list) and isinstance(resolved, list) and len(given) == len(resolved):
        return [m for i, (g, r) in enumerate(zip(given, resolved)) for m in _missing_keys(g, r, f"{where}{i}.")]
    return []


@pytest.mark.parametrize("path", [*sorted(DISCRETE.glob("*.yaml")), QUICKSTART, *sorted(RECIPES.glob("*.yaml")),
                                  *sorted(CONDITIONAL.glob("*.yaml")), *sorted(GUIDANCE.glob("*.yaml")),
                                  *sorted(PARD.glob("*.yaml"))],
                         ids=lambda p: f"pard/{p.stem}" if p.parent == PARD else p.stem)
def test_config_parses_through_the_cli(path: Path) -> None:
    given = yaml.safe_load(path.read_text())
    printed = printed_config(path)
    assert printed["data"]["dataset"] == given["data"]["dataset"]
    # Unknown keys inside trainer/data/model make the parse fail; --print_config silently drops unknown
    # top-level keys, so check that every key written is in the resolved configuration.
    assert _missing_keys(given, printed) == []
    assert printed["model"]["init_args"]["model"] == given["model"]["init_args"]["model"]


def test_unknown_keys_are_caught(tmp_path: Path) -> None:
    """The checks above are not vacuous."""
    config = yaml.safe_load((DISCRETE / "comm20.yaml").read_text())
    config["trainr"] = {}  # --print_config drops an unknown top-level key with an empty value silently
    config["model"]["init_args"]["model"]["n_layer"] = 3  # not a parse error: model.model is a free dict
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(config))
    assert _missing_keys(config, print_config(path)) == ["trainr"]
    config["trainr"] = {"max_epochs": 1}
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="trainr"), contextlib.redirect_stdout(io.StringIO()):
        run_lightning(["fit", "--config", str(path), "--print_config"])


def test_cli_instantiates_a_config_on_its_data(dataset_root: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """`graphdiff fit --config configs/discrete/comm20.yaml` builds the published model on the real data, its
    dims linked from the data module, and records the configuration for checkpoints."""
    monkeypatch.chdir(tmp_path)
    cli = instantiate(DISCRETE / "comm20.yaml", monkeypatch, "--data.root", str(dataset_root),
                      "--trainer.accelerator", "cpu")
    model = cli.model
    assert isinstance(model, DiscreteDiffusionModel)
    info = cli.datamodule.info
    assert model.info.name == "comm20" and model.info.max_nodes == info.max_nodes == 20
    assert model.denoiser.input_dims.X == info.num_node_types and model.denoiser.input_dims.E == info.num_edge_types
    assert cli.trainer.gradient_clip_val is None
    assert cli.trainer.max_epochs == PUBLISHED["comm20"]["max_epochs"]
    assert cli.datamodule.batch_size == PUBLISHED["comm20"]["batch_size"]
    check_published(model, model.cli_config, PUBLISHED["comm20"])
    assert model.cli_config["data"]["dataset"] == "comm20"


@pytest.mark.parametrize("name", GRAPH_SETS)
def test_graph_config_builds_the_published_model(name: str, dataset_root: Path) -> None:
    """The CLI's parsed config on the real (generated or bundled) data set's info."""
    from graphdiff.datasets.datamodule import open_dataset

    if name in GDSS_SETS:  # never downloaded by a test: skipped without the reference data
        data_file("graphs", f"{name}.json.gz")
    config = printed_config(DISCRETE / f"{name}.yaml")
    info = open_dataset(name, root=dataset_root).info
    init = {k: v for k, v in config["model"]["init_args"].items() if k != "dataset_info"}
    model = DiscreteDiffusionModel(dataset_info=info.to_dict(), **init)
    assert model.denoiser.input_dims.X == info.num_node_types and model.denoiser.input_dims.E == info.num_edge_types
    assert model.denoiser.extra_features.max_nodes == info.max_nodes
    check_published(model, config, PUBLISHED[name])


@pytest.mark.parametrize("name", MOLECULE_SETS)
def test_molecule_config_builds_the_published_model(name: str) -> None:
    """Built from the CLI's parsed config and a stand-in DatasetInfo (the data sets are large downloads)."""
    config = printed_config(DISCRETE / f"{name}.yaml")
    init = {k: v for k, v in config["model"]["init_args"].items() if k != "dataset_info"}
    info = _fake_molecule_info(name)
    model = DiscreteDiffusionModel(dataset_info=info.to_dict(), **init)
    assert model.denoiser.input_dims.X == info.num_node_types
    check_published(model, config, PUBLISHED[name])


def test_overrides_reach_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_strict(DISCRETE / "planar.yaml", monkeypatch, "--model.init_args.model.n_layers", "3",
                          "--trainer.max_steps", "2", "--data.batch_size", "5")
    assert config["model"]["init_args"]["model"] == {"preset": "planar", "extra_features": "all",
                                                     "protocol": "digress", "dropout": 0.1, "n_layers": 3}
    assert config["trainer"]["max_steps"] == 2 and config["data"]["batch_size"] == 5


# ------------------------------------------------------------------------------------------- wrong keys: short errors
def _bad_config(tmp_path: Path, where: str, dataset_root: Path) -> tuple[Path, str]:
    config = yaml.safe_load((DISCRETE / "comm20.yaml").read_text())
    config["data"]["root"] = str(dataset_root)
    key = "lamda_edge" if where == "model" else "n_layer" if where == "denoiser" else "batchsize"
    if where == "trainer":
        key = "gradient_clip"
    target = {"trainer": config["trainer"], "data": config["data"], "model": config["model"]["init_args"],
              "denoiser": config["model"]["init_args"]["model"], "top": config}[where]
    if where == "top":
        key = "trainr"
    target[key] = 1
    path = tmp_path / f"bad_{where}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, key


def _assert_one_line_error(code: int, err: str, key: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert code == 2
    errors = [i for i, line in enumerate(lines) if line.startswith(("error:", "graphdiff: error:"))]
    assert len(errors) == 1, err
    assert errors[0] == len(lines) - 1, f"error message runs over several lines:\n{err}"
    assert key in lines[-1], err


def _run_main(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as exc:  # jsonargparse reports parse errors by exiting
        return int(exc.code)


@pytest.mark.parametrize("where", [
    "trainer",
    "data",
    "top",
    "model",
    "denoiser",
])
def test_wrong_key_is_a_one_line_error(where: str, tmp_path: Path, dataset_root: Path,
                                       capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path, key = _bad_config(tmp_path, where, dataset_root)
    code = _run_main(["fit", "--config", str(path), "--trainer.accelerator", "cpu", "--trainer.max_steps", "1",
                      "--trainer.logger", "false"])
    _assert_one_line_error(code, capsys.readouterr().err, key)


def test_cpu_recipe_is_the_benchmarked_wide4_model() -> None:
    """docs/performance.md's ``wide4-anneal`` rows are what ``--config recipes/qm9_cpu`` trains (recomputation
    aside), for the two hours of ``max_time`` the learning rate is annealed over."""
    import sys

    sys.path.insert(0, str(REPO))
    from benchmarks.quality import RECIPES as BENCHMARKED

    given = yaml.safe_load((RECIPES / "qm9_cpu.yaml").read_text())
    init, wide4 = given["model"]["init_args"], BENCHMARKED["wide4-anneal"]
    model = {k: v for k, v in init["model"].items() if k != "recompute_edges"}
    assert model == wide4["model"]
    assert {k: init[k] for k in wide4["training"]} == wide4["training"]
    assert given["data"]["batch_size"] == wide4["batch_size"] and init["T"] == 500
    assert given["trainer"]["gradient_clip_val"] == 1.0 and given["trainer"]["max_time"] == "00:02:00:00"
    assert given["trainer"]["max_epochs"] == -1 and "max_steps" not in given["trainer"]  # annealed over time
    assert given["trainer"]["callbacks"][0]["init_args"]["decay"] == 0.999


@pytest.mark.parametrize("path", sorted(CONDITIONAL.glob("*.yaml")), ids=lambda p: p.stem)
def test_conditional_configs_name_their_conditions(path: Path) -> None:
    """Each conditional config trains with conditions and condition dropout, and says how to sample from it."""
    config = yaml.safe_load(path.read_text())
    assert config["data"]["conditions"], path.stem
    assert 0 < config["model"]["init_args"]["condition_dropout"] < 1
    header = path.read_text().split("\nseed_everything")[0]
    assert f"graphdiff fit --config conditional/{path.stem}" in header and "--condition " in header
    assert resolve_config(f"conditional/{path.stem}").resolve() == path.resolve()


@pytest.mark.parametrize("path", sorted(GUIDANCE.glob("*.yaml")), ids=lambda p: p.stem)
def test_guidance_regressors_follow_digress(path: Path) -> None:
    """DiGress's regressor (guidance branch, configs/experiment/regressor_model.yaml + model/discrete.yaml +
    train/train_default.yaml): 5 layers, default widths, no extra features, lr 2e-4 with ExponentialLR(0.99) per
    epoch, batch 512, 1,200 epochs, on the noise process of the unconditional QM9 config it guides."""
    config = yaml.safe_load(path.read_text())
    init = config["model"]["init_args"]
    generator = yaml.safe_load((DISCRETE / "qm9.yaml").read_text())["model"]["init_args"]
    assert config["model"]["class_path"] == "graphdiff.lit.PropertyRegressor"
    assert {k: init[k] for k in ("T", "schedule", "transition")} == {k: generator[k] for k in ("T", "schedule",
                                                                                                "transition")}
    assert init["model"]["n_layers"] == 5 and init["model"]["preset"] == "digress"
    assert init["lr"] == 2e-4 and init["lr_schedule"] == "exponential" and init["lr_decay"] == 0.99
    assert config["data"]["batch_size"] == 512 and config["data"]["dataset"] == "qm9"
    oracle = path.stem == "qm9_oracle"
    # The guidance gradient goes through the one-hot input alone (DiGress); the oracle takes no gradient.
    assert init["model"]["extra_features"] == ("all" if oracle else "none")
    assert init["model"]["molecular"] is oracle
    assert init["noisy"] is (not oracle)
    assert config["trainer"]["max_epochs"] == (300 if oracle else 1200)
    expected = {"qm9_mu_regressor": ["mu"], "qm9_homo_regressor": ["homo"]}.get(path.stem, ["mu", "homo"])
    assert config["data"]["conditions"] == expected
    header = path.read_text().split("\nseed_everything")[0]
    assert f"graphdiff fit --config guidance/{path.stem}" in header
    assert ("--oracle" if oracle else "--regressor") in header


# ------------------------------------------------------------------------------------------------------ PARD configs
# Typed in from LingxiaoShawn/Pard (commit f0f8d982) pard/configs/<name>.yaml on top of pard/config.py, independently
# of configs/pard/*.yaml. qm9 (heavy atoms) takes PARD's qm9.yaml, which is QM9 with hydrogens (= qm9_h).
# T, max_hops, transition, ce_weight, hidden, edge, layers, abs. id, rel. id, training_mode, lr, batch, epochs
def _pard(T, hops, transition, ce, hidden, edge, layers, absolute, relative, mode, lr, batch, epochs):
    return locals()


_PARD_QM9 = _pard(50, 3, "uniform", 0.1, 256, 64, 8, True, True, "parallel", 4e-4, 128, 100)
PARD_PUBLISHED: dict[str, dict[str, Any]] = {
    "qm9": _PARD_QM9,
    "qm9_h": _PARD_QM9,
    "zinc250k": _pard(50, 3, "uniform", 0.1, 256, 64, 8, False, True, "parallel", 4e-4, 128, 70),
    "moses": _pard(50, 3, "uniform", 0.1, 256, 64, 8, True, True, "parallel", 2e-4, 128, 40),
    "planar": _pard(50, 1, "uniform", 0.1, 256, 32, 10, False, True, "batched_sequential", 3e-4, 6, 400),
    "sbm": _pard(40, 1, "uniform", 0.01, 128, 32, 6, True, False, "parallel", 2e-4, 24, 300),
    "comm20": _pard(40, 3, "marginal", 0.01, 128, 32, 6, True, False, "parallel", 5e-4, 512, 1000),
    # grid.yaml says lr 0.003 ("#0.0003"); eval.py's grid checkpoints were trained with 0.0003 (see the config).
    "grid": _pard(50, 1, "uniform", 0.1, 256, 48, 10, False, True, "parallel", 3e-4, 2, 700),
}


def test_one_pard_config_per_reference_setting() -> None:
    assert sorted(p.stem for p in PARD.glob("*.yaml")) == sorted(PARD_PUBLISHED)
    for name in PARD_PUBLISHED:
        assert resolve_config(f"pard/{name}").resolve() == (PARD / f"{name}.yaml").resolve()
        text = (PARD / f"{name}.yaml").read_text()
        assert yaml.safe_load(text)["data"]["dataset"] == name
        header = text.split("\nseed_everything")[0]
        assert "LingxiaoShawn/Pard, commit f0f8d982c45458c9350303fcab7d806629186474" in header, name
        assert f"graphdiff fit --config pard/{name}" in header, name


@pytest.mark.parametrize("name", sorted(PARD_PUBLISHED))
def test_pard_config_holds_the_reference_settings_and_builds(name: str) -> None:
    from graphdiff.lit import PardModel

    expected = PARD_PUBLISHED[name]
    config = printed_config(PARD / f"{name}.yaml")
    init = config["model"]["init_args"]
    assert config["model"]["class_path"] == "graphdiff.lit.PardModel"
    assert (init["T"], init["max_hops"], init["transition"], init["schedule"]) == (
        expected["T"], expected["hops"], expected["transition"], "cosine")
    assert init["loss"] == "pard" and init["ce_weight"] == pytest.approx(expected["ce"]) and init["lambda_edge"] == 1.0
    assert init["block_model"] == "separate" and init["training_mode"] == expected["mode"]
    assert init["sampler"]["steps"] == expected["T"]  # PARD samples diffusion.num_steps steps per block
    net = init["model"]
    assert (net["hidden_dims"], net["edge_dims"], net["n_layers"], net["n_heads"]) == (
        expected["hidden"], expected["edge"], expected["layers"], 8)
    assert (net["absolute_block_id"], net["relative_block_id"]) == (expected["absolute"], expected["relative"])
    assert net["add_transpose"] and not net["transformer_only"] and net["input_residual"]
    # PARD's structure features exist only in batched sequential training.
    assert net.get("extra_features", "none") == ("all" if expected["mode"] == "batched_sequential" else "none")
    assert init["lr"] == pytest.approx(expected["lr"]) and init["weight_decay"] == pytest.approx(0.01)
    assert not init["amsgrad"] and init["lr_schedule"] == "cosine"
    assert config["data"]["batch_size"] == expected["batch"]
    trainer = config["trainer"]
    assert trainer["max_epochs"] == expected["epochs"] and trainer.get("gradient_clip_val") is None
    assert trainer["precision"] == ("bf16-mixed" if name == "grid" else None)
    monitors = [cb["init_args"].get("monitor") for cb in trainer["callbacks"] if "ModelCheckpoint" in cb["class_path"]]
    assert monitors == ["val/loss"]
    # The model, built on a small stand-in of the dataset's vocabulary.
    if name in MOLECULE_SETS:
        info = _fake_molecule_info(name)
    else:
        info = DatasetInfo(name=name, kind="graph", node_types=["node"], edge_types=["none", "edge"], max_nodes=12,
                           split_sizes={"train": 10}, node_counts=[0] * 12 + [10], node_marginals=[1.0],
                           edge_marginals=[0.8, 0.2])
    model = PardModel(info.to_dict(), **{k: v for k, v in init.items() if k != "dataset_info"})
    assert (model.block_network is not None) and model.blocks.T == expected["T"]
    assert len(model.denoiser.transformers) == len(model.denoiser.ppgns) == expected["layers"]
    assert (model.denoiser.features is not None) == (expected["mode"] == "batched_sequential")
