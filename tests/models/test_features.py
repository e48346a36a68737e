"""Extra features against networkx, numpy and hand-computed values."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from graphdiff.chem import bond_orders_from_names
from graphdiff.errors import ConfigError
from graphdiff.models.features import (
    CycleFeatures,
    ExtraFeatures,
    MolecularFeatures,
    SpectralFeatures,
    adjacency,
    connected_components,
    cycle_counts,
    formal_charge,
)
from graphdiff.types import DenseGraph, one_hot_graph

# Batched LAPACK and small matmuls are much slower with 2 threads on a loaded 2-core machine.
pytestmark = pytest.mark.usefixtures("one_thread")


def batch_of(graphs: list[nx.Graph], n: int | None = None, de: int = 2) -> DenseGraph:
    """Padded one-hot batch (one node class, edge class 1) of networkx graphs with nodes 0..m-1."""
    n = n or max(g.number_of_nodes() for g in graphs)
    B = len(graphs)
    edges = torch.zeros(B, n, n, dtype=torch.long)
    mask = torch.zeros(B, n, dtype=torch.bool)
    for b, g in enumerate(graphs):
        mask[b, : g.number_of_nodes()] = True
        for i, j in g.edges():
            edges[b, i, j] = edges[b, j, i] = 1
    return one_hot_graph(torch.zeros(B, n, dtype=torch.long), edges, mask, 1, de)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float) -> None:
    """Elementwise ``|actual - expected| <= atol`` (torch.testing's first call costs seconds of imports)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    err = (actual - expected).abs().max().item() if actual.numel() else 0.0
    assert err <= atol, f"max abs difference {err:.3g} > {atol}"


def laplacian(g: nx.Graph) -> np.ndarray:
    """Dense combinatorial Laplacian D - A of a graph with nodes 0..m-1."""
    A = nx.to_numpy_array(g, nodelist=range(g.number_of_nodes()))
    return np.diag(A.sum(1)) - A


def random_graphs(count: int, low: int, high: int, seed: int) -> list[nx.Graph]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        m = int(rng.integers(low, high + 1))
        out.append(nx.gnp_random_graph(m, float(rng.uniform(0.1, 0.9)), seed=int(rng.integers(1 << 30))))
    return out


def permute(graph: DenseGraph, perm: torch.Tensor) -> DenseGraph:
    return DenseGraph(graph.X[:, perm], graph.E[:, perm][:, :, perm], graph.y, graph.node_mask[:, perm])


# ---------------------------------------------------------------------------------------------------------- cycles


def test_cycle_counts_match_networkx_enumeration() -> None:
    graphs = random_graphs(40, 3, 9, seed=0)
    batch = batch_of(graphs)
    node, graph = cycle_counts(adjacency(batch.E, batch.node_mask).double())
    for b, g in enumerate(graphs):
        per_graph = {k: 0 for k in (3, 4, 5, 6)}
        per_node = np.zeros((g.number_of_nodes(), 3))
        for cycle in nx.simple_cycles(g, length_bound=6):
            per_graph[len(cycle)] += 1
            if len(cycle) <= 5:
                per_node[cycle, len(cycle) - 3] += 1
        assert graph[b].tolist() == pytest.approx([per_graph[k] for k in (3, 4, 5, 6)], abs=1e-9), b
        m = g.number_of_nodes()
        np.testing.assert_allclose(node[b, :m].numpy(), per_node, atol=1e-9, err_msg=f"graph {b}")
        assert node[b, m:].abs().max() == 0 if m < node.shape[1] else True


def test_cycle_features_scaled_and_clipped_on_complete_graphs() -> None:
    # K4: 3 triangles and 3 four-cycles through each node; 4 triangles, 3 four-cycles, no 5/6-cycles.
    # K6: 10 triangles through each node (clipped to 1), 20 triangles in all (clipped).
    batch = batch_of([nx.complete_graph(4), nx.complete_graph(6)])
    node, graph = CycleFeatures()(adjacency(batch.E, batch.node_mask), batch.node_mask)
    assert node[0, :4].tolist() == [pytest.approx([0.3, 0.3, 0.0])] * 4
    assert node[0, 4:].abs().sum() == 0
    assert graph[0].tolist() == pytest.approx([0.4, 0.3, 0.0, 0.0])
    assert node[1, :, 0].tolist() == pytest.approx([1.0] * 6)
    assert graph[1].max() <= 1.0 and graph[1, 0] == 1.0


# ------------------------------------------------------------------------------------------------------- spectrum


def test_components_match_networkx() -> None:
    rng = np.random.default_rng(1)
    graphs = [nx.gnp_random_graph(int(rng.integers(1, 12)), 0.15, seed=s) for s in range(30)]
    graphs += [nx.empty_graph(5), nx.empty_graph(1), nx.path_graph(12)]
    batch = batch_of(graphs, n=12)
    count, size = connected_components(adjacency(batch.E, batch.node_mask), batch.node_mask)
    for b, g in enumerate(graphs):
        assert int(count[b]) == nx.number_connected_components(g), b
        expected = np.zeros(12, dtype=int)
        for comp in nx.connected_components(g):
            expected[list(comp)] = len(comp)
        assert size[b].tolist() == expected.tolist(), b


def test_eigenvalues_match_numpy_and_padding_adds_no_zero() -> None:
    graphs = [nx.path_graph(7), nx.disjoint_union(nx.cycle_graph(4), nx.path_graph(3)), nx.star_graph(4)]
    batch = batch_of(graphs, n=10)  # three padded nodes at least
    _, feats = SpectralFeatures(with_vectors=False)(adjacency(batch.E, batch.node_mask), batch.node_mask)
    for b, g in enumerate(graphs):
        m = g.number_of_nodes()
        ev = np.sort(np.linalg.eigvalsh(laplacian(g)))
        comps = nx.number_connected_components(g)
        nonzero = list(ev[comps:] / m) + [2.0] * 5
        assert feats[b, 0] == comps
        np.testing.assert_allclose(feats[b, 1:].numpy(), nonzero[:5], atol=1e-5)


def test_spectral_features_finite_on_degenerate_graphs() -> None:
    graphs = [nx.empty_graph(1), nx.empty_graph(4), nx.complete_graph(5), nx.cycle_graph(6), nx.empty_graph(0)]
    batch = batch_of(graphs, n=7)
    A = adjacency(batch.E, batch.node_mask)
    node, graph = SpectralFeatures(with_vectors=True)(A, batch.node_mask)
    assert torch.isfinite(node).all() and torch.isfinite(graph).all()
    assert graph[:, 0].tolist() == [1, 4, 1, 1, 0]
    assert graph[0, 1:].tolist() == [2.0] * 5  # a single node has no non-zero eigenvalue
    assert graph[1, 1:].tolist() == [2.0] * 5  # nor has an edgeless graph
    # K5: eigenvalue 5 four times, scaled by 1/5.
    assert graph[2, 1:].tolist() == pytest.approx([1.0] * 4 + [2.0])
    assert (node[~batch.node_mask] == 0).all()


def test_not_in_largest_component_indicator() -> None:
    g = nx.disjoint_union_all([nx.path_graph(2), nx.cycle_graph(5), nx.empty_graph(1)])  # nodes 2..6 largest
    batch = batch_of([g], n=9)
    node, graph = SpectralFeatures(with_vectors=True)(adjacency(batch.E, batch.node_mask), batch.node_mask)
    assert graph[0, 0] == 3
    assert node[0, :, 0].tolist() == [1, 1, 0, 0, 0, 0, 0, 1, 0]


def test_eigenvector_features_are_laplacian_eigenvectors() -> None:
    g = nx.disjoint_union(nx.gnp_random_graph(8, 0.5, seed=3), nx.path_graph(2))
    m = g.number_of_nodes()
    batch = batch_of([g], n=12)
    node, graph = SpectralFeatures(with_vectors=True)(adjacency(batch.E, batch.node_mask), batch.node_mask)
    L = torch.tensor(laplacian(g), dtype=torch.float)
    comps = int(graph[0, 0])
    for col in range(2):
        v = node[0, :m, 1 + col]
        lam = graph[0, 1 + col] * m
        assert v.norm() == pytest.approx(1.0, abs=1e-5)
        assert_close(L @ v, lam * v, atol=1e-4)
        assert lam > 1e-6 and comps == nx.number_connected_components(g)


# ------------------------------------------------------------------------------------------------------- molecular


def test_formal_charge_parsing() -> None:
    assert [formal_charge(s) for s in ("C", "N+", "O-", "Fe+2", "N++", "[NH3+]", "Cl", "S-2")] == [
        0, 1, -1, 2, 2, 1, 0, -2,
    ]
    with pytest.raises(ConfigError):
        formal_charge("not an atom")


def test_molecular_features_by_hand() -> None:
    # Classes: C, N+, O-, O; bonds none/single/double/triple/aromatic. Molecule: C0=O1 (double), C0-N+2 (single),
    # C0-O-3 (single), N+2 ~ C4 aromatic; padded to 6 nodes.
    node_types = ["C", "N+", "O-", "O"]
    weights = [12.011, 14.007, 15.999, 15.999]
    mol = MolecularFeatures(node_types, weights, bond_orders_from_names(
        ["none", "single", "double", "triple", "aromatic"]), weight_scale=100.0)
    classes = torch.tensor([[0, 3, 1, 2, 0, 0]])
    bonds = torch.zeros(1, 6, 6, dtype=torch.long)
    for i, j, c in [(0, 1, 2), (0, 2, 1), (0, 3, 1), (2, 4, 4)]:
        bonds[0, i, j] = bonds[0, j, i] = c
    mask = torch.tensor([[True] * 5 + [False]])
    g = one_hot_graph(classes, bonds, mask, 4, 5)
    node, graph = mol(g.X, g.E, g.node_mask)
    assert node[0, :, 0].tolist() == [0, 0, 1, -1, 0, 0]  # charges
    assert node[0, :, 1].tolist() == [4.0, 2.0, 2.5, 1.0, 1.5, 0.0]  # valences, aromatic = 1.5
    expected_weight = (2 * 12.011 + 15.999 + 14.007 + 15.999) / 100.0
    assert graph[0, 0].item() == pytest.approx(expected_weight, rel=1e-6)


def test_molecular_features_reject_bad_config() -> None:
    with pytest.raises(ConfigError):
        MolecularFeatures(["C", "N"], [12.0], [0, 1], weight_scale=10.0)
    with pytest.raises(ConfigError):
        bond_orders_from_names(["none", "quadruple"])


# -------------------------------------------------------------------------------------------------------- combined


@pytest.mark.parametrize(
    ("mode", "dx", "dy"), [("none", 0, 0), ("cycles", 3, 5), ("eigenvalues", 3, 11), ("all", 6, 11)]
)
def test_extra_feature_dims(mode: str, dx: int, dy: int) -> None:
    mol = MolecularFeatures(["C", "N"], [12.0, 14.0], [0.0, 1.0], weight_scale=50.0)
    for molecular, extra_x, extra_y in ((None, 0, 0), (mol, 2, 1)):
        features = ExtraFeatures(mode, max_nodes=10, molecular=molecular)
        batch = batch_of(random_graphs(3, 2, 6, seed=4), n=8)
        batch = DenseGraph(torch.cat((batch.X, batch.X * 0), -1), batch.E, batch.y, batch.node_mask).mask()
        out = features(batch)
        assert features.dims.as_dict() == {"X": dx + extra_x, "E": 0, "y": dy + extra_y}
        assert out.X.shape == (3, 8, dx + extra_x) and out.y.shape == (3, dy + extra_y) and out.E.shape[-1] == 0
        assert (out.X[~batch.node_mask] == 0).all()


def test_extra_features_config_errors() -> None:
    with pytest.raises(ConfigError):
        ExtraFeatures("spectral", max_nodes=5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        ExtraFeatures("cycles")


def well_determined(g: nx.Graph) -> bool:
    """Connected, with a simple Laplacian spectrum and eigenvectors 1, 2 whose sign the cube sum fixes."""
    if not nx.is_connected(g):
        return False
    ev, vec = np.linalg.eigh(laplacian(g))
    return bool(np.diff(ev).min() > 1e-3 and (np.abs((vec[:, 1:3] ** 3).sum(0)) > 1e-3).all())


def test_extra_features_permutation_equivariant() -> None:
    # Connected random graphs with simple Laplacian spectra, so even the eigenvectors (up to the canonical sign)
    # are determined; nodes, padding included, are shuffled.
    graphs = [g for g in random_graphs(40, 6, 9, seed=5) if well_determined(g)]
    assert len(graphs) >= 6
    batch = batch_of(graphs[:6], n=11)
    features = ExtraFeatures("all", max_nodes=11).double()
    batch = DenseGraph(batch.X.double(), batch.E.double(), batch.y.double(), batch.node_mask)
    perm = torch.randperm(11, generator=torch.Generator().manual_seed(0))
    out, out_perm = features(batch), features(permute(batch, perm))
    assert_close(out_perm.y, out.y, atol=1e-5)
    assert_close(out_perm.X, out.X[:, perm], atol=1e-5)


def test_extra_features_ignore_padding_width() -> None:
    graphs = [g for g in random_graphs(60, 5, 8, seed=6) if well_determined(g)][:4]
    assert len(graphs) == 4
    features = ExtraFeatures("all", max_nodes=12).double()
    wide = batch_of(graphs, n=12)
    wide = DenseGraph(wide.X.double(), wide.E.double(), wide.y.double(), wide.node_mask)
    out = features(wide)
    for b, g in enumerate(graphs):
        alone = batch_of([g])
        alone = DenseGraph(alone.X.double(), alone.E.double(), alone.y.double(), alone.node_mask)
        single = features(alone)
        m = g.number_of_nodes()
        assert_close(single.y[0], out.y[b], atol=1e-6)
        assert_close(single.X[0], out.X[b, :m], atol=1e-6)
