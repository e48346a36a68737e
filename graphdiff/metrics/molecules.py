"""Metrics of generated molecules: validity variants, uniqueness, novelty, stability, FCD, NSPDK, MOSES set.

Definitions (DiGress ``rdkit_functions.py`` unless stated):

* validity — the molecule sanitizes in RDKit; a disconnected one counts as valid and is represented by its
  largest fragment (most atoms; the first in RDKit's fragment order on ties);
* relaxed validity — the molecule is rebuilt bond by bond (bonds in row-major order of the upper-triangular
  adjacency); whenever RDKit's valence check fails on an N, O or S atom whose explicit valence exceeds its
  default (3, 2, 2) by exactly one, that atom gets a formal charge of +1 (``build_molecule_with_partial_charges``,
  from GDSS's ``construct_mol``); then validity as above;
* strict validity — sanitizes and is a single connected fragment;
* uniqueness — distinct canonical SMILES among the valid molecules (DiGress computes it over the relaxed-valid
  ones: ``unique_over="relaxed"``); novelty — fraction of those distinct SMILES absent from the training set;
* atom / molecule stability (QM9 with explicit hydrogens) — an atom is stable when the sum of its bond orders
  is in the allowed-valence table of DiGress's ``check_stability``; a molecule when all its atoms are;
* FCD — Fréchet ChemNet distance (the ``fcd`` package's ChemNet) between the canonical SMILES of the valid
  generated molecules and the reference (test) SMILES;
* NSPDK — GDSS's NSPDK MMD between the valid generated molecules and the reference molecules as graphs with
  atom-symbol node labels and bond-order edge labels (:mod:`graphdiff.metrics.nspdk`);
* the MOSES-style metrics of :mod:`graphdiff.metrics.moses_metrics` on the valid generated molecules.

Canonical SMILES for uniqueness and novelty are RDKit's, without stereochemistry (generated graphs carry none;
the training SMILES are reduced the same way so that novelty compares like with like).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import json
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, overload

import networkx as nx
import numpy as np
import scipy.sparse as sp
from rdkit import Chem, RDLogger, rdBase

from graphdiff.chem import add_bonds_with_charges, canonical_smiles, fold_hydrogens
from graphdiff.errors import ConfigError
from graphdiff.io import atomic_write, default_root, read_cache_file
from graphdiff.log import get_logger, progress
from graphdiff.metrics.graph_stats import parallel_map, resolve_n_jobs, single_threaded_blas

if TYPE_CHECKING:
    from graphdiff.metrics.moses_metrics import ReferenceStatistics

__all__ = [
    "ALLOWED_BONDS",
    "MOLECULE_METRICS",
    "MolBinaries",
    "MoleculeEvaluator",
    "ParsedMolecule",
    "SmilesSet",
    "atom_stability",
    "build_molecule_with_partial_charges",
    "canonical_smiles",
    "fcd_score",
    "fcd_statistics",
    "mol_from_graph",
    "mol_to_nx",
    "parse_molecule",
]

#: Allowed total bond orders per element (DiGress ``check_stability``).
ALLOWED_BONDS: dict[str, int | tuple[int, ...]] = {
    "H": 1, "C": 4, "N": 3, "O": 2, "F": 1, "B": 3, "Al": 3, "Si": 4, "P": (3, 5), "S": 4, "Cl": 1, "As": 3,
    "Br": 1, "I": 1, "Hg": (1, 2), "Bi": (3, 5), "Se": (2, 4, 6),
}  # fmt: skip
#: DiGress's edge classes: 0 none, 1 single, 2 double, 3 triple, 4 aromatic.
BOND_TYPES = [
    None,
    Chem.rdchem.BondType.SINGLE,
    Chem.rdchem.BondType.DOUBLE,
    Chem.rdchem.BondType.TRIPLE,
    Chem.rdchem.BondType.AROMATIC,
]

MOLECULE_METRICS = (
    "validity",
    "relaxed_validity",
    "strict_validity",
    "uniqueness",
    "novelty",
    "atom_stability",
    "mol_stability",
    "fcd",
    "nspdk",
    "filters",
    "snn",
    "frag",
    "scaf",
    "intdiv1",
    "intdiv2",
    "logp",
    "sa",
    "qed",
    "weight",
)
_MOSES_KEYS = ("filters", "snn", "frag", "scaf", "intdiv1", "intdiv2", "logp", "sa", "qed", "weight")
_NEEDS_TEST = {"fcd", "nspdk", "snn", "frag", "scaf", "logp", "sa", "qed", "weight"}


def mol_from_graph(atom_types: Any, edge_types: Any, atom_decoder: Sequence[str]) -> Chem.RWMol:
    """Unsanitised molecule from a dense graph, as DiGress's ``build_molecule``.

    Args:
        atom_types: ``[n]`` atom class indices.
        edge_types: ``[n, n]`` edge classes (0 none, 1 single, 2 double, 3 triple, 4 aromatic); only the upper
            triangle is read.
        atom_decoder: element symbol of each atom class.

    Returns:
        An ``RWMol`` with no formal charges and no sanitisation.
    """
    atoms = np.asarray(atom_types.detach().cpu() if hasattr(atom_types, "detach") else atom_types).reshape(-1)
    edges = np.asarray(edge_types.detach().cpu() if hasattr(edge_types, "detach") else edge_types)
    mol = Chem.RWMol()
    for a in atoms:
        mol.AddAtom(Chem.Atom(atom_decoder[int(a)]))
    for i, j in zip(*np.nonzero(np.triu(edges, k=1)), strict=True):
        mol.AddBond(int(i), int(j), BOND_TYPES[int(edges[i, j])])
    return mol


def build_molecule_with_partial_charges(mol: Chem.Mol) -> Chem.RWMol:
    """Rebuild ``mol`` bond by bond, adding +1 charges on N/O/S atoms with one bond too many.

    Atoms keep their element, charge and explicit hydrogens; bonds are re-added in row-major order of
    ``(min index, max index)``, which is DiGress's order for graphs (:func:`graphdiff.chem.add_bonds_with_charges`).

    Returns:
        The rebuilt, unsanitised ``RWMol``.
    """
    rebuilt = Chem.RWMol()
    for atom in mol.GetAtoms():
        rebuilt.AddAtom(Chem.Atom(atom))
    bonds = sorted(
        (min(b.GetBeginAtomIdx(), b.GetEndAtomIdx()), max(b.GetBeginAtomIdx(), b.GetEndAtomIdx()), b.GetBondType())
        for b in mol.GetBonds()
    )
    add_bonds_with_charges(rebuilt, bonds)
    return rebuilt


def _largest_fragment(mol: Chem.Mol) -> tuple[Chem.Mol | None, int]:
    """Sanitise a copy; return its largest fragment (sanitised) and the number of fragments, or ``(None, k)``."""
    mol = Chem.RWMol(mol)
    try:
        Chem.SanitizeMol(mol)
    except ValueError:
        return None, 0
    try:
        fragments = Chem.rdmolops.GetMolFrags(mol, asMols=True, sanitizeFrags=True)
    except ValueError:
        return None, 0
    largest = max(fragments, default=mol, key=lambda m: m.GetNumAtoms())
    return largest, len(fragments)


@dataclass
class ParsedMolecule:
    """Validity information of one generated sample.

    Attributes:
        raw: the unsanitised input molecule (``None`` for a failed sample or unparsable SMILES).
        valid: the sanitised largest fragment, or ``None``.
        n_fragments: fragments of the sanitised molecule (0 if invalid).
        relaxed: the sanitised largest fragment after the partial-charge fix, or ``None``.
        smiles: canonical SMILES of ``valid`` (no stereo), or ``None``.
        relaxed_smiles: canonical SMILES of ``relaxed``, or ``None``.
    """

    raw: Chem.Mol | None
    valid: Chem.Mol | None
    n_fragments: int
    relaxed: Chem.Mol | None
    smiles: str | None
    relaxed_smiles: str | None


def _raw_molecule(sample: Any) -> Chem.Mol | None:
    if sample is None:
        return None
    if isinstance(sample, Chem.Mol):
        return sample
    if isinstance(sample, str):
        return Chem.MolFromSmiles(sample, sanitize=False) if sample else None
    raise ConfigError(f"expected an RDKit molecule, a SMILES string or None, got {type(sample).__name__}")


def parse_molecule(sample: Any) -> ParsedMolecule:
    """Validity, largest fragment and relaxed validity of one sample (mol, SMILES or ``None``)."""
    raw = _raw_molecule(sample)
    if raw is None or raw.GetNumAtoms() == 0:
        return ParsedMolecule(raw, None, 0, None, None, None)
    valid, n_fragments = _largest_fragment(raw)
    relaxed, _ = _largest_fragment(build_molecule_with_partial_charges(raw))
    # Explicit hydrogen atoms (QM9 with H; DiGress's "[H]C(...)" SMILES) become hydrogen counts, as in the reference
    # molecules, so that SMILES, fingerprints, fragments, NSPDK and descriptors compare like with like.
    valid = fold_hydrogens(valid) if valid is not None else None
    relaxed = fold_hydrogens(relaxed) if relaxed is not None else None
    return ParsedMolecule(
        raw=raw,
        valid=valid,
        n_fragments=n_fragments,
        relaxed=relaxed,
        smiles=canonical_smiles(valid) if valid is not None else None,
        relaxed_smiles=canonical_smiles(relaxed) if relaxed is not None else None,
    )


def atom_stability(mol: Chem.Mol) -> tuple[int, int]:
    """Stable atoms and atoms of a molecule graph with explicit hydrogens (DiGress ``check_stability``).

    The bond-order sum uses RDKit's bond orders (aromatic = 1.5; DiGress's kekulized QM9 graphs have none);
    formal charges are ignored, as in DiGress.

    Returns:
        ``(n_stable_atoms, n_atoms)``.
    """
    n = mol.GetNumAtoms()
    orders = np.zeros(n)
    for bond in mol.GetBonds():
        order = bond.GetBondTypeAsDouble()
        orders[bond.GetBeginAtomIdx()] += order
        orders[bond.GetEndAtomIdx()] += order
    stable = 0
    for atom, total in zip(mol.GetAtoms(), orders, strict=True):
        allowed = ALLOWED_BONDS.get(atom.GetSymbol(), ())
        allowed = (allowed,) if isinstance(allowed, int) else allowed
        stable += int(total in allowed)
    return stable, n


def mol_to_nx(mol: Chem.Mol) -> nx.Graph:
    """GDSS's ``mols_to_nx``: node label = atom symbol, edge label = ``int(bond order)`` (aromatic -> 1)."""
    graph = nx.Graph()
    for atom in mol.GetAtoms():
        graph.add_node(atom.GetIdx(), label=atom.GetSymbol())
    for bond in mol.GetBonds():
        graph.add_edge(bond.GetBeginAtomIdx(), bond.GetEndAtomIdx(), label=int(bond.GetBondTypeAsDouble()))
    return graph


@lru_cache(maxsize=1)
def _chemnet() -> Any:
    import fcd

    return fcd.load_ref_model()


log = get_logger(__name__)

#: SMILES per ChemNet call of :func:`fcd_statistics` (the unit of its progress bar).
FCD_CHUNK = 2048


def fcd_statistics(
    smiles: Sequence[str], device: str | None = "cpu", num_threads: int | None = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[512]`` and covariance ``[512, 512]`` of ChemNet activations (the weights ship with ``fcd``).

    Args:
        smiles: at least two SMILES (padded to 350 characters, ``fcd``'s default that published scores use).
        device: torch device.
        num_threads: torch CPU threads while ChemNet runs (``None`` leaves torch's setting). One thread is
            the safe default: on a busy machine the LSTM's intra-op threads mostly wait on each other (17x
            slower measured on 2 shared cores).
    """
    import fcd
    import torch

    if len(smiles) < 2:
        raise ValueError("FCD needs at least two molecules per set")
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    smiles = list(smiles)
    chunks = [smiles[i : i + FCD_CHUNK] for i in range(0, len(smiles), FCD_CHUNK)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fcd 1.2 uses numpy/scipy aliases being retired
            # n_jobs=0: batches are built in this process; a DataLoader worker costs seconds to start. Chunks only
            # feed the progress bar: each molecule's activation is computed alone, whatever the chunk.
            parts = [fcd.get_predictions(_chemnet(), chunk, n_jobs=0, device=device)
                     for chunk in progress(chunks, desc=f"FCD ({len(smiles)} molecules)", unit="chunk")]
    finally:
        torch.set_num_threads(previous)
    activations = np.concatenate(parts, axis=0)
    return activations.mean(0), np.cov(activations.T)


def fcd_score(
    smiles: Sequence[str],
    reference: tuple[np.ndarray, np.ndarray] | Sequence[str],
    device: str | None = "cpu",
    num_threads: int | None = 1,
) -> float:
    """Fréchet ChemNet distance between SMILES and a reference (SMILES or :func:`fcd_statistics`)."""
    import fcd

    mu1, sigma1 = fcd_statistics(smiles, device, num_threads)
    if isinstance(reference, tuple):
        mu2, sigma2 = reference
    else:
        mu2, sigma2 = fcd_statistics(reference, device, num_threads)
    with warnings.catch_warnings(), single_threaded_blas():
        # sqrtm of a 512 x 512 matrix: threaded BLAS is ~15x slower than one thread on a busy machine.
        warnings.simplefilter("ignore", DeprecationWarning)
        return float(fcd.calculate_frechet_distance(mu1, sigma1, mu2, sigma2))


def _canonical_from_smiles(smiles: str) -> str | None:
    mol = Chem.MolFromSmiles(smiles)
    return canonical_smiles(mol) if mol is not None else None


def _quiet_rdkit() -> None:
    RDLogger.DisableLog("rdApp.*")


class _Scored(NamedTuple):
    """What the metrics keep of one generated sample: no RDKit molecule (~24 KiB each; the raw, valid and relaxed
    molecules of :class:`ParsedMolecule` took 1.2 GB for DiGress's 25,000 MOSES samples)."""

    valid: bytes | None  # RDKit binary (Mol.ToBinary, what pickling sends) of ParsedMolecule.valid
    n_fragments: int
    relaxed_valid: bool
    smiles: str | None
    relaxed_smiles: str | None
    stability: tuple[int, int]  # atom_stability of the raw molecule; (0, 0) when not asked or no molecule


def _score_quietly(sample: Any, stability: bool = False) -> _Scored:
    _quiet_rdkit()
    parsed = parse_molecule(sample)
    return _Scored(
        valid=parsed.valid.ToBinary() if parsed.valid is not None else None,
        n_fragments=parsed.n_fragments,
        relaxed_valid=parsed.relaxed is not None,
        smiles=parsed.smiles,
        relaxed_smiles=parsed.relaxed_smiles,
        stability=atom_stability(parsed.raw) if stability and parsed.raw is not None else (0, 0),
    )


class MolBinaries(Sequence[Chem.Mol]):
    """Molecules kept as RDKit binaries (``Mol.ToBinary``, ~0.3 KiB for a MOSES molecule against ~24 KiB for the
    ``Mol``), each built when it is accessed: iterating holds one molecule at a time.

    A slice is a :class:`MolBinaries`, and pickling sends the binaries, so :func:`parallel_map` hands each worker
    its chunk of binaries and the worker builds the molecules one by one. A molecule built from its binary is the
    one pickling gives (same atoms, bonds and order), so metrics are those of the ``Mol`` objects.

    Args:
        binaries: one binary per molecule.
    """

    def __init__(self, binaries: Sequence[bytes]) -> None:
        self._binaries = list(binaries)

    def __len__(self) -> int:
        return len(self._binaries)

    @overload
    def __getitem__(self, index: int) -> Chem.Mol: ...

    @overload
    def __getitem__(self, index: slice) -> MolBinaries: ...

    def __getitem__(self, index: int | slice) -> Chem.Mol | MolBinaries:
        if isinstance(index, slice):
            return MolBinaries(self._binaries[index])
        return Chem.Mol(self._binaries[index])

    def __iter__(self) -> Iterator[Chem.Mol]:
        return (Chem.Mol(binary) for binary in self._binaries)

    def __reduce__(self) -> tuple[type, tuple[list[bytes]]]:
        return MolBinaries, (self._binaries,)


def _str_hashes(strings: Sequence[str]) -> np.ndarray:
    """``[n]`` int64 hashes of strings: Python's ``hash``, fixed within a process, which is all :class:`SmilesSet`
    needs (it never writes them, and pickling it sends the strings)."""
    return np.fromiter(map(hash, strings), dtype=np.int64, count=len(strings))


class SmilesSet:
    """An exact set of strings (canonical SMILES) in compact form, for novelty against large training sets.

    The members are concatenated into one ``str`` in the order of their sorted 64-bit hashes, with ``[n + 1]``
    int64 offsets: ~1 byte per character plus 16 per string, against ~140 bytes per string in a Python ``set``
    (MOSES: the 1.58M canonical training SMILES take 81 MiB instead of 217 MiB). Lookups are vectorised
    (``np.searchsorted`` of the hashes); every hash match is then confirmed on the strings themselves, so a hash
    collision never counts a string as a member.

    Args:
        strings: the members (duplicates are dropped).
    """

    def __init__(self, strings: Iterable[str]) -> None:
        strings = strings if isinstance(strings, list) else list(strings)
        hashes = _str_hashes(strings)
        order = np.argsort(hashes, kind="stable")
        self._hashes = hashes[order]
        if np.any(self._hashes[1:] == self._hashes[:-1]) and len(set(strings)) < len(strings):
            strings = list(dict.fromkeys(strings))  # duplicates (rare: the cached lists are distinct)
            hashes = _str_hashes(strings)
            order = np.argsort(hashes, kind="stable")
            self._hashes = hashes[order]
        lengths = np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))[order]
        self._offsets = np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(lengths)])
        self._text = "".join([strings[i] for i in order.tolist()])

    def __len__(self) -> int:
        return len(self._hashes)

    def _member(self, i: int) -> str:
        return self._text[self._offsets[i] : self._offsets[i + 1]]

    def __iter__(self) -> Iterator[str]:
        """The members, in hash order."""
        return (self._member(i) for i in range(len(self)))

    def __contains__(self, string: object) -> bool:
        return isinstance(string, str) and bool(self.contains([string])[0])

    def __reduce__(self) -> tuple[type, tuple[list[str]]]:
        return SmilesSet, (list(self),)  # hashes are this process's: rebuilt where unpickled

    def contains(self, strings: Sequence[str]) -> np.ndarray:
        """``[n]`` bool: whether each of ``strings`` is a member."""
        strings = list(strings)
        queries = _str_hashes(strings)
        left = np.searchsorted(self._hashes, queries, side="left")
        right = np.searchsorted(self._hashes, queries, side="right")
        found = np.zeros(len(strings), dtype=bool)
        # Only the queries whose hash is present (members, and collisions) are compared with the strings.
        for i in np.flatnonzero(right > left).tolist():
            found[i] = any(self._member(j) == strings[i] for j in range(left[i], right[i]))
        return found


def _canonical_quietly(smiles: str) -> str | None:
    _quiet_rdkit()
    return _canonical_from_smiles(smiles)


#: Reference-derived values kept in memory across evaluators, newest last (a few reference sets at most).
_SHARED: OrderedDict[str, Any] = OrderedDict()
_SHARED_MAX = 8
#: Folder under the dataset root (``$GRAPHDIFF_ROOT``, where the processed datasets are cached) that holds the
#: statistics of reference and training SMILES sets, one sub-folder per set.
REFERENCE_CACHE = "reference_stats"
#: With ``persist=None`` only sets of at least this many SMILES are stored: smaller ones take seconds to redo.
PERSIST_MIN_SMILES = 10_000
#: Reference SMILES parsed at a time when computing reference statistics (bounds the molecules held at once).
REFERENCE_CHUNK = 5000
#: Generated molecules whose NSPDK features are computed at a time (bounds the features held at once).
SAMPLE_CHUNK = 4096
#: With ``n_jobs=None``, below this many molecules per worker NSPDK features are computed in one process.
NSPDK_MIN_ITEMS = 256


def _shared(key: str, compute: Callable[[], Any]) -> Any:
    """``compute()`` once per key in this process (least recently used entries are dropped beyond a few)."""
    if key in _SHARED:
        _SHARED.move_to_end(key)
    else:
        _SHARED[key] = compute()
        while len(_SHARED) > _SHARED_MAX:
            _SHARED.popitem(last=False)
    return _SHARED[key]


def smiles_set_key(smiles: Sequence[str]) -> str:
    """Content key of a SMILES list (order included) and of the RDKit / ``fcd`` versions its statistics depend on."""
    digest = hashlib.sha256(f"rdkit {rdBase.rdkitVersion}; fcd {_version('fcd')}\n".encode())
    digest.update("\n".join(smiles).encode())
    return digest.hexdigest()[:32]


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _read_or_compute_smiles_set(path: Path | None, compute: Callable[[], Iterable[str]]) -> SmilesSet:
    """A :class:`SmilesSet` from ``path`` (a sorted JSON list of strings), else computed and, with ``path``,
    written there."""
    def read(p: Path) -> SmilesSet:
        values = json.loads(p.read_text())
        if not isinstance(values, list) or not set(map(type, values)) <= {str}:
            raise ValueError("expected a JSON list of strings")
        return SmilesSet(values)

    cached = read_cache_file(path, read)
    if cached is not None:
        return cached
    values = sorted(set(compute()))
    if path is not None:
        with atomic_write(path) as handle:
            json.dump(values, handle)
    return SmilesSet(values)


def _read_or_compute_sparse(path: Path | None, compute: Callable[[], sp.csr_matrix],
                            check: Callable[[sp.csr_matrix], None] | None = None) -> sp.csr_matrix:
    """A CSR matrix from ``path`` (``scipy.sparse.save_npz``), else computed and, with ``path``, written there.

    ``check`` raises ``ValueError`` for a readable file that does not hold what is expected (then recomputed).
    """
    def read(p: Path) -> sp.csr_matrix:
        matrix = sp.load_npz(p).tocsr()
        if check is not None:
            check(matrix)
        return matrix

    cached = read_cache_file(path, read)
    if cached is not None:
        return cached
    matrix = compute()
    if path is not None:
        with atomic_write(path, "wb") as handle:
            sp.save_npz(handle, matrix)
    return matrix


def nspdk_reference_tag() -> str:
    """16 hex digits naming what the NSPDK reference of a SMILES set depends on besides the SMILES (whose key,
    :func:`smiles_set_key`, holds the RDKit version): the feature definition
    (:func:`graphdiff.metrics.nspdk.feature_version`) and the molecule-to-graph labelling (:func:`mol_to_nx`)."""
    from graphdiff.metrics.nspdk import feature_version

    try:
        labelling = inspect.getsource(mol_to_nx)
    except (OSError, TypeError):
        labelling = "unavailable"
    return hashlib.sha256(f"{feature_version()}\n{labelling}".encode()).hexdigest()[:16]


def _check_nspdk_mean(matrix: sp.csr_matrix) -> None:
    from graphdiff.metrics.nspdk import NSPDK_FEATURES

    if matrix.shape[0] > 1 or matrix.shape[1] != NSPDK_FEATURES or not np.isfinite(matrix.data).all():
        raise ValueError(f"expected a finite [<=1, {NSPDK_FEATURES}] mean vector, got shape {matrix.shape}")


def _nspdk_row(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray] | None:
    """NSPDK feature ids ``[k]`` int32 and values ``[k]`` float64 of a molecule's :func:`mol_to_nx` graph (``None``
    without atoms): ~12 bytes per feature to send back from a worker, against ~100 in the feature dict."""
    from graphdiff.metrics import nspdk

    if mol.GetNumAtoms() == 0:
        return None
    features = nspdk.nspdk_features(mol_to_nx(mol))
    return (np.fromiter(features.keys(), dtype=np.int32, count=len(features)),
            np.fromiter(features.values(), dtype=np.float64, count=len(features)))


def _add_nspdk_features(total: np.ndarray, mols: Sequence[Chem.Mol], n_jobs: int | None) -> int:
    """Add the NSPDK feature vectors of the non-empty ``mols`` to ``total`` ``[NSPDK_FEATURES]``, one molecule after
    the other; return how many were added.

    Each feature is summed in molecule order, as the row sum of :func:`~graphdiff.metrics.nspdk.nspdk_matrix`
    does, so that over consecutive calls ``total`` is that row sum bit for bit, while only one call's compact
    features are held (the dicts and the matrix of all 21,508 MOSES samples took 3 GB).
    """
    rows = [r for r in parallel_map(_nspdk_row, mols, n_jobs=n_jobs, min_items_per_job=NSPDK_MIN_ITEMS)
            if r is not None]
    if rows:
        np.add.at(total, np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows]))
    return len(rows)


def _read_or_compute_fcd(path: Path | None, compute: Callable[[], tuple[np.ndarray, np.ndarray]]
                         ) -> tuple[np.ndarray, np.ndarray]:
    """ChemNet ``(mean, covariance)`` from ``path`` (``.npz``), else computed and, with ``path``, written there."""
    def read(p: Path) -> tuple[np.ndarray, np.ndarray]:
        with np.load(p, allow_pickle=False) as data:
            return data["mu"], data["sigma"]

    cached = read_cache_file(path, read)
    if cached is not None:
        return cached
    mu, sigma = compute()
    if path is not None:
        with atomic_write(path, "wb") as handle:
            np.savez(handle, mu=mu, sigma=sigma)
    return mu, sigma


class MoleculeEvaluator:
    """Evaluate generated molecules against fixed training and reference (test) SMILES.

    What depends only on the training / test sets (canonical training SMILES, ChemNet statistics, the mean
    NSPDK feature vector, fingerprints, fragment and scaffold counts, property values) is computed once, on
    first use, and shared by all evaluators of this process with the same SMILES lists. When persisted, it is
    also stored under ``<dataset root>/reference_stats/<key>/`` (``$GRAPHDIFF_ROOT``, default ``./data``;
    ``<key>`` is :func:`smiles_set_key`), so that later runs skip it.

    Args:
        train_smiles: training SMILES for novelty.
        test_smiles: reference SMILES for FCD, NSPDK and the MOSES-style metrics.
        metrics: subset of :data:`MOLECULE_METRICS`; default all that apply (stability only when the samples
            are RDKit molecules with explicit hydrogens).
        n_jobs: worker processes for parsing and canonicalisation.
        unique_over: ``"valid"`` or ``"relaxed"`` (DiGress's code) — which valid set uniqueness and novelty use.
        device: torch device for ChemNet.
        filters_dir: folder holding MOSES's ``mcf.csv`` and ``wehi_pains.csv`` (see
            :func:`graphdiff.metrics.moses_metrics.load_filters`).
        persist: store the statistics of the training / test sets on disk; ``None``: for sets of at least
            :data:`PERSIST_MIN_SMILES` SMILES.
    """

    def __init__(
        self,
        train_smiles: Iterable[str] | None = None,
        test_smiles: Sequence[str] | None = None,
        metrics: Iterable[str] | None = None,
        n_jobs: int | None = None,
        unique_over: str = "valid",
        device: str | None = "cpu",
        filters_dir: str | None = None,
        persist: bool | None = None,
    ) -> None:
        if unique_over not in ("valid", "relaxed"):
            raise ConfigError(f"unique_over must be 'valid' or 'relaxed', got {unique_over!r}")
        self.train_smiles = list(train_smiles) if train_smiles is not None else None
        self.test_smiles = list(test_smiles) if test_smiles is not None else None
        self.requested = list(metrics) if metrics is not None else None
        if self.requested is not None:
            unknown = [m for m in self.requested if m not in MOLECULE_METRICS]
            if unknown:
                raise ConfigError(f"unknown molecule metrics {unknown}; known: {list(MOLECULE_METRICS)}")
            if self.test_smiles is None and _NEEDS_TEST & set(self.requested):
                raise ConfigError(f"metrics {sorted(_NEEDS_TEST & set(self.requested))} need test_smiles")
            if self.train_smiles is None and "novelty" in self.requested:
                raise ConfigError("novelty needs train_smiles")
        self.n_jobs = n_jobs
        self.unique_over = unique_over
        self.device = device
        self.filters_dir = filters_dir
        self.persist = persist
        self._train_set: SmilesSet | None = None
        self._keys: dict[str, str] = {}

    def _metrics_for(self, samples: Sequence[Any]) -> list[str]:
        if self.requested is not None:
            return self.requested
        out = ["validity", "relaxed_validity", "strict_validity", "uniqueness"]
        if self.train_smiles is not None:
            out.append("novelty")
        if any(isinstance(s, Chem.Mol) and any(a.GetAtomicNum() == 1 for a in s.GetAtoms()) for s in samples):
            out += ["atom_stability", "mol_stability"]
        if self.test_smiles is not None:
            out += ["fcd", "nspdk", *_MOSES_KEYS]
        return out

    def _key(self, split: str) -> str:
        if split not in self._keys:
            smiles = self.train_smiles if split == "train" else self.test_smiles
            assert smiles is not None
            self._keys[split] = smiles_set_key(smiles)
        return self._keys[split]

    def _cache_dir(self, split: str) -> Path | None:
        """Folder for the on-disk statistics of the ``train`` or ``test`` SMILES, or ``None`` if not persisted."""
        smiles = self.train_smiles if split == "train" else self.test_smiles
        persist = len(smiles) >= PERSIST_MIN_SMILES if self.persist is None else self.persist
        return default_root() / REFERENCE_CACHE / self._key(split) if persist else None

    def _file(self, split: str, name: str) -> Path | None:
        folder = self._cache_dir(split)
        return folder / name if folder is not None else None

    def train_set(self) -> SmilesSet:
        """Canonical (non-stereo) training SMILES."""
        if self._train_set is None:
            assert self.train_smiles is not None

            def compute() -> Iterable[str]:
                canon = parallel_map(_canonical_quietly, self.train_smiles, n_jobs=self.n_jobs,
                                     min_items_per_job=2000)
                return (s for s in canon if s is not None)

            key = self._key("train")
            self._train_set = _shared(f"train:{key}", lambda: _read_or_compute_smiles_set(
                self._file("train", "canonical_smiles.json"), compute))
        return self._train_set

    def test_mol_chunks(self) -> Iterator[list[Chem.Mol]]:
        """Sanitised reference molecules, :data:`REFERENCE_CHUNK` SMILES at a time (unparsable ones dropped).

        They are parsed again on each pass rather than kept: ~28 KiB per molecule, 5 GB for MOSES's test set.
        """
        assert self.test_smiles is not None
        _quiet_rdkit()
        for start in range(0, len(self.test_smiles), REFERENCE_CHUNK):
            mols = [Chem.MolFromSmiles(s) for s in self.test_smiles[start : start + REFERENCE_CHUNK]]
            yield [m for m in mols if m is not None]

    def fcd_reference(self) -> tuple[np.ndarray, np.ndarray]:
        """ChemNet mean and covariance of the canonical test SMILES."""
        return _shared(f"fcd:{self._key('test')}", lambda: _read_or_compute_fcd(
            self._file("test", "fcd.npz"),
            lambda: fcd_statistics([canonical_smiles(m) for c in self.test_mol_chunks() for m in c], self.device)))

    def nspdk_reference(self) -> sp.csr_matrix:
        """Mean NSPDK feature vector of the test molecules (:func:`graphdiff.metrics.nspdk.nspdk_mean` of their
        :func:`mol_to_nx` graphs, bit for bit, in chunks of :data:`REFERENCE_CHUNK` molecules).

        Stored as ``nspdk_mean.<tag>.npz`` (``<tag>``: :func:`nspdk_reference_tag`), so that a change of the
        feature code gives a new file rather than reading a stale one.
        """
        from graphdiff.metrics.nspdk import NSPDK_FEATURES

        def compute() -> sp.csr_matrix:
            log.info("NSPDK features of %d reference molecules", len(self.test_smiles))
            total, count = np.zeros(NSPDK_FEATURES), 0
            for chunk in self.test_mol_chunks():  # as nspdk_mean: each chunk's row sum, added in order
                part = np.zeros(NSPDK_FEATURES)
                count += _add_nspdk_features(part, chunk, self.n_jobs)
                total += part
            if count == 0:
                return sp.csr_matrix((0, NSPDK_FEATURES), dtype=np.float64)
            return sp.csr_matrix((total / count)[None, :])

        tag = nspdk_reference_tag()
        return _shared(f"nspdk:{self._key('test')}:{tag}", lambda: _read_or_compute_sparse(
            self._file("test", f"nspdk_mean.{tag}.npz"), compute, _check_nspdk_mean))

    def moses_reference(self) -> ReferenceStatistics:
        """:class:`~graphdiff.metrics.moses_metrics.ReferenceStatistics` of the test molecules."""
        from graphdiff.metrics.moses_metrics import ReferenceStatistics

        return _shared(f"moses:{self._key('test')}",
                       lambda: ReferenceStatistics(self.test_mol_chunks, self.n_jobs, self._cache_dir("test")))

    def __call__(self, generated: Sequence[Any]) -> dict[str, Any]:
        """Metrics of ``generated`` (RDKit mols, SMILES strings, or ``None`` for failed samples).

        Returns:
            ``{metric: value}``; with ``filters`` also ``filters_source`` (which alert set was used).
        """
        with single_threaded_blas():
            return self._evaluate(generated)

    def _evaluate(self, generated: Sequence[Any]) -> dict[str, Any]:
        from graphdiff.metrics import moses_metrics
        from graphdiff.metrics.nspdk import NSPDK_FEATURES, nspdk_mmd

        samples = list(generated)
        if not samples:
            raise ConfigError("no generated molecules to evaluate")
        metrics = self._metrics_for(samples)
        wanted = set(metrics)
        n = len(samples)
        stability = bool(wanted & {"atom_stability", "mol_stability"})
        scored = parallel_map(partial(_score_quietly, stability=stability), samples, n_jobs=self.n_jobs,
                              min_items_per_job=500)
        valid = [p for p in scored if p.valid is not None]
        out: dict[str, float] = {}
        out["validity"] = len(valid) / n
        out["relaxed_validity"] = sum(p.relaxed_valid for p in scored) / n
        out["strict_validity"] = sum(p.valid is not None and p.n_fragments == 1 for p in scored) / n
        pool = (
            [p.smiles for p in valid]
            if self.unique_over == "valid"
            else [p.relaxed_smiles for p in scored if p.relaxed_smiles is not None]
        )
        unique = list(set(pool))
        out["uniqueness"] = len(unique) / len(pool) if pool else 0.0
        if "novelty" in wanted:
            novel = np.count_nonzero(~self.train_set().contains(unique))
            out["novelty"] = int(novel) / len(unique) if unique else 0.0
        if stability:
            counts = [p.stability for p in scored]
            n_atoms = sum(c[1] for c in counts)
            out["atom_stability"] = sum(c[0] for c in counts) / n_atoms if n_atoms else 0.0
            out["mol_stability"] = sum(c[1] > 0 and c[0] == c[1] for c in counts) / n
        valid_mols = MolBinaries([p.valid for p in valid])
        valid_smiles = [p.smiles for p in valid]
        del scored, valid
        if "fcd" in wanted:
            enough = len(valid_smiles) >= 2
            out["fcd"] = fcd_score(valid_smiles, self.fcd_reference(), self.device) if enough else float("nan")
        if "nspdk" in wanted:
            log.info("NSPDK of %d molecules", len(valid_mols))
            reference = self.nspdk_reference()
            total, count = np.zeros(NSPDK_FEATURES), 0
            workers = resolve_n_jobs(self.n_jobs, len(valid_mols), NSPDK_MIN_ITEMS)
            for start in range(0, len(valid_mols), SAMPLE_CHUNK):  # the row sum of all, in molecule order
                count += _add_nspdk_features(total, valid_mols[start : start + SAMPLE_CHUNK], workers)
            out["nspdk"] = nspdk_mmd(reference, sp.csr_matrix((total / count)[None, :])) if count else float("nan")
        moses_wanted = [k for k in _MOSES_KEYS if k in wanted]
        if moses_wanted:
            log.info("MOSES metrics (%s) of %d molecules", ", ".join(moses_wanted), len(valid_mols))
            out.update(
                moses_metrics.moses_metrics(
                    valid_mols, self.moses_reference(), moses_wanted, filters_dir=self.filters_dir, n_jobs=self.n_jobs
                )
            )
        result: dict[str, Any] = {m: out[m] for m in metrics if m in out}
        if "filters_source" in out:
            result["filters_source"] = out["filters_source"]
        return result
