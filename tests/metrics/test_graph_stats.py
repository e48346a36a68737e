"""Graph statistics against hand counts, networkx/numpy references and the orca package."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest

from graphdiff.metrics.graph_stats import (
    AbsplineFilterBank,
    clustering_histogram,
    compute_statistics,
    degree_histogram,
    histogram_rows,
    mean_orbit_counts,
    normalized_laplacian,
    orbit_counts,
    spectral_histogram,
    wavelet_histogram,
)


def test_orbit_counts_triangle_path_star_by_hand() -> None:
    # Orbits: 0 degree, 1 end of P3, 2 middle of P3, 3 triangle, 4 end of P4, 5 inner of P4, 6 star leaf,
    # 7 star centre, 8 C4, 9-11 paw, 12-13 diamond, 14 K4.
    triangle = orbit_counts(nx.cycle_graph(3))
    assert triangle.tolist() == [[2, 0, 0, 1] + [0] * 11] * 3
    path = orbit_counts(nx.path_graph(4))
    end = [1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    inner = [2, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert path.tolist() == [end, inner, inner, end]
    star = orbit_counts(nx.star_graph(3))  # node 0 is the centre
    assert star[0].tolist() == [3, 0, 3, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    assert star[1].tolist() == [1, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    k4 = orbit_counts(nx.complete_graph(4))
    # K4: degree 3, 3 triangles, every other induced subgraph is complete: one K4.
    assert k4[0].tolist() == [3, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    paw = nx.Graph([(0, 1), (1, 2), (0, 2), (2, 3)])  # node 3 is the tail, node 2 has degree 3
    counts = orbit_counts(paw)
    assert counts[3, 9] == 1 and counts[0, 10] == 1 and counts[1, 10] == 1 and counts[2, 11] == 1
    assert counts[:, 12:].sum() == 0


def test_orbit_counts_match_orca_package_on_random_graphs() -> None:
    for seed in range(25):
        rng = np.random.default_rng(seed)
        g = nx.gnp_random_graph(int(rng.integers(2, 22)), float(rng.random()), seed=seed)
        assert np.array_equal(orbit_counts(g, "numpy"), orbit_counts(g, "orca"))


def test_mean_orbit_counts_is_sum_over_nodes_divided_by_n() -> None:
    star = nx.star_graph(3)
    # sums: degree 6, orbit1 6, orbit2 3, orbit6 3, orbit7 1; divided by 4 nodes.
    expected = np.zeros(15)
    expected[[0, 1, 2, 6, 7]] = [6, 6, 3, 3, 1]
    assert mean_orbit_counts(star) == pytest.approx(expected / 4)


def test_degree_histogram_by_hand() -> None:
    g = nx.star_graph(3)
    g.add_node(10)  # isolated
    assert degree_histogram(g).tolist() == [1, 3, 0, 1]


def test_clustering_histogram_of_a_paw() -> None:
    paw = nx.Graph([(0, 1), (1, 2), (0, 2), (2, 3)])
    # coefficients: 1, 1, 1/3, 0 -> bins 99 (closed last bin), 99, 33, 0
    hist = clustering_histogram(paw)
    expected = np.zeros(100, dtype=int)
    expected[[0, 33]] = 1
    expected[99] = 2
    assert hist.tolist() == expected.tolist()
    rng = np.random.default_rng(0)
    for seed in range(5):
        g = nx.gnp_random_graph(30, float(rng.random()), seed=seed)
        reference = np.histogram(list(nx.clustering(g).values()), bins=100, range=(0.0, 1.0))[0]
        assert clustering_histogram(g).tolist() == reference.tolist()


def test_histogram_rows_equals_numpy_histogram_including_edges() -> None:
    rng = np.random.default_rng(3)
    edges = np.linspace(-1e-5, 2, 201)
    values = np.concatenate([rng.uniform(-0.5, 2.5, 500), edges, [2.0, -1e-5, np.nextafter(2.0, 3)]])
    rows = np.stack([values, values[::-1]])
    out = histogram_rows(rows, 200, -1e-5, 2)
    for row, counts in zip(rows, out, strict=True):
        assert counts.tolist() == np.histogram(row, bins=200, range=(-1e-5, 2))[0].tolist()


def test_normalized_laplacian_matches_networkx_bitwise() -> None:
    g = nx.gnp_random_graph(25, 0.2, seed=1)
    g.add_node(99)  # an isolated node has a zero row
    ours = normalized_laplacian(g)
    theirs = np.asarray(nx.normalized_laplacian_matrix(g).todense())
    assert np.array_equal(ours, theirs)


def test_spectrum_of_complete_graph() -> None:
    # Normalised Laplacian of K_n: eigenvalue 0 once and n / (n - 1) with multiplicity n - 1.
    n = 5
    eig = np.linalg.eigvalsh(normalized_laplacian(nx.complete_graph(n)))
    assert eig == pytest.approx([0.0] + [n / (n - 1)] * (n - 1), abs=1e-12)
    hist = spectral_histogram(nx.complete_graph(n))
    edges = np.linspace(-1e-5, 2, 201)
    assert hist[np.searchsorted(edges, 0.0, side="right") - 1] == pytest.approx(1 / n)
    assert hist[np.searchsorted(edges, n / (n - 1), side="right") - 1] == pytest.approx((n - 1) / n)
    assert hist.sum() == pytest.approx(1.0)


def test_abspline_filters_by_hand() -> None:
    bank = AbsplineFilterBank(12)
    # Band-pass kernel: x² below 1, a cubic on [1, 2), 4 / x² from 2 on; value 1 at both joins.
    band = bank._band
    assert band(0.5) == pytest.approx(0.25) and band(1.0) == pytest.approx(1.0)
    assert band(2.0) == pytest.approx(1.0) and band(4.0) == pytest.approx(0.25)
    # Scales: log-spaced from 2 / lmin = 20 down to 1 / lmax = 0.5.
    assert bank.scales[0] == pytest.approx(20.0) and bank.scales[-1] == pytest.approx(0.5)
    assert bank.gamma_l >= 1.0  # the maximum of the cubic on [1, 2]
    assert bank.evaluate(np.array([0.0]))[0, 0] == pytest.approx(bank.gamma_l)
    assert bank.bound == pytest.approx(bank.evaluate(np.arange(0, 2, 0.01)).max())


def test_abspline_filters_match_pygsp_when_installed() -> None:
    pg = pytest.importorskip("pygsp")

    class DummyGraph:
        lmax = 2

    ref = pg.filters.Abspline(DummyGraph, 12)
    x = np.linspace(0, 2, 257)
    assert np.array_equal(AbsplineFilterBank(12).evaluate(x), ref.evaluate(x))


def test_wavelet_histogram_of_a_single_edge_by_hand() -> None:
    # L = [[1, -1], [-1, 1]]: eigenvalues 0 and 2 with eigenvectors (1, 1)/√2 and (1, -1)/√2, so every row
    # norm of U diag(g) Uᵀ is (g(0)² + g(2)²) / 2 for both nodes.
    bank = AbsplineFilterBank(12)
    g = bank.evaluate(np.array([0.0, 2.0]))
    norms = (g[:, 0] ** 2 + g[:, 1] ** 2) / 2
    expected = np.zeros((12, 100), dtype=int)
    for f, value in enumerate(norms):
        if value <= bank.bound:
            expected[f, min(int(value / bank.bound * 100), 99)] += 2
    assert wavelet_histogram(nx.path_graph(2)).tolist() == expected.reshape(-1).tolist()


def test_compute_statistics_pool_matches_serial() -> None:
    graphs = [nx.gnp_random_graph(20, 0.2, seed=s) for s in range(6)]
    names = ["degree", "clustering", "orbit", "spectral", "wavelet"]
    serial = compute_statistics(graphs, names, n_jobs=1)
    pooled = compute_statistics(graphs, names, n_jobs=2)
    for name in names:
        for a, b in zip(serial[name], pooled[name], strict=True):
            assert np.array_equal(a, b)
    assert math.isclose(serial["spectral"][0].sum(), 1.0)
