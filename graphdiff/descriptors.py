"""Graph-level properties computed from the graphs themselves: RDKit descriptors of molecules and graph statistics.

They are what a model can be conditioned on when a dataset has no column for the property, and what the
conditioning of generated graphs is measured with (the value of a generated molecule is computed exactly, so the
error to its target is exact too).

Molecule properties (RDKit): ``qed`` (QED, Bickerton et al. 2012), ``logp`` (Crippen logP), ``mw`` (molecular
weight), ``tpsa`` (topological polar surface area), ``rings`` (ring count), ``heavy_atoms``, ``sa`` (synthetic
accessibility, Ertl & Schuffenhauer 2009, RDKit's Contrib ``sascorer``, when the RDKit install ships it).
Graph properties: ``num_nodes``, ``num_edges``, ``density``.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from rdkit import Chem
from rdkit.Chem import QED, Crippen, Descriptors, RDConfig, rdMolDescriptors
from torch import Tensor

from graphdiff.chem import quiet_rdkit, smiles_to_mol
from graphdiff.errors import ConfigError
from graphdiff.storage import GraphList


@functools.cache
def _sa_scorer() -> Callable[[Chem.Mol], float] | None:
    """RDKit Contrib's ``sascorer.calculateScore``, or ``None`` when this RDKit has no Contrib folder."""
    path = Path(RDConfig.RDContribDir) / "SA_Score" / "sascorer.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("graphdiff_rdkit_sascorer", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.calculateScore


def _sa(mol: Chem.Mol) -> float:
    scorer = _sa_scorer()
    if scorer is None:
        raise ConfigError("property sa needs RDKit's Contrib SA_Score (not in this RDKit install)")
    return float(scorer(mol))


MOLECULE_PROPERTIES: dict[str, Callable[[Chem.Mol], float]] = {
    "qed": QED.qed,
    "logp": Crippen.MolLogP,
    "mw": Descriptors.MolWt,
    "tpsa": rdMolDescriptors.CalcTPSA,
    "rings": rdMolDescriptors.CalcNumRings,
    "heavy_atoms": lambda mol: mol.GetNumHeavyAtoms(),
    "sa": _sa,
}
GRAPH_PROPERTIES = ("num_nodes", "num_edges", "density")
#: Properties that take few integer values: categorical unless asked otherwise (``name:numeric``).
CATEGORICAL_BY_DEFAULT = frozenset({"num_blocks", "num_communities"})


def molecule_property(name: str, mols: Sequence[Chem.Mol | str | None]) -> Tensor:
    """``[len(mols)]`` float64 values of RDKit property ``name`` (``NaN`` for a missing or unparsable molecule).

    Raises:
        ConfigError: ``name`` is not in :data:`MOLECULE_PROPERTIES`.
    """
    if name not in MOLECULE_PROPERTIES:
        raise ConfigError(f"unknown molecule property {name!r}; computable: {', '.join(MOLECULE_PROPERTIES)}")
    fn = MOLECULE_PROPERTIES[name]
    out = torch.full((len(mols),), float("nan"), dtype=torch.float64)
    with quiet_rdkit():
        for i, mol in enumerate(mols):
            if isinstance(mol, str):
                mol = smiles_to_mol(mol)
            if mol is None:
                continue
            try:
                out[i] = float(fn(mol))
            except (ValueError, RuntimeError, ZeroDivisionError):  # RDKit refuses an odd molecule: no value
                continue
    return out


def graph_property(name: str, graphs: GraphList) -> Tensor:
    """``[len(graphs)]`` float64 values of graph statistic ``name`` (vectorised over the flat storage)."""
    n = graphs.num_nodes.double()
    m = graphs.num_edges.double()
    if name == "num_nodes":
        return n
    if name == "num_edges":
        return m
    if name == "density":
        pairs = n * (n - 1) / 2
        return torch.where(pairs > 0, m / pairs.clamp(min=1), torch.zeros_like(m))
    raise ConfigError(f"unknown graph property {name!r}; computable: {', '.join(GRAPH_PROPERTIES)}")


def computable_properties(molecules: bool) -> list[str]:
    """Names :func:`compute_property` accepts for a molecule set (``molecules``) or a graph set."""
    return [*GRAPH_PROPERTIES, *(MOLECULE_PROPERTIES if molecules else ())]


def compute_property(name: str, graphs: GraphList, mols: Sequence[Chem.Mol | str | None] | None = None) -> Tensor:
    """``[len(graphs)]`` float64 values of ``name``: a graph statistic, or an RDKit property of ``mols``."""
    if name in GRAPH_PROPERTIES:
        return graph_property(name, graphs)
    if mols is None:
        if name in MOLECULE_PROPERTIES:
            raise ConfigError(f"property {name!r} is computed from molecules; these graphs are not molecules")
        raise ConfigError(f"unknown property {name!r}; computable: {', '.join(GRAPH_PROPERTIES)}")
    return molecule_property(name, mols)
