"""Evaluation metrics of generated graphs and molecules, matching the reference implementations.

Entry points: :func:`evaluate_graphs` (MMD² of degree / clustering / orbit / spectral / wavelet statistics under
the ``spectre`` or ``gdss`` protocol, validity, uniqueness, novelty, V.U.N.), :func:`evaluate_molecules`
(validity variants, uniqueness, novelty, stability, FCD, NSPDK, MOSES-style metrics), :func:`evaluate_folds`
(mean ± std over folds), and the reusable :class:`GraphEvaluator` / :class:`MoleculeEvaluator`. See
docs/metrics.md for the definitions and how the papers differ.
"""

from __future__ import annotations

from typing import Any

from graphdiff.metrics.evaluate import (
    PROTOCOLS,
    GraphEvaluator,
    MMDSpec,
    evaluate_folds,
    evaluate_graphs,
    evaluate_molecules,
    to_networkx,
)
from graphdiff.metrics.mmd import mmd_squared

__all__ = [
    "PROTOCOLS",
    "GraphEvaluator",
    "MMDSpec",
    "MoleculeEvaluator",
    "evaluate_folds",
    "evaluate_graphs",
    "evaluate_molecules",
    "mmd_squared",
    "to_networkx",
]


def __getattr__(name: str) -> Any:
    # RDKit-based classes load on first use, so graph-only evaluation does not import RDKit.
    if name == "MoleculeEvaluator":
        from graphdiff.metrics.molecules import MoleculeEvaluator

        return MoleculeEvaluator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
