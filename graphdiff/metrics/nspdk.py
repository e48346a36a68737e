"""NSPDK graph kernel features and the NSPDK MMD of GDSS, independent of Python's hash seed.

The Neighborhood Subgraph Pairwise Distance Kernel (Costa & De Grave, 2010) as implemented by EDeN's
``Vectorizer`` (``complexity=4``, ``nbits=16``, ``discrete=True``, both normalisations), which GDSS uses for
its NSPDK MMD (``compute_nspdk_mmd``: linear kernel on the feature vectors, ``mean K_XX + mean K_YY -
2 mean K_XY``). The feature extraction mirrors EDeN step by step:

1. every edge becomes a vertex carrying the edge's label, joined to both end points;
2. each label is hashed to ``(h(label) & (2^16 - 1)) + 1``;
3. for each original node ``v``, a breadth-first visit up to distance 8 in the expanded graph gives the
   vertex sets at each distance; the sorted multiset of ``hash(label, degree)`` at each distance is hashed,
   and running hashes over distances give the rooted-neighbourhood hashes ``H_v[ρ]``;
4. for every pair of original nodes ``(v, u)`` at expanded distance ``δ ∈ {0, 2, .., 8}`` and every radius
   ``ρ ∈ {0, 2, .., 8}`` available to both, the feature ``hash(min(H_v[ρ], H_u[ρ]), max(...), ρ, δ)`` and the
   "half" feature ``hash(H_u[ρ], ρ, δ)`` (16-bit) are counted in the block ``(ρ/2, δ/2)``;
5. each block is scaled to unit norm, blocks are merged (a feature id seen in a later block overwrites), and
   the whole vector is scaled to unit norm.

The MMD is computed from the mean feature vectors: with a linear kernel ``mean K_XX + mean K_YY - 2 mean K_XY
= ||mean_x - mean_y||^2`` exactly (in real arithmetic), so an evaluation costs ``O(non-zeros)`` instead of the
``|X| x |Y|`` kernel matrices, and the reference side reduces to one mean vector (:func:`nspdk_mean`), which
callers can cache (the molecule metrics do; the cache key includes :func:`feature_version`). In floating point
the value differs from averaging the dense kernel matrices by rounding only (~1e-16), and it is never negative.

Deviation from EDeN, on purpose: EDeN hashes labels with Python's built-in ``hash``, which for strings
(atom symbols) changes with ``PYTHONHASHSEED``, so its NSPDK values change from run to run. Here string
labels (and any non-integer label) are hashed with CRC-32 of their UTF-8 text; integer labels keep Python's
``hash`` (the identity for small integers). All later hashes combine integers only, for which Python's
``hash`` is not randomised. Hence the features do not depend on the hash seed, and for integer-labelled
graphs they are identical to EDeN's.
"""

from __future__ import annotations

import hashlib
import math
import sys
import zlib
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp

from graphdiff.metrics.graph_stats import parallel_map

__all__ = [
    "FEATURE_VERSION",
    "NSPDK_FEATURES",
    "feature_version",
    "nspdk_features",
    "nspdk_matrix",
    "nspdk_mean",
    "nspdk_mmd",
]

_BITMASK_32 = 4294967295
_NBITS = 16
_BITMASK = (1 << _NBITS) - 1
NSPDK_FEATURES = _BITMASK + 2  # feature-space width, as EDeN's ``feature_size``
_COMPLEXITY = 4
#: Version of the feature definition, part of the key of cached reference features (:func:`feature_version`):
#: bump it when a change alters feature values.
FEATURE_VERSION = 1


@lru_cache(maxsize=1)
def feature_version() -> str:
    """What NSPDK feature values depend on besides the graphs, for cache keys.

    :data:`FEATURE_VERSION`, a digest of this module's source (so that an edit that forgets the bump still
    invalidates caches; any edit does, comments included) and Python's version and hash width (features are
    built from Python's ``hash`` of integer tuples, whose algorithm is Python's to change).
    """
    try:
        source = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    except OSError:
        source = "unavailable"
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return f"nspdk {FEATURE_VERSION}; source {source}; python {python}; hash {sys.hash_info.width} bits"


def _label_hash(label: Any) -> int:
    """Seed-independent label hash (CRC-32 for non-integers, Python's integer hash otherwise), 16 bits."""
    if isinstance(label, (bool, int, np.integer)):
        h = hash(int(label))
    else:
        h = zlib.crc32(str(label).encode("utf-8"))
    return (h & _BITMASK) + 1


def _hash_tuple(values: tuple[int, ...], bitmask: int = _BITMASK_32) -> int:
    return (hash(values) & bitmask) + 1


def _running_hashes(values: list[int]) -> list[int]:
    """EDeN's ``fast_hash_vec``: prefix hashes of a sequence."""
    out = []
    running = 0xAAAAAAAA
    for i, item in enumerate(values):
        running ^= hash((running, item, i))
        out.append((running & _BITMASK_32) + 1)
    return out


def _expand(graph: nx.Graph, label_key: str) -> tuple[nx.Graph, list[Any]]:
    """Edge-to-vertex transform; returns the expanded graph and the original node ids."""
    expanded = nx.Graph()
    originals = list(graph.nodes())
    for node in originals:
        expanded.add_node(node, hlabel=_label_hash(graph.nodes[node].get(label_key, 0)), is_node=True)
    w = 1 + max(originals)
    for u, v, data in graph.edges(data=True):
        if u != v:
            expanded.add_node(w, hlabel=_label_hash(data.get(label_key, 0)), is_node=False)
            expanded.add_edge(w, u)
            expanded.add_edge(w, v)
            w += 1
    return expanded, originals


def _distance_sets(graph: nx.Graph, root: Any, max_depth: int) -> dict[int, set[Any]]:
    """Vertices at each breadth-first distance from ``root`` (up to ``max_depth``), EDeN's visit order."""
    dist_list: dict[int, set[Any]] = {0: {root}}
    dist = {root: 0}
    queue = deque([root])
    while queue:
        u = queue.popleft()
        d = dist[u] + 1
        if d <= max_depth:
            for v in graph.neighbors(u):
                if v not in dist:
                    dist[v] = d
                    queue.append(v)
                    dist_list.setdefault(d, set()).add(v)
    return dist_list


def nspdk_features(graph: nx.Graph, label_key: str = "label") -> dict[int, float]:
    """Normalised NSPDK feature vector of one labelled graph (EDeN ``complexity=4``, 16 bits).

    Args:
        graph: undirected graph with integer node ids; node and edge labels under ``label_key`` (missing
            labels count as 0).
        label_key: attribute holding the labels.

    Returns:
        ``{feature_id: value}`` with ``1 <= feature_id <= 2^16`` and unit Euclidean norm.
    """
    if graph.number_of_nodes() == 0:
        raise ValueError("NSPDK features of an empty graph are undefined")
    expanded, originals = _expand(graph, label_key)
    radii = range(0, (_COMPLEXITY + 1) * 2, 2)
    max_depth = _COMPLEXITY * 2
    dist_sets = {v: _distance_sets(expanded, v, max_depth) for v in originals}
    hlabel = nx.get_node_attributes(expanded, "hlabel")
    neigh_hash = {}
    for v in originals:
        per_distance = []
        for vertices in dist_sets[v].values():
            labels = sorted(_hash_tuple((hlabel[x], len(expanded[x]))) for x in vertices)
            per_distance.append(_hash_tuple(tuple(labels)))
        neigh_hash[v] = _running_hashes(per_distance)
    blocks: dict[tuple[float, float], dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for v in originals:
        hv = neigh_hash[v]
        for distance in range(0, (_COMPLEXITY + 1) * 2, 2):
            for u in dist_sets[v].get(distance, ()):
                if not expanded.nodes[u]["is_node"]:
                    continue
                hu = neigh_hash[u]
                for radius in radii:
                    if radius < len(hv) and radius < len(hu):
                        a, b = hv[radius], hu[radius]
                        first, second = (a, b) if a < b else (b, a)
                        block = blocks[(radius / 2, distance / 2)]
                        block[_hash_tuple((first, second, radius, distance), _BITMASK)] += 1
                        block[_hash_tuple((b, radius, distance), _BITMASK)] += 1
    # Sequential sums in insertion order, as EDeN (``sum`` of floats is compensated from Python 3.12 on).
    vector: dict[int, float] = {}
    for block in blocks.values():
        norm = 0.0
        for count in block.values():
            norm += count * count
        norm = math.sqrt(norm)
        for feature, count in block.items():
            vector[feature] = float(count) / norm
    total = 0.0
    for value in vector.values():
        total += value * value
    total = math.sqrt(total)
    return {feature: value / total for feature, value in vector.items()}


def nspdk_matrix(graphs: Sequence[nx.Graph], label_key: str = "label", n_jobs: int | None = 1) -> sp.csr_matrix:
    """Stack NSPDK feature vectors.

    Args:
        graphs: labelled graphs (non-empty).
        label_key: label attribute.
        n_jobs: worker processes.

    Returns:
        ``[len(graphs), NSPDK_FEATURES]`` CSR matrix.
    """
    rows = parallel_map(_features_of, [(g, label_key) for g in graphs], n_jobs=n_jobs, min_items_per_job=256)
    data, row, col = [], [], []
    for i, features in enumerate(rows):
        row.extend([i] * len(features))
        col.extend(features.keys())
        data.extend(features.values())
    return sp.csr_matrix((data, (row, col)), shape=(len(rows), NSPDK_FEATURES), dtype=np.float64)


def _features_of(args: tuple[nx.Graph, str]) -> dict[int, float]:
    return nspdk_features(*args)


def nspdk_mean(
    graph_chunks: Iterable[Sequence[nx.Graph]], label_key: str = "label", n_jobs: int | None = 1
) -> sp.csr_matrix:
    """Mean NSPDK feature vector of graphs given in chunks (only one chunk's features are held at a time).

    The rows of each chunk's :func:`nspdk_matrix` are summed, the chunk sums added in order, and the total
    divided by the number of graphs, so the result depends on the chunking by rounding only.

    Args:
        graph_chunks: lists of labelled graphs (non-empty graphs; empty chunks are skipped).
        label_key: label attribute.
        n_jobs: worker processes.

    Returns:
        ``[1, NSPDK_FEATURES]`` CSR matrix, or ``[0, NSPDK_FEATURES]`` when there are no graphs; either can be
        passed to :func:`nspdk_mmd` in place of the graphs.
    """
    total = np.zeros(NSPDK_FEATURES)
    count = 0
    for chunk in graph_chunks:
        chunk = list(chunk)
        if chunk:
            total += _row_sum(nspdk_matrix(chunk, label_key, n_jobs))
            count += len(chunk)
    if count == 0:
        return sp.csr_matrix((0, NSPDK_FEATURES), dtype=np.float64)
    return sp.csr_matrix((total / count)[None, :])


def _row_sum(matrix: sp.spmatrix) -> np.ndarray:
    return np.asarray(matrix.sum(axis=0), dtype=np.float64).ravel()


def nspdk_mmd(
    graphs_ref: Sequence[nx.Graph] | sp.csr_matrix,
    graphs_pred: Sequence[nx.Graph] | sp.csr_matrix,
    label_key: str = "label",
    n_jobs: int | None = 1,
) -> float:
    """GDSS's NSPDK MMD: linear kernel on NSPDK features, ``mean K_XX + mean K_YY - 2 mean K_XY``.

    Computed as ``||mean_x - mean_y||^2`` (equal in real arithmetic; see the module docstring).

    Args:
        graphs_ref: reference graphs, their :func:`nspdk_matrix`, or their :func:`nspdk_mean` (a set and its
            mean vector give the same MMD; empty graphs must be removed).
        graphs_pred: generated graphs, their feature matrix or their mean vector.
        label_key: label attribute.
        n_jobs: worker processes.

    Returns:
        The (squared, biased) MMD; ``nan`` if a set is empty.
    """
    x = graphs_ref if sp.issparse(graphs_ref) else nspdk_matrix(list(graphs_ref), label_key, n_jobs)
    y = graphs_pred if sp.issparse(graphs_pred) else nspdk_matrix(list(graphs_pred), label_key, n_jobs)
    if x.shape[0] == 0 or y.shape[0] == 0:
        return float("nan")
    difference = _row_sum(x) / x.shape[0] - _row_sum(y) / y.shape[0]
    return float(difference @ difference)
