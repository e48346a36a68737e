"""Denoisers: the :class:`Denoiser` interface, DiGress's graph transformer and its extra features."""

from graphdiff.models.base import (
    Denoiser,
    GraphDims,
    available_denoisers,
    build_denoiser,
    denoiser_for_dataset,
    register_denoiser,
)
from graphdiff.models.features import (
    CycleFeatures,
    DiGressMolecularFeatures,
    ExtraFeatures,
    MolecularFeatures,
    SpectralFeatures,
    adjacency,
    connected_components,
    cycle_counts,
    formal_charge,
)
from graphdiff.models.transformer import (
    TRANSFORMER_PRESETS,
    GraphTransformer,
    GraphTransformerDenoiser,
    transformer_config,
)

__all__ = [
    "TRANSFORMER_PRESETS",
    "CycleFeatures",
    "DiGressMolecularFeatures",
    "Denoiser",
    "ExtraFeatures",
    "GraphDims",
    "GraphTransformer",
    "GraphTransformerDenoiser",
    "MolecularFeatures",
    "SpectralFeatures",
    "adjacency",
    "available_denoisers",
    "build_denoiser",
    "connected_components",
    "denoiser_for_dataset",
    "cycle_counts",
    "formal_charge",
    "register_denoiser",
    "transformer_config",
]
