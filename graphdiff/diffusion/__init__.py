"""DiGress' discrete diffusion: noise schedules, transition matrices and the process on dense graph batches."""

from graphdiff.diffusion.process import (
    DiscreteDiffusion,
    Predictor,
    cross_entropy_loss,
    marginalised_posterior_probs,
    posterior_per_clean_class,
    posterior_probs,
)
from graphdiff.diffusion.schedules import (
    SCHEDULES,
    CosineSchedule,
    CustomSchedule,
    LinearSchedule,
    NoiseSchedule,
    digress_cosine_betas,
    make_schedule,
)
from graphdiff.diffusion.transitions import (
    TRANSITIONS,
    AbsorbingTransition,
    LimitDistribution,
    MarginalTransition,
    Transition,
    TransitionMatrices,
    UniformTransition,
    keep_or_resample,
    make_transition,
)

__all__ = [
    "SCHEDULES",
    "TRANSITIONS",
    "AbsorbingTransition",
    "CosineSchedule",
    "CustomSchedule",
    "DiscreteDiffusion",
    "LimitDistribution",
    "LinearSchedule",
    "MarginalTransition",
    "NoiseSchedule",
    "Predictor",
    "Transition",
    "TransitionMatrices",
    "UniformTransition",
    "cross_entropy_loss",
    "digress_cosine_betas",
    "keep_or_resample",
    "make_schedule",
    "make_transition",
    "marginalised_posterior_probs",
    "posterior_per_clean_class",
    "posterior_probs",
]
