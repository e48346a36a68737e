"""Per-graph statistics compared by the MMD metrics: degree, clustering, orbit, spectral and wavelet.

Each statistic maps one networkx graph to a 1-D vector; the definitions follow GraphRNN/GRAN as used by
SPECTRE, DiGress, DeFoG and GDSS:

* degree: ``nx.degree_histogram`` (counts of nodes with degree 0, 1, ..., max degree);
* clustering: 100-bin histogram of the local clustering coefficients on ``[0, 1]``;
* orbit: ORCA's 15 node-orbit counts of graphlets with up to 4 nodes, summed over nodes and divided by the
  number of nodes (not a histogram: it is not normalised later);
* spectral: 200-bin histogram of the normalised-Laplacian eigenvalues on ``(-1e-5, 2)``, divided by its sum;
* wavelet (SPECTRE): for 12 Abspline spectral filters ``g_f`` (pygsp's design with ``lmax = 2``), the squared
  row norms of ``U diag(g_f(λ)) Uᵀ`` binned into 100 bins on ``[0, bound]`` per filter, concatenated (1200).

:func:`compute_statistics` evaluates several statistics for many graphs, in a process pool when asked
(:func:`parallel_map`, also used by the other metric modules).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any

import networkx as nx
import numpy as np
import orca
import scipy.linalg
from scipy import optimize

__all__ = [
    "STATISTICS",
    "AbsplineFilterBank",
    "abspline_filter_bank",
    "clustering_coefficients_dense",
    "clustering_histogram",
    "clustering_histogram_dense",
    "compute_statistics",
    "degree_histogram",
    "degree_histogram_dense",
    "histogram_rows",
    "mean_orbit_counts",
    "normalized_laplacian",
    "normalized_laplacian_dense",
    "adjacency_matrix",
    "orbit_counts",
    "orbit_counts_dense",
    "parallel_map",
    "resolve_n_jobs",
    "single_threaded_blas",
    "spectral_histogram",
    "spectral_histogram_dense",
    "wavelet_histogram",
    "wavelet_histogram_dense",
]

N_ORBITS_4 = 15


def histogram_rows(values: np.ndarray, bins: int, low: float, high: float) -> np.ndarray:
    """Row-wise ``np.histogram(row, bins=bins, range=(low, high))[0]`` in one vectorised pass.

    Bins are ``[e_k, e_{k+1})`` for the edges ``np.linspace(low, high, bins + 1)`` with the last bin closed,
    values outside ``[low, high]`` are dropped — exactly numpy's rule for equal-width bins.

    Args:
        values: ``[R, m]`` values (or ``[m]`` for one row).
        bins: number of bins.
        low, high: range of the histogram.

    Returns:
        ``[R, bins]`` int64 counts (``[bins]`` for 1-D input).
    """
    values = np.asarray(values, dtype=np.float64)
    squeeze = values.ndim == 1
    rows = np.atleast_2d(values)
    edges = np.linspace(low, high, bins + 1)
    index = np.searchsorted(edges, rows, side="right") - 1
    index[rows == edges[-1]] = bins - 1
    keep = (rows >= edges[0]) & (rows <= edges[-1])
    flat = (np.arange(rows.shape[0])[:, None] * bins + index)[keep]
    counts = np.bincount(flat, minlength=rows.shape[0] * bins).reshape(rows.shape[0], bins)
    return counts[0] if squeeze else counts


def degree_histogram_dense(adj: np.ndarray) -> np.ndarray:
    """``nx.degree_histogram`` from a dense adjacency: entry ``k`` counts nodes of degree ``k``.

    Returns:
        ``[max_degree + 1]`` int64 array.
    """
    return np.bincount(np.rint(adj.sum(1)).astype(np.int64))


def degree_histogram(graph: nx.Graph) -> np.ndarray:
    """Degree histogram of a graph (see :func:`degree_histogram_dense`)."""
    return degree_histogram_dense(adjacency_matrix(graph))


def clustering_coefficients_dense(adj: np.ndarray) -> np.ndarray:
    """Local clustering coefficients ``2 T_i / (d_i (d_i - 1))`` (0 where ``T_i = 0``), as ``nx.clustering``.

    Returns:
        ``[n]`` float64 array (the division is the same correctly rounded one networkx does).
    """
    d = adj.sum(1)
    twice_triangles = ((adj @ adj) * adj).sum(1)
    out = np.zeros_like(d)
    nz = twice_triangles > 0
    out[nz] = twice_triangles[nz] / (d[nz] * (d[nz] - 1))
    return out


def clustering_histogram_dense(adj: np.ndarray, bins: int = 100) -> np.ndarray:
    """Histogram of the local clustering coefficients on ``[0, 1]``.

    Returns:
        ``[bins]`` int64 node counts.
    """
    return histogram_rows(clustering_coefficients_dense(adj), bins, 0.0, 1.0)


def clustering_histogram(graph: nx.Graph, bins: int = 100) -> np.ndarray:
    """Clustering-coefficient histogram of a graph (see :func:`clustering_histogram_dense`)."""
    return clustering_histogram_dense(adjacency_matrix(graph), bins)


def adjacency_matrix(graph: nx.Graph) -> np.ndarray:
    """Dense 0/1 adjacency in ``graph.nodes()`` order, self-loops dropped.

    Returns:
        ``[n, n]`` float64 array.
    """
    adj = nx.to_numpy_array(graph, dtype=np.float64)
    np.fill_diagonal(adj, 0.0)
    return (adj != 0).astype(np.float64)


def orbit_counts_dense(adj: np.ndarray) -> np.ndarray:
    """Node-orbit counts of all graphlets on 2 to 4 nodes (ORCA's orbits 0-14) from a dense adjacency.

    Non-induced counts of each 4-node pattern at a node follow from a few matrix products (common-neighbour
    counts ``C = A²``, triangles ``T``, and for K4 the edges among each edge's common neighbours); induced
    counts then follow by subtracting, densest graphlet first, how often each pattern occurs inside the denser
    graphlets on the same four nodes. Agrees exactly with ORCA (tested against ``orca-graphlets``).

    Args:
        adj: ``[n, n]`` symmetric 0/1 array with an empty diagonal.

    Returns:
        ``[n, 15]`` int64 array.
    """
    a = np.asarray(adj, dtype=np.float64)
    n = a.shape[0]
    out = np.zeros((n, N_ORBITS_4), dtype=np.int64)
    if n == 0:
        return out
    d = a.sum(1)
    c = a @ a  # common neighbours; diagonal = degree
    np.fill_diagonal(c, 0.0)
    ca = c * a  # common neighbours of adjacent pairs
    tri = ca.sum(1) / 2  # triangles at each node
    # K4: for each edge (i, j), the edges among the common neighbours of i and j.
    rows, cols = np.nonzero(np.triu(a))
    k4 = np.zeros(n)
    if len(rows):
        common = a[rows] * a[cols]  # [E, n]
        edges_among = ((common @ a) * common).sum(1) / 2
        np.add.at(k4, rows, edges_among)
        np.add.at(k4, cols, edges_among)
    o14 = k4 / 3
    # Non-induced counts of the 4-node patterns at each node.
    n4 = c @ (d - 1) - 2 * tri  # i is an end of a path i-j-k-l
    n5 = a @ (d - 1) * (d - 1) - ca.sum(1)  # i is an inner node of a path
    n6 = a @ ((d - 1) * (d - 2) / 2)  # leaf of a 3-star
    n7 = d * (d - 1) * (d - 2) / 6  # centre of a 3-star
    n8 = (c * (c - 1) / 2).sum(1)  # on a 4-cycle
    n9 = a @ tri - ca.sum(1)  # tail of a paw
    n10 = (ca * (d - 2)[None, :]).sum(1)  # degree-2 triangle node of a paw
    n11 = tri * (d - 2)  # degree-3 node of a paw
    n12 = ((a @ (a * (c - 1))) * a).sum(1) / 2  # degree-2 node of a diamond
    n13 = (ca * (c - 1) / 2).sum(1)  # chord end of a diamond
    # Induced counts, densest first.
    o13 = n13 - 3 * o14
    o12 = n12 - 3 * o14
    o11 = n11 - 2 * o13 - 3 * o14
    o10 = n10 - 2 * o12 - 2 * o13 - 6 * o14
    o9 = n9 - 2 * o12 - 3 * o14
    o8 = n8 - o12 - o13 - 3 * o14
    o7 = n7 - o11 - o13 - o14
    o6 = n6 - o9 - o10 - 2 * o12 - o13 - 3 * o14
    o5 = n5 - 2 * o8 - o10 - 2 * o11 - 2 * o12 - 4 * o13 - 6 * o14
    o4 = n4 - 2 * o8 - 2 * o9 - o10 - 4 * o12 - 2 * o13 - 6 * o14
    o3 = tri
    o2 = d * (d - 1) / 2 - tri
    o1 = a @ (d - 1) - 2 * tri
    orbits = np.stack([d, o1, o2, o3, o4, o5, o6, o7, o8, o9, o10, o11, o12, o13, o14], axis=1)
    return np.rint(orbits).astype(np.int64)


def orbit_counts(graph: nx.Graph, backend: str = "numpy") -> np.ndarray:
    """ORCA node-orbit counts for graphlets on 2 to 4 nodes.

    Nodes are numbered in ``graph.nodes()`` order (as the reference's ``edge_list_reindexed``); self-loops
    are ignored.

    Args:
        graph: the graph.
        backend: ``"numpy"`` (:func:`orbit_counts_dense`, vectorised) or ``"orca"`` (the ``orca-graphlets``
            package, a port of ORCA); both give the same integers.

    Returns:
        ``[n_nodes, 15]`` int array; column ``o`` counts how often a node takes orbit ``o``.
    """
    if backend == "numpy":
        return orbit_counts_dense(adjacency_matrix(graph))
    if backend != "orca":
        raise ValueError(f"unknown orbit-count backend {backend!r}; use 'numpy' or 'orca'")
    n = graph.number_of_nodes()
    index = {node: i for i, node in enumerate(graph.nodes())}
    edges = np.array([(index[u], index[v]) for u, v in graph.edges() if u != v], dtype=np.int64).reshape(-1, 2)
    if n == 0 or len(edges) == 0:
        return np.zeros((n, N_ORBITS_4), dtype=np.int64)
    return np.asarray(orca.orca_nodes(edges, num_nodes=n, graphlet_size=4), dtype=np.int64)


def mean_orbit_counts(graph: nx.Graph) -> np.ndarray:
    """Orbit counts summed over nodes, divided by the number of nodes.

    Returns:
        ``[15]`` float array.
    """
    return np.sum(orbit_counts(graph), axis=0) / graph.number_of_nodes()


def normalized_laplacian_dense(adj: np.ndarray) -> np.ndarray:
    """``I - D^-1/2 A D^-1/2`` with networkx's operation order (``DH (L DH)``, zero rows for isolated nodes).

    Returns:
        ``[n, n]`` float64 array, bit-identical to ``nx.normalized_laplacian_matrix(G).todense()``.
    """
    d = adj.sum(1)
    with np.errstate(divide="ignore"):
        dh = 1.0 / np.sqrt(d)
    dh[np.isinf(dh)] = 0
    lap = np.diag(d) - adj
    return dh[:, None] * (lap * dh[None, :])


def normalized_laplacian(graph: nx.Graph) -> np.ndarray:
    """Dense symmetric normalised Laplacian in ``graph.nodes()`` order (see :func:`normalized_laplacian_dense`)."""
    return normalized_laplacian_dense(adjacency_matrix(graph))


def spectral_histogram_dense(lap: np.ndarray, bins: int = 200) -> np.ndarray:
    """Probability histogram of the eigenvalues of a normalised Laplacian on ``(-1e-5, 2)``.

    Eigenvalues come from ``scipy.linalg.eigvalsh`` as in the reference; if it fails, all mass goes to the
    zero bin, as the reference does.

    Returns:
        ``[bins]`` float array summing to 1.
    """
    try:
        eigs = scipy.linalg.eigvalsh(lap)
    except (np.linalg.LinAlgError, ValueError):
        eigs = np.zeros(lap.shape[0])
    hist = histogram_rows(eigs, bins, -1e-5, 2)
    return hist / hist.sum()


def spectral_histogram(graph: nx.Graph, bins: int = 200) -> np.ndarray:
    """Normalised-Laplacian spectrum histogram of a graph (see :func:`spectral_histogram_dense`)."""
    return spectral_histogram_dense(normalized_laplacian(graph), bins)


def _abspline3(x: np.ndarray, alpha: float, beta: float, t1: float, t2: float) -> np.ndarray:
    """Hammond et al.'s band-pass kernel: ``x^α`` below ``t1``, ``x^-β`` above ``t2``, a cubic in between.

    The cubic matches values and first derivatives at ``t1`` and ``t2``; same piecewise assignment order as
    pygsp (the cubic wins at ``x = t1``).
    """
    m = np.array(
        [
            [1, t1, t1**2, t1**3],
            [1, t2, t2**2, t2**3],
            [0, 1, 2 * t1, 3 * t1**2],
            [0, 1, 2 * t2, 3 * t2**2],
        ]
    )
    v = np.array([1, 1, t1 ** (-alpha) * alpha * t1 ** (alpha - 1), -beta * t2 ** (-beta - 1) * t2**beta])
    a = np.linalg.solve(m, v)
    x = np.asarray(x, dtype=np.float64)
    low = x <= t1
    mid = (x >= t1) & (x < t2)
    high = x >= t2
    r = np.zeros(x.shape)
    xm = x[mid]
    r[low] = x[low] ** alpha * t1 ** (-alpha)
    r[mid] = a[0] + a[1] * xm + a[2] * xm**2 + a[3] * xm**3
    r[high] = x[high] ** (-beta) * t2**beta
    return r


class AbsplineFilterBank:
    """pygsp's ``filters.Abspline`` filter bank, written out with numpy/scipy.

    Filter 0 is a low-pass ``γ exp(-(x / (0.6 lmin))⁴)``; filters ``1..Nf-1`` are ``g_b(s_i x)`` with
    ``g_b`` the abspline3 kernel (α = β = 2, t1 = 1, t2 = 2), scales ``s_i`` log-spaced from ``2 / lmin`` down
    to ``1 / lmax``, ``lmin = lmax / lpfactor``, and ``γ`` the maximum of ``g_b`` on ``[1, 2]`` (found with
    scipy's bounded scalar minimiser, as pygsp does).

    Args:
        n_filters: number of filters ``Nf`` (SPECTRE: 12).
        lmax: largest eigenvalue of the spectrum (2 for normalised Laplacians).
        lpfactor: low-pass factor.
    """

    def __init__(self, n_filters: int = 12, lmax: float = 2.0, lpfactor: float = 20.0) -> None:
        self.n_filters = n_filters
        self.lmax = lmax
        self.lmin = lmax / lpfactor
        self.scales = np.exp(np.linspace(np.log(2 / self.lmin), np.log(1 / lmax), n_filters - 1))
        xstar = optimize.minimize_scalar(lambda x: -self._band(x), bounds=(1, 2), method="bounded")
        self.gamma_l = self._band(xstar.x)
        # Largest value of any filter on SPECTRE's grid: the upper end of the wavelet histograms.
        self.bound = float(np.max(self.evaluate(np.arange(0, 2, 0.01))))

    @staticmethod
    def _band(x: float) -> float:
        return float(_abspline3(np.atleast_1d(np.asarray(x, dtype=np.float64)), 2, 2, 1, 2)[0])

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """Filter responses.

        Args:
            x: ``[k]`` eigenvalues.

        Returns:
            ``[n_filters, k]`` array of ``g_f(x)``.
        """
        x = np.asarray(x, dtype=np.float64)
        out = np.empty((self.n_filters, *x.shape))
        out[0] = self.gamma_l * np.exp(-np.power(x / (0.6 * self.lmin), 4))
        for i, scale in enumerate(self.scales):
            out[i + 1] = _abspline3(scale * x, 2, 2, 1, 2)
        return out


@lru_cache(maxsize=4)
def abspline_filter_bank(n_filters: int = 12, lmax: float = 2.0, lpfactor: float = 20.0) -> AbsplineFilterBank:
    """Cached :class:`AbsplineFilterBank` (its construction runs a scalar optimisation)."""
    return AbsplineFilterBank(n_filters, lmax, lpfactor)


def wavelet_histogram_dense(lap: np.ndarray, bins: int = 100, n_filters: int = 12) -> np.ndarray:
    """SPECTRE's wavelet statistic from a normalised Laplacian.

    With ``L = U diag(λ) Uᵀ`` (``np.linalg.eigh``), each filter's operator ``U diag(g_f(λ)) Uᵀ`` has its
    squared row norms binned into ``bins`` bins on ``[0, bank.bound]``.

    Returns:
        ``[n_filters * bins]`` int64 array (filter-major).
    """
    bank = abspline_filter_bank(n_filters)
    try:
        eigval, eigvec = np.linalg.eigh(lap)
    except np.linalg.LinAlgError:
        eigval, eigvec = np.zeros(lap.shape[0]), np.zeros(lap.shape)
    responses = bank.evaluate(eigval)  # [F, n]
    # U diag(g) equals U * g exactly, then the same product with Uᵀ as the reference, batched over filters.
    operators = np.matmul(eigvec[None, :, :] * responses[:, None, :], eigvec.T[None, :, :])  # [F, n, n]
    norms = np.sum(operators**2, axis=2)  # [F, n]
    return histogram_rows(norms, bins, 0.0, bank.bound).reshape(-1)


def wavelet_histogram(graph: nx.Graph, bins: int = 100, n_filters: int = 12) -> np.ndarray:
    """SPECTRE's wavelet statistic of a graph (see :func:`wavelet_histogram_dense`)."""
    return wavelet_histogram_dense(normalized_laplacian(graph), bins, n_filters)


class _GraphArrays:
    """Dense arrays of one graph, each computed at most once."""

    def __init__(self, graph: nx.Graph) -> None:
        self.adj = adjacency_matrix(graph)
        self._lap: np.ndarray | None = None

    @property
    def lap(self) -> np.ndarray:
        if self._lap is None:
            self._lap = normalized_laplacian_dense(self.adj)
        return self._lap


STATISTICS: dict[str, Callable[[_GraphArrays], np.ndarray]] = {
    "degree": lambda g: degree_histogram_dense(g.adj),
    "clustering": lambda g: clustering_histogram_dense(g.adj),
    "orbit": lambda g: orbit_counts_dense(g.adj).sum(0) / g.adj.shape[0],
    "spectral": lambda g: spectral_histogram_dense(g.lap),
    "wavelet": lambda g: wavelet_histogram_dense(g.lap),
}
"""Statistic name -> function of a graph's dense arrays (for :func:`compute_statistics`)."""


def resolve_n_jobs(n_jobs: int | None, n_items: int, min_items_per_job: int = 16) -> int:
    """Number of worker processes to use.

    Args:
        n_jobs: requested workers; ``None`` picks ``min(cpu count, n_items // min_items_per_job)``, ``-1``
            means all CPUs, ``1`` runs in this process.
        n_items: number of work items.
        min_items_per_job: with ``n_jobs=None``, below this many items per worker a pool does not pay for
            its start-up.

    Returns:
        A worker count ``>= 1``.
    """
    cpus = os.cpu_count() or 1
    if n_jobs is None:
        n_jobs = min(cpus, n_items // max(1, min_items_per_job))
    elif n_jobs < 0:
        n_jobs = cpus
    return max(1, min(n_jobs, n_items))


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run numpy/scipy linear algebra on one thread.

    The statistics do many small eigendecompositions; a multi-threaded BLAS spends most of its time
    synchronising on them (30x slower on a busy 2-core machine), and parallelism comes from processes instead.
    A no-op without ``threadpoolctl``.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional speed-up
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _map_chunk(args: tuple[Callable[[Any], Any], list[Any]]) -> list[Any]:
    fn, items = args
    with single_threaded_blas():
        return [fn(item) for item in items]


def parallel_map(
    fn: Callable[[Any], Any], items: Sequence[Any], n_jobs: int | None = 1, min_items_per_job: int = 16
) -> list[Any]:
    """``[fn(x) for x in items]``, in a process pool over chunks when ``n_jobs`` allows.

    Args:
        fn: a picklable (module-level) function.
        items: picklable inputs. A sequence is sliced, not copied: a lazy one (such as
            :class:`graphdiff.metrics.molecules.MolBinaries`) is read one item at a time, in this process or in
            each worker from its pickled slice.
        n_jobs: worker processes, see :func:`resolve_n_jobs`.
        min_items_per_job: see :func:`resolve_n_jobs`.

    Returns:
        The results in the order of ``items``.
    """
    items = items if isinstance(items, Sequence) else list(items)
    workers = resolve_n_jobs(n_jobs, len(items), min_items_per_job)
    if workers == 1:
        return _map_chunk((fn, items))
    # A few chunks per worker balance uneven item costs without paying per-item pickling overhead.
    n_chunks = min(len(items), 4 * workers)
    bounds = np.linspace(0, len(items), n_chunks + 1).astype(int)
    chunks = [(fn, items[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
        return [out for part in pool.map(_map_chunk, chunks) for out in part]


def _all_statistics(args: tuple[nx.Graph, tuple[str, ...]]) -> list[np.ndarray]:
    graph, names = args
    arrays = _GraphArrays(graph)
    return [STATISTICS[name](arrays) for name in names]


def compute_statistics(
    graphs: Sequence[nx.Graph], names: Sequence[str], n_jobs: int | None = 1
) -> dict[str, list[np.ndarray]]:
    """Evaluate statistics for every graph, optionally in a process pool over chunks of graphs.

    Args:
        graphs: networkx graphs (each with at least one node).
        names: keys of :data:`STATISTICS`.
        n_jobs: worker processes, see :func:`resolve_n_jobs`.

    Returns:
        ``{name: [vector per graph]}`` in the order of ``graphs``.
    """
    names = tuple(names)
    unknown = [n for n in names if n not in STATISTICS]
    if unknown:
        raise KeyError(f"unknown graph statistics {unknown}; known: {sorted(STATISTICS)}")
    # ~5 ms per 64-node graph: below ~64 graphs per worker a pool costs more than it saves.
    rows = parallel_map(_all_statistics, [(g, names) for g in graphs], n_jobs=n_jobs, min_items_per_job=64)
    return {name: [row[j] for row in rows] for j, name in enumerate(names)}
