"""The Lightning layer: one shared :class:`GenerativeModel` and a thin module per model family.

* :class:`DiscreteDiffusionModel` (family ``discrete``): DiGress's discrete diffusion.
* :class:`ScoreSDEModel` (family ``sde``): GDSS's score SDEs.
* :class:`DiscreteFlowModel` (family ``flow``): DeFoG's discrete flow matching.

Configs name them as ``graphdiff.lit.DiscreteDiffusionModel`` / ``ScoreSDEModel`` / ``DiscreteFlowModel``; checkpoints
rebuild only classes registered with :func:`register_model`.
"""

from graphdiff.lit.base import GenerativeModel, lr_factor, model_families, register_model, registered_models
from graphdiff.lit.discrete import DiscreteDiffusionModel
from graphdiff.lit.flow import DiscreteFlowModel
from graphdiff.lit.sde import ScoreSDEModel

__all__ = [
    "DiscreteDiffusionModel",
    "DiscreteFlowModel",
    "GenerativeModel",
    "ScoreSDEModel",
    "lr_factor",
    "model_families",
    "register_model",
    "registered_models",
]
