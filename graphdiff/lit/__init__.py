"""The Lightning layer: one shared :class:`GenerativeModel` and a thin module per model family.

* :class:`DiscreteDiffusionModel` (family ``discrete``): DiGress's discrete diffusion.
* :class:`ScoreSDEModel` (family ``sde``): GDSS's score SDEs.
* :class:`DiscreteFlowModel` (family ``flow``): DeFoG's discrete flow matching.
* :class:`PardModel` (family ``pard``): PARD's autoregressive block-wise diffusion.
* :class:`PropertyRegressor` (``regressor``): property prediction from noisy graphs (DiGress's regressor guidance)
  or clean ones (an oracle for evaluation).

Configs name them as ``graphdiff.lit.DiscreteDiffusionModel`` / ``ScoreSDEModel`` / ``DiscreteFlowModel`` /
``PardModel``; checkpoints rebuild only classes registered with :func:`register_model`.
"""

from graphdiff.lit.base import (
    GenerativeModel,
    GraphModel,
    lr_factor,
    model_families,
    register_model,
    registered_models,
)
from graphdiff.lit.discrete import DiscreteDiffusionModel
from graphdiff.lit.flow import DiscreteFlowModel
from graphdiff.lit.pard import PardModel
from graphdiff.lit.regressor import PropertyRegressor
from graphdiff.lit.sde import ScoreSDEModel

__all__ = [
    "DiscreteDiffusionModel",
    "DiscreteFlowModel",
    "GenerativeModel",
    "GraphModel",
    "PardModel",
    "PropertyRegressor",
    "ScoreSDEModel",
    "lr_factor",
    "model_families",
    "register_model",
    "registered_models",
]
