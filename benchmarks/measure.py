"""Measurements. Each function returns a JSON-able dict; the runner calls them in fresh subprocesses
(``python -m benchmarks.measure NAME JSON``) so peak-memory numbers start from a clean process."""

from __future__ import annotations

import ctypes
import gc
import json
import resource
import statistics
import sys
import time
from typing import Any

import torch

from benchmarks import setups

# ----------------------------------------------------------------------------------------------------------------
# helpers


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _now(device: str) -> float:
    _sync(device)
    return time.perf_counter()


def _proc_status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        return None
    return None


class PeakRSS:
    """Peak resident memory of a code region, in MiB above the RSS at its start.

    Linux lets a process reset its own high-water mark (``5`` to ``/proc/self/clear_refs``), so loading a
    dataset before the region does not hide the region's peak; elsewhere the ``getrusage`` high-water mark is
    used, which is a lower bound when the process was bigger before the region. Freed heap memory is handed
    back to the system first (glibc's ``malloc_trim``): otherwise the region can reuse what loading the data
    freed, and a small model's peak reads as 0.
    """

    def __init__(self) -> None:
        gc.collect()
        _release_free_heap()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.method = "RSS high-water (VmHWM, reset before the steps) minus RSS before the steps"
            self.start = _proc_status_mb("VmRSS")
        except OSError:
            self.start = None
        if self.start is None:
            self.method = "RSS high-water increase (getrusage ru_maxrss) in a fresh process"
            self.start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    def peak_mb(self) -> float:
        hwm = _proc_status_mb("VmHWM") if self.method.startswith("RSS high-water (VmHWM") else None
        if hwm is None:
            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        return hwm - self.start


def _release_free_heap() -> None:
    """Return freed ``malloc`` memory to the system (glibc only; a no-op elsewhere)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def matmul_peak(device: str = "cpu", size: int = 2048, repeats: int = 10) -> dict[str, Any]:
    """Best matmul throughput of ``repeats`` ``size x size`` products (GFLOP/s), float32 and bfloat16, each
    written into one preallocated output (the arithmetic, not the allocator)."""
    out: dict[str, Any] = {"size": size, "threads": torch.get_num_threads()}
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(size, size, device=device).to(dtype)
        b = torch.randn(size, size, device=device).to(dtype)
        c = torch.empty(size, size, device=device, dtype=dtype)
        torch.matmul(a, b, out=c)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            t0 = _now(device)
            torch.matmul(a, b, out=c)
            best = min(best, _now(device) - t0)
        key = "gflops" if dtype == torch.float32 else "gflops_bf16"
        out[key] = 2 * size**3 / best / 1e9
    return out


# ----------------------------------------------------------------------------------------------------------------
# DiGress training


def _model(setup, impl: str, dropout: float = 0.1):
    model = setup.denoiser(dropout=dropout)
    if impl == "baseline":
        from benchmarks.baseline_transformer import baseline_like

        torch.manual_seed(0)
        model = baseline_like(model, dropout=dropout)
    return model


def _loss_pieces(setup, model, batch, device: str, generator=None):
    from graphdiff.diffusion import cross_entropy_loss

    B = batch.batch_size
    t = setup.process.sample_timesteps(B, device=device, training=True, generator=generator) \
        if generator is not None else setup.process.sample_timesteps(B, device=device, training=True)
    noisy = setup.process.add_noise(batch, t, generator=generator)
    features, network = setups.split_forward(model, noisy, t.float() / setup.T)

    def loss_of(extra):
        return cross_entropy_loss(network(extra), batch, lambda_E=5.0)["loss"]

    return features, loss_of


def training(setup: str, batch_size: int, steps: int = 3, warmup: int = 1, impl: str = "graphdiff",
             device: str = "cpu") -> dict[str, Any]:
    """Median time of each phase of a training step; peak memory of the steps."""
    s = setups.digress_setup(setup)
    model = _model(s, impl).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=1e-12, amsgrad=True)
    batch = setups.train_batch(s.dataset, batch_size, device)
    rss = PeakRSS()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        mem0 = torch.cuda.memory_allocated()
    phases: dict[str, list[float]] = {k: [] for k in ("noise", "features", "forward", "backward", "optimizer",
                                                       "total")}
    for i in range(warmup + steps):
        t0 = _now(device)
        features, loss_of = _loss_pieces(s, model, batch, device)
        t1 = _now(device)
        extra = features()
        t2 = _now(device)
        loss = loss_of(extra)
        t3 = _now(device)
        loss.backward()
        t4 = _now(device)
        opt.step()
        opt.zero_grad(set_to_none=True)
        t5 = _now(device)
        del loss, extra
        if i >= warmup:
            for key, value in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t5 - t0)):
                value_ms = value * 1000
                phases[key].append(value_ms)
    out: dict[str, Any] = {
        "setup": setup, "impl": impl, "batch_size": batch_size, "steps": steps, "warmup": warmup,
        "device": device, "params": sum(p.numel() for p in model.parameters()),
        "max_nodes": int(batch.node_mask.shape[1]),
        "ms": {k: _median(v) for k, v in phases.items()},
        "ms_all_total": phases["total"],
    }
    out["graphs_per_s"] = batch_size / (out["ms"]["total"] / 1000)
    if device.startswith("cuda"):
        out["peak_mem_mb"] = (torch.cuda.max_memory_allocated() - mem0) / 2**20
        out["peak_mem_method"] = "torch.cuda.max_memory_allocated() minus allocated before the steps"
    else:
        out["peak_mem_mb"] = rss.peak_mb()
        out["peak_mem_method"] = rss.method
    return out


def precision(setup: str, batch_size: int, rounds: int = 4, warmup: int = 1, device: str = "cpu",
              dropout: float = 0.1) -> dict[str, Any]:
    """A whole training step in float32 and under bfloat16 autocast (Lightning's ``bf16-mixed``: forward and loss
    autocast, backward and optimiser outside), alternating the two on one model and one batch, ``rounds`` times
    each after ``warmup``: the speed ratio of one run, not of two runs at different moments of a drifting machine.
    Also the loss of each on the same noisy batch (one forward, eval mode), to show what bfloat16 changes.
    """
    s = setups.digress_setup(setup)
    model = _model(s, "graphdiff", dropout=dropout).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=1e-12, amsgrad=True)
    batch = setups.train_batch(s.dataset, batch_size, device)
    kind = "cuda" if device.startswith("cuda") else "cpu"

    def step(bf16: bool) -> float:
        t0 = _now(device)
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=bf16):
            features, loss_of = _loss_pieces(s, model, batch, device)
            loss = loss_of(features())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return _now(device) - t0

    times: dict[str, list[float]] = {"float32": [], "bf16-mixed": []}
    for i in range(warmup + rounds):
        for name in times:
            ms = 1000 * step(name == "bf16-mixed")
            if i >= warmup:
                times[name].append(ms)
    model.eval()
    generator = torch.Generator(device=device)
    losses = {}
    for name in times:
        generator.manual_seed(0)
        with torch.no_grad(), torch.autocast(kind, dtype=torch.bfloat16, enabled=name == "bf16-mixed"):
            features, loss_of = _loss_pieces(s, model, batch, device, generator=generator)
            losses[name] = float(loss_of(features()))
    ms = {k: _median(v) for k, v in times.items()}
    return {"setup": setup, "batch_size": batch_size, "rounds": rounds, "device": device, "dropout": dropout,
            "threads": torch.get_num_threads(), "ms": ms, "ms_all": times, "speedup": ms["float32"] / ms["bf16-mixed"],
            "loss": losses}


def compile_step(setup: str, batch_size: int, rounds: int = 4, warmup: int = 1, device: str = "cpu",
                 backend: str = "inductor", cold_cache: bool = True) -> dict[str, Any]:
    """Eager against ``torch.compile`` (``graphdiff.compile.compile_network`` on the denoiser, what
    ``--model.compile true`` does), on two copies of one model and one batch, alternating.

    First a no-grad forward in eval mode (validation, sampling): the first call of each copy (the compiled one
    compiles its inference graph), the output difference, then ``rounds`` alternating timed calls. Then a whole
    training step (noise, extra features, forward, loss, backward, AdamW): the first step of each copy (the
    compiled one compiles its training graphs, forward and backward), ``warmup`` more untimed, then ``rounds``
    alternating. ``compile_s`` = first compiled call minus the median compiled call. ``cold_cache``: inductor
    writes to a fresh cache folder, so the compile time is that of a first run on a machine (later runs of the
    same model reuse ``/tmp/torchinductor_<user>`` and compile faster); ``backend="eager"`` traces with dynamo
    alone (a quick smoke test of this function, not a speed measurement).
    """
    import copy
    import os
    import tempfile

    if cold_cache and backend == "inductor":
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="graphdiff-bench-inductor-")
    from graphdiff.compile import compile_network, compiled_call
    from graphdiff.diffusion import cross_entropy_loss

    s = setups.digress_setup(setup)
    eager = _model(s, "graphdiff").to(device)
    models = {"eager": eager, "compiled": compile_network(copy.deepcopy(eager), backend=backend)}
    opts = {k: torch.optim.AdamW(m.parameters(), lr=2e-4, weight_decay=1e-12, amsgrad=True)
            for k, m in models.items()}
    batch = setups.train_batch(s.dataset, batch_size, device)
    B = batch.batch_size

    # Inference: the same noisy batch through both copies (identical weights).
    generator = torch.Generator(device=device).manual_seed(0)
    t = s.process.sample_timesteps(B, device=device, training=False, generator=generator)
    noisy = s.process.add_noise(batch, t, generator=generator)
    forward_first: dict[str, float] = {}
    forward_ms: dict[str, list[float]] = {"eager": [], "compiled": []}
    outputs = {}
    with torch.no_grad():
        for i in range(1 + rounds):
            for name, model in models.items():
                model.eval()
                t0 = _now(device)
                out = model(noisy, t.float() / s.T)
                ms = 1000 * (_now(device) - t0)
                if i == 0:
                    forward_first[name], outputs[name] = ms, out
                else:
                    forward_ms[name].append(ms)
    diff = max(float((outputs["compiled"].X - outputs["eager"].X).abs().max()),
               float((outputs["compiled"].E - outputs["eager"].E).abs().max()))
    del outputs, out

    def step(name: str) -> float:
        model, opt = models[name], opts[name]
        model.train()
        t0 = _now(device)
        t = s.process.sample_timesteps(B, device=device, training=True)
        noisy = s.process.add_noise(batch, t)
        loss = cross_entropy_loss(model(noisy, t.float() / s.T), batch, lambda_E=5.0)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return 1000 * (_now(device) - t0)

    step_first = {name: step(name) for name in models}
    step_ms: dict[str, list[float]] = {"eager": [], "compiled": []}
    for i in range(warmup + rounds):
        for name in models:
            ms = step(name)
            if i >= warmup:
                step_ms[name].append(ms)
    fwd = {k: _median(v) for k, v in forward_ms.items()}
    stp = {k: _median(v) for k, v in step_ms.items()}
    return {
        "setup": setup, "batch_size": batch_size, "rounds": rounds, "device": device, "backend": backend,
        "threads": torch.get_num_threads(), "torch": torch.__version__, "cold_cache": cold_cache,
        "max_nodes": int(batch.node_mask.shape[1]),
        "fell_back": compiled_call(models["compiled"]).failed,
        "forward": {"first_ms": forward_first, "ms": fwd, "ms_all": forward_ms,
                    "speedup": fwd["eager"] / fwd["compiled"],
                    "compile_s": (forward_first["compiled"] - fwd["compiled"]) / 1000},
        "step": {"first_ms": step_first, "ms": stp, "ms_all": step_ms, "speedup": stp["eager"] / stp["compiled"],
                 "compile_s": (step_first["compiled"] - stp["compiled"]) / 1000},
        "max_abs_diff": diff,
    }


def allocator(setup: str, num_graphs: int, steps: int = 4, rounds: int = 2, device: str = "cpu") -> dict[str, Any]:
    """Seconds per sampling step with glibc's default malloc and with ``graphdiff.runtime.keep_freed_memory`` (what
    the ``graphdiff`` command sets), each in a fresh process, alternating ``rounds`` times."""
    import os
    import subprocess

    kwargs = {"setup": setup, "num_graphs": num_graphs, "chains": [steps], "run": [steps], "device": device}
    times: dict[str, list[float]] = {"system": [], "keep_freed_memory": []}
    for _ in range(rounds):
        for name in times:
            env = {**os.environ, "GRAPHDIFF_MALLOC": "system" if name == "system" else "graphdiff"}
            proc = subprocess.run([sys.executable, "-m", "benchmarks.measure", "sampling", json.dumps(kwargs)],
                                  env=env, capture_output=True, text=True, check=True)
            result = json.loads(proc.stdout.rsplit("@@RESULT@@", 1)[1].strip().splitlines()[0])
            times[name].append(result["chains"][0]["s_per_step"])
    best = {k: min(v) for k, v in times.items()}
    return {"setup": setup, "num_graphs": num_graphs, "steps": steps, "threads": torch.get_num_threads(),
            "s_per_step": times, "speedup": best["system"] / best["keep_freed_memory"]}


def flops(setup: str, batch_size: int, impl: str = "graphdiff", device: str = "cpu") -> dict[str, Any]:
    """FLOPs of one training step's forward + backward (FlopCounterMode: matmuls, bmm, baddbmm, convs)."""
    from torch.utils.flop_counter import FlopCounterMode

    s = setups.digress_setup(setup)
    model = _model(s, impl).to(device).train()
    batch = setups.train_batch(s.dataset, batch_size, device)
    features, loss_of = _loss_pieces(s, model, batch, device)
    extra = features()
    counter = FlopCounterMode(display=False)
    with counter:
        extra = features()
        loss = loss_of(extra)
        loss.backward()
    total = counter.get_total_flops()
    return {"setup": setup, "impl": impl, "batch_size": batch_size, "gflop_per_step": total / 1e9,
            "gflop_per_graph": total / 1e9 / batch_size}


def equivalence(setup: str, batch_size: int, seed: int = 0) -> dict[str, Any]:
    """graphdiff's transformer and the baseline with the same weights on the same noisy batch.

    Dropout off (eval mode). Extra features are computed by both and compared (the two eigenvector columns
    apart: where a Laplacian eigenvalue is repeated, as in symmetric molecules, any basis of its eigenspace is
    correct and the two implementations may pick different ones); both networks then get graphdiff's features.
    In float32 (as trained) and in float64: the largest extra-feature difference, both
    losses, and the relative difference of three parameter gradients (the X and E input MLPs' first weights and
    the first layer's edge-FiLM weight). The verdict uses float64, where rounding cannot hide a real difference:
    in float32 the gradients differ by up to ~1e-2 relative because the std pooling to ``y``
    (``sqrt(clamp(var, 1e-12))``) amplifies rounding of near-zero variances.
    """
    from benchmarks.baseline_transformer import baseline_like, copy_weights
    from graphdiff.diffusion import cross_entropy_loss
    from graphdiff.types import DenseGraph

    s = setups.digress_setup(setup)
    model = s.denoiser(dropout=0.1, seed=seed).eval()
    base = baseline_like(model).eval()
    copied = copy_weights(model, base)
    batch = setups.train_batch(s.dataset, batch_size, offset=7)
    gen = torch.Generator().manual_seed(seed)
    t = s.process.sample_timesteps(batch_size, training=True, generator=gen)
    noisy = s.process.add_noise(batch, t, generator=gen)

    out: dict[str, Any] = {"setup": setup, "batch_size": batch_size, "tensors_copied": copied}
    for dtype, tag in ((torch.float32, "f32"), (torch.float64, "f64")):
        model.to(dtype)
        base.to(dtype)
        clean = DenseGraph(batch.X.to(dtype), batch.E.to(dtype), batch.y.to(dtype), batch.node_mask)
        noisy_d = DenseGraph(noisy.X.to(dtype), noisy.E.to(dtype), noisy.y.to(dtype), noisy.node_mask)
        losses, grads, extras = {}, {}, {}
        for name, m in (("graphdiff", model), ("baseline", base)):
            extras[name] = setups.split_forward(m, noisy_d, t.to(dtype) / s.T)[0]()
        for name, m in (("graphdiff", model), ("baseline", base)):
            m.zero_grad(set_to_none=True)
            _, network = setups.split_forward(m, noisy_d, t.to(dtype) / s.T)
            loss = cross_entropy_loss(network(extras["graphdiff"]), clean, lambda_E=5.0)["loss"]
            loss.backward()
            losses[name] = loss.item()
            layer0 = m.network.layers[0].attention if name == "graphdiff" else m.network.tf_layers[0].self_attn
            grads[name] = [m.network.mlp_in_X[0].weight.grad, m.network.mlp_in_E[0].weight.grad,
                           layer0.e_mul.weight.grad]
        dX = (extras["graphdiff"].X - extras["baseline"].X).abs()
        eigvec = [4, 5]  # columns v1, v2 of the "all" node features
        other = [i for i in range(dX.shape[-1]) if i not in eigvec]
        feat = max(float(dX[..., other].max()), float((extras["graphdiff"].y - extras["baseline"].y).abs().max()))
        feat_vec = float(dX[..., eigvec].max())
        rel = max(float((a - b).norm() / b.norm().clamp_min(1e-30))
                  for a, b in zip(grads["graphdiff"], grads["baseline"]))
        diff = abs(losses["graphdiff"] - losses["baseline"])
        out[tag] = {"loss_graphdiff": losses["graphdiff"], "loss_baseline": losses["baseline"],
                    "loss_rel_diff": diff / abs(losses["baseline"]), "feature_max_abs_diff": feat,
                    "eigenvector_max_abs_diff": feat_vec,
                    "grad_rel_diff": rel}
    f64 = out["f64"]
    out["ok"] = (f64["loss_rel_diff"] < 1e-10 and f64["grad_rel_diff"] < 1e-8 and f64["feature_max_abs_diff"] < 1e-8
                 and out["f32"]["loss_rel_diff"] < 1e-5)
    return out


# ----------------------------------------------------------------------------------------------------------------
# DiGress and DeFoG sampling


def sampling(setup: str, num_graphs: int, chains: list[int], run: list[int] | None = None,
             measure_steps: int | None = None, device: str = "cpu", family: str = "discrete") -> dict[str, Any]:
    """Seconds per reverse step and graphs/s of whole chains (untrained weights; one batch of ``num_graphs``).

    ``family``: ``discrete`` (DiGress's posterior step) or ``flow`` (DeFoG's CTMC step with the exact expectation
    over x_1, eta 50, omega 0.05, the same network). Chains listed in ``run`` are run in full; the others are
    extrapolated from the per-step time of the longest one run, or of a chain of ``measure_steps`` steps when
    ``run`` is empty.
    """
    from graphdiff.diffusion.sampler import DiscreteGraphSampler
    from graphdiff.flow import DiscreteFlow, FlowGraphSampler, FlowSamplerConfig, initial_distribution
    from graphdiff.generation import node_mask_from_counts, run_sampler, sample_num_nodes

    s = setups.digress_setup(setup)
    model = s.denoiser().to(device).eval()
    gen = torch.Generator().manual_seed(0)
    counts = sample_num_nodes(s.info.node_count_distribution(), num_graphs, gen)
    node_mask = node_mask_from_counts(counts, device)
    info = s.info
    flow = DiscreteFlow(initial_distribution("marginal", info.num_node_types, info.num_edge_types,
                                             info.node_marginals, info.edge_marginals))

    def sample(model, process, counts, steps):
        if family == "flow":
            settings = FlowSamplerConfig(steps=steps, eta=50.0, omega=0.05)
            sampler = FlowGraphSampler(flow, model, settings, (info.num_node_types, info.num_edge_types))
        else:
            sampler = DiscreteGraphSampler(process, model, steps)
        return run_sampler(sampler, node_mask)

    sample(model, s.process, counts, steps=1)  # warm-up
    measured: dict[int, float] = {}
    for K in sorted(run or [], reverse=True):
        t0 = _now(device)
        sample(model, s.process, counts, steps=K)
        measured[K] = _now(device) - t0
    if measured:
        longest = max(measured)
        per_step, basis = measured[longest] / longest, longest
    else:
        k = measure_steps or 2
        t0 = _now(device)
        sample(model, s.process, counts, steps=k)
        per_step, basis = (_now(device) - t0) / k, k
    rows = []
    for K in chains:
        seconds = measured.get(K, per_step * K)
        rows.append({"steps": K, "chain_s": seconds, "s_per_step": seconds / K, "graphs_per_s": num_graphs / seconds,
                     "measured": K in measured})
    return {"setup": setup, "family": family, "T": s.T, "num_graphs": num_graphs, "max_nodes": int(counts.max()),
            "measure_steps": basis, "chains": rows}


# ----------------------------------------------------------------------------------------------------------------
# GDSS


def gdss(setup: str, batch_size: int | None = None, steps: int = 3, warmup: int = 1, num_samples: int = 256,
         sample_steps: list[int] | None = None, measure_steps: int | None = None,
         device: str = "cpu") -> dict[str, Any]:
    """GDSS training step (loss, backward, Adam) and PC sampling speed with the published sizes."""
    s = setups.gdss_setup(setup)
    B = batch_size or s.spec["batch_size"]
    model = s.model().to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3, weight_decay=1e-4)
    batch = setups.train_batch(s.dataset, B, device)
    rss = PeakRSS()
    fwd, bwd, tot = [], [], []
    for i in range(warmup + steps):
        t0 = _now(device)
        loss_x, loss_adj = s.process.loss(model, batch)
        loss = loss_x + loss_adj
        t1 = _now(device)
        loss.backward()
        t2 = _now(device)
        opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = _now(device)
        if i >= warmup:
            fwd.append((t1 - t0) * 1000)
            bwd.append((t2 - t1) * 1000)
            tot.append((t3 - t0) * 1000)
    train = {"batch_size": B, "ms_forward": _median(fwd), "ms_backward": _median(bwd), "ms_total": _median(tot),
             "graphs_per_s": B / (_median(tot) / 1000), "peak_mem_mb": rss.peak_mb(),
             "params": sum(p.numel() for p in model.parameters())}

    rows = _gdss_sampling(s, model, num_samples, sample_steps or [s.spec["sde_x"][3]], measure_steps, device)
    return {"setup": setup, "train": train, "num_samples": num_samples, "sampler": s.spec["sampler"],
            "chains": rows, "measure_steps": measure_steps}


def _gdss_sampling(s, model, num_samples: int, chains: list[int], measure_steps: int | None,
                   device: str) -> list[dict[str, Any]]:
    """GDSS's PC sampler on ``num_samples`` graphs (node counts drawn with seed 0): each chain of ``chains`` run,
    or extrapolated from a chain of ``measure_steps`` steps."""
    from graphdiff.generation import node_mask_from_counts, sample_num_nodes
    from graphdiff.sde import SamplerSettings

    model.eval()
    gen = torch.Generator().manual_seed(0)
    counts = sample_num_nodes(s.dataset.info.node_count_distribution(), num_samples, gen)
    node_mask = node_mask_from_counts(counts, device)
    rows = []
    per_step = None
    with torch.no_grad():
        settings = SamplerSettings(**s.spec["sampler"], num_steps=2)
        s.process.sample(model, node_mask, s.dataset.info.num_node_types, settings)  # warm-up
        if measure_steps:
            settings = SamplerSettings(**s.spec["sampler"], num_steps=measure_steps)
            t0 = _now(device)
            s.process.sample(model, node_mask, s.dataset.info.num_node_types, settings)
            per_step = (_now(device) - t0) / measure_steps
        for K in chains:
            if measure_steps:
                seconds, measured = per_step * K, False
            else:
                settings = SamplerSettings(**s.spec["sampler"], num_steps=K)
                t0 = _now(device)
                s.process.sample(model, node_mask, s.dataset.info.num_node_types, settings)
                seconds, measured = _now(device) - t0, True
            rows.append({"steps": K, "chain_s": seconds, "s_per_step": seconds / K,
                         "graphs_per_s": num_samples / seconds, "measured": measured})
    return rows


# ----------------------------------------------------------------------------------------------------------------
# PARD next to the other families


class _Timed:
    """Wrap a bound method: count its calls and add up their time (``device`` synchronised)."""

    def __init__(self, fn, device: str) -> None:
        self.fn, self.device, self.calls, self.seconds = fn, device, 0, 0.0

    def __call__(self, *args, **kwargs):
        t0 = _now(self.device)
        out = self.fn(*args, **kwargs)
        self.seconds += _now(self.device) - t0
        self.calls += 1
        return out


def _pard_sampling(model, counts: torch.Tensor, steps: int, device: str) -> dict[str, Any]:
    """One ``model.generate`` of ``len(counts)`` graphs of the given sizes in one batch with ``steps`` reverse steps
    per block; the denoiser's and the block head's calls counted and timed apart."""
    denoiser, head = model.denoiser, model.block_head
    timed_denoiser = _Timed(denoiser.forward, device)
    timed_head = _Timed(head.block_summary, device)
    denoiser.forward, head.block_summary = timed_denoiser, timed_head
    try:
        t0 = _now(device)
        graphs = model.generate(len(counts), steps=steps, seed=0, num_nodes=counts, batch_size=len(counts),
                                progress=False)
        seconds = _now(device) - t0
    finally:
        del denoiser.forward, head.block_summary  # back to the class's methods
    blocks = timed_denoiser.calls // steps
    return {"steps_per_block": steps, "seconds": seconds, "denoiser_calls": timed_denoiser.calls,
            "denoiser_s": timed_denoiser.seconds, "head_calls": timed_head.calls, "head_s": timed_head.seconds,
            "blocks": blocks, "nodes": [int(n) for n in graphs.num_nodes]}


def pard(setup: str, batch_size: int, num_graphs: int, steps: int = 3, warmup: int = 1, sample_steps: int = 2,
         chains: dict[str, list[int]] | None = None, device: str = "cpu") -> dict[str, Any]:
    """PARD's training step and sampling next to DiGress, DeFoG and (where its published setup has the same data)
    GDSS, in one process on the same batch of training graphs and the same node counts.

    PARD: the model settings of its shipped config (:func:`setups.pard_setup`). Training: one optimiser step of each
    family (DiGress: noise, extra features, transformer, cross-entropy, AdamW amsgrad; DeFoG: the same network under
    the flow's noise; GDSS: both score losses, Adam; PARD: ``PardModel._loss`` — block order, the parallel or
    sequential layout of its ``training_mode``, block-wise noise, denoiser, the separate block network, both losses
    — backward and AdamW), ``warmup`` rounds then ``steps`` rounds, the families alternating within
    each round so that a drifting load hits them alike; medians. Peak memory: each family's first step (its
    optimiser state included), RSS high-water reset before it (see :class:`PeakRSS`); on a GPU the allocator's peak.
    PARD's block order and layout alone (no grad) are timed in each round too. Matmul FLOPs of forward +
    backward (``FlopCounterMode``: mm, bmm, addmm, ...; not elementwise ops) are counted in the first, untimed
    round: unlike the times, they do not depend on the machine's load.

    Sampling: untrained weights, one batch of ``num_graphs`` graphs with node counts drawn from the dataset (seed 0,
    as :func:`sampling`). DiGress / DeFoG / GDSS: seconds per step measured over ``sample_steps`` steps (GDSS: PC
    steps), chains of ``chains[family]`` steps extrapolated. PARD: ``model.generate`` with the same node counts and
    ``sample_steps`` reverse steps per block, its block head set to draw the data's block sizes
    (:func:`setups.calibrate_block_sizes`); chains of ``chains["pard"]`` steps per block (default ``T`` and 20) are
    extrapolated from it (denoiser time x steps / ``sample_steps``, block head and the rest as measured).
    """
    import contextlib

    from torch.utils.flop_counter import FlopCounterMode

    from graphdiff.diffusion import cross_entropy_loss
    from graphdiff.diffusion.blocks import parallel_layout, partial_order, sequential_layout
    from graphdiff.flow import DiscreteFlow, initial_distribution
    from graphdiff.generation import sample_num_nodes

    ds = setups.digress_setup(setup)
    ps = setups.pard_setup(setup)
    gdss_name = setups.GDSS_FOR.get(setup)
    gs = setups.gdss_setup(gdss_name) if gdss_name else None
    info = ds.info
    flow = DiscreteFlow(initial_distribution("marginal", info.num_node_types, info.num_edge_types,
                                             info.node_marginals, info.edge_marginals))
    batch = setups.train_batch(ds.dataset, batch_size, device)
    pard_model = ps.model().to(device)
    layout = parallel_layout if pard_model.hparams.training_mode == "parallel" else sequential_layout
    stats = setups.block_statistics(pard_model, ps.dataset.split("train"))
    stats.pop("next_sizes")

    models: dict[str, torch.nn.Module] = {"discrete": ds.denoiser(), "flow": ds.denoiser(seed=1), "pard": pard_model}
    if gs is not None:
        models["gdss"] = gs.model()
    opts = {}
    for family, model in models.items():
        model.to(device).train()
        if family == "gdss":
            opts[family] = torch.optim.Adam(model.parameters(), lr=5e-3, weight_decay=1e-4)
        elif family == "pard":
            hp = model.hparams
            opts[family] = torch.optim.AdamW(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay,
                                             amsgrad=hp.amsgrad)
        else:
            opts[family] = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=1e-12, amsgrad=True)

    def loss_of(family: str) -> torch.Tensor:
        model = models[family]
        if family == "discrete":
            t = ds.process.sample_timesteps(batch.batch_size, device=device, training=True)
            return cross_entropy_loss(model(ds.process.add_noise(batch, t), t.float() / ds.T), batch,
                                      lambda_E=5.0)["loss"]
        if family == "flow":
            t = flow.sample_time(batch.batch_size, device=device)
            return cross_entropy_loss(model(flow.add_noise(batch, t), t), batch, lambda_E=5.0)["loss"]
        if family == "gdss":
            loss_x, loss_adj = gs.process.loss(model, batch)
            return loss_x + loss_adj
        return model._loss(batch, training=True)["loss"]

    phases = {f: {k: [] for k in ("loss", "backward", "optimizer", "total")} for f in models}
    peak: dict[str, float] = {}
    flops: dict[str, int] = {}
    order_ms: list[float] = []
    peak_method = "torch.cuda.max_memory_allocated() minus allocated before the step"
    for i in range(warmup + steps):
        for family in models:
            rss = PeakRSS() if i == 0 else None
            if i == 0 and device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
                mem0 = torch.cuda.memory_allocated()
            counter = FlopCounterMode(display=False) if i == 0 and warmup else contextlib.nullcontext()
            with counter:  # matmul FLOPs of forward + backward, counted in the untimed first step
                t0 = _now(device)
                loss = loss_of(family)
                t1 = _now(device)
                loss.backward()
                t2 = _now(device)
            if i == 0 and warmup:
                flops[family] = counter.get_total_flops()
            opts[family].step()
            opts[family].zero_grad(set_to_none=True)
            t3 = _now(device)
            del loss
            if rss is not None:
                if device.startswith("cuda"):
                    peak[family] = (torch.cuda.max_memory_allocated() - mem0) / 2**20
                else:
                    peak[family], peak_method = rss.peak_mb(), rss.method
            if i >= warmup:
                for key, value in zip(phases[family], (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                    phases[family][key].append(value * 1000)
        with torch.no_grad():
            t0 = _now(device)
            layout(batch, partial_order(batch, pard_model.hparams.max_hops))
            if i >= warmup:
                order_ms.append((_now(device) - t0) * 1000)
    train = {}
    for family, model in models.items():
        ms = {k: _median(v) for k, v in phases[family].items()}
        train[family] = {"batch_size": batch_size, "params": sum(p.numel() for p in model.parameters()), "ms": ms,
                         "ms_all_total": phases[family]["total"], "graphs_per_s": batch_size / (ms["total"] / 1000),
                         "peak_mem_mb": peak[family],
                         "gflop_per_step": flops[family] / 1e9 if family in flops else None}
    train["pard"]["order_layout_ms"] = _median(order_ms)
    with torch.no_grad():
        laid_out = layout(batch, partial_order(batch, pard_model.hparams.max_hops))[0]
    train["pard"]["training_mode"] = pard_model.hparams.training_mode
    train["pard"]["rows"] = laid_out.batch_size  # graphs the denoiser sees: B (parallel) or one per block
    train["pard"]["input_nodes"] = int(laid_out.node_mask.shape[1])
    for family in ("discrete", "flow", "gdss"):
        if family in train:
            train[family]["input_nodes"] = int(batch.node_mask.shape[1])
    del opts

    # ---- sampling
    for model in models.values():
        model.eval()
    gen = torch.Generator().manual_seed(0)
    counts = sample_num_nodes(info.node_count_distribution(), num_graphs, gen)
    T = pard_model.blocks.T
    chains = {"discrete": [ds.T, 50], "flow": [ds.T, 50], "gdss": [1000, 100], "pard": sorted({T, min(T, 20)}),
              **(chains or {})}
    sample: dict[str, Any] = {}
    for family in ("discrete", "flow"):
        r = sampling(setup, num_graphs, chains=chains[family], run=[], measure_steps=sample_steps, device=device,
                     family=family)
        sample[family] = {"calls_per_step": 1, "measure_steps": r["measure_steps"],
                          "chains": [{**c, "calls": c["steps"]} for c in r["chains"]]}
    if gs is not None:
        r = _gdss_sampling(gs, models["gdss"], num_graphs, chains["gdss"], sample_steps, device)
        sample["gdss"] = {"calls_per_step": 2, "sampler": gs.spec["sampler"], "measure_steps": sample_steps,
                          "chains": [{**c, "calls": 2 * c["steps"]} for c in r]}
    _pard_sampling(pard_model, counts.clamp(max=3), 1, device)  # warm-up: the same batch, a few small blocks
    measured = _pard_sampling(pard_model, counts, sample_steps, device)
    measured.pop("nodes")
    rest = measured["seconds"] - measured["denoiser_s"]
    rows = []
    for K in sorted(set(chains["pard"]) | {sample_steps}, reverse=True):
        seconds = measured["seconds"] if K == sample_steps else measured["denoiser_s"] * K / sample_steps + rest
        rows.append({"steps": K, "blocks": measured["blocks"], "calls": measured["blocks"] * K
                     + measured["head_calls"], "chain_s": seconds, "graphs_per_s": num_graphs / seconds,
                     "s_per_graph": seconds / num_graphs, "measured": K == sample_steps})
    sample["pard"] = {"measured": measured, "chains": rows,
                      "s_per_denoiser_call": measured["denoiser_s"] / max(measured["denoiser_calls"], 1),
                      "s_per_head_call": measured["head_s"] / max(measured["head_calls"], 1)}
    for family in ("discrete", "flow", "gdss"):
        for c in sample.get(family, {}).get("chains", []):
            c["s_per_graph"] = c["chain_s"] / num_graphs
    pard_spec = {"config": ps.config, "published_batch_size": ps.batch_size, **ps.spec}
    return {"setup": setup, "device": device, "threads": torch.get_num_threads(), "batch_size": batch_size,
            "steps": steps, "warmup": warmup, "num_graphs": num_graphs, "max_nodes": int(counts.max()),
            "gdss_setup": gdss_name, "pard_config": pard_spec, "pard_blocks": stats, "train": train,
            "peak_mem_method": peak_method, "sample": sample, "sample_steps": sample_steps}


# ----------------------------------------------------------------------------------------------------------------
# Metrics


def metrics_planar() -> dict[str, Any]:
    """Full planar evaluation, SPECTRE protocol: 40 generated vs 40 test graphs, five MMDs + V.U.N.

    The "generated" graphs are the first 40 training graphs (valid planar graphs, so V.U.N. exercises the
    isomorphism checks against the training set fully).
    """
    from graphdiff.evaluation import reference_graphs
    from graphdiff.metrics.evaluate import evaluate_graphs

    ds = setups.load("planar")
    test = reference_graphs(ds, "test")
    train = reference_graphs(ds, "train")
    samples = train[:40]
    t0 = time.perf_counter()
    result = evaluate_graphs(samples, test, train=train, protocol="spectre", kind="planar")
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "num_generated": len(samples), "num_reference": len(test),
            "num_train": len(train), "values": result}


def metrics_qm9(num_samples: int, num_reference: int | None = None) -> dict[str, Any]:
    """QM9 validity, uniqueness and FCD of ``num_samples`` test SMILES against the validation split."""
    from graphdiff.metrics.molecules import MoleculeEvaluator

    ds = setups.load("qm9")
    samples = ds.split_smiles("test")[:num_samples]
    reference = ds.split_smiles("val")
    if num_reference:
        reference = reference[:num_reference]
    evaluator = MoleculeEvaluator(test_smiles=reference, metrics=["validity", "uniqueness", "fcd"])
    t0 = time.perf_counter()
    first = evaluator(samples)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    evaluator(samples)
    t_cached = time.perf_counter() - t0
    return {"num_samples": len(samples), "num_reference": len(reference), "seconds_first": t_first,
            "seconds_cached_reference": t_cached, "values": first}


# ----------------------------------------------------------------------------------------------------------------
# Profile


def profile(setup: str, batch_size: int, device: str = "cpu", top: int = 15) -> dict[str, Any]:
    """Top operators (self time) of one training step after a warm-up step, from torch.profiler."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    s = setups.digress_setup(setup)
    model = _model(s, "graphdiff").to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=1e-12, amsgrad=True)
    batch = setups.train_batch(s.dataset, batch_size, device)

    def step():
        features, loss_of = _loss_pieces(s, model, batch, device)
        loss = loss_of(features())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)

    step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with torch_profile(activities=activities) as prof:
        step()
    events = prof.key_averages()
    cuda = device.startswith("cuda")

    def self_time(e) -> float:
        return (getattr(e, "self_device_time_total", 0.0) if cuda else e.self_cpu_time_total) / 1000.0

    total = sum(self_time(e) for e in events)
    rows = sorted(events, key=self_time, reverse=True)[:top]
    return {"setup": setup, "batch_size": batch_size, "device": device, "total_self_ms": total,
            "clock": "device" if cuda else "cpu",
            "ops": [{"name": e.key, "self_ms": self_time(e), "calls": e.count,
                     "share": self_time(e) / total if total else 0.0} for e in rows]}


def saved_activations(setup: str, batch_size: int, top: int = 8) -> dict[str, Any]:
    """MiB of tensors autograd keeps for the backward pass of one training forward, by module (layer indices merged).

    Counted with ``torch.autograd.graph.saved_tensors_hooks``, each storage once: deterministic, unlike RSS, and
    fast at a small batch (it scales linearly with the batch). Recomputed activations are not kept, so they do not
    count.
    """
    import collections

    s = setups.digress_setup(setup)
    model = _model(s, "graphdiff").train()
    batch = setups.train_batch(s.dataset, batch_size, "cpu")
    features, loss_of = _loss_pieces(s, model, batch, "cpu")
    extra = features()
    seen: dict[int, int] = {}
    stack = ["(top level)"]
    by_module: collections.Counter[str] = collections.Counter()

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in seen:
            seen[storage.data_ptr()] = storage.nbytes()
            name = ".".join("#" if part.isdigit() else part for part in stack[-1].split("."))
            by_module[name] += storage.nbytes()
        return t

    def enter(name: str):
        def hook(module: torch.nn.Module, args: Any) -> None:
            stack.append(name)
        return hook

    def leave(module: torch.nn.Module, args: Any, output: Any) -> None:
        stack.pop()

    hooks = []
    for name, module in model.named_modules():
        hooks += [module.register_forward_pre_hook(enter(name)), module.register_forward_hook(leave)]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss_of(extra)
    for h in hooks:
        h.remove()
    return {"setup": setup, "batch_size": batch_size, "saved_mb": sum(seen.values()) / 2**20,
            "by_module_mb": {k: v / 2**20 for k, v in by_module.most_common(top)}}


FUNCTIONS = {f.__name__: f for f in (matmul_peak, training, flops, equivalence, sampling, gdss, metrics_planar,
                                      metrics_qm9, profile, saved_activations, precision, allocator, compile_step,
                                      pard)}


def main(argv: list[str]) -> None:
    from graphdiff.runtime import keep_freed_memory

    keep_freed_memory()  # as the graphdiff command does (GRAPHDIFF_MALLOC=system to measure without)
    name, kwargs = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    result = FUNCTIONS[name](**kwargs)
    sys.stdout.write("\n@@RESULT@@" + json.dumps(result) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
