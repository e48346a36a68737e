"""Continuous score-based diffusion on graphs (GDSS, Jo et al., 2022) in the score_sde vocabulary.

* :mod:`graphdiff.sde.sdes`: forward SDEs (:class:`VPSDE`, :class:`VESDE`, :class:`subVPSDE`), their reverse,
  and graph-shaped noise.
* :mod:`graphdiff.sde.losses`: denoising score matching with GDSS's output convention and reduction.
* :mod:`graphdiff.sde.samplers`: Euler–Maruyama / reverse-diffusion predictors, Langevin corrector, S4 solver.
* :mod:`graphdiff.sde.process`: :class:`ScoreSDEProcess` and :class:`GraphEncoding` (DenseGraph <-> (x, adj)).
* :mod:`graphdiff.sde.correction`: GDSS's optional valency correction of generated molecules.

The LightningModule is :class:`graphdiff.lit.ScoreSDEModel`.

See ``docs/sde.md`` for the equations.
"""

from graphdiff.sde.correction import correct_valency
from graphdiff.sde.losses import GraphScoreMatchingLoss, call_network, output_to_score, score_matching_loss
from graphdiff.sde.process import GraphEncoding, ScoreSDEProcess, default_edge_values
from graphdiff.sde.samplers import (
    EulerMaruyamaPredictor,
    LangevinCorrector,
    ReverseDiffusionPredictor,
    SamplerSettings,
    pc_sample,
    s4_sample,
    sample_system,
)
from graphdiff.sde.sdes import (
    SDE,
    VESDE,
    VPSDE,
    ReverseSDE,
    build_sde,
    mask_adj,
    mask_nodes,
    node_noise,
    subVPSDE,
    symmetric_noise,
)

__all__ = [
    "SDE",
    "VESDE",
    "VPSDE",
    "EulerMaruyamaPredictor",
    "GraphEncoding",
    "GraphScoreMatchingLoss",
    "LangevinCorrector",
    "ReverseDiffusionPredictor",
    "ReverseSDE",
    "SamplerSettings",
    "ScoreSDEProcess",
    "build_sde",
    "call_network",
    "correct_valency",
    "default_edge_values",
    "mask_adj",
    "mask_nodes",
    "node_noise",
    "output_to_score",
    "pc_sample",
    "s4_sample",
    "sample_system",
    "score_matching_loss",
    "subVPSDE",
    "symmetric_noise",
]
