"""Thin LightningModules: the training step is the loss; evaluation calls sampling and metrics."""

from __future__ import annotations

import math
from typing import Any, Literal

import pytorch_lightning as pl
import torch

import graphdiff
from graphdiff.datasets.info import DatasetInfo
from graphdiff.datasets.storage import GraphList
from graphdiff.diffusion import DiscreteDiffusion, cross_entropy_loss, make_schedule, make_transition
from graphdiff.errors import ConfigError
from graphdiff.models.base import denoiser_for_dataset
from graphdiff.sampling import sample_many, sample_num_nodes
from graphdiff.types import DenseGraph, one_hot_graph


class GenerativeModel(pl.LightningModule):
    """Base of graphdiff's model families: built from a dataset info, can ``generate`` graphs.

    Subclasses take ``dataset_info`` as their first argument (the CLI links it from the data module)
    and implement :meth:`generate`.
    """

    info: DatasetInfo

    def generate(self, num_samples: int, steps: int | None = None, seed: int | None = None,
                 num_nodes: int | torch.Tensor | None = None, batch_size: int | None = None,
                 progress: bool = False):
        raise NotImplementedError

    # ------------------------------------------------------------------ sampling-based evaluation
    def on_validation_epoch_end(self) -> None:
        every = self.hparams.get("eval_every_n_epochs", 0)
        if not every or self.trainer.sanity_checking or (self.current_epoch + 1) % every:
            return
        self._sample_and_score("val", self.hparams.eval_samples)

    def on_test_epoch_end(self) -> None:
        if self.hparams.get("test_samples", 0):
            self._sample_and_score("test", self.hparams.test_samples)

    def _sample_and_score(self, stage: str, total: int) -> dict[str, float]:
        """Sample ``total`` graphs split over the ranks, gather them, score them on rank 0 and log."""
        world, rank = self.trainer.world_size, self.global_rank
        local = -(-total // world)
        graphs = self.generate(local, seed=1000 * self.current_epoch + rank)
        if world > 1:
            graphs = _gather_graphs(self, graphs)
        graphs = graphs.subset(range(min(total, len(graphs))))
        self.last_samples = graphs
        return self._score_and_log(graphs, stage, prefix=stage, metrics={"num_samples": float(len(graphs))})

    def _score_and_log(self, graphs: GraphList, stage: str, prefix: str,
                       metrics: dict[str, float] | None = None) -> dict[str, float]:
        """On rank 0: the dataset's metrics of ``graphs`` against the ``stage`` split, added to ``metrics`` and
        logged as ``<prefix>/<name>``."""
        metrics = dict(metrics or {})
        datamodule = getattr(self.trainer, "datamodule", None)
        if self.trainer.is_global_zero and datamodule is not None:
            from graphdiff.evaluation import FAST_MOLECULE_METRICS, evaluate_generated

            chosen = self.hparams.get("eval_metrics")
            if stage == "val" and chosen is None and self.info.kind == "molecule":
                chosen = FAST_MOLECULE_METRICS  # FCD / NSPDK / MOSES metrics are for the final test
            metrics.update(evaluate_generated(graphs, self.info, datamodule.data, reference_split=stage,
                                              metrics=chosen if stage == "val" else None))
        if self.trainer.is_global_zero:
            self.log_dict({f"{prefix}/{k}": float(v) for k, v in metrics.items() if _is_number(v)},
                          rank_zero_only=True, batch_size=1)
        return metrics

    def predict_step(self, batch: DenseGraph, batch_idx: int) -> GraphList:
        """One generated graph per graph of ``batch``, with the same node count (``graphdiff predict``).

        Seeded by the batch index and rank, so a prediction run is reproducible.
        """
        counts = batch.node_mask.sum(dim=1).cpu()
        seed = 1_000_003 * self.global_rank + batch_idx
        return self.generate(len(counts), seed=seed, num_nodes=counts)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        meta = checkpoint.setdefault("graphdiff", {})
        meta["version"] = graphdiff.__version__
        meta["model_class"] = f"{type(self).__module__}.{type(self).__qualname__}"
        if getattr(self, "cli_config", None) is not None:
            meta["config"] = self.cli_config


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
        model: denoiser settings: ``denoiser`` (default ``"graph_transformer"``; a registered name or an
            importable ``"package.module.Class"``, see :func:`~graphdiff.models.base.denoiser_for_dataset`) and
            its arguments, for the transformer ``preset``, ``n_layers``, ``hidden_mlp_dims``, ``hidden_dims``,
            ``extra_features``, ``dropout``.
        lr, weight_decay, amsgrad: AdamW settings (DiGress: 2e-4, 1e-12, amsgrad).
        warmup_steps: linear learning-rate warm-up.
        lr_schedule: ``constant`` or ``cosine`` decay to 0 over the trainer's total steps after warm-up.
        eval_every_n_epochs: sample and compute metrics at the end of validation when the number of training
            epochs is a multiple of this (0 = never).
        eval_samples: graphs sampled for validation metrics.
        eval_metrics: metric names computed during validation (default: all MMDs and validity metrics for
            graphs; validity, relaxed validity, uniqueness and novelty for molecules). Test computes all.
        test_samples: graphs sampled for test metrics.
        sample_steps: reverse steps used for evaluation samples (default ``T``).
        sample_batch_size: graphs per sampling batch.
    """

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
        test_samples: int = 256,
        sample_steps: int | None = None,
        sample_batch_size: int = 64,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.info = DatasetInfo.from_dict(dataset_info) if isinstance(dataset_info, dict) else dataset_info
        self.process = DiscreteDiffusion(
            make_schedule(schedule, T, **(schedule_options or {})),
            make_transition(transition, self.info.num_node_types, self.info.num_edge_types,
                            self.info.node_marginals, self.info.edge_marginals),
        )
        self.denoiser = denoiser_for_dataset(self.info, **(model or {}))
        self.register_buffer("node_count_dist", self.info.node_count_distribution(), persistent=False)

    # ------------------------------------------------------------------ training
    def forward(self, noisy: DenseGraph, t: torch.Tensor) -> DenseGraph:
        return self.denoiser(noisy, t)

    def _predict(self, noisy: DenseGraph, t: torch.Tensor) -> DenseGraph:
        return self.denoiser(noisy, t.float() / self.process.T)

    def _loss(self, batch: DenseGraph, training: bool) -> dict[str, torch.Tensor]:
        t = self.process.sample_timesteps(batch.batch_size, device=batch.X.device, training=training)
        noisy = self.process.add_noise(batch, t)
        return cross_entropy_loss(self._predict(noisy, t), batch, lambda_E=self.hparams.lambda_edge)

    def training_step(self, batch: DenseGraph, batch_idx: int) -> torch.Tensor:
        terms = self._loss(batch, training=True)
        bs = batch.batch_size
        self.log("train/loss", terms["loss"], prog_bar=True, batch_size=bs)
        self.log_dict({"train/loss_X": terms["X"], "train/loss_E": terms["E"]}, batch_size=bs)
        return terms["loss"]

    def _evaluate(self, batch: DenseGraph, stage: str) -> None:
        terms = self._loss(batch, training=False)
        bound = self.process.variational_bound(self._predict, batch, self.node_count_dist)
        bs = batch.batch_size
        self.log(f"{stage}/loss", terms["loss"], prog_bar=True, batch_size=bs, sync_dist=True)
        self.log(f"{stage}/nll", bound["nll"].mean(), prog_bar=True, batch_size=bs, sync_dist=True)
        for key in ("kl_prior", "diffusion", "reconstruction", "log_pn"):
            self.log(f"{stage}/{key}", bound[key].mean(), batch_size=bs, sync_dist=True)

    def validation_step(self, batch: DenseGraph, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: DenseGraph, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def generate(
        self,
        num_samples: int,
        steps: int | None = None,
        seed: int | None = None,
        num_nodes: int | torch.Tensor | None = None,
        batch_size: int | None = None,
        progress: bool = False,
    ):
        """Sample graphs; returns a :class:`~graphdiff.datasets.storage.GraphList` of class indices.

        Args:
            num_samples: how many graphs.
            steps: reverse steps (default ``T``).
            seed: make the draw reproducible (node counts and chain).
            num_nodes: a fixed size for every graph, or ``[num_samples]`` sizes; default: drawn from the
                training distribution.
            batch_size: graphs per batch (default ``sample_batch_size``).
        """
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        if num_nodes is None:
            counts = sample_num_nodes(self.node_count_dist.cpu(), num_samples, gen)
        else:
            counts = torch.as_tensor(num_nodes, dtype=torch.long).expand(num_samples).clone()
        if counts.min() < 1:
            raise ConfigError(f"num_nodes must be >= 1, got {int(counts.min())}")
        if int(counts.max()) > self.info.max_nodes:
            raise ConfigError(f"num_nodes {int(counts.max())} exceeds the model's maximum of "
                              f"{self.info.max_nodes} nodes (the largest training graph)")
        was_training = self.training
        self.eval()
        try:
            return sample_many(
                self.denoiser, self.process, counts,
                batch_size=batch_size or self.hparams.sample_batch_size,
                steps=steps or self.hparams.sample_steps,
                seed=seed, progress=progress,
            )
        finally:
            self.train(was_training)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        opt = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay,
            amsgrad=self.hparams.amsgrad,
        )
        warmup, schedule = self.hparams.warmup_steps, self.hparams.lr_schedule
        if warmup == 0 and schedule == "constant":
            return opt
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(self, step, warmup, schedule))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def lr_factor(module: pl.LightningModule, step: int, warmup: int, schedule: str) -> float:
    """Learning-rate multiplier at optimiser step ``step``: linear warm-up over ``warmup`` steps, then constant
    (``"constant"``) or a cosine decay to 0 over the module's trainer's remaining steps (``"cosine"``; the trainer
    is only read then)."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    total = max(module.trainer.estimated_stepping_batches - warmup, 1)
    return 0.5 * (1 + math.cos(math.pi * min(step - warmup, total) / total))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _gather_graphs(module: pl.LightningModule, graphs: GraphList) -> GraphList:
    """All ranks' graphs on every rank, rank by rank (each rank must hold the same number)."""
    n = module.info.max_nodes
    dense = graphs.to_dense(range(len(graphs)), module.info.num_node_types, module.info.num_edge_types)
    pad = n - dense.max_nodes
    nodes = torch.nn.functional.pad(dense.node_classes(), (0, pad), value=-1)
    edges = torch.nn.functional.pad(dense.edge_classes(), (0, pad, 0, pad), value=-1)
    nodes = module.all_gather(nodes.to(module.device)).reshape(-1, n).cpu()
    edges = module.all_gather(edges.to(module.device)).reshape(-1, n, n).cpu()
    mask = nodes >= 0
    return GraphList.from_dense(one_hot_graph(nodes, edges, mask, module.info.num_node_types,
                                              module.info.num_edge_types))
