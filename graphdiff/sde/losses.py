"""Denoising score matching (Vincent, 2011; Song et al., 2021) with GDSS's parametrisation and reduction.

Network output convention (GDSS ``losses.get_score_fn``, reproduced exactly):

* VP and sub-VP: the network predicts the noise ``z`` of ``x_t = m(t) x_0 + std(t) z``; the score is
  ``-output / std(t)``.
* VE: the network output *is* the score.

Every network follows graphdiff's one network contract, ``network(graph: DenseGraph, t [B]) -> DenseGraph``
(:data:`graphdiff.models.base.GraphNetwork`): here ``graph.X`` holds the node state ``x [B, n, F]`` and ``graph.E``
the adjacency ``adj [B, n, n, 1]``, and the output has the same shapes. GDSS's networks ignore ``t``; for VP the
``1/std(t)`` factor carries the time dependence.

With ``score = output_to_score(...)`` the per-sample loss is ``reduce(|score * std + z|^2)``, where ``reduce`` is
``0.5 * sum`` (``reduce_mean=False``, GDSS's default) or ``mean`` over all entries, padding included; the
batch loss is the mean over samples. With ``likelihood_weighting`` the loss is ``reduce(|score + z/std|^2) g(t)^2``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from graphdiff.sde.sdes import SDE, VESDE, VPSDE, broadcast_time, node_noise, symmetric_noise
from graphdiff.types import DenseGraph, mask_adj, mask_nodes

#: graphdiff's network contract (the same as :data:`graphdiff.models.base.GraphNetwork`).
GraphNetwork = Callable[[DenseGraph, Tensor], DenseGraph]


def call_network(network: GraphNetwork, x: Tensor, adj: Tensor, flags: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """``(out_x, out_adj)`` of a network for the states ``x [B, n, F]`` and ``adj [B, n, n]`` at times ``t [B]``.

    The states travel as a :class:`DenseGraph` (``X = x``, ``E = adj[..., None]``, no global features).
    """
    y = torch.zeros(x.shape[0], 0, dtype=x.dtype, device=x.device)
    out = network(DenseGraph(x, adj.unsqueeze(-1), y, flags.bool()), t)
    return out.X, out.E.squeeze(-1)


def output_to_score(sde: SDE, output: Tensor, t: Tensor) -> Tensor:
    """Turn a network output into a score (GDSS convention, see the module docstring).

    Args:
        sde: the SDE the network was trained for.
        output: ``[B, ...]`` network output.
        t: ``[B]`` times.
    """
    if isinstance(sde, VPSDE):  # VP and sub-VP
        return -output / broadcast_time(sde.marginal_std(t), output)
    if isinstance(sde, VESDE):
        return output
    raise NotImplementedError(f"no output convention for {type(sde).__name__}")


def sample_time(batch_size: int, sde: SDE, eps: float, generator: torch.Generator | None = None,
                device: torch.device | str | None = None) -> Tensor:
    """``[B]`` training times, uniform on ``[eps, T]``."""
    u = torch.rand(batch_size, generator=generator, device=device)
    return u * (sde.T - eps) + eps


def score_matching_loss(
    sde: SDE,
    score: Tensor,
    noise: Tensor,
    t: Tensor,
    reduce_mean: bool = False,
    likelihood_weighting: bool = False,
) -> Tensor:
    """Per-sample denoising score-matching loss for ``x_t = mean + std(t) * noise``.

    Args:
        sde: forward SDE.
        score: ``[B, ...]`` model score at ``(x_t, t)``.
        noise: ``[B, ...]`` the noise that produced ``x_t`` (zero on padding).
        t: ``[B]`` times.
        reduce_mean: mean over entries instead of GDSS's ``0.5 * sum``.
        likelihood_weighting: weight by ``g(t)^2`` (Song et al., 2021b) instead of ``std(t)^2``.

    Returns:
        ``[B]`` losses.
    """
    std = broadcast_time(sde.marginal_std(t), score)
    if likelihood_weighting:
        sq = torch.square(score + noise / std)
    else:
        sq = torch.square(score * std + noise)
    sq = sq.reshape(sq.shape[0], -1)
    losses = sq.mean(-1) if reduce_mean else 0.5 * sq.sum(-1)
    if likelihood_weighting:
        losses = losses * sde.diffusion_coeff(t) ** 2
    return losses


class GraphScoreMatchingLoss:
    """GDSS's joint loss for node features ``x`` and adjacency ``adj`` (``losses.get_sde_loss_fn``).

    One time ``t ~ U[eps, T]`` per graph is shared by ``x`` and ``adj``; ``x`` gets i.i.d. noise and ``adj``
    symmetric noise with an empty diagonal, both zero on padding. The network sees the perturbed pair and
    returns one output for each.

    Args:
        sde_x: SDE of the node features.
        sde_adj: SDE of the adjacency.
        reduce_mean: see :func:`score_matching_loss` (GDSS configs: ``False``).
        eps: smallest training time (GDSS configs: ``1e-5``).
        likelihood_weighting: see :func:`score_matching_loss`.
    """

    def __init__(self, sde_x: SDE, sde_adj: SDE, reduce_mean: bool = False, eps: float = 1e-5,
                 likelihood_weighting: bool = False) -> None:
        self.sde_x = sde_x
        self.sde_adj = sde_adj
        self.reduce_mean = reduce_mean
        self.eps = eps
        self.likelihood_weighting = likelihood_weighting

    def __call__(self, network: GraphNetwork, x: Tensor, adj: Tensor, flags: Tensor,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Losses of one batch.

        Args:
            network: ``(DenseGraph, t) -> DenseGraph`` (see :func:`call_network`).
            x: ``[B, n, F]`` clean node features, zero on padding.
            adj: ``[B, n, n]`` clean symmetric adjacency, zero on padding and diagonal.
            flags: ``[B, n]`` node mask (bool or 0/1 float).
            generator: optional RNG for ``t`` and the noise.

        Returns:
            ``(loss_x, loss_adj)`` scalars.
        """
        t = sample_time(adj.shape[0], self.sde_adj, self.eps, generator, adj.device).to(adj.dtype)
        z_x = node_noise(x, flags, generator)
        mean_x, std_x = self.sde_x.marginal_prob(x, t)
        x_t = mask_nodes(mean_x + broadcast_time(std_x, x) * z_x, flags)

        z_adj = symmetric_noise(adj, flags, generator)
        mean_adj, std_adj = self.sde_adj.marginal_prob(adj, t)
        adj_t = mask_adj(mean_adj + broadcast_time(std_adj, adj) * z_adj, flags)

        out_x, out_adj = call_network(network, x_t, adj_t, flags, t)
        score_x = output_to_score(self.sde_x, out_x, t)
        score_adj = output_to_score(self.sde_adj, out_adj, t)
        loss_x = score_matching_loss(self.sde_x, score_x, z_x, t, self.reduce_mean, self.likelihood_weighting)
        loss_adj = score_matching_loss(self.sde_adj, score_adj, z_adj, t, self.reduce_mean,
                                       self.likelihood_weighting)
        return loss_x.mean(), loss_adj.mean()
