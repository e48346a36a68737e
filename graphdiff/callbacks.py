"""Lightning callbacks: exponential moving average of the weights."""

from __future__ import annotations

from pytorch_lightning.callbacks import WeightAveraging
from torch.optim.swa_utils import get_ema_multi_avg_fn


class EMA(WeightAveraging):
    """Exponential moving average of the weights (DiGress and GDSS use decay 0.999).

    Validation, testing and saved checkpoints use the averaged weights; the raw weights are kept in
    the checkpoint under ``current_model_state`` so training resumes exactly.

    Args:
        decay: weight of the running average at each update.
        start_step: optimiser steps before averaging starts (the average is a copy until then).
    """

    def __init__(self, decay: float = 0.999, start_step: int = 0) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        super().__init__(multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self.decay = decay
        self.start_step = start_step

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None and step_idx >= self.start_step
