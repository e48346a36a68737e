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
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache, partial
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
from graphdiff.io import atomic_write, read_cache_file
from graphdiff.log import progress
from graphdiff.metrics.graph_stats import parallel_map

__all__ = [
    "PAIR_BLOCK",
    "PROPERTIES",
    "MolecularFilters",
    "ReferenceStatistics",
    "cosine_similarity_counts",
    "fragment_counts",
    "internal_diversities",
    "internal_diversity",
    "load_filters",
    "morgan_fingerprints",
    "moses_metrics",
    "scaffold_counts",
    "similarity_to_nearest_neighbour",
    "tanimoto_matrix",
]

ALLOWED_ATOMS = frozenset({"C", "N", "S", "O", "F", "Cl", "Br", "H"})
_BLOCK = 4096  # columns per Tanimoto tile (IntDiv's block sums depend on it: kept for unchanged values)
#: Most similarities held at once by SNN and IntDiv: ``2**22`` values, 32 MiB per float64 temporary.
PAIR_BLOCK = 1 << 22


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


def _passes_filters(mol: Chem.Mol, filters_dir: str | None) -> bool:
    return load_filters(filters_dir).passes(mol)


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


#: Bits of the Morgan fingerprints.
_FP_BITS = 1024


@lru_cache(maxsize=1)
def _morgan_generator() -> Any:
    return rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=_FP_BITS)


def morgan_fingerprints(mols: Sequence[Chem.Mol]) -> np.ndarray:
    """Morgan fingerprints (radius 2, 1024 bits) as a ``[n, 1024]`` uint8 matrix."""
    generator = _morgan_generator()
    out = np.zeros((len(mols), _FP_BITS), dtype=np.uint8)
    for i, mol in enumerate(progress(mols, desc="Morgan fingerprints", unit="mol")):
        out[i] = generator.GetFingerprintAsNumPy(mol)
    return out


def _bit_counts(x: np.ndarray) -> np.ndarray:
    """``[n]`` float64 number of set bits of each row of a ``[n, d]`` 0/1 matrix."""
    return x.sum(1, dtype=np.float64)


def _tanimoto_block(x32: np.ndarray, x_bits: np.ndarray, y32: np.ndarray, y_bits: np.ndarray) -> np.ndarray:
    """``[n, m]`` Tanimoto similarities from float32 fingerprints ``[n, d]``, ``[m, d]`` and their bit counts.

    The float32 product is exact (integer counts below 2**24) at half the cost of float64; the division is in
    float64, so the similarities are bit for bit those of a float64 computation.
    """
    common = (x32 @ y32.T).astype(np.float64)
    union = x_bits[:, None] + y_bits[None, :] - common
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = common / union
    sim[union == 0] = 1.0
    return sim


def tanimoto_matrix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Tanimoto similarities of binary fingerprints.

    Args:
        x: ``[n, d]`` 0/1 matrix, y: ``[m, d]`` 0/1 matrix.

    Returns:
        ``[n, m]`` similarities; two empty fingerprints have similarity 1 (MOSES's convention).
    """
    return _tanimoto_block(x.astype(np.float32), _bit_counts(x), y.astype(np.float32), _bit_counts(y))


def _row_chunk(n_cols: int) -> int:
    return max(1, PAIR_BLOCK // max(1, n_cols))


def similarity_to_nearest_neighbour(
    gen_fps: np.ndarray, ref_fps: np.ndarray, block: int = _BLOCK, row_chunk: int | None = None,
    packed: bool = False,
) -> float:
    """SNN: mean over generated molecules of the maximum Tanimoto similarity to the reference set.

    Only the running maximum per generated molecule is kept: similarities are computed in
    ``[row_chunk, block]`` tiles (at most :data:`PAIR_BLOCK` values), never as the ``[n_gen, n_ref]`` matrix.

    Args:
        gen_fps: ``[n_gen, d]`` 0/1 fingerprints; ref_fps: ``[n_ref, d]`` 0/1 fingerprints, or with ``packed``
            ``[n_ref, d / 8]`` bit-packed ones (``np.packbits(axis=1)``), unpacked one block at a time.
        block: reference rows per tile.
        row_chunk: generated rows per tile (default: ``PAIR_BLOCK // block``).
        packed: whether ``ref_fps`` is bit-packed.
    """
    row_chunk = row_chunk or _row_chunk(block)
    gen32, gen_bits = gen_fps.astype(np.float32), _bit_counts(gen_fps)
    best = np.zeros(len(gen_fps))
    starts = range(0, len(ref_fps), block)
    for start in progress(starts, desc=f"SNN ({len(gen_fps)} x {len(ref_fps)})", unit="block"):
        ref = ref_fps[start : start + block]
        ref = np.unpackbits(ref, axis=1, count=gen_fps.shape[1]) if packed else ref
        ref32, ref_bits = ref.astype(np.float32), _bit_counts(ref)
        for row in range(0, len(gen_fps), row_chunk):
            rows = slice(row, row + row_chunk)
            sim = _tanimoto_block(gen32[rows], gen_bits[rows], ref32, ref_bits)
            np.maximum(best[rows], sim.max(1), out=best[rows])
    return float(best.mean())


def internal_diversities(
    fps: np.ndarray, ps: Sequence[int] = (1, 2), row_chunk: int | None = None
) -> dict[int, float]:
    """IntDiv_p for several ``p`` in one pass over the pairs; see :func:`internal_diversity`.

    Columns are summed in blocks of ``_BLOCK`` (the block sums fix the floating-point result); rows in chunks
    of ``row_chunk`` (default ``PAIR_BLOCK // _BLOCK``), which bounds memory and does not change the sums.

    Args:
        fps: ``[n, d]`` 0/1 fingerprints.
        ps: the exponents.
        row_chunk: rows per tile.

    Returns:
        ``{p: IntDiv_p}``.
    """
    row_chunk = row_chunk or _row_chunk(_BLOCK)
    fps32, bits = fps.astype(np.float32), _bit_counts(fps)
    totals = {p: np.zeros(len(fps)) for p in ps}
    starts = range(0, len(fps), _BLOCK)
    for start in progress(starts, desc=f"IntDiv ({len(fps)} molecules)", unit="block"):
        cols = slice(start, start + _BLOCK)
        for row in range(0, len(fps), row_chunk):
            rows = slice(row, row + row_chunk)
            sim = _tanimoto_block(fps32[rows], bits[rows], fps32[cols], bits[cols])
            for p, total in totals.items():
                total[rows] += (sim**p).sum(1)
    return {p: float(1 - np.mean((total / len(fps)) ** (1 / p))) for p, total in totals.items()}


def internal_diversity(fps: np.ndarray, p: int = 1) -> float:
    """IntDiv_p: ``1 - mean_i (mean_j T_ij^p)^(1/p)`` over all pairs of the set, self-pairs included."""
    return internal_diversities(fps, (p,))[p]


# ----------------------------------------------------------------------------- fragments and scaffolds


def _fragments(mol: Chem.Mol) -> list[str]:
    return Chem.MolToSmiles(Chem.FragmentOnBRICSBonds(mol)).split(".")


def fragment_counts(mols: Sequence[Chem.Mol]) -> Counter[str]:
    """Counts of BRICS fragments (SMILES with dummy atoms at the broken bonds), over all molecules."""
    counts: Counter[str] = Counter()
    for mol in progress(mols, desc="BRICS fragments", unit="mol"):
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
    for mol in progress(mols, desc="Murcko scaffolds", unit="mol"):
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
    rows = parallel_map(_property_row, mols, n_jobs=n_jobs, min_items_per_job=2000)
    return {name: np.array([row[name] for row in rows], dtype=np.float64) for name in names}


class ReferenceStatistics:
    """Statistics of the reference molecules, each computed once when first needed and then kept.

    ``fingerprints`` ``[n, 1024]`` uint8 (kept bit-packed, ``[n, 128]``: 22 MB instead of 180 MB for the 176k
    MOSES test molecules), ``fragments`` / ``scaffolds`` counts, ``properties`` ``{name: [n]}``. Missing
    statistics are computed together in one pass over the molecules, chunk by chunk, so that a caller can parse
    the reference chunk by chunk instead of holding it (an RDKit molecule takes ~28 KiB: 5 GB for the 176k MOSES
    test molecules). With ``cache_dir`` each statistic is also written there and read back by later runs, which
    then never build the reference molecules.

    Args:
        mols: sanitised reference molecules, or a function returning an iterable of chunks of them (called
            when a statistic is neither in memory nor in ``cache_dir``).
        n_jobs: worker processes for the property values.
        cache_dir: folder holding this reference set's statistics (one folder per reference set), or ``None``.
    """

    def __init__(
        self,
        mols: Sequence[Chem.Mol] | Callable[[], Iterable[Sequence[Chem.Mol]]],
        n_jobs: int | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        self._chunks = mols if callable(mols) else partial(iter, [list(mols)])
        self.n_jobs = n_jobs
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._cache: dict[str, Any] = {}

    def prepare(self, keys: Iterable[str]) -> None:
        """Read or compute the statistics ``keys`` (of ``fps``, ``frag``, ``scaf``, ``props``) in one pass."""
        missing = []
        for key in dict.fromkeys(keys):
            path = self.cache_dir / _CACHE_FILES[key] if self.cache_dir is not None else None
            if key in self._cache:
                continue
            cached = read_cache_file(path, lambda p, key=key: _load_statistic(key, p))
            if cached is not None:
                self._cache[key] = cached
            else:
                missing.append(key)
        if not missing:
            return
        parts: dict[str, list[Any]] = {key: [] for key in missing}
        for chunk in progress(self._chunks(), desc=f"MOSES reference statistics ({', '.join(missing)})",
                              unit="chunk"):
            for key in missing:
                parts[key].append(self._compute(key, chunk))
        for key in missing:
            self._cache[key] = _combine(key, parts[key] or [self._compute(key, [])])
            if self.cache_dir is not None:
                _save_statistic(key, self._cache[key], self.cache_dir / _CACHE_FILES[key])

    def _compute(self, key: str, mols: Sequence[Chem.Mol]) -> Any:
        if key == "fps":
            return np.packbits(morgan_fingerprints(mols), axis=1)
        if key == "frag":
            return fragment_counts(mols)
        if key == "scaf":
            return scaffold_counts(mols)
        return _properties(mols, list(PROPERTIES), self.n_jobs)

    def _get(self, key: str) -> Any:
        self.prepare([key])
        return self._cache[key]

    def fingerprints(self) -> np.ndarray:
        """``[n, 1024]`` uint8 0/1 Morgan fingerprints (unpacked on each call)."""
        return np.unpackbits(self._get("fps"), axis=1)

    def packed_fingerprints(self) -> np.ndarray:
        """``[n, 128]`` uint8: :meth:`fingerprints` bit-packed (``np.packbits(axis=1)``), as kept."""
        return self._get("fps")

    def fragments(self) -> Counter[str]:
        return self._get("frag")

    def scaffolds(self) -> Counter[str]:
        return self._get("scaf")

    def properties(self) -> dict[str, np.ndarray]:
        return self._get("props")


_CACHE_FILES = {"fps": "fingerprints.npy", "frag": "fragments.json", "scaf": "scaffolds.json",
                "props": "properties.npz"}
#: Which reference statistic each metric needs.
_NEEDS = {"snn": "fps", "frag": "frag", "scaf": "scaf", **{name: "props" for name in PROPERTIES}}


def _combine(key: str, parts: list[Any]) -> Any:
    """One statistic from its per-chunk values (in chunk order)."""
    if key == "fps":
        return np.concatenate(parts)
    if key == "props":
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    total: Counter[str] = Counter()
    for part in parts:
        total.update(part)
    return total


def _save_statistic(key: str, value: Any, path: Path) -> None:
    with atomic_write(path, "wb") as handle:
        if key == "fps":
            np.save(handle, value, allow_pickle=False)  # bit-packed: 8x smaller than 0/1 bytes
        elif key == "props":
            np.savez(handle, **value)
        else:
            handle.write(json.dumps(dict(value)).encode())


def _load_statistic(key: str, path: Path) -> Any:
    if key == "fps":
        packed = np.load(path, allow_pickle=False)
        if packed.ndim != 2 or packed.shape[1] != _FP_BITS // 8 or packed.dtype != np.uint8:
            raise ValueError(f"expected [n, {_FP_BITS // 8}] uint8 packed fingerprints, got {packed.dtype} "
                             f"{list(packed.shape)}")
        return packed
    if key == "props":
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    return Counter(json.loads(path.read_text()))


def moses_metrics(
    mols: Sequence[Chem.Mol],
    reference: ReferenceStatistics | None,
    metrics: Sequence[str] = ("filters", "snn", "frag", "scaf", "intdiv1", "intdiv2", "logp", "sa", "qed", "weight"),
    filters_dir: str | None = None,
    n_jobs: int | None = None,
) -> dict[str, Any]:
    """MOSES-style metrics of valid generated molecules against reference statistics.

    Args:
        mols: sanitised generated molecules (duplicates included, as MOSES). A sequence is read as it is, so a lazy
            one (:class:`graphdiff.metrics.molecules.MolBinaries`) never holds more than a few molecules at once.
        reference: statistics of the reference set (needed for all but ``filters`` and ``intdiv*``).
        metrics: which to compute.
        filters_dir: see :func:`load_filters`.
        n_jobs: worker processes for property values and filters.

    Returns:
        ``{metric: value}`` (``nan`` where the set is empty); with ``filters`` also ``filters_source``.
    """
    mols = mols if isinstance(mols, Sequence) else list(mols)
    out: dict[str, Any] = {}
    if not mols:
        return {m: float("nan") for m in metrics}
    if reference is not None:
        reference.prepare(_NEEDS[m] for m in metrics if m in _NEEDS)  # one pass over the reference for all
    needs_fps = {"snn", "intdiv1", "intdiv2"} & set(metrics)
    fps = morgan_fingerprints(mols) if needs_fps else None
    props = [m for m in metrics if m in PROPERTIES]
    gen_props = _properties(mols, props, n_jobs) if props else {}
    ps = [int(m[-1]) for m in metrics if m in ("intdiv1", "intdiv2")]
    intdiv = internal_diversities(fps, ps) if ps else {}  # one pass over the pairs for both exponents
    for name in metrics:
        if name == "filters":
            flags = parallel_map(partial(_passes_filters, filters_dir=filters_dir), mols, n_jobs=n_jobs,
                                 min_items_per_job=1000)
            out["filters"] = float(np.mean(flags))
            out["filters_source"] = load_filters(filters_dir).source
        elif name == "snn":
            out["snn"] = similarity_to_nearest_neighbour(fps, reference.packed_fingerprints(), packed=True)
        elif name == "frag":
            out["frag"] = cosine_similarity_counts(reference.fragments(), fragment_counts(mols))
        elif name == "scaf":
            out["scaf"] = cosine_similarity_counts(reference.scaffolds(), scaffold_counts(mols))
        elif name in ("intdiv1", "intdiv2"):
            out[name] = intdiv[int(name[-1])]
        elif name in PROPERTIES:
            out[name] = float(wasserstein_distance(reference.properties()[name], gen_props[name]))
        else:
            raise KeyError(f"unknown MOSES metric {name!r}")
    return out
