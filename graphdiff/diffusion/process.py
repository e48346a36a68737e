"""DiGress' discrete diffusion process on dense graph batches (Vignac et al., ICLR 2023).

Forward: every node and every undirected pair of real nodes carries a category that is noised independently,
``q(x_t | x_0) = Cat(x_0 Q_bar_t)``. Reverse: a network predicts the clean categories ``p_theta(x_0 | G_t)``
and one step marginalises the exact posterior over that prediction,
``p_theta(x_s | G_t) = sum_c q(x_s | x_t, x_0 = c) p_theta(x_0 = c | G_t)``.

Conventions (see also :mod:`graphdiff.diffusion.schedules`):

* time is an integer in ``0..T``, ``t = 0`` being the data; per-graph times are ``[B]`` long tensors (a
  Python int or 0-dim tensor is broadcast to the batch, ``[B, 1]`` is accepted and flattened);
* any ``s < t`` is allowed in :meth:`DiscreteDiffusion.posterior` and :meth:`DiscreteDiffusion.step`, so a
  sampler can stride through time;
* edge categories are sampled for ``i < j`` and mirrored; the diagonal and the padding stay all-zero;
* ``y`` (global features) is not noised: it passes through every operation unchanged.

docs/concepts.md maps each equation to the function here that computes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from graphdiff.diffusion.schedules import NoiseSchedule, make_schedule
from graphdiff.diffusion.transitions import LimitDistribution, Transition, TransitionMatrices, make_transition
from graphdiff.errors import ConfigError
from graphdiff.generation import sample_graph
from graphdiff.info import DatasetInfo
from graphdiff.types import DenseGraph, mask_features

#: ``predict(noisy, t)``: a denoiser returning logits of the clean node and edge classes.
Predictor = Callable[[DenseGraph, Tensor], DenseGraph]

#: Definitions of the validation NLL: ``"graphdiff"`` (the bound of the sampler's reverse model) or ``"digress"``
#: (the reference code's: the predicted clean graph plugged into the true posterior).
NLLDefinition = Literal["graphdiff", "digress"]
NLL_DEFINITIONS: tuple[str, ...] = ("graphdiff", "digress")


# ---------------------------------------------------------------------------------------------------------------
# Posterior algebra on feature tensors ``[B, ..., d]`` (``...`` = ``n`` for nodes, ``n, n`` for edges).
# ---------------------------------------------------------------------------------------------------------------


def posterior_probs(M_t: Tensor, M_0: Tensor, Q_ts: Tensor, Q_bar_s: Tensor) -> Tensor:
    """``q(x_s | x_t, x_0) ∝ (x_t Q_{t|s}^T) ⊙ (x_0 Q_bar_s)``, normalised over ``x_s``.

    Bayes' rule with ``q(x_t | x_s) = x_s Q_{t|s} x_t^T`` and ``q(x_s | x_0) = x_0 Q_bar_s x_s^T``.

    Args:
        M_t: ``[B, ..., d]`` noisy one-hots at time ``t``.
        M_0: ``[B, ..., d]`` clean one-hots (or probabilities).
        Q_ts: ``[B, d, d]`` ``Q_{t|s}``.
        Q_bar_s: ``[B, d, d]`` ``Q_bar_s``.

    Returns:
        ``[B, ..., d]`` probabilities of ``x_s``; all-zero rows where ``M_t`` or ``M_0`` is all-zero (padding).
    """
    shape = M_t.shape
    B, d = shape[0], shape[-1]
    likelihood = _matmul(M_t.reshape(B, -1, d), Q_ts.transpose(-1, -2))  # q(x_t | x_s = k)
    prior = _matmul(M_0.reshape(B, -1, d), Q_bar_s)  # q(x_s = k | x_0)
    joint = likelihood * prior
    return _normalise_rows(joint).reshape(shape)


def posterior_per_clean_class(M_t: Tensor, Q_ts: Tensor, Q_bar_s: Tensor) -> Tensor:
    """``q(x_s | x_t, x_0 = c)`` for every clean class ``c`` at once.

    The matrix form of DiGress' ``compute_batched_over0_posterior_distribution``. A class ``c`` that cannot
    have produced ``x_t`` (``q(x_t | x_0 = c) = 0``, possible with absorbing transitions) gets an all-zero row.

    Args:
        M_t: ``[B, ..., d]`` noisy one-hots.
        Q_ts: ``[B, d, d]`` ``Q_{t|s}``.
        Q_bar_s: ``[B, d, d]`` ``Q_bar_s``.

    Returns:
        ``[B, ..., d, d]``: entry ``[..., c, k] = q(x_s = k | x_t, x_0 = c)``.
    """
    shape = M_t.shape
    B, d = shape[0], shape[-1]
    likelihood = _matmul(M_t.reshape(B, -1, d), Q_ts.transpose(-1, -2))  # [B, N, d]
    joint = likelihood.unsqueeze(-2) * Q_bar_s.unsqueeze(1)  # [B, N, d0, ds] = q(x_t, x_s | x_0)
    return _normalise_rows(joint).reshape(*shape[:-1], d, d)


def marginalised_posterior_probs(M_t: Tensor, pred_0: Tensor, Q_ts: Tensor, Q_bar_s: Tensor) -> Tensor:
    """``p(x_s | x_t) = sum_c q(x_s | x_t, x_0 = c) p(x_0 = c)``, normalised.

    Computed without the ``[.., d, d]`` intermediate of :func:`posterior_per_clean_class`:
    ``q(x_s = k | x_t, x_0 = c) = L_k Q_bar_s[c, k] / Z_c`` with ``L = x_t Q_{t|s}^T`` and
    ``Z_c = (L Q_bar_s^T)_c = q(x_t | x_0 = c)``, so the sum over ``c`` is ``L ⊙ ((p / Z) Q_bar_s)``.
    Clean classes with ``Z_c = 0`` get no weight; the result is renormalised (so it also absorbs the mass that
    ``p`` put on such classes), and a real row with no admissible mass at all falls back to uniform.

    Args:
        M_t: ``[B, ..., d]`` noisy one-hots.
        pred_0: ``[B, ..., d]`` predicted probabilities of the clean class.
        Q_ts: ``[B, d, d]`` ``Q_{t|s}``.
        Q_bar_s: ``[B, d, d]`` ``Q_bar_s``.

    Returns:
        ``[B, ..., d]`` probabilities of ``x_s``; all-zero rows where ``M_t`` is all-zero (padding).
    """
    shape = M_t.shape
    B, d = shape[0], shape[-1]
    M_t = M_t.reshape(B, -1, d)
    likelihood = _matmul(M_t, Q_ts.transpose(-1, -2))  # [B, N, ds]
    evidence = _matmul(likelihood, Q_bar_s.transpose(-1, -2))  # [B, N, d0] = q(x_t | x_0 = c)
    weights = torch.where(evidence > 0, pred_0.reshape(B, -1, d) / evidence.clamp_min(_tiny(evidence)), 0.0)
    unnormalised = likelihood * _matmul(weights, Q_bar_s)
    total = unnormalised.sum(-1, keepdim=True)
    real = M_t.sum(-1, keepdim=True) > 0
    probs = torch.where(total > 0, unnormalised / total.clamp_min(_tiny(total)), real.to(total.dtype) / d)
    return probs.reshape(shape)


# ---------------------------------------------------------------------------------------------------------------
# Training loss.
# ---------------------------------------------------------------------------------------------------------------


def cross_entropy_loss(
    pred_logits: DenseGraph, clean: DenseGraph, lambda_E: float = 5.0, lambda_y: float = 0.0
) -> dict[str, Tensor]:
    """DiGress' training loss: cross-entropy of the predicted clean classes.

    ``L = CE_X + lambda_E CE_E + lambda_y CE_y``, where ``CE_X`` is the mean over all real nodes of the batch,
    ``CE_E`` the mean over all ordered pairs ``(i, j)``, ``i != j``, of real nodes (as DiGress, which keeps every
    row of the dense ``E`` that is not padding or diagonal), and ``CE_y`` the mean over graphs of the
    cross-entropy of ``y`` (only computed when ``lambda_y != 0``; DiGress' default is ``lambda = [5, 0]``).
    Targets are ``argmax`` of the clean one-hots.

    Args:
        pred_logits: logits ``X [B, n, dx]``, ``E [B, n, n, de]``, ``y [B, dy]``.
        clean: the clean one-hot batch.
        lambda_E: weight of the edge term.
        lambda_y: weight of the ``y`` term.

    Returns:
        ``{"loss", "X", "E", "y"}``: 0-dim tensors (the total and the unweighted terms).
    """
    node_mask = clean.node_mask
    pairs = _pair_mask(node_mask, both_directions=True)
    loss_X = _masked_mean_cross_entropy(pred_logits.X, clean.X, node_mask)
    loss_E = _masked_mean_cross_entropy(pred_logits.E, clean.E, pairs)
    if lambda_y != 0:
        if pred_logits.y.shape != clean.y.shape or clean.y.shape[-1] == 0:
            raise ValueError(
                f"lambda_y={lambda_y} needs predicted and clean y of equal, non-zero width; got "
                f"{tuple(pred_logits.y.shape)} and {tuple(clean.y.shape)}"
            )
        loss_y = _masked_mean_cross_entropy(pred_logits.y, clean.y, torch.ones_like(clean.y[:, 0], dtype=torch.bool))
    else:
        loss_y = torch.zeros((), device=loss_X.device, dtype=loss_X.dtype)
    total = loss_X + lambda_E * loss_E + lambda_y * loss_y
    return {"loss": total, "X": loss_X, "E": loss_E, "y": loss_y}


def _masked_mean_cross_entropy(logits: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """Mean cross-entropy over the positions where ``mask [...]`` is true; ``logits``/``targets`` ``[..., d]``.

    Masking by multiplication instead of boolean indexing keeps the GPU free of host synchronisations; padded
    logits are zeroed first, so whatever a model writes there (even inf) cannot leak into the loss or its grad.
    """
    logits = logits.to(_float_dtype(logits.dtype))
    logits = torch.where(mask.unsqueeze(-1), logits, torch.zeros((), dtype=logits.dtype, device=logits.device))
    d = logits.shape[-1]
    ce = F.cross_entropy(logits.reshape(-1, d), targets.argmax(-1).reshape(-1), reduction="none")
    weights = mask.reshape(-1).to(ce.dtype)
    return (ce * weights).sum() / weights.sum().clamp_min(1.0)


# ---------------------------------------------------------------------------------------------------------------
# The process.
# ---------------------------------------------------------------------------------------------------------------


class DiscreteDiffusion:
    """Forward noising, reverse steps, training loss and variational bound of DiGress.

    Args:
        schedule: the noise schedule; ``T = schedule.T``.
        transition: the transition matrices (uniform, marginal or absorbing).

    Attributes:
        schedule, transition, T, dx, de.
    """

    def __init__(self, schedule: NoiseSchedule, transition: Transition) -> None:
        self.schedule = schedule
        self.transition = transition
        self.T = schedule.T

    @classmethod
    def for_dataset(cls, info: DatasetInfo, T: int, schedule: str = "cosine",
                    schedule_options: dict[str, Any] | None = None, transition: str = "marginal") -> DiscreteDiffusion:
        """The process a model of ``info`` trains with: schedule ``schedule`` over ``T`` steps (with its
        ``schedule_options``), ``transition`` over the dataset's node and edge classes (marginals from ``info``)."""
        return cls(make_schedule(schedule, T, **(schedule_options or {})),
                   make_transition(transition, info.num_node_types, info.num_edge_types, info.node_marginals,
                                   info.edge_marginals))

    def __repr__(self) -> str:
        return f"DiscreteDiffusion(T={self.T}, schedule={self.schedule!r}, transition={self.transition!r})"

    @property
    def dx(self) -> int:
        return self.transition.dx

    @property
    def de(self) -> int:
        return self.transition.de

    def limit_dist(self) -> LimitDistribution:
        """The limit distribution of the forward process (the prior of sampling)."""
        return self.transition.limit_dist()

    # -- time -----------------------------------------------------------------------------------------------

    def timesteps(self, t: Tensor | int, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        """Normalise ``t`` to the ``[B]`` long tensor used everywhere.

        Args:
            t: a Python int, a 0-dim tensor, a ``[B]`` or ``[B, 1]`` integer tensor.
            batch_size: ``B``.
            device: device of the result (default: that of ``t``).

        Raises:
            TypeError: floating point times.
            ValueError: a shape that is not one of the above.
        """
        t = torch.as_tensor(t, device=device)
        if t.dtype.is_floating_point or t.dtype == torch.bool:
            raise TypeError(f"timesteps must be integers in 0..{self.T}, got dtype {t.dtype}")
        if t.dim() == 2 and t.shape[1] == 1:
            t = t[:, 0]
        if t.dim() == 0:
            t = t.expand(batch_size)
        if t.shape != (batch_size,):
            raise ValueError(f"timesteps must be a scalar, [B] or [B, 1] with B={batch_size}; got {tuple(t.shape)}")
        return t.long()

    def sample_timesteps(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        training: bool = True,
    ) -> Tensor:
        """Uniform random times, one per graph.

        As DiGress' ``apply_noise``: ``t ~ U{0..T}`` when training (``lowest_t = 0``; ``t = 0`` asks the model to
        copy a clean graph, a cheap, harmless example), ``t ~ U{1..T}`` when estimating the loss for validation.

        Args:
            batch_size: ``B``.
            generator: optional random generator (its device is used when ``device`` is not given).
            device: device of the result.
            training: ``False`` to exclude ``t = 0``.

        Returns:
            ``[B]`` long.
        """
        if device is None:
            device = generator.device if generator is not None else "cpu"
        low = 0 if training else 1
        return torch.randint(low, self.T + 1, (batch_size,), generator=generator, device=device)

    # -- matrices -------------------------------------------------------------------------------------------

    def Q_t(self, t: Tensor | int, dtype: torch.dtype = torch.float32) -> TransitionMatrices:
        """One-step matrices ``Q_t`` (``q(x_t | x_{t-1})``) for ``[B]`` times ``t`` (``Q_0 = I``)."""
        return self.transition.Q_t(self.schedule.beta(t, dtype=dtype))

    def Q_bar(self, t: Tensor | int, dtype: torch.dtype = torch.float32) -> TransitionMatrices:
        """Cumulative matrices ``Q_bar_t = Q_1 ... Q_t`` (``q(x_t | x_0)``) for ``[B]`` times ``t``."""
        return self.transition.Q_bar(self.schedule.alpha_bar(t, dtype=dtype))

    def Q_ts(self, t: Tensor | int, s: Tensor | int, dtype: torch.dtype = torch.float32) -> TransitionMatrices:
        """Stride matrices ``Q_{t|s} = Q_{s+1} ... Q_t`` (``q(x_t | x_s)``) for ``s <= t``, in closed form."""
        return self.transition.matrices(self.schedule.alpha_bar_ratio(s, t, dtype=dtype))

    # -- forward process ------------------------------------------------------------------------------------

    def forward_probs(self, clean: DenseGraph, t: Tensor | int) -> DenseGraph:
        """The marginals ``q(x_t | x_0) = x_0 Q_bar_t`` of every node and pair (padding all-zero).

        Args:
            clean: one-hot batch.
            t: times (see :meth:`timesteps`).

        Returns:
            A :class:`DenseGraph` of probabilities (dtype at least float32).
        """
        dtype = _float_dtype(clean.X.dtype)
        t = self.timesteps(t, clean.batch_size, clean.X.device)
        Q = self.Q_bar(t, dtype)
        probs_X = _matmul(clean.X.to(dtype), Q.X)
        probs_E = _matmul(clean.E.to(dtype).flatten(1, 2), Q.E).view(clean.E.shape)
        X, E = mask_features(probs_X, probs_E, clean.node_mask)
        return DenseGraph(X, E, clean.y, clean.node_mask)

    def add_noise(self, clean: DenseGraph, t: Tensor | int, generator: torch.Generator | None = None) -> DenseGraph:
        """Sample ``G_t ~ q(G_t | G_0)``: ``X_t ~ Cat(X Q_bar_t)``, ``E_t ~ Cat(E Q_bar_t)``.

        Args:
            clean: one-hot batch (padding and diagonal all-zero).
            t: ``[B]`` long times in ``0..T`` (or an int for the whole batch).
            generator: optional random generator for reproducible noise.

        Returns:
            One-hot noisy batch of the dtype of ``clean.X``; ``E_t`` is symmetric with an empty diagonal,
            padding is all-zero, ``y`` is copied.
        """
        probs = self.forward_probs(clean, t)
        return sample_graph(probs.X, probs.E, clean.node_mask, clean.y, generator, _out_dtype(clean.X.dtype))

    def prior(
        self,
        node_mask: Tensor,
        generator: torch.Generator | None = None,
        y: Tensor | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> DenseGraph:
        """Sample ``G_T`` from the limit distribution (nodes i.i.d. ``m_X``, pairs i.i.d. ``m_E``).

        Args:
            node_mask: ``[B, n]`` bool mask of the graphs to generate.
            generator: optional random generator.
            y: optional ``[B, dy]`` global features (default ``[B, 0]``).
            dtype: floating dtype of the one-hots.

        Returns:
            One-hot :class:`DenseGraph`, symmetric ``E``, empty diagonal and padding.
        """
        B, n = node_mask.shape
        limit = self.limit_dist()
        work = _float_dtype(dtype)
        probs_X = limit.X.to(node_mask.device, work).expand(B, n, -1)
        probs_E = limit.E.to(node_mask.device, work).expand(B, n, n, -1)
        if y is None:
            y = torch.zeros(B, 0, device=node_mask.device, dtype=dtype)
        return sample_graph(probs_X, probs_E, node_mask, y, generator, dtype)

    # -- reverse process ------------------------------------------------------------------------------------

    def _posterior_matrices(
        self, s: Tensor | int, t: Tensor | int, batch_size: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[TransitionMatrices, TransitionMatrices]:
        s = self.timesteps(s, batch_size, device)
        t = self.timesteps(t, batch_size, device)
        if device.type == "cpu" and bool((s >= t).any()):
            raise ValueError("a reverse step needs s < t for every graph")
        return self.Q_ts(t, s, dtype), self.Q_bar(s, dtype)

    def posterior(self, noisy: DenseGraph, clean: DenseGraph, s: Tensor | int, t: Tensor | int) -> DenseGraph:
        """The true posterior ``q(x_s | x_t, x_0)`` of every node and pair, for any ``s < t``.

        ``q(x_s | x_t, x_0) ∝ (x_t Q_{t|s}^T) ⊙ (x_0 Q_bar_s)`` (:func:`posterior_probs`).

        Args:
            noisy: one-hot ``G_t``.
            clean: one-hot ``G_0`` (same mask).
            s: earlier times, ``[B]`` long.
            t: later times, ``[B]`` long.

        Returns:
            :class:`DenseGraph` of probabilities of ``x_s`` (padding and diagonal all-zero, ``y`` of ``noisy``).
        """
        dtype = _float_dtype(noisy.X.dtype)
        Q_ts, Q_bar_s = self._posterior_matrices(s, t, noisy.batch_size, noisy.X.device, dtype)
        X = posterior_probs(noisy.X.to(dtype), clean.X.to(dtype), Q_ts.X, Q_bar_s.X)
        E = posterior_probs(noisy.E.to(dtype), clean.E.to(dtype), Q_ts.E, Q_bar_s.E)
        X, E = mask_features(X, E, noisy.node_mask)
        return DenseGraph(X, E, noisy.y, noisy.node_mask)

    def posterior_marginalised(
        self, noisy: DenseGraph, pred: DenseGraph, s: Tensor | int, t: Tensor | int
    ) -> DenseGraph:
        """The model's reverse distribution ``p(x_s | G_t) = sum_c q(x_s | x_t, x_0 = c) p(x_0 = c | G_t)``.

        Args:
            noisy: one-hot ``G_t``.
            pred: predicted *probabilities* of the clean classes (``X [B, n, dx]``, ``E [B, n, n, de]``).
            s: earlier times, ``[B]`` long (any ``s < t``).
            t: later times, ``[B]`` long.

        Returns:
            :class:`DenseGraph` of probabilities of ``x_s`` (padding and diagonal all-zero, ``y`` of ``noisy``).
        """
        dtype = _float_dtype(noisy.X.dtype)
        Q_ts, Q_bar_s = self._posterior_matrices(s, t, noisy.batch_size, noisy.X.device, dtype)
        X = marginalised_posterior_probs(noisy.X.to(dtype), pred.X.to(dtype), Q_ts.X, Q_bar_s.X)
        E = marginalised_posterior_probs(noisy.E.to(dtype), pred.E.to(dtype), Q_ts.E, Q_bar_s.E)
        X, E = mask_features(X, E, noisy.node_mask)
        return DenseGraph(X, E, noisy.y, noisy.node_mask)

    def step(
        self,
        pred: DenseGraph,
        noisy: DenseGraph,
        s: Tensor | int,
        t: Tensor | int,
        generator: torch.Generator | None = None,
        weights: DenseGraph | None = None,
    ) -> DenseGraph:
        """One reverse step: sample ``G_s ~ p(G_s | G_t)`` for any ``s < t``.

        Args:
            pred: predicted probabilities of the clean classes (softmax of the denoiser's logits).
            noisy: one-hot ``G_t``.
            s: target times, ``[B]`` long (``s = t - 1`` for ancestral sampling; smaller to stride).
            t: current times, ``[B]`` long.
            generator: optional random generator.
            weights: optional positive factors per class, ``X [B, n, dx]`` and ``E [B, n, n, de]``, multiplying
                ``p(x_s | G_t)`` before it is sampled (DiGress's regressor guidance,
                :class:`~graphdiff.models.guidance.RegressorGuidance`); a row whose product underflows to 0 keeps
                the unweighted distribution.

        Returns:
            One-hot ``G_s`` of the dtype of ``noisy.X``: symmetric ``E``, empty diagonal and padding, ``y`` copied.
        """
        probs = self.posterior_marginalised(noisy, pred, s, t)
        X, E = probs.X, probs.E
        if weights is not None:
            X, E = _reweight(X, weights.X), _reweight(E, weights.E)
        return sample_graph(X, E, noisy.node_mask, noisy.y, generator, _out_dtype(noisy.X.dtype))

    # -- variational bound ----------------------------------------------------------------------------------

    def kl_prior(self, clean: DenseGraph, both_edge_directions: bool = False) -> Tensor:
        """``KL(q(G_T | G_0) || prior)`` per graph, summed over real nodes and pairs.

        Args:
            clean: one-hot batch.
            both_edge_directions: count every pair twice (``(i, j)`` and ``(j, i)``), as DiGress' code does.

        Returns:
            ``[B]``; close to 0 when ``alpha_bar_T`` is close to 0.
        """
        q = self.forward_probs(clean, self.T)
        limit = self.limit_dist()
        kl_X = _kl_per_graph(q.X, limit.X.to(q.X), clean.node_mask)
        kl_E = _kl_per_graph(q.E, limit.E.to(q.E), _pair_mask(clean.node_mask, both_edge_directions))
        return kl_X + kl_E

    def variational_bound(
        self,
        predict: Predictor,
        clean: DenseGraph,
        node_count_probs: Tensor | None = None,
        generator: torch.Generator | None = None,
        both_edge_directions: bool = False,
        nll: NLLDefinition = "graphdiff",
    ) -> dict[str, Tensor]:
        """Estimate the negative log-likelihood bound of each graph (DiGress' validation NLL).

        ``-log p(G) <= -log p(n) + KL(q(G_T|G_0) || p(G_T)) + sum_{t=2}^{T} L_t - log p(G_0 | G_1)``, with
        ``L_t = KL(q(G_{t-1} | G_t, G_0) || p(G_{t-1} | G_t))``. The sum is estimated without bias by
        ``(T - 1) L_t`` at one ``t ~ U{2..T}`` per graph; the reconstruction term is evaluated at ``t = 1``
        (so it is exactly the ``t = 1`` term of DiGress' ``T E_{t~U{1..T}}`` estimator, kept apart). Both use
        the model's reverse distribution :meth:`posterior_marginalised`. Probabilities are floored at the
        smallest normal float, so every term is finite.

        ``nll="digress"`` computes the reference code's quantity instead (``compute_val_loss``): ``L_t`` compares
        the true posterior with the posterior that takes the predicted probabilities as its clean graph,
        ``q(G_{t-1} | G_t, x_0 = p_theta(x_0 | G_t))`` (:meth:`posterior` with soft ``x_0``), estimated by
        ``T L_t`` at one ``t ~ U{1..T}``; the reconstruction term is ``-log p_theta(G_0 | G_0)``, the prediction
        itself read at the clean graph with time 0. See ``docs/models.md``, "Validation NLL".

        Args:
            predict: ``predict(noisy, t) -> DenseGraph`` of logits of the clean classes (``t`` ``[B]`` long).
            clean: one-hot batch.
            node_count_probs: ``[N_max + 1]`` probabilities of each node count
                (``DatasetInfo.node_count_distribution()``); ``None`` leaves ``log p(n)`` out (reported as 0).
            generator: optional random generator (times and noise).
            both_edge_directions: count every pair twice, as DiGress' code does (its reported NLLs); the default
                counts each undirected pair once, which is the likelihood of the sampler's model.
            nll: ``"graphdiff"`` or ``"digress"`` (above).

        Returns:
            ``[B]`` tensors: ``"nll"`` (the sum), ``"log_pn"``, ``"kl_prior"``, ``"diffusion"`` (``= diffusion_X +
            diffusion_E``), ``"reconstruction"`` (``-log p(G_0 | G_1)``, ``= reconstruction_X + reconstruction_E``).

        Raises:
            ConfigError: an unknown ``nll``.
        """
        if nll not in NLL_DEFINITIONS:
            raise ConfigError(f"unknown model.nll {nll!r}; choose one of {', '.join(NLL_DEFINITIONS)}")
        B, device = clean.batch_size, clean.X.device
        node_mask = clean.node_mask
        pairs = _pair_mask(node_mask, both_edge_directions)
        dtype = _float_dtype(clean.X.dtype)

        if node_count_probs is None:
            log_pn = torch.zeros(B, device=device, dtype=dtype)
        else:
            probs_n = node_count_probs.to(device, dtype)
            n = clean.num_nodes.long()
            inside = n < probs_n.numel()
            p_n = torch.where(inside, probs_n[n.clamp(max=probs_n.numel() - 1)], 0.0)
            log_pn = p_n.clamp_min(_tiny(p_n)).log()

        kl_prior = self.kl_prior(clean, both_edge_directions)

        first, weight = (2, self.T - 1) if nll == "graphdiff" else (1, self.T)
        if self.T >= first:
            t = torch.randint(first, self.T + 1, (B,), generator=generator, device=device)
            noisy = self.add_noise(clean, t, generator)
            pred = _softmax(predict(noisy, t))
            if nll == "graphdiff":
                model = self.posterior_marginalised(noisy, pred, t - 1, t)
            else:
                model = self.posterior(noisy, pred, t - 1, t)
            true = self.posterior(noisy, clean, t - 1, t)
            diffusion_X = weight * _kl_per_graph(true.X, model.X, node_mask)
            diffusion_E = weight * _kl_per_graph(true.E, model.E, pairs)
        else:
            diffusion_X = diffusion_E = torch.zeros(B, device=device, dtype=dtype)

        if nll == "graphdiff":
            t1 = torch.ones(B, dtype=torch.long, device=device)
            noisy1 = self.add_noise(clean, t1, generator)
            model0 = self.posterior_marginalised(noisy1, _softmax(predict(noisy1, t1)), 0, t1)
        else:
            model0 = _softmax(predict(clean, torch.zeros(B, dtype=torch.long, device=device)))
        reconstruction_X = _nll_per_graph(clean.X.to(dtype), model0.X, node_mask)
        reconstruction_E = _nll_per_graph(clean.E.to(dtype), model0.E, pairs)

        diffusion = diffusion_X + diffusion_E
        reconstruction = reconstruction_X + reconstruction_E
        nll_value = -log_pn + kl_prior + diffusion + reconstruction
        return {
            "nll": nll_value,
            "log_pn": log_pn,
            "kl_prior": kl_prior,
            "diffusion": diffusion,
            "diffusion_X": diffusion_X,
            "diffusion_E": diffusion_E,
            "reconstruction": reconstruction,
            "reconstruction_X": reconstruction_X,
            "reconstruction_E": reconstruction_E,
        }


# ---------------------------------------------------------------------------------------------------------------
# Helpers.
# ---------------------------------------------------------------------------------------------------------------


def _matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` at full float32 precision even where TF32 matmuls are enabled (their 1e-3 error would distort
    small transition probabilities); the operands here have a tiny inner dimension, so float64 costs little."""
    if a.is_cuda and a.dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32:
        return (a.double() @ b.double()).float()
    return a @ b


def _float_dtype(dtype: torch.dtype) -> torch.dtype:
    """At least float32 for probability algebra (half precision loses small noise levels)."""
    if not dtype.is_floating_point:
        return torch.float32
    return torch.promote_types(dtype, torch.float32)


def _out_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype.is_floating_point else torch.float32


def _tiny(x: Tensor) -> float:
    return torch.finfo(x.dtype).tiny


def _normalise_rows(weights: Tensor) -> Tensor:
    total = weights.sum(-1, keepdim=True)
    return torch.where(total > 0, weights / total.clamp_min(_tiny(total)), 0.0)


def _reweight(probs: Tensor, weights: Tensor) -> Tensor:
    """``probs * weights``, except on rows where that product is all zero (underflow): there ``probs``."""
    weighted = probs * weights.to(probs.dtype)
    return torch.where(weighted.sum(-1, keepdim=True) > 0, weighted, probs)


def _pair_mask(node_mask: Tensor, both_directions: bool) -> Tensor:
    """``[B, n, n]`` bool: pairs of distinct real nodes, ``i < j`` only unless ``both_directions``."""
    n = node_mask.shape[1]
    pairs = node_mask.unsqueeze(2) & node_mask.unsqueeze(1)
    offset = torch.ones(n, n, dtype=torch.bool, device=node_mask.device)
    keep = ~torch.eye(n, dtype=torch.bool, device=node_mask.device) if both_directions else offset.triu(1)
    return pairs & keep


def _softmax(logits: DenseGraph) -> DenseGraph:
    X = torch.softmax(logits.X.to(_float_dtype(logits.X.dtype)), dim=-1)
    E = torch.softmax(logits.E.to(_float_dtype(logits.E.dtype)), dim=-1)
    return DenseGraph(X, E, logits.y, logits.node_mask)


def _sum_per_graph(values: Tensor, mask: Tensor) -> Tensor:
    """Sum ``values [B, ...]`` over the positions where ``mask [B, ...]`` is true."""
    return (values * mask.to(values.dtype)).flatten(1).sum(1)


def _kl_per_graph(p: Tensor, q: Tensor, mask: Tensor) -> Tensor:
    """``sum over masked positions of KL(p || q)``; ``p, q`` are ``[B, ..., d]``, ``mask`` is ``[B, ...]``."""
    q = q.expand_as(p)
    kl = torch.xlogy(p, p) - p * q.clamp_min(_tiny(q)).log()
    # KL >= 0; clamping removes the rounding noise of nearly equal p and q (it would be scaled by T - 1).
    return _sum_per_graph(kl.sum(-1).clamp_min(0.0), mask)


def _nll_per_graph(target: Tensor, probs: Tensor, mask: Tensor) -> Tensor:
    """``-sum over masked positions of log probs[target]`` for one-hot ``target``."""
    logp = (target * probs.clamp_min(_tiny(probs)).log()).sum(-1)
    return -_sum_per_graph(logp, mask)
