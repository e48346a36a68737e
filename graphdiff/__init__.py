"""graphdiff: graph generation with discrete and continuous diffusion models."""

from graphdiff.types import DenseGraph

__version__ = "0.1.0"

__all__ = ["DenseGraph", "__version__"]
