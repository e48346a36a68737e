"""Synthetic benchmark graphs generated from a seed: ``planar``, ``sbm``, ``tree`` and ``comm20``.

The generators follow the SPECTRE benchmark (Martinkus et al., 2022), which DiGress and later work
evaluate on; ``comm20`` follows the community generator of GraphScoreMatching / GDSS that SPECTRE
reuses. Every graph ``i`` is drawn from its own NumPy stream ``default_rng([seed, i])``, so a graph
does not depend on how many others are generated.

Splits follow DiGress (:func:`graphdiff.datasets.splits.spectre_split`; 128 / 32 / 40 for 200 graphs), indices
stored sorted, as DiGress keeps the graphs of each split in generation order.

All graphs are unlabelled: node classes ``["node"]``, edge classes ``["none", "edge"]``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import networkx as nx
import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import Delaunay

from graphdiff.datasets.dataset import BuildContext, BuiltDataset, GraphDataset
from graphdiff.datasets.registry import register
from graphdiff.datasets.splits import spectre_split
from graphdiff.errors import ConfigError, DataError
from graphdiff.io import text_sha256
from graphdiff.storage import GraphList

NODE_TYPES = ["node"]
EDGE_TYPES = ["none", "edge"]
# Bumped whenever a generator changes the graphs it draws for the same settings.
GENERATOR_VERSION = 1

Edges = np.ndarray  # [m, 2] int64 node pairs


# ---------------------------------------------------------------------------------------------- generators
def planar_graph(rng: np.random.Generator, num_nodes: int) -> Edges:
    """Edges of the Delaunay triangulation of ``num_nodes`` uniform points in the unit square."""
    points = rng.random((num_nodes, 2))
    simplices = Delaunay(points).simplices  # [T, 3]
    return simplices[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2).astype(np.int64)


def sbm_block_sizes(
    rng: np.random.Generator, min_communities: int, max_communities: int, min_size: int, max_size: int
) -> np.ndarray:
    """``[k]`` community sizes: ``k`` uniform in ``[min_communities, max_communities]``, sizes uniform in
    ``[min_size, max_size]`` (the first draws of a graph's stream, so they can be replayed)."""
    k = int(rng.integers(min_communities, max_communities + 1))
    return rng.integers(min_size, max_size + 1, size=k)


def sbm_graph(rng: np.random.Generator, sizes: np.ndarray, p_intra: float, p_inter: float) -> Edges:
    """A stochastic block model: nodes ordered by block, each pair an edge independently with
    probability ``p_intra`` inside a block and ``p_inter`` across blocks."""
    blocks = np.repeat(np.arange(len(sizes)), sizes)
    i, j = np.triu_indices(blocks.size, k=1)
    p = np.where(blocks[i] == blocks[j], p_intra, p_inter)
    keep = rng.random(i.size) < p
    return np.stack([i[keep], j[keep]], 1).astype(np.int64)


def tree_graph(rng: np.random.Generator, num_nodes: int) -> Edges:
    """A uniform random labelled tree: a uniform Prüfer sequence, decoded."""
    if num_nodes == 1:
        return np.zeros((0, 2), dtype=np.int64)
    sequence = rng.integers(0, num_nodes, size=num_nodes - 2).tolist()
    tree = nx.from_prufer_sequence(sequence)
    return np.asarray(list(tree.edges()), dtype=np.int64).reshape(-1, 2)


def community_graph(
    rng: np.random.Generator,
    total_nodes: int,
    p_intra: float = 0.7,
    p_inter: float = 0.05,
    fixed_communities: bool = True,
) -> Edges:
    """Two equal communities joined by a few random bridges (GraphScoreMatching / GDSS / SPECTRE).

    Each community has ``N = total_nodes // 2`` nodes (so an odd ``total_nodes`` loses one) and is an
    Erdős–Rényi graph ``G(N, p_intra)``. With ``fixed_communities`` (the reference behaviour) the
    two are ``networkx.gnp_random_graph(N, p_intra, seed=c)`` for ``c = 0, 1``, identical across
    graphs of one size; otherwise they are drawn from ``rng``. Between every two connected components
    of their union, each node pair is a bridge with probability ``2 p_inter / N`` (so the expected
    number of bridges per node is ``p_inter``), and if no pair is drawn the two smallest-numbered
    nodes are joined.
    """
    N = total_nodes // 2
    parts = []
    for c in range(2):
        if fixed_communities:
            e = np.asarray(list(nx.gnp_random_graph(N, p_intra, seed=c).edges()), dtype=np.int64).reshape(-1, 2)
        else:
            i, j = np.triu_indices(N, k=1)
            keep = rng.random(i.size) < p_intra
            e = np.stack([i[keep], j[keep]], 1).astype(np.int64)
        parts.append(e + c * N)
    edges = np.concatenate(parts)
    n = 2 * N
    adj = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    count, labels = connected_components(adj, directed=False)
    members = [np.flatnonzero(labels == c) for c in range(count)]  # ascending node order
    p_bridge = p_inter * 2 / N
    bridges = []
    for a in range(count):
        for b in range(a + 1, count):
            hit = rng.random((members[a].size, members[b].size)) < p_bridge
            u, v = np.nonzero(hit)
            if u.size:
                bridges.append(np.stack([members[a][u], members[b][v]], 1))
            else:
                bridges.append(np.array([[members[a][0], members[b][0]]]))
    return np.concatenate([edges, *bridges]).astype(np.int64)


# ---------------------------------------------------------------------------------------------- builders
def _build(name: str, ctx: BuildContext, draw: Callable[[np.random.Generator], tuple[int, Edges]],
           describe: Callable[[int, Edges], dict[str, float]] | None = None) -> BuiltDataset:
    """Draw ``num_graphs`` graphs, graph ``i`` from ``default_rng([seed, i])``, and split them; ``describe(i, edges)``
    gives graph ``i``'s generator-level properties (e.g. the SBM's number of blocks)."""
    opts = ctx.options
    num_graphs, seed = _int(opts, "num_graphs", 1), _int(opts, "seed", 0)
    triples = []
    properties: dict[str, list[float]] = {}
    for i in range(num_graphs):
        n, edges = draw(np.random.default_rng([seed, i]))
        for key, value in (describe(i, edges) if describe is not None else {}).items():
            properties.setdefault(key, []).append(float(value))
        ei = torch.from_numpy(edges).T.contiguous()
        triples.append((torch.zeros(n, dtype=torch.long), ei, torch.ones(ei.shape[1], dtype=torch.long)))
    settings = {"generator": name, "generator_version": GENERATOR_VERSION, **opts}
    source = {
        "generator": name,
        "settings": settings,
        "sha256": text_sha256(json.dumps(settings, sort_keys=True, default=str)),
    }
    return BuiltDataset(
        graphs=GraphList.from_graphs(triples),
        splits=spectre_split(num_graphs, _int(opts, "split_seed", 0)),
        kind="graph",
        node_types=list(NODE_TYPES),
        edge_types=list(EDGE_TYPES),
        source=source,
        properties={k: torch.tensor(v, dtype=torch.float64) for k, v in properties.items()},
    )


@register(
    "planar",
    "graph",
    "SPECTRE planar: Delaunay triangulations of 64 uniform points in the unit square (200 graphs)",
    num_graphs=200,
    num_nodes=64,
    seed=0,
    split_seed=0,
)
def build_planar(ctx: BuildContext) -> BuiltDataset:
    n = _int(ctx.options, "num_nodes", 3)
    return _build("planar", ctx, lambda rng: (n, planar_graph(rng, n)))


@register(
    "sbm",
    "graph",
    "SPECTRE SBM: 2-5 communities of 20-40 nodes, p_in 0.3, p_out 0.005 (200 graphs)",
    num_graphs=200,
    min_communities=2,
    max_communities=5,
    min_community_size=20,
    max_community_size=40,
    p_intra=0.3,
    p_inter=0.005,
    seed=0,
    split_seed=0,
)
def build_sbm(ctx: BuildContext) -> BuiltDataset:
    o = ctx.options
    kmin, kmax = _int(o, "min_communities", 1), _int(o, "max_communities", 1)
    smin, smax = _int(o, "min_community_size", 1), _int(o, "max_community_size", 1)
    _order(kmin, kmax, "min_communities", "max_communities")
    _order(smin, smax, "min_community_size", "max_community_size")
    p_in, p_out = _prob(o, "p_intra"), _prob(o, "p_inter")

    def draw(rng: np.random.Generator) -> tuple[int, Edges]:
        sizes = sbm_block_sizes(rng, kmin, kmax, smin, smax)
        return int(sizes.sum()), sbm_graph(rng, sizes, p_in, p_out)

    seed = _int(o, "seed", 0)

    def describe(i: int, edges: Edges) -> dict[str, float]:  # the first draw of graph i's generator: its blocks
        return {"num_blocks": len(sbm_block_sizes(np.random.default_rng([seed, i]), kmin, kmax, smin, smax))}

    return _build("sbm", ctx, draw, describe)


@register(
    "tree",
    "graph",
    "Uniform random labelled trees with 64 nodes (200 graphs)",
    num_graphs=200,
    num_nodes=64,
    seed=0,
    split_seed=0,
)
def build_tree(ctx: BuildContext) -> BuiltDataset:
    n = _int(ctx.options, "num_nodes", 1)
    return _build("tree", ctx, lambda rng: (n, tree_graph(rng, n)))


@register(
    "comm20",
    "graph",
    "SPECTRE community-20: two G(n/2, 0.7) communities plus bridges, 12-20 nodes (100 graphs)",
    num_graphs=100,
    min_nodes=12,
    max_nodes=20,
    p_intra=0.7,
    p_inter=0.05,
    fixed_communities=True,
    seed=0,
    split_seed=0,
)
def build_comm20(ctx: BuildContext) -> BuiltDataset:
    o = ctx.options
    lo, hi = _int(o, "min_nodes", 4), _int(o, "max_nodes", 4)
    _order(lo, hi, "min_nodes", "max_nodes")
    p_in, p_inter = _prob(o, "p_intra"), _prob(o, "p_inter")
    fixed = bool(o["fixed_communities"])

    def draw(rng: np.random.Generator) -> tuple[int, Edges]:
        total = int(rng.integers(lo, hi + 1))
        return 2 * (total // 2), community_graph(rng, total, p_in, p_inter, fixed)

    return _build("comm20", ctx, draw)


# ---------------------------------------------------------------------------------------------- SBM blocks
def sbm_blocks(dataset: GraphDataset, split: str | None = None) -> list[list[int]]:
    """Community sizes of each graph of an ``sbm`` dataset, replayed from its seed.

    Nodes are numbered block by block, so graph ``g`` with sizes ``[s0, s1, ...]`` has block 0 =
    nodes ``0..s0-1``, block 1 = the next ``s1``, and so on.

    Args:
        dataset: a dataset loaded with ``load_dataset("sbm", ...)``.
        split: return only this split's graphs (in split order); ``None``: all graphs.

    Raises:
        DataError: the dataset is not an SBM dataset or its graphs do not match its settings.
    """
    if dataset.info.source.get("generator") != "sbm":
        raise DataError(f"dataset {dataset.info.name} is not a generated sbm dataset")
    o = dataset.info.options
    seed = int(o["seed"])
    indices = range(len(dataset.graphs)) if split is None else dataset.splits[split].tolist()
    num_nodes = dataset.graphs.num_nodes
    out = []
    for i in indices:
        sizes = sbm_block_sizes(
            np.random.default_rng([seed, i]),
            int(o["min_communities"]),
            int(o["max_communities"]),
            int(o["min_community_size"]),
            int(o["max_community_size"]),
        )
        if int(sizes.sum()) != int(num_nodes[i]):
            raise DataError(
                f"sbm graph {i} has {int(num_nodes[i])} nodes but its seed gives blocks {sizes.tolist()}; "
                "rebuild the dataset (load_dataset(..., rebuild=True))"
            )
        out.append([int(s) for s in sizes])
    return out


# ---------------------------------------------------------------------------------------------- options
def _int(opts: dict[str, Any], key: str, minimum: int) -> int:
    value = opts[key]
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(f"option {key}={value!r}: expected an integer >= {minimum}")
    return int(value)


def _prob(opts: dict[str, Any], key: str) -> float:
    value = opts[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"option {key}={value!r}: expected a probability in [0, 1]")
    return float(value)


def _order(lo: int, hi: int, lo_name: str, hi_name: str) -> None:
    if lo > hi:
        raise ConfigError(f"option {lo_name}={lo} is larger than {hi_name}={hi}")
