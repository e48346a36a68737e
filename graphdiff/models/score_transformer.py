"""The graph transformer as a score network of the score-SDE family (graphdiff's network contract)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from graphdiff.models.transformer import GraphTransformerDenoiser
from graphdiff.types import DenseGraph, mask_adj, mask_nodes


class TransformerScoreNetwork(nn.Module):
    """The graph transformer as a time-conditioned score network: ``(graph, t) -> graph`` with ``graph.X`` the node
    state ``x [B, n, F]`` and ``graph.E`` the adjacency ``[B, n, n, 1]``.

    ``x`` is the transformer's ``X`` and ``adj`` its one-channel ``E``; the outputs are read from the same
    positions, ``out_adj`` symmetrised with an empty diagonal, both masked. No extra features (they assume
    discrete graphs).
    """

    def __init__(self, num_features: int, max_nodes: int, **config: Any) -> None:
        super().__init__()
        self.net = GraphTransformerDenoiser((num_features, 1, 0), (num_features, 1, 0), extra_features="none",
                                            max_nodes=max_nodes, **config)

    def forward(self, graph: DenseGraph, t: Tensor) -> DenseGraph:
        mask = graph.node_mask
        out = self.net(DenseGraph(graph.X, graph.E, graph.X.new_zeros(graph.X.shape[0], 0), mask), t)
        out_adj = out.E.squeeze(-1)
        out_adj = (out_adj + out_adj.transpose(-1, -2)) / 2
        out_adj = out_adj * (1 - torch.eye(out_adj.shape[-1], dtype=out_adj.dtype, device=out_adj.device))
        return DenseGraph(mask_nodes(out.X, mask), mask_adj(out_adj, mask).unsqueeze(-1), graph.y, mask)
