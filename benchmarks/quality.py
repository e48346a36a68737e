"""Sample quality under a wall-clock training budget on this machine (not run by CI or ``benchmarks run``).

    python -m benchmarks.quality --minutes 30                 # qm9, comm20, community_small, ego_small
    python -m benchmarks.quality --minutes 120 --gdss         # + GDSS on QM9 (configs/sde/qm9.yaml)
    python -m benchmarks.quality --datasets gdss_qm9          # GDSS alone
    python -m benchmarks.quality --minutes 1 --datasets comm20 --samples 20    # smoke run
    python -m benchmarks.quality --datasets qm9 flow_qm9 --sample-steps 50 500  # DiGress vs DeFoG, 50 and 500 steps
    python -m benchmarks.quality --datasets pard_qm9 pard_comm20                # PARD (small), its published T
    python -m benchmarks.quality --datasets flow_qm9 --recipe wide4-anneal --sample-steps 50  # DeFoG, same recipe
    python -m benchmarks.quality --minutes 120 --milestones 10 30 60 --datasets qm9 --recipe wide4  # a curve
    python -m benchmarks.quality --datasets qm9 --recipe wide4 --precision bf16-mixed   # bfloat16 autocast
    python -m benchmarks.quality --floor-only --datasets comm20 ego_small     # training graphs vs the test split
    python -m benchmarks.quality --datasets qm9 --recipe wide4-anneal --conditions qed logp --guidance 0 1 2 3

Each dataset is trained through graphdiff's real training code — ``graphdiff.lit.DiscreteDiffusionModel`` (or
``ScoreSDEModel`` for ``gdss_<dataset>``, ``DiscreteFlowModel`` for ``flow_<dataset>``, ``PardModel`` for
``pard_<dataset>``) and a Lightning
``Trainer(max_time=...)`` with the EMA callback — then
sampled and evaluated with ``graphdiff.evaluation.evaluate_generated`` against the test split. The results are
written between the ``quality`` markers of ``docs/performance.md`` next to published numbers (which come from
days of GPU training: a CPU budget is expected to fall short; the table shows how far).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml

from benchmarks import report, setups

#: Published numbers to print next to ours (fractions in percent, MMDs squared).
PUBLISHED: dict[str, dict[str, str]] = {
    "qm9": {"validity": "99.0 (DiGress)", "uniqueness": "96.2 (DiGress)"},
    "flow_qm9": {"validity": "99.3 / 98.9 (DeFoG, 500 / 50 steps)", "uniqueness": "96.3 / 96.2"},
    "gdss_qm9": {"validity": "95.7 (GDSS, without correction)"},
    "pard_qm9": {"validity": "97.1", "uniqueness": "96.5 (PARD README: QM9 with explicit H, max_hops 1, 140 steps)"},
    # GDSS Table 1 (MMD², GDSS protocol), the model the graph benchmarks are usually compared with.
    "ego_small": {"degree": "0.021", "clustering": "0.024", "orbit": "0.007 (GDSS)"},
    "community_small": {"degree": "0.045", "clustering": "0.086", "orbit": "0.007 (GDSS)"},
}

#: Model sizes that learn something within minutes on a CPU (the published ones need a GPU for days);
#: ``--recipe published`` trains the shipped DiGress config instead.
SMALL_MODEL = {
    "n_layers": 4,
    "hidden_mlp_dims": {"X": 64, "E": 32, "y": 64},
    "hidden_dims": {"dx": 64, "de": 32, "dy": 32, "n_head": 4, "dim_ffX": 128, "dim_ffE": 64, "dim_ffy": 128},
    "extra_features": "all",
    "dropout": 0.0,
}
T_OF = {"qm9": 500}
#: DeFoG's sampling settings of each dataset (configs/flow/<dataset>.yaml), the steps set per run.
FLOW_SAMPLER = {"qm9": {"time_distortion": "polydec"}, "comm20": {}}
#: DiGress-family recipes: the model, its optimiser settings and batch (None: ``BATCH_OF``), and the row label.
RECIPES: dict[str, dict[str, Any]] = {
    "small": {"model": SMALL_MODEL, "training": {"lr": 1e-3}, "batch_size": None,
              "label": "small (4 layers, dx 64)"},
    # DiGress's QM9 widths at 4 layers, a larger learning rate with warm-up: the README's 25-minute QM9 model.
    # small with a larger learning rate annealed to 0 over the training budget (cosine over max_time).
    "small-anneal": {"model": SMALL_MODEL, "training": {"lr": 2e-3, "warmup_steps": 100, "lr_schedule": "cosine"},
                     "batch_size": None, "label": "small (4 layers, dx 64, lr 2e-3 cosine over the budget)"},
    "wide4": {"model": {"preset": "qm9", "n_layers": 4, "extra_features": "all", "dropout": 0.0},
              "training": {"lr": 2e-3, "warmup_steps": 100}, "batch_size": 256,
              "label": "wide4 (4 layers, dx 256, lr 2e-3)"},
    # wide4 with the learning rate annealed to 0 over the training budget (cosine over max_time).
    "wide4-anneal": {"model": {"preset": "qm9", "n_layers": 4, "extra_features": "all", "dropout": 0.0},
                     "training": {"lr": 2e-3, "warmup_steps": 100, "lr_schedule": "cosine"}, "batch_size": 256,
                     "label": "wide4 (4 layers, dx 256, lr 2e-3 cosine over the budget)"},
    # The faithful DiGress baseline: the shipped configs/discrete/<dataset>.yaml as it is (DiGress's network,
    # AdamW + amsgrad at 2e-4, its batch, dropout, no EMA, no gradient clipping), only the budget changed.
    "published": {"config": True, "label": "DiGress's configs/discrete/{dataset}.yaml (as published)"},
}
#: PARD at the size of SMALL_MODEL; its published diffusion settings per dataset (configs/pard/<dataset>.yaml).
PARD_SMALL_MODEL = {"hidden_dims": 64, "edge_dims": 32, "n_layers": 4, "n_heads": 4}
PARD_SETTINGS: dict[str, dict[str, Any]] = {
    "qm9": {"T": 50, "max_hops": 3, "transition": "uniform", "ce_weight": 0.1, "block_model": "separate"},
    "comm20": {"T": 40, "max_hops": 3, "transition": "marginal", "ce_weight": 0.01, "block_model": "separate"},
}
PARD_BATCH_OF = {"qm9": 128, "comm20": 32}  # PARD: 128 (qm9.yaml); comm20 as the other rows
BATCH_OF = {"qm9": 512, "comm20": 32, "community_small": 32, "ego_small": 32}
CONFIGS = Path(__file__).resolve().parent.parent / "configs"
#: Periodic/test evaluation settings of the shipped configs: the benchmark samples and evaluates by itself.
SDE_EVAL_ARGS = {"eval_every_n_epochs", "eval_samples", "test_samples", "test_folds", "sample_batch_size"}
MOLECULE_METRICS = ["validity", "relaxed_validity", "uniqueness", "novelty"]


def dataset_of(name: str) -> str:
    """The dataset of a row name: ``flow_qm9`` -> ``qm9`` (the family prefixes ``gdss_``, ``flow_``, ``pard_``)."""
    return name.removeprefix("gdss_").removeprefix("flow_").removeprefix("pard_")


def shipped_config(family: str, dataset: str) -> dict[str, Any]:
    """``configs/<family>/<dataset>.yaml`` as a dict (the published settings graphdiff ships)."""
    path = CONFIGS / family / f"{dataset}.yaml"
    if not path.exists():
        raise ValueError(f"no shipped config {path} for the published recipe")
    return yaml.safe_load(path.read_text())


def trainer_settings(name: str, recipe: str) -> dict[str, Any]:
    """EMA decay (None: no EMA) and gradient clipping of a row: the published recipe keeps its config's (DiGress
    trains with neither); every other row uses EMA 0.999 and clipping at 1."""
    r = RECIPES.get(recipe, {})
    if name.startswith(("gdss_", "pard_")) or "config" not in r:
        return {"ema_decay": 0.999, "gradient_clip_val": 1.0}
    config = shipped_config("flow" if name.startswith("flow_") else "discrete", dataset_of(name))
    callbacks = config.get("trainer", {}).get("callbacks") or []
    ema = next((c.get("init_args", {}).get("decay", 0.999) for c in callbacks
                if str(c.get("class_path", "")).endswith("EMA")), None)
    return {"ema_decay": ema, "gradient_clip_val": config.get("trainer", {}).get("gradient_clip_val")}


def build(name: str, recipe: str = "small", sample_steps: int | None = None,
          conditions: list[str] | None = None) -> tuple[Any, Any, str]:
    """The data module, the Lightning model and a label of its size for a quality row named ``name``.

    ``gdss_<dataset>`` takes GDSS's published training and sampler settings from ``configs/sde/<dataset>.yaml``;
    other names train DiGress's discrete model with a ``RECIPES`` entry (``flow_<dataset>``: DeFoG's, small).
    """
    from graphdiff.datasets.datamodule import GraphDataModule

    dataset = dataset_of(name)
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    r = RECIPES[recipe]
    if name.startswith("flow_"):
        from graphdiff.lit import DiscreteFlowModel

        if "config" in r:  # DeFoG's shipped configs/flow/<dataset>.yaml as it is
            config = shipped_config("flow", dataset)
            data = config["data"]
            dm = GraphDataModule(dataset, batch_size=data["batch_size"], options=data.get("options"))
            init = {k: v for k, v in config["model"]["init_args"].items() if k not in SDE_EVAL_ARGS}
            return (dm, DiscreteFlowModel(dataset_info=dm.dataset_info, **init),
                    f"DeFoG's configs/flow/{dataset}.yaml (as published)")
        # The DiGress recipe's network and optimiser with DeFoG's RRWP features and sampler settings.
        dm = GraphDataModule(dataset, batch_size=r.get("batch_size") or BATCH_OF.get(dataset, 32))
        model = DiscreteFlowModel(dataset_info=dm.dataset_info, model={**r["model"], "extra_features": "rrwp"},
                                  sampler=FLOW_SAMPLER.get(dataset, {}), **r["training"])
        return dm, model, "DeFoG, " + r["label"].replace(")", ", rrwp)", 1)
    if name.startswith("pard_"):
        from graphdiff.lit import PardModel

        settings = PARD_SETTINGS.get(dataset, PARD_SETTINGS["comm20"])
        dm = GraphDataModule(dataset, batch_size=PARD_BATCH_OF.get(dataset, 32))
        model = PardModel(dataset_info=dm.dataset_info, model=dict(PARD_SMALL_MODEL), sample_steps=sample_steps,
                          lr=2e-3, warmup_steps=100, lr_schedule="cosine", **settings)
        return dm, model, "PARD, small (4 layers, hidden 64, edges 32, lr 2e-3 cosine over the budget)"
    if name.startswith("gdss_"):
        from graphdiff.lit import ScoreSDEModel

        config = yaml.safe_load((CONFIGS / "sde" / f"{dataset}.yaml").read_text())
        dm = GraphDataModule(dataset, batch_size=config["data"]["batch_size"])
        init = {k: v for k, v in config["model"]["init_args"].items() if k not in SDE_EVAL_ARGS}
        return dm, ScoreSDEModel(dataset_info=dm.dataset_info, **init), "GDSS published"
    from graphdiff.lit import DiscreteDiffusionModel

    if "config" in r:
        config = shipped_config("discrete", dataset)
        data = config["data"]
        dm = GraphDataModule(dataset, batch_size=data["batch_size"], options=data.get("options"),
                             conditions=conditions)
        init = {k: v for k, v in config["model"]["init_args"].items() if k not in SDE_EVAL_ARGS}
        model = DiscreteDiffusionModel(dataset_info=dm.dataset_info, sample_steps=sample_steps, **init)
        return dm, model, r["label"].format(dataset=dataset)
    cfg = r["model"]
    dm = GraphDataModule(dataset, batch_size=r.get("batch_size") or BATCH_OF.get(dataset, 32), conditions=conditions)
    model = DiscreteDiffusionModel(dataset_info=dm.dataset_info, T=T_OF.get(dataset, 500), model=dict(cfg),
                                   sample_steps=sample_steps, **r["training"])
    label = r["label"] + (f", conditioned on {' + '.join(conditions)}" if conditions else "")
    return dm, model, label


class MilestoneCheckpoints(pl.Callback):
    """Save ``<directory>/<m>min.ckpt`` when training has run ``m`` minutes, for each of ``milestones`` (the averaged
    weights, as every checkpoint with the EMA callback): one training run gives the quality-against-time curve.
    A milestone the run does not reach is saved when training ends.

    ``saved`` lists ``(minutes, path, seconds trained, optimiser steps, epochs)`` per checkpoint.
    """

    def __init__(self, milestones: list[float], directory: Path) -> None:
        self.pending = sorted(set(milestones))
        self.directory = directory
        self.saved: list[tuple[float, Path, float, int, int]] = []
        self.start = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        elapsed = time.perf_counter() - self.start
        while self.pending and elapsed >= 60 * self.pending[0]:
            self._save(trainer, self.pending.pop(0), elapsed)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        elapsed = time.perf_counter() - self.start
        while self.pending:
            self._save(trainer, self.pending.pop(0), elapsed)

    def _save(self, trainer: pl.Trainer, minutes: float, elapsed: float) -> None:
        path = self.directory / f"{minutes:g}min.ckpt"
        trainer.save_checkpoint(path, weights_only=True)
        report.atomic_write_text(path.with_suffix(".json"), json.dumps({"train_s": elapsed}))  # for --evaluate-only
        self.saved.append((minutes, path, elapsed, trainer.global_step, trainer.current_epoch))


def train_and_evaluate(name: str, minutes: float, samples: int, sample_steps: list[int | None], out_dir: Path,
                       recipe: str = "small", milestones: list[float] | None = None, seed: int = 0,
                       precision: str = "32-true", conditions: list[str] | None = None,
                       guidance: list[float] | None = None, draws: int = 1,
                       evaluate_only: bool = False) -> list[dict[str, Any]]:
    """Train ``name`` for ``minutes`` (the weights saved at each of ``milestones`` minutes, default the end), then
    sample and evaluate each saved model with each number of ``sample_steps``: one row each.

    With ``conditions`` the model is conditional: every saved model samples for ``samples`` target rows drawn from
    the test split's property values, once per classifier-free guidance scale of ``guidance`` (0 is the same
    network unconditional: the baseline), and each row adds the error of each property to its target.

    With ``draws > 1`` each row is the mean over that many sample sets (seeds ``seed..seed + draws - 1``) and
    ``metrics_std`` their standard deviation, as the floor's ``--floor-draws``. With ``evaluate_only`` nothing is
    trained: the milestone checkpoints an earlier run saved in ``out_dir / name`` are evaluated."""
    from graphdiff.callbacks import EMA

    pl.seed_everything(seed, workers=True)
    dm, model, size = build(name, recipe, conditions=conditions)
    if precision != "32-true":
        size += f", {precision}"
    budgets = [m for m in (milestones or []) if m < minutes] + [minutes]
    if evaluate_only:
        return evaluate_saved(name, model, dm, size, saved_checkpoints(out_dir / name, budgets), samples,
                              sample_steps, seed, conditions, guidance, draws)
    saver = MilestoneCheckpoints(budgets, out_dir / name)
    settings = trainer_settings(name, recipe)
    averaging = [EMA(decay=settings["ema_decay"])] if settings["ema_decay"] else []
    trainer = pl.Trainer(
        max_time={"minutes": minutes}, max_epochs=-1, accelerator="cpu", devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, gradient_clip_val=settings["gradient_clip_val"],
        precision=precision, default_root_dir=str(out_dir / name), callbacks=[*averaging, saver],
    )
    trainer.fit(model, dm)
    trainer.save_checkpoint(out_dir / name / "last.ckpt")  # for `graphdiff sample / search` on the trained model
    return evaluate_saved(name, model, dm, size, saver.saved, samples, sample_steps, seed, conditions, guidance,
                          draws)


def saved_checkpoints(directory: Path, budgets: list[float]) -> list[tuple[float, Path, float | None, int, int]]:
    """``(minutes, path, seconds trained or None, optimiser steps, epochs)`` of the ``<m>min.ckpt`` files an earlier
    run saved in ``directory`` for ``budgets`` (as :class:`MilestoneCheckpoints` lists them)."""
    saved = []
    for minutes in budgets:
        path = directory / f"{minutes:g}min.ckpt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no checkpoint of a {minutes:g}-minute run to evaluate")
        checkpoint = torch.load(path, weights_only=True, map_location="cpu")
        side = path.with_suffix(".json")
        train_s = json.loads(side.read_text()).get("train_s") if side.is_file() else None
        saved.append((minutes, path, train_s, int(checkpoint.get("global_step", 0)), int(checkpoint.get("epoch", 0))))
    return saved


def evaluate_saved(name: str, model: Any, dm: Any, size: str,
                   saved: list[tuple[float, Path, float | None, int, int]], samples: int,
                   sample_steps: list[int | None], seed: int = 0, conditions: list[str] | None = None,
                   guidance: list[float] | None = None, draws: int = 1) -> list[dict[str, Any]]:
    """One row per saved checkpoint, number of sampling steps and guidance scale (see :func:`train_and_evaluate`)."""
    import numpy as np

    from graphdiff.evaluation import evaluate_generated

    targets, target_rows = None, []
    if conditions:
        targets = condition_targets(dm, conditions, samples, seed)
        target_rows = [dict(zip(conditions, r.tolist(), strict=True)) for r in targets]
    rows = []
    for budget, path, train_s, global_step, epochs in saved:
        model.load_state_dict(torch.load(path, weights_only=True, map_location="cpu")["state_dict"])
        model.eval()
        for steps in sample_steps:
            for scale in (guidance or [None]) if conditions else [None]:
                runs, sample_s, eval_s = [], 0.0, 0.0
                for draw in range(draws):
                    t0 = time.perf_counter()
                    graphs = model.generate(samples, steps=steps, seed=seed + draw, condition=targets,
                                            guidance=scale if conditions else None)
                    sample_s += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    metrics = evaluate_generated(graphs, model.info, dm.data, reference_split="test",
                                                 metrics=MOLECULE_METRICS if model.info.kind == "molecule" else None)
                    if conditions:
                        metrics.update(_condition_errors(graphs, model.info, target_rows))
                    eval_s += time.perf_counter() - t0
                    runs.append({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
                row = {"name": name, "model": size, "minutes": budget, "train_s": train_s,
                       "steps": global_step, "epochs": epochs, "samples": len(graphs),
                       "sample_steps": steps, "sample_s": sample_s / draws, "eval_s": eval_s / draws,
                       "metrics": {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}}
                if draws > 1:
                    row["draws"] = draws
                    row["metrics_std"] = {k: float(np.std([r[k] for r in runs])) for k in runs[0]}
                if conditions:
                    row["guidance"] = scale if scale is not None else 1.0
                rows.append(row)
    return rows


def condition_targets(dm: Any, names: list[str], count: int, seed: int = 0) -> torch.Tensor:
    """``[count, P]`` target rows drawn (with replacement) from the test graphs that have every property."""
    test = dm.data.splits["test"]
    table = torch.stack([dm.data.property_values(n)[test] for n in names], dim=1)
    table = table[~torch.isnan(table).any(1)]
    pick = torch.randint(len(table), (count,), generator=torch.Generator().manual_seed(seed))
    return table[pick].float()


def _condition_errors(graphs: Any, info: Any, rows: list[dict[str, float]]) -> dict[str, Any]:
    from graphdiff.chem import canonical_smiles, graphs_to_mols
    from graphdiff.evaluation import condition_errors
    from graphdiff.graph import graphs_to_networkx

    if info.kind == "molecule":
        samples = [canonical_smiles(m) if m is not None else None for m in graphs_to_mols(graphs, info)]
        return condition_errors("molecule", samples, rows)
    return condition_errors("graph", graphs_to_networkx(graphs, info), rows)


def train_test_floor(dataset: str, samples: int, seed: int = 0, draws: int = 1) -> dict[str, Any]:
    """The row a perfect generator would get: ``samples`` training graphs drawn at random, evaluated against the
    test split by the same protocol as the samples (the MMD floor of a finite sample; 0 only with infinite sets).

    With ``draws > 1`` the metrics are the mean over that many draws (seeds ``seed..seed + draws - 1``) and
    ``metrics_std`` their standard deviation: with 20 test graphs one draw's MMD² varies by tens of percent."""
    import torch

    from graphdiff.datasets.datamodule import GraphDataModule
    from graphdiff.evaluation import evaluate_generated

    data = GraphDataModule(dataset, batch_size=1).data
    train = data.split("train")
    values: dict[str, list[float]] = {}
    for k in range(draws):
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed + k))[:samples]
        metrics = evaluate_generated(train.subset(order), data.info, data, reference_split="test",
                                     metrics=MOLECULE_METRICS if data.info.kind == "molecule" else None)
        for name, v in metrics.items():
            if isinstance(v, (int, float)):
                values.setdefault(name, []).append(float(v))
    row = {"name": dataset, "model": FLOOR_MODEL if draws == 1 else f"{FLOOR_MODEL}, mean of {draws} draws",
           "minutes": 0.0, "train_s": 0.0, "steps": 0, "epochs": 0, "samples": min(samples, len(train)),
           "sample_steps": None, "sample_s": 0.0, "eval_s": 0.0,
           "metrics": {k: sum(v) / len(v) for k, v in values.items()}}
    if draws > 1:
        row["metrics_std"] = {k: float(torch.tensor(v).std()) for k, v in values.items()}
    return row


FLOOR_MODEL = "training graphs (floor)"


#: Every quality row ever measured here, keyed by dataset, model and budget, so that runs with different budgets
#: (or datasets) made by separate commands end up in one table; a rerun replaces its own rows.
RESULTS = Path(__file__).resolve().parent / "results" / "quality.json"


def merge_rows(previous: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``previous`` with the rows of ``new`` replacing those of the same dataset, model, budget and thread count
    (a budget on one thread is another measurement than on two)."""
    def key(row: dict[str, Any]) -> tuple[Any, ...]:
        return (row["name"], row.get("model"), float(row["minutes"]), row.get("sample_steps"), row.get("guidance"),
                _threads(row))

    merged = {key(r): r for r in previous}
    for row in new:
        old = merged.get(key(row), {})
        if row.get("train_s") is None and old.get("train_s") is not None and old.get("steps") == row.get("steps"):
            row = {**row, "train_s": old["train_s"]}  # the same weights evaluated again (--evaluate-only)
        merged[key(row)] = row
    return sorted(merged.values(), key=lambda r: (r["name"], float(r["minutes"]), r.get("sample_steps") or 0,
                                                  r.get("guidance") or 0))


def render(rows: list[dict[str, Any]]) -> str:
    lines = ["| dataset | model | budget | optimiser steps | samples (steps) | metrics | published | run |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | – | {r['minutes']} min | – | – | failed: {r['error']} | – | {_run(r)} |")
            continue
        metrics = ", ".join(f"{k} {_value(k, v)}" for k, v in r["metrics"].items())
        published = ", ".join(f"{k} {v}" for k, v in PUBLISHED.get(r["name"], {}).items()) or "–"
        if r["model"].startswith(FLOOR_MODEL):
            if "metrics_std" in r:
                metrics = ", ".join(f"{k} {v:.4g} ± {r['metrics_std'][k]:.2g}" for k, v in r["metrics"].items()
                                    if k in r["metrics_std"] and k not in ("unique", "novel", "unique_novel"))
            lines.append(f"| {r['name']} | {r['model']} | – | – | {r['samples']} training graphs | {metrics} | – | "
                         f"{_run(r)} |")
            continue
        if "metrics_std" in r:
            metrics = ", ".join(f"{k} {_value(k, v)} ± {_value(k, r['metrics_std'][k])}"
                                for k, v in r["metrics"].items())
        trained = f" ({r['train_s']:.0f} s)" if r.get("train_s") is not None else ""
        draws = f" × {r['draws']} draws" if r.get("draws", 1) > 1 else ""
        lines.append(f"| {r['name']} | {r['model']} | {r['minutes']} min{trained} | {r['steps']} "
                     f"({r['epochs']} epochs) | {r['samples']}{draws} ({r['sample_steps'] or 'T'}, "
                     f"{r['sample_s']:.0f} s"
                     f"{_guidance(r)}) | "
                     f"{metrics} | {published} | {_run(r)} |")
    runs = sorted({(r.get("command", "?"), r.get("machine", "?")) for r in rows})
    lines.append("\nFractions in percent; MMDs squared (graph datasets use their protocol: SPECTRE for comm20, "
                 "GDSS for community_small / ego_small). Runs:\n")
    lines += [f"* `{command}` — {machine}" for command, machine in runs]
    return "\n".join(lines) + "\n"


#: The metric each dataset's curve shows (lower is better for MMDs).
CURVE_METRIC = {"qm9": "validity", "comm20": "degree", "community_small": "degree", "ego_small": "degree",
                "planar": "orbit"}  # planar's V.U.N. is still 0 at two CPU hours (docs/performance.md)
FRACTIONS = ("validity", "uniqueness", "novelty", "vun")
CURVES = Path(__file__).resolve().parent.parent / "docs" / "images" / "quality_curves.png"


def plot_curves(rows: list[dict[str, Any]], path: Path = CURVES) -> list[str]:
    """Quality against training minutes, one line per (name, model, sampling steps) with two or more budgets, one
    panel per dataset; written to ``path`` (PNG, atomically). Returns the datasets plotted (none: no file)."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines: dict[tuple[str, str, Any, Any], list[tuple[float, float]]] = {}
    for r in rows:
        dataset = dataset_of(r["name"])
        metric = CURVE_METRIC.get(dataset)
        if "error" in r or metric not in r.get("metrics", {}):
            continue
        lines.setdefault((r["name"], r["model"], r.get("sample_steps"), r.get("guidance"), _threads(r)), []).append(
            (float(r["minutes"]), r["metrics"][metric]))
    lines = {k: sorted(v) for k, v in lines.items() if len(v) >= 2}
    datasets = sorted({dataset_of(k[0]) for k in lines})
    if not datasets:
        return []
    # Legends go below the panels (the labels are long): the figure grows with the longest legend.
    most = max(sum(dataset_of(k[0]) == d for k in lines) for d in datasets)
    fig, axes = plt.subplots(1, len(datasets), figsize=(7 * len(datasets), 4 + 0.22 * most), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        metric = CURVE_METRIC[dataset]
        for (name, model, steps, scale, threads), points in lines.items():
            if dataset_of(name) == dataset:
                xs, ys = zip(*points)
                ax.plot(xs, [100 * y if metric in FRACTIONS else y for y in ys], marker="o",
                        label=f"{name}: {model}, {steps or 'T'} steps" + _guidance({"guidance": scale})
                        + (f", {threads}" if threads else ""))
        ax.set(xlabel="training minutes", ylabel=f"{metric} (%)" if metric in FRACTIONS else f"{metric} MMD²",
               title=dataset)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    fig.tight_layout()
    report.save_figure(fig, path)
    return datasets


def _value(metric: str, value: float) -> str:
    """A fraction in percent, anything else (MMDs, errors) with four significant digits."""
    if metric in ("validity", "relaxed_validity", "uniqueness", "novelty", "valid", "unique", "novel",
                  "unique_novel", "vun"):
        return f"{100 * value:.1f}"
    return f"{value:.4g}"


def _guidance(row: dict[str, Any]) -> str:
    return f", guidance {row['guidance']:g}" if row.get("guidance") is not None else ""


def _threads(row: dict[str, Any]) -> str | None:
    """``"1 thread"`` / ``"2 threads"`` from the row's machine description (None when it does not say)."""
    import re

    found = re.search(r"\b(\d+) threads?\b", str(row.get("machine", "")))
    return f"{found.group(1)} thread{'s' * (found.group(1) != '1')}" if found else None


def _run(row: dict[str, Any]) -> str:
    threads = _threads(row)
    return str(row.get("date", "?")) + (f", {threads}" if threads else "")


#: Options that say where results go, not what is measured: left out of the command shown with each row.
_WHERE_OPTIONS = ("--results", "--doc", "--output-dir", "--curves")


def rerun_command(args: list[str]) -> str:
    """The command that reproduces a row: ``args`` without the output locations, with the thread setting."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in _WHERE_OPTIONS:
            skip = True
            continue
        if not arg.startswith(tuple(f"{o}=" for o in _WHERE_OPTIONS)):
            kept.append(arg)
    threads = os.environ.get("OMP_NUM_THREADS")
    return (f"OMP_NUM_THREADS={threads} " if threads else "") + " ".join(["python -m benchmarks.quality", *kept])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget per dataset")
    parser.add_argument("--datasets", nargs="+", default=["qm9", "comm20", "community_small", "ego_small"],
                        help="dataset names (DiGress, small model) and gdss_<dataset> (GDSS's published config)")
    parser.add_argument("--gdss", action="store_true", help="also GDSS on QM9 (same as adding gdss_qm9 to --datasets)")
    parser.add_argument("--samples", type=int, default=None, help="graphs to sample (default: 1000 molecules, "
                        "the test-split size for graphs)")
    parser.add_argument("--sample-steps", type=int, nargs="+", default=[None],
                        help="reverse steps, one row each (default: the model's, T for DiGress)")
    parser.add_argument("--recipe", default="small", choices=sorted(RECIPES),
                        help="model and optimiser settings of DiGress and DeFoG rows (see RECIPES)")
    parser.add_argument("--published-sizes", action="store_true", help="same as --recipe published")
    parser.add_argument("--floor", action="store_true",
                        help="also evaluate training graphs against the test split (the floor of each metric)")
    parser.add_argument("--floor-only", action="store_true", help="only the floor rows, no training")
    parser.add_argument("--floor-draws", type=int, default=1,
                        help="average the floor over this many random draws of training graphs")
    parser.add_argument("--milestones", type=float, nargs="+", default=[],
                        help="also evaluate the weights after these many minutes of the run (a quality curve)")
    parser.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"],
                        help="Lightning training precision")
    parser.add_argument("--conditions", nargs="+", default=None,
                        help="train conditional models on these properties (e.g. qed logp); targets are drawn from "
                             "the test split, the error to them is reported per guidance scale")
    parser.add_argument("--guidance", type=float, nargs="+", default=[0.0, 1.0, 2.0],
                        help="classifier-free guidance scales sampled with --conditions (0: the unconditional "
                             "baseline)")
    parser.add_argument("--sample-draws", type=int, default=1,
                        help="sample this many sets per row (seeds 0..K-1) and report their mean and spread")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="train nothing: evaluate the <minutes>min.ckpt checkpoints an earlier run of the same "
                             "command saved in --output-dir")
    parser.add_argument("--output-dir", default="outputs/quality")
    parser.add_argument("--doc", default=str(Path(__file__).resolve().parent.parent / "docs" / "performance.md"))
    parser.add_argument("--curves", default=str(CURVES), help="PNG of quality against training minutes")
    parser.add_argument("--results", default=str(RESULTS),
                        help="JSON file the rows are merged into (separate files let two runs go in parallel)")
    args = parser.parse_args(argv)
    setups.ensure_data_env()
    names = list(args.datasets) + (["gdss_qm9"] if args.gdss else [])
    command = rerun_command(argv if argv is not None else sys.argv[1:])
    m = report.machine_info("cpu")
    threads = torch.get_num_threads()
    machine = f"{m['cpu']}, {m['cores']} cores, {threads} thread{'s' * (threads > 1)}, torch {m['torch']}"
    rows = []
    for name in names:
        dataset = dataset_of(name)
        samples = args.samples or (1000 if dataset == "qm9" else len(setups.load(dataset).split("test")))
        what = f"the {args.minutes:g}-minute checkpoints" if args.evaluate_only else f"training {args.minutes} min"
        print(f"[{name}] {what}, then {samples} samples x {args.sample_draws}", flush=True)
        try:
            wants_floor = (args.floor or args.floor_only) and not name.startswith(("gdss_", "flow_"))
            new = [train_test_floor(dataset, samples, draws=args.floor_draws)] if wants_floor else []
            if not args.floor_only:
                recipe = "published" if args.published_sizes else args.recipe
                new += train_and_evaluate(name, args.minutes, samples, args.sample_steps, Path(args.output_dir),
                                          recipe, args.milestones, precision=args.precision,
                                          conditions=args.conditions, guidance=args.guidance,
                                          draws=args.sample_draws, evaluate_only=args.evaluate_only)
        except Exception as exc:  # noqa: BLE001 — report and go on with the other datasets
            new = [{"name": name, "minutes": args.minutes, "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}]
        for row in new:
            row.update(command=command, machine=machine, date=report.machine_info("cpu")["date"])
            print(json.dumps(row), flush=True)
        rows.extend(new)
        # Saved after every dataset: a long run cut short keeps what it measured.
        results = Path(args.results)
        previous = json.loads(results.read_text()) if results.exists() else []
        merged = merge_rows(previous, new)
        report.atomic_write_text(results, json.dumps(merged, indent=1))
        report.update_document(Path(args.doc), report.QUALITY_START, report.QUALITY_END, render(merged))
        if plot_curves(merged, Path(args.curves)):
            print(f"wrote {args.curves}")
    print(f"wrote {args.doc} and {args.results}")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
