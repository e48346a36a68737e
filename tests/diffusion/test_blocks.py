"""PARD's partial order and block layouts: the definition checked against a plain transcription, invariance under
node permutations, and exact reassembly of the graph from its blocks."""

from __future__ import annotations

import networkx as nx
import pytest
import torch

from graphdiff.diffusion.blocks import (
    higher_order_degrees,
    parallel_layout,
    partial_order,
    reassemble,
    sequential_layout,
)
from graphdiff.types import DenseGraph, one_hot_graph


def random_graphs(count: int, seed: int, dx: int = 3, de: int = 3, n_max: int = 11) -> DenseGraph:
    """Random typed graphs of various sizes and densities (isolated nodes, trees, dense ones)."""
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(1, n_max + 1, (count,), generator=g)
    n = int(sizes.max())
    mask = torch.arange(n).unsqueeze(0) < sizes.unsqueeze(1)
    density = torch.rand(count, 1, 1, generator=g) * 0.7
    present = torch.rand(count, n, n, generator=g) < density
    kinds = torch.randint(1, de, (count, n, n), generator=g)
    edges = torch.triu(present * kinds, diagonal=1)
    edges = edges + edges.transpose(1, 2)
    nodes = torch.randint(0, dx, (count, n), generator=g)
    return one_hot_graph(nodes, edges, mask, dx, de)


def reference_order(adj: list[list[int]], max_hops: int) -> tuple[list[int], list[int], list[int]]:
    """PARD's peeling, transcribed from its definition one graph at a time (pure Python)."""
    n = len(adj)
    alive = set(range(n))
    edges = {(i, j) for i in range(n) for j in range(n) if adj[i][j]}
    peel: dict[int, int] = {}
    sizes, degrees = [], []
    step = 0
    while alive:
        x = [1] * n
        weighted = [0] * n
        for _ in range(max_hops):
            x = [x[i] + sum(x[j] for j in range(n) if (i, j) in edges) for i in range(n)]
            weighted = [weighted[i] * n + x[i] for i in range(n)]
        if max_hops == 0:
            weighted = [1] * n
        low = min(weighted[i] for i in alive)
        block = [i for i in alive if weighted[i] == low]
        degree = {i: sum(1 for j in range(n) if (i, j) in edges) for i in block}
        for i in block:
            peel[i] = step
        sizes.append(len(block))
        degrees.append(min(degree.values()))
        alive -= set(block)
        edges = {(i, j) for (i, j) in edges if i in alive and j in alive}
        step += 1
    k = step
    return [k - 1 - peel[i] for i in range(n)], sizes[::-1], degrees[::-1]


@pytest.mark.parametrize("max_hops", [0, 1, 2, 3])
def test_partial_order_matches_the_definition(max_hops):
    graphs = random_graphs(40, seed=max_hops)
    order = partial_order(graphs, max_hops)
    adjacency = (graphs.E.argmax(-1) > 0) & (graphs.E.sum(-1) > 0)
    for b in range(graphs.batch_size):
        n = int(graphs.node_mask[b].sum())
        adj = adjacency[b, :n, :n].int().tolist()
        block, sizes, degrees = reference_order(adj, max_hops)
        assert order.block[b, :n].tolist() == block
        assert (order.block[b, n:] == -1).all()
        k = len(sizes)
        assert order.size[b, :k].tolist() == sizes and (order.size[b, k:] == 0).all()
        assert order.degree[b, :k].tolist() == degrees


def test_partial_order_of_known_graphs():
    # A path a-b-c-d-e peels its ends, then their neighbours, then the centre: blocks [centre], [b, d], [a, e].
    path = nx.path_graph(5)
    star = nx.star_graph(4)  # leaves (degree 1) first, then the centre
    graphs = [nx.to_numpy_array(g, dtype=int).tolist() for g in (path, star)]
    n = 5
    edges = torch.zeros(2, n, n, dtype=torch.long)
    for b, adj in enumerate(graphs):
        edges[b, : len(adj), : len(adj)] = torch.tensor(adj)
    dense = one_hot_graph(torch.zeros(2, n, dtype=torch.long), edges, torch.ones(2, n, dtype=torch.bool), 1, 2)
    order = partial_order(dense, max_hops=1)
    assert order.block[0].tolist() == [2, 1, 0, 1, 2]
    assert order.size[0].tolist() == [1, 2, 2]
    assert order.degree[0].tolist() == [0, 1, 1]  # degree within blocks 0..k: centre alone, then 1, then 1
    assert order.block[1].tolist() == [0, 1, 1, 1, 1]
    assert order.size[1, :2].tolist() == [1, 4] and order.degree[1, :2].tolist() == [0, 1]
    assert partial_order(dense, max_hops=0).num_blocks.tolist() == [1, 1]  # no hops: plain diffusion


def test_higher_order_degrees_are_the_weighted_walk_counts():
    adj = torch.tensor([[[0, 1, 0], [1, 0, 1], [0, 1, 0]]])
    w = higher_order_degrees(adj, torch.tensor([3]), max_hops=2)
    # x1 = 1 + degree = [2, 3, 2]; x2 = (I + A) x1 = [5, 7, 5]; w = 3 * x1 + x2.
    assert w.tolist() == [[11.0, 16.0, 11.0]]


@pytest.mark.parametrize("max_hops", [1, 3])
def test_partial_order_is_invariant_under_node_permutations(max_hops):
    graphs = random_graphs(30, seed=10 + max_hops)
    order = partial_order(graphs, max_hops)
    g = torch.Generator().manual_seed(5)
    for _ in range(5):
        n = graphs.max_nodes
        perm = torch.stack([torch.randperm(n, generator=g) for _ in range(graphs.batch_size)])
        rows = torch.arange(graphs.batch_size).unsqueeze(1)
        X = graphs.X[rows, perm]
        E = graphs.E[rows.unsqueeze(2), perm.unsqueeze(2), perm.unsqueeze(1)]
        permuted = DenseGraph(X, E, graphs.y, graphs.node_mask[rows, perm])
        other = partial_order(permuted, max_hops)
        assert torch.equal(other.block, order.block[rows, perm])  # the same blocks, permuted
        assert torch.equal(other.size, order.size) and torch.equal(other.degree, order.degree)


def test_blocks_reassemble_the_graph_exactly():
    graphs = random_graphs(40, seed=3)
    order = partial_order(graphs, 2)
    laid, layout = parallel_layout(graphs, order)
    n = graphs.max_nodes
    assert torch.equal(laid.X[:, :n], graphs.X) and torch.equal(laid.E[:, :n, :n], graphs.E)  # the clean half
    back = reassemble(laid, layout, n)
    assert torch.equal(back.X, graphs.X) and torch.equal(back.E, graphs.E)
    assert torch.equal(back.node_mask, graphs.node_mask)
    # Every node pair is generated by exactly one block: within it, or from its later end to the earlier one.
    pairs = layout.target_pairs()
    real = graphs.node_mask.unsqueeze(1) & graphs.node_mask.unsqueeze(2)
    cover = pairs[:, n:, n:].int() + pairs[:, n:, :n].int() + pairs[:, n:, :n].transpose(1, 2).int()
    off_diagonal = real & ~torch.eye(n, dtype=torch.bool)
    assert torch.equal(cover[off_diagonal], torch.ones_like(cover[off_diagonal]))
    assert (cover[~off_diagonal] == 0).all()


def test_sequential_layout_rows_are_the_prefixes():
    graphs = random_graphs(20, seed=4)
    order = partial_order(graphs, 1)
    rows, layout, source = sequential_layout(graphs, order)
    assert len(source) == int(order.num_blocks.sum())
    for r in range(len(source)):
        b = int(source[r])
        k = int(layout.block[r].max())
        expected = (order.block[b] >= 0) & (order.block[b] <= k)
        assert torch.equal(rows.node_mask[r], expected)
        assert torch.equal(layout.target[r], order.block[b] == k)
        keep = expected.unsqueeze(0) & expected.unsqueeze(1)
        assert torch.equal(rows.E[r][keep], graphs.E[b][keep])
        assert int(layout.size[r].sum()) == int(expected.sum())
    # The last row of each graph is the whole graph.
    last = torch.cumsum(order.num_blocks, 0) - 1
    assert torch.equal(rows.node_mask[last], graphs.node_mask)


def test_causal_mask_is_reflexive_and_transitive():
    graphs = random_graphs(10, seed=6)
    _, layout = parallel_layout(graphs, partial_order(graphs, 1))
    C = layout.causal_mask()
    valid = layout.node_mask
    assert torch.equal(torch.diagonal(C, dim1=1, dim2=2), valid)
    two_steps = (C.float() @ C.float()) > 0
    assert not (two_steps & ~C).any()
    # A target node never reads a clean node of its own block or any later block.
    later_or_same = layout.block.unsqueeze(2) <= layout.block.unsqueeze(1)
    clean_j = ~layout.target.unsqueeze(1)
    assert not (C & layout.target.unsqueeze(2) & clean_j & later_or_same).any()
