"""DiGress's regressor guidance and the property regressor / oracle (docs/conditioning.md).

The guidance factors are checked against the gradient of a hand-written regressor, the guided step against the
product it defines, and the end-to-end effect on a tiny case: guiding an untrained generator towards many or few
edges moves the edge count in the requested direction.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from torch import nn

from graphdiff.datasets.datamodule import GraphDataModule
from graphdiff.diffusion import DiscreteDiffusion, make_schedule, make_transition
from graphdiff.errors import ConfigError, GraphdiffError
from graphdiff.lit import DiscreteDiffusionModel, PropertyRegressor, ScoreSDEModel
from graphdiff.models.guidance import RegressorGuidance
from graphdiff.types import DenseGraph

sys.path.insert(0, str(Path(__file__).parent))
from test_conditioning import TINY, _toy_file  # noqa: E402


class EdgeCount(nn.Module):
    """A regressor by hand: ``r(G) = (number of edges of E_t - 7) / 2`` (normalised with mean 7, std 2), written
    in the one-hot entries so that its gradient is known: ``dr/dE_ij,1 = 1/4`` for each ordered pair."""

    def forward(self, graph: DenseGraph, t: torch.Tensor) -> DenseGraph:
        edges = graph.E[..., 1:].sum((1, 2, 3)) / 2
        return DenseGraph(graph.X, graph.E, ((edges - 7) / 2).unsqueeze(-1), graph.node_mask)


class Prediction(nn.Module):
    """``network(graph, t).y``: what :class:`RegressorGuidance` reads (as ``PropertyRegressor.forward``)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, graph: DenseGraph, t: torch.Tensor) -> torch.Tensor:
        return self.network(graph, t).y


def _noisy(B: int = 3, n: int = 5, dx: int = 2, de: int = 2, seed: int = 0) -> DenseGraph:
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(n).unsqueeze(0) < torch.tensor([n, n - 1, 3][:B]).unsqueeze(1)
    X = nn.functional.one_hot(torch.randint(dx, (B, n), generator=g), dx).float()
    upper = torch.randint(de, (B, n, n), generator=g).triu(1)
    E = nn.functional.one_hot(upper + upper.transpose(1, 2), de).float()
    return DenseGraph(X, E, torch.zeros(B, 0), mask).mask()


def _with_targets(graph: DenseGraph, targets: list[float]) -> DenseGraph:
    return DenseGraph(graph.X, graph.E, torch.tensor(targets).unsqueeze(-1), graph.node_mask)


def test_guidance_gradient_is_the_squared_error_gradient_by_hand():
    graph = _noisy()
    targets = [9.0, 2.0, float("nan")]
    guidance = RegressorGuidance(Prediction(EdgeCount()), torch.tensor([7.0]), torch.tensor([2.0]), scale=3.0)
    grad_X, grad_E = guidance.loss_gradient(_with_targets(graph, targets), torch.zeros(3))
    edges = graph.E[..., 1:].sum((1, 2, 3)) / 2
    assert torch.equal(grad_X, torch.zeros_like(grad_X))  # the edge count does not read the nodes
    for b, target in enumerate(targets):
        n = int(graph.node_mask[b].sum())
        expected = torch.zeros_like(grad_E[b])
        if not math.isnan(target):
            # L = (value - y*)^2 with value = edges(E): dL/dE_ij,1 = 2 (value - y*) * (1/2) for i != j real
            expected[:n, :n, 1] = edges[b] - target
            expected[range(n), range(n), 1] = 0
        assert torch.allclose(grad_E[b], expected), b
    assert torch.equal(grad_E, grad_E.transpose(1, 2))
    factors = guidance(_with_targets(graph, targets), torch.zeros(3))
    assert torch.allclose(factors.E, torch.softmax(-3.0 * grad_E, -1))
    assert torch.allclose(factors.E.sum(-1), torch.ones(factors.E.shape[:-1]))
    # Too many edges for the target: the factor favours "no edge".
    high = _with_targets(graph, [0.0, 0.0, 0.0])
    assert (guidance(high, torch.zeros(3)).E[0, 0, 1, 0] > 0.5) and edges[0] > 0


def test_a_graphs_factors_do_not_depend_on_its_batch():
    graph = _with_targets(_noisy(), [9.0, 2.0, 4.0])
    guidance = RegressorGuidance(Prediction(EdgeCount()), torch.tensor([7.0]), torch.tensor([2.0]), scale=1.0)
    together = guidance(graph, torch.zeros(3))
    alone = guidance(DenseGraph(graph.X[1:2], graph.E[1:2], graph.y[1:2], graph.node_mask[1:2]), torch.zeros(1))
    assert torch.allclose(together.E[1:2], alone.E)


def test_guided_step_samples_the_reweighted_posterior():
    """With factors that allow one class per position, the step draws it wherever the reverse distribution has
    mass there; with factors that underflow to zero, it samples the unguided distribution."""
    process = DiscreteDiffusion(make_schedule("cosine", 10), make_transition("uniform", 3, 2))
    graph = _noisy(dx=3, de=2)
    pred = DenseGraph(torch.full_like(graph.X, 1 / 3), torch.full_like(graph.E, 1 / 2), graph.y, graph.node_mask)
    s, t = torch.full((3,), 4), torch.full((3,), 5)
    only = DenseGraph(nn.functional.one_hot(torch.full(graph.X.shape[:2], 2), 3).float(),
                      nn.functional.one_hot(torch.ones(graph.E.shape[:3], dtype=torch.long), 2).float(),
                      graph.y, graph.node_mask)
    out = process.step(pred, graph, s, t, generator=torch.Generator().manual_seed(0), weights=only)
    mask = graph.node_mask
    assert (out.X.argmax(-1)[mask] == 2).all()
    pairs = (mask.unsqueeze(1) & mask.unsqueeze(2)) & ~torch.eye(5, dtype=torch.bool)
    assert (out.E.argmax(-1)[pairs] == 1).all()
    zero = DenseGraph(torch.zeros_like(graph.X), torch.zeros_like(graph.E), graph.y, graph.node_mask)
    plain = process.step(pred, graph, s, t, generator=torch.Generator().manual_seed(1))
    fallback = process.step(pred, graph, s, t, generator=torch.Generator().manual_seed(1), weights=zero)
    assert torch.equal(plain.X, fallback.X) and torch.equal(plain.E, fallback.E)


# ---------------------------------------------------------------------------------------------- with models
def _module(tmp_path, conditions=None):
    return GraphDataModule(path=_toy_file(tmp_path), root=str(tmp_path / "root"), batch_size=32,
                           options={"split": [0.9, 0.05, 0.05]}, conditions=conditions)


def _hand_regressor(tmp_path) -> PropertyRegressor:
    """A PropertyRegressor of ``num_edges`` whose network is :class:`EdgeCount` (mean 7, std 2)."""
    reg = PropertyRegressor(_module(tmp_path, ["num_edges"]).dataset_info, T=20, model=TINY)
    reg.regressor = EdgeCount()
    reg.mean.fill_(7.0)
    reg.std.fill_(2.0)
    return reg


def test_regressor_guidance_moves_the_property_the_requested_way(tmp_path):
    generator = DiscreteDiffusionModel(_module(tmp_path).dataset_info, T=20, model=TINY)
    with torch.no_grad():  # a network that predicts "stay as you are" (its logits are the noisy one-hots)
        for p in generator.parameters():
            p.zero_()
    reg = _hand_regressor(tmp_path)

    def mean_edges(**kwargs) -> float:
        graphs = generator.generate(48, seed=1, num_nodes=6, **kwargs)
        return float(graphs.num_edges.float().mean())

    plain = mean_edges()
    few = mean_edges(condition={"num_edges": 5}, regressor=reg, regressor_scale=0.3)
    many = mean_edges(condition={"num_edges": 8}, regressor=reg, regressor_scale=0.3)
    # 6-node graphs of this model have ~7 edges; the targets lie on either side (training range 5-8).
    assert few < plain - 0.75 and many > plain + 0.4, (few, plain, many)
    assert abs(few - 5) < abs(plain - 5) and abs(many - 8) < abs(plain - 8)
    assert abs(mean_edges(condition={"num_edges": 5}, regressor=reg, regressor_scale=0.0) - plain) < 1e-9


def test_regressor_guidance_is_refused_with_a_reason(tmp_path):
    reg = _hand_regressor(tmp_path)
    plain = DiscreteDiffusionModel(_module(tmp_path).dataset_info, T=20, model=TINY)
    conditional = DiscreteDiffusionModel(_module(tmp_path, ["num_edges"]).dataset_info, T=20, model=TINY)
    sde = ScoreSDEModel(_module(tmp_path).dataset_info)
    cases = [
        (plain, {"regressor": reg}, "needs targets for num_edges"),
        (plain, {"regressor": reg, "condition": {"colour": 1}}, "unknown condition 'colour'"),
        (plain, {"regressor": reg, "condition": {"num_edges": 99}}, "outside the training range"),
        (plain, {"regressor": reg, "condition": {"num_edges": 6}, "regressor_scale": -1}, "expected a number >= 0"),
        (plain, {"regressor": plain, "condition": {"num_edges": 6}}, "expected a PropertyRegressor"),
        (conditional, {"regressor": reg, "condition": {"num_edges": 6}}, "steers an unconditional model"),
        (sde, {"regressor": reg, "condition": {"num_edges": 6}}, "is for the discrete family"),
    ]
    for model, kwargs, message in cases:
        with pytest.raises(ConfigError, match=message):
            model.generate(2, **kwargs)
    other = PropertyRegressor(_module(tmp_path, ["num_edges"]).dataset_info, T=20, transition="uniform", model=TINY)
    with pytest.raises(ConfigError, match="noise process differs"):
        plain.generate(2, condition={"num_edges": 6}, regressor=other)
    with pytest.raises(ConfigError, match="needs the properties to predict"):
        PropertyRegressor(_module(tmp_path).dataset_info, model=TINY)
    with pytest.raises(ConfigError, match="is categorical"):
        PropertyRegressor(_module(tmp_path, ["shape:categorical"]).dataset_info, model=TINY)


def _fit(model, dm, steps: int) -> dict:
    trainer = pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", devices=1, limit_val_batches=0)
    trainer.fit(model, dm)
    check = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                       devices=1)
    return check.validate(model, dm, verbose=False)[0]


def test_oracle_learns_a_property_and_reports_its_mae_in_units(tmp_path):
    """Trained on clean graphs (noisy: false), the regressor tells cycles (shape 0) from stars (shape 1) far better
    than the training mean does; its validation MAE is the one of its predictions, in the property's units."""
    pl.seed_everything(0)
    dm = _module(tmp_path, ["shape"])
    # The spectral and cycle features let the network see structure: X is constant here (one node type).
    oracle = PropertyRegressor(dm.dataset_info, noisy=False, lr=3e-3, model={**TINY, "extra_features": "all"})
    metrics = _fit(oracle, dm, 40)
    values = dm.data.property_values("shape")
    predicted = oracle.predict(dm.data.split("val"))
    truth = values[dm.data.splits["val"]].float()
    baseline = (truth - values[dm.data.splits["train"]].float().mean()).abs().mean()
    mae = (predicted[:, 0] - truth).abs().mean()
    assert mae < 0.5 * baseline, (float(mae), float(baseline))
    assert metrics["val/mae/shape"] == pytest.approx(float(mae), rel=1e-4)


def test_cli_fits_a_regressor_then_guides_and_scores_with_it(tmp_path, capsys, monkeypatch):
    """`graphdiff fit` trains a PropertyRegressor from a config; `graphdiff sample --regressor` guides an
    unconditional checkpoint with it; `graphdiff evaluate --oracle` scores a property by its prediction; the wrong
    checkpoint in the wrong place is a one-line error."""
    import graphdiff.api as gd
    from graphdiff.cli import main

    monkeypatch.chdir(tmp_path)
    data = _toy_file(tmp_path)
    gen = gd.fit(data, output_dir=tmp_path / "gen", max_epochs=1, batch_size=32, devices=1, T=10, model=TINY)
    assert isinstance(gen, DiscreteDiffusionModel)
    config = {
        "seed_everything": 0,
        "model": {"class_path": "graphdiff.lit.PropertyRegressor",
                  "init_args": {"T": 10, "noisy": True, "model": TINY, "lr_schedule": "exponential"}},
        "data": {"path": data, "root": str(tmp_path / "data"), "batch_size": 32, "conditions": ["num_edges"]},
        "trainer": {"max_steps": 3, "accelerator": "cpu", "devices": 1, "logger": False,
                    "enable_progress_bar": False, "default_root_dir": str(tmp_path / "reg")},
    }
    path = tmp_path / "regressor.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(path)]) == 0
    reg_ckpt = next((tmp_path / "reg").rglob("*.ckpt"))
    capsys.readouterr()
    assert main(["test", "--ckpt_path", str(reg_ckpt)]) == 0  # the stored config; its MAE in edges
    assert "test/mae/num_edges" in capsys.readouterr().out
    reg = gd.load_regressor(reg_ckpt)
    assert isinstance(reg, PropertyRegressor) and reg.names == ["num_edges"]
    gen_ckpt = tmp_path / "gen" / "checkpoints" / "last.ckpt"
    out = tmp_path / "guided.json"
    chain = tmp_path / "chain.png"
    assert main(["sample", "--ckpt_path", str(gen_ckpt), "--output", str(out), "--num_samples", "3",
                 "--regressor", str(reg_ckpt), "--condition", "num_edges=6", "--regressor_scale", "50",
                 "--chain", str(chain)]) == 0
    assert len(json.loads(out.read_text())) == 3 and chain.stat().st_size > 0
    capsys.readouterr()
    for argv, message in (
        (["sample", "--ckpt_path", str(reg_ckpt), "--output", str(tmp_path / "x.json")], "load_regressor"),
        (["sample", "--ckpt_path", str(gen_ckpt), "--output", str(tmp_path / "x.json"), "--regressor",
          str(gen_ckpt), "--condition", "num_edges=6"], "not a PropertyRegressor"),
        (["sample", "--ckpt_path", str(gen_ckpt), "--output", str(tmp_path / "x.json"), "--regressor",
          str(reg_ckpt)], "needs targets"),
        (["evaluate", "--samples", str(out), "--reference", data, "--oracle", str(reg_ckpt)], "--condition"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "x.json").exists()
    with pytest.raises(GraphdiffError, match="load_model"):
        gd.load_regressor(gen_ckpt)


def test_oracle_scores_molecules_in_evaluate(tmp_path):
    """For a dataset column no toolkit computes, `condition_errors(..., oracle=...)` is the MAE between the target
    and the oracle's prediction of each valid sample; invalid samples are not scored."""
    from graphdiff.evaluation import condition_errors

    smiles = ["CCO", "CCN", "CC(=O)O", "c1ccccc1", "CCCC", "CC(C)O", "OCCO", "CCOC"] * 4
    rows = "\n".join(f"{s},{0.5 * (i % 7)}" for i, s in enumerate(smiles))
    path = tmp_path / "mols.csv"
    path.write_text("smiles,energy\n" + rows + "\n")
    dm = GraphDataModule(path=str(path), root=str(tmp_path / "root"), batch_size=8, conditions=["energy"],
                         options={"split": [0.8, 0.1, 0.1]})
    oracle = PropertyRegressor(dm.dataset_info, noisy=False, model=TINY)
    samples = ["CCO", None, "not smiles", "CCCC"]
    result = condition_errors("molecule", samples, [{"energy": 1.0}], oracle=oracle)
    predicted = oracle.predict_smiles(["CCO", "CCCC"])[:, 0].double()
    assert result["scored/energy"] == 2
    assert result["mae/energy"] == pytest.approx(float((predicted - 1.0).abs().mean()))
    assert torch.isnan(oracle.predict_smiles(["[Se]"])).all()  # an atom type the oracle has no class for
    without = condition_errors("molecule", samples, [{"energy": 1.0}])
    assert without["mae/energy"] is None and "--oracle" in without["not_computed"]["mae/energy"]
