"""Lightning callbacks: exponential moving average of the weights; an always-current ``last.ckpt``."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, WeightAveraging
from torch.optim.swa_utils import get_ema_multi_avg_fn

from graphdiff.errors import ConfigError


class EMA(WeightAveraging):
    """Exponential moving average of the weights (DiGress and GDSS use decay 0.999).

    Validation, testing and saved checkpoints use the averaged weights; the raw weights are kept in
    the checkpoint under ``current_model_state`` so training resumes exactly.

    Args:
        decay: weight of the running average at each update.
        start_step: optimiser steps before averaging starts (the average is a copy until then).
    """

    def __init__(self, decay: float = 0.999, start_step: int = 0) -> None:
        if isinstance(decay, bool) or not isinstance(decay, float | int) or not 0.0 < decay < 1.0:
            raise ConfigError(f"EMA decay must be a number in (0, 1), got {decay!r}")
        if isinstance(start_step, bool) or not isinstance(start_step, int) or start_step < 0:
            raise ConfigError(f"EMA start_step must be an integer >= 0, got {start_step!r}")
        super().__init__(multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self.decay = decay
        self.start_step = start_step

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None and step_idx >= self.start_step


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
