"""Lightning callbacks: exponential moving average of the weights; an always-current ``last.ckpt``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, WeightAveraging
from torch.optim.swa_utils import get_ema_multi_avg_fn

from graphdiff.errors import ConfigError


class EMA(WeightAveraging):
    """Exponential moving average of the weights (DiGress and GDSS use decay 0.999).

    Validation (losses and samples), testing and saved checkpoints use the averaged weights; the raw weights are
    kept in the checkpoint under ``current_model_state`` (also the one written when training ends), so training
    resumes exactly and a model can sample from them. A model whose hyper-parameter ``sample_with_ema`` is false (GDSS's
    ``sample.use_ema: False``) samples from the raw weights instead: in validation-time sampling, after training
    ends (its test) and when loaded from a checkpoint.

    Args:
        decay: weight of the running average at each update.
        start_step: optimiser steps before averaging starts (the average is a copy until then).
        warmup: GDSS's schedule (``utils/ema.py``): the average starts at the initial weights and update ``n``
            (1, 2, ...; one per optimiser step) uses the decay ``min(decay, (1 + n) / (10 + n))``. Off: the first
            update copies the weights and every later one uses ``decay``.
    """

    def __init__(self, decay: float = 0.999, start_step: int = 0, warmup: bool = False) -> None:
        if isinstance(decay, bool) or not isinstance(decay, float | int) or not 0.0 < decay < 1.0:
            raise ConfigError(f"EMA decay must be a number in (0, 1), got {decay!r}")
        if isinstance(start_step, bool) or not isinstance(start_step, int) or start_step < 0:
            raise ConfigError(f"EMA start_step must be an integer >= 0, got {start_step!r}")
        if not isinstance(warmup, bool):
            raise ConfigError(f"EMA warmup must be true or false, got {warmup!r}")
        if warmup and start_step:
            raise ConfigError(f"EMA warmup (GDSS) averages from the initial weights on; it takes no start_step "
                              f"(got {start_step})")
        super().__init__(multi_avg_fn=warmup_ema_update(decay) if warmup else get_ema_multi_avg_fn(decay),
                         use_buffers=True)
        self.decay = decay
        self.start_step = start_step
        self.warmup = warmup
        self._raw_state: dict[str, torch.Tensor] | None = None
        self._showing_average = False

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None and step_idx >= self.start_step

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "fit":
            self._raw_state = None
            if self.warmup:  # the initial weights count as the first average: update n then sees n_averaged == n
                self._average_model.n_averaged.fill_(1)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_epoch_start(trainer, pl_module)
        self._showing_average = self._average_model is not None

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning runs this before the model's own hook, which samples: the averaged weights stay in place until
        # the validation ends, unless the model samples from its raw weights.
        if self._showing_average and not samples_with_ema(pl_module):
            self._show_raw(pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._showing_average:
            self._show_raw(pl_module)

    def _show_raw(self, pl_module: pl.LightningModule) -> None:
        self._swap_models(pl_module)
        self._showing_average = False

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Put the averaged weights into the model (unless it samples from its raw weights), keeping the raw ones
        for the checkpoints written afterwards."""
        if samples_with_ema(pl_module):
            self._raw_state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
            super().on_train_end(trainer, pl_module)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        if self._raw_state is not None and self._average_model is not None:
            checkpoint["current_model_state"] = self._raw_state


def samples_with_ema(pl_module: pl.LightningModule) -> bool:
    """Whether ``pl_module`` samples from the averaged weights (its ``sample_with_ema``; default true)."""
    return bool(getattr(pl_module, "hparams", {}).get("sample_with_ema", True))


def warmup_ema_update(decay: float) -> Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], None]:
    """GDSS's EMA update as an ``AveragedModel`` ``multi_avg_fn``: with ``n`` the averages so far (the initial
    weights counting as the first), the decay is ``min(decay, (1 + n) / (10 + n))``."""

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        n = int(num_averaged)
        get_ema_multi_avg_fn(min(decay, (1 + n) / (10 + n)))(averaged, current, num_averaged)

    return update


class LastCheckpoint(Callback):
    """Keep ``last.ckpt`` up to date every ``every_n_train_steps`` optimiser steps and when training ends.

    Lightning's ``ModelCheckpoint`` saves at validation ends only, so a run stopped before its first validation (or
    whose validation interval is longer than the run) would leave nothing to resume from. graphdiff adds this
    callback to every ``graphdiff fit`` and :func:`graphdiff.api.fit` trainer.

    Args:
        every_n_train_steps: save interval in optimiser steps (``0``: only when training ends).
        dirpath: where ``last.ckpt`` goes (default: the trainer's ``ModelCheckpoint`` directory, else
            ``<log dir>/checkpoints``).
    """

    FILENAME = "last.ckpt"

    def __init__(self, every_n_train_steps: int = 200, dirpath: str | None = None) -> None:
        n = every_n_train_steps
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(f"LastCheckpoint.every_n_train_steps must be an integer >= 0, got {n!r}")
        self.every_n_train_steps = every_n_train_steps
        self.dirpath = dirpath
        self._saved_step = -1

    def path(self, trainer: pl.Trainer) -> Path:
        """Where ``last.ckpt`` is written."""
        if self.dirpath is not None:
            return Path(self.dirpath) / self.FILENAME
        ckpt = trainer.checkpoint_callback
        if ckpt is not None and getattr(ckpt, "dirpath", None):
            return Path(ckpt.dirpath) / self.FILENAME
        return Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints" / self.FILENAME

    def _save(self, trainer: pl.Trainer) -> None:
        if trainer.global_step == self._saved_step or trainer.sanity_checking:
            return
        path = self.path(trainer)
        trainer.save_checkpoint(path, weights_only=False)  # the full state: resumable
        self._saved_step = trainer.global_step
        # A ModelCheckpoint with save_last in the same folder would take this file for someone else's and write
        # last-v1.ckpt next to it: tell it the file is its own last checkpoint.
        for callback in trainer.checkpoint_callbacks:
            if getattr(callback, "save_last", False) and Path(getattr(callback, "dirpath", "") or "") == path.parent:
                callback.last_model_path = str(path)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args, **kwargs) -> None:
        n = self.every_n_train_steps
        if n and trainer.global_step > 0 and trainer.global_step % n == 0:
            self._save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save(trainer)
