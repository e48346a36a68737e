"""Reverse-time samplers for a system of coupled SDEs (GDSS ``solver.py``, score_sde ``sampling.py``).

A *system* is a list of states (for graphs: node features ``x`` and adjacency ``adj``), one forward
:class:`~graphdiff.sde.sdes.SDE` per state, and a joint score function that sees all states at once:

* ``score_fn(states, t) -> scores``: ``states`` a sequence of ``[B, ...]`` tensors, ``t`` ``[B]``;
* ``noise_fn(i, like) -> z``: standard normal noise for state ``i`` with that state's structure (for graphs:
  masked node noise, or symmetric masked noise with an empty diagonal).

Scores of all states are evaluated at the same point before any state moves (GDSS updates ``x`` and
``adj`` from the same ``(x, adj)``), so one step costs one call of ``score_fn``.

Samplers:

* :func:`pc_sample`: predictor–corrector loop; predictors :class:`EulerMaruyamaPredictor`,
  :class:`ReverseDiffusionPredictor`; corrector :class:`LangevinCorrector` (``snr``, ``scale_eps``, ``n_steps``).
* :func:`s4_sample`: GDSS's S4 solver (a Langevin correction, then a symmetric splitting predictor).
* :class:`SamplerSettings` + :func:`sample_system`: the GDSS ``sampler``/``sample`` config keys and a dispatcher.

Times go from ``T`` down to ``eps`` on ``linspace(T, eps, N)``; the Euler step is ``dt = -1/N`` (as GDSS and
score_sde). With ``denoise`` the last step returns its noise-free mean.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from graphdiff.errors import ConfigError
from graphdiff.generation import SamplerConfig
from graphdiff.sde.sdes import SDE, broadcast_time

JointScoreFn = Callable[[Sequence[Tensor], Tensor], Sequence[Tensor]]
NoiseFn = Callable[[int, Tensor], Tensor]
States = list[Tensor]


def gaussian_noise_fn(generator: torch.Generator | None = None) -> NoiseFn:
    """A :data:`NoiseFn` of unstructured i.i.d. ``N(0, 1)`` noise (toys, tests)."""

    def noise(i: int, like: Tensor) -> Tensor:
        return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)

    return noise


def _batch_mean_norm(v: Tensor) -> Tensor:
    """Mean over the batch of the per-sample L2 norm (score_sde's Langevin step-size statistic)."""
    return torch.linalg.vector_norm(v.reshape(v.shape[0], -1), dim=-1).mean()


def langevin_step(sde: SDE, x: Tensor, score: Tensor, noise: Tensor, t: Tensor, snr: float,
                  scale_eps: float) -> tuple[Tensor, Tensor]:
    """One Langevin MCMC step ``x + e * score + sqrt(2 e) * scale_eps * z``.

    The step size ``e = 2 alpha_t (snr * |z| / |score|)^2`` targets a signal-to-noise ratio ``snr``
    (Song et al., 2021, Alg. 4/5); ``scale_eps`` shrinks the noise as GDSS.

    Returns:
        ``(x_new, x_mean)``.
    """
    step = (snr * _batch_mean_norm(noise) / _batch_mean_norm(score)) ** 2 * 2 * sde.langevin_alpha(t)
    mean = x + broadcast_time(step, x) * score
    return mean + broadcast_time(torch.sqrt(2 * step), x) * noise * scale_eps, mean


class Predictor(abc.ABC):
    """One reverse-time step of every state of the system.

    Args:
        sdes: forward SDE of each state.
        score_fn: joint score function.
        noise_fn: structured noise per state.
        probability_flow: integrate the probability-flow ODE instead of the reverse SDE.
    """

    def __init__(self, sdes: Sequence[SDE], score_fn: JointScoreFn, noise_fn: NoiseFn,
                 probability_flow: bool = False) -> None:
        self.sdes = list(sdes)
        self.rsdes = [sde.reverse(None, probability_flow) for sde in self.sdes]
        self.score_fn = score_fn
        self.noise_fn = noise_fn
        self.probability_flow = probability_flow

    @abc.abstractmethod
    def update_fn(self, states: Sequence[Tensor], t: Tensor) -> tuple[States, States]:
        """Move every state from ``t`` one step back; returns ``(states, means)``."""


class EulerMaruyamaPredictor(Predictor):
    """``x <- x - [f - g^2 s] |dt| + g sqrt(|dt|) z`` with ``dt = -1/N``."""

    def update_fn(self, states: Sequence[Tensor], t: Tensor) -> tuple[States, States]:
        scores = self.score_fn(states, t)
        new, means = [], []
        for i, (rsde, x, score) in enumerate(zip(self.rsdes, states, scores, strict=True)):
            dt = -1.0 / rsde.N
            drift, diffusion = rsde.sde_given_score(x, t, score)
            mean = x + drift * dt
            if self.probability_flow:
                new.append(mean)
            else:
                new.append(mean + broadcast_time(diffusion, x) * math.sqrt(-dt) * self.noise_fn(i, x))
            means.append(mean)
        return new, means


class ReverseDiffusionPredictor(Predictor):
    """Ancestral step through the SDE's own discretisation: ``x <- x - rev_f + rev_G z`` (DDPM/SMLD-like)."""

    def update_fn(self, states: Sequence[Tensor], t: Tensor) -> tuple[States, States]:
        scores = self.score_fn(states, t)
        new, means = [], []
        for i, (rsde, x, score) in enumerate(zip(self.rsdes, states, scores, strict=True)):
            f, G = rsde.discretize_given_score(x, t, score)
            mean = x - f
            if self.probability_flow:
                new.append(mean)
            else:
                new.append(mean + broadcast_time(G, x) * self.noise_fn(i, x))
            means.append(mean)
        return new, means


class NonePredictor(Predictor):
    """A predictor that leaves the states unchanged (corrector-only sampling)."""

    def update_fn(self, states: Sequence[Tensor], t: Tensor) -> tuple[States, States]:
        return list(states), list(states)


class Corrector(abc.ABC):
    """MCMC steps at a fixed time ``t`` towards ``p_t``.

    Args:
        sdes: forward SDE of each state.
        score_fn: joint score function.
        noise_fn: structured noise per state.
        snr: target signal-to-noise ratio of the Langevin step.
        scale_eps: multiplier of the Langevin noise (GDSS; 1 is plain Langevin).
        n_steps: MCMC steps per time step.
    """

    def __init__(self, sdes: Sequence[SDE], score_fn: JointScoreFn, noise_fn: NoiseFn, snr: float,
                 scale_eps: float, n_steps: int) -> None:
        self.sdes = list(sdes)
        self.score_fn = score_fn
        self.noise_fn = noise_fn
        self.snr = snr
        self.scale_eps = scale_eps
        self.n_steps = n_steps

    @abc.abstractmethod
    def update_fn(self, states: Sequence[Tensor], t: Tensor) -> tuple[States, States]:
        """Returns ``(states, means)``."""


class LangevinCorrector(Corrector):
    """``n_steps`` joint Langevin steps (:func:`langevin_step`) on every state."""

    def update_fn(self, states: Sequence[Tensor], t: Tensor) -> tuple[States, States]:
        states, means = list(states), list(states)
        for _ in range(self.n_steps):
            scores = self.score_fn(states, t)
            stepped = [
                langevin_step(sde, x, score, self.noise_fn(i, x), t, self.snr, self.scale_eps)
                for i, (sde, x, score) in enumerate(zip(self.sdes, states, scores, strict=True))
            ]
            states = [s for s, _ in stepped]
            means = [m for _, m in stepped]
        return states, means


class NoneCorrector(Corrector):
    """A corrector that does nothing."""

    def update_fn(self, states: Sequence[Tensor], t: Tensor) -> tuple[States, States]:
        return list(states), list(states)


PREDICTORS: dict[str, type[Predictor]] = {
    "euler": EulerMaruyamaPredictor,
    "euler_maruyama": EulerMaruyamaPredictor,
    "reverse": ReverseDiffusionPredictor,
    "reverse_diffusion": ReverseDiffusionPredictor,
    "none": NonePredictor,
}
CORRECTORS: dict[str, type[Corrector]] = {"langevin": LangevinCorrector, "none": NoneCorrector}


def _lookup(table: dict, name: str, what: str):
    key = str(name).lower()
    if key not in table:
        raise ConfigError(f"unknown {what} {name!r}; expected one of {sorted(table)}")
    return table[key]


def discretise(sdes: Sequence[SDE], num_steps: int | None) -> list[SDE]:
    """Discretise every SDE with the same number of steps (default: the last SDE's ``N``, as GDSS's ``sde_adj.N``)."""
    n = int(num_steps) if num_steps is not None else sdes[-1].N
    return [sde if sde.N == n else sde.with_steps(n) for sde in sdes]


def _time_grid(sde: SDE, eps: float, like: Tensor) -> Tensor:
    return torch.linspace(sde.T, eps, sde.N, device=like.device, dtype=like.dtype)


def pc_sample(
    sdes: Sequence[SDE],
    score_fn: JointScoreFn,
    noise_fn: NoiseFn,
    init: Sequence[Tensor],
    predictor: str = "euler",
    corrector: str = "langevin",
    snr: float = 0.1,
    scale_eps: float = 1.0,
    n_steps: int = 1,
    probability_flow: bool = False,
    denoise: bool = True,
    eps: float = 1e-4,
    num_steps: int | None = None,
) -> States:
    """Predictor–corrector sampling (score_sde Alg. 1; GDSS ``get_pc_sampler``): at each time, corrector then predictor.

    Args:
        sdes: forward SDE of each state.
        score_fn: joint score function ``(states, t) -> scores``.
        noise_fn: ``(i, like) -> noise`` for state ``i``.
        init: initial states drawn from the prior (``[B, ...]`` each).
        predictor: ``"euler"`` (Euler–Maruyama), ``"reverse"`` (reverse diffusion) or ``"none"``.
        corrector: ``"langevin"`` or ``"none"``.
        snr, scale_eps, n_steps: Langevin settings.
        probability_flow: follow the probability-flow ODE in the predictor.
        denoise: return the last step's mean (GDSS ``noise_removal``).
        eps: last time of the grid.
        num_steps: number of time steps (default: the adjacency SDE's ``N``).

    Returns:
        The final states.
    """
    settings = SamplerSettings(predictor, corrector, snr, scale_eps, n_steps, probability_flow, denoise, eps, num_steps)
    return _run(SystemSampler(settings, sdes, score_fn, noise_fn), init)


def s4_sample(
    sdes: Sequence[SDE],
    score_fn: JointScoreFn,
    noise_fn: NoiseFn,
    init: Sequence[Tensor],
    snr: float = 0.1,
    scale_eps: float = 1.0,
    denoise: bool = True,
    eps: float = 1e-4,
    num_steps: int | None = None,
) -> States:
    """GDSS's S4 solver (Jo et al., 2022, Alg. 2): one score evaluation per step.

    At time ``t`` with score ``s`` of the current states, for each state:

    1. correction: one Langevin step with ``s`` (:func:`langevin_step`);
    2. prediction, split symmetrically: half a step of the linear part (:meth:`SDE.transition` to ``t - h/2``
       plus its noise), the full score drift ``g(t)^2 s h`` (``h = 1/N``, score from step 1's starting point),
       then the second half step; the mean of the last half step is the noise-free estimate.

    Args:
        sdes, score_fn, noise_fn, init, denoise, eps, num_steps: as :func:`pc_sample`.
        snr, scale_eps: Langevin settings of the correction.

    Returns:
        The final states.
    """
    settings = SamplerSettings("S4", "Langevin", snr, scale_eps, 1, False, denoise, eps, num_steps)
    return _run(SystemSampler(settings, sdes, score_fn, noise_fn), init)


def _s4_update(sdes: Sequence[SDE], score_fn: JointScoreFn, noise_fn: NoiseFn, states: Sequence[Tensor],
               vec_t: Tensor, snr: float, scale_eps: float) -> tuple[States, States]:
    """One S4 step at time ``vec_t [B]`` (see :func:`s4_sample`); returns ``(states, means)``."""
    dt = -1.0 / sdes[-1].N
    half = torch.full_like(vec_t, dt / 2)
    scores = score_fn(states, vec_t)
    new, means = [], []
    for i, (sde, x, score) in enumerate(zip(sdes, states, scores, strict=True)):
        score_drift = -broadcast_time(sde.diffusion_coeff(vec_t) ** 2, x) * score
        x, _ = langevin_step(sde, x, score, noise_fn(i, x), vec_t, snr, scale_eps)
        mu, sigma = sde.transition(x, vec_t, half)
        x = mu + broadcast_time(sigma, x) * noise_fn(i, x)
        x = x + score_drift * dt
        mu, sigma = sde.transition(x, vec_t + half, half)
        x = mu + broadcast_time(sigma, x) * noise_fn(i, x)
        new.append(x)
        means.append(mu)
    return new, means


class SystemSampler:
    """The sampler that :class:`SamplerSettings` name, one time step at a time (the loops of :func:`pc_sample` and
    :func:`s4_sample`, split so that a caller can record or picture every step).

    Args:
        settings: the sampler.
        sdes: forward SDE of each state (all discretised with ``settings.num_steps`` steps).
        score_fn: joint score function ``(states, t) -> scores``.
        noise_fn: ``(i, like) -> noise`` for state ``i``.
    """

    def __init__(self, settings: SamplerSettings, sdes: Sequence[SDE], score_fn: JointScoreFn,
                 noise_fn: NoiseFn) -> None:
        self.settings = settings
        self.sdes = discretise(sdes, settings.num_steps)
        self.score_fn = score_fn
        self.noise_fn = noise_fn
        self.s4 = settings.predictor.lower() == "s4"
        if not self.s4:
            self.predictor = _lookup(PREDICTORS, settings.predictor, "predictor")(
                self.sdes, score_fn, noise_fn, settings.probability_flow)
            self.corrector = _lookup(CORRECTORS, settings.corrector, "corrector")(
                self.sdes, score_fn, noise_fn, settings.snr, settings.scale_eps, settings.n_steps)

    @property
    def num_steps(self) -> int:
        return self.sdes[-1].N

    def times(self, like: Tensor) -> Tensor:
        """``[num_steps]`` times from ``T`` down to ``eps``."""
        return _time_grid(self.sdes[-1], self.settings.eps, like)

    def step(self, states: Sequence[Tensor], t: Tensor) -> tuple[States, States]:
        """One step at time ``t`` (a scalar of :meth:`times`); returns ``(states, means)`` (the noise-free
        estimates, returned after the last step with ``noise_removal``)."""
        vec_t = t.expand(states[0].shape[0])
        if self.s4:
            return _s4_update(self.sdes, self.score_fn, self.noise_fn, states, vec_t, self.settings.snr,
                              self.settings.scale_eps)
        states, _ = self.corrector.update_fn(states, vec_t)
        return self.predictor.update_fn(states, vec_t)


def _run(sampler: SystemSampler, init: Sequence[Tensor]) -> States:
    states, means = list(init), list(init)
    with torch.no_grad():
        for t in sampler.times(states[0]):
            states, means = sampler.step(states, t)
    return means if sampler.settings.noise_removal else states


@dataclass
class SamplerSettings(SamplerConfig):
    """GDSS's ``sampler`` and ``sample`` config keys: the sampler settings of the score-SDE family.

    Attributes:
        predictor: ``"Euler"``, ``"Reverse"``, ``"S4"`` or ``"None"`` (case-insensitive).
        corrector: ``"Langevin"`` or ``"None"`` (ignored by S4, which always corrects once).
        snr: Langevin signal-to-noise ratio.
        scale_eps: Langevin noise multiplier.
        n_steps: Langevin steps per time step.
        probability_flow: probability-flow ODE predictor.
        noise_removal: return the last step's mean (GDSS ``sample.noise_removal``).
        eps: last time of the grid (GDSS ``sample.eps``).
        num_steps: number of time steps; ``None`` uses the SDEs' ``num_scales``.
    """

    family = "sde"
    steps_field = "num_steps"

    predictor: str = "Reverse"
    corrector: str = "Langevin"
    snr: float = 0.2
    scale_eps: float = 0.7
    n_steps: int = 1
    probability_flow: bool = False
    noise_removal: bool = True
    eps: float = 1e-4
    num_steps: int | None = None

    def __post_init__(self) -> None:
        if str(self.predictor).lower() != "s4":
            _lookup(PREDICTORS, self.predictor, "predictor")
            _lookup(CORRECTORS, self.corrector, "corrector")
        elif self.probability_flow:
            raise ConfigError("sampler: the S4 solver has no probability-flow variant")
        if self.num_steps is not None and self.num_steps < 1:
            raise ConfigError(f"sampler: num_steps must be >= 1, got {self.num_steps}")
        if self.n_steps < 1:
            raise ConfigError(f"sampler: n_steps must be >= 1, got {self.n_steps}")
        if not 0 < self.eps < 1:
            raise ConfigError(f"sampler: eps must be in (0, 1), got {self.eps}")


def number_of_evaluations(settings: SamplerSettings, num_steps: int) -> int:
    """Calls of the joint score function made by :func:`sample_system` over ``num_steps`` time steps."""
    if settings.predictor.lower() == "s4":
        return num_steps
    per_step = 0 if settings.predictor.lower() == "none" else 1
    if settings.corrector.lower() == "langevin":
        per_step += settings.n_steps
    return num_steps * per_step


def sample_system(settings: SamplerSettings, sdes: Sequence[SDE], score_fn: JointScoreFn, noise_fn: NoiseFn,
                  init: Sequence[Tensor]) -> States:
    """Run the sampler that ``settings`` names from the initial states ``init``."""
    return _run(SystemSampler(settings, sdes, score_fn, noise_fn), init)
