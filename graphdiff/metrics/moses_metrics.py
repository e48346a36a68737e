"""MOSES-style distribution metrics computed with RDKit (Polykovskiy et al., 2020, ``moses/metrics``).

* Filters — fraction of molecules that pass MOSES's filters: no ring of 8 or more atoms, no formal charge, only
  C, N, S, O, F, Cl, Br, H, and no match of the MCF and PAINS SMARTS (matched on the molecule with explicit
  hydrogens), and the canonical SMILES parses again;
* SNN — mean over generated molecules of the largest Tanimoto similarity to a reference molecule (Morgan
  fingerprints, radius 2, 1024 bits);
* Frag / Scaf — cosine similarity of the counts of BRICS fragments / Bemis-Murcko scaffolds (scaffolds with
  fewer than two rings are dropped, as in MOSES);
* IntDiv_p — ``1 - mean_i (mean_j T_ij^p)^(1/p)`` over generated pairs, self-pairs included (p = 1, 2);
* logP, SA, QED, weight — 1-D Wasserstein distances between the property values of the generated and the
  reference molecules (Crippen logP, the RDKit Contrib SA score, QED, average molecular weight).

The MCF and PAINS SMARTS are MOSES's data files (``mcf.csv``, ``wehi_pains.csv``), read from ``filters_dir``,
``$GRAPHDIFF_MOSES_FILTERS`` or an installed ``molsets`` package. Without them the filter falls back to RDKit's
built-in PAINS catalogue (same PAINS family, no MCF) and the result says so in ``filters_source``.
"""

from __future__ import annotations

import csv
import importlib.util
import os
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from rdkit import Chem, RDConfig
from rdkit.Chem import QED, Crippen, Descriptors, rdFingerprintGenerator
from rdkit.Chem.FilterCatalog import FilterCatalog, FilterCatalogParams
from rdkit.Chem.Scaffolds import MurckoScaffold
from scipy.spatial.distance import cosine
from scipy.stats import wasserstein_distance

from graphdiff.errors import DataError
from graphdiff.metrics.graph_stats import parallel_map

__all__ = [
    "PROPERTIES",
    "MolecularFilters",
    "ReferenceStatistics",
    "cosine_similarity_counts",
    "fragment_counts",
    "internal_diversity",
    "load_filters",
    "morgan_fingerprints",
    "moses_metrics",
    "scaffold_counts",
    "similarity_to_nearest_neighbour",
    "tanimoto_matrix",
]

ALLOWED_ATOMS = frozenset({"C", "N", "S", "O", "F", "Cl", "Br", "H"})
_BLOCK = 4096  # reference rows per Tanimoto block


# ----------------------------------------------------------------------------- filters


class MolecularFilters:
    """Structural-alert filter: SMARTS patterns, or an RDKit ``FilterCatalog`` as fallback.

    Attributes:
        source: ``"moses:<folder>"`` or ``"rdkit-pains"``.
    """

    def __init__(self, patterns: list[Chem.Mol] | None, source: str) -> None:
        self.patterns = patterns
        self.source = source
        self._catalog: FilterCatalog | None = None
        if patterns is None:
            params = FilterCatalogParams()
            params.AddCatalog(FilterCatalogParams.FilterCatalogs.PAINS)
            self._catalog = FilterCatalog(params)

    def matches(self, mol: Chem.Mol) -> bool:
        """Whether any alert matches (SMARTS are matched on the molecule with explicit hydrogens)."""
        if self._catalog is not None:
            return self._catalog.HasMatch(mol)
        with_h = Chem.AddHs(mol)
        return any(with_h.HasSubstructMatch(p) for p in self.patterns)

    def passes(self, mol: Chem.Mol) -> bool:
        """MOSES's ``mol_passes_filters`` for a sanitised molecule."""
        rings = mol.GetRingInfo()
        if rings.NumRings() != 0 and any(len(r) >= 8 for r in rings.AtomRings()):
            return False
        if any(atom.GetFormalCharge() != 0 for atom in mol.GetAtoms()):
            return False
        if any(atom.GetSymbol() not in ALLOWED_ATOMS for atom in mol.GetAtoms()):
            return False
        if self.matches(mol):
            return False
        smiles = Chem.MolToSmiles(mol, isomericSmiles=False)
        return bool(smiles) and Chem.MolFromSmiles(smiles) is not None


def _read_smarts(path: Path, has_header: bool) -> list[str]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if has_header:
        header = [h.strip() for h in rows[0]]
        column = header.index("smarts")
        rows = rows[1:]
    else:
        column = 0
    return [row[column].strip() for row in rows if row and row[column].strip()]


def _moses_data_dir() -> Path | None:
    spec = importlib.util.find_spec("moses")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "metrics"
    return folder if (folder / "mcf.csv").is_file() else None


@lru_cache(maxsize=4)
def load_filters(filters_dir: str | None = None) -> MolecularFilters:
    """MOSES's MCF + PAINS SMARTS, or RDKit's PAINS catalogue when they are not available.

    Looks in ``filters_dir``, then ``$GRAPHDIFF_MOSES_FILTERS``, then the data of an installed ``molsets``
    package (``moses/metrics``).

    Raises:
        DataError: ``filters_dir`` was given but lacks the files or holds an unparsable SMARTS.
    """
    folder = filters_dir or os.environ.get("GRAPHDIFF_MOSES_FILTERS")
    path = Path(folder) if folder else _moses_data_dir()
    if path is None:
        return MolecularFilters(None, "rdkit-pains")
    mcf, pains = path / "mcf.csv", path / "wehi_pains.csv"
    if not (mcf.is_file() and pains.is_file()):
        raise DataError(f"{path}: expected MOSES filter files mcf.csv and wehi_pains.csv")
    patterns = []
    for file, has_header in ((mcf, True), (pains, False)):
        for line, smarts in enumerate(_read_smarts(file, has_header), start=2 if has_header else 1):
            pattern = Chem.MolFromSmarts(smarts)
            if pattern is None:
                raise DataError(f"{file}:{line}: unparsable SMARTS {smarts[:60]!r}")
            patterns.append(pattern)
    return MolecularFilters(patterns, f"moses:{path}")


# ----------------------------------------------------------------------------- fingerprints


@lru_cache(maxsize=1)
def _morgan_generator() -> Any:
    return rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)


def morgan_fingerprints(mols: Sequence[Chem.Mol]) -> np.ndarray:
    """Morgan fingerprints (radius 2, 1024 bits) as a ``[n, 1024]`` uint8 matrix."""
    generator = _morgan_generator()
    out = np.zeros((len(mols), 1024), dtype=np.uint8)
    for i, mol in enumerate(mols):
        out[i] = generator.GetFingerprintAsNumPy(mol)
    return out


def tanimoto_matrix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Tanimoto similarities of binary fingerprints.

    Args:
        x: ``[n, d]`` 0/1 matrix, y: ``[m, d]`` 0/1 matrix.

    Returns:
        ``[n, m]`` similarities; two empty fingerprints have similarity 1 (MOSES's convention).
    """
    xf, yf = x.astype(np.float64), y.astype(np.float64)
    common = xf @ yf.T
    union = xf.sum(1)[:, None] + yf.sum(1)[None, :] - common
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = common / union
    sim[union == 0] = 1.0
    return sim


def similarity_to_nearest_neighbour(gen_fps: np.ndarray, ref_fps: np.ndarray) -> float:
    """SNN: mean over generated molecules of the maximum Tanimoto similarity to the reference set."""
    best = np.zeros(len(gen_fps))
    for start in range(0, len(ref_fps), _BLOCK):
        best = np.maximum(best, tanimoto_matrix(gen_fps, ref_fps[start : start + _BLOCK]).max(1))
    return float(best.mean())


def internal_diversity(fps: np.ndarray, p: int = 1) -> float:
    """IntDiv_p: ``1 - mean_i (mean_j T_ij^p)^(1/p)`` over all pairs of the set, self-pairs included."""
    total = np.zeros(len(fps))
    for start in range(0, len(fps), _BLOCK):
        total += (tanimoto_matrix(fps, fps[start : start + _BLOCK]) ** p).sum(1)
    return float(1 - np.mean((total / len(fps)) ** (1 / p)))


# ----------------------------------------------------------------------------- fragments and scaffolds


def _fragments(mol: Chem.Mol) -> list[str]:
    return Chem.MolToSmiles(Chem.FragmentOnBRICSBonds(mol)).split(".")


def fragment_counts(mols: Sequence[Chem.Mol]) -> Counter[str]:
    """Counts of BRICS fragments (SMILES with dummy atoms at the broken bonds), over all molecules."""
    counts: Counter[str] = Counter()
    for mol in mols:
        counts.update(_fragments(mol))
    return counts


def _scaffold(mol: Chem.Mol, min_rings: int = 2) -> str | None:
    try:
        scaffold = MurckoScaffold.GetScaffoldForMol(mol)
    except (ValueError, RuntimeError):
        return None
    smiles = Chem.MolToSmiles(scaffold)
    if smiles == "" or scaffold.GetRingInfo().NumRings() < min_rings:
        return None
    return smiles


def scaffold_counts(mols: Sequence[Chem.Mol], min_rings: int = 2) -> Counter[str]:
    """Counts of Bemis-Murcko scaffolds with at least ``min_rings`` rings."""
    counts: Counter[str] = Counter()
    for mol in mols:
        scaffold = _scaffold(mol, min_rings)
        if scaffold is not None:
            counts[scaffold] += 1
    return counts


def cosine_similarity_counts(ref: Counter[str], gen: Counter[str]) -> float:
    """Cosine similarity of two count dictionaries (missing keys count 0); ``nan`` if either is empty."""
    if len(ref) == 0 or len(gen) == 0:
        return float("nan")
    keys = sorted(set(ref) | set(gen))
    ref_vec = np.array([ref.get(k, 0) for k in keys], dtype=np.float64)
    gen_vec = np.array([gen.get(k, 0) for k in keys], dtype=np.float64)
    return float(1 - cosine(ref_vec, gen_vec))


# ----------------------------------------------------------------------------- properties


@lru_cache(maxsize=1)
def _sascorer() -> Any:
    path = Path(RDConfig.RDContribDir) / "SA_Score" / "sascorer.py"
    if not path.is_file():
        raise DataError(f"{path}: RDKit's SA_Score contribution is missing from this RDKit installation")
    spec = importlib.util.spec_from_file_location("graphdiff_rdkit_sascorer", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _logp(mol: Chem.Mol) -> float:
    return Crippen.MolLogP(mol)


def _sa(mol: Chem.Mol) -> float:
    return _sascorer().calculateScore(mol)


def _qed(mol: Chem.Mol) -> float:
    return QED.qed(mol)


def _weight(mol: Chem.Mol) -> float:
    return Descriptors.MolWt(mol)


PROPERTIES = {"logp": _logp, "sa": _sa, "qed": _qed, "weight": _weight}


def _property_row(mol: Chem.Mol) -> dict[str, float]:
    return {name: fn(mol) for name, fn in PROPERTIES.items()}


def _properties(mols: Sequence[Chem.Mol], names: Sequence[str], n_jobs: int | None) -> dict[str, np.ndarray]:
    rows = parallel_map(_property_row, list(mols), n_jobs=n_jobs, min_items_per_job=2000)
    return {name: np.array([row[name] for row in rows], dtype=np.float64) for name in names}


class ReferenceStatistics:
    """Lazily computed statistics of the reference molecules (fingerprints, counts, property values).

    Args:
        mols: sanitised reference molecules.
        n_jobs: worker processes for the property values.
    """

    def __init__(self, mols: Sequence[Chem.Mol], n_jobs: int | None = None) -> None:
        self.mols = list(mols)
        self.n_jobs = n_jobs
        self._cache: dict[str, Any] = {}

    def _get(self, key: str, compute: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def fingerprints(self) -> np.ndarray:
        return self._get("fps", lambda: morgan_fingerprints(self.mols))

    def fragments(self) -> Counter[str]:
        return self._get("frag", lambda: fragment_counts(self.mols))

    def scaffolds(self) -> Counter[str]:
        return self._get("scaf", lambda: scaffold_counts(self.mols))

    def properties(self) -> dict[str, np.ndarray]:
        return self._get("props", lambda: _properties(self.mols, list(PROPERTIES), self.n_jobs))


def moses_metrics(
    mols: Sequence[Chem.Mol],
    reference: ReferenceStatistics | None,
    metrics: Sequence[str] = ("filters", "snn", "frag", "scaf", "intdiv1", "intdiv2", "logp", "sa", "qed", "weight"),
    filters_dir: str | None = None,
    n_jobs: int | None = None,
) -> dict[str, Any]:
    """MOSES-style metrics of valid generated molecules against reference statistics.

    Args:
        mols: sanitised generated molecules (duplicates included, as MOSES).
        reference: statistics of the reference set (needed for all but ``filters`` and ``intdiv*``).
        metrics: which to compute.
        filters_dir: see :func:`load_filters`.
        n_jobs: worker processes for property values.

    Returns:
        ``{metric: value}`` (``nan`` where the set is empty); with ``filters`` also ``filters_source``.
    """
    mols = list(mols)
    out: dict[str, Any] = {}
    if not mols:
        return {m: float("nan") for m in metrics}
    needs_fps = {"snn", "intdiv1", "intdiv2"} & set(metrics)
    fps = morgan_fingerprints(mols) if needs_fps else None
    props = [m for m in metrics if m in PROPERTIES]
    gen_props = _properties(mols, props, n_jobs) if props else {}
    for name in metrics:
        if name == "filters":
            flt = load_filters(filters_dir)
            out["filters"] = float(np.mean([flt.passes(m) for m in mols]))
            out["filters_source"] = flt.source
        elif name == "snn":
            out["snn"] = similarity_to_nearest_neighbour(fps, reference.fingerprints())
        elif name == "frag":
            out["frag"] = cosine_similarity_counts(reference.fragments(), fragment_counts(mols))
        elif name == "scaf":
            out["scaf"] = cosine_similarity_counts(reference.scaffolds(), scaffold_counts(mols))
        elif name == "intdiv1":
            out["intdiv1"] = internal_diversity(fps, p=1)
        elif name == "intdiv2":
            out["intdiv2"] = internal_diversity(fps, p=2)
        elif name in PROPERTIES:
            out[name] = float(wasserstein_distance(reference.properties()[name], gen_props[name]))
        else:
            raise KeyError(f"unknown MOSES metric {name!r}")
    return out
