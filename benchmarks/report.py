"""Machine description and the Markdown of ``docs/performance.md``'s generated sections."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

RESULTS_START, RESULTS_END = "<!-- results:start -->", "<!-- results:end -->"
QUALITY_START, QUALITY_END = "<!-- quality:start -->", "<!-- quality:end -->"


def machine_info(device: str = "cpu") -> dict[str, Any]:
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram_gib = int(line.split()[1]) / 2**20
                break
    except OSError:
        pass
    gpu = None
    if torch.cuda.is_available():
        gpu = f"{torch.cuda.get_device_name(0)} ({torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB)"
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "ram_gib": ram_gib,
        "gpu": gpu, "device": device, "torch": torch.__version__, "python": sys.version.split()[0],
        "platform": platform.platform(), "load_avg": load,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save_figure(fig: Any, path: Path, dpi: int = 110) -> None:
    """Write a matplotlib figure as a PNG atomically (a temporary file renamed over ``path``) and close it."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)


def replace_between(document: str, start: str, end: str, body: str) -> str:
    """``document`` with the text between the markers replaced (markers appended if missing)."""
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(document):
        return pattern.sub(lambda _: block, document, count=1)
    return document.rstrip() + "\n\n" + block + "\n"


def update_document(path: Path, start: str, end: str, body: str) -> None:
    """Replace one generated section of ``path`` atomically; everything outside the markers is kept."""
    document = path.read_text(encoding="utf-8") if path.exists() else "# Performance\n"
    atomic_write_text(path, replace_between(document, start, end, body))


# ----------------------------------------------------------------------------------------------------------------
# formatting


def _f(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, str):
        return x
    x = float(x)
    if x != x:
        return "nan"
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    if abs(x) >= 0.01:
        return f"{x:.{digits - 1}f}" if abs(x) >= 1 else f"{x:.{digits}f}"
    return f"{x:.2e}"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(_f(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _machine_block(meta: dict[str, Any]) -> str:
    m = meta["machine"]
    load = ", ".join(f"{x:.1f}" for x in m["load_avg"]) if m.get("load_avg") else "n/a"
    lines = [
        f"* **Run**: `{meta['command']}` on {m['date']}" + (" — **quick mode**" if meta.get("quick") else "")
        + (f", runner wall time {meta['seconds']:.0f} s" if meta.get("seconds") else ""),
        f"* **Machine**: {m['cpu']}, {m['cores']} cores (torch threads {m['torch_threads']}), "
        f"{_f(m['ram_gib'])} GiB RAM, GPU: {m['gpu'] or 'none'}; measured on `{m['device']}`",
        f"* **Software**: torch {m['torch']}, Python {m['python']}, {m['platform']}",
        f"* **Load average at start** (1/5/15 min): {load}",
    ]
    if meta.get("note"):
        lines.append(f"* **Note**: {meta['note']}")
    return "\n".join(lines)


def render(results: dict[str, Any]) -> str:
    """The generated results section from the merged results of the runner."""
    out: list[str] = []
    meta = results.get("_meta")
    runs = dict(results.get("_runs") or ({meta["run_id"]: meta} if meta else {}))
    sections: dict[str, list[str]] = {}
    for key, value in results.items():
        if not key.startswith("_") and isinstance(value, dict):
            sections.setdefault(value.get("_run"), []).append(key)
    for run_id, names in sections.items():
        if run_id in runs:
            if len(sections) > 1:
                out.append(f"\n**Sections {', '.join(names)}** from:\n")
            out.append(_machine_block(runs[run_id]))
    peak = results.get("peak", {}).get("value")
    if isinstance(peak, list):
        peak = peak[0] if peak else None

    tr = results.get("training", {}).get("value")
    if tr:
        out.append("\n### Training step (DiGress)\n")
        out.append("Median over the timed steps (after warm-up) of one optimiser step: noise = draw `t` and "
                   "`add_noise`; features = extra features (no grad); forward = transformer + loss; backward; "
                   "optimizer = AdamW(amsgrad) step. Peak memory: see the method column.\n")
        rows = []
        for r in tr:
            ms = r["ms"]
            rows.append([r["setup"], r["impl"], str(r["batch_size"]), ms["total"], r["graphs_per_s"], ms["noise"],
                         ms["features"], ms["forward"], ms["backward"], ms["optimizer"], r["peak_mem_mb"],
                         f"{r['steps']}+{r['warmup']}w"])
        out.append(_table(["config", "impl", "batch", "ms/step", "graphs/s", "noise ms", "features ms",
                           "forward ms", "backward ms", "optim ms", "peak mem MiB", "steps"], rows))
        methods = sorted({r["peak_mem_method"] for r in tr})
        out.append("\nPeak memory method: " + "; ".join(methods) + ".")

    eq = results.get("equivalence", {}).get("value")
    if eq or (tr and any(r["impl"] == "baseline" for r in tr)):
        out.append("\n### Baseline: straightforward dense transformer (`benchmarks/baseline_transformer.py`)\n")
        if eq:
            out.append("Same weights (copied tensor by tensor), same noisy batch, dropout off; float32 as trained and "
                       "float64 (the verdict: rounding cannot hide a difference there). Gradients: the X and E input "
                       "MLPs and the first layer's edge FiLM. Extra features are compared apart; both networks "
                       "then get graphdiff's (eigenvectors of a repeated eigenvalue are any basis of its "
                       "eigenspace, so the eigenvector columns may differ legitimately and are not part of the "
                       "verdict).\n")
            rows = []
            for e in eq:
                for tag in ("f32", "f64"):
                    v = e[tag]
                    rows.append([e["setup"], str(e["batch_size"]), tag, f"{v['loss_graphdiff']:.10g}",
                                 f"{v['loss_baseline']:.10g}", v["loss_rel_diff"], v["feature_max_abs_diff"],
                                 v.get("eigenvector_max_abs_diff"), v["grad_rel_diff"],
                                 ("yes" if e["ok"] else "**NO**") if tag == "f64" else ""])
            out.append(_table(["config", "batch", "dtype", "loss graphdiff", "loss baseline", "loss rel. diff",
                               "max feature diff", "eigenvector diff", "max grad rel. diff", "same function"], rows))
        if tr:
            by = {(r["setup"], r["batch_size"], r["impl"]): r for r in tr}
            rows = []
            for (setup, batch, impl), base in sorted(by.items()):
                if impl != "baseline" or (setup, batch, "graphdiff") not in by:
                    continue
                ours = by[(setup, batch, "graphdiff")]
                net_b = base["ms"]["forward"] + base["ms"]["backward"]
                net_o = ours["ms"]["forward"] + ours["ms"]["backward"]
                ratio = base["ms"]["total"] / ours["ms"]["total"]
                rows.append([setup, str(batch), base["ms"]["total"], ours["ms"]["total"], ratio,
                             net_b / net_o, base["ms"]["features"] / max(ours["ms"]["features"], 1e-9),
                             base["peak_mem_mb"] / max(ours["peak_mem_mb"], 1e-9),
                             "met" if ratio >= 5 else "**not met**"])
            if rows:
                out.append("\nSpeed ratio baseline / graphdiff (target: whole training step >= 5x):\n")
                out.append(_table(["config", "batch", "baseline ms", "graphdiff ms", "step ratio",
                                   "fwd+bwd ratio", "features ratio", "peak-mem ratio", "5x target"], rows))

    fl = results.get("flops", {}).get("value")
    if fl:
        out.append("\n### FLOPs per training step\n")
        out.append("`torch.utils.flop_counter.FlopCounterMode` over forward + backward (counts matmul-like ops "
                   "only: mm, addmm, bmm, baddbmm, convolutions; not elementwise ops, softmax, eigh). Achieved = "
                   "FLOPs / (forward + backward time of the training table at the same batch); peak = best "
                   f"{_f(peak['size'] if peak else None)}² float32 matmul on this machine"
                   + (f" = **{_f(peak['gflops'])} GFLOP/s**" if peak else "")
                   + (f" (bfloat16: {_f(peak['gflops_bf16'])} GFLOP/s)" if peak and "gflops_bf16" in peak else "")
                   + ".\n")
        rows = []
        by_tr = {(r["setup"], r["batch_size"], r["impl"]): r for r in (tr or [])}
        for f in fl:
            t = by_tr.get((f["setup"], f["batch_size"], f["impl"]))
            achieved = frac = None
            if t:
                achieved = f["gflop_per_step"] / ((t["ms"]["forward"] + t["ms"]["backward"]) / 1000)
                frac = f"{100 * achieved / peak['gflops']:.1f} %" if peak else None
            rows.append([f["setup"], f["impl"], str(f["batch_size"]), f["gflop_per_step"], f["gflop_per_graph"],
                         achieved, frac])
        out.append(_table(["config", "impl", "batch", "GFLOP/step", "GFLOP/graph", "achieved GFLOP/s",
                           "of matmul peak"], rows))

    pc = results.get("precision", {}).get("value")
    if pc:
        out.append("\n### bfloat16 autocast (`--trainer.precision bf16-mixed`)\n")
        out.append("A whole training step (noise, features, forward, loss, backward, AdamW) in float32 and under "
                   "bfloat16 autocast, alternating on one model and batch (medians; ratio within one run). Loss: "
                   "the same noisy batch through the same weights in each precision.\n")
        out.append(_table(["config", "batch", "threads", "float32 ms", "bf16-mixed ms", "speed-up",
                           "loss float32", "loss bf16"],
                          [[r["setup"], str(r["batch_size"]), str(r["threads"]), r["ms"]["float32"],
                            r["ms"]["bf16-mixed"], f"{r['speedup']:.2f}x", r["loss"]["float32"],
                            r["loss"]["bf16-mixed"]] for r in pc]))

    co = results.get("compile", {}).get("value")
    if co:
        out.append("\n### torch.compile (`--model.compile true`)\n")
        out.append("The denoiser eagerly and compiled (`graphdiff.compile.compile_network`), two copies of one model "
                   "on one batch, alternating (medians; ratio within one run): a no-grad forward in eval mode "
                   "(validation, sampling) and a whole training step (noise, features, forward, loss, backward, "
                   "AdamW). Compile s: the first compiled call minus a steady one, with an empty inductor cache; it "
                   "is paid again for each new mode and, once, when the batch shape first changes.\n")
        rows = []
        for r in co:
            for phase, label in (("forward", "forward (no grad)"), ("step", "training step")):
                ph = r[phase]
                rows.append([r["setup"], str(r["batch_size"]), str(r["threads"]), label, ph["ms"]["eager"],
                             ph["ms"]["compiled"], f"{ph['speedup']:.2f}x", ph["compile_s"],
                             "fell back to eager" if r["fell_back"] else r["backend"]])
        out.append(_table(["config", "batch", "threads", "what", "eager ms", "compiled ms", "speed-up",
                           "compile s", "backend"], rows))

    sa = results.get("sampling", {}).get("value")
    if sa:
        out.append("\n### Sampling (DiGress and DeFoG, untrained weights — speed only)\n")
        out.append("One batch holding all graphs, node counts drawn from the dataset, the same network for both "
                   "families. DiGress: a strided chain uses the exact skip-step posterior, so a step costs the same "
                   "whatever the stride. DeFoG: one CTMC Euler step (rate matrices with the exact expectation over "
                   "x_1, eta 50, omega 0.05); its number of steps is free. *Extrapolated* chains are s/step x steps "
                   "from a shorter measured chain.\n")
        rows = []
        for r in sa:
            family = r.get("family", "discrete")
            for c in r["chains"]:
                steps = f"{c['steps']} of T={r['T']}" if family == "discrete" else f"{c['steps']}"
                rows.append([r["setup"], "DiGress" if family == "discrete" else "DeFoG",
                             f"{r['num_graphs']} (n ≤ {r['max_nodes']})", steps,
                             c["s_per_step"], c["chain_s"], c["graphs_per_s"],
                             "measured" if c["measured"] else f"extrapolated from {r['measure_steps']} steps"])
        out.append(_table(["config", "family", "graphs", "steps", "s/step", "chain s", "graphs/s", "how"], rows))
        for r in sa:
            chains = {c["steps"]: c for c in r["chains"]}
            if r.get("family", "discrete") == "discrete" and r["T"] in chains and 50 in chains:
                ratio = chains[r["T"]]["chain_s"] / chains[50]["chain_s"]
                out.append(f"\n{r['setup']}: 50 strided steps vs the full {r['T']}-step chain: "
                           f"**{ratio:.1f}x** faster (the step count ratio is {r['T'] / 50:.0f}).")
        for setup in dict.fromkeys(r["setup"] for r in sa):
            per = {r.get("family", "discrete"): {c["steps"]: c["s_per_step"] for c in r["chains"]}
                   for r in sa if r["setup"] == setup}
            if "flow" in per and "discrete" in per and 50 in per["flow"] and 50 in per["discrete"]:
                out.append(f"\n{setup}: a DeFoG step costs **{per['flow'][50] / per['discrete'][50]:.2f}x** a "
                           "DiGress step (50-step chains, same network).")

    al = results.get("allocator", {}).get("value")
    if al:
        out.append("\n### Allocator (`graphdiff.runtime.keep_freed_memory`, set by the `graphdiff` command)\n")
        out.append("Seconds per DiGress sampling step with glibc's default malloc (`GRAPHDIFF_MALLOC=system`) and "
                   "with freed memory kept for reuse, each in a fresh process, alternating; best of the rounds.\n")
        out.append(_table(["config", "graphs", "threads", "system s/step", "kept s/step", "speed-up"],
                          [[r["setup"], str(r["num_graphs"]), str(r["threads"]), min(r["s_per_step"]["system"]),
                            min(r["s_per_step"]["keep_freed_memory"]), f"{r['speedup']:.2f}x"] for r in al]))

    gd = results.get("gdss", {}).get("value")
    if gd:
        out.append("\n### GDSS (ScoreSDEProcess + GDSSScoreModel, published sizes, untrained)\n")
        rows = []
        for r in gd:
            t = r["train"]
            rows.append([r["setup"], str(t["batch_size"]), str(t["params"]), t["ms_total"], t["graphs_per_s"],
                         t["ms_forward"], t["ms_backward"], t["peak_mem_mb"]])
        out.append(_table(["config", "batch", "params", "ms/step", "graphs/s", "loss ms", "backward ms",
                           "peak RSS Δ MiB"], rows))
        rows = []
        for r in gd:
            s = r["sampler"]
            for c in r["chains"]:
                rows.append([r["setup"], f"{s['predictor']}+{s['corrector']}", str(r["num_samples"]),
                             str(c["steps"]), c["s_per_step"], c["chain_s"], c["graphs_per_s"],
                             "measured" if c["measured"] else f"extrapolated from {r['measure_steps']} steps"])
        out.append("\nSampling (one batch; a PC step calls the score network twice):\n")
        out.append(_table(["config", "sampler", "graphs", "steps", "s/step", "chain s", "graphs/s", "how"], rows))

    pa = results.get("pard", {}).get("value")
    if pa:
        out.append(render_pard(pa))

    me = results.get("metrics", {}).get("value")
    if me:
        out.append("\n### Metrics\n")
        rows = []
        p = me.get("planar")
        if p:
            vals = ", ".join(f"{k} {_f(v)}" for k, v in p["values"].items())
            rows.append(["planar, SPECTRE protocol: degree, clustering, orbit, spectral, wavelet MMD² + V.U.N.",
                         f"{p['num_generated']} vs {p['num_reference']} (train {p['num_train']})", p["seconds"],
                         vals])
        q = me.get("qm9")
        if q:
            vals = ", ".join(f"{k} {_f(v)}" for k, v in q["values"].items())
            rows.append(["QM9 validity, uniqueness, FCD (first call: includes the reference's ChemNet statistics)",
                         f"{q['num_samples']} test SMILES vs {q['num_reference']} val", q["seconds_first"], vals])
            rows.append(["QM9, same evaluator again (reference statistics cached)",
                         f"{q['num_samples']} vs {q['num_reference']}", q["seconds_cached_reference"], ""])
        out.append(_table(["evaluation", "sets", "seconds", "values"], rows))

    pr = results.get("profile", {}).get("value")
    if isinstance(pr, list):
        pr = pr[0] if pr else None
    if pr:
        out.append("\n### Where the time goes\n")
        out.append(f"`torch.profiler`, one planar training step (batch {pr['batch_size']}, after a warm-up step), "
                   f"operators by self {pr['clock']} time; total self time {pr['total_self_ms']:.0f} ms.\n")
        out.append(_table(["operator", "self ms", "share", "calls"],
                          [[f"`{o['name']}`", o["self_ms"], f"{100 * o['share']:.1f} %", str(o["calls"])]
                           for o in pr["ops"]]))
    return "\n".join(out) + "\n"


FAMILY_NAMES = {"discrete": "DiGress", "flow": "DeFoG", "gdss": "GDSS", "pard": "PARD"}


def render_pard(rows: list[dict[str, Any]]) -> str:
    """The PARD section: its training step and sampling next to the other families', measured in one process."""
    out = ["\n### PARD next to DiGress, DeFoG and GDSS (one process, same batch, untrained weights)\n"]
    first = rows[0]
    out.append(
        "`benchmarks.measure.pard`: PARD (`PardModel` with the model settings of its shipped config, PARD's "
        "published ones; params = denoiser + separate block network) next to the DiGress transformer of the setup "
        "of the same name (the DeFoG row is the same network under the flow's noise) and, on QM9, GDSS's published "
        "QM9 model, all on the same training batch and the same node counts. Training: one optimiser step (PARD: "
        "`PardModel._loss` = block order, the layout of its training mode — parallel: every graph padded to 2n "
        "nodes, causal network; batched sequential: one graph of n nodes per block —, block-wise noise, denoiser, "
        "block network, both losses; then backward and AdamW), the families alternating within each round "
        "(medians; the ratios are within one run); peak memory of each family's first step, optimiser state "
        "included; GFLOP: matmul FLOPs of forward + backward (`FlopCounterMode`, not elementwise ops; independent "
        "of the machine's load), GFLOP/s: over the loss + backward time. Sampling: one batch; DiGress / DeFoG / "
        "GDSS per-step times from short chains, extrapolated; PARD through `model.generate` with the same node "
        "counts and a few reverse steps per block, its denoiser calls and block-head calls timed apart, "
        "extrapolated to more steps per block. A batch runs as many blocks as its graph with the most blocks; the "
        "untrained block head draws block sizes from the training split's block-size distribution "
        "(`benchmarks.setups.calibrate_block_sizes`), so the block count is about that of a model that learnt it. "
        "Network calls per chain: DiGress and DeFoG one per step, GDSS two per PC step, PARD blocks x steps per "
        "block (denoiser) + blocks (block head).\n")
    for r in rows:
        c = r["pard_config"]
        net = c.get("model", {})
        out.append(f"* {r['setup']}: `{c.get('config')}` — T = {c.get('T')} steps per block, transition "
                   f"{c.get('transition')}, max_hops {c.get('max_hops')}, loss {c.get('loss')}, training_mode "
                   f"{c.get('training_mode')}, block_model {c.get('block_model')}; hidden_dims "
                   f"{net.get('hidden_dims')}, edge_dims {net.get('edge_dims')}, {net.get('n_layers')} layers, "
                   f"{net.get('n_heads')} heads, extra features {net.get('extra_features', 'none')}; published batch "
                   f"{c.get('published_batch_size')}.")
    out.append("")
    train_rows = []
    for r in rows:
        base = r["train"]["discrete"]["ms"]["total"]
        for family in ("discrete", "flow", "gdss", "pard"):
            t = r["train"].get(family)
            if not t:
                continue
            name = FAMILY_NAMES[family] + (f" ({r['gdss_setup']})" if family == "gdss" else "")
            ms = t["ms"]
            gflop, base_gflop = t.get("gflop_per_step"), r["train"]["discrete"].get("gflop_per_step")
            nodes_in = f"{t.get('rows', t['batch_size'])} x {t['input_nodes']}"
            train_rows.append([r["setup"], name, str(t["batch_size"]), nodes_in, f"{t['params']:,}",
                               ms["total"], t["graphs_per_s"], f"{ms['total'] / base:.2f}x", ms["loss"],
                               ms["backward"], ms["optimizer"], gflop,
                               f"{gflop / base_gflop:.2f}x" if gflop and base_gflop else None,
                               gflop / ((ms["loss"] + ms["backward"]) / 1000) if gflop else None,
                               t["peak_mem_mb"], f"{r['steps']}+{r['warmup']}w"])
    out.append(_table(["config", "family", "batch", "network input", "params", "ms/step", "graphs/s", "time vs DiGress",
                       "loss ms", "backward ms", "optim ms", "GFLOP/step", "GFLOP vs DiGress", "GFLOP/s",
                       "peak mem MiB", "steps"], train_rows))
    for r in rows:
        t = r["train"]["pard"]
        out.append(f"\n{r['setup']}: PARD ({t.get('training_mode')}) runs its denoiser on {t['rows']} graphs of "
                   f"{t['input_nodes']} nodes for a batch of {t['batch_size']}; its block order + layout alone (no "
                   f"grad) take {_f(t['order_layout_ms'])} ms of its {_f(t['ms']['total'])} ms step.")
    methods = sorted({r["peak_mem_method"] for r in rows})
    out.append("\nPeak memory method: " + "; ".join(methods) + f"; torch threads {first['threads']}.\n")

    sample_rows = []
    for r in rows:
        smp = r["sample"]
        base = next(c for c in smp["discrete"]["chains"] if c["steps"] == max(x["steps"] for x in
                                                                               smp["discrete"]["chains"]))
        graphs = f"{r['num_graphs']} (n ≤ {r['max_nodes']})"
        for family in ("discrete", "flow", "gdss"):
            f = smp.get(family)
            if not f:
                continue
            name = FAMILY_NAMES[family] + (f" ({f['sampler']['predictor']}+{f['sampler']['corrector']})"
                                           if family == "gdss" else "")
            for c in f["chains"]:
                sample_rows.append([r["setup"], name, graphs, str(c["steps"]), f"{c['calls']:,}",
                                    c["s_per_step"] / f["calls_per_step"], c["chain_s"], c["s_per_graph"],
                                    f"{c['chain_s'] / base['chain_s']:.2f}x",
                                    "measured" if c["measured"] else f"extrapolated from {f['measure_steps']} steps"])
        p = smp["pard"]
        m = p["measured"]
        for c in p["chains"]:
            sample_rows.append([r["setup"], "PARD", graphs, f"{c['steps']}/block x {c['blocks']} blocks",
                                f"{c['calls']:,}", p["s_per_denoiser_call"], c["chain_s"], c["s_per_graph"],
                                f"{c['chain_s'] / base['chain_s']:.2f}x",
                                "measured" if c["measured"] else
                                f"extrapolated from {m['steps_per_block']} steps/block"])
    out.append(_table(["config", "family", "graphs", "steps", "network calls", "s/call", "chain s", "s/graph",
                       "time vs DiGress full chain", "how"], sample_rows))
    for r in rows:
        p, b = r["sample"]["pard"], r["pard_blocks"]
        m = p["measured"]
        out.append(f"\n{r['setup']}: PARD ran {m['blocks']} blocks for the batch (training split: "
                   f"{b['blocks_mean']:.1f} blocks per graph on average, at most {b['blocks_max']}, "
                   f"{b['block_size_mean']:.2f} nodes per block; {b['graphs']} graphs); a denoiser call took "
                   f"{_f(p['s_per_denoiser_call'])} s on average (the graph grows block by block), a block-head call "
                   f"{_f(p['s_per_head_call'])} s ({_f(m['head_s'])} s of the {_f(m['seconds'])} s measured chain).")
    return "\n".join(out)
