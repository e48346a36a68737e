"""GDSS's training and sampling protocol as options: the EMA warm-up of its ``utils/ema.py``, sampling from the raw
(not averaged) weights (``sample.use_ema: False``), as many test samples as the test split, and repeated test
draws reported as mean and standard deviation."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
import yaml

import graphdiff.api as gd
import graphdiff.evaluation
from graphdiff.callbacks import EMA, LastCheckpoint
from graphdiff.checkpoints import AtomicCheckpointIO, read_checkpoint
from graphdiff.datasets.datamodule import GraphDataModule
from graphdiff.errors import ConfigError
from graphdiff.lit import DiscreteDiffusionModel, GenerativeModel, ScoreSDEModel
from graphdiff.lit.base import fold_summary

REPO = Path(__file__).resolve().parents[1]
SDE_CONFIGS = REPO / "configs" / "sde"
TINY_SDE = {"model": {"depth": 1, "nhid": 4, "adim": 4, "num_layers": 2, "num_linears": 1, "num_heads": 1},
            "sde_x": {"num_scales": 8}, "sde_adj": {"num_scales": 8}, "lr": 0.05, "lr_schedule": "constant",
            "sample_batch_size": 32}
STEPS = 4


# ------------------------------------------------------------------------------------------------ a toy module
class Toy(pl.LightningModule):
    """A linear map trained by SGD; records its weights after every optimiser step and in validation hooks."""

    def __init__(self, sample_with_ema: bool = True) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(3, 2)
        self.after_step: list[list[torch.Tensor]] = []
        self.seen: dict[str, list[list[torch.Tensor]]] = {"val_start": [], "val_end": [], "val_after": []}

    def weights(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self.parameters()]

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        pass

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        self.after_step.append(self.weights())

    def on_validation_epoch_start(self) -> None:
        self.seen["val_start"].append(self.weights())

    def on_validation_epoch_end(self) -> None:  # where graphdiff's models sample
        self.seen["val_end"].append(self.weights())

    def on_validation_end(self) -> None:  # after the callbacks' hooks: training goes on from here
        self.seen["val_after"].append(self.weights())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.5)


def _loader(n: int = 8) -> torch.utils.data.DataLoader:
    gen = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(n, 3, generator=gen), torch.randn(n, 2, generator=gen))
    return torch.utils.data.DataLoader(data, batch_size=2)


def _trainer(callbacks: list[pl.Callback], **kwargs: Any) -> pl.Trainer:
    settings = {"accelerator": "cpu", "devices": 1, "logger": False, "enable_checkpointing": False,
                "enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0, **kwargs}
    return pl.Trainer(callbacks=callbacks, **settings)


def _gdss_ema(initial: list[torch.Tensor], steps: list[list[torch.Tensor]], decay: float) -> list[torch.Tensor]:
    """GDSS's ExponentialMovingAverage, brute force: shadow = initial weights; the n-th update (n = 1, 2, ...)
    uses min(decay, (1 + n) / (10 + n)) and shadow -= (1 - d) (shadow - w)."""
    shadow = [p.double() for p in initial]
    for n, weights in enumerate(steps, start=1):
        d = min(decay, (1 + n) / (10 + n))
        shadow = [s - (1 - d) * (s - w.double()) for s, w in zip(shadow, weights)]
    return shadow


def _constant_ema(steps: list[list[torch.Tensor]], decay: float) -> list[torch.Tensor]:
    shadow = [w.double() for w in steps[0]]  # the first update copies
    for weights in steps[1:]:
        shadow = [decay * s + (1 - decay) * w.double() for s, w in zip(shadow, weights)]
    return shadow


def _close(a: list[torch.Tensor], b: list[torch.Tensor], atol: float = 1e-6) -> bool:
    return all(torch.allclose(x.double(), y.double(), atol=atol, rtol=0) for x, y in zip(a, b))


# ------------------------------------------------------------------------------------------------ EMA warm-up
@pytest.mark.parametrize("decay", [0.999, 0.3])  # 0.3: the warm-up's bound takes over from the third update
def test_ema_warmup_is_gdss_recursion(decay: float) -> None:
    for warmup in (True, False):
        torch.manual_seed(0)
        toy = Toy()
        initial = toy.weights()
        ema = EMA(decay=decay, warmup=warmup)
        _trainer([ema], max_steps=STEPS, limit_val_batches=0).fit(toy, _loader())
        assert len(toy.after_step) == STEPS
        averaged = toy.weights()  # training ended: the model holds the average
        gdss, constant = _gdss_ema(initial, toy.after_step, decay), _constant_ema(toy.after_step, decay)
        assert _close(averaged, gdss) is warmup
        assert _close(averaged, constant) is not warmup
        assert int(ema._average_model.n_averaged) == STEPS + warmup  # the initial weights count once


def test_ema_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="warmup must be true or false"):
        EMA(warmup="yes")
    with pytest.raises(ConfigError, match="start_step"):
        EMA(warmup=True, start_step=3)


# ------------------------------------------------------------------------------------------------ raw weights
@pytest.mark.parametrize("sample_with_ema", [True, False])
def test_validation_sampling_uses_the_chosen_weights(sample_with_ema: bool) -> None:
    """Validation losses see the average; the model's sampling hook sees the average, or the raw weights with
    ``sample_with_ema: false``; training goes on from the raw weights."""
    torch.manual_seed(0)
    toy = Toy(sample_with_ema=sample_with_ema)
    ema = EMA(decay=0.9, warmup=True)
    averages: list[list[torch.Tensor]] = []

    class Snapshot(pl.Callback):
        def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            averages.append([p.detach().clone() for p in ema._average_model.module.parameters()])

    _trainer([Snapshot(), ema], max_steps=STEPS, limit_val_batches=1, val_check_interval=2).fit(toy, _loader(),
                                                                                                _loader())
    assert len(toy.seen["val_end"]) == 2
    for i, average in enumerate(averages):
        raw = toy.after_step[2 * i + 1]
        assert not _close(average, raw)
        assert _close(toy.seen["val_start"][i], average)
        assert _close(toy.seen["val_end"][i], average if sample_with_ema else raw)
        assert _close(toy.seen["val_after"][i], raw, atol=0)


@pytest.fixture(scope="module")
def datamodule(tmp_path_factory: pytest.TempPathFactory) -> GraphDataModule:
    return GraphDataModule("comm20", root=str(tmp_path_factory.mktemp("data")), batch_size=8)


@pytest.fixture(scope="module")
def trained(datamodule: GraphDataModule, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny score-SDE model trained 4 steps with GDSS's EMA and ``sample_with_ema: false``; its last.ckpt and the
    weights after the last optimiser step."""
    out = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    model = ScoreSDEModel(datamodule.dataset_info, sample_with_ema=False, **TINY_SDE)
    last: dict[str, torch.Tensor] = {}

    class LastWeights(pl.Callback):
        def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
            last.update({k: v.detach().clone() for k, v in pl_module.state_dict().items()})

    trainer = _trainer([LastWeights(), EMA(decay=0.999, warmup=True), LastCheckpoint(0, dirpath=str(out))],
                       max_steps=STEPS, limit_val_batches=0, default_root_dir=str(out),
                       plugins=[AtomicCheckpointIO()])
    trainer.fit(model, datamodule)
    return {"model": model, "ckpt": out / "last.ckpt", "raw": last}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_raw_weights_are_the_last_optimiser_weights(trained: dict[str, Any]) -> None:
    ckpt = read_checkpoint(trained["ckpt"])
    raw, averaged = ckpt["current_model_state"], ckpt["state_dict"]
    assert _same(raw, trained["raw"])
    assert not _same(raw, averaged)
    assert _same(trained["model"].state_dict(), raw)  # after fit the model keeps the raw weights
    assert ckpt["hyper_parameters"]["sample_with_ema"] is False
    # The Python API: the checkpoint's choice, or either set on request.
    assert _same(gd.load_model(trained["ckpt"]).state_dict(), raw)
    assert _same(gd.load_model(trained["ckpt"], sample_with_ema=True).state_dict(), averaged)
    assert _same(gd.load_model(trained["ckpt"], sample_with_ema=False).state_dict(), raw)


def test_raw_and_averaged_weights_sample_differently(trained: dict[str, Any]) -> None:
    def edges(model: Any) -> torch.Tensor:
        graphs = model.generate(32, seed=0, num_nodes=12)
        return graphs.to_dense(range(32), model.info.num_node_types, model.info.num_edge_types).edge_classes()

    raw = edges(gd.load_model(trained["ckpt"]))
    assert torch.equal(raw, edges(gd.load_model(trained["ckpt"])))  # the comparison below is not noise
    assert not torch.equal(raw, edges(gd.load_model(trained["ckpt"], sample_with_ema=True)))


@pytest.mark.parametrize("sample_with_ema", [False, True])
def test_test_from_checkpoint_loads_the_chosen_weights(trained: dict[str, Any], datamodule: GraphDataModule,
                                                       sample_with_ema: bool, tmp_path: Path) -> None:
    """``graphdiff test --ckpt_path`` (the trainer's restore) loads the raw weights of a model trained with
    ``sample_with_ema: false``, and the averaged ones with ``--model.sample_with_ema true``."""
    ckpt = read_checkpoint(trained["ckpt"])
    model = ScoreSDEModel(datamodule.dataset_info, sample_with_ema=sample_with_ema, **{**TINY_SDE,
                                                                                      "test_samples": 0})
    trainer = _trainer([], plugins=[AtomicCheckpointIO()], limit_test_batches=1, default_root_dir=str(tmp_path))
    trainer.test(model, datamodule, ckpt_path=str(trained["ckpt"]))
    expected = ckpt["state_dict"] if sample_with_ema else ckpt["current_model_state"]
    assert _same(model.state_dict(), expected)


def test_default_keeps_the_raw_weights_in_the_final_checkpoint(datamodule: GraphDataModule, tmp_path: Path) -> None:
    """With the default ``sample_with_ema`` the model ends training on the average, and the checkpoint written at
    the end still holds the raw weights for resuming."""
    torch.manual_seed(0)
    model = ScoreSDEModel(datamodule.dataset_info, **TINY_SDE)
    before_end: dict[str, torch.Tensor] = {}

    class LastWeights(pl.Callback):
        def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
            before_end.update({k: v.detach().clone() for k, v in pl_module.state_dict().items()})

    _trainer([LastWeights(), EMA(decay=0.999), LastCheckpoint(0, dirpath=str(tmp_path))], max_steps=2,
             limit_val_batches=0, default_root_dir=str(tmp_path), plugins=[AtomicCheckpointIO()]).fit(model, datamodule)
    ckpt = read_checkpoint(tmp_path / "last.ckpt")
    assert _same(ckpt["current_model_state"], before_end)
    assert _same(model.state_dict(), ckpt["state_dict"]) and not _same(ckpt["state_dict"], before_end)
    assert _same(gd.load_model(tmp_path / "last.ckpt").state_dict(), ckpt["state_dict"])


def test_old_checkpoints_load_with_the_averaged_weights(trained: dict[str, Any], tmp_path: Path) -> None:
    """A checkpoint written before ``sample_with_ema`` existed has no such hyper-parameter: averaged weights."""
    ckpt = read_checkpoint(trained["ckpt"])
    del ckpt["hyper_parameters"]["sample_with_ema"], ckpt["hyper_parameters"]["test_folds"]
    torch.save(ckpt, tmp_path / "old.ckpt")
    assert _same(gd.load_model(tmp_path / "old.ckpt").state_dict(), ckpt["state_dict"])


# ------------------------------------------------------------------------------------------------ test samples
def _fake_metrics(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Replace the metrics by a known value per draw: ``draw`` = 1, 2, 4, 8, ...; returns the sample counts. The
    pictures of the samples are left out (slow, and not what is tested)."""
    sizes: list[int] = []
    monkeypatch.setattr(GenerativeModel, "_log_pictures", lambda *args: None)

    def fake(graphs: Any, info: Any, dataset: Any, reference_split: str = "test", **kwargs: Any) -> dict[str, Any]:
        sizes.append(len(graphs))
        return {"draw": float(2 ** (len(sizes) - 1)), "constant": 0.5, "undefined": None}

    monkeypatch.setattr(graphdiff.evaluation, "evaluate_generated", fake)
    return sizes


@pytest.mark.parametrize("folds", [1, 3])
def test_test_samples_test_and_folds(folds: int, datamodule: GraphDataModule, monkeypatch: pytest.MonkeyPatch,
                                     tmp_path: Path) -> None:
    sizes = _fake_metrics(monkeypatch)
    model = ScoreSDEModel(datamodule.dataset_info, **{**TINY_SDE, "test_samples": "test", "test_folds": folds})
    trainer = _trainer([], limit_test_batches=1, default_root_dir=str(tmp_path))
    trainer.test(model, datamodule)
    test_size = len(datamodule.data.split("test"))
    assert test_size == 20 and sizes == [test_size] * folds
    logged = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    per_draw = [float(2 ** i) for i in range(folds)]
    assert logged["test/num_samples"] == test_size
    assert logged["test/draw"] == pytest.approx(sum(per_draw) / folds)
    assert logged["test/constant"] == 0.5
    if folds == 1:
        assert "test/draw_std" not in logged
    else:
        assert logged["test/draw_std"] == pytest.approx(statistics.stdev(per_draw))  # 1, 2, 4: std 1.528
        assert logged["test/constant_std"] == 0.0
    assert not any("undefined" in k for k in logged)


def test_folds_work_for_the_discrete_family(datamodule: GraphDataModule, monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    sizes = _fake_metrics(monkeypatch)
    model = DiscreteDiffusionModel(datamodule.dataset_info, T=4, test_samples="test", test_folds=2,
                                   sample_batch_size=32,
                                   model={"n_layers": 1, "hidden_mlp_dims": {"X": 4, "E": 4, "y": 4},
                                          "hidden_dims": {"dx": 4, "de": 4, "dy": 4, "n_head": 1, "dim_ffX": 4,
                                                          "dim_ffE": 4, "dim_ffy": 4}, "extra_features": "none"})
    trainer = _trainer([], limit_test_batches=1, default_root_dir=str(tmp_path))
    trainer.test(model, datamodule)
    assert sizes == [20, 20]
    assert float(trainer.callback_metrics["test/draw"]) == pytest.approx(1.5)
    assert float(trainer.callback_metrics["test/draw_std"]) == pytest.approx(math.sqrt(0.5))


def test_fold_summary_by_hand() -> None:
    draws = [{"a": 1.0, "b": None, "c": 2.0}, {"a": 2.0, "b": None, "c": None}, {"a": 6.0, "b": None, "c": 1.0}]
    summary = fold_summary(draws)
    assert summary["a"] == 3.0 and summary["a_std"] == pytest.approx(math.sqrt((4 + 1 + 9) / 2))
    assert summary["b"] is None and summary["c"] is None and "c_std" not in summary
    assert fold_summary(draws[:1]) == draws[0]


@pytest.mark.parametrize("key, value, message", [
    ("test_samples", "tests", "model.test_samples='tests': expected an integer >= 0, or 'test'"),
    ("test_samples", -1, "model.test_samples=-1"),
    ("test_samples", 2.5, "model.test_samples=2.5"),
    ("test_folds", 0, "model.test_folds=0: must be >= 1"),
    ("sample_with_ema", "no", "model.sample_with_ema='no': expected true or false"),
])
def test_bad_protocol_settings_are_one_line_errors(key: str, value: Any, message: str,
                                                   datamodule: GraphDataModule) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        ScoreSDEModel(datamodule.dataset_info, **{**TINY_SDE, key: value})
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------------ the configs
RAW = {"community_small": True, "ego_small": True, "qm9": True, "zinc250k": True, "grid": False, "enzymes": False}


@pytest.mark.parametrize("name", sorted(RAW))
def test_gdss_configs_follow_the_protocol(name: str) -> None:
    config = yaml.safe_load((SDE_CONFIGS / f"{name}.yaml").read_text())
    init = config["model"]["init_args"]
    (ema,) = [c for c in config["trainer"]["callbacks"] if c["class_path"] == "graphdiff.callbacks.EMA"]
    assert ema["init_args"] == {"decay": 0.999, "warmup": True}
    assert init["sample_with_ema"] is not RAW[name]  # GDSS's sample.use_ema
    if name in ("community_small", "ego_small", "grid", "enzymes"):
        assert init["test_samples"] == "test"
    assert init.get("test_folds", 1) == (3 if name in ("community_small", "ego_small") else 1)
