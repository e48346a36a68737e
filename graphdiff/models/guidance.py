"""Guidance at sampling time: classifier-free guidance of a conditional network, and regressor guidance.

Every network follows ``network(graph, t) -> graph``; a conditional one reads the encoded condition
(:mod:`graphdiff.conditioning`) from the trailing ``condition_dim`` columns of ``graph.y``.
:class:`ClassifierFreeGuidance` evaluates the network with and without the condition in one batched call and returns
``u + s (c - u)`` for every output tensor. For logits of categorical predictions this is the log-probability
interpolation ``log p_u + s (log p_c - log p_u)`` up to a per-row constant that the softmax removes (Ho & Salimans
2022); for the score SDE's network outputs it is the guided score. ``s = 0`` gives the unconditional prediction and
``s = 1`` the conditional one, exactly. With one scale per property the guidance is compositional:
``u + sum_k s_k (c_k - u)`` with ``c_k`` conditioned on property ``k`` alone.

:class:`RegressorGuidance` is DiGress's guidance of an *unconditional* discrete model by a property regressor
trained on noisy graphs: each reverse distribution is multiplied by ``softmax(-lambda * grad_{G_t} L)`` with
``L`` the squared error of the regressor's prediction to the target.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from graphdiff.types import DenseGraph, mask_features


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


class RegressorGuidance(nn.Module):
    """DiGress's regressor guidance: per-class factors that steer a reverse step towards target properties.

    For a noisy graph ``G_t`` with one-hot ``X_t``, ``E_t`` and targets ``y*`` (in the properties' units),

    ``L(G_t) = mean_k (mu_k + sigma_k r_k(G_t, t) - y*_k)^2`` over the properties ``k`` with a target, and the
    factors are ``softmax(-lambda dL/dX_t)`` per node and ``softmax(-lambda dL/dE_t)`` per pair (the edge gradient
    masked to real pairs off the diagonal and symmetrised), which :meth:`DiscreteDiffusion.step
    <graphdiff.diffusion.DiscreteDiffusion.step>` multiplies into ``p(x_s | G_t)``. ``L`` is each graph's own
    error (summed over the batch for one backward pass), so a graph's factors do not depend on the batch: DiGress
    samples with batch size 1, where its mean squared error is this ``L``; its ``lambda`` values (100 for QM9 mu,
    300 for HOMO) carry over.

    Args:
        regressor: ``(graph with y of width 0, t [B] in [0, 1]) -> [B, P]`` normalised predictions ``r``.
        mean, std: ``[P]`` the training statistics (``mu``, ``sigma``) that normalise the properties.
        scale: ``lambda``.

    The chain's ``y`` carries the targets in its trailing ``P`` columns (``NaN``: no target for that property).
    """

    def __init__(self, regressor: nn.Module, mean: Tensor, std: Tensor, scale: float) -> None:
        super().__init__()
        self.regressor = regressor
        self.register_buffer("mean", mean.detach().float().clone(), persistent=False)
        self.register_buffer("std", std.detach().float().clone(), persistent=False)
        self.scale = float(scale)

    @property
    def target_dim(self) -> int:
        return self.mean.numel()

    def loss_gradient(self, graph: DenseGraph, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(dL/dX_t [B, n, dx], dL/dE_t [B, n, n, de])``: masked, the edge gradient symmetric."""
        P = self.target_dim
        targets = graph.y[:, graph.y.shape[1] - P:].to(self.mean.dtype)
        present = ~torch.isnan(targets)
        with torch.enable_grad():
            X = graph.X.detach().to(self.mean.dtype).requires_grad_(True)
            E = graph.E.detach().to(self.mean.dtype).requires_grad_(True)
            plain = DenseGraph(X, E, X.new_zeros(graph.batch_size, 0), graph.node_mask)
            value = self.regressor(plain, t) * self.std + self.mean
            squared = torch.where(present, (value - torch.nan_to_num(targets)) ** 2, 0.0)
            per_graph = squared.sum(-1) / present.sum(-1).clamp(min=1)
            grad_X, grad_E = torch.autograd.grad(per_graph.sum(), (X, E), allow_unused=True)
        grad_X = torch.zeros_like(X) if grad_X is None else grad_X  # a regressor may read only one of them
        grad_E = torch.zeros_like(E) if grad_E is None else grad_E
        grad_X, grad_E = mask_features(torch.nan_to_num(grad_X), torch.nan_to_num(grad_E), graph.node_mask)
        return grad_X, (grad_E + grad_E.transpose(1, 2)) / 2

    def forward(self, graph: DenseGraph, t: Tensor) -> DenseGraph:
        """Factors ``softmax(-lambda dL/dX_t)``, ``softmax(-lambda dL/dE_t)`` for the step from ``graph`` at ``t``."""
        grad_X, grad_E = self.loss_gradient(graph, t)
        return DenseGraph(torch.softmax(-self.scale * grad_X, -1), torch.softmax(-self.scale * grad_E, -1),
                          graph.y, graph.node_mask)
