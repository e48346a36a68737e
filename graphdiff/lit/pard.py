"""PardModel: PARD's autoregressive block-wise diffusion as a thin LightningModule.

A batch's graphs are decomposed into PARD's blocks (:func:`~graphdiff.diffusion.blocks.partial_order`), laid out for
parallel or batched sequential training (:mod:`graphdiff.diffusion.blocks`), noised block-wise and denoised by the
causal network (:class:`~graphdiff.models.pard.PardNetwork`); the block head learns the next block's size and
degree. Sampling generates block by block (:class:`~graphdiff.diffusion.blockwise.PardGraphSampler`) through the
shared :meth:`~graphdiff.lit.base.GenerativeModel.generate`. See ``docs/pard.md``.

    graphdiff fit --config pard/qm9
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch

from graphdiff.diffusion import DiscreteDiffusion
from graphdiff.diffusion.blocks import parallel_layout, partial_order, sequential_layout
from graphdiff.diffusion.blockwise import (
    BLOCK_LOSSES,
    BlockwiseDiffusion,
    PardGraphSampler,
    PardSamplerConfig,
    block_head_loss,
)
from graphdiff.errors import ConfigError
from graphdiff.generation import SamplerConfig
from graphdiff.info import DatasetInfo
from graphdiff.lit.base import GenerativeModel, Guidance, register_model
from graphdiff.log import get_logger
from graphdiff.models.guidance import ClassifierFreeGuidance
from graphdiff.models.pard import PardGuidance, PardNetwork
from graphdiff.storage import GraphList
from graphdiff.types import DenseGraph

log = get_logger(__name__)

BLOCK_MODELS = ("combined", "separate")
TRAINING_MODES = ("parallel", "batched_sequential")


@register_model
class PardModel(GenerativeModel):
    """PARD (Zhao, Ding and Akoglu, NeurIPS 2024): graphs generated block by block in their structural partial
    order, each block by a small discrete diffusion shared across blocks, with a head for the next block's size.

    Args:
        dataset_info: the data module's :class:`DatasetInfo` as a dict (linked by the CLI; stored in checkpoints).
        T: diffusion steps of every block (PARD ``diffusion.num_steps``).
        schedule, schedule_options: the noise schedule, as :class:`~graphdiff.lit.DiscreteDiffusionModel`.
        transition: ``uniform`` (PARD ``diffusion.uniform_noise: True``), ``marginal`` (its default) or
            ``absorbing``.
        max_hops: hops of the higher-order degree that orders the blocks (PARD ``diffusion.max_hops``; 0: a
            single block, plain diffusion).
        loss: ``pard`` (variational bound + ``ce_weight`` x cross-entropy, per-graph sums) or ``ce`` (DiGress).
        ce_weight: weight of the cross-entropy in the ``pard`` loss (PARD ``diffusion.ce_coeff``).
        lambda_edge: weight of the pairs' term.
        block_model: ``combined`` (the denoiser's trunk also predicts the next block, PARD
            ``diffusion.combine_training: True``) or ``separate`` (a second network of the same shape, trained in
            the same steps: PARD's separate ``block_prediction`` task).
        training_mode: ``parallel`` (all blocks at once on the graph padded to twice its size, causal network) or
            ``batched_sequential`` (one graph per block; the denoiser is not causal and may use
            ``model.extra_features``; needs ``block_model: separate``) (PARD ``model.batched_sequential``).
        model: :class:`~graphdiff.models.pard.PardNetwork` settings: ``hidden_dims``, ``edge_dims``, ``n_layers``,
            ``n_heads``, ``add_transpose``, ``transformer_only``, ``absolute_block_id``, ``relative_block_id``,
            ``input_residual``, ``extra_features``.
        sampler: sampler settings (:class:`~graphdiff.diffusion.blockwise.PardSamplerConfig`: ``steps`` per
            block, ``fixed_size``).
        sample_steps: reverse steps per block of evaluation samples (overrides ``sampler.steps``).
        lr, weight_decay, amsgrad, warmup_steps, lr_schedule, eval_every_n_epochs, eval_samples, eval_metrics,
        test_samples, test_folds, sample_with_ema, sample_batch_size, compile, condition_dropout: as
            :class:`~graphdiff.lit.DiscreteDiffusionModel` (PARD: AdamW, ``lr``, ``wd`` 0.01, cosine schedule).
            With ``data.conditions`` both networks read the condition; classifier-free guidance guides the
            denoiser (:class:`~graphdiff.models.pard.PardGuidance`), the block head samples conditionally.
    """

    family = "pard"
    sampler_settings = PardSamplerConfig
    structural_hparams = ("T", "schedule", "schedule_options", "transition", "max_hops", "block_model",
                          "training_mode", "model")

    def __init__(
        self,
        dataset_info: dict[str, Any],
        T: int = 20,
        schedule: Literal["cosine", "linear", "custom"] = "cosine",
        schedule_options: dict[str, Any] | None = None,
        transition: Literal["uniform", "marginal", "absorbing"] = "marginal",
        max_hops: int = 3,
        loss: Literal["pard", "ce"] = "pard",
        ce_weight: float = 0.01,
        lambda_edge: float = 1.0,
        block_model: Literal["combined", "separate"] = "separate",
        training_mode: Literal["parallel", "batched_sequential"] = "parallel",
        model: dict[str, Any] | None = None,
        sampler: dict[str, Any] | None = None,
        sample_steps: int | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        amsgrad: bool = False,
        warmup_steps: int = 0,
        lr_schedule: Literal["constant", "cosine"] = "cosine",
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
        _choice("model.loss", loss, BLOCK_LOSSES)
        _choice("model.block_model", block_model, BLOCK_MODELS)
        _choice("model.training_mode", training_mode, TRAINING_MODES)
        if isinstance(max_hops, bool) or not isinstance(max_hops, int) or max_hops < 0:
            raise ConfigError(f"model.max_hops={max_hops!r}: expected an integer >= 0")
        if isinstance(ce_weight, bool) or not isinstance(ce_weight, int | float) or ce_weight < 0:
            raise ConfigError(f"model.ce_weight={ce_weight!r}: expected a number >= 0")
        if training_mode == "batched_sequential" and block_model == "combined":
            raise ConfigError("model.training_mode=batched_sequential needs model.block_model=separate (as PARD: "
                              "the block head must be causal)")
        config = dict(model or {})
        if config.get("extra_features", "none") != "none" and training_mode == "parallel":
            raise ConfigError("model.extra_features see the whole graph, later blocks included: use them with "
                              "model.training_mode=batched_sequential")
        self.blocks = BlockwiseDiffusion(DiscreteDiffusion.for_dataset(info, T, schedule, schedule_options,
                                                                       transition))
        dims = (info.num_node_types, info.num_edge_types, info.max_nodes)
        width = info.conditioning.width if len(info.conditioning) else 0
        try:
            self.denoiser = PardNetwork(*dims, **config, blocks=block_model == "combined", condition_dim=width)
            self.block_network = PardNetwork(*dims, **{**config, "extra_features": "none"}, denoise=False,
                                             condition_dim=width) if block_model == "separate" else None
        except TypeError as exc:
            raise ConfigError(f"model: {exc}") from None
        # The first block's size distribution, from the training split at the start of fit (kept in checkpoints).
        self.register_buffer("first_block_sizes", torch.zeros(info.max_nodes + 1))
        self.register_buffer("node_count_dist", info.node_count_distribution(), persistent=False)
        self.sampler_config()  # validates the sampler settings now
        self.check_hparams()

    # ------------------------------------------------------------------ data statistics
    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if stage == "fit" and datamodule is not None and not bool(self.first_block_sizes.any()):
            train = datamodule.data.split("train")
            log.info("PARD: the first block's size distribution from %d training graphs", len(train))
            self.first_block_sizes.copy_(self.first_block_distribution(train))

    def first_block_distribution(self, graphs: GraphList, chunk: int = 4096) -> torch.Tensor:
        """``[max_nodes + 1]`` distribution of the first block's size over ``graphs`` (PARD's
        ``initial_blocksize_distribution``)."""
        counts = torch.zeros(self.info.max_nodes + 1)
        for start in range(0, len(graphs), chunk):
            index = range(start, min(start + chunk, len(graphs)))
            dense = graphs.to_dense(index, self.info.num_node_types, self.info.num_edge_types)
            order = partial_order(dense, self.hparams.max_hops)
            counts += torch.bincount(order.size[:, 0], minlength=counts.numel())[: counts.numel()].float()
        if counts.sum() <= 0:
            raise ConfigError("the training split has no graph to learn the first block's size from")
        return counts / counts.sum()

    # ------------------------------------------------------------------ training
    @property
    def network(self) -> torch.nn.Module:
        return self.denoiser

    @property
    def block_head(self) -> PardNetwork:
        return self.block_network if self.block_network is not None else self.denoiser

    def _loss(self, batch: DenseGraph, training: bool) -> dict[str, torch.Tensor]:
        hp = self.hparams
        batch = self.conditional_batch(batch, training)
        order = partial_order(batch, hp.max_hops)
        if hp.training_mode == "parallel":
            graph, layout = parallel_layout(batch, order)
            causal = True
        else:
            graph, layout, _ = sequential_layout(batch, order)
            causal = False
        t = self.blocks.sample_timesteps(graph.batch_size, graph.X.device)
        noisy = self.blocks.add_noise(graph, layout, t)
        out = self.denoiser(noisy, t.float() / self.blocks.T, layout, causal=causal)
        terms = self.blocks.loss(out.logits, graph, noisy, layout, t, hp.loss, hp.ce_weight, hp.lambda_edge)
        if self.block_network is None:  # combined: the clean half of the parallel layout predicts the blocks
            size, degree = out.size, out.degree
        else:  # separate: a causal network on the clean graph
            clean = order.layout()
            pred = self.block_network(batch, torch.zeros(batch.batch_size, device=batch.X.device), clean)
            size, degree, layout = pred.size, pred.degree, clean
        first = self.block_head.first_degree_logits(order.size[:, 0])
        first_size = None
        if self.block_head.first_size_head is not None:  # conditional: the first size given the condition
            condition = batch.y[:, batch.y.shape[1] - self.block_head.condition_dim:]
            first_size = self.block_head.first_size_logits(condition)
        head = block_head_loss(size, degree, first, layout, first_size)
        return {"loss": terms["loss"] + head["loss"], "X": terms["X"], "E": terms["E"], "blocks": head["loss"],
                "size_accuracy": head["size_accuracy"]}

    def training_step(self, batch: DenseGraph, batch_idx: int) -> torch.Tensor:
        terms = self._loss(batch, training=True)
        bs = batch.batch_size
        self.log("train/loss", terms["loss"], prog_bar=True, batch_size=bs)
        self.log_dict({"train/loss_X": terms["X"], "train/loss_E": terms["E"], "train/loss_blocks": terms["blocks"]},
                      batch_size=bs)
        return terms["loss"]

    def evaluate_batch(self, batch: DenseGraph, stage: str) -> None:
        terms = self._loss(batch, training=False)
        bs = batch.batch_size
        self.log(f"{stage}/loss", terms["loss"], prog_bar=True, batch_size=bs, sync_dist=True)
        self.log_dict({f"{stage}/{k}": terms[k] for k in ("X", "E", "blocks", "size_accuracy")}, batch_size=bs,
                      sync_dist=True)

    # ------------------------------------------------------------------ sampling

    def max_sample_steps(self) -> int:
        return self.blocks.T

    def graph_sampler(self, config: PardSamplerConfig, postprocess: bool = True,
                      network: torch.nn.Module | None = None,
                      steering: torch.nn.Module | None = None) -> PardGraphSampler:
        if steering is not None:
            raise ConfigError(f"regressor guidance is for the discrete family, not {self.family!r}")
        if not bool(self.first_block_sizes.any()):
            raise ConfigError("this PARD model has no first-block size distribution: train it (graphdiff fit) "
                              "before sampling")
        if config.steps is not None and config.steps > self.blocks.T:
            raise ConfigError(f"steps={config.steps} exceeds the model's T={self.blocks.T} steps per block")
        return PardGraphSampler(self.blocks, network if network is not None else self.denoiser, self.block_head,
                                self.first_block_sizes, self.info.max_nodes, config.steps, config.fixed_size,
                                causal=self.hparams.training_mode == "parallel")

    def guided_network(self, guidance: Guidance | None) -> torch.nn.Module:
        """The denoiser, guided for a conditional model (:class:`~graphdiff.models.pard.PardGuidance`)."""
        network = super().guided_network(guidance)
        if isinstance(network, ClassifierFreeGuidance):
            return PardGuidance(self.denoiser, network.scale)
        return network

    def sizes_sampler(self, config: SamplerConfig, sizes_given: bool) -> SamplerConfig:
        """Sizes given to :meth:`generate` are kept exactly (the sampler's ``fixed_size``); otherwise the block head
        decides each graph's size (or the settings' ``fixed_size`` keeps the sizes drawn from the training
        distribution)."""
        return dataclasses.replace(config, fixed_size=True) if sizes_given else config


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r}: choose one of {', '.join(allowed)}")
