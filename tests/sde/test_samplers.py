"""Samplers recover a known distribution when given its exact score (Gaussian toys, analytic under every SDE)."""

from __future__ import annotations

import math

import pytest
import torch

from graphdiff.errors import ConfigError
from graphdiff.sde.samplers import (
    SamplerSettings,
    gaussian_noise_fn,
    number_of_evaluations,
    pc_sample,
    s4_sample,
    sample_system,
)
from graphdiff.sde.sdes import SDE, VESDE, VPSDE, subVPSDE

SDES = {
    "VP": lambda n: VPSDE(0.1, 20.0, N=n),
    "VE": lambda n: VESDE(0.01, 50.0, N=n),
    "subVP": lambda n: subVPSDE(0.1, 20.0, N=n),
}
SAMPLERS = {
    "euler": SamplerSettings("Euler", "None"),
    "reverse+langevin": SamplerSettings("Reverse", "Langevin", snr=0.16, scale_eps=1.0),
    "euler+langevin": SamplerSettings("Euler", "Langevin", snr=0.16, scale_eps=1.0, n_steps=2),
    "probability_flow": SamplerSettings("Euler", "None", probability_flow=True),
    "S4": SamplerSettings("S4", "None", snr=0.16, scale_eps=1.0),
}
NUM_SAMPLES, NUM_STEPS = 2000, 250


# Batched LAPACK and small matmuls are much slower with 2 threads on a loaded 2-core machine.
pytestmark = pytest.mark.usefixtures("one_thread")


def mixture_score(sde: SDE, weights, means, stds):
    """Exact score of ``p_t`` for ``p_0 = sum_k w_k N(mu_k, s_k^2)`` (1-D).

    ``p_t = sum_k w_k N(m(t) mu_k, m(t)^2 s_k^2 + std(t)^2)`` for every linear SDE.
    """
    w, mu, s = (torch.tensor(v, dtype=torch.float64) for v in (weights, means, stds))

    def score(states, t):
        (x,) = states  # [B, 1]
        m, sd = sde.mean_coeff(t)[:, None], sde.marginal_std(t)[:, None]
        var = m**2 * s**2 + sd**2
        centre = m * mu
        log_p = torch.log(w) - 0.5 * torch.log(2 * math.pi * var) - (x - centre) ** 2 / (2 * var)
        resp = torch.softmax(log_p, dim=-1)
        return [(resp * (centre - x) / var).sum(-1, keepdim=True)]

    return score


def final_marginal(sde: SDE, mu: float, s: float, eps: float) -> tuple[float, float]:
    """Mean and std of ``p_eps`` for ``p_0 = N(mu, s^2)``: where the samplers stop (VE keeps ``sigma_min`` noise)."""
    t = torch.tensor([eps], dtype=torch.float64)
    m, sd = sde.mean_coeff(t).item(), sde.marginal_std(t).item()
    return m * mu, math.sqrt(m**2 * s**2 + sd**2)


def run(settings: SamplerSettings, sde: SDE, score, init, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return sample_system(settings, [sde], score, gaussian_noise_fn(g), [init])[0]


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
@pytest.mark.parametrize("sde_name", sorted(SDES))
def test_sampler_recovers_gaussian_from_prior(sde_name, sampler):
    sde = SDES[sde_name](NUM_STEPS)
    mu, s = 1.0, 0.5
    init = sde.prior_sampling((NUM_SAMPLES, 1), generator=torch.Generator().manual_seed(42), dtype=torch.float64)
    x = run(SAMPLERS[sampler], sde, mixture_score(sde, [1.0], [mu], [s]), init)
    mean, std = final_marginal(sde, mu, s, SAMPLERS[sampler].eps)
    assert x.mean().item() == pytest.approx(mean, abs=0.05)
    assert x.std().item() == pytest.approx(std, rel=0.06)


@pytest.mark.parametrize("sampler", ["euler", "reverse+langevin", "S4"])
@pytest.mark.parametrize("sde_name", sorted(SDES))
def test_sampler_recovers_two_component_mixture(sde_name, sampler):
    sde = SDES[sde_name](NUM_STEPS)
    init = sde.prior_sampling((NUM_SAMPLES, 1), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    x = run(SAMPLERS[sampler], sde, mixture_score(sde, [0.3, 0.7], [-2.0, 2.0], [0.5, 0.5]), init)
    # mean 0.3 * -2 + 0.7 * 2 = 0.8; var = 0.25 + E[mu^2] - 0.8^2 = 0.25 + 4 - 0.64
    assert x.mean().item() == pytest.approx(0.8, abs=0.15)
    assert x.std().item() == pytest.approx(math.sqrt(3.61), rel=0.06)
    assert (x > 0).double().mean().item() == pytest.approx(0.7, abs=0.05)
    near_mode = ((x.abs() - 2).abs() < 1.5).double().mean().item()
    assert near_mode > 0.98  # samples sit on the modes, not between them


@pytest.mark.parametrize("sampler", ["euler+langevin", "reverse+langevin", "S4"])
@pytest.mark.parametrize("sde", [VPSDE(0.1, 1.0, N=NUM_STEPS), VESDE(0.2, 1.0, N=NUM_STEPS)], ids=["VP", "VE"])
def test_gdss_settings_recover_gaussian_from_exact_terminal_marginal(sde, sampler):
    """GDSS's beta_max / sigma_max = 1 do not reach N(0, 1) (see test_sdes), so start from the exact p_T."""
    mu, s = 1.0, 0.5
    T = torch.ones(NUM_SAMPLES, dtype=torch.float64)
    m, sd = sde.mean_coeff(T)[0].item(), sde.marginal_std(T)[0].item()
    g = torch.Generator().manual_seed(3)
    init = m * mu + math.sqrt(m**2 * s**2 + sd**2) * torch.randn(NUM_SAMPLES, 1, generator=g, dtype=torch.float64)
    settings = SamplerSettings(SAMPLERS[sampler].predictor, SAMPLERS[sampler].corrector, snr=0.16, scale_eps=1.0)
    x = run(settings, sde, mixture_score(sde, [1.0], [mu], [s]), init)
    mean, std = final_marginal(sde, mu, s, settings.eps)  # sigma_min = 0.2 widens VE's samples: std 0.539
    if isinstance(sde, VESDE) and settings.predictor == "Reverse":
        # SMLD's last step (sigma_{-1} = 0) with noise removal is Tweedie's denoiser x + sigma_min^2 score:
        # it maps N(mu, s^2 + sigma_min^2) to N(mu, s^4 / (s^2 + sigma_min^2)), std 0.464.
        std = s**2 / std
    assert x.mean().item() == pytest.approx(mean, abs=0.05)
    assert x.std().item() == pytest.approx(std, rel=0.06)


def test_wrong_score_scale_is_detected():
    """The toy check has teeth: halving the score leaves samples visibly too wide."""
    sde = VPSDE(0.1, 20.0, N=NUM_STEPS)
    exact = mixture_score(sde, [1.0], [1.0], [0.5])
    init = sde.prior_sampling((NUM_SAMPLES, 1), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = run(SAMPLERS["euler"], sde, lambda s, t: [0.5 * exact(s, t)[0]], init)
    assert abs(x.std().item() - 0.5) > 0.2


def test_scale_eps_below_one_under_disperses():
    """GDSS's scale_eps < 1 shrinks the Langevin noise: a lower-temperature sampler, narrower than p_0."""
    sde = VPSDE(0.1, 20.0, N=NUM_STEPS)
    score = mixture_score(sde, [1.0], [1.0], [0.5])
    init = sde.prior_sampling((NUM_SAMPLES, 1), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    stds = [run(SamplerSettings("Reverse", "Langevin", snr=0.16, scale_eps=scale), sde, score, init).std().item()
            for scale in (1.0, 0.5)]
    assert stds[0] == pytest.approx(0.5, rel=0.06)
    assert stds[1] < 0.9 * stds[0]


def test_samplers_are_reproducible_with_a_generator():
    sde = VESDE(0.01, 50.0, N=50)
    score = mixture_score(sde, [1.0], [0.0], [1.0])
    init = sde.prior_sampling((10, 1), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for settings in SAMPLERS.values():
        a, b, c = run(settings, sde, score, init, seed=5), run(settings, sde, score, init, seed=5), run(
            settings, sde, score, init, seed=6)
        assert torch.equal(a, b)
        assert settings.probability_flow or not torch.equal(a, c)


def test_number_of_steps_and_evaluations():
    calls = []

    def score(states, t):
        calls.append(t[0].item())
        return [torch.zeros_like(states[0]) + 1e-3]

    sde = VPSDE(0.1, 20.0, N=1000)
    init = [torch.zeros(4, 1)]
    for settings, steps in [
        (SamplerSettings("Reverse", "Langevin", n_steps=2, num_steps=30), 30),
        (SamplerSettings("Euler", "None", num_steps=20), 20),
        (SamplerSettings("S4", "None", num_steps=10), 10),
        (SamplerSettings("Euler", "None"), 1000),
    ]:
        calls.clear()
        sample_system(settings, [sde], score, gaussian_noise_fn(), init)
        assert len(calls) == number_of_evaluations(settings, steps)
        assert calls[0] == pytest.approx(1.0) and calls[-1] == pytest.approx(settings.eps)


def test_denoise_drops_only_the_last_noise():
    """VE, zero score: the path is a random walk; ``denoise`` returns it without the last step's noise, whose
    scale is ``G = sigma(eps) = sigma_min`` (SMLD step at index 0)."""
    sde = VESDE(0.01, 50.0, N=20)
    init = [torch.randn(2000, 1, generator=torch.Generator().manual_seed(0))]
    zero = lambda s, t: [torch.zeros_like(s[0])]  # noqa: E731
    noisy = pc_sample([sde], zero, gaussian_noise_fn(torch.Generator().manual_seed(1)), init, "reverse", "none",
                      denoise=False)[0]
    clean = pc_sample([sde], zero, gaussian_noise_fn(torch.Generator().manual_seed(1)), init, "reverse", "none",
                      denoise=True)[0]
    assert (noisy - clean).std().item() == pytest.approx(0.01, rel=0.1)
    assert (clean - init[0]).std().item() == pytest.approx(50.0, rel=0.1)  # sum of all other steps' noise
    s4 = s4_sample([sde], zero, gaussian_noise_fn(torch.Generator().manual_seed(1)), init, snr=0.0)
    assert s4[0].shape == init[0].shape


def test_sampler_settings_validation():
    with pytest.raises(ConfigError, match="unknown predictor"):
        SamplerSettings("Heun", "None")
    with pytest.raises(ConfigError, match="unknown corrector"):
        SamplerSettings("Euler", "Annealed")
    with pytest.raises(ConfigError, match="probability-flow"):
        SamplerSettings("S4", "None", probability_flow=True)
    with pytest.raises(ConfigError, match="num_steps"):
        SamplerSettings(num_steps=0)
    assert SamplerSettings("euler", "langevin").predictor == "euler"  # GDSS names are case-insensitive
