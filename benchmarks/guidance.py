"""Conditional generation at a CPU budget: the guidance-scale trade-off of both kinds of guidance.

    # DiGress's regressor guidance: train a regressor of logP on noisy QM9 graphs for 25 minutes, then steer an
    # unconditional QM9 checkpoint towards test-split logP values at several lambda (0 = unguided: the baseline)
    python -m benchmarks.guidance --generator CKPT --property logp --minutes 25 --scales 0 30 100 300 1000
    # an oracle of QM9's DFT properties (clean graphs) and its test MAE: the floor of any MAE it scores
    python -m benchmarks.guidance --oracle mu homo --minutes 20
    # only redraw the table and the plot (classifier-free rows come from `python -m benchmarks.quality --conditions`)
    python -m benchmarks.guidance --report-only

Every row samples ``--samples`` molecules for targets drawn from the test split's values of the property and reports
validity, uniqueness and the exact (RDKit) mean absolute error to the targets. The table and the trade-off plot
(``docs/images/guidance_tradeoff.png``) also show the classifier-free guidance rows of
``benchmarks/results/quality.json`` (a conditional model at guidance scales ``s``; ``s = 0`` is its unconditional
prediction). DiGress's published regressor-guidance numbers (QM9 mu and HOMO) are printed next to them.
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

from benchmarks import report, setups
from benchmarks.quality import RESULTS as QUALITY_RESULTS
from benchmarks.quality import SMALL_MODEL, condition_targets

RESULTS = Path(__file__).resolve().parent / "results" / "guidance.json"
PLOT = Path(__file__).resolve().parent.parent / "docs" / "images" / "guidance_tradeoff.png"
START, END = "<!-- guidance:start -->", "<!-- guidance:end -->"
#: A regressor that learns within minutes on a CPU (DiGress's is 5 layers at dx 256, configs/guidance/*).
REGRESSOR_MODEL = {**SMALL_MODEL, "extra_features": "none", "molecular": False, "dropout": 0.0}
#: What DiGress published for its regressor guidance, and why it is not in this table.
PUBLISHED = ("DiGress (Vignac et al. 2023) reports regressor guidance on QM9's mu and HOMO, scored by a property "
             "model; those targets need the QM9 oracle (configs/guidance/qm9_oracle.yaml) and DiGress's full-size "
             "regressor, which were not trained on this machine, so their rows are not run here")


def _fit_for(model: Any, dm: Any, minutes: float, checkpoint: Path) -> tuple[pl.Trainer, float]:
    """Train ``model`` for ``minutes`` (clipping 1, no validation), save ``checkpoint``; the trainer and seconds."""
    trainer = pl.Trainer(max_time={"minutes": minutes}, max_epochs=-1, accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=0, num_sanity_val_steps=0, gradient_clip_val=1.0,
                         default_root_dir=str(checkpoint.parent))
    t0 = time.perf_counter()
    trainer.fit(model, dm)
    train_s = time.perf_counter() - t0
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(checkpoint)
    return trainer, train_s


def _clean_test_errors(model: Any, dm: Any, limit: int | None = None) -> list[dict[str, Any]]:
    """Per property of ``model``: its MAE on the clean test graphs (the first ``limit``), that of predicting the
    training mean, and the number of test graphs."""
    test = dm.data.splits["test"][:limit]
    predicted = model.predict(dm.data.graphs.subset(test))  # clean graphs: t = 0
    out = []
    for k, prop in enumerate(model.names):
        truth = dm.data.property_values(prop)[test].float()
        out.append({"test_molecules": int(test.numel()),
                    "clean_test_mae": float((predicted[:, k] - truth).abs().mean()),
                    "mean_predictor_mae": float((truth - model.mean[k]).abs().mean())})
    return out


def train_regressor(prop: str, minutes: float, out: Path, seed: int = 0) -> tuple[Any, dict[str, Any]]:
    """A noisy-graph regressor of ``prop`` on QM9, trained for ``minutes`` with the rate annealed over the budget;
    returns it and a row with its clean-graph test MAE (first 2,000 test molecules)."""
    from graphdiff.datasets.datamodule import GraphDataModule
    from graphdiff.lit import PropertyRegressor

    pl.seed_everything(seed, workers=True)
    dm = GraphDataModule("qm9", batch_size=256, conditions=[prop])
    model = PropertyRegressor(dm.dataset_info, T=500, model=REGRESSOR_MODEL, lr=2e-3, warmup_steps=100,
                              lr_schedule="cosine")
    trainer, train_s = _fit_for(model, dm, minutes, out / f"regressor_{prop}.ckpt")
    row = {"kind": "regressor", "property": prop, "minutes": minutes, "train_s": train_s,
           "steps": trainer.global_step, **_clean_test_errors(model, dm, limit=2000)[0]}
    return model.eval(), row


ORACLE_MODEL = {**SMALL_MODEL, "extra_features": "all", "molecular": True, "dropout": 0.0}


def train_oracle(props: list[str], minutes: float, out: Path, seed: int = 0) -> list[dict[str, Any]]:
    """An oracle of ``props`` on clean QM9 graphs, trained for ``minutes``; one row per property with its MAE on
    the whole test split (the floor of the MAE it reports for generated molecules)."""
    from graphdiff.datasets.datamodule import GraphDataModule
    from graphdiff.lit import PropertyRegressor

    pl.seed_everything(seed, workers=True)
    dm = GraphDataModule("qm9", batch_size=256, conditions=props)
    model = PropertyRegressor(dm.dataset_info, noisy=False, model=ORACLE_MODEL, lr=2e-3, warmup_steps=100,
                              lr_schedule="cosine")
    trainer, train_s = _fit_for(model, dm, minutes, out / f"oracle_{'_'.join(props)}.ckpt")
    rows = []
    for prop, errors in zip(props, _clean_test_errors(model, dm), strict=True):
        rows.append({"kind": "oracle", "property": prop, "minutes": minutes, "train_s": train_s,
                     "steps": trainer.global_step, **errors,
                     "model": "small (4 layers, dx 64, extra + molecular features)"})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def guide(generator: Any, regressor: Any, prop: str, scales: list[float], samples: int, steps: int,
          seed: int = 0) -> list[dict[str, Any]]:
    """One row per ``lambda`` of ``scales``: ``samples`` molecules steered towards test-split values of ``prop``."""
    from graphdiff.chem import canonical_smiles, graphs_to_mols
    from graphdiff.datasets.datamodule import GraphDataModule
    from graphdiff.evaluation import condition_errors, evaluate_generated

    dm = GraphDataModule("qm9", batch_size=256, conditions=[prop])
    targets = condition_targets(dm, [prop], samples, seed)
    rows = []
    for lam in scales:
        t0 = time.perf_counter()
        graphs = generator.generate(samples, steps=steps, seed=seed, condition=targets, regressor=regressor,
                                    regressor_scale=lam)
        sample_s = time.perf_counter() - t0
        metrics = evaluate_generated(graphs, generator.info, dm.data, reference_split="test",
                                     metrics=["validity", "uniqueness"])
        smiles = [canonical_smiles(m) if m is not None else None for m in graphs_to_mols(graphs, generator.info)]
        errors = condition_errors("molecule", smiles, [{prop: float(v)} for v in targets[:, 0]])
        rows.append({"kind": "regressor guidance", "property": prop, "scale": lam, "samples": samples,
                     "sample_steps": steps, "sample_s": sample_s, "validity": float(metrics["validity"]),
                     "uniqueness": float(metrics["uniqueness"]), "mae": errors[f"mae/{prop}"],
                     "scored": errors[f"scored/{prop}"]})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def classifier_free_rows(path: Path = QUALITY_RESULTS) -> list[dict[str, Any]]:
    """The conditional rows of the quality benchmark, one per (model, budget, property, guidance scale)."""
    if not path.exists():
        return []
    out = []
    for r in json.loads(path.read_text()):
        if "guidance" not in r or "error" in r:
            continue
        for key, value in r["metrics"].items():
            if key.startswith("mae/"):
                out.append({"kind": "classifier-free guidance", "property": key[4:], "scale": r["guidance"],
                            "model": r["model"], "minutes": r["minutes"], "samples": r["samples"],
                            "sample_steps": r["sample_steps"], "validity": r["metrics"].get("validity"),
                            "uniqueness": r["metrics"].get("uniqueness"), "mae": value,
                            "command": r.get("command"), "machine": r.get("machine")})
    return out


def render(rows: list[dict[str, Any]]) -> str:
    lines = ["| guidance | property | scale | model | samples (steps) | validity | uniqueness | MAE to target |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(rows, key=lambda r: (r["kind"], r["property"], r.get("model", ""), r.get("scale", 0))):
        if r["kind"] in ("regressor", "oracle"):
            continue
        mae = "–" if r["mae"] is None else f"{r['mae']:.3f}"
        lines.append(f"| {r['kind']} | {r['property']} | {r['scale']:g} | {r.get('model', '–')} | {r['samples']} "
                     f"({r['sample_steps']}) | {_percent(r['validity'])} | {_percent(r['uniqueness'])} | {mae} |")
    for r in rows:
        if r["kind"] in ("regressor", "oracle"):
            what = "Guidance regressor (noisy graphs)" if r["kind"] == "regressor" else "Oracle (clean graphs)"
            lines.append(f"\n{what} of {r['property']}: {r['model']}, {r['minutes']:g} min ({r['steps']} steps); "
                         f"clean test MAE {r['clean_test_mae']:.3f} (predicting the training mean: "
                         f"{r['mean_predictor_mae']:.3f}).")
    lines.append(f"\n{PUBLISHED}.\n")
    runs = sorted({(r.get("command") or "?", r.get("machine") or "?") for r in rows})
    lines += [f"* `{command}` — {machine}" for command, machine in runs]
    return "\n".join(lines) + "\n"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def plot(rows: list[dict[str, Any]], path: Path = PLOT) -> bool:
    """MAE to the target and validity against the guidance scale, one panel per kind of guidance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in ("classifier-free guidance", "regressor guidance") if any(r["kind"] == k for r in rows)]
    if not kinds:
        return False
    fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        twin = ax.twinx()
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in rows:
            if r["kind"] == kind and r["mae"] is not None:
                groups.setdefault((r["property"], r.get("model", "")), []).append(r)
        for (prop, _), group in groups.items():
            group.sort(key=lambda r: r["scale"])
            xs = [r["scale"] for r in group]
            ax.plot(xs, [r["mae"] for r in group], marker="o", label=f"{prop} MAE")
            twin.plot(xs, [100 * r["validity"] for r in group], marker="s", linestyle="--", alpha=0.6,
                      label=f"{prop} validity")
        if kind == "regressor guidance" and any(r["scale"] > 0 for g in groups.values() for r in g):
            ax.set_xscale("symlog", linthresh=10)
        ax.set(xlabel="lambda" if kind == "regressor guidance" else "guidance scale s", ylabel="MAE to target",
               title=kind)
        twin.set_ylabel("validity (%)")
        ax.grid(alpha=0.3)
        handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        ax.legend(handles, [h.get_label() for h in handles], fontsize=7)
    fig.tight_layout()
    report.save_figure(fig, path)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.guidance", description=__doc__.splitlines()[0])
    parser.add_argument("--generator", help="an unconditional QM9 checkpoint of the discrete family")
    parser.add_argument("--property", default="logp", help="an RDKit-computable property (logp, qed, mw, ...)")
    parser.add_argument("--oracle", nargs="+", default=None, metavar="PROPERTY",
                        help="train an oracle of these QM9 properties instead and report its test MAE")
    parser.add_argument("--minutes", type=float, default=25.0, help="training budget of the regressor")
    parser.add_argument("--scales", type=float, nargs="+", default=[0, 30, 100, 300, 1000])
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--sample-steps", type=int, default=100)
    parser.add_argument("--output-dir", default="outputs/guidance")
    parser.add_argument("--report-only", action="store_true", help="redraw the table and plot from the results")
    parser.add_argument("--doc", default=str(Path(__file__).resolve().parent.parent / "docs" / "performance.md"))
    args = parser.parse_args(argv)
    setups.ensure_data_env()
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    rows = previous
    if not args.report_only:
        from graphdiff.api import load_model

        if not args.generator and not args.oracle:
            parser.error("--generator CKPT or --oracle PROPERTY ... is required (or --report-only)")
        threads = torch.get_num_threads()
        m = report.machine_info("cpu")
        machine = f"{m['cpu']}, {m['cores']} cores, {threads} thread{'s' * (threads > 1)}, torch {m['torch']}"
        env = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""
        given = list(argv if argv is not None else sys.argv[1:])
        kept = [a for i, a in enumerate(given)  # without the output locations
                if a not in ("--doc", "--output-dir") and (i == 0 or given[i - 1] not in ("--doc", "--output-dir"))]
        command = env + "python -m benchmarks.guidance " + " ".join(kept)
        if args.oracle:
            new = train_oracle(args.oracle, args.minutes, Path(args.output_dir))
            replaced = {("oracle", p) for p in args.oracle}
        else:
            generator = load_model(args.generator)
            regressor, reg_row = train_regressor(args.property, args.minutes, Path(args.output_dir))
            reg_row["model"] = "small (4 layers, dx 64, no extra features)"
            new = [reg_row] + guide(generator, regressor, args.property, args.scales, args.samples,
                                    args.sample_steps)
            replaced = {(k, args.property) for k in ("regressor", "regressor guidance")}
        for r in new:
            r.update(command=command, machine=machine, date=m["date"],
                     model=r.get("model") or f"{Path(args.generator).name} + regressor")
        rows = [r for r in previous if (r["kind"], r["property"]) not in replaced] + new
        report.atomic_write_text(RESULTS, json.dumps(rows, indent=1))
    everything = rows + classifier_free_rows()
    report.update_document(Path(args.doc), START, END, render(everything))
    if plot(everything):
        print(f"wrote {PLOT}")
    print(f"wrote {args.doc} and {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
