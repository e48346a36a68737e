"""Denoising score matching: GDSS's output convention, reduction, and analytic expectations."""

from __future__ import annotations

import pytest
import torch

from graphdiff.sde.losses import GraphScoreMatchingLoss, output_to_score, sample_time, score_matching_loss
from graphdiff.sde.sdes import VESDE, VPSDE, subVPSDE
from graphdiff.types import DenseGraph

# Batched LAPACK and small matmuls are much slower with 2 threads on a loaded 2-core machine.
pytestmark = pytest.mark.usefixtures("one_thread")


def test_output_convention():
    t = torch.tensor([0.3, 0.8])
    out = torch.randn(2, 3, 4)
    for sde in (VPSDE(0.1, 1.0), subVPSDE(0.1, 1.0)):
        std = sde.marginal_std(t)
        assert torch.allclose(output_to_score(sde, out, t), -out / std[:, None, None])
    assert torch.equal(output_to_score(VESDE(0.2, 1.0), out, t), out)


@pytest.mark.parametrize("sde", [VPSDE(0.1, 20.0), VESDE(0.01, 50.0), subVPSDE(0.1, 20.0)], ids=["VP", "VE", "subVP"])
def test_exact_score_attains_the_analytic_minimum(sde):
    """For p_0 = N(mu, s^2) and x_t = m x_0 + std z, the exact score gives E|score std + z|^2 = m^2 s^2 / v,
    v = m^2 s^2 + std^2; any other score does worse."""
    g = torch.Generator().manual_seed(0)
    n, mu, s = 200000, 1.0, 0.5
    t = torch.full((n,), 0.3, dtype=torch.float64)
    m, std = sde.mean_coeff(t)[:, None], sde.marginal_std(t)[:, None]
    x0 = mu + s * torch.randn(n, 1, generator=g, dtype=torch.float64)
    z = torch.randn(n, 1, generator=g, dtype=torch.float64)
    x_t = m * x0 + std * z
    v = m**2 * s**2 + std**2
    exact = -(x_t - m * mu) / v
    loss = score_matching_loss(sde, exact, z, t)  # 0.5 * sum over the one entry
    expected = 0.5 * (m**2 * s**2 / v)[0].item()
    assert loss.mean().item() == pytest.approx(expected, rel=0.02)
    for wrong in (2.0 * exact, exact + 0.2 / std):
        assert score_matching_loss(sde, wrong, z, t).mean().item() > loss.mean().item() * 1.01
    weighted = score_matching_loss(sde, exact, z, t, likelihood_weighting=True)
    g2 = sde.diffusion_coeff(t[:1]).item() ** 2
    assert weighted.mean().item() == pytest.approx(expected * g2 / std[0].item() ** 2, rel=0.02)


def zero_network(graph: DenseGraph, t: torch.Tensor) -> DenseGraph:
    return DenseGraph(torch.zeros_like(graph.X), torch.zeros_like(graph.E), graph.y, graph.node_mask)


@pytest.mark.parametrize("sde", [VPSDE(0.1, 1.0), VESDE(0.2, 1.0)], ids=["VP", "VE"])
def test_graph_loss_of_a_zero_network_counts_the_noise_entries(sde):
    """A zero output leaves |z|^2: E[0.5 sum] = 0.5 * (#node entries) for x and 0.5 * k(k-1) for adj (both
    triangles of the symmetric noise, no diagonal, no padding); reduce_mean divides by all n F / n^2 entries."""
    B, n, F = 4000, 5, 3
    sizes = torch.tensor([5, 3])[torch.arange(B) % 2]
    flags = (torch.arange(n) < sizes[:, None]).double()
    x = torch.zeros(B, n, F, dtype=torch.float64)
    adj = torch.zeros(B, n, n, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    loss_x, loss_adj = GraphScoreMatchingLoss(sde, sde)(zero_network, x, adj, flags, generator=g)
    k = sizes.double()
    assert loss_x.item() == pytest.approx((0.5 * k * F).mean().item(), rel=0.02)
    assert loss_adj.item() == pytest.approx((0.5 * k * (k - 1)).mean().item(), rel=0.02)
    loss_x, loss_adj = GraphScoreMatchingLoss(sde, sde, reduce_mean=True)(zero_network, x, adj, flags, generator=g)
    assert loss_x.item() == pytest.approx((k * F / (n * F)).mean().item(), rel=0.02)
    assert loss_adj.item() == pytest.approx((k * (k - 1) / n**2).mean().item(), rel=0.02)


def test_graph_loss_feeds_the_network_a_masked_symmetric_perturbation():
    seen = {}

    def spy(graph: DenseGraph, t: torch.Tensor) -> DenseGraph:
        seen.update(x=graph.X, adj=graph.E[..., 0], flags=graph.node_mask, t=t)
        return zero_network(graph, t)

    flags = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    adj = torch.tensor([[[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]]], dtype=torch.float)
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]])
    sde = VPSDE(0.1, 1.0)
    GraphScoreMatchingLoss(sde, sde)(spy, x, adj, flags, generator=torch.Generator().manual_seed(0))
    a = seen["adj"][0]
    assert torch.equal(a, a.T) and torch.all(a.diagonal() == 0)
    assert torch.all(a[3] == 0) and torch.all(seen["x"][0, 3] == 0)
    assert torch.all(a[:3, :3] + torch.eye(3) != 0) and not torch.equal(a, adj[0])
    assert torch.equal(seen["flags"], flags.bool()) and seen["t"].shape == (1,) and 0 < float(seen["t"]) <= 1


def test_sample_time_range_and_seed():
    sde = VPSDE()
    t = sample_time(10000, sde, 1e-5, torch.Generator().manual_seed(0))
    assert t.min().item() >= 1e-5 and t.max().item() <= 1.0
    assert t.mean().item() == pytest.approx(0.5, abs=0.01)
    assert torch.equal(t, sample_time(10000, sde, 1e-5, torch.Generator().manual_seed(0)))
