"""Sample quality under a wall-clock training budget on this machine (not run by CI or ``benchmarks run``).

    python -m benchmarks.quality --minutes 30                 # qm9, comm20, community_small, ego_small
    python -m benchmarks.quality --minutes 120 --gdss         # + GDSS on QM9 (configs/sde/qm9.yaml)
    python -m benchmarks.quality --datasets gdss_qm9          # GDSS alone
    python -m benchmarks.quality --minutes 1 --datasets comm20 --samples 20    # smoke run
    python -m benchmarks.quality --datasets qm9 flow_qm9 --sample-steps 50 500  # DiGress vs DeFoG, 50 and 500 steps

Each dataset is trained through graphdiff's real training code — ``graphdiff.lit.DiscreteDiffusionModel`` (or
``ScoreSDEModel`` for ``gdss_<dataset>``, ``DiscreteFlowModel`` for ``flow_<dataset>``) and a Lightning
``Trainer(max_time=...)`` with the EMA callback — then
sampled and evaluated with ``graphdiff.evaluation.evaluate_generated`` against the test split. The results are
written between the ``quality`` markers of ``docs/performance.md`` next to published numbers (which come from
days of GPU training: a CPU budget is expected to fall short; the table shows how far).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks import report, setups

#: Published numbers to print next to ours (fractions in percent, MMDs squared).
PUBLISHED: dict[str, dict[str, str]] = {
    "qm9": {"validity": "99.0 (DiGress)", "uniqueness": "96.2 (DiGress)"},
    "flow_qm9": {"validity": "99.3 / 98.9 (DeFoG, 500 / 50 steps)", "uniqueness": "96.3 / 96.2"},
    "gdss_qm9": {"validity": "95.7 (GDSS, without correction)"},
    # GDSS Table 1 (MMD², GDSS protocol), the model the graph benchmarks are usually compared with.
    "ego_small": {"degree": "0.021", "clustering": "0.024", "orbit": "0.007 (GDSS)"},
    "community_small": {"degree": "0.045", "clustering": "0.086", "orbit": "0.007 (GDSS)"},
}

#: Model sizes that learn something within minutes on a CPU (the published ones need a GPU for days);
#: ``--published-sizes`` uses DiGress's presets instead.
SMALL_MODEL = {
    "n_layers": 4,
    "hidden_mlp_dims": {"X": 64, "E": 32, "y": 64},
    "hidden_dims": {"dx": 64, "de": 32, "dy": 32, "n_head": 4, "dim_ffX": 128, "dim_ffE": 64, "dim_ffy": 128},
    "extra_features": "all",
    "dropout": 0.0,
}
PUBLISHED_MODEL = {
    "qm9": {"preset": "qm9", "hidden_dims": {"dim_ffy": 128}},
}
T_OF = {"qm9": 500}
#: DeFoG's sampling settings of each dataset (configs/flow/<dataset>.yaml), the steps set per run.
FLOW_SAMPLER = {"qm9": {"time_distortion": "polydec"}, "comm20": {}}
BATCH_OF = {"qm9": 512, "comm20": 32, "community_small": 32, "ego_small": 32}
CONFIGS = Path(__file__).resolve().parent.parent / "configs"
#: Periodic/test evaluation settings of the shipped configs: the benchmark samples and evaluates by itself.
SDE_EVAL_ARGS = {"eval_every_n_epochs", "test_samples", "sample_batch_size"}
MOLECULE_METRICS = ["validity", "relaxed_validity", "uniqueness", "novelty"]


def build(name: str, published_sizes: bool = False, sample_steps: int | None = None) -> tuple[Any, Any, str]:
    """The data module, the Lightning model and a label of its size for a quality row named ``name``.

    ``gdss_<dataset>`` takes GDSS's published training and sampler settings from ``configs/sde/<dataset>.yaml``;
    other names train DiGress's discrete model, small (``SMALL_MODEL``) unless ``published_sizes``.
    """
    from graphdiff.datasets.datamodule import GraphDataModule

    dataset = name.removeprefix("gdss_").removeprefix("flow_")
    if name.startswith("flow_"):
        from graphdiff.lit import DiscreteFlowModel

        dm = GraphDataModule(dataset, batch_size=BATCH_OF.get(dataset, 32))
        model = DiscreteFlowModel(dataset_info=dm.dataset_info, model={**SMALL_MODEL, "extra_features": "rrwp"},
                                  lr=1e-3, sampler=FLOW_SAMPLER.get(dataset, {}))
        return dm, model, "DeFoG, small (4 layers, dx 64, rrwp)"
    if name.startswith("gdss_"):
        from graphdiff.lit import ScoreSDEModel

        config = yaml.safe_load((CONFIGS / "sde" / f"{dataset}.yaml").read_text())
        dm = GraphDataModule(dataset, batch_size=config["data"]["batch_size"])
        init = {k: v for k, v in config["model"]["init_args"].items() if k not in SDE_EVAL_ARGS}
        return dm, ScoreSDEModel(dataset_info=dm.dataset_info, **init), "GDSS published"
    from graphdiff.lit import DiscreteDiffusionModel

    dm = GraphDataModule(dataset, batch_size=BATCH_OF.get(dataset, 32))
    cfg = PUBLISHED_MODEL.get(dataset, {"preset": "digress"}) if published_sizes else SMALL_MODEL
    model = DiscreteDiffusionModel(dataset_info=dm.dataset_info, T=T_OF.get(dataset, 500), model=dict(cfg),
                                   lr=2e-4 if published_sizes else 1e-3, sample_steps=sample_steps)
    return dm, model, "published" if published_sizes else "small (4 layers, dx 64)"


def train_and_evaluate(name: str, minutes: float, samples: int, sample_steps: list[int | None], out_dir: Path,
                       published_sizes: bool, seed: int = 0) -> list[dict[str, Any]]:
    """Train ``name`` for ``minutes``, then sample and evaluate with each number of ``sample_steps``: one row each."""
    import pytorch_lightning as pl

    from graphdiff.callbacks import EMA
    from graphdiff.evaluation import evaluate_generated

    pl.seed_everything(seed, workers=True)
    dm, model, size = build(name, published_sizes)
    trainer = pl.Trainer(
        max_time={"minutes": minutes}, max_epochs=-1, accelerator="cpu", devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, gradient_clip_val=1.0,
        default_root_dir=str(out_dir / name), callbacks=[EMA(decay=0.999)],
    )
    t0 = time.perf_counter()
    trainer.fit(model, dm)
    train_s = time.perf_counter() - t0
    trainer.save_checkpoint(out_dir / name / "last.ckpt")  # for `graphdiff sample / search` on the trained model
    rows = []
    for steps in sample_steps:
        t0 = time.perf_counter()
        graphs = model.generate(samples, steps=steps, seed=seed)
        sample_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        metrics = evaluate_generated(graphs, model.info, dm.data, reference_split="test",
                                     metrics=MOLECULE_METRICS if model.info.kind == "molecule" else None)
        eval_s = time.perf_counter() - t0
        rows.append({"name": name, "model": size, "minutes": minutes, "train_s": train_s,
                     "steps": trainer.global_step, "epochs": trainer.current_epoch, "samples": len(graphs),
                     "sample_steps": steps, "sample_s": sample_s, "eval_s": eval_s,
                     "metrics": {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}})
    return rows


#: Every quality row ever measured here, keyed by dataset, model and budget, so that runs with different budgets
#: (or datasets) made by separate commands end up in one table; a rerun replaces its own rows.
RESULTS = Path(__file__).resolve().parent / "results" / "quality.json"


def merge_rows(previous: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``previous`` with the rows of ``new`` replacing those of the same dataset, model and budget."""
    def key(row: dict[str, Any]) -> tuple[Any, ...]:
        return row["name"], row.get("model"), float(row["minutes"]), row.get("sample_steps")

    merged = {key(r): r for r in previous}
    merged.update({key(r): r for r in new})
    return sorted(merged.values(), key=lambda r: (r["name"], float(r["minutes"]), r.get("sample_steps") or 0))


def render(rows: list[dict[str, Any]]) -> str:
    lines = ["| dataset | model | budget | optimiser steps | samples (steps) | metrics | published | run |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | – | {r['minutes']} min | – | – | failed: {r['error']} | – | {_run(r)} |")
            continue
        metrics = ", ".join(f"{k} {100 * v:.1f}" if k in ("validity", "relaxed_validity", "uniqueness", "novelty",
                                                         "valid", "unique", "novel", "unique_novel", "vun")
                            else f"{k} {v:.4g}" for k, v in r["metrics"].items())
        published = ", ".join(f"{k} {v}" for k, v in PUBLISHED.get(r["name"], {}).items()) or "–"
        lines.append(f"| {r['name']} | {r['model']} | {r['minutes']} min ({r['train_s']:.0f} s) | {r['steps']} "
                     f"({r['epochs']} epochs) | {r['samples']} ({r['sample_steps'] or 'T'}, {r['sample_s']:.0f} s) | "
                     f"{metrics} | {published} | {_run(r)} |")
    runs = sorted({(r.get("command", "?"), r.get("machine", "?")) for r in rows})
    lines.append("\nFractions in percent; MMDs squared (graph datasets use their protocol: SPECTRE for comm20, "
                 "GDSS for community_small / ego_small). Runs:\n")
    lines += [f"* `{command}` — {machine}" for command, machine in runs]
    return "\n".join(lines) + "\n"


def _run(row: dict[str, Any]) -> str:
    return str(row.get("date", "?"))


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
    parser.add_argument("--published-sizes", action="store_true", help="DiGress's model sizes instead of small")
    parser.add_argument("--output-dir", default="outputs/quality")
    parser.add_argument("--doc", default=str(Path(__file__).resolve().parent.parent / "docs" / "performance.md"))
    parser.add_argument("--results", default=str(RESULTS),
                        help="JSON file the rows are merged into (separate files let two runs go in parallel)")
    args = parser.parse_args(argv)
    setups.ensure_data_env()
    names = list(args.datasets) + (["gdss_qm9"] if args.gdss else [])
    command = "python -m benchmarks.quality " + " ".join(argv if argv is not None else sys.argv[1:])
    m = report.machine_info("cpu")
    machine = f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}"
    rows = []
    for name in names:
        dataset = name.removeprefix("gdss_").removeprefix("flow_")
        samples = args.samples or (1000 if dataset == "qm9" else len(setups.load(dataset).split("test")))
        print(f"[{name}] training {args.minutes} min, then {samples} samples", flush=True)
        try:
            new = train_and_evaluate(name, args.minutes, samples, args.sample_steps, Path(args.output_dir),
                                     args.published_sizes)
        except Exception as exc:  # noqa: BLE001 — report and go on with the other datasets
            new = [{"name": name, "minutes": args.minutes, "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}]
        for row in new:
            row.update(command=command.strip(), machine=machine, date=report.machine_info("cpu")["date"])
            print(json.dumps(row), flush=True)
        rows.extend(new)
        # Saved after every dataset: a long run cut short keeps what it measured.
        results = Path(args.results)
        previous = json.loads(results.read_text()) if results.exists() else []
        merged = merge_rows(previous, new)
        report.atomic_write_text(results, json.dumps(merged, indent=1))
        report.update_document(Path(args.doc), report.QUALITY_START, report.QUALITY_END, render(merged))
    print(f"wrote {args.doc} and {args.results}")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
