"""One-call evaluation of generated graphs and molecules, and the protocol table of the MMD metrics.

Protocols (see docs/metrics.md):

* ``spectre`` — SPECTRE / DiGress / DeFoG on planar, SBM and tree graphs: Gaussian kernel on the total
  variation distance; histograms normalised as ``h / (Σh + 1e-6)``; σ = 1 (degree, spectral, wavelet),
  0.1 (clustering), 30 (orbit counts, not normalised).
* ``gdss`` — GraphRNN / GDSS on community-small, ego-small, grid, ENZYMES: Gaussian kernel on the earth mover's
  distance for degree (σ = 1), clustering (σ = 0.1, 100 bins per unit distance) and spectral (σ = 1);
  histograms normalised as ``h / Σh``; plain Gaussian kernel with σ = 30 on orbit counts. No wavelet.

:class:`GraphEvaluator` and :class:`~graphdiff.metrics.molecules.MoleculeEvaluator` precompute what depends
only on the reference and training sets, so validation inside training pays for it once;
:func:`evaluate_graphs` and :func:`evaluate_molecules` are the one-shot forms the CLI calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np

from graphdiff.errors import ConfigError
from graphdiff.metrics.graph_stats import compute_statistics, single_threaded_blas
from graphdiff.metrics.graph_validity import VALIDITY_FUNCTIONS, uniqueness_novelty, validity_flags
from graphdiff.metrics.mmd import mmd_squared

__all__ = [
    "GRAPH_METRICS",
    "PROTOCOLS",
    "GraphEvaluator",
    "MMDSpec",
    "evaluate_folds",
    "evaluate_graphs",
    "evaluate_molecules",
    "to_networkx",
]


@dataclass(frozen=True)
class MMDSpec:
    """How one MMD metric is computed.

    Attributes:
        statistic: key of :data:`graphdiff.metrics.graph_stats.STATISTICS`.
        kernel: key of :data:`graphdiff.metrics.mmd.KERNELS`.
        sigma: kernel bandwidth.
        is_hist: normalise each statistic vector before the kernel.
        normalize_eps: constant added to a histogram's total when normalising.
        distance_scaling: bins per unit ground distance (EMD kernel only).
    """

    statistic: str
    kernel: str
    sigma: float
    is_hist: bool = True
    normalize_eps: float = 1e-6
    distance_scaling: float | None = None

    def kernel_kwargs(self) -> dict[str, float]:
        kwargs = {"sigma": self.sigma}
        if self.distance_scaling is not None:
            kwargs["distance_scaling"] = self.distance_scaling
        return kwargs


PROTOCOLS: dict[str, dict[str, MMDSpec]] = {
    "spectre": {
        "degree": MMDSpec("degree", "gaussian_tv", 1.0),
        "clustering": MMDSpec("clustering", "gaussian_tv", 0.1),
        "orbit": MMDSpec("orbit", "gaussian_tv", 30.0, is_hist=False),
        "spectral": MMDSpec("spectral", "gaussian_tv", 1.0),
        "wavelet": MMDSpec("wavelet", "gaussian_tv", 1.0),
    },
    "gdss": {
        "degree": MMDSpec("degree", "gaussian_emd", 1.0, normalize_eps=0.0, distance_scaling=1.0),
        "clustering": MMDSpec("clustering", "gaussian_emd", 0.1, normalize_eps=0.0, distance_scaling=100.0),
        "orbit": MMDSpec("orbit", "gaussian", 30.0, is_hist=False),
        "spectral": MMDSpec("spectral", "gaussian_emd", 1.0, normalize_eps=0.0, distance_scaling=1.0),
    },
}

#: Non-MMD graph metrics: ``valid`` needs a graph kind, ``novel``/``vun`` a training set.
GRAPH_METRICS = ("valid", "unique", "novel", "unique_novel", "vun")


def to_networkx(graph: Any) -> nx.Graph:
    """A simple undirected networkx graph from a networkx graph or a square adjacency matrix.

    Self-loops are dropped and any non-zero entry counts as an edge.

    Args:
        graph: ``nx.Graph`` or array-like ``[n, n]`` (numpy array, torch tensor, nested lists).

    Returns:
        An ``nx.Graph`` (the input itself when it is already a simple undirected graph).
    """
    if isinstance(graph, nx.Graph):
        if graph.is_directed() or graph.is_multigraph():
            graph = nx.Graph(graph.to_undirected() if graph.is_directed() else graph)
        if nx.number_of_selfloops(graph) > 0:
            graph = graph.copy()
            graph.remove_edges_from(list(nx.selfloop_edges(graph)))
        return graph
    if hasattr(graph, "detach"):
        graph = graph.detach().cpu().numpy()
    adjacency = np.asarray(graph)
    if adjacency.ndim != 2 or adjacency.shape[0] != adjacency.shape[1]:
        raise ConfigError(f"expected a square adjacency matrix, got an array of shape {adjacency.shape}")
    adjacency = (adjacency != 0) | (adjacency.T != 0)
    np.fill_diagonal(adjacency, False)
    return nx.from_numpy_array(adjacency.astype(np.int8))


def _resolve_graph_metrics(
    protocol: str, kind: str | None, has_train: bool, metrics: Iterable[str] | None
) -> list[str]:
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown MMD protocol {protocol!r}; choose one of {sorted(PROTOCOLS)}")
    if kind is not None and kind not in VALIDITY_FUNCTIONS:
        raise ConfigError(f"unknown graph kind {kind!r}; choose one of {sorted(VALIDITY_FUNCTIONS)} or None")
    available = list(PROTOCOLS[protocol]) + ["unique"]
    if kind is not None:
        available.append("valid")
    if has_train:
        available += ["novel", "unique_novel"]
        if kind is not None:
            available.append("vun")
    if metrics is None:
        return available
    metrics = list(metrics)
    for name in metrics:
        if name not in available:
            why = ""
            if name in GRAPH_METRICS:
                why = " (valid needs a graph kind; novel/vun need training graphs)"
            elif any(name in spec for spec in PROTOCOLS.values()):
                why = f" (not part of protocol {protocol!r})"
            raise ConfigError(f"metric {name!r} is not available here{why}; available: {available}")
    return metrics


class GraphEvaluator:
    """Evaluate generated graphs against fixed reference (and training) graphs.

    Reference statistics and the training-set isomorphism index are computed lazily once and reused.

    Args:
        reference: reference graphs for the MMDs (the test split in the papers' tables).
        train: training graphs for novelty and V.U.N.
        protocol: key of :data:`PROTOCOLS`.
        kind: ``"planar"``, ``"sbm"``, ``"tree"`` or ``None`` (no validity).
        metrics: subset of metric names; default all that apply.
        n_jobs: worker processes for statistics and SBM fits (``None``: automatic, ``1``: none).
    """

    def __init__(
        self,
        reference: Sequence[Any],
        train: Sequence[Any] | None = None,
        protocol: str = "spectre",
        kind: str | None = None,
        metrics: Iterable[str] | None = None,
        n_jobs: int | None = None,
    ) -> None:
        self.protocol = protocol
        self.kind = kind
        self.metrics = _resolve_graph_metrics(protocol, kind, train is not None, metrics)
        self.specs = {m: PROTOCOLS[protocol][m] for m in self.metrics if m in PROTOCOLS[protocol]}
        self.reference = [g for g in map(to_networkx, reference) if g.number_of_nodes() > 0]
        self.train = [to_networkx(g) for g in train] if train is not None else None
        self.n_jobs = n_jobs
        self._reference_stats: dict[str, list[np.ndarray]] | None = None

    def _statistic_names(self) -> list[str]:
        return sorted({spec.statistic for spec in self.specs.values()})

    def reference_statistics(self) -> dict[str, list[np.ndarray]]:
        if self._reference_stats is None:
            self._reference_stats = compute_statistics(self.reference, self._statistic_names(), self.n_jobs)
        return self._reference_stats

    def __call__(self, generated: Sequence[Any]) -> dict[str, float]:
        """Metrics of ``generated`` (networkx graphs or adjacency matrices; empty graphs are kept for validity,
        uniqueness and novelty but left out of the MMDs, as in the reference code)."""
        graphs = [to_networkx(g) for g in generated]
        non_empty = [g for g in graphs if g.number_of_nodes() > 0]
        results: dict[str, float] = {}
        with single_threaded_blas():
            if self.specs:
                names = self._statistic_names()
                if self._reference_stats is None:
                    # One pool for both sets: the pool's start-up is paid once.
                    both = compute_statistics(self.reference + non_empty, names, self.n_jobs)
                    n_ref = len(self.reference)
                    self._reference_stats = {k: v[:n_ref] for k, v in both.items()}
                    pred_stats = {k: v[n_ref:] for k, v in both.items()}
                else:
                    pred_stats = compute_statistics(non_empty, names, self.n_jobs)
                for name, spec in self.specs.items():
                    results[name] = mmd_squared(
                        self._reference_stats[spec.statistic],
                        pred_stats[spec.statistic],
                        kernel=spec.kernel,
                        is_hist=spec.is_hist,
                        normalize_eps=spec.normalize_eps,
                        **spec.kernel_kwargs(),
                    )
            wanted = set(self.metrics)
            valid = None
            if self.kind is not None and wanted & {"valid", "vun"}:
                valid = validity_flags(graphs, self.kind, n_jobs=self.n_jobs)
                if "valid" in wanted:
                    results["valid"] = float(np.mean(valid)) if valid else float("nan")
            if wanted & {"unique", "novel", "unique_novel", "vun"}:
                fractions = uniqueness_novelty(graphs, self.train, valid)
                results.update({k: v for k, v in fractions.items() if k in wanted})
        return {m: results[m] for m in self.metrics if m in results}


def evaluate_graphs(
    generated: Sequence[Any],
    reference: Sequence[Any],
    train: Sequence[Any] | None = None,
    protocol: str = "spectre",
    kind: str | None = None,
    metrics: Iterable[str] | None = None,
    n_jobs: int | None = None,
) -> dict[str, float]:
    """Evaluate generated graphs: MMD² of the protocol's statistics, and validity/uniqueness/novelty/V.U.N.

    Args:
        generated: networkx graphs or square adjacency matrices.
        reference: reference graphs for the MMDs.
        train: training graphs (novelty, V.U.N.).
        protocol: ``"spectre"`` or ``"gdss"`` (see :data:`PROTOCOLS`).
        kind: ``"planar"``, ``"sbm"``, ``"tree"`` or ``None``.
        metrics: subset of ``degree, clustering, orbit, spectral, wavelet, valid, unique, novel, unique_novel,
            vun``; default: all that apply.
        n_jobs: worker processes (``None`` automatic, ``1`` none, ``-1`` all CPUs).

    Returns:
        ``{metric: value}``; MMDs are squared, fractions are in ``[0, 1]``.
    """
    evaluator = GraphEvaluator(reference, train, protocol=protocol, kind=kind, metrics=metrics, n_jobs=n_jobs)
    return evaluator(generated)


def evaluate_molecules(
    generated: Sequence[Any],
    train_smiles: Iterable[str] | None = None,
    test_smiles: Sequence[str] | None = None,
    metrics: Iterable[str] | None = None,
    n_jobs: int | None = None,
    **options: Any,
) -> dict[str, float]:
    """Evaluate generated molecules (RDKit mols, SMILES, or ``None`` for failures).

    Args:
        generated: the samples, in generation order.
        train_smiles: training SMILES (novelty; MOSES novelty).
        test_smiles: reference SMILES (FCD, NSPDK, MOSES-style similarity and property metrics).
        metrics: subset of :data:`graphdiff.metrics.molecules.MOLECULE_METRICS`; default all that apply.
        n_jobs: worker processes.
        **options: further :class:`~graphdiff.metrics.molecules.MoleculeEvaluator` options.

    Returns:
        ``{metric: value}``.
    """
    from graphdiff.metrics.molecules import MoleculeEvaluator  # RDKit and ChemNet load only when needed

    evaluator = MoleculeEvaluator(train_smiles, test_smiles, metrics=metrics, n_jobs=n_jobs, **options)
    return evaluator(generated)


def evaluate_folds(
    generated: Sequence[Any], evaluate: Callable[[Sequence[Any]], Mapping[str, float]], n_folds: int = 5
) -> dict[str, dict[str, float]]:
    """Mean and standard deviation of metrics over contiguous folds of the samples.

    Args:
        generated: all samples.
        evaluate: maps one fold to ``{metric: value}``, e.g. a :class:`GraphEvaluator` (reference statistics
            are then computed once for all folds).
        n_folds: number of folds (``len(generated) // n_folds`` samples each; a remainder is dropped).

    Returns:
        ``{metric: {"mean": m, "std": s}}`` with the population standard deviation (``ddof = 0``).
    """
    if n_folds < 1 or len(generated) < n_folds:
        raise ConfigError(f"cannot split {len(generated)} samples into {n_folds} folds")
    size = len(generated) // n_folds
    per_fold = [evaluate(list(generated[i * size : (i + 1) * size])) for i in range(n_folds)]
    keys = [k for k in per_fold[0] if all(k in f for f in per_fold)]
    out = {}
    for k in keys:
        values = np.array([f[k] for f in per_fold], dtype=np.float64)
        out[k] = {"mean": float(values.mean()), "std": float(values.std())}
    return out
