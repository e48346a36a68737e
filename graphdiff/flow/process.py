"""DiscreteFlow: DeFoG's discrete flow matching on node and edge classes, and its CTMC sampler.

Training (:meth:`DiscreteFlow.add_noise`): ``t = f_train(u)``, ``u ~ U[0, 1]``, and every node and (undirected)
edge class is drawn from ``p_t(x_t | x_1) = t δ(x_t, x_1) + (1 - t) p_0(x_t)``; the network predicts ``x_1`` from
``(G_t, t)`` under the same cross-entropy as DiGress (:func:`graphdiff.diffusion.cross_entropy_loss`).

Sampling (:class:`FlowGraphSampler`): ``G_0 ~ p_0``; at ``0 = t_0 < t_1 < ... < t_K = 1`` (``t_k = f_sample(k/K)``)
one Euler step of the CTMC with the rates of :mod:`graphdiff.flow.rates` built from the network's prediction of
``x_1``; the last step draws ``x_1`` from the prediction itself (DeFoG). The number of steps is free at sampling
time: training never sees it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphdiff.errors import ConfigError
from graphdiff.flow.distributions import DISTORTIONS, InitialDistribution, distort
from graphdiff.flow.rates import conditional_rates, expected_rates, step_probs
from graphdiff.generation import GraphSampler, SamplerConfig, sample_categorical, sample_graph
from graphdiff.types import DenseGraph

#: Added to ``t_0 = 0`` when ``p_0`` is a point mass, where ``p_t(x_1 | x_1) = 0`` would stop every jump (DeFoG).
ABSORBING_T0 = 1e-6
X1_ESTIMATORS = ("expectation", "sample")


class DiscreteFlow:
    """The flow of node and edge classes from an initial distribution to the data.

    Args:
        initial: ``p_0`` of nodes and edges (:func:`~graphdiff.flow.distributions.initial_distribution`).
        train_distortion: time distortion of training times.
    """

    def __init__(self, initial: InitialDistribution, train_distortion: str = "identity") -> None:
        if train_distortion not in DISTORTIONS:
            raise ConfigError(f"unknown time distortion {train_distortion!r}; choose one of {', '.join(DISTORTIONS)}")
        self.initial = initial
        self.train_distortion = train_distortion

    @property
    def dims(self) -> tuple[int, int]:
        """Widths ``(dx', de')`` of noisy graphs (data classes plus virtual ones)."""
        return self.initial.dims

    def sample_time(self, batch_size: int, device: torch.device | str | None = None,
                    generator: torch.Generator | None = None) -> Tensor:
        """Training times ``[B]``: ``f_train(u)``, ``u ~ U[0, 1]``."""
        u = torch.rand(batch_size, generator=generator, device=device)
        return distort(u, self.train_distortion)

    def add_noise(self, clean: DenseGraph, t: Tensor, generator: torch.Generator | None = None) -> DenseGraph:
        """``G_t ~ p_t(· | G)`` for clean one-hot graphs and times ``t [B]``: widths ``dims``, symmetric ``E``."""
        X1 = _pad_classes(clean.X, self.dims[0])
        E1 = _pad_classes(clean.E, self.dims[1])
        tx = t.to(X1.dtype).view(-1, 1, 1)
        p0X, p0E = self.initial.X.to(X1), self.initial.E.to(E1)
        probs_X = tx * X1 + (1 - tx) * p0X
        probs_E = tx.unsqueeze(-1) * E1 + (1 - tx.unsqueeze(-1)) * p0E
        return sample_graph(probs_X, probs_E, clean.node_mask, clean.y, generator, dtype=clean.X.dtype)

    def prior(self, node_mask: Tensor, generator: torch.Generator | None = None,
              dtype: torch.dtype = torch.float32) -> DenseGraph:
        """``G_0 ~ p_0`` for ``node_mask [B, n]``."""
        B, n = node_mask.shape
        device = node_mask.device
        probs_X = self.initial.X.to(device=device, dtype=dtype).expand(B, n, -1)
        probs_E = self.initial.E.to(device=device, dtype=dtype).expand(B, n, n, -1)
        y = torch.zeros(B, 0, device=device, dtype=dtype)
        return sample_graph(probs_X, probs_E, node_mask, y, generator, dtype=dtype)

    def step(self, graph: DenseGraph, pred: DenseGraph, t: Tensor, s: Tensor, settings: FlowSamplerConfig,
             generator: torch.Generator | None = None) -> DenseGraph:
        """One Euler step of the CTMC from ``t`` to ``s > t`` (both ``[B]``).

        Args:
            graph: ``G_t``, one-hot, widths ``dims``.
            pred: the network's ``p̂(x_1 | G_t)`` (probabilities over the data classes).
            t, s: times of this and the next state.
            settings: ``eta``, ``omega`` and the ``x1`` estimator.
            generator: random source.
        """
        dx, de = self.dims
        if bool((s >= 1).all()):  # the last step draws x_1 from the prediction (DeFoG)
            return sample_graph(_pad_classes(pred.X, dx), _pad_classes(pred.E, de), graph.node_mask, graph.y,
                                generator, dtype=graph.X.dtype)
        X_t, E_t = graph.X.argmax(-1), graph.E.argmax(-1)
        dt = (s - t).to(torch.float64).view(-1, *([1] * (X_t.dim())))
        rates_X = conditional_rates(t.to(torch.float64), self.initial.X.to(t.device), settings.eta, settings.omega)
        rates_E = conditional_rates(t.to(torch.float64), self.initial.E.to(t.device), settings.eta, settings.omega)
        wX = _estimator(_pad_classes(pred.X, dx), settings.x1, generator)
        wE = _estimator(_pad_classes(pred.E, de), settings.x1, generator)
        probs_X = step_probs(expected_rates(rates_X, X_t, wX), X_t, dt)
        probs_E = step_probs(expected_rates(rates_E, E_t, wE), E_t, dt.unsqueeze(-1))
        return sample_graph(probs_X, probs_E, graph.node_mask, graph.y, generator, dtype=graph.X.dtype)


def _pad_classes(probs: Tensor, width: int) -> Tensor:
    """``probs [..., d]`` with zero columns appended up to ``width`` (the virtual classes)."""
    extra = width - probs.shape[-1]
    return F.pad(probs, (0, extra)) if extra > 0 else probs


def _estimator(probs: Tensor, how: str, generator: torch.Generator | None) -> Tensor:
    """Weights over ``x_1``: the prediction (``expectation``) or a one-hot draw from it (``sample``, DeFoG's code)."""
    if how == "expectation":
        return probs.to(torch.float64)
    draw = sample_categorical(probs.to(torch.float64), generator)
    return F.one_hot(draw, probs.shape[-1]).to(torch.float64)


@dataclass
class FlowSamplerConfig(SamplerConfig):
    """Sampler settings of the flow family (DeFoG's ``sample`` config).

    Attributes:
        steps: Euler steps of the CTMC from ``t = 0`` to ``1`` (any number: training never sees it).
        eta: stochasticity ``η`` (weight of the detailed-balance rate; DeFoG's ``eta``).
        omega: target guidance ``ω`` (DeFoG's ``omega``).
        time_distortion: where the steps go, ``t_k = f(k / K)``: identity, cos, revcos, polyinc, polydec.
        x1: ``expectation`` (the rate averaged over the prediction of ``x_1``, exact) or ``sample`` (the rate of
            one draw of ``x_1``, as DeFoG's code).
    """

    family = "flow"
    steps_field = "steps"

    steps: int = 500
    eta: float = 0.0
    omega: float = 0.0
    time_distortion: str = "identity"
    x1: str = "expectation"

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"sampler: steps must be a positive integer, got {self.steps!r}")
        for name in ("eta", "omega"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"sampler: {name} must be a number >= 0, got {value!r}")
        if self.time_distortion not in DISTORTIONS:
            raise ConfigError(f"sampler: time_distortion must be one of {', '.join(DISTORTIONS)}, "
                              f"got {self.time_distortion!r}")
        if self.x1 not in X1_ESTIMATORS:
            raise ConfigError(f"sampler: x1 must be one of {', '.join(X1_ESTIMATORS)}, got {self.x1!r}")


class FlowGraphSampler(GraphSampler):
    """The CTMC of a :class:`DiscreteFlow` driven by a network's prediction of ``x_1``.

    Args:
        flow: the flow.
        network: ``(G_t, t [B]) -> logits of G_1`` over the data classes.
        settings: the sampler settings.
        num_data_classes: ``(dx, de)`` of the data (the network's output widths).
    """

    def __init__(self, flow: DiscreteFlow, network: nn.Module, settings: FlowSamplerConfig,
                 num_data_classes: tuple[int, int]) -> None:
        self.flow = flow
        self.network = network
        self.settings = settings
        self.num_data_classes = num_data_classes
        grid = distort(torch.linspace(0, 1, settings.steps + 1, dtype=torch.float64), settings.time_distortion)
        if flow.initial.X.max() == 1 or flow.initial.E.max() == 1:
            grid[0] = grid[0] + ABSORBING_T0
        self.grid = grid

    @property
    def num_steps(self) -> int:
        return self.settings.steps

    def prior(self, node_mask: Tensor, generator: torch.Generator | None = None,
              condition: Tensor | None = None) -> DenseGraph:
        state = self.flow.prior(node_mask, generator)
        return state if condition is None else DenseGraph(state.X, state.E, condition.to(state.X), state.node_mask)

    def step(self, state: DenseGraph, k: int, generator: torch.Generator | None = None) -> DenseGraph:
        B, device = state.batch_size, state.X.device
        t = torch.full((B,), float(self.grid[k]), dtype=torch.float64, device=device)
        s = torch.full((B,), float(self.grid[k + 1]), dtype=torch.float64, device=device)
        logits = self.network(state, t.float())
        pred = DenseGraph(logits.X.softmax(-1), logits.E.softmax(-1), logits.y, state.node_mask)
        return self.flow.step(state, pred, t, s, self.settings, generator)

    def decode(self, state: DenseGraph, final: bool = False) -> DenseGraph:
        """The data classes of the state; a position still in a virtual (mask) class reads as class 0."""
        dx, de = self.num_data_classes
        X, E = state.X[..., :dx], state.E[..., :de]
        X = torch.where(X.sum(-1, keepdim=True) > 0, X, F.one_hot(torch.zeros_like(X[..., 0]).long(), dx).to(X))
        E = torch.where(E.sum(-1, keepdim=True) > 0, E, F.one_hot(torch.zeros_like(E[..., 0]).long(), de).to(E))
        return DenseGraph(X, E, state.y, state.node_mask).mask()

    def label(self, k: int) -> str:
        return f"t = {float(self.grid[k]):.2f}"
