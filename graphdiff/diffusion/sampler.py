"""The discrete family's reverse chain as a :class:`~graphdiff.generation.GraphSampler`.

noise (the limit distribution) -> (denoiser -> softmax -> exact posterior step)* -> sample. Strided sampling
(``steps < T``) uses the closed-form skip-step posterior between consecutive points of :func:`time_grid`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from graphdiff.diffusion.process import DiscreteDiffusion
from graphdiff.errors import ConfigError
from graphdiff.generation import GraphSampler, SamplerConfig
from graphdiff.types import DenseGraph


@dataclass
class DiscreteSamplerConfig(SamplerConfig):
    """Sampler settings of the discrete-diffusion family.

    Attributes:
        steps: reverse steps, ``1..T`` (``None``: ``T``, the full chain).
    """

    family = "discrete"
    steps_field = "steps"

    steps: int | None = None

    def __post_init__(self) -> None:
        check_steps(self.steps)


def check_steps(steps: int | None) -> None:
    """Refuse a sampler's ``steps`` that is not ``None`` or a positive integer (one line)."""
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ConfigError(f"sampler: steps must be a positive integer, got {steps!r}")


def time_grid(T: int, steps: int | None = None) -> list[int]:
    """Decreasing integer times ``T = t_0 > t_1 > ... > t_K = 0`` with ``K = steps`` (default ``T``).

    Strided sampling uses the exact skip-step posterior between consecutive grid points.
    """
    steps = T if steps is None else int(steps)
    if not 1 <= steps <= T:
        raise ConfigError(f"steps must be between 1 and T={T}, got {steps}")
    return torch.linspace(T, 0, steps + 1).round().long().tolist()


class DiscreteGraphSampler(GraphSampler):
    """Reverse chain of a :class:`~graphdiff.diffusion.DiscreteDiffusion` driven by a denoiser.

    Args:
        process: the diffusion process.
        denoiser: ``(noisy DenseGraph, t [B] in [0, 1]) -> logits of the clean graph``.
        steps: reverse steps (default ``T``).
        steering: optional ``(noisy DenseGraph, t [B] in [0, 1]) -> DenseGraph`` of positive per-class factors
            that multiply each reverse distribution (:class:`~graphdiff.models.guidance.RegressorGuidance`). It
            reads its targets from the trailing ``steering.target_dim`` columns of the chain's ``y``; the denoiser
            gets the columns before them.
    """

    def __init__(self, process: DiscreteDiffusion, denoiser: nn.Module, steps: int | None = None,
                 steering: nn.Module | None = None) -> None:
        self.process = process
        self.denoiser = denoiser
        self.steering = steering
        self.grid = time_grid(process.T, steps)

    @property
    def num_steps(self) -> int:
        return len(self.grid) - 1

    def prior(self, node_mask: Tensor, generator: torch.Generator | None = None,
              condition: Tensor | None = None) -> DenseGraph:
        return self.process.prior(node_mask, generator=generator, y=condition)

    def step(self, state: DenseGraph, k: int, generator: torch.Generator | None = None) -> DenseGraph:
        B, device, T = state.batch_size, state.X.device, self.process.T
        t = torch.full((B,), self.grid[k], dtype=torch.long, device=device)
        s = torch.full((B,), self.grid[k + 1], dtype=torch.long, device=device)
        weights = None
        if self.steering is not None:
            P = self.steering.target_dim
            weights = self.steering(state, t.float() / T)
            own = DenseGraph(state.X, state.E, state.y[:, : state.y.shape[1] - P], state.node_mask)
            logits = self.denoiser(own, t.float() / T)
        else:
            logits = self.denoiser(state, t.float() / T)
        pred = DenseGraph(logits.X.softmax(-1), logits.E.softmax(-1), logits.y, state.node_mask)
        return self.process.step(pred, state, s, t, generator=generator, weights=weights)

    def decode(self, state: DenseGraph, final: bool = False) -> DenseGraph:
        return state.argmax()

    def label(self, k: int) -> str:
        return f"t = {self.grid[k]}"
