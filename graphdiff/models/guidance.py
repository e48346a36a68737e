"""Classifier-free guidance of a conditional network at sampling time.

Every network follows ``network(graph, t) -> graph``; a conditional one reads the encoded condition
(:mod:`graphdiff.conditioning`) from the trailing ``condition_dim`` columns of ``graph.y``.
:class:`ClassifierFreeGuidance` evaluates the network with and without the condition in one batched call and returns
``u + s (c - u)`` for every output tensor. For logits of categorical predictions this is the log-probability
interpolation ``log p_u + s (log p_c - log p_u)`` up to a per-row constant that the softmax removes (Ho & Salimans
2022); for the score SDE's network outputs it is the guided score. ``s = 0`` gives the unconditional prediction and
``s = 1`` the conditional one, exactly. With one scale per property the guidance is compositional:
``u + sum_k s_k (c_k - u)`` with ``c_k`` conditioned on property ``k`` alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from graphdiff.types import DenseGraph


class ClassifierFreeGuidance(nn.Module):
    """Classifier-free guidance of a conditional network (see the module docstring).

    Args:
        network: a conditional network, reading its condition from the trailing ``condition_dim`` columns of
            ``graph.y``.
        condition_dim: width of the encoded condition.
        scale: one guidance scale ``s`` for the whole condition, or ``[(columns, s_k)]`` pairs, one per
            property (``columns`` a slice of the condition's columns) for compositional guidance.
    """

    def __init__(self, network: nn.Module, condition_dim: int, scale: float | Sequence[tuple[slice, float]]) -> None:
        super().__init__()
        self.network = network
        self.condition_dim = condition_dim
        self.scale = scale

    def forward(self, graph: DenseGraph, t: Tensor) -> DenseGraph:
        C = self.condition_dim
        if isinstance(self.scale, (int, float)):
            if self.scale == 1:
                return self.network(graph, t)
            if self.scale == 0:
                return self.network(_with_condition(graph, torch.zeros_like(graph.y[:, graph.y.shape[1] - C:])), t)
            parts = [(slice(0, C), float(self.scale))]
        else:
            parts = [(cols, float(s)) for cols, s in self.scale]
        condition = graph.y[:, graph.y.shape[1] - C:]
        variants = [torch.zeros_like(condition)]
        for cols, _ in parts:
            only = torch.zeros_like(condition)
            only[:, cols] = condition[:, cols]
            variants.append(only)
        k = len(variants)
        # One network call on k copies of the batch: the unconditional one first.
        stacked = DenseGraph(
            graph.X.repeat(k, *([1] * (graph.X.dim() - 1))), graph.E.repeat(k, *([1] * (graph.E.dim() - 1))),
            torch.cat([torch.cat((graph.y[:, : graph.y.shape[1] - C], v), -1) for v in variants]),
            graph.node_mask.repeat(k, 1))
        out = self.network(stacked, t.repeat(k) if t.dim() else t)
        B = graph.batch_size
        guided = []
        for chunks in (out.X.split(B), out.E.split(B), out.y.split(B)):
            unconditional = chunks[0]
            value = unconditional
            for i, (_, s) in enumerate(parts, start=1):
                value = value + s * (chunks[i] - unconditional)
            guided.append(value)
        return DenseGraph(guided[0], guided[1], guided[2], graph.node_mask)


def _with_condition(graph: DenseGraph, condition: Tensor) -> DenseGraph:
    """``graph`` with the trailing columns of its ``y`` replaced by ``condition``."""
    keep = graph.y[:, : graph.y.shape[1] - condition.shape[1]]
    return DenseGraph(graph.X, graph.E, torch.cat((keep, condition), -1), graph.node_mask)
