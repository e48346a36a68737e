"""The LightningModules every model shares: :class:`GraphModel` (settings, optimisation, checkpoints) and
:class:`GenerativeModel` (generation and evaluation by sampling).

A family subclasses :class:`GenerativeModel` and adds only what is its own: building its process and network from
its hyper-parameters, the training loss (``training_step``), its sampler settings (:meth:`sampler_config`) and its
:class:`~graphdiff.generation.GraphSampler` (:meth:`graph_sampler`). Everything that uses a model — ``graphdiff
sample / predict / test``, validation-time sampling, pictures, the Python API and
:class:`~graphdiff.pipeline.GraphGenerator` — goes through :meth:`GenerativeModel.generate` and nothing else.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Timer
from pytorch_lightning.trainer.states import TrainerFn

import graphdiff
from graphdiff.compile import compile_network
from graphdiff.conditioning import drop_conditions
from graphdiff.errors import ConfigError
from graphdiff.generation import Generation, GraphSampler, SamplerConfig, generate, sample_num_nodes
from graphdiff.info import DatasetInfo
from graphdiff.io import atomic_write
from graphdiff.log import get_logger
from graphdiff.models.guidance import ClassifierFreeGuidance, RegressorGuidance
from graphdiff.storage import GraphList
from graphdiff.types import DenseGraph, one_hot_graph

log = get_logger(__name__)

_MODELS: dict[str, type[GraphModel]] = {}

#: ``test_samples`` spelled this way samples as many graphs as the test split (GDSS's protocol).
TEST_SPLIT = "test"


def register_model(cls: type[GraphModel]) -> type[GraphModel]:
    """Class decorator: allow checkpoints and stored configurations to rebuild ``cls``.

    A checkpoint names its model class; graphdiff builds only registered classes from it (its own families, and
    subclasses a user registers explicitly), never an arbitrary importable callable. The class is found by its
    qualified name, its bare name and its ``family``.
    """
    if not (isinstance(cls, type) and issubclass(cls, GraphModel)):
        raise TypeError(f"register_model expects a GraphModel subclass, got {cls!r}")
    _MODELS[f"{cls.__module__}.{cls.__qualname__}"] = cls
    _MODELS[cls.__qualname__] = cls
    if cls.family and cls.family not in _MODELS:
        _MODELS[cls.family] = cls
    return cls


def registered_models() -> dict[str, type[GraphModel]]:
    """Registered model classes by qualified name, bare class name and family (graphdiff's own always included)."""
    import graphdiff.lit  # noqa: F401  (registers graphdiff's families)

    return dict(_MODELS)


def model_class_path(cls: type[GraphModel]) -> str:
    """The import path a config names ``cls`` by: ``graphdiff.lit.<Class>`` for graphdiff's own families."""
    import graphdiff.lit

    if getattr(graphdiff.lit, cls.__qualname__, None) is cls:
        return f"graphdiff.lit.{cls.__qualname__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def model_families() -> dict[str, type[GenerativeModel]]:
    """``{family: class}`` of the registered generative families (``discrete``, ``sde``, ``flow``, ...)."""
    return {k: v for k, v in registered_models().items() if k == v.family and issubclass(v, GenerativeModel)}


class GraphModel(pl.LightningModule):
    """Base of graphdiff's LightningModules: built from a dataset info, with checked settings, the optimiser and its
    schedule, opt-in ``torch.compile`` and checkpoints that name their class and configuration.

    :class:`GenerativeModel` (the model families) and :class:`~graphdiff.lit.regressor.PropertyRegressor` (the
    property regressor of DiGress's guidance) derive from it; ``graphdiff fit / validate / test`` train either.
    """

    #: the family's name (``discrete``, ``sde``, ...): ``gd.fit(..., family=...)`` and sampler settings use it.
    family: ClassVar[str] = ""
    info: DatasetInfo

    #: hyper-parameters that fix the network's shapes or the noise process: a checkpoint cannot be resumed,
    #: tested or sampled with other values (subclasses extend this).
    structural_hparams: tuple[str, ...] = ()
    #: optimiser settings whose saved state cannot follow a change (refused when resuming ``fit``).
    optimizer_state_hparams: tuple[str, ...] = ("amsgrad",)
    #: keys of the ``model`` (network) settings that may change on a checkpoint: they do not change the weights.
    runtime_network_keys: tuple[str, ...] = ("dropout", "checkpoint", "recompute_edges")

    @property
    def network(self) -> torch.nn.Module:
        """The model's network, ``(graph, t) -> graph`` (what :meth:`GenerativeModel.guided_network` wraps)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ torch.compile (opt-in: ``compile: true``)
    def setup(self, stage: str) -> None:
        self.compile_networks()

    def compile_networks(self) -> None:
        """With the hyper-parameter ``compile`` true, compile each network (a child module with parameters) in
        place, once (:func:`graphdiff.compile.compile_network`: eager fallback, ``state_dict`` keys unchanged).
        Runs at the trainer's ``setup`` and before sampling."""
        if self.hparams.get("compile"):
            for child in self.children():
                if next(child.parameters(), None) is not None:
                    compile_network(child)

    # ------------------------------------------------------------------ settings checked at construction
    _POSITIVE_INTS = ("T", "eval_samples", "sample_batch_size", "test_folds")
    _NON_NEGATIVE_INTS = ("eval_every_n_epochs", "warmup_steps")
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
        dropout = hp.get("condition_dropout", 0.0)
        if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout <= 1:
            raise ConfigError(f"model.condition_dropout={dropout!r}: expected a probability in [0, 1]")
        for key in ("compile", "sample_with_ema"):
            if not isinstance(hp.get(key, False), bool):
                raise ConfigError(f"model.{key}={hp[key]!r}: expected true or false")
        samples = hp.get("test_samples", 0)
        if samples != TEST_SPLIT and (isinstance(samples, bool | float) or not hasattr(samples, "__index__")
                                      or operator.index(samples) < 0):
            raise ConfigError(f"model.test_samples={samples!r}: expected an integer >= 0, or {TEST_SPLIT!r} for as "
                              "many graphs as the test split")

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        """AdamW (``optimizer: adamw``, decoupled weight decay) or Adam (``adam``, L2 weight decay, GDSS), with a
        linear warm-up and a ``constant``, ``cosine`` or ``exponential`` (per epoch, ``lr_decay``) schedule."""
        hp = self.hparams
        cls = torch.optim.Adam if hp.get("optimizer", "adamw") == "adam" else torch.optim.AdamW
        opt = cls(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay, amsgrad=hp.amsgrad)
        warmup, schedule = hp.warmup_steps, hp.lr_schedule
        if warmup == 0 and schedule == "constant":
            return opt

        def factor(step: int) -> float:
            if schedule == "exponential":  # GDSS: ExponentialLR stepped every epoch, after the warm-up ramp
                return lr_factor(self, step, warmup, "constant") * hp.lr_decay ** self.current_epoch
            return lr_factor(self, step, warmup, schedule)

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        meta = checkpoint.setdefault("graphdiff", {})
        meta["version"] = graphdiff.__version__
        meta["model_class"] = model_class_path(type(self))
        meta["family"] = self.family
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


class GenerativeModel(GraphModel):
    """Base of graphdiff's model families: built from a dataset info, generates graphs through one interface.

    Subclasses take ``dataset_info`` as their first argument (the CLI links it from the data module), set
    ``family``, and implement :meth:`sampler_config` and :meth:`graph_sampler`.
    """

    # ------------------------------------------------------------------ the family's part
    #: whether :meth:`graph_sampler` takes ``steering`` (regressor guidance).
    takes_regressor_guidance: ClassVar[bool] = False

    #: the family's sampler settings class, for families whose ``sampler`` hyper-parameter holds its fields.
    sampler_settings: ClassVar[type[SamplerConfig] | None] = None

    def sampler_config(self) -> SamplerConfig:
        """The sampler settings this model samples with by default: ``sampler_settings`` built from the ``sampler``
        hyper-parameter, with ``sample_steps`` (when set) as its number of steps."""
        if self.sampler_settings is None:
            raise NotImplementedError
        try:
            config = self.sampler_settings(**(self.hparams.get("sampler") or {}))
        except TypeError as exc:
            raise ConfigError(f"sampler: {exc}") from None
        return config.with_steps(self.hparams.get("sample_steps"))

    def evaluate_batch(self, batch: DenseGraph, stage: str) -> None:
        """Log the losses of one validation or test batch under ``<stage>/``."""
        raise NotImplementedError

    def validation_step(self, batch: DenseGraph, batch_idx: int) -> None:
        self.evaluate_batch(batch, "val")

    def test_step(self, batch: DenseGraph, batch_idx: int) -> None:
        self.evaluate_batch(batch, "test")

    def graph_sampler(self, config: SamplerConfig, postprocess: bool = True,
                      network: torch.nn.Module | None = None,
                      steering: torch.nn.Module | None = None) -> GraphSampler:
        """The family's reverse process with this model's network bound, for ``config``.

        Args:
            config: sampler settings of this family.
            postprocess: apply the family's post-processing of final samples (e.g. a valency correction), when the
                model is configured with one.
            network: the network to sample with (default :attr:`network`; :meth:`generate` passes it guided).
            steering: regressor guidance (:meth:`regressor_guidance`); only the discrete family takes it.
        """
        raise NotImplementedError

    def sizes_sampler(self, config: SamplerConfig, sizes_given: bool) -> SamplerConfig:
        """The sampler settings to use when the caller fixed the node counts (``sizes_given``) or not: a family
        whose graphs choose their own size (PARD) switches to the sizes asked for; the others take them as they
        are."""
        return config

    def max_sample_steps(self) -> int | None:
        """The largest ``steps`` the sampler accepts (``None``: any number)."""
        return None

    def check_hparams(self) -> None:
        super().check_hparams()
        if self.hparams.get("sample_steps") is not None:
            steps = _count("model.sample_steps", self.hparams["sample_steps"], minimum=1)
            top = self.max_sample_steps()
            if top is not None and steps > top:
                raise ConfigError(f"model.sample_steps={steps} exceeds T={top}")

    def evaluation_variants(self, graphs: GraphList) -> dict[str, GraphList]:
        """The sample sets scored at validation and test, by log-prefix suffix (``""``: the raw samples)."""
        return {"": graphs}

    @property
    def molecule_decoding(self) -> str:
        """How this model's samples become molecules (:data:`graphdiff.chem.MOLECULE_DECODINGS`): the ``decoding``
        hyper-parameter of a family that takes one, else ``"graphdiff"``."""
        return self.hparams.get("decoding") or "graphdiff"

    # ------------------------------------------------------------------ which weights a checkpoint gives
    def checkpoint_weights(self, checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The weights this model samples and tests with from ``checkpoint``: its raw (not averaged) weights
        (``current_model_state``, kept by the EMA callback) when ``sample_with_ema`` is false and the checkpoint
        holds them, else its ``state_dict`` (the averaged weights of a run with EMA)."""
        raw = checkpoint.get("current_model_state")
        if not self.hparams.get("sample_with_ema", True) and isinstance(raw, dict):
            return raw
        return checkpoint["state_dict"]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Outside training (``test``, ``validate``, ``predict`` from a checkpoint) load :meth:`checkpoint_weights`;
        a resumed ``fit`` leaves both sets of weights to the EMA callback."""
        super().on_load_checkpoint(checkpoint)
        if self._trainer is None or self._trainer.state.fn != TrainerFn.FITTING:
            checkpoint["state_dict"] = self.checkpoint_weights(checkpoint)

    # ------------------------------------------------------------------ generation (one path for every family)
    @torch.no_grad()
    def generate(self, num_samples: int, steps: int | None = None, seed: int | None = None,
                 num_nodes: int | Sequence[int] | torch.Tensor | None = None, batch_size: int | None = None,
                 progress: bool | None = None, sampler: SamplerConfig | None = None,
                 postprocess: bool = True, condition: Condition | None = None,
                 guidance: Guidance | None = None, regressor: GraphModel | None = None,
                 regressor_scale: float = 100.0) -> GraphList:
        """Sample graphs; returns a :class:`~graphdiff.storage.GraphList` of class indices.

        Args:
            num_samples: how many graphs.
            steps: reverse steps (default: the sampler settings', else the family's full chain).
            seed: make the draw reproducible (node counts and chains, for a given batch size).
            num_nodes: a fixed size for every graph, or ``[num_samples]`` sizes; default: drawn from the
                training distribution.
            batch_size: graphs per batch (default ``sample_batch_size``).
            progress: progress bar over batches (``None``: when stderr is a terminal).
            sampler: sampler settings of this family (default :meth:`sampler_config`).
            postprocess: apply the family's post-processing (see :meth:`graph_sampler`).
            condition: targets of a conditional model (see ``docs/conditioning.md``): ``{"qed": 0.9}`` for every
                graph, one mapping per graph, or a ``[num_samples, P]`` tensor in the order of
                ``info.conditioning.names`` (``NaN``: no target for that property). Default: none (unconditional).
            guidance: classifier-free guidance scale: one number (0: unconditional, 1: conditional, > 1: guided;
                default 1), or ``{property: scale}`` for compositional guidance.
            regressor: a :class:`~graphdiff.lit.regressor.PropertyRegressor` trained on noisy graphs: DiGress's
                regressor guidance of this (unconditional, discrete) model towards ``condition``, which then names
                the regressor's properties.
            regressor_scale: ``lambda`` of the regressor guidance (DiGress: 100 for QM9 mu, 300 for HOMO).
        """
        return self.generate_with_chain(num_samples, 0, steps, seed, num_nodes, batch_size, progress, sampler,
                                        postprocess, condition, guidance, regressor, regressor_scale).graphs

    @torch.no_grad()
    def generate_with_chain(self, num_samples: int, frames: int = 8, steps: int | None = None,
                            seed: int | None = None, num_nodes: int | Sequence[int] | torch.Tensor | None = None,
                            batch_size: int | None = None, progress: bool | None = None,
                            sampler: SamplerConfig | None = None, postprocess: bool = True,
                            condition: Condition | None = None, guidance: Guidance | None = None,
                            regressor: GraphModel | None = None, regressor_scale: float = 100.0) -> Generation:
        """As :meth:`generate`, also recording ``frames`` snapshots of every chain (for pictures)."""
        counts, steps, batch_size = self.sampling_plan(num_samples, steps, seed, num_nodes, batch_size)
        steering = None
        if regressor is not None:
            steering, conditions = self.regressor_guidance(regressor, condition, num_samples, regressor_scale)
        else:
            conditions = self.encode_targets(condition, num_samples)
        self.compile_networks()
        config = self.sizes_sampler(self.resolve_sampler(sampler).with_steps(steps), num_nodes is not None)
        graph_sampler = self.graph_sampler(config, postprocess=postprocess,  # built (and checked) before any work
                                           network=self.guided_network(guidance), steering=steering)
        was_training = self.training
        self.eval()
        try:
            return generate(graph_sampler, counts, batch_size, device=self.device, seed=seed, progress=progress,
                            frames=frames, conditions=conditions)
        finally:
            self.train(was_training)

    # ------------------------------------------------------------------ conditions
    def conditional_batch(self, batch: DenseGraph, training: bool) -> DenseGraph:
        """``batch`` with its raw property values ``y [B, P]`` replaced by their encoding ``[B, C]``; in training,
        each graph's encoding is dropped (zeroed) with probability ``condition_dropout``."""
        conditioning = self.info.conditioning
        if not len(conditioning):
            return batch
        encoded = conditioning.encode(batch.y).to(batch.X.dtype)
        if training:
            encoded = drop_conditions(encoded, float(self.hparams.get("condition_dropout", 0.0)))
        return DenseGraph(batch.X, batch.E, encoded, batch.node_mask)

    def encode_targets(self, condition: Condition | None, num_samples: int) -> torch.Tensor | None:
        """``[num_samples, C]`` encoded targets for :meth:`generate` (``None``: unconditional)."""
        conditioning = self.info.conditioning
        if condition is None:
            if not len(conditioning):
                return None
            return torch.zeros(num_samples, conditioning.width)  # all-zero: no condition
        return conditioning.encode(conditioning.targets(condition, num_samples))

    def guided_network(self, guidance: Guidance | None) -> torch.nn.Module:
        """:attr:`network`, with classifier-free guidance at scale ``guidance`` for a conditional model."""
        conditioning = self.info.conditioning
        if not len(conditioning):
            if guidance is not None:
                raise ConfigError("guidance needs a conditional model (trained with data.conditions)")
            return self.network
        if guidance is None:
            return ClassifierFreeGuidance(self.network, conditioning.width, 1.0)
        if isinstance(guidance, dict):
            scales = [(conditioning.columns(name), _scale(f"guidance[{name}]", s)) for name, s in guidance.items()]
            return ClassifierFreeGuidance(self.network, conditioning.width, scales)
        return ClassifierFreeGuidance(self.network, conditioning.width, _scale("guidance", guidance))

    def regressor_guidance(self, regressor: GraphModel, condition: Condition | None, num_samples: int,
                           scale: float) -> tuple[RegressorGuidance, torch.Tensor]:
        """DiGress's regressor guidance of this model by ``regressor`` towards ``condition``, checked before any
        work: the steering module and the ``[num_samples, P]`` targets in the properties' units (``NaN``: none).

        Raises:
            ConfigError: not a property regressor, a conditional model, no targets, a scale that is not a finite
                number >= 0, or a regressor of other data or another noise process.
        """
        from graphdiff.lit.regressor import PropertyRegressor

        if not isinstance(regressor, PropertyRegressor):
            raise ConfigError(f"regressor: expected a PropertyRegressor, got {type(regressor).__name__}")
        if not self.takes_regressor_guidance:
            raise ConfigError(f"regressor guidance (DiGress) is for the discrete family; a {self.family!r} model "
                              "is guided by a condition it was trained on (classifier-free guidance)")
        if len(self.info.conditioning):
            raise ConfigError(f"regressor guidance steers an unconditional model; this one is conditioned on "
                              f"{', '.join(self.info.conditioning.names)}: use its classifier-free guidance")
        if condition is None:
            raise ConfigError(f"regressor guidance needs targets for {', '.join(regressor.names)}, e.g. "
                              f"--condition {regressor.names[0]}=VALUE")
        lam = _scale("regressor_scale", scale)
        if lam < 0:
            raise ConfigError(f"regressor_scale={lam:g}: expected a number >= 0")
        if (regressor.info.node_types, regressor.info.edge_types) != (self.info.node_types, self.info.edge_types):
            raise ConfigError(f"the regressor was trained on node types {regressor.info.node_types} and edge types "
                              f"{regressor.info.edge_types}, the model on {self.info.node_types} and "
                              f"{self.info.edge_types}")
        for key in ("schedule", "schedule_options", "transition"):
            if key in self.hparams and self.hparams[key] != regressor.hparams[key]:
                raise ConfigError(f"the regressor's noise process differs from the model's ({key}: "
                                  f"{regressor.hparams[key]!r} vs {self.hparams[key]!r}); train it with the model's")
        targets = regressor.info.conditioning.targets(condition, num_samples).float()
        regressor.to(self.device).eval()
        return RegressorGuidance(regressor, regressor.mean, regressor.std, lam), targets

    def resolve_sampler(self, sampler: SamplerConfig | dict[str, Any] | None) -> SamplerConfig:
        """``sampler`` (settings, or their dict), checked to be this family's; default :meth:`sampler_config`."""
        if sampler is None:
            return self.sampler_config()
        if isinstance(sampler, dict):
            sampler = SamplerConfig.from_dict(sampler)
        if not isinstance(sampler, SamplerConfig) or sampler.family != self.family:
            got = getattr(sampler, "family", type(sampler).__name__)
            raise ConfigError(f"sampler settings of the {got!r} family do not fit a {self.family!r} model; "
                              f"use {type(self.sampler_config()).__name__}")
        return sampler

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
        if steps is not None:
            steps = _count("steps", steps, minimum=1)
            top = self.max_sample_steps()
            if top is not None and steps > top:
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

    def predict_step(self, batch: DenseGraph, batch_idx: int) -> GraphList:
        """One generated graph per graph of ``batch``, with the same node count (``graphdiff predict``).

        Seeded by the batch index and rank, so a prediction run is reproducible.
        """
        counts = batch.node_mask.sum(dim=1).cpu()
        seed = 1_000_003 * self.global_rank + batch_idx
        return self.generate(len(counts), seed=seed, num_nodes=counts)

    # ------------------------------------------------------------------ sampling-based evaluation
    def on_validation_epoch_end(self) -> None:
        every = self.hparams.get("eval_every_n_epochs", 0)
        if not every or self.trainer.sanity_checking or (self.current_epoch + 1) % every:
            return
        self.sample_and_score("val", self.hparams.eval_samples)

    def on_test_epoch_end(self) -> None:
        total = self.test_sample_count()
        if total:
            self.sample_and_score("test", total, folds=self.hparams.get("test_folds", 1))

    def test_sample_count(self) -> int:
        """How many graphs the test samples: ``test_samples``, where ``"test"`` is the size of the data module's
        test split (GDSS samples as many graphs as its test set)."""
        samples = self.hparams.get("test_samples", 0)
        if samples != TEST_SPLIT:
            return operator.index(samples)
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None:
            raise ConfigError(f"model.test_samples={TEST_SPLIT!r} needs the data module's test split; give a number")
        return len(datamodule.data.split("test"))

    def sample_and_score(self, stage: str, total: int, folds: int = 1) -> dict[str, Any]:
        """Sample ``total`` graphs split over the ranks, gather them, score every variant on rank 0 and log its
        metrics under ``<stage><suffix>/`` (see :meth:`evaluation_variants`); pictures of the samples and of one
        chain go to the logger.

        With ``folds`` > 1 this is repeated with ``folds`` independent draws of ``total`` graphs: each metric is
        logged as its mean over the draws, and its sample standard deviation as ``<name>_std``.

        Returns:
            The metrics of the raw samples, and of each other variant under ``<suffix without _>/<name>``.
        """
        world, rank = self.trainer.world_size, self.global_rank
        local = -(-total // world)
        draws: list[dict[str, dict[str, Any]]] = []
        sizes: dict[str, int] = {}
        for fold in range(folds):
            pictures = fold == 0 and self.trainer.is_global_zero
            result = self.generate_with_chain(local, frames=8 if pictures else 0,
                                              seed=1000 * self.current_epoch + world * fold + rank,
                                              postprocess=False)
            graphs = result.graphs
            if world > 1:
                graphs = _gather_graphs(self, graphs)
            graphs = graphs.subset(range(min(total, len(graphs))))
            variants = self.evaluation_variants(graphs)
            sizes = {suffix: len(variant) for suffix, variant in variants.items()}
            draws.append({suffix: self._score(variant, stage) for suffix, variant in variants.items()})
            if fold == 0:
                folder = self.trainer.log_dir or self.trainer.default_root_dir  # a collective call: every rank
                if pictures:
                    self._log_pictures(stage, graphs, result.chain, Path(folder) / "samples")
        metrics: dict[str, Any] = {}
        for suffix, size in sizes.items():
            summary = {"num_samples": float(size), **fold_summary([draw[suffix] for draw in draws])}
            if self.trainer.is_global_zero:
                self.log_dict({f"{stage}{suffix}/{k}": float(v) for k, v in summary.items() if _is_number(v)},
                              rank_zero_only=True, batch_size=1)
            metrics.update(summary if not suffix else {f"{suffix.lstrip('_')}/{k}": v for k, v in summary.items()})
        return metrics

    def _score(self, graphs: GraphList, stage: str) -> dict[str, Any]:
        """On rank 0: the dataset's metrics of ``graphs`` against the ``stage`` split (other ranks: none)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if not self.trainer.is_global_zero or datamodule is None:
            return {}
        from graphdiff.evaluation import FAST_MOLECULE_METRICS, evaluate_generated

        chosen = self.hparams.get("eval_metrics")
        if stage == "val" and chosen is None and self.info.kind == "molecule":
            chosen = FAST_MOLECULE_METRICS  # FCD / NSPDK / MOSES metrics are for the final test
        return evaluate_generated(graphs, self.info, datamodule.data, reference_split=stage,
                                  metrics=chosen if stage == "val" else None, decoding=self.molecule_decoding)

    def _log_pictures(self, stage: str, graphs: GraphList, chain: list[tuple[str, GraphList]], folder: Path) -> None:
        """A grid of the samples and a strip of the first chain: to the logger when it takes images (TensorBoard,
        or any logger with ``log_image``), else as PNG files in ``folder`` (``<log dir>/samples/``)."""
        from graphdiff.pictures import chain_png, samples_png

        try:
            images = {"samples": samples_png(graphs, self.info)}
            if chain:
                images["chain"] = chain_png([(label, frame.subset([0])) for label, frame in chain], self.info)
        except Exception as exc:  # noqa: BLE001 - a picture must never stop training
            log.warning("could not draw the %s samples (%s: %s)", stage, type(exc).__name__, exc)
            return
        tag = f"epoch={self.current_epoch}-step={self.global_step}"
        for logger in self.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(logger, "log_image"):
                for name, png in images.items():
                    logger.log_image(key=f"{stage}/{name}", images=[_decode_png(png)], step=self.global_step)
                return
            if experiment is not None and hasattr(experiment, "add_image"):
                for name, png in images.items():
                    experiment.add_image(f"{stage}/{name}", _decode_png(png), self.global_step, dataformats="HWC")
                return
        for name, png in images.items():
            with atomic_write(folder / f"{stage}-{name}-{tag}.png", "wb") as f:
                f.write(png)



def fold_summary(draws: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The metrics of several draws as one: each metric that is a number in every draw becomes its mean, with the
    sample standard deviation (``n - 1``) under ``<name>_std``; any other value is the first draw's that is not a
    number (``None`` where some draw could not compute it). One draw is returned as it is."""
    if len(draws) == 1:
        return dict(draws[0])
    summary: dict[str, Any] = {}
    for key in draws[0]:
        values = [draw.get(key) for draw in draws]
        if all(_is_real(v) for v in values):
            mean = math.fsum(values) / len(values)
            summary[key] = mean
            summary[f"{key}_std"] = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))
        else:
            summary[key] = next(v for v in values if not _is_real(v))
    return summary


def lr_factor(module: pl.LightningModule, step: int, warmup: int, schedule: str) -> float:
    """Learning-rate multiplier at optimiser step ``step``: linear warm-up over ``warmup`` steps, then constant
    (``"constant"``) or a cosine decay to 0 (``"cosine"``) over the module's trainer's remaining steps, or, when
    training is bounded by time alone (``max_time`` with no step or epoch limit), over the time budget (the
    trainer is only read then)."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    trainer = module.trainer
    total = trainer.estimated_stepping_batches
    if math.isfinite(total):
        total = max(total - warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * min(step - warmup, total) / total))
    return 0.5 * (1 + math.cos(math.pi * _time_budget_fraction(trainer)))


def _time_budget_fraction(trainer: pl.Trainer) -> float:
    """The fraction of its ``max_time`` the trainer has trained, in ``[0, 1]``; resumed runs count the time before."""
    for callback in trainer.callbacks:
        if isinstance(callback, Timer) and callback.time_remaining() is not None:
            elapsed = callback.time_elapsed()
            budget = elapsed + callback.time_remaining()
            return min(max(elapsed / budget, 0.0), 1.0) if budget > 0 else 1.0
    raise ConfigError("lr_schedule: cosine needs a length of training: trainer.max_steps, trainer.max_epochs or "
                      "trainer.max_time")


Condition = dict[str, float] | Sequence[dict[str, float]] | torch.Tensor
Guidance = float | dict[str, float]


def _scale(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name}={value!r}: expected a finite number")
    return float(value)


def _count(name: str, value: Any, minimum: int | None) -> int:
    """``value`` as an int (bools, floats and text refused) that is at least ``minimum``."""
    if isinstance(value, bool) or isinstance(value, float) or not hasattr(value, "__index__"):
        raise ConfigError(f"{name}={value!r}: expected an integer")
    value = operator.index(value)
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value}: must be >= {minimum}")
    return value


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_real(value) and math.isfinite(value)


def _decode_png(png: bytes):
    """``[H, W, 3]`` uint8 array of a PNG (for loggers that take arrays)."""
    import io

    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


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
