"""Noise schedules: DiGress' cosine values, cumulative products, strides, vectorisation and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from graphdiff.diffusion.schedules import (
    CosineSchedule,
    CustomSchedule,
    LinearSchedule,
    make_schedule,
)
from graphdiff.errors import ConfigError


def assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-6, atol: float = 1e-7) -> None:
    """``numpy.testing.assert_allclose`` on tensors (``torch.testing`` imports slowly on first use)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_allclose(
        actual.detach().cpu().double().numpy(), expected.detach().cpu().double().numpy(), rtol=rtol, atol=atol
    )


def cosine_f(u: float, s: float = 0.008) -> float:
    """Nichol & Dhariwal's ``f(u) = cos^2(pi/2 (u + s) / (1 + s))``."""
    return math.cos(0.5 * math.pi * (u + s) / (1 + s)) ** 2


@pytest.mark.parametrize("T", [1, 10, 500, 1000])
def test_cosine_alpha_bar_is_the_normalised_cosine_on_digress_grid(T: int) -> None:
    # DiGress evaluates f on T + 2 points u_k = k / (T + 1); its alpha_bar at index t is f(u_{t+1}) / f(u_0)
    # times (1 - beta_0); with beta_0 dropped ours is f(u_{t+1}) / f(u_1). The last beta is clamped to 0.9999.
    schedule = CosineSchedule(T)
    expected = np.array([cosine_f((t + 1) / (T + 1)) / cosine_f(1 / (T + 1)) for t in range(T)])
    expected = np.append(expected, expected[-1] * (1 - 0.9999))
    got = schedule.alpha_bars.numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-15)


def test_cosine_betas_are_digress_betas_without_beta0() -> None:
    T, s = 50, 0.008
    steps = T + 2
    # DiGress' recipe written with numpy, step by step.
    x = np.linspace(0, steps, steps)
    alphas_cumprod = np.cos(0.5 * np.pi * ((x / steps) + s) / (1 + s)) ** 2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = np.clip(1 - alphas_cumprod[1:] / alphas_cumprod[:-1], 0, 0.9999)
    schedule = CosineSchedule(T)
    np.testing.assert_allclose(schedule.beta(torch.arange(1, T + 1), dtype=torch.float64).numpy(), betas[1:])
    assert schedule.beta(0).item() == 0.0
    assert schedule.beta(T).item() == pytest.approx(0.9999)


@pytest.mark.parametrize("schedule", [CosineSchedule(40), LinearSchedule(40), CustomSchedule([0.1, 0.0, 0.5, 0.3])])
def test_alpha_bar_is_running_product_of_alphas(schedule) -> None:
    expected = [1.0]
    for t in range(1, schedule.T + 1):
        expected.append(expected[-1] * (1 - schedule.beta(t, dtype=torch.float64).item()))
    got = schedule.alpha_bar(torch.arange(schedule.T + 1), dtype=torch.float64)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    assert schedule.alpha_bar(0).item() == 1.0
    assert bool((got[1:] <= got[:-1]).all())


def test_alpha_bar_ratio_is_product_over_the_stride() -> None:
    schedule = CosineSchedule(100)
    g = torch.Generator().manual_seed(0)
    t = torch.randint(1, 101, (64,), generator=g)
    s = (torch.rand(64, generator=g) * t).long()  # 0 <= s < t
    got = schedule.alpha_bar_ratio(s, t, dtype=torch.float64)
    alphas = 1 - schedule.betas
    expected = torch.stack([alphas[si + 1 : ti + 1].prod() for si, ti in zip(s.tolist(), t.tolist(), strict=True)])
    assert_close(got, expected, rtol=1e-10, atol=0)
    assert_close(got, schedule.alpha_bar(t, dtype=torch.float64) / schedule.alpha_bar(s, dtype=torch.float64))
    assert schedule.alpha_bar_ratio(7, 7).item() == pytest.approx(1.0)


def test_lookups_are_vectorised_and_keep_shape_and_dtype() -> None:
    schedule = CosineSchedule(20)
    t = torch.tensor([[0], [5], [20]])
    assert schedule.beta(t).shape == (3, 1)
    assert schedule.alpha_bar(t).dtype == torch.float32
    assert schedule.alpha_bar(t, dtype=torch.float64).dtype == torch.float64
    assert schedule.alpha_bar(3).shape == ()
    assert schedule.alpha_bar_ratio(torch.tensor([0, 1]), torch.tensor(5)).shape == (2,)


@pytest.mark.parametrize("T", [500, 1000])
def test_cosine_reaches_the_limit(T: int) -> None:
    schedule = CosineSchedule(T)
    assert schedule.alpha_bar(T).item() < 1e-8
    assert bool((schedule.betas <= 0.9999).all()) and bool((schedule.betas >= 0).all())


def test_linear_schedule_defaults_are_rescaled_ddpm() -> None:
    schedule = LinearSchedule(500)
    betas = schedule.betas[1:]
    assert betas[0].item() == pytest.approx(2e-4)
    assert betas[-1].item() == pytest.approx(0.04)
    np.testing.assert_allclose(np.diff(betas.numpy()), (0.04 - 2e-4) / 499, rtol=1e-9)
    custom = LinearSchedule(10, beta_start=0.1, beta_end=0.2)
    assert custom.beta(10).item() == pytest.approx(0.2)


def test_custom_schedule_and_factory() -> None:
    schedule = make_schedule("custom", betas=[0.25, 0.5])
    assert schedule.T == 2
    assert schedule.alpha_bar(2).item() == pytest.approx(0.375)
    assert make_schedule("cosine", 30).T == 30
    assert isinstance(make_schedule("linear", 30, beta_end=0.1), LinearSchedule)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: CustomSchedule([]), "at least one step"),
        (lambda: CustomSchedule([0.1, 1.0]), "beta_2 = 1"),
        (lambda: CustomSchedule([-0.1]), "outside"),
        (lambda: CustomSchedule([float("nan")]), "finite"),
        (lambda: CosineSchedule(0), "positive integer"),
        (lambda: LinearSchedule(10, beta_end=1.5), "outside"),
        (lambda: make_schedule("quadratic", 10), "unknown noise schedule"),
        (lambda: make_schedule("cosine", 10, beta_end=0.1), "unexpected keyword"),
        (lambda: make_schedule("custom", 3, betas=[0.1]), "1 betas"),
    ],
)
def test_bad_settings_raise_config_error(build, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        build()
    assert "\n" not in str(info.value)


def test_bad_times_are_rejected() -> None:
    schedule = CosineSchedule(10)
    with pytest.raises(ValueError, match="0..10"):
        schedule.alpha_bar(torch.tensor([11]))
    with pytest.raises(TypeError, match="integer"):
        schedule.beta(torch.tensor([0.5]))
    with pytest.raises(ValueError, match="s <= t"):
        schedule.alpha_bar_ratio(5, 3)
