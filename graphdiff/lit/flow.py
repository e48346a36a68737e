"""DiscreteFlowModel: DeFoG's discrete flow matching as a thin LightningModule.

The training step is DiGress's cross-entropy of the network's prediction of the clean graph from a graph drawn
from the flow's path ``p_t(x_t | x_1)`` (:class:`~graphdiff.flow.DiscreteFlow`); sampling is the CTMC of
:class:`~graphdiff.flow.FlowGraphSampler` with the rate matrix chosen at sampling time (steps, ``η``, ``ω``,
time distortion), run by the shared :meth:`~graphdiff.lit.base.GenerativeModel.generate`. See ``docs/flow.md``.

    graphdiff fit --config flow/qm9
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from graphdiff.diffusion import cross_entropy_loss
from graphdiff.errors import ConfigError
from graphdiff.flow import DiscreteFlow, FlowGraphSampler, FlowSamplerConfig, initial_distribution
from graphdiff.info import DatasetInfo
from graphdiff.lit.base import GenerativeModel, register_model
from graphdiff.models.base import denoiser_for_dataset
from graphdiff.types import DenseGraph


@register_model
class DiscreteFlowModel(GenerativeModel):
    """DeFoG (Qin, Madeira et al., 2025): a graph transformer trained to predict the clean graph along a discrete
    flow from an initial distribution to the data, sampled by a CTMC whose rate matrix is chosen at sampling time.

    Args:
        dataset_info: the data module's :class:`DatasetInfo` as a dict (linked by the CLI; stored in checkpoints).
        transition: the initial distribution ``p_0`` (DeFoG's ``transition``): ``marginal`` (default),
            ``uniform``, ``absorbing`` (a virtual mask class), ``absorbfirst``, ``argmax``, ``node_marginal``,
            ``edge_marginal``.
        train_distortion: time distortion of training times (DeFoG's ``train.time_distortion``): ``identity``,
            ``cos``, ``revcos``, ``polyinc``, ``polydec``.
        lambda_edge: weight of the edge cross-entropy (DeFoG: 5).
        model: denoiser settings as :class:`~graphdiff.lit.DiscreteDiffusionModel`'s ``model`` (DeFoG uses
            ``extra_features: rrwp``, ``rrwp_steps: 12`` or 20).
        sampler: sampler settings (:class:`~graphdiff.flow.FlowSamplerConfig`: ``steps``, ``eta``, ``omega``,
            ``time_distortion``, ``x1``).
        sample_steps: CTMC steps of evaluation samples (overrides ``sampler.steps``).
        lr, weight_decay, amsgrad, warmup_steps, lr_schedule, eval_every_n_epochs, eval_samples, eval_metrics,
        test_samples, test_folds, sample_with_ema, sample_batch_size, compile, condition_dropout: as
            :class:`~graphdiff.lit.DiscreteDiffusionModel`.
    """

    family = "flow"
    sampler_settings = FlowSamplerConfig
    structural_hparams = ("transition", "model")

    def __init__(
        self,
        dataset_info: dict[str, Any],
        transition: Literal["marginal", "uniform", "absorbing", "absorbfirst", "argmax", "node_marginal",
                            "edge_marginal"] = "marginal",
        train_distortion: Literal["identity", "cos", "revcos", "polyinc", "polydec"] = "identity",
        lambda_edge: float = 5.0,
        model: dict[str, Any] | None = None,
        sampler: dict[str, Any] | None = None,
        sample_steps: int | None = None,
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
        sample_batch_size: int = 64,
        compile: bool = False,
        condition_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.info = DatasetInfo.from_dict(dataset_info) if isinstance(dataset_info, dict) else dataset_info
        info = self.info
        initial = initial_distribution(transition, info.num_node_types, info.num_edge_types, info.node_marginals,
                                       info.edge_marginals)
        self.flow = DiscreteFlow(initial, train_distortion)
        config = dict(model or {})
        if "virtual_classes" in config:
            raise ConfigError("model.virtual_classes is set by the flow's transition; remove it")
        virtual = (initial.virtual_X, initial.virtual_E)
        self.denoiser = denoiser_for_dataset(info, **config, **({"virtual_classes": virtual} if any(virtual) else {}))
        self.register_buffer("node_count_dist", info.node_count_distribution(), persistent=False)
        self.sampler_config()  # validates the sampler settings now
        self.check_hparams()

    # ------------------------------------------------------------------ training
    def forward(self, noisy: DenseGraph, t: torch.Tensor) -> DenseGraph:
        return self.denoiser(noisy, t)

    @property
    def network(self) -> torch.nn.Module:
        return self.denoiser

    def _loss(self, batch: DenseGraph, training: bool) -> dict[str, torch.Tensor]:
        batch = self.conditional_batch(batch, training)
        t = self.flow.sample_time(batch.batch_size, device=batch.X.device)
        noisy = self.flow.add_noise(batch, t)
        return cross_entropy_loss(self.denoiser(noisy, t), batch, lambda_E=self.hparams.lambda_edge)

    def training_step(self, batch: DenseGraph, batch_idx: int) -> torch.Tensor:
        terms = self._loss(batch, training=True)
        bs = batch.batch_size
        self.log("train/loss", terms["loss"], prog_bar=True, batch_size=bs)
        self.log_dict({"train/loss_X": terms["X"], "train/loss_E": terms["E"]}, batch_size=bs)
        return terms["loss"]

    def evaluate_batch(self, batch: DenseGraph, stage: str) -> None:
        terms = self._loss(batch, training=False)
        bs = batch.batch_size
        self.log(f"{stage}/loss", terms["loss"], prog_bar=True, batch_size=bs, sync_dist=True)
        self.log_dict({f"{stage}/loss_X": terms["X"], f"{stage}/loss_E": terms["E"]}, batch_size=bs,
                      sync_dist=True)

    # ------------------------------------------------------------------ sampling

    def graph_sampler(self, config: FlowSamplerConfig, postprocess: bool = True,
                      network: torch.nn.Module | None = None,
                      steering: torch.nn.Module | None = None) -> FlowGraphSampler:
        if steering is not None:
            raise ConfigError(f"regressor guidance is for the discrete family, not {self.family!r}")
        classes = (self.info.num_node_types, self.info.num_edge_types)
        return FlowGraphSampler(self.flow, network if network is not None else self.denoiser, config, classes)
