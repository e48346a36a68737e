"""DiscreteDiffusionModel: DiGress's discrete graph diffusion as a thin LightningModule.

The training step is the cross-entropy of the denoiser's clean-graph prediction (:mod:`graphdiff.diffusion`);
validation and test add the variational bound. Generation, evaluation by sampling, optimisation and checkpoints
are :class:`~graphdiff.lit.base.GenerativeModel`'s. See ``docs/concepts.md``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from graphdiff.diffusion import DiscreteDiffusion, cross_entropy_loss
from graphdiff.diffusion.process import NLL_DEFINITIONS
from graphdiff.diffusion.sampler import DiscreteGraphSampler, DiscreteSamplerConfig
from graphdiff.errors import ConfigError
from graphdiff.info import DatasetInfo
from graphdiff.lit.base import GenerativeModel, register_model
from graphdiff.models.base import denoiser_for_dataset
from graphdiff.types import DenseGraph


@register_model
class DiscreteDiffusionModel(GenerativeModel):
    """DiGress: a graph transformer trained to denoise categorical node and edge noise.

    Args:
        dataset_info: the data module's :class:`DatasetInfo` as a dict (linked automatically by the CLI;
            stored in checkpoints so sampling needs no data).
        T: diffusion steps.
        schedule: noise schedule: ``cosine`` (DiGress), ``linear`` or ``custom`` (give ``schedule_options.betas``).
        schedule_options: extra arguments of the schedule (e.g. ``{"betas": [...]}`` for ``custom``).
        transition: ``marginal`` (DiGress default), ``uniform`` or ``absorbing``.
        lambda_edge: weight of the edge cross-entropy (DiGress: 5).
        model: denoiser settings: ``denoiser`` (default ``"graph_transformer"``; a registered name, or the class
            path of a registered class, see :func:`~graphdiff.models.base.denoiser_class`) and
            its arguments, for the transformer ``preset``, ``n_layers``, ``hidden_mlp_dims``, ``hidden_dims``,
            ``extra_features``, ``dropout``, ``protocol`` (``digress``: the reference code's network input,
            see docs/models.md).
        lr, weight_decay, amsgrad: AdamW settings (DiGress: 2e-4, 1e-12, amsgrad).
        warmup_steps: linear learning-rate warm-up.
        lr_schedule: ``constant`` or ``cosine`` decay to 0 over the trainer's total steps after warm-up.
        eval_every_n_epochs: sample and compute metrics at the end of validation when the number of training
            epochs is a multiple of this (0 = never).
        eval_samples: graphs sampled for validation metrics.
        eval_metrics: metric names computed during validation (default: all MMDs and validity metrics for
            graphs; validity, relaxed validity, uniqueness and novelty for molecules). Test computes all.
        test_samples: graphs sampled for test metrics; ``"test"``: as many as the data module's test split (GDSS).
        test_folds: draws of ``test_samples`` graphs at test; with more than one, each metric is logged as its
            mean over the draws and its sample standard deviation as ``test/<metric>_std``.
        sample_with_ema: with the EMA callback, sample (and test) from the averaged weights; ``false`` samples
            from the raw weights, which checkpoints keep (GDSS's ``sample.use_ema: False``).
        sample_steps: reverse steps used for evaluation samples (default ``T``).
        sample_batch_size: graphs per sampling batch.
        compile: compile the network with ``torch.compile`` (opt-in; eager fallback, see docs/training.md).
        condition_dropout: with conditions (``data.conditions``), the probability of training a graph without its
            condition (classifier-free guidance; DeFoG 0.1). 1 trains an unconditional model.
        nll: definition of ``val/nll`` and ``test/nll``: ``graphdiff`` (default; the bound of the model the sampler
            draws from, each undirected pair once) or ``digress`` (the reference code's: the prediction plugged
            into the true posterior, both edge directions), see docs/models.md.
    """

    family = "discrete"
    takes_regressor_guidance = True
    structural_hparams = ("T", "schedule", "schedule_options", "transition", "model")

    def __init__(
        self,
        dataset_info: dict[str, Any],
        T: int = 500,
        schedule: Literal["cosine", "linear", "custom"] = "cosine",
        schedule_options: dict[str, Any] | None = None,
        transition: Literal["marginal", "uniform", "absorbing"] = "marginal",
        lambda_edge: float = 5.0,
        model: dict[str, Any] | None = None,
        lr: float = 2e-4,
        weight_decay: float = 1e-12,
        amsgrad: bool = True,
        warmup_steps: int = 0,
        lr_schedule: Literal["constant", "cosine"] = "constant",
        eval_every_n_epochs: int = 0,
        eval_samples: int = 64,
        eval_metrics: list[str] | None = None,
        test_samples: int | str = 256,
        test_folds: int = 1,
        sample_with_ema: bool = True,
        sample_steps: int | None = None,
        sample_batch_size: int = 64,
        compile: bool = False,
        condition_dropout: float = 0.1,
        nll: Literal["graphdiff", "digress"] = "graphdiff",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if nll not in NLL_DEFINITIONS:
            raise ConfigError(f"model.nll={nll!r}: choose one of {', '.join(NLL_DEFINITIONS)}")
        self.info = DatasetInfo.from_dict(dataset_info) if isinstance(dataset_info, dict) else dataset_info
        self.process = DiscreteDiffusion.for_dataset(self.info, T, schedule, schedule_options, transition)
        self.denoiser = denoiser_for_dataset(self.info, **(model or {}))
        self.register_buffer("node_count_dist", self.info.node_count_distribution(), persistent=False)
        self.check_hparams()

    # ------------------------------------------------------------------ training
    def forward(self, noisy: DenseGraph, t: torch.Tensor) -> DenseGraph:
        return self.denoiser(noisy, t)

    def _predict(self, noisy: DenseGraph, t: torch.Tensor) -> DenseGraph:
        return self.denoiser(noisy, t.float() / self.process.T)

    @property
    def network(self) -> torch.nn.Module:
        return self.denoiser

    def _loss(self, batch: DenseGraph, training: bool) -> dict[str, torch.Tensor]:
        batch = self.conditional_batch(batch, training)
        t = self.process.sample_timesteps(batch.batch_size, device=batch.X.device, training=training)
        noisy = self.process.add_noise(batch, t)
        return cross_entropy_loss(self._predict(noisy, t), batch, lambda_E=self.hparams.lambda_edge)

    def training_step(self, batch: DenseGraph, batch_idx: int) -> torch.Tensor:
        terms = self._loss(batch, training=True)
        bs = batch.batch_size
        self.log("train/loss", terms["loss"], prog_bar=True, batch_size=bs)
        self.log_dict({"train/loss_X": terms["X"], "train/loss_E": terms["E"]}, batch_size=bs)
        return terms["loss"]

    def evaluate_batch(self, batch: DenseGraph, stage: str) -> None:
        terms = self._loss(batch, training=False)
        nll = self.hparams.get("nll", "graphdiff")
        bound = self.process.variational_bound(self._predict, self.conditional_batch(batch, False),
                                               self.node_count_dist, both_edge_directions=nll == "digress", nll=nll)
        bs = batch.batch_size
        self.log(f"{stage}/loss", terms["loss"], prog_bar=True, batch_size=bs, sync_dist=True)
        self.log(f"{stage}/nll", bound["nll"].mean(), prog_bar=True, batch_size=bs, sync_dist=True)
        for key in ("kl_prior", "diffusion", "reconstruction", "log_pn"):
            self.log(f"{stage}/{key}", bound[key].mean(), batch_size=bs, sync_dist=True)

    # ------------------------------------------------------------------ sampling
    def sampler_config(self) -> DiscreteSamplerConfig:
        return DiscreteSamplerConfig(steps=self.hparams.sample_steps)

    def graph_sampler(self, config: DiscreteSamplerConfig, postprocess: bool = True,
                      network: torch.nn.Module | None = None,
                      steering: torch.nn.Module | None = None) -> DiscreteGraphSampler:
        return DiscreteGraphSampler(self.process, network if network is not None else self.denoiser, config.steps,
                                    steering=steering)

    def max_sample_steps(self) -> int:
        return self.process.T
