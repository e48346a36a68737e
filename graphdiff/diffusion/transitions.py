"""Transition matrices of the discrete diffusion on node and edge categories.

Every transition of DiGress has the form ``Q = a I + (1 - a) 1 m^T``: keep the category with probability
``a``, otherwise draw a new one from a fixed distribution ``m`` (the *limit distribution*). Row ``i`` of ``Q``
is ``q(x_t = . | x_s = i)``, so a row vector of class probabilities ``p`` moves forward as ``p Q``.

Because ``(a I + (1 - a) 1 m^T)(b I + (1 - b) 1 m^T) = ab I + (1 - ab) 1 m^T`` (``m`` sums to 1), all the
matrices the process needs are this one form with a different keep probability ``a``:

* one step ``Q_t``: ``a = alpha_t = 1 - beta_t``;
* from the data ``Q_bar_t = Q_1 ... Q_t``: ``a = alpha_bar_t``;
* a stride ``Q_{t|s} = Q_{s+1} ... Q_t``: ``a = alpha_bar_t / alpha_bar_s``.

Transitions are independent of the schedule: they map keep probabilities (``[B]`` tensors) to ``[B, d, d]``
matrices; :class:`graphdiff.diffusion.process.DiscreteDiffusion` turns integer times into keep probabilities.

Three choices of ``m`` (DiGress section 4.1 and its code):

* :class:`UniformTransition`: ``m = 1/d`` (D3PM's uniform noise).
* :class:`MarginalTransition`: ``m`` = the dataset's class frequencies (DiGress' default; the prior is the
  closest product distribution to the data).
* :class:`AbsorbingTransition`: ``m = e_k``, all mass on one absorbing class ``k``. We absorb edges into
  class 0 ("no edge", so the prior is the empty graph) and nodes into class 0 by default, as DiGress'
  ``AbsorbingStateTransition`` with ``abs_state = 0``. For a genuine mask token, give the data an extra unused
  node class and pass its index as ``x_state``; nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from graphdiff.errors import ConfigError


@dataclass(frozen=True)
class TransitionMatrices:
    """Matching transition matrices for node and edge categories.

    Attributes:
        X: ``[B, dx, dx]`` (row-stochastic).
        E: ``[B, de, de]`` (row-stochastic).
    """

    X: Tensor
    E: Tensor


@dataclass(frozen=True)
class LimitDistribution:
    """The stationary distribution ``m`` that the forward process converges to (the prior of sampling).

    Attributes:
        X: ``[dx]`` node class probabilities.
        E: ``[de]`` edge class probabilities (class 0 = no edge).
    """

    X: Tensor
    E: Tensor


def keep_or_resample(keep: Tensor, limit: Tensor) -> Tensor:
    """``Q = keep I + (1 - keep) 1 m^T``, batched.

    Args:
        keep: ``[B]`` keep probabilities in ``[0, 1]`` (float).
        limit: ``[d]`` limit distribution ``m``.

    Returns:
        ``[B, d, d]`` row-stochastic matrices, dtype and device of ``keep``.
    """
    keep = keep.reshape(-1, 1, 1)
    m = limit.to(device=keep.device, dtype=keep.dtype)
    eye = torch.eye(m.numel(), device=keep.device, dtype=keep.dtype)
    return torch.lerp(m.view(1, 1, -1), eye, keep)


class Transition:
    """Base class: ``Q = a I + (1 - a) 1 m^T`` with per-type limit distributions ``m_X``, ``m_E``.

    Args:
        x_limit: ``[dx]`` non-negative weights of the node limit distribution (normalised here).
        e_limit: ``[de]`` non-negative weights of the edge limit distribution (normalised here).

    Raises:
        ConfigError: a limit that is empty, negative, not finite or sums to 0.
    """

    name = "transition"

    def __init__(self, x_limit: Tensor, e_limit: Tensor) -> None:
        self._limit = LimitDistribution(
            X=_normalise(x_limit, f"{self.name} transition: node limit distribution"),
            E=_normalise(e_limit, f"{self.name} transition: edge limit distribution"),
        )
        self._cache: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dx={self.dx}, de={self.de})"

    @property
    def dx(self) -> int:
        """Number of node classes."""
        return self._limit.X.numel()

    @property
    def de(self) -> int:
        """Number of edge classes (including class 0 = no edge)."""
        return self._limit.E.numel()

    def limit_dist(self) -> LimitDistribution:
        """The limit distribution (float64, CPU); ``Q_bar_t -> 1 m^T`` as ``alpha_bar_t -> 0``."""
        return LimitDistribution(self._limit.X.clone(), self._limit.E.clone())

    def matrices(self, keep: Tensor) -> TransitionMatrices:
        """``keep I + (1 - keep) 1 m^T`` for nodes and edges.

        Args:
            keep: ``[B]`` float keep probabilities (a scalar is treated as ``B = 1``).

        Returns:
            :class:`TransitionMatrices` with ``X [B, dx, dx]`` and ``E [B, de, de]``.
        """
        if not keep.dtype.is_floating_point:
            raise TypeError(f"keep probabilities must be floating point, got {keep.dtype}")
        limit_X, limit_E = self._limits_on(keep.device, keep.dtype)
        return TransitionMatrices(X=keep_or_resample(keep, limit_X), E=keep_or_resample(keep, limit_E))

    def _limits_on(self, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        # Cached per device and dtype, so building matrices on a GPU never copies from the host.
        key = (device, dtype)
        if key not in self._cache:
            self._cache[key] = (self._limit.X.to(device, dtype), self._limit.E.to(device, dtype))
        return self._cache[key]

    def Q_t(self, beta_t: Tensor) -> TransitionMatrices:
        """One step ``Q_t = (1 - beta_t) I + beta_t 1 m^T`` (``q(x_t | x_{t-1})``); ``beta_t`` is ``[B]``."""
        return self.matrices(1 - beta_t)

    def Q_bar(self, alpha_bar_t: Tensor) -> TransitionMatrices:
        """``Q_bar_t = Q_1 ... Q_t = alpha_bar_t I + (1 - alpha_bar_t) 1 m^T`` (``q(x_t | x_0)``)."""
        return self.matrices(alpha_bar_t)

    def Q_ts(self, alpha_bar_t: Tensor, alpha_bar_s: Tensor) -> TransitionMatrices:
        """``Q_{t|s} = Q_{s+1} ... Q_t`` with keep probability ``alpha_bar_t / alpha_bar_s`` (``q(x_t | x_s)``)."""
        return self.matrices(alpha_bar_t / alpha_bar_s)


class UniformTransition(Transition):
    """Uniform noise: ``m = 1/d`` for nodes and edges.

    Args:
        dx: number of node classes.
        de: number of edge classes (including "no edge").
    """

    name = "uniform"

    def __init__(self, dx: int, de: int) -> None:
        _check_classes(dx, de, self.name)
        super().__init__(torch.ones(dx, dtype=torch.float64), torch.ones(de, dtype=torch.float64))


class MarginalTransition(Transition):
    """Marginal noise: ``m`` = the class frequencies of the training data (DiGress' default).

    Args:
        x_marginals: ``[dx]`` node class frequencies (or counts; normalised here).
        e_marginals: ``[de]`` edge class frequencies over ordered pairs of distinct nodes, class 0 = no edge
            (:attr:`graphdiff.info.DatasetInfo.edge_marginals`).
    """

    name = "marginal"

    def __init__(self, x_marginals: Tensor | list[float], e_marginals: Tensor | list[float]) -> None:
        super().__init__(torch.as_tensor(x_marginals), torch.as_tensor(e_marginals))


class AbsorbingTransition(Transition):
    """Absorbing-state noise: ``m = e_k``; a resampled category jumps to class ``k`` and stays there.

    Args:
        dx: number of node classes.
        de: number of edge classes.
        x_state: absorbing node class (default 0; see the module docstring for a mask token).
        e_state: absorbing edge class (default 0 = "no edge": the prior is the empty graph).
    """

    name = "absorbing"

    def __init__(self, dx: int, de: int, x_state: int = 0, e_state: int = 0) -> None:
        _check_classes(dx, de, self.name)
        if not 0 <= x_state < dx:
            raise ConfigError(f"absorbing transition: x_state={x_state} is not a node class (0..{dx - 1})")
        if not 0 <= e_state < de:
            raise ConfigError(f"absorbing transition: e_state={e_state} is not an edge class (0..{de - 1})")
        self.x_state, self.e_state = x_state, e_state
        super().__init__(
            torch.nn.functional.one_hot(torch.tensor(x_state), dx).double(),
            torch.nn.functional.one_hot(torch.tensor(e_state), de).double(),
        )


def _check_classes(dx: int, de: int, name: str) -> None:
    if dx < 1 or de < 1:
        raise ConfigError(f"{name} transition: needs at least one node and one edge class, got dx={dx}, de={de}")


def _normalise(weights: Tensor, what: str) -> Tensor:
    weights = weights.detach().to(torch.float64).flatten().cpu()
    if weights.numel() == 0:
        raise ConfigError(f"{what} is empty")
    if not torch.isfinite(weights).all() or bool((weights < 0).any()):
        raise ConfigError(f"{what} must be finite and non-negative, got {weights.tolist()}")
    total = weights.sum()
    if total <= 0:
        raise ConfigError(f"{what} sums to 0")
    return weights / total


TRANSITIONS = {"uniform": UniformTransition, "marginal": MarginalTransition, "absorbing": AbsorbingTransition}


def make_transition(
    name: str,
    dx: int,
    de: int,
    x_marginals: Tensor | list[float] | None = None,
    e_marginals: Tensor | list[float] | None = None,
    **options: int,
) -> Transition:
    """Build a transition by name.

    Args:
        name: ``"uniform"``, ``"marginal"`` or ``"absorbing"``.
        dx: number of node classes.
        de: number of edge classes.
        x_marginals: ``[dx]`` node class frequencies (``"marginal"`` only).
        e_marginals: ``[de]`` edge class frequencies (``"marginal"`` only).
        **options: ``x_state`` / ``e_state`` for ``"absorbing"``.

    Raises:
        ConfigError: unknown name, missing marginals, or marginals of the wrong length.
    """
    if options and name != "absorbing":
        raise ConfigError(f"{name} transition: unexpected options {sorted(options)}")
    if name == "uniform":
        return UniformTransition(dx, de)
    if name == "absorbing":
        return AbsorbingTransition(dx, de, **options)
    if name == "marginal":
        if x_marginals is None or e_marginals is None:
            raise ConfigError("marginal transition: needs the node and edge marginals of the dataset")
        transition = MarginalTransition(x_marginals, e_marginals)
        if (transition.dx, transition.de) != (dx, de):
            raise ConfigError(
                f"marginal transition: marginals have {transition.dx} node / {transition.de} edge classes, "
                f"expected {dx} / {de}"
            )
        return transition
    raise ConfigError(f"unknown transition {name!r}; choose one of {sorted(TRANSITIONS)}")
