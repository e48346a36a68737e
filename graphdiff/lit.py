"""Thin LightningModules: the training step is the loss; evaluation calls sampling and metrics."""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any, Literal

import pytorch_lightning as pl
import torch

import graphdiff
from graphdiff.diffusion import DiscreteDiffusion, cross_entropy_loss, make_schedule, make_transition
from graphdiff.errors import ConfigError
from graphdiff.info import DatasetInfo
from graphdiff.models.base import denoiser_for_dataset
from graphdiff.sampling import sample_many, sample_num_nodes
from graphdiff.storage import GraphList
from graphdiff.types import DenseGraph, one_hot_graph

_MODELS: dict[str, type[GenerativeModel]] = {}


def register_model(cls: type[GenerativeModel]) -> type[GenerativeModel]:
    """Class decorator: allow checkpoints and stored configurations to rebuild ``cls``.

    A checkpoint names its model class; graphdiff builds only registered classes from it (its own families, and
    subclasses a user registers explicitly), never an arbitrary importable callable.
    """
    if not (isinstance(cls, type) and issubclass(cls, GenerativeModel)):
        raise TypeError(f"register_model expects a GenerativeModel subclass, got {cls!r}")
    _MODELS[f"{cls.__module__}.{cls.__qualname__}"] = cls
    _MODELS[cls.__qualname__] = cls
    return cls


def registered_models() -> dict[str, type[GenerativeModel]]:
    """Registered model classes by qualified and bare class name (graphdiff's families are always included)."""
    import graphdiff.lit_sde  # noqa: F401  (registers ScoreSDEModel)

    return dict(_MODELS)


class GenerativeModel(pl.LightningModule):
    """Base of graphdiff's model families: built from a dataset info, can ``generate`` graphs.

    Subclasses take ``dataset_info`` as their first argument (the CLI links it from the data module)
    and implement :meth:`generate`.
    """

    info: DatasetInfo

    #: hyper-parameters that fix the network's shapes or the noise process: a checkpoint cannot be resumed,
    #: tested or sampled with other values (subclasses extend this).
    structural_hparams: tuple[str, ...] = ()
    #: optimiser settings whose saved state cannot follow a change (refused when resuming ``fit``).
    optimizer_state_hparams: tuple[str, ...] = ("amsgrad",)
    #: keys of the ``model`` (network) settings that may change on a checkpoint: they do not change the weights.
    runtime_network_keys: tuple[str, ...] = ("dropout", "checkpoint", "recompute_edges")

    def generate(self, num_samples: int, steps: int | None = None, seed: int | None = None,
                 num_nodes: int | torch.Tensor | None = None, batch_size: int | None = None,
                 progress: bool = False):
        raise NotImplementedError

    def max_sample_steps(self) -> int | None:
        """The largest ``steps`` the sampler accepts (``None``: any number)."""
        return None

    _POSITIVE_INTS = ("T", "eval_samples", "sample_batch_size")
    _NON_NEGATIVE_INTS = ("eval_every_n_epochs", "test_samples", "warmup_steps")
    _POSITIVE_NUMBERS = ("lr",)
    _NON_NEGATIVE_NUMBERS = ("weight_decay", "lambda_edge", "lambda_adj")

    def check_hparams(self) -> None:
        """Refuse out-of-range settings at construction (one line each), before any training or sampling."""
        hp = self.hparams
        for key in self._POSITIVE_INTS + self._NON_NEGATIVE_INTS:
            if key in hp:
                _count(f"model.{key}", hp[key], minimum=1 if key in self._POSITIVE_INTS else 0)
        for key in self._POSITIVE_NUMBERS + self._NON_NEGATIVE_NUMBERS:
            value = hp.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or (
                    value <= 0 if key in self._POSITIVE_NUMBERS else value < 0):
                bound = "> 0" if key in self._POSITIVE_NUMBERS else ">= 0"
                raise ConfigError(f"model.{key}={value!r}: expected a number {bound}")
        if hp.get("sample_steps") is not None:
            steps = _count("model.sample_steps", hp["sample_steps"], minimum=1)
            top = self.max_sample_steps()
            if top is not None and steps > top:
                raise ConfigError(f"model.sample_steps={steps} exceeds T={top}")

    def sampling_plan(self, num_samples: int, steps: int | None = None, seed: int | None = None,
                      num_nodes: int | Sequence[int] | torch.Tensor | None = None,
                      batch_size: int | None = None) -> tuple[torch.Tensor, int | None, int]:
        """Check :meth:`generate`'s arguments before any work and draw the node counts.

        Returns:
            ``(counts [num_samples] long, steps or None, batch size)``.

        Raises:
            ConfigError: one line naming the argument, its value and what is allowed.
        """
        num_samples = _count("num_samples", num_samples, minimum=1)
        steps = _count("steps", steps, minimum=1) if steps is not None else self.hparams.get("sample_steps")
        top = self.max_sample_steps()
        if steps is not None and top is not None and steps > top:
            raise ConfigError(f"steps={steps} exceeds the model's T={top}; use 1..{top} reverse steps")
        if seed is not None:
            seed = _count("seed", seed, minimum=None)
        batch_size = _count("batch_size", batch_size if batch_size is not None else self.hparams.sample_batch_size,
                            minimum=1)
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        if num_nodes is None:
            counts = sample_num_nodes(self.node_count_dist.cpu(), num_samples, gen)
        else:
            try:
                counts = torch.as_tensor(num_nodes)
            except (TypeError, ValueError, RuntimeError):
                raise ConfigError(f"num_nodes={num_nodes!r}: expected an integer or {num_samples} integers") from None
            if counts.is_floating_point() or counts.dtype == torch.bool or counts.dim() > 1 or (
                    counts.dim() == 1 and counts.numel() != num_samples):
                raise ConfigError(f"num_nodes: expected an integer or {num_samples} integers (one per sample), "
                                  f"got {tuple(counts.shape)} values of type {counts.dtype}")
            counts = counts.long().expand(num_samples).clone()
        if int(counts.min()) < 1:
            raise ConfigError(f"num_nodes must be >= 1, got {int(counts.min())}")
        if int(counts.max()) > self.info.max_nodes:
            raise ConfigError(f"num_nodes {int(counts.max())} exceeds the model's maximum of "
                              f"{self.info.max_nodes} nodes (the largest training graph)")
        return counts, steps, batch_size

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

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Make this run's optimiser settings win over the ones saved in a resumed checkpoint.

        Lightning restores the optimiser state (learning rate and weight decay included) after this hook, from the
        same dict: rewriting its parameter groups here is what makes ``fit --ckpt_path C --model.lr X`` train at
        ``X``. (The learning-rate schedule itself is a function of the current hyper-parameters.)
        """
        lr, decay = self.hparams.get("lr"), self.hparams.get("weight_decay")
        for state in checkpoint.get("optimizer_states", []):
            for group in state.get("param_groups", []):
                if lr is not None and group.get("initial_lr"):  # keep the schedule's current factor
                    group["lr"] = float(lr) * group["lr"] / group["initial_lr"]
                    group["initial_lr"] = float(lr)
                elif lr is not None:
                    group["lr"] = float(lr)
                if decay is not None and "weight_decay" in group:
                    group["weight_decay"] = float(decay)
        for sched in checkpoint.get("lr_schedulers", []):
            if lr is not None and "base_lrs" in sched:
                sched["base_lrs"] = [float(lr)] * len(sched["base_lrs"])


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
        self.check_hparams()

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
        """Sample graphs; returns a :class:`~graphdiff.storage.GraphList` of class indices.

        Args:
            num_samples: how many graphs.
            steps: reverse steps (default ``T``).
            seed: make the draw reproducible (node counts and chain).
            num_nodes: a fixed size for every graph, or ``[num_samples]`` sizes; default: drawn from the
                training distribution.
            batch_size: graphs per batch (default ``sample_batch_size``).
        """
        counts, steps, batch_size = self.sampling_plan(num_samples, steps, seed, num_nodes, batch_size)
        was_training = self.training
        self.eval()
        try:
            return sample_many(self.denoiser, self.process, counts, batch_size=batch_size, steps=steps, seed=seed,
                               progress=progress)
        finally:
            self.train(was_training)

    def max_sample_steps(self) -> int:
        return self.process.T

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


def _count(name: str, value: Any, minimum: int | None) -> int:
    """``value`` as an int (bools, floats and text refused) that is at least ``minimum``."""
    if isinstance(value, bool) or isinstance(value, float) or not hasattr(value, "__index__"):
        raise ConfigError(f"{name}={value!r}: expected an integer")
    value = operator.index(value)
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value}: must be >= {minimum}")
    return value


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
