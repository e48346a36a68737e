"""Forward SDEs of score-based generative modelling (Song et al., 2021), in the score_sde vocabulary.

Every SDE here is linear with a Gaussian transition kernel,

    dx = f(t) x dt + g(t) dw,    x_t | x_0 ~ N(m(t) x_0, std(t)^2 I),

so :meth:`SDE.marginal_prob` is exact and the reverse-time process (Anderson, 1982)

    dx = [f(t) x - g(t)^2 * score(x, t)] dt + g(t) dw_bar

only needs the score ``grad_x log p_t(x)``. Time runs over ``[0, T]`` with ``T = 1``; ``t`` is always a
``[B]`` tensor (one time per batch element) and is broadcast over the remaining axes of ``x``, whatever
its shape (``[B, d]`` toys, ``[B, n, F]`` node features, ``[B, n, n]`` adjacencies).

The three SDEs match GDSS (Jo et al., 2022) and score_sde: :class:`VPSDE`, :class:`VESDE`, :class:`subVPSDE`.
The graph-shaped noise GDSS diffuses with lives here too: :func:`node_noise` (masked i.i.d.) and
:func:`symmetric_noise` (mirrored upper triangle, empty diagonal, masked).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from graphdiff.errors import ConfigError
from graphdiff.types import mask_adj, mask_nodes

ScoreFn = Callable[[Tensor, Tensor], Tensor]


def broadcast_time(v: Tensor, like: Tensor) -> Tensor:
    """View a per-sample ``[B]`` quantity as ``[B, 1, ..., 1]`` so it broadcasts against ``like``."""
    return v.reshape(v.shape[0], *([1] * (like.dim() - 1)))


def node_noise(like: Tensor, flags: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Standard normal noise shaped like ``like [B, n, F]``, zero on padded nodes."""
    z = torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    return mask_nodes(z, flags)


def symmetric_noise(like: Tensor, flags: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Symmetric standard normal noise shaped like ``like [B, n, n]``.

    The strict upper triangle is drawn i.i.d. and mirrored, the diagonal is zero, and padded rows/columns
    are zero, so each undirected pair of real nodes gets exactly one ``N(0, 1)`` variable.
    """
    z = torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype).triu(1)
    return mask_adj(z + z.transpose(-1, -2), flags)


class SDE(abc.ABC):
    """A linear forward SDE ``dx = f(t) x dt + g(t) dw`` on ``[0, T]``.

    Args:
        N: number of discretisation steps used by :meth:`discretize` and by the samplers.
    """

    def __init__(self, N: int) -> None:
        if int(N) < 1:
            raise ConfigError(f"SDE: number of steps N must be >= 1, got {N}")
        self.N = int(N)

    @property
    def T(self) -> float:
        """End time of the forward process."""
        return 1.0

    # ---- what each SDE defines -------------------------------------------------------------------------
    @abc.abstractmethod
    def drift_coeff(self, t: Tensor) -> Tensor:
        """``[B]`` linear drift coefficient ``f(t)`` (the drift is ``f(t) * x``)."""

    @abc.abstractmethod
    def diffusion_coeff(self, t: Tensor) -> Tensor:
        """``[B]`` diffusion coefficient ``g(t)``."""

    @abc.abstractmethod
    def mean_coeff(self, t: Tensor) -> Tensor:
        """``[B]`` ``m(t)`` with ``E[x_t | x_0] = m(t) x_0``."""

    @abc.abstractmethod
    def marginal_std(self, t: Tensor) -> Tensor:
        """``[B]`` standard deviation of ``x_t | x_0``."""

    def marginal_var(self, t: Tensor) -> Tensor:
        """``[B]`` variance of ``x_t | x_0``; defined without square roots so it extends to ``t < 0``."""
        return self.marginal_std(t) ** 2

    @property
    @abc.abstractmethod
    def prior_std(self) -> float:
        """Standard deviation of the Gaussian prior ``p_T = N(0, prior_std^2 I)``."""

    @abc.abstractmethod
    def with_steps(self, N: int) -> SDE:
        """The same SDE discretised with ``N`` steps."""

    # ---- score_sde interface ---------------------------------------------------------------------------
    def sde(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Drift and diffusion of the forward SDE.

        Args:
            x: ``[B, ...]`` state.
            t: ``[B]`` times in ``[0, T]``.

        Returns:
            ``(drift [B, ...], diffusion [B])``.
        """
        return broadcast_time(self.drift_coeff(t), x) * x, self.diffusion_coeff(t)

    def marginal_prob(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Mean ``[B, ...]`` and std ``[B]`` of the perturbation kernel ``p_t(x_t | x_0 = x)``."""
        return broadcast_time(self.mean_coeff(t), x) * x, self.marginal_std(t)

    def prior_sampling(
        self,
        shape: Sequence[int],
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """One sample of the prior ``N(0, prior_std^2 I)`` of the given shape."""
        z = torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
        return z * self.prior_std

    def prior_logp(self, z: Tensor) -> Tensor:
        """``[B]`` log-density of the prior, summed over every non-batch axis of ``z``."""
        dims = tuple(range(1, z.dim()))
        d = z[0].numel()
        var = self.prior_std**2
        return -0.5 * d * math.log(2 * math.pi * var) - (z**2).sum(dims) / (2 * var)

    def discretize(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """One forward step ``x_{i+1} = x_i + f_i + G_i z_i`` of size ``1/N`` (Euler–Maruyama by default).

        Returns:
            ``(f [B, ...], G [B])``.
        """
        dt = 1.0 / self.N
        drift, diffusion = self.sde(x, t)
        return drift * dt, diffusion * math.sqrt(dt)

    def reverse(self, score_fn: ScoreFn, probability_flow: bool = False) -> ReverseSDE:
        """The reverse-time SDE (or, with ``probability_flow``, the probability-flow ODE) of this SDE.

        Args:
            score_fn: ``(x [B, ...], t [B]) -> score [B, ...]``.
            probability_flow: drop the noise and halve the score term (deterministic ODE).
        """
        return ReverseSDE(self, score_fn, probability_flow)

    # ---- helpers used by the samplers ------------------------------------------------------------------
    def timestep_index(self, t: Tensor) -> Tensor:
        """``[B]`` long index ``floor(t (N - 1) / T)`` of ``t`` in the discrete schedule (as score_sde)."""
        return (t * (self.N - 1) / self.T).long().clamp(0, self.N - 1)

    def langevin_alpha(self, t: Tensor) -> Tensor:
        """``[B]`` factor of the Langevin step size (``alpha_i`` of the discrete chain; 1 for VE)."""
        return torch.ones_like(t)

    def transition(self, x: Tensor, t: Tensor, dt: Tensor) -> tuple[Tensor, Tensor]:
        """Backward half of GDSS's S4 splitting step, from ``t`` to ``s = t + dt`` (``dt < 0``).

        Writes the forward kernel ``x_t | x_s ~ N(a x_s, v I)`` with ``a = m(t)/m(s)`` and
        ``v = std(t)^2 - a^2 std(s)^2``, and returns ``(x / a, sqrt(v))``: the linear drift is undone
        exactly and the kernel's noise level is to be added (GDSS ``sde.transition``).

        Args:
            x: ``[B, ...]``.
            t: ``[B]`` current time.
            dt: ``[B]`` negative time step.

        Returns:
            ``(mean [B, ...], std [B])``.
        """
        s = t + dt
        a = self.mean_coeff(t) / self.mean_coeff(s)
        var = self.marginal_var(t) - a**2 * self.marginal_var(s)
        return x / broadcast_time(a, x), var.clamp(min=0).sqrt()

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self._params().items())
        return f"{type(self).__name__}({params}, N={self.N})"

    def _params(self) -> dict[str, float]:
        return {}


class ReverseSDE:
    """Reverse-time SDE ``dx = [f - g^2 s] dt + g dw_bar`` or probability-flow ODE ``dx = [f - g^2 s / 2] dt``.

    Built by :meth:`SDE.reverse`. The ``*_given_score`` variants take a score that was already computed
    (the graph samplers evaluate the X and A networks once per step for both components).
    """

    def __init__(self, forward: SDE, score_fn: ScoreFn | None, probability_flow: bool = False) -> None:
        self.forward = forward
        self.score_fn = score_fn
        self.probability_flow = probability_flow

    @property
    def N(self) -> int:
        return self.forward.N

    @property
    def T(self) -> float:
        return self.forward.T

    def _weight(self) -> float:
        return 0.5 if self.probability_flow else 1.0

    def sde_given_score(self, x: Tensor, t: Tensor, score: Tensor) -> tuple[Tensor, Tensor]:
        """Reverse drift ``[B, ...]`` and diffusion ``[B]`` for a known score."""
        drift, diffusion = self.forward.sde(x, t)
        drift = drift - broadcast_time(diffusion**2, x) * score * self._weight()
        return drift, torch.zeros_like(diffusion) if self.probability_flow else diffusion

    def discretize_given_score(self, x: Tensor, t: Tensor, score: Tensor) -> tuple[Tensor, Tensor]:
        """Reverse discretisation ``(rev_f, rev_G)``: one backward step is ``x - rev_f + rev_G z``."""
        f, G = self.forward.discretize(x, t)
        rev_f = f - broadcast_time(G**2, x) * score * self._weight()
        return rev_f, torch.zeros_like(G) if self.probability_flow else G

    def sde(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Reverse drift and diffusion at ``(x, t)``."""
        return self.sde_given_score(x, t, self._score(x, t))

    def discretize(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Reverse discretisation at ``(x, t)``."""
        return self.discretize_given_score(x, t, self._score(x, t))

    def _score(self, x: Tensor, t: Tensor) -> Tensor:
        if self.score_fn is None:
            raise ValueError("this ReverseSDE has no score_fn; use the *_given_score methods")
        return self.score_fn(x, t)


class VPSDE(SDE):
    """Variance-preserving SDE ``dx = -beta(t) x / 2 dt + sqrt(beta(t)) dw``, ``beta`` linear in ``t``.

    ``m(t) = exp(-B(t)/2)``, ``std(t)^2 = 1 - exp(-B(t))`` with ``B(t) = beta_min t + (beta_max - beta_min) t^2 / 2``.
    Its discretisation is DDPM's (``beta_i = linspace(beta_min/N, beta_max/N, N)``).

    Args:
        beta_min: ``beta(0)``.
        beta_max: ``beta(1)``.
        N: number of discretisation steps.
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, N: int = 1000) -> None:
        super().__init__(N)
        if not 0 <= beta_min <= beta_max:
            raise ConfigError(f"VPSDE: need 0 <= beta_min <= beta_max, got {beta_min}, {beta_max}")
        self.beta_0 = float(beta_min)
        self.beta_1 = float(beta_max)
        self.discrete_betas = torch.linspace(self.beta_0 / self.N, self.beta_1 / self.N, self.N)
        self.alphas = 1.0 - self.discrete_betas

    def _params(self) -> dict[str, float]:
        return {"beta_min": self.beta_0, "beta_max": self.beta_1}

    def with_steps(self, N: int) -> VPSDE:
        return type(self)(self.beta_0, self.beta_1, N)

    def beta(self, t: Tensor) -> Tensor:
        """``[B]`` noise rate ``beta(t)``."""
        return self.beta_0 + t * (self.beta_1 - self.beta_0)

    def integrated_beta(self, t: Tensor) -> Tensor:
        """``[B]`` ``B(t) = int_0^t beta(s) ds``."""
        return self.beta_0 * t + 0.5 * (self.beta_1 - self.beta_0) * t**2

    def drift_coeff(self, t: Tensor) -> Tensor:
        return -0.5 * self.beta(t)

    def diffusion_coeff(self, t: Tensor) -> Tensor:
        return self.beta(t).sqrt()

    def mean_coeff(self, t: Tensor) -> Tensor:
        return torch.exp(-0.5 * self.integrated_beta(t))

    def marginal_std(self, t: Tensor) -> Tensor:
        return self.marginal_var(t).sqrt()

    def marginal_var(self, t: Tensor) -> Tensor:
        return -torch.expm1(-self.integrated_beta(t))

    @property
    def prior_std(self) -> float:
        return 1.0

    def discretize(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """DDPM step: ``f = (sqrt(alpha_i) - 1) x``, ``G = sqrt(beta_i)``."""
        i = self.timestep_index(t)
        beta = self.discrete_betas.to(x.device, x.dtype)[i]
        alpha = self.alphas.to(x.device, x.dtype)[i]
        return broadcast_time(alpha.sqrt() - 1.0, x) * x, beta.sqrt()

    def langevin_alpha(self, t: Tensor) -> Tensor:
        return self.alphas.to(t.device, t.dtype)[self.timestep_index(t)]


class subVPSDE(VPSDE):  # noqa: N801 - the name used by score_sde and GDSS
    """Sub-VP SDE: the VP drift with diffusion ``g(t)^2 = beta(t) (1 - exp(-2 B(t)))``.

    ``m(t) = exp(-B(t)/2)`` and ``std(t) = 1 - exp(-B(t))`` (always below the VP std). Discretised by
    Euler–Maruyama (as score_sde), not DDPM.
    """

    def diffusion_coeff(self, t: Tensor) -> Tensor:
        return (self.beta(t) * -torch.expm1(-2.0 * self.integrated_beta(t))).sqrt()

    def marginal_std(self, t: Tensor) -> Tensor:
        return -torch.expm1(-self.integrated_beta(t))

    def marginal_var(self, t: Tensor) -> Tensor:
        return self.marginal_std(t) ** 2

    def discretize(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        return SDE.discretize(self, x, t)


class VESDE(SDE):
    """Variance-exploding SDE ``dx = sqrt(d sigma(t)^2 / dt) dw`` with ``sigma(t) = sigma_min (sigma_max/sigma_min)^t``.

    ``m(t) = 1`` and ``std(t) = sigma(t)`` (score_sde's convention: ``x_0`` is taken to carry ``sigma_min``
    noise already). The prior is ``N(0, sigma_max^2 I)``; its discretisation is SMLD's.

    GDSS reads its VE settings from the ``beta_min``/``beta_max`` keys of a config (``sigma_min = beta_min``).

    Args:
        sigma_min: ``sigma(0)``.
        sigma_max: ``sigma(1)``.
        N: number of discretisation steps.
    """

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, N: int = 1000) -> None:
        super().__init__(N)
        if not 0 < sigma_min < sigma_max:
            raise ConfigError(f"VESDE: need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        self.discrete_sigmas = torch.exp(torch.linspace(math.log(self.sigma_min), math.log(self.sigma_max), self.N))

    def _params(self) -> dict[str, float]:
        return {"sigma_min": self.sigma_min, "sigma_max": self.sigma_max}

    def with_steps(self, N: int) -> VESDE:
        return type(self)(self.sigma_min, self.sigma_max, N)

    def sigma(self, t: Tensor) -> Tensor:
        """``[B]`` noise level ``sigma(t)``."""
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def drift_coeff(self, t: Tensor) -> Tensor:
        return torch.zeros_like(t)

    def diffusion_coeff(self, t: Tensor) -> Tensor:
        return self.sigma(t) * math.sqrt(2.0 * math.log(self.sigma_max / self.sigma_min))

    def mean_coeff(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def marginal_std(self, t: Tensor) -> Tensor:
        return self.sigma(t)

    @property
    def prior_std(self) -> float:
        return self.sigma_max

    def discretize(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """SMLD step: ``f = 0``, ``G = sqrt(sigma_i^2 - sigma_{i-1}^2)`` (``sigma_{-1} = 0``)."""
        i = self.timestep_index(t)
        sigmas = self.discrete_sigmas.to(x.device, x.dtype)
        sigma = sigmas[i]
        previous = torch.where(i == 0, torch.zeros_like(sigma), sigmas[(i - 1).clamp(min=0)])
        return torch.zeros_like(x), (sigma**2 - previous**2).sqrt()


SDE_TYPES: dict[str, type[SDE]] = {"VP": VPSDE, "VE": VESDE, "subVP": subVPSDE}


def build_sde(type: str, beta_min: float, beta_max: float, num_scales: int = 1000) -> SDE:  # noqa: A002
    """An SDE from GDSS's config keys (``sde.x`` / ``sde.adj``: ``type``, ``beta_min``, ``beta_max``, ``num_scales``).

    For ``type="VE"``, ``beta_min``/``beta_max`` are ``sigma_min``/``sigma_max`` (as GDSS's ``load_sde``).
    """
    if type not in SDE_TYPES:
        raise ConfigError(f"unknown SDE type {type!r}; expected one of {sorted(SDE_TYPES)}")
    return SDE_TYPES[type](beta_min, beta_max, num_scales)
