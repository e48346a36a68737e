"""Validity of synthetic graphs (planar, tree, SBM) and uniqueness / novelty / V.U.N. up to isomorphism.

Definitions follow SPECTRE/DiGress/DeFoG (``spectre_utils.py``):

* planar: connected and planar;
* tree: ``nx.is_tree`` (connected and acyclic);
* SBM: a block model fitted to the graph (:mod:`graphdiff.metrics.sbm_fit`, in place of graph-tool) has 2 to 5
  blocks of 20 to 40 nodes, and the Wald statistics of its estimated intra/inter-block edge probabilities
  against 0.3 / 0.005 have a mean p-value above 0.9.

Uniqueness, novelty and V.U.N. follow ``eval_fraction_unique_non_isomorphic_valid``: a sample is unique if it
is not isomorphic to an earlier sample; unique samples are novel if isomorphic to no training graph; V.U.N.
counts unique, novel and valid samples; all fractions are over all samples. ``novel`` is over all samples
(``1 - eval_fraction_isomorphic``). Isomorphism tests run only within buckets of equal Weisfeiler-Lehman
hash (equal hashes are necessary for isomorphism), which makes them fast and still exact.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence

import networkx as nx
import numpy as np
from scipy.stats import chi2

from graphdiff.metrics.graph_stats import parallel_map
from graphdiff.metrics.sbm_fit import BlockModelFit, fit_block_model

__all__ = [
    "VALIDITY_FUNCTIONS",
    "IsomorphismIndex",
    "is_planar_graph",
    "is_sbm_graph",
    "is_tree_graph",
    "sbm_wald_pvalue",
    "uniqueness_novelty",
    "validity_flags",
]


def is_planar_graph(graph: nx.Graph) -> bool:
    """Connected and planar (an empty graph is not valid)."""
    if graph.number_of_nodes() == 0:
        return False
    return nx.is_connected(graph) and nx.check_planarity(graph)[0]


def is_tree_graph(graph: nx.Graph) -> bool:
    """A tree: connected and acyclic (an empty graph is not valid)."""
    if graph.number_of_nodes() == 0:
        return False
    return nx.is_tree(graph)


def sbm_wald_pvalue(fit: BlockModelFit, p_intra: float = 0.3, p_inter: float = 0.005) -> float:
    """Mean p-value of DiGress's Wald statistics of the fitted block probabilities.

    Uses graph-tool's edge-count convention (edges inside a block counted twice over ``n (n - 1)`` ordered
    pairs), the ``1e-6`` guards and the mean over all ``B × B`` entries exactly as ``is_sbm_graph``.

    Args:
        fit: a fitted block model.
        p_intra: probability of an edge inside a block under the null.
        p_inter: probability of an edge between blocks under the null.

    Returns:
        ``mean(1 - χ²₁.cdf(W))``.
    """
    node_counts = fit.node_counts.astype(np.float64)
    edge_counts = fit.edge_counts.astype(np.float64).copy()
    np.fill_diagonal(edge_counts, 2 * np.diag(edge_counts))
    max_intra_edges = node_counts * (node_counts - 1)
    est_p_intra = np.diagonal(edge_counts) / (max_intra_edges + 1e-6)
    max_inter_edges = node_counts.reshape((-1, 1)) @ node_counts.reshape((1, -1))
    np.fill_diagonal(edge_counts, 0)
    est_p_inter = edge_counts / (max_inter_edges + 1e-6)
    w_intra = (est_p_intra - p_intra) ** 2 / (est_p_intra * (1 - est_p_intra) + 1e-6)
    w_inter = (est_p_inter - p_inter) ** 2 / (est_p_inter * (1 - est_p_inter) + 1e-6)
    w = w_inter.copy()
    np.fill_diagonal(w, w_intra)
    return float((1 - chi2.cdf(abs(w), 1)).mean())


def is_sbm_graph(
    graph: nx.Graph,
    p_intra: float = 0.3,
    p_inter: float = 0.005,
    strict: bool = True,
    min_block_size: int = 20,
    max_block_size: int = 40,
    min_blocks: int = 2,
    max_blocks: int = 5,
) -> bool | float:
    """DiGress's SBM test on a block model fitted without graph-tool.

    Args:
        graph: the graph to test.
        p_intra, p_inter: null edge probabilities.
        strict: return a bool (block-count and block-size checks, then mean p-value > 0.9); otherwise return
            the mean p-value.
        min_block_size, max_block_size, min_blocks, max_blocks: the strict checks.

    Returns:
        ``bool`` if ``strict`` else the mean p-value.
    """
    if graph.number_of_nodes() == 0 or graph.number_of_edges() == 0:
        return False if strict else 0.0
    fit = fit_block_model(graph)
    if strict and (
        (fit.node_counts > max_block_size).any()
        or (fit.node_counts < min_block_size).any()
        or not min_blocks <= fit.n_blocks <= max_blocks
    ):
        return False
    p = sbm_wald_pvalue(fit, p_intra, p_inter)
    return p > 0.9 if strict else p


VALIDITY_FUNCTIONS: dict[str, Callable[[nx.Graph], bool]] = {
    "planar": is_planar_graph,
    "tree": is_tree_graph,
    "sbm": is_sbm_graph,
}


def _wl_hash(graph: nx.Graph) -> str:
    with warnings.catch_warnings():
        # networkx >= 3.5 warns that unlabelled hashes changed; only equality within one run matters here.
        warnings.simplefilter("ignore", UserWarning)
        return nx.weisfeiler_lehman_graph_hash(graph, iterations=3)


class IsomorphismIndex:
    """Set of graphs up to isomorphism, bucketed by Weisfeiler-Lehman hash.

    Args:
        graphs: initial members.
    """

    def __init__(self, graphs: Sequence[nx.Graph] = ()) -> None:
        self._buckets: dict[str, list[nx.Graph]] = defaultdict(list)
        for g in graphs:
            self._buckets[_wl_hash(g)].append(g)

    def contains(self, graph: nx.Graph, key: str | None = None) -> bool:
        """Whether a graph isomorphic to ``graph`` is in the index (``key``: its WL hash, if known)."""
        bucket = self._buckets.get(_wl_hash(graph) if key is None else key, ())
        return any(nx.faster_could_be_isomorphic(graph, h) and nx.is_isomorphic(graph, h) for h in bucket)

    def add(self, graph: nx.Graph, key: str | None = None) -> None:
        self._buckets[_wl_hash(graph) if key is None else key].append(graph)


def uniqueness_novelty(
    generated: Sequence[nx.Graph],
    train: Sequence[nx.Graph] | None,
    valid: Sequence[bool] | None = None,
) -> dict[str, float]:
    """Fractions of unique, novel, unique-and-novel and valid-unique-novel samples.

    Args:
        generated: samples, in generation order (order decides which duplicate counts as unique).
        train: training graphs; ``None`` skips novelty.
        valid: validity flag per sample; ``None`` skips V.U.N.

    Returns:
        ``unique``; with ``train``: ``novel`` and ``unique_novel``; with ``train`` and ``valid``: ``vun``.
    """
    n = len(generated)
    if n == 0:
        return {}
    seen = IsomorphismIndex()
    train_index = IsomorphismIndex(train) if train is not None else None
    n_unique = n_novel = n_unique_novel = n_vun = 0
    for i, g in enumerate(generated):
        key = _wl_hash(g)
        in_train = train_index.contains(g, key) if train_index is not None else False
        n_novel += not in_train
        if seen.contains(g, key):
            continue
        seen.add(g, key)
        n_unique += 1
        if train_index is not None and not in_train:
            n_unique_novel += 1
            if valid is not None and valid[i]:
                n_vun += 1
    out = {"unique": n_unique / n}
    if train_index is not None:
        out["novel"] = n_novel / n
        out["unique_novel"] = n_unique_novel / n
        if valid is not None:
            out["vun"] = n_vun / n
    return out


def validity_flags(graphs: Sequence[nx.Graph], kind: str, n_jobs: int | None = 1) -> list[bool]:
    """Validity of each graph for a synthetic-graph ``kind`` (``planar``, ``tree`` or ``sbm``).

    The SBM test fits a block model per graph (~0.2 s for 100-200 nodes) and runs in a process pool when
    ``n_jobs`` allows.
    """
    if kind not in VALIDITY_FUNCTIONS:
        raise KeyError(f"unknown graph kind {kind!r}; known: {sorted(VALIDITY_FUNCTIONS)}")
    fn = VALIDITY_FUNCTIONS[kind]
    if kind == "sbm":
        return [bool(v) for v in parallel_map(fn, list(graphs), n_jobs=n_jobs, min_items_per_job=4)]
    return [bool(fn(g)) for g in graphs]
