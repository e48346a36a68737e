"""GraphList: exact round trips and the vectorised dense collation against a per-graph loop."""

from __future__ import annotations

import torch

from graphdiff.info import compute_statistics
from graphdiff.storage import GraphList


def random_graphs(count: int, dx: int, de: int, seed: int = 0, max_n: int = 9):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        n = int(torch.randint(1, max_n + 1, (1,), generator=g))
        x = torch.randint(0, dx, (n,), generator=g)
        i, j = torch.triu_indices(n, n, offset=1)
        keep = torch.rand(i.numel(), generator=g) < 0.4
        ei = torch.stack([i[keep], j[keep]])
        ea = torch.randint(1, de, (ei.shape[1],), generator=g)
        out.append((x, ei, ea))
    return out


def dense_reference(graphs, dx, de):
    """Per-graph loop: the obvious construction that to_dense must match."""
    n = max(x.numel() for x, _, _ in graphs)
    B = len(graphs)
    X = torch.zeros(B, n, dx)
    E = torch.zeros(B, n, n, de)
    mask = torch.zeros(B, n, dtype=torch.bool)
    for b, (x, ei, ea) in enumerate(graphs):
        k = x.numel()
        mask[b, :k] = True
        X[b, torch.arange(k), x] = 1
        E[b, :k, :k, 0] = 1 - torch.eye(k)
        for (u, v), t in zip(ei.T.tolist(), ea.tolist()):
            E[b, u, v] = torch.nn.functional.one_hot(torch.tensor(t), de).float()
            E[b, v, u] = E[b, u, v]
    return X, E, mask


def test_round_trip_graph_triples():
    graphs = random_graphs(30, dx=4, de=3)
    store = GraphList.from_graphs(graphs)
    assert len(store) == 30
    for (x, ei, ea), (x2, ei2, ea2) in zip(graphs, store):
        assert torch.equal(x, x2)
        # from_graphs sorts edges; compare as sets of (u, v, type)
        assert sorted(zip(*ei.tolist(), ea.tolist())) == sorted(zip(*ei2.tolist(), ea2.tolist()))


def test_duplicate_and_reversed_edges_are_stored_once():
    edges = torch.tensor([[0, 1, 2, 1], [1, 0, 1, 2]])
    store = GraphList.from_graphs([(torch.zeros(3), edges, torch.tensor([1, 1, 2, 2]))])
    x, ei, ea = store.graph(0)
    assert ei.tolist() == [[0, 1], [1, 2]] and ea.tolist() == [1, 2]


def test_to_dense_matches_per_graph_reference():
    graphs = random_graphs(12, dx=3, de=4, seed=1)
    store = GraphList.from_graphs(graphs)
    idx = [5, 0, 11, 3]
    dense = store.to_dense(idx, 3, 4)
    X, E, mask = dense_reference([graphs[i] for i in idx], 3, 4)
    assert torch.equal(dense.node_mask, mask)
    assert torch.equal(dense.X, X)
    assert torch.equal(dense.E, E)
    assert torch.equal(dense.E, dense.E.transpose(1, 2))


def test_dense_round_trip_and_subset():
    graphs = random_graphs(10, dx=5, de=3, seed=2)
    store = GraphList.from_graphs(graphs)
    dense = store.to_dense(range(10), 5, 3)
    back = GraphList.from_dense(dense)
    for a, b in zip(store, back):
        assert all(torch.equal(u, v) for u, v in zip(a, b))
    sub = store.subset([7, 2])
    for k, i in enumerate([7, 2]):
        assert all(torch.equal(u, v) for u, v in zip(sub.graph(k), store.graph(i)))


def test_statistics_by_hand():
    # a path 0-1-2 (types a,b,a) and a single node (type b); one edge of class 2, one of class 1
    store = GraphList.from_graphs([
        (torch.tensor([0, 1, 0]), torch.tensor([[0, 1], [1, 2]]), torch.tensor([1, 2])),
        (torch.tensor([1]), torch.zeros(2, 0), torch.zeros(0)),
    ])
    stats = compute_statistics(store, 2, 3)
    assert stats["node_counts"] == [0, 1, 0, 1]
    assert stats["node_marginals"] == [0.5, 0.5]
    # ordered pairs of distinct nodes: 3*2 + 0 = 6; edges give 2 of class 1 and 2 of class 2
    assert torch.allclose(torch.tensor(stats["edge_marginals"]), torch.tensor([2 / 6, 2 / 6, 2 / 6]))


def test_concat_keeps_order():
    a = GraphList.from_graphs(random_graphs(3, 2, 3, seed=4))
    b = GraphList.from_graphs(random_graphs(4, 2, 3, seed=5))
    c = GraphList.concat([a, b])
    assert len(c) == 7
    for k in range(7):
        ref = a.graph(k) if k < 3 else b.graph(k - 3)
        assert all(torch.equal(u, v) for u, v in zip(c.graph(k), ref))
