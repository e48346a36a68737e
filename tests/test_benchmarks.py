"""The benchmark baseline computes the same function as graphdiff's transformer (no timing here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

baseline_transformer = pytest.importorskip("benchmarks.baseline_transformer")
from benchmarks import report, setups  # noqa: E402
from graphdiff.diffusion import cross_entropy_loss  # noqa: E402
from graphdiff.models import GraphTransformerDenoiser  # noqa: E402
from graphdiff.types import DenseGraph  # noqa: E402
from tests.conftest import data_file  # noqa: E402

SIZES = {
    "n_layers": 2,
    "hidden_mlp_dims": {"X": 16, "E": 8, "y": 16},
    "hidden_dims": {"dx": 16, "de": 8, "dy": 8, "n_head": 4, "dim_ffX": 32, "dim_ffE": 16, "dim_ffy": 32},
}


def _random_batch(B: int = 3, n: int = 7, dx: int = 3, de: int = 3, seed: int = 0) -> DenseGraph:
    gen = torch.Generator().manual_seed(seed)
    counts = torch.tensor([n, n - 2, 4])[:B]
    mask = torch.arange(n).unsqueeze(0) < counts.unsqueeze(1)
    nodes = torch.randint(0, dx, (B, n), generator=gen)
    edges = torch.randint(0, de, (B, n, n), generator=gen)
    edges = torch.triu(edges, 1)
    edges = edges + edges.transpose(1, 2)
    X = torch.nn.functional.one_hot(nodes, dx).float()
    E = torch.nn.functional.one_hot(edges, de).float()
    return DenseGraph(X, E, torch.zeros(B, 0), mask).mask()


def test_baseline_matches_graphdiff_loss_and_gradients():
    torch.manual_seed(0)
    model = GraphTransformerDenoiser((3, 3, 0), (3, 3, 0), extra_features="all", max_nodes=7, **SIZES).eval()
    base = baseline_transformer.baseline_like(model).eval()
    baseline_transformer.copy_weights(model, base)
    clean = _random_batch()
    noisy = _random_batch(seed=1)
    t = torch.tensor([0.1, 0.5, 0.9])

    # Extra features: equal except the eigenvectors, which are only defined up to a rotation where this random
    # graph's Laplacian has a repeated eigenvalue (columns 4-5 of X); the networks then get the same features.
    extra_g = setups.split_forward(model, noisy, t)[0]()
    extra_b = setups.split_forward(base, noisy, t)[0]()
    torch.testing.assert_close(extra_g.X[..., :4], extra_b.X[..., :4])
    torch.testing.assert_close(extra_g.y, extra_b.y)

    losses, grads = [], []
    for m in (model, base):
        _, network = setups.split_forward(m, noisy, t)
        extra = extra_g
        loss = cross_entropy_loss(network(extra), clean)["loss"]
        loss.backward()
        losses.append(loss.item())
        grads.append(m.network.mlp_in_E[0].weight.grad.clone())
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)
    # split_forward is the denoiser's forward
    features, network = setups.split_forward(model, noisy, t)
    torch.testing.assert_close(network(features()).E, model(noisy, t).E)


def test_replace_between_keeps_the_hand_written_text():
    doc = "# P\nintro\n<!-- results:start -->\nold\n<!-- results:end -->\n## Changes and their effect\nkeep\n"
    new = report.replace_between(doc, report.RESULTS_START, report.RESULTS_END, "new table")
    assert "new table" in new and "old" not in new
    assert new.endswith("## Changes and their effect\nkeep\n") and new.startswith("# P\nintro\n")


def test_quality_rows_accumulate_across_runs():
    from benchmarks import quality

    def row(name: str, minutes: float, value: float) -> dict:
        return {"name": name, "model": "small", "minutes": minutes, "train_s": 60.0 * minutes, "steps": 10,
                "epochs": 1, "samples": 5, "sample_steps": None, "sample_s": 1.0, "eval_s": 1.0,
                "metrics": {"validity": value}, "command": f"run {minutes}", "machine": "m", "date": "d"}

    first = quality.merge_rows([], [row("qm9", 30, 0.5), row("comm20", 30, 0.1)])
    later = quality.merge_rows(first, [row("qm9", 120, 0.9), row("qm9", 30, 0.6)])  # a rerun replaces its row
    assert [(r["name"], r["minutes"], r["metrics"]["validity"]) for r in later] == [
        ("comm20", 30, 0.1), ("qm9", 30, 0.6), ("qm9", 120, 0.9)]
    table = quality.render(later)
    assert "validity 60.0" in table and "validity 90.0" in table and "`run 120`" in table
    # conditional rows: one per guidance scale, none replacing another
    guided = [{**row("qm9", 30, 0.8), "guidance": g, "metrics": {"validity": 0.8, "mae/qed": 0.1 / (1 + g)}}
              for g in (0.0, 2.0)]
    both = quality.merge_rows(later, guided)
    assert len(both) == len(later) + 2
    table = quality.render(both)
    assert "guidance 0)" in table and "guidance 2)" in table and "mae/qed 0.03333" in table
    # the same budget on another thread count is another row, and the table says which is which
    one, two = ({**row("qm9", 30, v), "machine": f"AMD EPYC, 2 cores, {t}, torch 2"} for v, t in
                ((0.7, "1 thread"), (0.8, "2 threads")))
    rows = quality.merge_rows(quality.merge_rows([], [two]), [one])
    assert sorted(r["metrics"]["validity"] for r in rows) == [0.7, 0.8]
    assert "d, 1 thread |" in quality.render(rows) and "d, 2 threads |" in quality.render(rows)
    assert len(quality.merge_rows(rows, [{**one, "metrics": {"validity": 0.75}}])) == 2


def test_quality_gdss_rows_train_with_the_shipped_published_config(data_root):
    from benchmarks import quality

    data_file("graphs", "community_small.json.gz")
    dm, model, size = quality.build("gdss_community_small")
    config = quality.yaml.safe_load((ROOT / "configs" / "sde" / "community_small.yaml").read_text())
    init = config["model"]["init_args"]
    assert size == "GDSS published" and dm.batch_size == config["data"]["batch_size"]
    assert model.hparams.sampler == init["sampler"] and model.hparams.lr == init["lr"]
    assert model.hparams.sde_adj == init["sde_adj"] and model.hparams.optimizer == init["optimizer"]
    assert model.process.sde_adj.N == init["sde_adj"]["num_scales"]


def test_quality_published_recipe_trains_the_shipped_digress_config(data_root):
    """The baseline to beat is DiGress's config as shipped: its network, optimiser, batch, dropout, no EMA and no
    clipping (every other recipe averages with EMA 0.999 and clips at 1)."""
    from benchmarks import quality

    data_file("graphs", "community_small.json.gz")
    config = quality.yaml.safe_load((ROOT / "configs" / "discrete" / "community_small.yaml").read_text())
    init = config["model"]["init_args"]
    dm, model, size = quality.build("community_small", recipe="published")
    assert size == "DiGress's configs/discrete/community_small.yaml (as published)"
    assert dm.batch_size == config["data"]["batch_size"]
    assert model.hparams.lr == init["lr"] and model.hparams.model == init["model"]
    assert model.hparams.T == init["T"] and model.hparams.amsgrad == init.get("amsgrad", False)
    published = quality.trainer_settings("community_small", "published")
    assert published == {"ema_decay": None, "gradient_clip_val": config["trainer"].get("gradient_clip_val")}
    assert quality.trainer_settings("community_small", "small") == {"ema_decay": 0.999, "gradient_clip_val": 1.0}
    assert quality.trainer_settings("gdss_community_small", "published")["ema_decay"] == 0.999



def test_quality_flow_rows_take_the_recipe_with_rrwp_or_the_shipped_defog_config():
    """``flow_<dataset>`` trains DeFoG with the recipe's network and optimiser (RRWP features, DeFoG's sampler
    settings), or with ``published`` DeFoG's shipped config as it is (no EMA, no clipping)."""
    from benchmarks import quality

    dm, model, size = quality.build("flow_comm20", recipe="wide4-anneal")
    recipe = quality.RECIPES["wide4-anneal"]
    assert size == "DeFoG, wide4 (4 layers, dx 256, lr 2e-3 cosine over the budget, rrwp)"
    assert dm.batch_size == recipe["batch_size"] and model.hparams.lr == recipe["training"]["lr"]
    assert model.hparams.lr_schedule == "cosine" and model.hparams.model["extra_features"] == "rrwp"
    assert model.hparams.model["n_layers"] == 4
    assert quality.build("flow_comm20")[2] == "DeFoG, small (4 layers, dx 64, rrwp)"  # the rows of earlier runs
    config = quality.shipped_config("flow", "comm20")
    dm, model, size = quality.build("flow_comm20", recipe="published")
    assert size == "DeFoG's configs/flow/comm20.yaml (as published)"
    assert dm.batch_size == config["data"]["batch_size"]
    assert model.hparams.model == config["model"]["init_args"]["model"]
    assert model.hparams.lr == config["model"]["init_args"]["lr"]
    assert quality.trainer_settings("flow_comm20", "published") == {"ema_decay": None, "gradient_clip_val": None}
    assert quality.trainer_settings("flow_comm20", "wide4-anneal") == {"ema_decay": 0.999, "gradient_clip_val": 1.0}


def test_milestone_checkpoints_save_once_per_milestone_and_the_rest_at_the_end(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from benchmarks import quality

    clock = [100.0]
    monkeypatch.setattr(quality.time, "perf_counter", lambda: clock[0])
    saved = []
    trainer = SimpleNamespace(global_step=0, current_epoch=0,
                              save_checkpoint=lambda path, weights_only: saved.append((path.name, weights_only)))
    callback = quality.MilestoneCheckpoints([10, 1, 2.5, 1], tmp_path)
    callback.on_train_start(trainer, None)
    for seconds, step in ((30, 1), (61, 2), (200, 3), (400, 4)):  # 200 s passes 2.5 min only once
        clock[0], trainer.global_step = 100.0 + seconds, step
        callback.on_train_batch_end(trainer, None, None, None, 0)
    clock[0] = 100.0 + 450
    callback.on_train_end(trainer, None)  # the run ended before 10 minutes
    assert saved == [("1min.ckpt", True), ("2.5min.ckpt", True), ("10min.ckpt", True)]
    assert [(m, s, step) for m, _, s, step, _ in callback.saved] == [(1, 61, 2), (2.5, 200, 3), (10, 450, 4)]


def test_evaluate_only_reads_the_saved_milestones_and_draws_average(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from benchmarks import quality

    trainer = SimpleNamespace(global_step=7, current_epoch=3,
                              save_checkpoint=lambda path, weights_only: torch.save(
                                  {"state_dict": {"w": torch.tensor([1.0])}, "global_step": 7, "epoch": 3}, path))
    saver = quality.MilestoneCheckpoints([1, 2], tmp_path)
    saver._save(trainer, 1, 65.0)
    saver._save(trainer, 2, 130.0)
    saved = quality.saved_checkpoints(tmp_path, [1, 2])
    assert [(m, p.name, s, step, ep) for m, p, s, step, ep in saved] == [
        (1, "1min.ckpt", 65.0, 7, 3), (2, "2min.ckpt", 130.0, 7, 3)]
    with pytest.raises(FileNotFoundError, match="5min.ckpt"):
        quality.saved_checkpoints(tmp_path, [5])

    class Model(torch.nn.Module):  # each seed's samples score seed + 1: the draws' mean and spread are known
        info = SimpleNamespace(kind="graph")

        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def generate(self, n, steps, seed, condition, guidance):
            return [seed + 1.0] * n

    import graphdiff.evaluation as evaluation

    monkeypatch.setattr(evaluation, "evaluate_generated", lambda graphs, *a, **k: {"degree": graphs[0]})
    (row,) = quality.evaluate_saved("comm20", Model(), SimpleNamespace(data=None), "m", saved[:1], 4, [None], draws=3)
    assert row["metrics"]["degree"] == pytest.approx(2.0) and row["draws"] == 3
    assert row["metrics_std"]["degree"] == pytest.approx((2 / 3) ** 0.5) and row["train_s"] == 65.0
    table = quality.render([{**row, "command": "c", "machine": "m", "date": "d"}])
    assert "4 × 3 draws" in table and "degree 2 ± 0.8165" in table and "1 min (65 s)" in table
    again = {**row, "train_s": None, "minutes": 1.0}  # evaluated again later: keeps the seconds it was trained
    assert quality.merge_rows([row], [again])[0]["train_s"] == 65.0
    assert quality.merge_rows([row], [{**again, "steps": 8}])[0]["train_s"] is None


def test_rerun_command_leaves_out_where_results_go(monkeypatch):
    from benchmarks import quality

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    args = ["--minutes", "30", "--results", "/tmp/a.json", "--datasets", "qm9", "--doc=/tmp/d.md", "--output-dir", "o"]
    assert quality.rerun_command(args) == "OMP_NUM_THREADS=1 python -m benchmarks.quality --minutes 30 --datasets qm9"
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert quality.rerun_command(["--minutes", "1"]) == "python -m benchmarks.quality --minutes 1"


def test_quality_curves_plot_rows_with_several_budgets(tmp_path):
    from benchmarks import quality

    def row(name: str, minutes: float, value: float) -> dict:
        return {"name": name, "model": "wide4", "minutes": minutes, "sample_steps": 100,
                "metrics": {"validity": value}}

    path = tmp_path / "curves.png"
    assert quality.plot_curves([row("qm9", 30, 0.9)], path) == [] and not path.exists()  # one budget: no curve
    assert quality.plot_curves([row("qm9", 10, 0.8), row("qm9", 30, 0.9), row("flow_qm9", 10, 0.7)], path) == ["qm9"]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_floor_row_is_training_graphs_against_the_test_split(data_root):
    from benchmarks import quality

    row = quality.train_test_floor("comm20", 6)
    assert row["model"] == quality.FLOOR_MODEL and row["samples"] == 6
    assert {"degree", "clustering", "orbit"} <= set(row["metrics"]) and row["metrics"]["novel"] == 0.0
    assert row == quality.train_test_floor("comm20", 6)  # seeded draw
    table = quality.render([{**row, "command": "c", "machine": "m", "date": "d"}])
    assert "| comm20 | training graphs (floor) | – | – | 6 training graphs |" in table


def test_floor_over_several_draws_is_the_mean_of_single_draws(data_root):
    from benchmarks import quality

    single = [quality.train_test_floor("comm20", 6, seed=k)["metrics"]["degree"] for k in range(3)]
    row = quality.train_test_floor("comm20", 6, draws=3)
    assert row["metrics"]["degree"] == pytest.approx(sum(single) / 3)
    assert row["metrics_std"]["degree"] == pytest.approx(float(torch.tensor(single).std()))
    assert row["model"] == f"{quality.FLOOR_MODEL}, mean of 3 draws"
    assert "± " in quality.render([{**row, "command": "c", "machine": "m", "date": "d"}])


def test_guidance_table_and_plot(tmp_path):
    from benchmarks import guidance

    rows = [{"kind": "regressor", "property": "logp", "model": "small", "minutes": 1, "steps": 10,
             "clean_test_mae": 0.5, "mean_predictor_mae": 1.0},
            *({"kind": "regressor guidance", "property": "logp", "scale": lam, "model": "m", "samples": 10,
               "sample_steps": 5, "validity": 0.9, "uniqueness": 1.0, "mae": 1.0 / (1 + lam)} for lam in (0, 10)),
            {"kind": "classifier-free guidance", "property": "qed", "scale": 2.0, "model": "m", "samples": 10,
             "sample_steps": 5, "validity": None, "uniqueness": None, "mae": None}]
    table = guidance.render(rows)
    assert "| regressor guidance | logp | 10 | m | 10 (5) | 90.0 | 100.0 | 0.091 |" in table
    assert "| classifier-free guidance | qed | 2 | m | 10 (5) | – | – | – |" in table
    assert "clean test MAE 0.500 (predicting the training mean: 1.000)" in table
    assert guidance.plot(rows, tmp_path / "g.png") and (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    assert not guidance.plot(rows[:1], tmp_path / "none.png")


def test_compile_rows_render():
    phase = {"first_ms": {"eager": 270.0, "compiled": 4600.0}, "ms": {"eager": 256.0, "compiled": 200.0},
             "speedup": 1.28, "compile_s": 4.4}
    row = {"setup": "planar", "batch_size": 16, "threads": 2, "backend": "inductor", "fell_back": False,
           "forward": phase, "step": {**phase, "compile_s": 61.0}}
    text = report.render({"compile": {"value": [row, {**row, "setup": "qm9", "fell_back": True}]}})
    assert "### torch.compile (`--model.compile true`)" in text
    assert "| planar | 16 | 2 | forward (no grad) | 256" in text and "1.28x" in text
    assert "| qm9 | 16 | 2 | training step |" in text and "fell back to eager" in text


def _toy_pard(tmp_graphs: int = 6):
    """A tiny PardModel and a few training graphs (paths and cycles of 4-6 nodes)."""
    from graphdiff.info import DatasetInfo
    from graphdiff.lit.pard import PardModel
    from graphdiff.storage import GraphList

    n = 6
    X, E, masks = [], [], []
    for k in range(tmp_graphs):
        size = 4 + k % 3
        adj = torch.zeros(n, n, dtype=torch.long)
        for i in range(size - 1 + k % 2):  # a path, or a cycle for odd k
            adj[i, (i + 1) % size] = adj[(i + 1) % size, i] = 1
        X.append(torch.nn.functional.one_hot(torch.zeros(n, dtype=torch.long), 1).float())
        E.append(torch.nn.functional.one_hot(adj, 2).float())
        masks.append(torch.arange(n) < size)
    batch = DenseGraph(torch.stack(X), torch.stack(E), torch.zeros(tmp_graphs, 0), torch.stack(masks)).mask()
    info = DatasetInfo(name="toy", kind="graph", node_types=["node"], edge_types=["none", "edge"], max_nodes=n,
                       split_sizes={"train": tmp_graphs, "val": 0, "test": 0}, node_counts=[0, 0, 0, 0, 2, 2, 2],
                       node_marginals=[1.0], edge_marginals=[0.6, 0.4])
    torch.manual_seed(0)
    model = PardModel(info.to_dict(), T=5, max_hops=1, model={"hidden_dims": 16, "edge_dims": 8, "n_layers": 1,
                                                                "n_heads": 2})
    return model, GraphList.from_dense(batch)


def test_calibrated_pard_head_draws_the_data_block_sizes_and_sampling_calls_are_counted():
    from benchmarks import measure

    model, graphs = _toy_pard()
    model.first_block_sizes.copy_(model.first_block_distribution(graphs))
    stats = setups.calibrate_block_sizes(model, graphs)
    assert stats["graphs"] == len(graphs) and stats["blocks_max"] >= 2
    summary = torch.randn(3, 2, 16)
    probs = torch.softmax(model.block_head.size_logits(summary), -1)
    torch.testing.assert_close(probs, stats["next_sizes"].expand(3, 2, -1), rtol=1e-4, atol=1e-6)

    counts = torch.tensor([6, 5, 4])
    r = measure._pard_sampling(model, counts, 2, "cpu")
    assert sorted(r["nodes"]) == [4, 5, 6]  # the sizes asked for
    assert r["denoiser_calls"] == 2 * r["blocks"] and r["head_calls"] == r["blocks"] >= 1
    assert 0 < r["denoiser_s"] + r["head_s"] <= r["seconds"]
    assert "forward" not in vars(model.denoiser)  # the timers are removed


def _pard_row(setup: str) -> dict:
    def train(params: int, ms: float, **extra) -> dict:
        return {"batch_size": 2, "params": params, "input_nodes": 9, "graphs_per_s": 2000 / ms, "peak_mem_mb": 10.0,
                "gflop_per_step": ms / 100, "ms": {"loss": ms / 2, "backward": ms / 2, "optimizer": 1.0, "total": ms},
                **extra}

    def chains(per_step: float, steps: list[int], calls: int = 1) -> list[dict]:
        return [{"steps": k, "calls": calls * k, "s_per_step": per_step, "chain_s": per_step * k,
                 "s_per_graph": per_step * k / 2, "measured": False} for k in steps]

    pard_chains = [{"steps": k, "blocks": 4, "calls": 4 * k + 4, "chain_s": 0.1 * (4 * k + 4), "s_per_graph": 0.2 * k,
                    "measured": k == 2} for k in (50, 2)]
    return {"setup": setup, "threads": 1, "batch_size": 2, "steps": 1, "warmup": 1, "num_graphs": 2, "max_nodes": 9,
            "gdss_setup": "gdss_qm9" if setup == "qm9" else None, "peak_mem_method": "RSS",
            "pard_config": {"config": f"pard/{setup}", "T": 50, "max_hops": 3, "training_mode": "parallel",
                            "model": {"hidden_dims": 256, "edge_dims": 64, "n_layers": 8, "n_heads": 8}},
            "pard_blocks": {"graphs": 100, "blocks_mean": 4.3, "blocks_max": 7, "block_size_mean": 2.0},
            "train": {"discrete": train(100, 500.0), "flow": train(100, 510.0),
                      **({"gdss": train(10, 20.0)} if setup == "qm9" else {}),
                      "pard": train(120, 2000.0, rows=2, training_mode="parallel", order_layout_ms=1.5)},
            "sample": {"discrete": {"calls_per_step": 1, "measure_steps": 2, "chains": chains(0.1, [500, 50])},
                       "flow": {"calls_per_step": 1, "measure_steps": 2, "chains": chains(0.1, [500, 50])},
                       **({"gdss": {"calls_per_step": 2, "measure_steps": 2, "chains": chains(0.01, [1000], 2),
                                    "sampler": {"predictor": "Reverse", "corrector": "Langevin"}}}
                          if setup == "qm9" else {}),
                       "pard": {"chains": pard_chains, "s_per_denoiser_call": 0.1, "s_per_head_call": 0.1,
                                "measured": {"steps_per_block": 2, "blocks": 4, "head_s": 0.4, "seconds": 1.2}}}}


def test_pard_rows_render():
    text = report.render({"pard": {"value": [_pard_row("qm9"), _pard_row("planar")]}})
    assert "### PARD next to DiGress, DeFoG and GDSS" in text
    assert "| qm9 | PARD | 2 | 2 x 9 | 120 | 2,000 | 1.00 | 4.00x |" in text
    assert "| qm9 | GDSS (gdss_qm9) | 2 |" in text and "| planar | GDSS" not in text
    assert "| qm9 | PARD | 2 (n ≤ 9) | 50/block x 4 blocks | 204 |" in text
    assert "qm9: PARD ran 4 blocks for the batch" in text
