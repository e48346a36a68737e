"""The graph transformer as a score network of the score-SDE family (graphdiff's network contract)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from graphdiff.errors import ConfigError
from graphdiff.models.base import split_condition
from graphdiff.models.features import RandomWalkFeatures
from graphdiff.models.transformer import GraphTransformerDenoiser
from graphdiff.types import DenseGraph, mask_adj, mask_nodes


class TransformerScoreNetwork(nn.Module):
    """The graph transformer as a time-conditioned score network: ``(graph, t) -> graph`` with ``graph.X`` the node
    state ``x [B, n, F]`` and ``graph.E`` the adjacency ``[B, n, n, 1]``.

    ``x`` is the transformer's ``X`` and ``adj`` its one-channel ``E``; the outputs are read from the same
    positions, ``out_adj`` symmetrised with an empty diagonal, both masked.

    Extra features: ``"none"`` or ``"rrwp"`` (DeFoG's random-walk features, :class:`RandomWalkFeatures`). The noisy
    adjacency is continuous and signed, so the walk runs on ``clamp(adj, 0, 1)`` as edge weights: the graph the
    sampler's final rounding would keep at ``t -> 0``, and a weighted walk in between. The features are appended to
    ``x`` and ``adj``; the discrete families' other modes count cycles of a discrete graph and are not offered.

    Args:
        num_features: width of the node state ``F``.
        max_nodes: the dataset's largest graph.
        extra_features: ``"none"`` (default) or ``"rrwp"``.
        rrwp_steps: ``K`` of the ``rrwp`` features.
        **config: other :class:`GraphTransformerDenoiser` arguments (``preset``, ``n_layers``, ...).
    """

    def __init__(self, num_features: int, max_nodes: int, extra_features: str = "none", rrwp_steps: int = 12,
                 condition_dim: int = 0, **config: Any) -> None:
        super().__init__()
        if extra_features not in ("none", "rrwp"):
            raise ConfigError(f"extra_features of the score transformer must be 'none' or 'rrwp', got "
                              f"{extra_features!r} (the other modes need a discrete graph)")
        self.random_walk = RandomWalkFeatures(rrwp_steps) if extra_features == "rrwp" else None
        k = rrwp_steps if self.random_walk is not None else 0
        self.condition_dim = condition_dim
        self.net = GraphTransformerDenoiser((num_features + k, 1 + k, condition_dim), (num_features, 1, 0),
                                            extra_features="none", max_nodes=max_nodes, condition_dim=condition_dim,
                                            **config)

    def forward(self, graph: DenseGraph, t: Tensor) -> DenseGraph:
        """``graph.X [B, n, F]``, ``graph.E [B, n, n, 1]``, ``t [B]`` -> the scores, same shapes."""
        mask = graph.node_mask
        X, E = graph.X, graph.E
        if self.random_walk is not None:
            weights = mask_adj(E.squeeze(-1).clamp(0, 1), mask)
            weights = weights - torch.diag_embed(torch.diagonal(weights, dim1=-2, dim2=-1))  # no self-loops
            node, edge = self.random_walk(weights, mask)
            X, E = torch.cat((X, node.to(X.dtype)), -1), torch.cat((E, edge.to(E.dtype)), -1)
        _, condition = split_condition(graph.y, self.condition_dim)
        y = condition.to(X.dtype) if condition is not None else X.new_zeros(X.shape[0], 0)
        out = self.net(DenseGraph(X, E, y, mask), t)
        out_adj = out.E.squeeze(-1)
        out_adj = (out_adj + out_adj.transpose(-1, -2)) / 2
        out_adj = out_adj * (1 - torch.eye(out_adj.shape[-1], dtype=out_adj.dtype, device=out_adj.device))
        return DenseGraph(mask_nodes(out.X, mask), mask_adj(out_adj, mask).unsqueeze(-1), graph.y, mask)
