"""DenseGraph masking and symmetrisation."""

from __future__ import annotations

import torch

from graphdiff.types import DenseGraph, one_hot_graph, symmetrize_upper


def test_mask_zeroes_padding_and_diagonal():
    B, n = 2, 4
    g = DenseGraph(torch.rand(B, n, 3), torch.rand(B, n, n, 2), torch.zeros(B, 0),
                   torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)).mask()
    assert (g.X[0, 3] == 0).all() and (g.X[1, 2:] == 0).all()
    assert (g.E[1, :, 2:] == 0).all() and (g.E[1, 2:, :] == 0).all()
    assert (torch.diagonal(g.E, dim1=1, dim2=2) == 0).all()
    assert (g.E[0, :3, :3][~torch.eye(3, dtype=torch.bool)] != 0).all()


def test_symmetrize_upper_copies_upper_triangle():
    E = torch.arange(2 * 3 * 3).reshape(2, 3, 3).float()
    S = symmetrize_upper(E)
    assert torch.equal(S, S.transpose(1, 2))
    assert torch.equal(torch.triu(S, 1), torch.triu(E, 1))
    assert (torch.diagonal(S, dim1=1, dim2=2) == 0).all()


def test_class_round_trip():
    nodes = torch.tensor([[2, 0, 1], [1, 1, 0]])
    edges = torch.tensor([[[0, 1, 0], [1, 0, 2], [0, 2, 0]], [[0, 1, 0], [1, 0, 0], [0, 0, 0]]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    g = one_hot_graph(nodes, edges, mask, dx=3, de=3)
    assert torch.equal(g.node_classes(), torch.tensor([[2, 0, 1], [1, 1, -1]]))
    ec = g.edge_classes()
    assert torch.equal(ec[0], edges[0]) and ec[1, 2].tolist() == [-1, -1, -1]
    assert torch.equal(g.argmax().X, g.X)
