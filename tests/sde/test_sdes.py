"""Forward SDEs: marginals against simulation, priors, discretisations, reverse SDE, graph noise."""

from __future__ import annotations

import math

import pytest
import torch

from graphdiff.errors import ConfigError
from graphdiff.sde.sdes import VESDE, VPSDE, build_sde, node_noise, subVPSDE, symmetric_noise
from graphdiff.types import mask_adj

SDES = {
    "VP": lambda: VPSDE(0.1, 20.0),
    "VE": lambda: VESDE(0.01, 50.0),
    "subVP": lambda: subVPSDE(0.1, 20.0),
    # GDSS's settings (community_small X/A, enzymes A)
    "VP-gdss": lambda: VPSDE(0.1, 1.0),
    "VE-gdss": lambda: VESDE(0.2, 1.0),
}


# Batched LAPACK and small matmuls are much slower with 2 threads on a loaded 2-core machine.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", sorted(SDES))
def test_marginal_prob_matches_simulated_forward_sde(name):
    sde = SDES[name]()
    g = torch.Generator().manual_seed(0)
    n, steps, x0 = 10000, 1000, 2.0
    t_check = {0.1, 0.3, 0.6, 1.0}
    ones = torch.ones(n, dtype=torch.float64)
    # x(0) ~ p_0(. | x0): a point mass, except VE whose std(0) = sigma_min by convention.
    mean0, std0 = sde.marginal_prob(torch.full((n, 1), x0, dtype=torch.float64), 0 * ones)
    x = mean0 + std0[:, None] * torch.randn(n, 1, generator=g, dtype=torch.float64)
    dt = 1.0 / steps
    for i in range(steps):
        t_mid = (i + 0.5) * dt * ones  # midpoint times keep the Euler-Maruyama bias well below the MC error
        drift, diffusion = sde.sde(x, t_mid)
        x = x + drift * dt + diffusion[:, None] * math.sqrt(dt) * torch.randn(n, 1, generator=g, dtype=torch.float64)
        t = round((i + 1) * dt, 6)
        if t in t_check:
            mean, std = sde.marginal_prob(torch.full((1, 1), x0, dtype=torch.float64), torch.tensor([t]).double())
            mean, std = mean.item(), std.item()
            assert abs(x.mean().item() - mean) < 5 * std / math.sqrt(n) + 0.01 * abs(mean), (name, t)
            assert x.std().item() == pytest.approx(std, rel=0.03), (name, t)


@pytest.mark.parametrize("name", ["VP", "VE", "subVP"])
def test_prior_matches_terminal_marginal(name):
    sde = SDES[name]()
    T = torch.tensor([sde.T], dtype=torch.float64)
    for x0 in (-3.0, 0.0, 3.0):
        mean, std = sde.marginal_prob(torch.tensor([[x0]], dtype=torch.float64), T)
        # KL(N(mean, std^2) || N(0, prior_std^2)) per dimension
        p = sde.prior_std
        kl = math.log(p / std.item()) + (std.item() ** 2 + mean.item() ** 2) / (2 * p**2) - 0.5
        assert kl < 5e-3, (name, x0, kl)
    z = sde.prior_sampling((50000, 2), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert z.mean().item() == pytest.approx(0.0, abs=4 * sde.prior_std / math.sqrt(z.numel()))
    assert z.std().item() == pytest.approx(sde.prior_std, rel=0.01)
    expected = torch.distributions.Normal(0.0, sde.prior_std).log_prob(z[:5]).sum(-1)
    assert torch.allclose(sde.prior_logp(z[:5]), expected)


def test_gdss_vp_settings_do_not_reach_the_prior():
    # GDSS's beta_max = 1 leaves m(1) = exp(-0.275): the prior N(0, 1) is only an approximation of p_1.
    mean, std = VPSDE(0.1, 1.0).marginal_prob(torch.ones(1, 1), torch.ones(1))
    assert mean.item() == pytest.approx(math.exp(-0.25 * 0.9 - 0.05))
    assert std.item() == pytest.approx(math.sqrt(1 - math.exp(-0.55)))


@pytest.mark.parametrize("name", ["VP", "VE", "subVP"])
def test_discretization_composes_to_the_marginal(name):
    """N steps of ``discretize`` from t=0 give (approximately) the marginal at t=1: mean and variance recursion."""
    sde = SDES[name]().with_steps(1000)
    x0 = torch.ones(1, 1, dtype=torch.float64)
    coeff, var = 1.0, sde.marginal_std(torch.zeros(1, dtype=torch.float64)).item() ** 2
    for i in range(sde.N):
        t = torch.tensor([i / (sde.N - 1)], dtype=torch.float64)
        f, G = sde.discretize(x0, t)  # x_{i+1} = x_i + f(x_i) + G z, f linear in x
        a = 1.0 + f.item()
        coeff, var = a * coeff, a * a * var + G.item() ** 2
    mean1, std1 = sde.marginal_prob(x0, torch.ones(1, dtype=torch.float64))
    assert coeff == pytest.approx(mean1.item(), rel=0.02, abs=1e-3)
    assert math.sqrt(var) == pytest.approx(std1.item(), rel=0.02)


def test_vp_discretization_is_ddpm():
    sde = VPSDE(0.1, 20.0, N=100)
    x = torch.full((1, 3), 2.0)
    f, G = sde.discretize(x, torch.tensor([1.0]))
    beta_last = 20.0 / 100
    assert torch.allclose(f, (math.sqrt(1 - beta_last) - 1) * x)
    assert G.item() == pytest.approx(math.sqrt(beta_last))


def test_ve_discretization_is_smld():
    sde = VESDE(0.01, 50.0, N=5)
    sigmas = torch.exp(torch.linspace(math.log(0.01), math.log(50.0), 5))
    _, G0 = sde.discretize(torch.zeros(1, 1), torch.tensor([0.0]))
    _, G3 = sde.discretize(torch.zeros(1, 1), torch.tensor([0.75]))
    assert G0.item() == pytest.approx(sigmas[0].item())
    assert G3.item() == pytest.approx(math.sqrt(sigmas[3] ** 2 - sigmas[2] ** 2))


def test_reverse_sde_and_probability_flow():
    sde = VPSDE(0.1, 20.0)
    x = torch.tensor([[1.0, -2.0]])
    t = torch.tensor([0.5])
    score = torch.tensor([[0.3, 0.7]])
    beta = 0.1 + 0.5 * 19.9
    drift, diffusion = sde.reverse(lambda x_, t_: score).sde(x, t)
    assert torch.allclose(drift, -0.5 * beta * x - beta * score)
    assert diffusion.item() == pytest.approx(math.sqrt(beta))
    drift, diffusion = sde.reverse(lambda x_, t_: score, probability_flow=True).sde(x, t)
    assert torch.allclose(drift, -0.5 * beta * x - 0.5 * beta * score)
    assert diffusion.item() == 0
    rev_f, rev_G = sde.reverse(lambda x_, t_: score).discretize(x, t)
    f, G = sde.discretize(x, t)
    assert torch.allclose(rev_f, f - G**2 * score)
    assert torch.allclose(rev_G, G)


def test_transition_matches_gdss_closed_forms():
    """S4's half step: VP ``exp(-l) x, sqrt(1 - exp(2 l))`` with ``l = dt (2 b0 + (2t + dt)(b1 - b0)) / 4``; VE
    ``x, sqrt(sigma(t)^2 - sigma(t+dt)^2)`` (Jo et al., 2022, S4 solver)."""
    t = torch.tensor([0.7, 0.2, 1e-4], dtype=torch.float64)
    dt = torch.full_like(t, -0.0005)
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    b0, b1 = 0.1, 1.0
    log_coeff = 0.25 * dt * (2 * b0 + (2 * t + dt) * (b1 - b0))
    mean, std = VPSDE(b0, b1).transition(x, t, dt)
    assert torch.allclose(mean, torch.exp(-log_coeff)[:, None] * x)
    assert torch.allclose(std, torch.sqrt(1 - torch.exp(2 * log_coeff)))
    s0, s1 = 0.2, 1.0
    mean, std = VESDE(s0, s1).transition(x, t, dt)
    sigma = lambda u: s0 * (s1 / s0) ** u  # noqa: E731
    assert torch.allclose(mean, x)
    assert torch.allclose(std, torch.sqrt(sigma(t) ** 2 - sigma(t + dt) ** 2))


def test_subvp_transition_composes_with_the_marginal():
    """Forward kernel from s to t composed with p_s(.|x0) must give p_t(.|x0): m_t = a m_s, var_t = a^2 var_s + v."""
    sde = subVPSDE(0.1, 20.0)
    t = torch.tensor([0.3, 0.9], dtype=torch.float64)
    dt = torch.tensor([-0.1, -0.05], dtype=torch.float64)
    x = torch.ones(2, 1, dtype=torch.float64)
    inv_a, v_std = sde.transition(x, t, dt)
    a = 1 / inv_a[:, 0]
    s = t + dt
    assert torch.allclose(a * sde.mean_coeff(s), sde.mean_coeff(t))
    assert torch.allclose(a**2 * sde.marginal_std(s) ** 2 + v_std**2, sde.marginal_std(t) ** 2)


def test_symmetric_noise_structure_and_variance():
    flags = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]], dtype=torch.float64)
    z = symmetric_noise(torch.empty(2, 5, 5, dtype=torch.float64), flags, torch.Generator().manual_seed(0))
    assert torch.equal(z, z.transpose(1, 2))
    assert torch.all(torch.diagonal(z, dim1=1, dim2=2) == 0)
    assert torch.equal(z, mask_adj(z, flags))
    assert torch.all(z[0, :4, :4] + torch.eye(4) != 0)  # every real off-diagonal entry is drawn
    many = symmetric_noise(torch.empty(40000, 3, 3, dtype=torch.float64), torch.ones(40000, 3, dtype=torch.float64),
                           torch.Generator().manual_seed(1))
    pairs = torch.stack([many[:, 0, 1], many[:, 0, 2], many[:, 1, 2]])
    assert torch.allclose(pairs.std(-1), torch.ones(3, dtype=torch.float64), atol=0.02)
    corr = torch.corrcoef(pairs)
    assert torch.allclose(corr, torch.eye(3, dtype=torch.float64), atol=0.03)


def test_node_noise_is_masked():
    flags = torch.tensor([[True, True, False]])
    z = node_noise(torch.empty(1, 3, 4), flags, torch.Generator().manual_seed(0))
    assert torch.all(z[0, 2] == 0) and torch.all(z[0, :2] != 0)


def test_build_sde_from_gdss_keys():
    ve = build_sde("VE", 0.2, 1.0, 1000)
    assert isinstance(ve, VESDE) and (ve.sigma_min, ve.sigma_max, ve.N) == (0.2, 1.0, 1000)
    assert isinstance(build_sde("subVP", 0.1, 1.0), subVPSDE)
    with pytest.raises(ConfigError, match="unknown SDE type"):
        build_sde("VX", 0.1, 1.0)
    with pytest.raises(ConfigError, match="sigma_min < sigma_max"):
        VESDE(1.0, 0.5)
    with pytest.raises(ConfigError, match="N must be"):
        VPSDE(0.1, 1.0, N=0)
    assert VPSDE(0.1, 1.0).with_steps(50).N == 50
