"""Noise schedules of the discrete diffusion: how much of the signal survives each step.

Convention (used by every module of :mod:`graphdiff.diffusion`): time is an integer ``t`` in ``0..T``.
``t = 0`` is the clean graph, ``t = T`` the (almost) pure limit distribution. Step ``t`` (``1 <= t <= T``)
keeps a category with probability ``alpha_t = 1 - beta_t`` and otherwise resamples it from the transition's
limit distribution, so

* ``alpha_bar_t = prod_{k=1..t} alpha_k`` with ``alpha_bar_0 = 1`` (``beta_0 = 0``),
* ``alpha_bar_t / alpha_bar_s = prod_{k=s+1..t} alpha_k`` for ``s < t``.

Per-graph times are ``[B]`` long tensors; every method is vectorised over them and returns a tensor on the
same device.

DiGress' reference code keeps an extra tiny ``beta_0`` (about 9e-5 at ``T = 500``) and applies it to the
data as well; we drop it so that ``t = 0`` is exactly the data, as in the paper (``Q_bar_t = Q_1 ... Q_t``).
Every ``beta_t`` for ``t >= 1`` is the value DiGress computes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from graphdiff.errors import ConfigError

#: DiGress clamps betas to this value, so that ``alpha_bar`` never reaches exactly 0.
DIGRESS_MAX_BETA = 0.9999


class NoiseSchedule:
    """A fixed table of ``beta_t`` for ``t = 1..T`` and the derived ``alpha_bar_t``.

    Args:
        betas: ``[T]`` values ``beta_1 .. beta_T``, each in ``[0, 1)``.

    Raises:
        ConfigError: when ``betas`` is empty, not finite, or has a value outside ``[0, 1)``.
    """

    name = "custom"

    def __init__(self, betas: Tensor | Sequence[float]) -> None:
        betas = torch.as_tensor(betas, dtype=torch.float64).flatten()
        if betas.numel() == 0:
            raise ConfigError(f"noise schedule {self.name!r}: needs at least one step (got T=0)")
        if not torch.isfinite(betas).all():
            raise ConfigError(f"noise schedule {self.name!r}: betas must be finite numbers")
        bad = ((betas < 0) | (betas >= 1)).nonzero().flatten()
        if bad.numel() > 0:
            i = int(bad[0])
            raise ConfigError(
                f"noise schedule {self.name!r}: beta_{i + 1} = {float(betas[i]):g} is outside [0, 1) "
                f"({bad.numel()} bad value(s))"
            )
        self.T = int(betas.numel())
        # Index t of each table is time t; t = 0 is the data, so beta_0 = 0 and alpha_bar_0 = 1.
        self._betas = torch.cat([betas.new_zeros(1), betas])
        self._log_alpha_bar = torch.cumsum(torch.log1p(-self._betas), dim=0)
        self._cache: dict[torch.device, tuple[Tensor, Tensor]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(T={self.T})"

    @property
    def betas(self) -> Tensor:
        """``[T + 1]`` float64 table ``beta_0 .. beta_T`` (``beta_0 = 0``), on the CPU."""
        return self._betas.clone()

    @property
    def alpha_bars(self) -> Tensor:
        """``[T + 1]`` float64 table ``alpha_bar_0 .. alpha_bar_T`` (``alpha_bar_0 = 1``), on the CPU."""
        return self._log_alpha_bar.exp()

    def _tables(self, device: torch.device) -> tuple[Tensor, Tensor]:
        # One copy of the (tiny) tables per device, so lookups on CUDA never copy from the host.
        if device not in self._cache:
            self._cache[device] = (self._betas.to(device), self._log_alpha_bar.to(device))
        return self._cache[device]

    def _index(self, t: Tensor | int, name: str = "t") -> Tensor:
        t = torch.as_tensor(t)
        if t.dtype.is_floating_point or t.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer timesteps, got dtype {t.dtype}")
        t = t.long()
        # Range check only where it costs no device synchronisation.
        if t.device.type == "cpu" and t.numel() > 0 and (int(t.min()) < 0 or int(t.max()) > self.T):
            raise ValueError(f"{name} must lie in 0..{self.T}, got values in {int(t.min())}..{int(t.max())}")
        return t

    def beta(self, t: Tensor | int, dtype: torch.dtype = torch.float32) -> Tensor:
        """``beta_t``, the probability that step ``t`` resamples a category.

        Args:
            t: integer times in ``0..T``, any shape (usually ``[B]`` long).
            dtype: floating dtype of the result.

        Returns:
            Tensor of the shape and device of ``t``.
        """
        t = self._index(t)
        return self._tables(t.device)[0][t].to(dtype)

    def alpha(self, t: Tensor | int, dtype: torch.dtype = torch.float32) -> Tensor:
        """``alpha_t = 1 - beta_t`` (same shape and device as ``t``)."""
        t = self._index(t)
        return (1 - self._tables(t.device)[0][t]).to(dtype)

    def alpha_bar(self, t: Tensor | int, dtype: torch.dtype = torch.float32) -> Tensor:
        """``alpha_bar_t = prod_{k<=t} (1 - beta_k)``, the probability that nothing was resampled by time ``t``.

        Args:
            t: integer times in ``0..T``, any shape.
            dtype: floating dtype of the result.

        Returns:
            Tensor of the shape and device of ``t``.
        """
        t = self._index(t)
        return self._tables(t.device)[1][t].exp().to(dtype)

    def alpha_bar_ratio(self, s: Tensor | int, t: Tensor | int, dtype: torch.dtype = torch.float32) -> Tensor:
        """``alpha_bar_t / alpha_bar_s = prod_{k=s+1..t} alpha_k``, the keep probability of ``q(x_t | x_s)``.

        Computed from the float64 table of ``log alpha_bar`` so that long strides stay accurate.

        Args:
            s: earlier integer times, broadcastable with ``t``.
            t: later integer times (``s <= t``).
            dtype: floating dtype of the result.

        Returns:
            Tensor of the broadcast shape of ``s`` and ``t``.
        """
        s, t = self._index(s, "s"), self._index(t, "t")
        s, t = torch.broadcast_tensors(s.to(t.device), t)
        if t.device.type == "cpu" and bool((s > t).any()):
            raise ValueError("alpha_bar_ratio needs s <= t")
        log_ab = self._tables(t.device)[1]
        return (log_ab[t] - log_ab[s]).exp().to(dtype)


def digress_cosine_betas(timesteps: int, s: float = 0.008, max_beta: float = DIGRESS_MAX_BETA) -> Tensor:
    """The betas of DiGress' discrete cosine schedule (Nichol & Dhariwal's cosine, as DiGress evaluates it).

    DiGress evaluates ``f(u) = cos^2(pi/2 (u + s) / (1 + s))`` on ``T + 2`` evenly spaced points of
    ``u in [0, 1]``, normalises by ``f(0)``, takes ``beta = 1 - f(u_k) / f(u_{k-1})`` (``T + 1`` values, its
    ``beta_0 .. beta_T``) and clamps them to ``[0, max_beta]``. The last beta is 1 before clamping.

    Args:
        timesteps: ``T``.
        s: offset of the cosine (0.008 in both papers).
        max_beta: clamp value (DiGress: 0.9999).

    Returns:
        ``[T]`` float64 tensor ``beta_1 .. beta_T`` (DiGress' ``beta_0`` is dropped; see the module docstring).
    """
    steps = timesteps + 2
    u = torch.linspace(0, steps, steps, dtype=torch.float64) / steps
    f = torch.cos(0.5 * math.pi * (u + s) / (1 + s)) ** 2
    f = f / f[0]
    betas = 1 - f[1:] / f[:-1]
    return betas.clamp(0.0, max_beta)[1:]


class CosineSchedule(NoiseSchedule):
    """DiGress' discrete cosine schedule (the default of the paper).

    Args:
        timesteps: ``T`` (DiGress uses 500 for molecules, 1000 for generic graphs).
        s: cosine offset.
        max_beta: clamp on each beta.

    Raises:
        ConfigError: when ``timesteps < 1`` or ``max_beta`` is outside ``(0, 1)``.
    """

    name = "cosine"

    def __init__(self, timesteps: int, s: float = 0.008, max_beta: float = DIGRESS_MAX_BETA) -> None:
        _check_timesteps(timesteps, self.name)
        if not 0 < max_beta < 1:
            raise ConfigError(f"noise schedule 'cosine': max_beta must be in (0, 1), got {max_beta}")
        self.s = s
        super().__init__(digress_cosine_betas(timesteps, s, max_beta))


class LinearSchedule(NoiseSchedule):
    """Betas spaced linearly from ``beta_start`` to ``beta_end`` (DDPM).

    The defaults are DDPM's ``1e-4 .. 0.02`` rescaled by ``1000 / T`` (as in improved DDPM), so the total
    amount of noise does not depend on ``T``.

    Args:
        timesteps: ``T``.
        beta_start: ``beta_1``.
        beta_end: ``beta_T``.

    Raises:
        ConfigError: when ``timesteps < 1`` or a beta is outside ``[0, 1)``.
    """

    name = "linear"

    def __init__(self, timesteps: int, beta_start: float | None = None, beta_end: float | None = None) -> None:
        _check_timesteps(timesteps, self.name)
        scale = 1000.0 / timesteps
        beta_start = scale * 1e-4 if beta_start is None else beta_start
        beta_end = scale * 0.02 if beta_end is None else beta_end
        super().__init__(torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64))


class CustomSchedule(NoiseSchedule):
    """A schedule from a user list ``[beta_1, ..., beta_T]`` (``T = len(betas)``)."""

    name = "custom"

    def __init__(self, betas: Sequence[float] | Tensor) -> None:
        super().__init__(betas)


def _check_timesteps(timesteps: int, name: str) -> None:
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
        raise ConfigError(f"noise schedule {name!r}: timesteps must be a positive integer, got {timesteps!r}")


SCHEDULES = {"cosine": CosineSchedule, "linear": LinearSchedule, "custom": CustomSchedule}


def make_schedule(name: str, timesteps: int | None = None, **options: object) -> NoiseSchedule:
    """Build a schedule by name.

    Args:
        name: ``"cosine"``, ``"linear"`` or ``"custom"``.
        timesteps: ``T`` (not used by ``"custom"``, whose ``T`` is ``len(betas)``; if given it must match).
        **options: keyword arguments of the schedule class (``s``, ``beta_start``, ``betas``, ...).

    Raises:
        ConfigError: unknown name, or options that do not fit the schedule.
    """
    if name not in SCHEDULES:
        raise ConfigError(f"unknown noise schedule {name!r}; choose one of {sorted(SCHEDULES)}")
    try:
        if name == "custom":
            schedule = CustomSchedule(**options)  # type: ignore[arg-type]
            if timesteps is not None and timesteps != schedule.T:
                raise ConfigError(f"noise schedule 'custom': timesteps={timesteps} but {schedule.T} betas given")
            return schedule
        return SCHEDULES[name](timesteps, **options)  # type: ignore[arg-type]
    except TypeError as err:
        raise ConfigError(f"noise schedule {name!r}: {err}") from None
