"""Conversions: exact round trips DenseGraph <-> PyG <-> NetworkX <-> triples, checked against loops."""

from __future__ import annotations

import networkx as nx
import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Batch, Data

from graphdiff.graph import (
    collect_vocab,
    data_to_triple,
    dense_to_networkx,
    dense_to_pyg,
    dense_to_triples,
    networkx_to_dense,
    networkx_to_triple,
    normalize_edges,
    pyg_to_dense,
    triple_to_data,
    triple_to_networkx,
    triples_to_dense,
)

DX, DE = 3, 4


def random_triples(count: int, seed: int = 0, sizes=None):
    """Graphs with 1..8 nodes (or the given sizes), random classes, edges once with i < j."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for k in range(count):
        n = sizes[k] if sizes is not None else int(torch.randint(1, 9, (1,), generator=g))
        x = torch.randint(0, DX, (n,), generator=g)
        i, j = torch.triu_indices(n, n, offset=1)
        keep = torch.rand(i.numel(), generator=g) < 0.5
        out.append((x, torch.stack([i[keep], j[keep]]), torch.randint(1, DE, (int(keep.sum()),), generator=g)))
    return out


def dense_reference(triples, dx: int, de: int, n: int):
    """Element-by-element construction of the padded one-hot batch."""
    B = len(triples)
    X, E = torch.zeros(B, n, dx), torch.zeros(B, n, n, de)
    mask = torch.zeros(B, n, dtype=torch.bool)
    for b, (x, ei, et) in enumerate(triples):
        m = len(x)
        for v, c in enumerate(x.tolist()):
            X[b, v, c] = 1
            mask[b, v] = True
        for u in range(m):
            for v in range(m):
                if u != v:
                    E[b, u, v, 0] = 1
        for (u, v), c in zip(ei.T.tolist(), et.tolist(), strict=True):
            E[b, u, v], E[b, v, u] = F.one_hot(torch.tensor(c), de).float(), F.one_hot(torch.tensor(c), de).float()
    return X, E, mask


def assert_dense_equal(graph, X, E, mask):
    assert torch.equal(graph.node_mask, mask)
    assert torch.equal(graph.X, X)
    assert torch.equal(graph.E, E)
    assert graph.y.shape == (X.shape[0], 0)


def assert_triples_equal(a, b):
    assert len(a) == len(b)
    for (x1, e1, t1), (x2, e2, t2) in zip(a, b, strict=True):
        assert torch.equal(x1.long(), x2.long())
        assert torch.equal(e1.long(), e2.long())
        assert torch.equal(t1.long(), t2.long())


# ---------------------------------------------------------------------------------------------- PyG
def test_pyg_round_trip_with_mixed_sizes_and_padding():
    triples = random_triples(6, sizes=[1, 5, 8, 3, 0, 6])
    batch = Batch.from_data_list([triple_to_data(*t) for t in triples])
    dense = pyg_to_dense(batch, DX, DE, max_nodes=11)
    assert_dense_equal(dense, *dense_reference(triples, DX, DE, 11))
    back = [data_to_triple(d) for d in dense_to_pyg(dense)]
    assert_triples_equal(back, triples)


def test_pyg_default_padding_is_the_largest_graph_and_too_small_max_nodes_fails():
    triples = random_triples(4, seed=1, sizes=[2, 7, 4, 3])
    batch = Batch.from_data_list([triple_to_data(*t) for t in triples])
    dense = pyg_to_dense(batch, DX, DE)
    assert dense.X.shape == (4, 7, DX) and dense.E.shape == (4, 7, 7, DE)
    assert dense.num_nodes.tolist() == [2, 7, 4, 3]
    with pytest.raises(ValueError, match="7 nodes, more than max_nodes=6"):
        pyg_to_dense(batch, DX, DE, max_nodes=6)


def test_one_hot_and_integer_features_give_the_same_batch():
    triples = random_triples(3, seed=2, sizes=[4, 6, 2])
    ints = [triple_to_data(*t) for t in triples]
    with_none_column = [
        Data(x=F.one_hot(d.x, DX).float(), edge_index=d.edge_index, edge_attr=F.one_hot(d.edge_attr, DE).float())
        for d in ints
    ]
    without_none_column = [  # PyG-QM9 style: one column per real edge class
        Data(x=d.x.unsqueeze(-1), edge_index=d.edge_index, edge_attr=F.one_hot(d.edge_attr - 1, DE - 1).float())
        for d in ints
    ]
    expected = dense_reference(triples, DX, DE, 6)
    for data in (ints, with_none_column, without_none_column):
        assert_dense_equal(pyg_to_dense(Batch.from_data_list(data), DX, DE), *expected)


def test_missing_features_mean_one_node_class_and_edge_class_one():
    data = Data(edge_index=torch.tensor([[0, 1], [1, 2]]), num_nodes=4)
    dense = pyg_to_dense(data, 1, 2)
    assert dense.X.shape == (1, 4, 1) and dense.X.sum() == 4
    assert dense.edge_classes()[0].tolist() == [[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    x, ei, et = data_to_triple(data)
    assert x.tolist() == [0, 0, 0, 0] and ei.tolist() == [[0, 1], [1, 2]] and et.tolist() == [1, 1]


def test_edges_listed_once_or_twice_agree_and_self_loops_are_dropped_with_a_warning():
    once = Data(x=torch.tensor([0, 1, 2]), edge_index=torch.tensor([[1, 2], [0, 0]]), edge_attr=torch.tensor([2, 3]))
    twice = triple_to_data(torch.tensor([0, 1, 2]), torch.tensor([[0, 0], [1, 2]]), torch.tensor([2, 3]))
    assert twice.edge_index.shape[1] == 4
    assert torch.equal(pyg_to_dense(once, DX, DE).E, pyg_to_dense(twice, DX, DE).E)
    looped = Data(x=once.x, edge_index=torch.tensor([[1, 2, 1], [0, 0, 1]]), edge_attr=torch.tensor([2, 3, 1]))
    with pytest.warns(UserWarning, match="dropped 1 self-loop"):
        dense = pyg_to_dense(looped, DX, DE)
    assert torch.equal(dense.E, pyg_to_dense(once, DX, DE).E)


def test_bad_pyg_input_is_rejected_with_the_reason():
    clash = Data(x=torch.tensor([0, 0]), edge_index=torch.tensor([[0, 1], [1, 0]]), edge_attr=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"edge \(0, 1\) is listed twice with different classes 1 and 2"):
        pyg_to_dense(clash, DX, DE)
    zero = Data(x=torch.tensor([0, 0]), edge_index=torch.tensor([[0], [1]]), edge_attr=torch.tensor([0]))
    with pytest.raises(ValueError, match="class 0"):
        pyg_to_dense(zero, DX, DE)
    with pytest.raises(ValueError, match="node class 5 outside 0..2"):
        pyg_to_dense(Data(x=torch.tensor([5]), edge_index=torch.zeros(2, 0, dtype=torch.long)), DX, DE)
    with pytest.raises(ValueError, match="one-hot rows"):
        pyg_to_dense(Data(x=torch.rand(3, 7), edge_index=torch.zeros(2, 0, dtype=torch.long)), DX, DE)
    with pytest.raises(ValueError, match="x row 1 is"):  # continuous features are not classes
        data_to_triple(Data(x=torch.tensor([[1.0, 0.0], [0.2, 0.8]]), edge_index=torch.zeros(2, 0, dtype=torch.long)))
    batch = Batch.from_data_list([triple_to_data(*t) for t in random_triples(2, sizes=[2, 2])])
    batch.edge_index = torch.tensor([[0], [3]])
    batch.edge_attr = torch.tensor([1])
    with pytest.raises(ValueError, match="two different graphs"):
        pyg_to_dense(batch, DX, DE)


def test_dense_to_pyg_lists_both_directions_and_handles_non_prefix_masks():
    triples = random_triples(3, seed=3, sizes=[5, 3, 4])
    dense = triples_to_dense(triples, DX, DE)
    for data, (x, ei, et) in zip(dense_to_pyg(dense), triples, strict=True):
        assert data.x.tolist() == x.tolist() and data.num_nodes == len(x)
        pairs = {(u, v): c for (u, v), c in zip(data.edge_index.T.tolist(), data.edge_attr.tolist(), strict=True)}
        assert len(pairs) == 2 * ei.shape[1]
        for (u, v), c in zip(ei.T.tolist(), et.tolist(), strict=True):
            assert pairs[(u, v)] == c and pairs[(v, u)] == c
    # Move graph 1's real nodes to positions 1, 3, 4: renumbered in mask order.
    perm = torch.tensor([3, 0, 4, 1, 2])
    shuffled = dense.replace(X=dense.X[:, perm], E=dense.E[:, perm][:, :, perm], node_mask=dense.node_mask[:, perm])
    assert shuffled.node_mask[1].tolist() == [False, True, False, True, True]
    x, ei, et = dense_to_triples(shuffled)[1]
    assert_triples_equal([(x, ei, et)], [triples[1]])


def test_normalize_edges_sorts_dedupes_and_checks_range():
    ei, et = normalize_edges(torch.tensor([[3, 0, 1, 0], [1, 2, 3, 2]]), torch.tensor([2, 1, 2, 1]), 4)
    assert ei.tolist() == [[0, 1], [2, 3]] and et.tolist() == [1, 2]
    with pytest.raises(ValueError, match="outside 0..3"):
        normalize_edges(torch.tensor([[0], [4]]), torch.tensor([1]), 4)


# ---------------------------------------------------------------------------------------------- networkx
def test_networkx_relabels_any_hashable_nodes_in_insertion_order_through_vocabularies():
    G = nx.Graph()
    G.add_node(("b", 2), element="N")
    G.add_node("a", element="C")
    G.add_node(7, element="O")
    G.add_edge(7, "a", bond="double")
    G.add_edge(("b", 2), "a", bond="single")
    node_vocab, edge_vocab = collect_vocab([G], "element", "bond")
    assert node_vocab == ["C", "N", "O"] and edge_vocab == ["none", "double", "single"]
    x, ei, et = networkx_to_triple(G, "element", "bond", node_vocab, edge_vocab)
    assert x.tolist() == [1, 0, 2]  # N, C, O in G.nodes order
    assert ei.tolist() == [[0, 1], [1, 2]] and et.tolist() == [2, 1]
    back = triple_to_networkx(x, ei, et, node_vocab, edge_vocab, "element", "bond")
    assert nx.is_isomorphic(
        back, nx.convert_node_labels_to_integers(G),
        node_match=lambda a, b: a["element"] == b["element"], edge_match=lambda a, b: a["bond"] == b["bond"],
    )


def test_networkx_round_trip_through_dense_with_padding():
    triples = random_triples(5, seed=4, sizes=[3, 8, 1, 6, 4])
    dense = triples_to_dense(triples, DX, DE, max_nodes=10)
    assert_dense_equal(dense, *dense_reference(triples, DX, DE, 10))
    graphs = dense_to_networkx(dense)
    assert [G.number_of_nodes() for G in graphs] == [3, 8, 1, 6, 4]
    assert all(d["label"] in range(DX) for G in graphs for _, d in G.nodes(data=True))
    again = networkx_to_dense(graphs, DX, DE, node_attr="label", edge_attr="label", max_nodes=10)
    assert_dense_equal(again, dense.X, dense.E, dense.node_mask)
    inferred = networkx_to_dense(graphs, node_attr="label", edge_attr="label")
    top_node = max(int(t[0].max()) for t in triples)
    top_edge = max(int(t[2].max()) for t in triples if t[2].numel())
    assert inferred.X.shape[-1] == top_node + 1 and inferred.E.shape[-1] == top_edge + 1


def test_unlabelled_networkx_graphs():
    dense = networkx_to_dense([nx.path_graph(3), nx.complete_graph(4)])
    assert dense.X.shape == (2, 4, 1) and dense.E.shape == (2, 4, 4, 2)
    assert dense.E[1, :, :, 1].sum() == 12 and dense.E[0, :, :, 1].sum() == 4


def test_networkx_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="directed graph"):
        networkx_to_triple(nx.DiGraph([(0, 1)]))
    with pytest.raises(ValueError, match="multigraph"):
        networkx_to_triple(nx.MultiGraph([(0, 1), (0, 1)]))
    with pytest.raises(ValueError, match="not in the vocabulary"):
        networkx_to_triple(nx.Graph([(0, 1, {"t": "x"})]), edge_attr="t", edge_vocab=["none", "y"])
    with pytest.raises(ValueError, match="has no attribute 'kind'"):
        networkx_to_triple(nx.path_graph(2), node_attr="kind")
    with pytest.raises(ValueError, match="integer class >= 1"):
        networkx_to_triple(nx.Graph([(0, 1, {"t": "single"})]), edge_attr="t")
    G = nx.Graph([(0, 1), (1, 1)])
    with pytest.warns(UserWarning, match="dropped 1 self-loop"):
        _, ei, _ = networkx_to_triple(G)
    assert ei.tolist() == [[0], [1]]
