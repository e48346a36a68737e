"""``python -m benchmarks run [--quick] [--only NAME ...]``: measure on this machine, update docs/performance.md.

The measurements that report peak memory (training, GDSS) run in a fresh ``python -m benchmarks.measure``
subprocess each, so their RSS high-water marks start clean; the others run in the runner's process. Results are
merged into ``benchmarks/results/latest.json`` (so ``--only`` refreshes some sections and keeps the others) and
rendered between the results markers of ``docs/performance.md``; the rest of that file is hand-written and kept.
``python -m benchmarks render`` rewrites the section from the saved results without measuring.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks import report

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
DOC = ROOT / "docs" / "performance.md"

NAMES = ("peak", "equivalence", "training", "baseline", "flops", "precision", "compile", "sampling", "allocator",
         "gdss", "pard", "metrics", "profile")


def plan(quick: bool, full_chains: bool, device: str) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """The measurements of each benchmark: ``{name: [(function, kwargs), ...]}``."""
    d = {"device": device}
    if quick:
        # Reduced batches so the whole run fits in a few minutes on a small CPU; per-graph numbers are comparable,
        # per-step ones are not (see docs/performance.md).
        train = [("planar", 2), ("qm9", 32)]
        steps = {"steps": 1, "warmup": 1}
        return {
            "peak": [("matmul_peak", {"device": device})],
            "equivalence": [("equivalence", {"setup": "planar", "batch_size": 1}),
                            ("equivalence", {"setup": "qm9", "batch_size": 8})],
            "training": [("training", {"setup": s, "batch_size": b, **steps, **d}) for s, b in train],
            "baseline": [("training", {"setup": s, "batch_size": b, "impl": "baseline", **steps, **d})
                         for s, b in train],
            "flops": [("flops", {"setup": s, "batch_size": b, **d}) for s, b in train],
            "precision": [("precision", {"setup": s, "batch_size": b, "rounds": 1, **d}) for s, b in train],
            "compile": [("compile_step", {"setup": s, "batch_size": b, "rounds": 1, **d}) for s, b in train],
            "allocator": [("allocator", {"setup": s, "num_graphs": n, "steps": 2, "rounds": 1, **d})
                          for s, n in (("planar", 2), ("qm9", 32))],
            "sampling": [("sampling", {"setup": setup, "num_graphs": n, "chains": chains, "measure_steps": 2,
                                       "family": family, **d})
                         for setup, n, chains in (("planar", 2, [1000, 100, 50]), ("qm9", 32, [500, 100, 50]))
                         for family in ("discrete", "flow")],
            "gdss": [("gdss", {"setup": "gdss_qm9", "steps": 1, "warmup": 1, "num_samples": 256,
                               "sample_steps": [1000, 100], "measure_steps": 3, **d}),
                     ("gdss", {"setup": "gdss_community_small", "steps": 1, "warmup": 1, "num_samples": 128,
                               "sample_steps": [1000, 100], "measure_steps": 3, **d})],
            "pard": [("pard", {"setup": s, "batch_size": b, "num_graphs": b, "steps": 1, "warmup": 1,
                               "sample_steps": k, **d}) for s, b, k in (("qm9", 32, 2), ("planar", 2, 1))],
            "metrics": [("metrics_planar", {}), ("metrics_qm9", {"num_samples": 1000, "num_reference": 1000})],
            "profile": [("profile", {"setup": "planar", "batch_size": 2, **d})],
        }
    train = [("planar", 16), ("planar", 32), ("qm9", 256), ("qm9", 1024)]
    steps = {"steps": 5, "warmup": 2}
    return {
        "peak": [("matmul_peak", {"device": device, "size": 4096 if device != "cpu" else 2048})],
        "equivalence": [("equivalence", {"setup": "planar", "batch_size": 4}),
                        ("equivalence", {"setup": "qm9", "batch_size": 64})],
        "training": [("training", {"setup": s, "batch_size": b, **steps, **d}) for s, b in train],
        "baseline": [("training", {"setup": s, "batch_size": b, "impl": "baseline", "steps": 3, "warmup": 1, **d})
                     for s, b in (("planar", 16), ("qm9", 256))],
        "flops": [("flops", {"setup": s, "batch_size": b, **d}) for s, b in train]
        + [("flops", {"setup": s, "batch_size": b, "impl": "baseline", **d})
           for s, b in (("planar", 16), ("qm9", 256))],
        "precision": [("precision", {"setup": s, "batch_size": b, **d}) for s, b in (("planar", 16), ("qm9", 256))],
        "compile": [("compile_step", {"setup": s, "batch_size": b, **d}) for s, b in (("planar", 16), ("qm9", 256))],
        "allocator": [("allocator", {"setup": s, "num_graphs": n, **d}) for s, n in (("planar", 16), ("qm9", 256))],
        "sampling": [("sampling", {"setup": setup, "num_graphs": n, "chains": chains, "family": family,
                                   "run": chains if full_chains else chains[1:], **d})
                     for setup, n, chains in (("planar", 16, [1000, 100, 50]), ("qm9", 256, [500, 100, 50]))
                     for family in ("discrete", "flow")],
        "gdss": [("gdss", {"setup": "gdss_qm9", "num_samples": 256, "sample_steps": [1000, 100], **d}),
                 ("gdss", {"setup": "gdss_community_small", "num_samples": 128, "sample_steps": [1000, 100], **d})],
        # PARD next to DiGress, DeFoG and GDSS in one process, at the batches of the rows above (QM9 256, sampling
        # planar 16) but for planar training: PARD's shipped planar config trains batched sequential (one 64-node
        # graph per block, ~21 blocks per graph), ~6 GB of activations per graph, so its published batch 6 on a GPU
        # and 2 on a CPU (12 GB peak RSS).
        "pard": [("pard", {"setup": s, "batch_size": b, "num_graphs": n, "steps": 3, "warmup": 1, "sample_steps": 2,
                           **d}) for s, b, n in (("qm9", 256, 256), ("planar", 6 if device != "cpu" else 2, 16))],
        "metrics": [("metrics_planar", {}), ("metrics_qm9", {"num_samples": 10000})],
        "profile": [("profile", {"setup": "planar", "batch_size": 16, **d})],
    }


#: Measurements that report peak memory run in a fresh interpreter; the others run in the runner's process
#: (starting an interpreter and importing torch costs several seconds, a lot on a small or busy CPU). The compile
#: measurement does too, so that no graph compiled before (in dynamo's caches) shortens its compile time.
FRESH_PROCESS = {"training", "gdss", "compile_step", "pard"}


def call(function: str, kwargs: dict[str, Any], timeout: float | None) -> dict[str, Any]:
    """Run one measurement (in a fresh interpreter where it measures memory) and return its JSON result."""
    if function not in FRESH_PROCESS:
        from benchmarks import measure

        t0 = time.perf_counter()
        result = json.loads(json.dumps(measure.FUNCTIONS[function](**kwargs)))
        print(f"  {function} {json.dumps(kwargs)} -> {time.perf_counter() - t0:.0f} s (in process)", flush=True)
        return result
    cmd = [sys.executable, "-m", "benchmarks.measure", function, json.dumps(kwargs)]
    env = dict(os.environ)
    env.setdefault("PYTHONWARNINGS", "ignore")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    marker = "@@RESULT@@"
    if proc.returncode != 0 or marker not in proc.stdout:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        raise RuntimeError(f"{function}({kwargs}) failed (exit {proc.returncode}):\n" + "\n".join(tail))
    result = json.loads(proc.stdout.rsplit(marker, 1)[1].strip().splitlines()[0])
    print(f"  {function} {json.dumps(kwargs)} -> {wall:.0f} s", flush=True)
    return result


def run(args: argparse.Namespace) -> int:
    selected = args.only or [n for n in NAMES]
    unknown = [n for n in selected if n not in NAMES]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {', '.join(NAMES)}", file=sys.stderr)
        return 2
    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    todo = plan(args.quick, args.full_chains, device)
    results: dict[str, Any] = {}
    if RESULTS.exists() and args.only:
        results = json.loads(RESULTS.read_text())
    run_id = uuid.uuid4().hex[:8]
    command = "python -m benchmarks run" + (" --quick" if args.quick else "") + (
        " --only " + " ".join(args.only) if args.only else "") + (" --full-chains" if args.full_chains else "") + (
        f" --device {args.device}" if args.device != "auto" else "")
    meta = {"run_id": run_id, "command": command, "quick": args.quick, "note": args.note,
            "machine": report.machine_info(device)}
    results["_meta"] = meta
    results.setdefault("_runs", {})[run_id] = meta
    failures = []
    t_start = time.perf_counter()
    for name in NAMES:
        if name not in selected:
            continue
        print(f"[{name}]", flush=True)
        values = []
        try:
            for function, kwargs in todo[name]:
                values.append(call(function, kwargs, args.timeout))
        except Exception as exc:  # noqa: BLE001 — record the failure, go on with the other benchmarks
            failures.append(f"{name}: {exc}")
            print(f"  FAILED: {exc}", file=sys.stderr, flush=True)
            continue
        if name == "baseline":  # baseline rows live in the training table
            prev = [r for r in results.get("training", {}).get("value", []) if r["impl"] != "baseline"]
            results["training"] = {"value": prev + values, "_run": run_id}
            continue
        if name == "training":
            prev = [r for r in results.get("training", {}).get("value", []) if r["impl"] == "baseline"]
            values = values + prev
        elif name == "metrics":
            values = {"planar": values[0], "qm9": values[1]}
        elif name in ("peak", "profile"):
            values = values[0]
        results[name] = {"value": values, "_run": run_id}
    meta["seconds"] = time.perf_counter() - t_start
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report.atomic_write_text(RESULTS, json.dumps(results, indent=1))
    body = report.render(results)
    if failures:
        body += "\nFailed measurements:\n\n" + "\n".join(f"* {shlex.quote(f.splitlines()[0])}" for f in failures)
    report.update_document(Path(args.output), report.RESULTS_START, report.RESULTS_END, body)
    print(f"wrote {args.output} ({meta['seconds']:.0f} s)")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="measure and update docs/performance.md")
    p.add_argument("--quick", action="store_true", help="small batches, one timed step, extrapolated chains")
    p.add_argument("--only", nargs="+", metavar="NAME", help=f"run only these: {', '.join(NAMES)}")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--full-chains", action="store_true", help="run the full T-step sampling chains too")
    p.add_argument("--output", default=str(DOC), help="Markdown file to update (default docs/performance.md)")
    p.add_argument("--timeout", type=float, default=None, help="seconds allowed per measurement")
    p.add_argument("--note", default=None, help="a note printed with the machine description")
    p.add_argument("--list", action="store_true", help="print the measurements and exit")
    r = sub.add_parser("render", help="rewrite docs/performance.md from benchmarks/results/latest.json")
    r.add_argument("--output", default=str(DOC))
    args = parser.parse_args(argv)
    if args.command == "render":
        results = json.loads(RESULTS.read_text())
        body = report.render(results)
        report.update_document(Path(args.output), report.RESULTS_START, report.RESULTS_END, body)
        print(f"wrote {args.output}")
        return 0
    if args.list:
        device = args.device
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        for name, items in plan(args.quick, args.full_chains, device).items():
            for function, kwargs in items:
                print(f"{name}: {function} {json.dumps(kwargs)}")
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
