"""The CTMC rate matrices of DeFoG's sampler, for every position of a graph at once.

For one position with ``d`` classes, initial distribution ``p_0`` and clean class ``c``:

* conditional path: ``P_t[c, j] = p_t(j | x_1 = c) = t δ(j, c) + (1 - t) p_0(j)``  (:func:`conditional_probs`);
* its time derivative: ``D[c, j] = ∂_t p_t(j | c) = δ(j, c) - p_0(j)`` (independent of ``t``);
* the conditional rate of DeFoG (eq. 4), for ``j ≠ i``:
  ``R*_t(i, j | c) = ReLU(D[c, j] - D[c, i]) / (Z_t(c) P_t[c, i])``, with ``Z_t(c) = |{j: P_t[c, j] > 0}|``;
* the detailed-balance stochasticity (``rdb: general``): ``R^DB_t(i, j | c) = η P_t[c, j]``, which satisfies
  ``P_t[c, i] R^DB(i, j | c) = P_t[c, j] R^DB(j, i | c)`` and so leaves ``p_t(· | c)`` stationary;
* target guidance: ``R^TG_t(i, j | c) = ω δ(j, c) [i ≠ c] / (Z_t(c) P_t[c, i])``;
* stabilisation (as DeFoG): non-finite rates and rates above ``1e5`` become 0, as do rates out of a state or into
  a state that ``P_t[c, ·]`` gives probability 0.

The diagonal is ``R(i, i) = -Σ_{j ≠ i} R(i, j)``; with ``η = ω = 0`` the rates satisfy the Kolmogorov forward
equation ``∂_t P_t[c, ·] = P_t[c, ·] R_t(· | c)`` (tested by finite differences). The sampler's rate is the
expectation over the network's prediction ``p̂(x_1 | G_t)`` (:func:`expected_rates`):
``R_t(i, j) = Σ_c p̂(c) R_t(i, j | c)``, or, as DeFoG's code does, the rate of one ``c`` drawn from ``p̂``.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Rates above this are treated as numerical blow-ups and zeroed (DeFoG's ``stabilize_rate_matrix``).
MAX_RATE = 1e5


def conditional_probs(t: Tensor, p0: Tensor) -> Tensor:
    """``P_t [B, d, d]``: row ``c`` is ``p_t(· | x_1 = c) = t δ(·, c) + (1 - t) p_0`` for each ``t [B]``."""
    d = p0.numel()
    eye = torch.eye(d, dtype=p0.dtype, device=p0.device)
    t = t.to(p0.dtype).view(-1, 1, 1)
    return t * eye + (1 - t) * p0.view(1, 1, d)


def conditional_rates(t: Tensor, p0: Tensor, eta: float = 0.0, omega: float = 0.0) -> Tensor:
    """All conditional rates ``R_t(i, j | c)`` as ``[B, d_c, d_i, d_j]``, off-diagonal (``R(i, i | c) = 0``), after
    DeFoG's stabilisation.

    Args:
        t: ``[B]`` times in ``[0, 1]``.
        p0: ``[d]`` initial distribution.
        eta: weight of the detailed-balance term ``η R^DB``.
        omega: target-guidance weight ``ω``.
    """
    d = p0.numel()
    P = conditional_probs(t, p0)  # [B, c, j]
    eye = torch.eye(d, dtype=p0.dtype, device=p0.device)
    D = (eye - p0.view(1, d)).unsqueeze(0)  # [1, c, j]
    Z = (P > 0).sum(-1).to(p0.dtype)  # [B, c]
    P_i = P.unsqueeze(-1)  # [B, c, i, 1]: P_t[c, i]
    denom = Z.view(*Z.shape, 1, 1) * P_i  # [B, c, i, 1]
    numer = torch.relu(D.unsqueeze(2) - D.unsqueeze(-1))  # [1, c, i, j]: ReLU(D[c, j] - D[c, i])
    rates = numer / denom
    if eta:
        rates = rates + eta * P.unsqueeze(2)  # η P_t[c, j]
    if omega:
        to_clean = eye.view(1, d, 1, d) * (1 - eye).view(1, d, d, 1)  # δ(j, c) [i ≠ c]
        rates = rates + omega * to_clean / denom
    rates = torch.nan_to_num(rates, nan=0.0, posinf=0.0, neginf=0.0)
    rates = torch.where(rates > MAX_RATE, torch.zeros_like(rates), rates)
    rates = rates * (P_i > 0) * (P.unsqueeze(2) > 0)  # no rate out of / into an impossible state
    return rates * (1 - eye)  # off-diagonal only


def expected_rates(rates: Tensor, state: Tensor, weights: Tensor) -> Tensor:
    """``R(i, j) = Σ_c w(c) R(i, j | c)`` at the current class ``i`` of every position.

    Args:
        rates: ``[B, d_c, d_i, d_j]`` from :func:`conditional_rates`.
        state: ``[B, *positions]`` long current classes ``i``.
        weights: ``[B, *positions, d_c]``: the prediction ``p̂(x_1 = c | G_t)`` (the expectation), or a one-hot
            draw from it (DeFoG's estimator).

    Returns:
        ``[B, *positions, d_j]`` off-diagonal rates out of each position's class.
    """
    B, d = rates.shape[0], rates.shape[-1]
    positions = state.shape[1:]
    flat_state = state.reshape(B, -1)  # [B, N]
    flat_w = weights.reshape(B, -1, d).to(rates.dtype)  # [B, N, c]
    # rates[b, :, state[b, k], :] -> [B, N, c, j]
    per_state = rates.permute(0, 2, 1, 3)  # [B, i, c, j]
    index = flat_state.view(B, -1, 1, 1).expand(-1, -1, d, d)
    chosen = torch.gather(per_state, 1, index)  # [B, N, c, j]
    out = torch.einsum("bnc,bncj->bnj", flat_w, chosen)
    return out.reshape(B, *positions, d)


def step_probs(rates: Tensor, state: Tensor, dt: float | Tensor) -> Tensor:
    """One Euler step of the CTMC: ``P(x_{t+dt} = j) = R(i, j) dt`` for ``j ≠ i`` and the rest of the mass on ``i``.

    Args:
        rates: ``[..., d]`` off-diagonal rates out of the current class.
        state: ``[...]`` long current classes ``i``.
        dt: the step (a scalar or broadcastable to ``[..., 1]``).

    Returns:
        ``[..., d]`` probabilities (rows sum to 1 unless the rates overshoot, then the stay mass is 0).
    """
    if isinstance(dt, Tensor):
        dt = dt.to(rates.dtype)
    jump = rates * dt
    jump = jump.scatter(-1, state.unsqueeze(-1), 0.0)
    stay = (1.0 - jump.sum(-1, keepdim=True)).clamp(min=0.0)
    return jump.scatter(-1, state.unsqueeze(-1), stay)
