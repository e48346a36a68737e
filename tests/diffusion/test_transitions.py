"""Transition matrices: closed forms against explicit products, stochasticity, limits and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graphdiff.diffusion.process import DiscreteDiffusion
from graphdiff.diffusion.schedules import CosineSchedule, CustomSchedule, NoiseSchedule
from graphdiff.diffusion.transitions import (
    AbsorbingTransition,
    MarginalTransition,
    Transition,
    UniformTransition,
    make_transition,
)
from graphdiff.errors import ConfigError

F64 = torch.float64


def assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-6, atol: float = 1e-7) -> None:
    """``numpy.testing.assert_allclose`` on tensors (``torch.testing`` imports slowly on first use)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_allclose(
        actual.detach().cpu().double().numpy(), expected.detach().cpu().double().numpy(), rtol=rtol, atol=atol
    )


def transitions() -> dict[str, Transition]:
    return {
        "uniform": UniformTransition(dx=3, de=2),
        "marginal": MarginalTransition([5.0, 3.0, 0.0, 2.0], [0.7, 0.2, 0.1]),
        "absorbing": AbsorbingTransition(dx=3, de=4, x_state=2, e_state=0),
    }


def one_step(schedule: NoiseSchedule, m: torch.Tensor, k: int) -> torch.Tensor:
    """``Q_k`` written out entry by entry: stay with prob. ``1 - beta``, else draw from ``m``."""
    beta = schedule.betas[k].item()
    d = m.numel()
    Q = torch.empty(d, d, dtype=F64)
    for i in range(d):
        for j in range(d):
            Q[i, j] = (1 - beta) * (i == j) + beta * m[j]
    return Q


def explicit_product(schedule: NoiseSchedule, m: torch.Tensor, s: int, t: int) -> torch.Tensor:
    """``Q_{s+1} ... Q_t`` by matrix multiplication (identity when ``s == t``)."""
    Q = torch.eye(m.numel(), dtype=F64)
    for k in range(s + 1, t + 1):
        Q = Q @ one_step(schedule, m, k)
    return Q


@pytest.mark.parametrize("name", ["uniform", "marginal", "absorbing"])
def test_closed_forms_equal_explicit_products(name: str) -> None:
    transition = transitions()[name]
    schedule = CosineSchedule(30)
    diffusion = DiscreteDiffusion(schedule, transition)
    limit = transition.limit_dist()
    t = torch.tensor([0, 1, 2, 7, 29, 30])
    s = torch.tensor([0, 0, 1, 3, 0, 12])
    for kind in ("X", "E"):
        m = getattr(limit, kind)
        Q_t = getattr(diffusion.Q_t(t, F64), kind)
        Q_bar = getattr(diffusion.Q_bar(t, F64), kind)
        Q_ts = getattr(diffusion.Q_ts(t, s, F64), kind)
        for b, (tb, sb) in enumerate(zip(t.tolist(), s.tolist(), strict=True)):
            step = one_step(schedule, m, tb) if tb > 0 else torch.eye(m.numel(), dtype=F64)
            assert_close(Q_t[b], step)
            assert_close(Q_bar[b], explicit_product(schedule, m, 0, tb), rtol=1e-9, atol=1e-12)
            assert_close(Q_ts[b], explicit_product(schedule, m, sb, tb), rtol=1e-9, atol=1e-12)
            # Chapman-Kolmogorov: Q_bar_t = Q_bar_s Q_{t|s}.
            Q_bar_s = getattr(diffusion.Q_bar(torch.tensor([sb]), F64), kind)[0]
            assert_close(Q_bar_s @ Q_ts[b], Q_bar[b], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["uniform", "marginal", "absorbing"])
def test_rows_are_distributions(name: str) -> None:
    diffusion = DiscreteDiffusion(CosineSchedule(100), transitions()[name])
    t = torch.arange(0, 101, 7)
    s = t // 3
    for mats in (diffusion.Q_t(t), diffusion.Q_bar(t), diffusion.Q_ts(t, s)):
        for Q in (mats.X, mats.E):
            assert bool((Q >= 0).all())
            assert_close(Q.sum(-1), torch.ones(Q.shape[:2]), atol=1e-6)


@pytest.mark.parametrize("T", [500, 1000])
@pytest.mark.parametrize("name", ["uniform", "marginal", "absorbing"])
def test_q_bar_T_approaches_limit(name: str, T: int) -> None:
    transition = transitions()[name]
    diffusion = DiscreteDiffusion(CosineSchedule(T), transition)
    Q_bar_T = diffusion.Q_bar(torch.tensor([T]), F64)
    limit = transition.limit_dist()
    for Q, m in ((Q_bar_T.X[0], limit.X), (Q_bar_T.E[0], limit.E)):
        # Every row (whatever the clean class) is the limit distribution.
        assert (Q - m.unsqueeze(0)).abs().max().item() < 1e-8
        # The limit is stationary: m Q_t = m for every step.
        Q_t = diffusion.Q_t(torch.arange(1, T + 1), F64)
        Q_t = Q_t.X if Q.shape[0] == transition.dx else Q_t.E
        assert_close(m @ Q_t, m.expand(T, -1))


def test_limit_distributions() -> None:
    t = transitions()
    assert_close(t["uniform"].limit_dist().X, torch.full((3,), 1 / 3, dtype=F64))
    assert_close(t["marginal"].limit_dist().X, torch.tensor([0.5, 0.3, 0.0, 0.2], dtype=F64))
    assert_close(t["absorbing"].limit_dist().X, torch.tensor([0.0, 0.0, 1.0], dtype=F64))
    assert_close(t["absorbing"].limit_dist().E, torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=F64))
    assert (t["marginal"].dx, t["marginal"].de) == (4, 3)


def test_uniform_entries_by_hand() -> None:
    Q = UniformTransition(dx=4, de=2).Q_t(torch.tensor([0.2])).X[0]
    assert Q[1, 1].item() == pytest.approx(0.8 + 0.2 / 4)
    assert Q[1, 2].item() == pytest.approx(0.2 / 4)


def test_absorbing_state_is_absorbing() -> None:
    Q = AbsorbingTransition(dx=3, de=2, x_state=1).Q_bar(torch.tensor([0.3, 0.0])).X
    assert_close(Q[:, 1], torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]))
    assert Q[0, 0, 0].item() == pytest.approx(0.3) and Q[0, 0, 1].item() == pytest.approx(0.7)
    assert Q[0, 0, 2].item() == 0.0


def test_matrices_follow_dtype_and_device_of_keep() -> None:
    transition = MarginalTransition([1.0, 1.0], [3.0, 1.0])
    mats = transition.matrices(torch.tensor([0.5], dtype=F64))
    assert mats.X.dtype == F64 and mats.X.shape == (1, 2, 2) and mats.E.shape == (1, 2, 2)
    with pytest.raises(TypeError):
        transition.matrices(torch.tensor([1]))
    if torch.cuda.is_available():
        assert transition.matrices(torch.tensor([0.5], device="cuda")).X.is_cuda


def test_stride_with_custom_schedule_by_hand() -> None:
    # Two steps of uniform noise on 2 classes: keep 0.5 then 0.8 -> keep 0.4 overall.
    diffusion = DiscreteDiffusion(CustomSchedule([0.5, 0.2]), UniformTransition(dx=2, de=2))
    Q = diffusion.Q_bar(torch.tensor([2]), F64).X[0]
    assert_close(Q, torch.tensor([[0.7, 0.3], [0.3, 0.7]], dtype=F64))


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: MarginalTransition([0.5, -0.1], [1.0]), "non-negative"),
        (lambda: MarginalTransition([0.0, 0.0], [1.0]), "sums to 0"),
        (lambda: MarginalTransition([], [1.0]), "empty"),
        (lambda: AbsorbingTransition(dx=2, de=2, x_state=2), "x_state=2"),
        (lambda: UniformTransition(dx=0, de=2), "at least one"),
        (lambda: make_transition("marginal", 2, 2), "needs the node and edge marginals"),
        (lambda: make_transition("marginal", 3, 2, [1.0, 1.0], [1.0, 1.0]), "expected 3 / 2"),
        (lambda: make_transition("uniform", 3, 2, x_state=1), "unexpected options"),
        (lambda: make_transition("mask", 3, 2), "unknown transition"),
    ],
)
def test_bad_settings_raise_config_error(build, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build()


def test_factory_builds_each_kind() -> None:
    assert isinstance(make_transition("uniform", 3, 2), UniformTransition)
    assert isinstance(make_transition("marginal", 2, 2, [1, 3], [1, 1]), MarginalTransition)
    absorbing = make_transition("absorbing", 3, 2, x_state=2)
    assert isinstance(absorbing, AbsorbingTransition) and absorbing.x_state == 2
