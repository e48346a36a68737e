"""Initial distributions ``p_0`` of the discrete flow and its time distortions (DeFoG, Qin et al. 2025).

A flow moves each node and edge class from ``p_0`` at ``t = 0`` to the data at ``t = 1`` along
``p_t(x_t | x_1) = t δ(x_t, x_1) + (1 - t) p_0(x_t)``. The choice of ``p_0`` (DeFoG's ``transition``):

* ``uniform``: ``1 / d``;
* ``marginal``: the training set's class frequencies (DeFoG's default, as DiGress);
* ``absorbing``: all mass on an added *virtual* mask class (added only where there are two or more classes);
* ``absorbfirst``: all mass on class 0 (for edges: "no edge", the empty graph);
* ``argmax``: all mass on the most frequent class;
* ``node_marginal`` / ``edge_marginal``: marginal for nodes (edges) and uniform for the other.

Time distortions ``f: [0, 1] -> [0, 1]`` (DeFoG's ``time_distorter``) reshape where training puts its times
(``t = f(u)``, ``u ~ U[0, 1]``) and where sampling puts its steps (``t_k = f(k / K)``): ``identity``, ``cos``
``(1 - cos(πt)) / 2``, ``revcos`` ``2t - (1 - cos(πt)) / 2``, ``polyinc`` ``t²``, ``polydec`` ``2t - t²``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from graphdiff.errors import ConfigError

InitialName = Literal["uniform", "marginal", "absorbing", "absorbfirst", "argmax", "node_marginal", "edge_marginal"]
INITIAL_DISTRIBUTIONS: tuple[str, ...] = ("uniform", "marginal", "absorbing", "absorbfirst", "argmax",
                                          "node_marginal", "edge_marginal")
Distortion = Literal["identity", "cos", "revcos", "polyinc", "polydec"]
DISTORTIONS: tuple[str, ...] = ("identity", "cos", "revcos", "polyinc", "polydec")


@dataclass(frozen=True)
class InitialDistribution:
    """``p_0`` of nodes and edges, over the data classes followed by any virtual (mask) class.

    Attributes:
        X: ``[dx + virtual_X]`` node class probabilities.
        E: ``[de + virtual_E]`` edge class probabilities (class 0 = no edge).
        virtual_X: virtual node classes appended after the data's (0 or 1).
        virtual_E: virtual edge classes appended after the data's (0 or 1).
    """

    X: Tensor
    E: Tensor
    virtual_X: int = 0
    virtual_E: int = 0

    @property
    def dims(self) -> tuple[int, int]:
        """``(dx + virtual_X, de + virtual_E)``: the widths of noisy graphs."""
        return self.X.numel(), self.E.numel()


def _one_hot(index: int, size: int) -> Tensor:
    out = torch.zeros(size, dtype=torch.float64)
    out[index] = 1.0
    return out


def _marginal(values: Sequence[float], what: str) -> Tensor:
    p = torch.as_tensor(list(values), dtype=torch.float64)
    if p.numel() == 0 or (p < 0).any() or not math.isclose(float(p.sum()), 1.0, abs_tol=1e-4):
        raise ConfigError(f"{what} marginals must be non-negative and sum to 1, got {p.tolist()}")
    return p / p.sum()


def initial_distribution(name: str, num_node_types: int, num_edge_types: int, node_marginals: Sequence[float],
                         edge_marginals: Sequence[float]) -> InitialDistribution:
    """The initial distribution ``name`` (see the module docstring) for a dataset's vocabularies and marginals.

    Raises:
        ConfigError: an unknown name.
    """
    if name not in INITIAL_DISTRIBUTIONS:
        raise ConfigError(f"unknown initial distribution {name!r}; choose one of {', '.join(INITIAL_DISTRIBUTIONS)}")
    dx, de = num_node_types, num_edge_types
    mx, me = _marginal(node_marginals, "node"), _marginal(edge_marginals, "edge")
    if name == "uniform":
        return InitialDistribution(torch.full((dx,), 1.0 / dx, dtype=torch.float64),
                                   torch.full((de,), 1.0 / de, dtype=torch.float64))
    if name == "marginal":
        return InitialDistribution(mx, me)
    if name == "node_marginal":
        return InitialDistribution(mx, torch.full((de,), 1.0 / de, dtype=torch.float64))
    if name == "edge_marginal":
        return InitialDistribution(torch.full((dx,), 1.0 / dx, dtype=torch.float64), me)
    if name == "absorbfirst":
        return InitialDistribution(_one_hot(0, dx), _one_hot(0, de))
    if name == "argmax":
        return InitialDistribution(_one_hot(int(mx.argmax()), dx), _one_hot(int(me.argmax()), de))
    # absorbing: a virtual mask class where there is more than one class (DeFoG's NoiseDistribution)
    ax, ae = int(dx > 1), int(de > 1)
    return InitialDistribution(_one_hot(dx + ax - 1, dx + ax), _one_hot(de + ae - 1, de + ae), ax, ae)


def distort(t: Tensor, name: str) -> Tensor:
    """The time distortion ``f(t)`` (see the module docstring), elementwise on ``t`` in ``[0, 1]``.

    Raises:
        ConfigError: an unknown name.
    """
    if name == "identity":
        return t
    if name == "cos":
        return (1 - torch.cos(t * math.pi)) / 2
    if name == "revcos":
        return 2 * t - (1 - torch.cos(t * math.pi)) / 2
    if name == "polyinc":
        return t**2
    if name == "polydec":
        return 2 * t - t**2
    raise ConfigError(f"unknown time distortion {name!r}; choose one of {', '.join(DISTORTIONS)}")
