"""GDSS's released weights through graphdiff's sampler and metrics (not run by CI or ``benchmarks run``).

    python -m benchmarks.gdss_checkpoints --mirror /work/.mirror/harryjo97+GDSS/repo
    python -m benchmarks.gdss_checkpoints --mirror REPO --datasets ego_small community_small --folds 3
    python -m benchmarks.gdss_checkpoints --checkpoints DIR --datasets qm9 --samples 1000 --folds 1
    python -m benchmarks.gdss_checkpoints --mirror REPO --datasets grid enzymes --sample-large

Separates graphdiff's sampling and evaluation code from its training code: the trained networks are GDSS's own
(``checkpoints/<data>/gdss_<data>.pth`` of github.com/harryjo97/GDSS, read from a bare git mirror of it or from a
directory of downloaded ``.pth`` files). For each dataset the benchmark

1. reads the checkpoint without executing code from it (``torch.load(weights_only=True)``; GDSS's config object,
   an ``easydict.EasyDict``, is read as a plain mapping);
2. checks that the checkpoint's own ``model``, ``sde`` and ``data`` settings are those of
   ``configs/sde/<dataset>.yaml`` and, with ``--mirror``, that GDSS's sampler config (``config/<dataset>.yaml``,
   ``config/sample_qm9.yaml``) has the sampler and ``sample.use_ema`` of graphdiff's config;
3. builds ``graphdiff.lit.ScoreSDEModel`` from that config and loads the raw or the EMA weights (as
   ``sample.use_ema`` says) into its ``GDSSScoreModel`` through :func:`map_gdss_state_dict`, an explicit name and
   layout mapping that fails on any tensor it cannot place exactly;
4. samples with ``model.generate`` (graphdiff's sampler, GDSS's settings) as many graphs as the test split, ``K``
   times with seeds ``s, s+1, ...`` (``s`` = GDSS's ``sample.seed``), and scores every draw with
   ``graphdiff.evaluation.evaluate_generated`` (GDSS's MMD protocol for the graph sets; for QM9 GDSS's molecule
   decoding, ``decoding="gdss"``: validity without correction, then uniqueness and novelty).

Results (mean ± sample standard deviation over the draws, every draw's value, timings, the command) are merged
per dataset into ``benchmarks/results/gdss_checkpoints.json``.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor

from benchmarks import report, setups
from benchmarks.quality import CONFIGS, MOLECULE_METRICS, SDE_EVAL_ARGS

RESULTS = Path(__file__).resolve().parent / "results" / "gdss_checkpoints.json"


@dataclass(frozen=True)
class Release:
    """Where GDSS keeps one dataset's checkpoint and sampler config, and its sampling seed."""

    checkpoint: str  # path inside the GDSS repository
    sampler_config: str  # GDSS config holding ``sampler`` and ``sample``
    seed: int  # GDSS's ``sample.seed``
    published: dict[str, float]  # GDSS Table 1 / 2 (MMD², GDSS protocol; molecule fractions)


RELEASES: dict[str, Release] = {
    "ego_small": Release("checkpoints/ego_small/gdss_ego_small.pth", "config/ego_small.yaml", 12,
                         {"degree": 0.021, "clustering": 0.024, "orbit": 0.007}),
    "community_small": Release("checkpoints/community_small/gdss_community_small.pth",
                               "config/community_small.yaml", 11,
                               {"degree": 0.045, "clustering": 0.086, "orbit": 0.007}),
    "grid": Release("checkpoints/grid/gdss_grid.pth", "config/grid.yaml", 13,
                    {"degree": 0.111, "clustering": 0.005, "orbit": 0.070}),
    "enzymes": Release("checkpoints/ENZYMES/gdss_enzymes.pth", "config/enzymes.yaml", 12,
                       {"degree": 0.026, "clustering": 0.061, "orbit": 0.009}),
    "qm9": Release("checkpoints/QM9/gdss_qm9.pth", "config/sample_qm9.yaml", 42,
                   {"validity": 0.9572, "uniqueness": 0.9846, "novelty": 0.8627}),
}
#: Datasets whose graphs are too large to sample on a CPU here without ``--sample-large`` (grid: up to 361 nodes,
#: ENZYMES: up to 125 nodes, 7 attention layers, 1000 steps).
LARGE = ("grid", "enzymes")
#: GDSS's QM9 node types: atomic numbers 6, 7, 8, 9 one-hot in this order, no charges.
QM9_GDSS_ATOMS = ["C", "N", "O", "F"]
#: GDSS ``data.init`` -> graphdiff ``node_features``.
INIT = {"deg": "degree", "atom": "types"}


class MappingError(ValueError):
    """A GDSS checkpoint that does not fit graphdiff's networks exactly (one line)."""


# ------------------------------------------------------------------------------------------- reading checkpoints
def read_checkpoint(dataset: str, mirror: Path | None = None, directory: Path | None = None) -> dict[str, Any]:
    """GDSS's checkpoint of ``dataset``: from ``directory`` (``<dir>/<data>/<file>.pth`` or ``<dir>/<file>.pth``)
    or from the bare git ``mirror`` of GDSS's repository.

    Loaded with ``weights_only=True``: tensors and plain containers only; GDSS's ``easydict.EasyDict`` config is
    read as an ``OrderedDict`` (the only extra type allowed), so no code from the file runs.
    """
    rel = RELEASES[dataset].checkpoint
    data: bytes | None = None
    if directory is not None:
        for path in (directory / Path(rel).relative_to("checkpoints"), directory / Path(rel).name):
            if path.is_file():
                data = path.read_bytes()
                break
    if data is None and mirror is not None:
        data = git_show(mirror, rel)
    if data is None:
        raise FileNotFoundError(f"{dataset}: {Path(rel).name} not found (give --mirror or --checkpoints)")
    with torch.serialization.safe_globals([(collections.OrderedDict, "easydict.EasyDict")]):
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def git_show(mirror: Path, path: str) -> bytes:
    """The bytes of ``path`` at ``HEAD`` of the bare git repository ``mirror``."""
    done = subprocess.run(["git", "-C", str(mirror), "show", f"HEAD:{path}"], capture_output=True, check=False)
    if done.returncode:
        raise FileNotFoundError(f"{mirror}: HEAD:{path}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def plain(obj: Any) -> Any:
    """Nested mappings as plain dicts (GDSS's config comes back as ``OrderedDict``s)."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    return obj


# ------------------------------------------------------------------------------------------- the name mapping
#: GDSS ScoreNetworkX parameter -> graphdiff ``ScoreNetworkX`` (``x_net``) parameter: the same layout.
X_RULES = [
    (re.compile(r"layers\.(\d+)\.(weight|bias)"), "x_net.layers.{0}.{1}"),
    (re.compile(r"final\.linears\.(\d+)\.(weight|bias)"), "x_net.final.linears.{0}.{1}"),
]
#: GDSS ScoreNetworkA parameter -> graphdiff ``ScoreNetworkA`` (``adj_net``) parameter. GDSS keeps one
#: ``Attention`` module per adjacency channel ``c`` (``attn.<c>.gnn_q``: a DenseGCNConv, weight ``[in, out]``,
#: bias ``[out]``); graphdiff stacks the channels (``query``: ChannelGCNConv, weight ``[C, in, out]``, bias
#: ``[C, 1, out]``), so channel ``c`` is the slice ``[c]`` (weight) or ``[c, 0]`` (bias).
CONV = {"q": "query", "k": "key", "v": "value"}
A_RULES = [
    (re.compile(r"layers\.(\d+)\.attn\.(\d+)\.gnn_([qkv])\.(weight|bias)"), "channel"),
    (re.compile(r"layers\.(\d+)\.(mlp|multi_channel)\.linears\.(\d+)\.(weight|bias)"),
     "adj_net.layers.{0}.{1}.linears.{2}.{3}"),
    (re.compile(r"layers\.(\d+)\.(mlp|multi_channel)\.linear\.(weight|bias)"),  # a 1-layer GDSS MLP
     "adj_net.layers.{0}.{1}.linears.0.{2}"),
    (re.compile(r"final\.linears\.(\d+)\.(weight|bias)"), "adj_net.final.linears.{0}.{1}"),
]
#: GDSS's last ScoreNetworkA layer computes node features (values and ``multi_channel``) that its forward never
#: uses; graphdiff's last layer has no such parameters (``node_output=False``). These tensors are dropped.
DEAD_IN_LAST_A_LAYER = re.compile(r"layers\.(\d+)\.(attn\.\d+\.gnn_v|multi_channel)\.")


def _target(net: str, key: str) -> tuple[str, tuple[int, ...]]:
    """graphdiff parameter name and index of the slice that GDSS's ``key`` of network ``net`` fills."""
    rules = X_RULES if net == "x" else A_RULES
    for pattern, template in rules:
        m = pattern.fullmatch(key)
        if not m:
            continue
        if template == "channel":
            layer, channel, which, kind = m.groups()
            name = f"adj_net.layers.{layer}.{CONV[which]}.{kind}"
            return name, (int(channel),) if kind == "weight" else (int(channel), 0)
        return template.format(*m.groups()), ()
    raise MappingError(f"GDSS {net} tensor {key!r}: no mapping rule (a network type graphdiff does not map?)")


def map_gdss_state_dict(x_state: dict[str, Tensor], adj_state: dict[str, Tensor], score_model: torch.nn.Module,
                        adj_layers: int) -> tuple[dict[str, Tensor], list[str]]:
    """graphdiff ``GDSSScoreModel`` state dict holding GDSS's ``x_state`` (ScoreNetworkX) and ``adj_state``
    (ScoreNetworkA, ``adj_layers`` attention layers), and the GDSS tensors left out (dead in GDSS's forward).

    Every graphdiff tensor must be filled exactly once, every GDSS tensor placed (or be one of the dead tensors of
    GDSS's last ScoreNetworkA layer), with equal shapes.

    Raises:
        MappingError: an unmatched, duplicated or mis-shaped tensor (one line naming it).
    """
    target = score_model.state_dict()
    out = {k: torch.empty_like(v) for k, v in target.items()}
    filled = {k: torch.zeros(v.shape, dtype=torch.bool) for k, v in target.items()}
    dropped = []
    for net, state in (("x", x_state), ("adj", adj_state)):
        for key, tensor in state.items():
            key = key.removeprefix("module.")  # a DataParallel checkpoint
            name, index = _target(net, key)
            if name not in target:
                dead = DEAD_IN_LAST_A_LAYER.match(key) if net == "adj" else None
                if dead and int(dead.group(1)) == adj_layers - 1:
                    dropped.append(f"{net}:{key}")
                    continue
                raise MappingError(f"GDSS {net} tensor {key!r} {tuple(tensor.shape)}: graphdiff has no {name!r}")
            if index and index[0] >= target[name].shape[0]:
                raise MappingError(f"GDSS {net} tensor {key!r}: channel {index[0]} beyond graphdiff {name}'s "
                                   f"{target[name].shape[0]} channels")
            slot = target[name][index] if index else target[name]
            if tuple(slot.shape) != tuple(tensor.shape):
                raise MappingError(f"GDSS {net} tensor {key!r} {tuple(tensor.shape)} does not fit graphdiff "
                                   f"{name}{list(index) if index else ''} {tuple(slot.shape)}")
            mask = filled[name][index] if index else filled[name]
            if mask.any():
                raise MappingError(f"GDSS {net} tensor {key!r}: graphdiff {name} filled twice")
            if index:
                out[name][index] = tensor.to(slot.dtype)
                filled[name][index] = True
            else:
                out[name] = tensor.to(slot.dtype).clone()
                filled[name][...] = True
    missing = [k for k, f in filled.items() if not f.all()]
    if missing:
        raise MappingError(f"graphdiff tensors not set by the checkpoint: {', '.join(missing)}")
    return out, dropped


def ema_state(ema: dict[str, Any], raw: dict[str, Tensor], net: str) -> dict[str, Tensor]:
    """GDSS's EMA (``ExponentialMovingAverage.state_dict()``: ``shadow_params``, a list in the order of the
    network's ``parameters()``, which is its state dict's order: GDSS's networks have no buffers) as a state
    dict with the names of ``raw``.

    Raises:
        MappingError: a different number of tensors, or one of another shape.
    """
    shadow = list(ema["shadow_params"])
    if len(shadow) != len(raw):
        raise MappingError(f"GDSS ema_{net}: {len(shadow)} shadow tensors for {len(raw)} parameters")
    out = {}
    for (key, value), avg in zip(raw.items(), shadow, strict=True):
        if tuple(avg.shape) != tuple(value.shape):
            raise MappingError(f"GDSS ema_{net}: shadow of {key!r} has shape {tuple(avg.shape)}, "
                               f"parameter {tuple(value.shape)}")
        out[key] = avg
    return out


def load_gdss_weights(score_model: torch.nn.Module, checkpoint: dict[str, Any], use_ema: bool) -> list[str]:
    """Load a GDSS checkpoint's raw or EMA weights into graphdiff's ``GDSSScoreModel``; returns the dropped GDSS
    tensors."""
    x_state, adj_state = checkpoint["x_state_dict"], checkpoint["adj_state_dict"]
    if use_ema:
        if "ema_x" not in checkpoint:
            raise MappingError("the checkpoint holds no EMA weights (ema_x / ema_adj)")
        x_state = ema_state(checkpoint["ema_x"], x_state, "x")
        adj_state = ema_state(checkpoint["ema_adj"], adj_state, "adj")
    layers = int(checkpoint["params_adj"]["num_layers"])
    state, dropped = map_gdss_state_dict(x_state, adj_state, score_model, layers)
    score_model.load_state_dict(state, strict=True)
    return dropped


# ------------------------------------------------------------------------------------------- config checks
def graphdiff_config(dataset: str) -> dict[str, Any]:
    """``configs/sde/<dataset>.yaml``'s model arguments."""
    return yaml.safe_load((CONFIGS / "sde" / f"{dataset}.yaml").read_text())["model"]["init_args"]


def _diff(what: str, ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    keys = sorted(set(ours) | set(theirs))
    return [f"{what}.{k}: graphdiff {ours.get(k)!r} vs GDSS {theirs.get(k)!r}" for k in keys
            if ours.get(k) != theirs.get(k)]


def check_config(dataset: str, checkpoint: dict[str, Any], init: dict[str, Any], num_features: int,
                 mirror: Path | None) -> dict[str, Any]:
    """Check the checkpoint's settings (and, with ``mirror``, GDSS's sampler config) against graphdiff's config.

    Raises:
        MappingError: the first differences, in one line.
    """
    cfg = plain(checkpoint["model_config"])
    problems = _diff("model", init["model"], cfg["model"])
    problems += _diff("sde.x", init["sde_x"], cfg["sde"]["x"]) + _diff("sde.adj", init["sde_adj"], cfg["sde"]["adj"])
    if INIT.get(cfg["data"]["init"]) != init["node_features"]:
        problems.append(f"data.init {cfg['data']['init']!r} vs node_features {init['node_features']!r}")
    if int(cfg["data"]["max_feat_num"]) != num_features:
        problems.append(f"data.max_feat_num {cfg['data']['max_feat_num']} vs graphdiff's {num_features} features")
    checked = {"checkpoint": "model, sde, data.init, data.max_feat_num equal configs/sde/" + f"{dataset}.yaml"}
    if mirror is not None:
        path = RELEASES[dataset].sampler_config
        gdss = yaml.safe_load(git_show(mirror, path))
        sampler = {**gdss["sampler"], **{k: gdss["sample"][k] for k in ("probability_flow", "noise_removal", "eps")}}
        problems += _diff("sampler", init["sampler"], sampler)
        if bool(gdss["sample"]["use_ema"]) != bool(init.get("sample_with_ema", True)):
            problems.append(f"sample.use_ema {gdss['sample']['use_ema']} vs sample_with_ema "
                            f"{init.get('sample_with_ema', True)}")
        checked["sampler"] = f"sampler, sample.use_ema equal GDSS's {path} (seed {gdss['sample']['seed']})"
        if int(gdss["sample"]["seed"]) != RELEASES[dataset].seed:
            problems.append(f"sample.seed {gdss['sample']['seed']} vs {RELEASES[dataset].seed}")
    else:
        checked["sampler"] = "not checked (no --mirror): configs/sde's sampler and sample_with_ema taken as GDSS's"
    if problems:
        raise MappingError(f"{dataset}: settings differ: " + "; ".join(problems[:4]))
    return checked


# ------------------------------------------------------------------------------------------- the model
def gdss_qm9_info(info: Any) -> Any:
    """graphdiff's QM9 ``DatasetInfo`` with GDSS's four neutral atom types (C, N, O, F): charged classes merged
    into their element (marginals summed; valencies and masses of the neutral atoms)."""
    from graphdiff.info import DatasetInfo

    if isinstance(info, dict):
        info = DatasetInfo.from_dict(info)
    index = {name: i for i, name in enumerate(info.node_types)}
    missing = [a for a in QM9_GDSS_ATOMS if a not in index]
    if missing:
        raise MappingError(f"qm9: graphdiff's atom types lack {missing}")
    marginals = [0.0] * len(QM9_GDSS_ATOMS)
    for name, p in zip(info.node_types, info.node_marginals, strict=True):
        element = name.rstrip("+-")
        marginals[QM9_GDSS_ATOMS.index(element)] += p
    pick = [index[a] for a in QM9_GDSS_ATOMS]
    return replace(info, node_types=list(QM9_GDSS_ATOMS), node_marginals=marginals,
                   valencies=[info.valencies[i] for i in pick] if info.valencies else None,
                   atom_weights=[info.atom_weights[i] for i in pick] if info.atom_weights else None)


def build_model(dataset: str) -> tuple[Any, Any, dict[str, Any]]:
    """The data module, ``ScoreSDEModel`` built from ``configs/sde/<dataset>.yaml`` and its model arguments.

    QM9: graphdiff's default qm9 split (``protocol: gdss`` needs MoFlow's qm9.csv), with GDSS's four neutral atom
    types as node classes (the network's 4 input features)."""
    from graphdiff.datasets.datamodule import GraphDataModule
    from graphdiff.lit import ScoreSDEModel

    init = {k: v for k, v in graphdiff_config(dataset).items() if k not in SDE_EVAL_ARGS}
    dm = GraphDataModule(dataset, batch_size=1)
    info = gdss_qm9_info(dm.dataset_info) if dataset == "qm9" else dm.dataset_info
    return dm, ScoreSDEModel(dataset_info=info, **init), init


# ------------------------------------------------------------------------------------------- the run
def run_dataset(dataset: str, folds: int, samples: int | None, mirror: Path | None, directory: Path | None,
                sample: bool, batch_size: int | None) -> dict[str, Any]:
    """One dataset's row: the checks, then ``folds`` draws scored by graphdiff's metrics (``sample=False``: the
    checks and the weight mapping only)."""
    from graphdiff.evaluation import evaluate_generated

    start = time.perf_counter()
    release = RELEASES[dataset]
    checkpoint = read_checkpoint(dataset, mirror, directory)
    dm, model, init = build_model(dataset)
    checked = check_config(dataset, checkpoint, init, model.num_features, mirror)
    use_ema = bool(init.get("sample_with_ema", True))
    dropped = load_gdss_weights(model.score_model, checkpoint, use_ema)
    model.eval()
    row: dict[str, Any] = {
        "checkpoint": release.checkpoint, "weights": "EMA" if use_ema else "raw", "checks": checked,
        "dropped_gdss_tensors": len(dropped), "sampler": dict(init["sampler"]),
        "drop_isolated": bool(init.get("drop_isolated", False)), "published": release.published,
    }
    if dropped:
        row["dropped_note"] = ("GDSS's last ScoreNetworkA layer computes node features its forward never uses "
                               "(gnn_v, multi_channel); graphdiff's last layer has none")
    if not sample:
        row["wall_s"] = time.perf_counter() - start
        return row
    is_molecule = model.info.kind == "molecule"
    count = samples or (1000 if is_molecule else len(dm.data.split("test")))
    seeds = [release.seed + k for k in range(folds)]
    values: dict[str, list[float]] = {}
    draws = []
    for seed in seeds:
        t0 = time.perf_counter()
        graphs = model.generate(count, seed=seed, batch_size=batch_size or count, progress=False)
        sample_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        metrics = evaluate_generated(graphs, model.info, dm.data, reference_split="test",
                                     metrics=MOLECULE_METRICS if is_molecule else None,
                                     decoding=init.get("decoding") if is_molecule else None)
        eval_s = time.perf_counter() - t0
        numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for k, v in numbers.items():
            values.setdefault(k, []).append(v)
        draws.append({"seed": seed, "sample_s": round(sample_s, 1), "eval_s": round(eval_s, 1), "metrics": numbers})
        print(f"[{dataset}] seed {seed}: " + ", ".join(f"{k} {v:.4g}" for k, v in numbers.items())
              + f" ({sample_s:.0f} s sampling, {eval_s:.0f} s evaluation)", flush=True)
    row.update(samples=count, folds=folds, seeds=seeds, draws=draws,
               metrics={k: {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else None}
                        for k, v in values.items() if len(v) == folds},
               wall_s=round(time.perf_counter() - start, 1))
    return row


def command_line(argv: list[str]) -> str:
    threads = os.environ.get("OMP_NUM_THREADS")
    return (f"OMP_NUM_THREADS={threads} " if threads else "") + " ".join(
        ["python -m benchmarks.gdss_checkpoints", *argv])


def summary(dataset: str, row: dict[str, Any]) -> str:
    if "error" in row:
        return f"{dataset}: failed: {row['error']}"
    if "metrics" not in row:
        return f"{dataset}: weights mapped and checked; not sampled ({row.get('not_sampled', '')})"
    parts = []
    for k, m in row["metrics"].items():
        scale = 100 if dataset == "qm9" else 1
        std = f" ± {scale * m['std']:.3g}" if m["std"] is not None else ""
        pub = row["published"].get(k)
        parts.append(f"{k} {scale * m['mean']:.4g}{std}" + (f" (GDSS {scale * pub:.4g})" if pub is not None else ""))
    return f"{dataset} ({row['samples']} samples x {row['folds']} draws, {row['weights']} weights): " + ", ".join(parts)


NOTES = [
    "MMDs are squared (GDSS protocol: Gaussian EMD kernel for degree and clustering, Gaussian kernel for orbit; "
    "isolated nodes removed as drop_isolated / GDSS's adjs_to_graphs). std: sample standard deviation over draws.",
    "Node counts are drawn from graphdiff's training-split distribution (GDSS draws the node masks of random "
    "training graphs); graphdiff pads each batch to its largest sampled graph (GDSS to max_node_num).",
    "QM9: graphdiff's default qm9 split (DiGress's), not GDSS's valid_idx_qm9 test rows (protocol: gdss needs "
    "MoFlow's qm9.csv, not available here); node classes C, N, O, F as GDSS. Novelty is against this split's "
    "training SMILES. validity = fraction valid without correction (decoding: gdss); uniqueness and novelty of "
    "the corrected molecules as GDSS. GDSS samples 10,000 molecules; see 'samples'.",
    "grid and ENZYMES are mapped and checked but not sampled unless --sample-large (grid graphs have up to 361 "
    "nodes, ENZYMES 125; 1000 steps of 7-layer attention networks are too slow on this CPU).",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gdss_checkpoints", description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, default=None, help="bare git mirror of github.com/harryjo97/GDSS")
    parser.add_argument("--checkpoints", type=Path, default=None, help="directory of GDSS's .pth files")
    parser.add_argument("--datasets", nargs="+", default=["ego_small", "community_small"], choices=sorted(RELEASES))
    parser.add_argument("--folds", type=int, default=3, help="draws with seeds GDSS's sample.seed + 0, 1, ...")
    parser.add_argument("--samples", type=int, default=None,
                        help="graphs per draw (default: the test split's size; 1000 molecules for qm9)")
    parser.add_argument("--batch-size", type=int, default=None, help="graphs per sampling batch (default: all)")
    parser.add_argument("--sample-large", action="store_true", help="also sample grid and enzymes")
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON the rows are merged into")
    args = parser.parse_args(argv)
    if args.mirror is None and args.checkpoints is None:
        parser.error("give --mirror or --checkpoints")
    if args.folds < 1:
        parser.error("--folds must be >= 1")
    setups.ensure_data_env()
    raw_argv = argv if argv is not None else sys.argv[1:]
    command = command_line([a for i, a in enumerate(raw_argv)
                            if a != "--results" and (i == 0 or raw_argv[i - 1] != "--results")])
    m = report.machine_info("cpu")
    machine = f"{m['cpu']}, {m['cores']} cores, {torch.get_num_threads()} torch threads, torch {m['torch']}"
    failed = False
    for dataset in args.datasets:
        sample = args.sample_large or dataset not in LARGE
        try:
            row = run_dataset(dataset, args.folds, args.samples, args.mirror, args.checkpoints, sample,
                              args.batch_size)
        except (MappingError, FileNotFoundError) as exc:
            row, failed = {"error": str(exc)}, True
        if not sample and "error" not in row:
            row["not_sampled"] = "large graphs; rerun with --sample-large"
        row.update(command=command, machine=machine, date=m["date"])
        print(summary(dataset, row), flush=True)
        # merged into the file as it is now (other runs may have written other datasets meanwhile)
        previous = json.loads(args.results.read_text()) if args.results.exists() else {}
        results = {"notes": NOTES, "datasets": {**previous.get("datasets", {}), dataset: row}}
        report.atomic_write_text(args.results, json.dumps(results, indent=1))  # after every dataset
    print(f"wrote {args.results}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
