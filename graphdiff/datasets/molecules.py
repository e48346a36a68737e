"""Molecule datasets: QM9, MOSES, ZINC250k, GuacaMol, and any file of SMILES.

Every source goes through the same row processing (:func:`parse_smiles`): each SMILES is parsed
by RDKit, its canonical SMILES (no stereochemistry, see :func:`graphdiff.chem.canonical_smiles`)
is kept, and the molecule becomes a graph of atom types (element + formal charge) and bond
classes, hydrogens implicit unless ``explicit_h``. Rows are dropped -- counted in
``info.skipped`` with their first line numbers, and logged -- when the SMILES is invalid, the
molecule has more than ``max_nodes`` atoms, holds a radical (heavy-atom graphs cannot carry
one), an unsupported bond, no heavy atom (``[H][H]``), or (only with ``skip_unknown_atoms``) an atom type outside the
vocabulary; otherwise an unknown atom type stops processing with a :class:`DataError` naming it
and its line.

Registered datasets (details, sources and measured counts in ``docs/datasets.md``):

* ``qm9`` / ``qm9_h``: 130,831 QM9 molecules, heavy atoms / explicit hydrogens; DiGress split.
* ``moses``: the MOSES benchmark files; ``val`` and ``test`` are both MOSES ``test``,
  ``test_scaffolds`` is an extra split.
* ``zinc250k``: the chemical VAE ZINC250k file with the GDSS/MoFlow test indices.
* ``guacamol``: the GuacaMol v1 train / valid / test files.

Large files are parsed in worker processes (``fork``, Linux); ``$GRAPHDIFF_NUM_WORKERS`` sets
their number (``0`` = in this process).
"""

from __future__ import annotations

import csv
import ctypes
import gzip
import io
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import zlib
from array import array
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rdkit import Chem
from rdkit.Chem import BondType

from graphdiff.chem import AtomType, AtomVocabulary, BondVocabulary, atom_key, quiet_rdkit
from graphdiff.datasets.registry import (
    BuildContext,
    BuiltDataset,
    GraphDataset,
    build_or_load,
    check_options,
    dataset_root,
    register,
    user_dataset_location,
)
from graphdiff.datasets.sources import GDSS_DATA_URL, ContentPin, RawFile, resolve
from graphdiff.errors import ConfigError, DataError
from graphdiff.io import file_sha256
from graphdiff.storage import GraphList

__all__ = [
    "ParsedMolecules",
    "SmilesRecords",
    "load_smiles_file",
    "parse_smiles",
    "qm9_split",
    "read_smiles_records",
]

log = logging.getLogger(__name__)

#: How many line numbers per skip reason are kept in ``info.skipped``.
MAX_REPORTED_LINES = 5
#: Files with fewer rows are parsed in this process.
PARALLEL_MIN_ROWS = 50_000
_CHUNK_ROWS = 20_000
WORKERS_ENV = "GRAPHDIFF_NUM_WORKERS"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

SMILES_LINE_SUFFIXES = (".smi", ".smiles", ".txt")
SMILES_CSV_SUFFIXES = (".csv",)


# ---------------------------------------------------------------------------------------------- reading
@dataclass
class SmilesRecords:
    """The SMILES rows of one file.

    Attributes:
        path: the file.
        smiles: one string per data row (stripped; may be empty or invalid).
        lines: 1-based line number where each row starts.
        ids: values of ``id_column`` per row, when one was asked for.
        columns: CSV header (empty for line-based files).
    """

    path: Path
    smiles: list[str]
    lines: list[int]
    ids: list[str] | None = None
    columns: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.smiles)


def read_smiles_records(
    path: str | os.PathLike,
    column: str | None = None,
    id_column: str | None = None,
    limit: int | None = None,
) -> SmilesRecords:
    """Read the SMILES of a file, one record per molecule.

    Formats (chosen by the name; each may be gzipped, ``.gz``):

    * ``.smi`` / ``.smiles`` / ``.txt``: one SMILES per line, optionally followed by whitespace and
      a name; blank lines are ignored, a first line whose first word is ``smiles`` is a header.
    * ``.csv``: a header row; the SMILES column is ``column``, by default the one named ``smiles``
      in any letter case.

    Args:
        path: the file.
        column: CSV column holding the SMILES.
        id_column: CSV column whose values are kept as :attr:`SmilesRecords.ids`.
        limit: keep only the first ``limit`` records.

    Raises:
        DataError: missing, empty, truncated or undecodable file; unknown file type; no SMILES
            column (the message lists the columns).
    """
    path = Path(path)
    lower = path.name.lower()
    plain = lower[:-3] if lower.endswith(".gz") else lower
    if plain.endswith(SMILES_CSV_SUFFIXES):
        is_csv = True
    elif plain.endswith(SMILES_LINE_SUFFIXES):
        is_csv = False
    else:
        endings = ", ".join(SMILES_LINE_SUFFIXES + SMILES_CSV_SUFFIXES)
        raise DataError(f"{path}: unknown SMILES file type; expected {endings} (optionally .gz)")
    text = _read_text(path)
    if limit is not None and limit < 1:
        raise ConfigError(f"limit={limit}: expected a positive number of rows")
    records = _read_csv(path, text, column, id_column, limit) if is_csv else _read_lines(path, text, limit)
    if len(records) == 0:
        raise DataError(f"{path}: no SMILES rows (only a header)")
    return records


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
        text = data.decode("utf-8-sig")
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: truncated or corrupt gzip file ({exc})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    return text


def _read_lines(path: Path, text: str, limit: int | None) -> SmilesRecords:
    smiles, lines = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        if not smiles and not lines and words[0].lower() == "smiles":
            continue  # header line
        smiles.append(words[0])
        lines.append(number)
        if limit is not None and len(smiles) >= limit:
            break
    return SmilesRecords(path, smiles, lines)


def _read_csv(path: Path, text: str, column: str | None, id_column: str | None, limit: int | None) -> SmilesRecords:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as exc:
        raise DataError(f"{path}: line 1: malformed CSV ({exc})") from None
    col = _find_column(path, header, column)
    id_col = _find_column(path, header, id_column) if id_column is not None else None
    smiles, lines, ids = [], [], []
    previous = reader.line_num
    try:
        for row in reader:
            start, previous = previous + 1, reader.line_num
            if not row or not any(cell.strip() for cell in row):
                continue
            smiles.append(row[col].strip() if col < len(row) else "")
            lines.append(start)
            if id_col is not None:
                ids.append(row[id_col].strip() if id_col < len(row) else "")
            if limit is not None and len(smiles) >= limit:
                break
    except csv.Error as exc:
        raise DataError(f"{path}: line {reader.line_num}: malformed CSV ({exc})") from None
    return SmilesRecords(path, smiles, lines, ids if id_col is not None else None, header)


def _find_column(path: Path, header: list[str], column: str | None) -> int:
    if column is not None:
        if column in header:
            return header.index(column)
        raise DataError(f"{path}: no column {column!r}; columns are {', '.join(header)}")
    for i, name in enumerate(header):
        if name.lower() == "smiles":
            return i
    raise DataError(f"{path}: no 'smiles' column; columns are {', '.join(header)} (pass column=...)")


# ---------------------------------------------------------------------------------------------- parsing
_SKIP_MESSAGES = {
    "invalid_smiles": "invalid SMILES",
    "too_many_atoms": "more atoms than max_nodes",
    "radical": "radicals (not representable without explicit hydrogens)",
    "unsupported_bond": "bonds other than single/double/triple/aromatic",
    "unknown_atom": "atom types outside the vocabulary",
    "hydrogen_only": "no heavy atom (H2, H+)",
    "uncharacterized": "QM9 molecules listed as uncharacterized",
}


@dataclass
class ParsedMolecules:
    """Molecules of one source as flat arrays, before the atom vocabulary is applied.

    Atoms are :func:`graphdiff.chem.atom_key` values; bonds are stored once, ``i < j`` local
    indices sorted per molecule, with edge classes of ``BondVocabulary(aromatic=not kekulize)``.

    Attributes:
        atom_keys: ``[N]`` int64 atom keys of all kept molecules.
        num_atoms: ``[G]`` atoms per molecule.
        edge_index: ``[2, M]`` int64 local bond ends.
        edge_types: ``[M]`` int64 edge classes (>= 1).
        num_bonds: ``[G]`` bonds per molecule.
        smiles: canonical SMILES per molecule.
        rows: ``[G]`` 0-based position of each molecule's record in the file.
        lines: ``[G]`` 1-based line number of each molecule.
        skipped: reason -> ``{"count": n, "lines": [first line numbers]}``.
    """

    atom_keys: np.ndarray
    num_atoms: np.ndarray
    edge_index: np.ndarray
    edge_types: np.ndarray
    num_bonds: np.ndarray
    smiles: list[str]
    rows: np.ndarray
    lines: np.ndarray
    skipped: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.smiles)

    def select(self, keep: np.ndarray) -> ParsedMolecules:
        """The molecules where ``keep`` (``[G]`` bool) is true."""
        keep = np.asarray(keep, dtype=bool)
        node_keep = np.repeat(keep, self.num_atoms)
        edge_keep = np.repeat(keep, self.num_bonds)
        return ParsedMolecules(
            atom_keys=self.atom_keys[node_keep],
            num_atoms=self.num_atoms[keep],
            edge_index=self.edge_index[:, edge_keep],
            edge_types=self.edge_types[edge_keep],
            num_bonds=self.num_bonds[keep],
            smiles=[s for s, k in zip(self.smiles, keep.tolist(), strict=True) if k],
            rows=self.rows[keep],
            lines=self.lines[keep],
            skipped=dict(self.skipped),
        )

    def atom_types(self) -> list[AtomType]:
        """The distinct atom types present."""
        return [AtomType.from_key(k) for k in np.unique(self.atom_keys).tolist()]

    def apply_vocabulary(
        self, atoms: AtomVocabulary, where: str, skip_unknown_atoms: bool = False
    ) -> tuple[ParsedMolecules, np.ndarray]:
        """Map atom keys to class indices.

        Args:
            atoms: the node classes.
            where: file name for error messages.
            skip_unknown_atoms: drop molecules with atom types outside ``atoms`` (counted as
                ``"unknown_atom"``) instead of raising.

        Returns:
            ``(kept molecules, [N'] node classes)``.

        Raises:
            DataError: an unknown atom type, naming it and the first line where it occurs.
        """
        table = atoms.key_table().numpy()
        classes = table[self.atom_keys]
        unknown = classes < 0
        if not unknown.any():
            return self, classes
        graph_of_node = np.repeat(np.arange(len(self)), self.num_atoms)
        bad_graphs = np.zeros(len(self), dtype=bool)
        bad_graphs[graph_of_node[unknown]] = True
        first = int(np.argmax(unknown))
        name = AtomType.from_key(int(self.atom_keys[first])).name
        if not skip_unknown_atoms:
            line = int(self.lines[graph_of_node[first]])
            raise DataError(
                f"{where}: line {line}: atom type {name!r} is not in the atom types [{', '.join(atoms.names)}]; "
                "add it to atom_types or pass skip_unknown_atoms=True"
            )
        kept = self.select(~bad_graphs)
        names = sorted({AtomType.from_key(k).name for k in np.unique(self.atom_keys[unknown]).tolist()})
        kept.skipped["unknown_atom"] = {
            "count": int(bad_graphs.sum()),
            "lines": self.lines[bad_graphs][:MAX_REPORTED_LINES].tolist(),
            "atoms": names,
        }
        _warn_skipped(where, "unknown_atom", kept.skipped["unknown_atom"])
        return kept, table[kept.atom_keys]

    def to_graph_list(self, node_classes: np.ndarray) -> GraphList:
        """A :class:`GraphList` with ``node_classes`` (``[N]``, from :meth:`apply_vocabulary`)."""
        if node_classes.size and int(node_classes.max()) > 255:
            raise ValueError("more than 256 atom types do not fit the uint8 storage")
        return GraphList(
            node_types=torch.from_numpy(node_classes.astype(np.uint8)),
            node_ptr=_ptr(self.num_atoms),
            edge_index=torch.from_numpy(self.edge_index.astype(np.int32)),
            edge_types=torch.from_numpy(self.edge_types.astype(np.uint8)),
            edge_ptr=_ptr(self.num_bonds),
        )


def _ptr(counts: np.ndarray) -> torch.Tensor:
    ptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return torch.from_numpy(ptr)


def parse_smiles(
    records: SmilesRecords,
    explicit_h: bool = False,
    kekulize: bool = False,
    max_nodes: int | None = None,
    keep: np.ndarray | None = None,
    num_workers: int | None = None,
) -> ParsedMolecules:
    """Turn SMILES records into molecule graphs (the row processing of every molecule dataset).

    Args:
        records: the rows of a file.
        explicit_h: add every hydrogen as a node.
        kekulize: store Kekulé bonds instead of aromatic ones.
        max_nodes: drop molecules with more atoms (nodes, hydrogens included if ``explicit_h``).
        keep: optional ``[R]`` bool mask of the records to parse (the others are ignored).
        num_workers: worker processes; default ``$GRAPHDIFF_NUM_WORKERS`` or, for files of at
            least 50,000 rows, the number of CPUs (at most 8).

    Returns:
        The kept molecules, with the dropped rows counted in ``skipped`` and logged as warnings.
    """
    if max_nodes is not None and max_nodes < 1:
        raise ConfigError(f"max_nodes={max_nodes}: expected a positive number of atoms")
    positions = np.arange(len(records)) if keep is None else np.flatnonzero(keep)
    tasks = []
    for start in range(0, len(positions), _CHUNK_ROWS):
        rows = positions[start : start + _CHUNK_ROWS].tolist()
        smiles = [records.smiles[i] for i in rows]
        lines = [records.lines[i] for i in rows]
        tasks.append(_ChunkTask(rows, smiles, lines, explicit_h, kekulize, max_nodes))
    workers = _num_workers(len(positions)) if num_workers is None else num_workers
    chunks = _run_tasks(tasks, workers)
    parsed = _concat_chunks(chunks)
    for reason, entry in parsed.skipped.items():
        _warn_skipped(str(records.path), reason, entry)
    return parsed


@dataclass
class _ChunkTask:
    rows: list[int]
    smiles: list[str]
    lines: list[int]
    explicit_h: bool
    kekulize: bool
    max_nodes: int | None


@dataclass
class _Chunk:
    atom_keys: array
    num_atoms: array
    edge_index: np.ndarray  # [2, M]
    edge_types: np.ndarray  # [M]
    num_bonds: array
    smiles: list[str]
    rows: array
    lines: array
    skipped: dict[str, list]  # reason -> [count, first lines]


#: Edge class by twice the bond order (RDKit's aromatic order is 1.5): 2 -> single, 3 -> aromatic,
#: 4 -> double, 6 -> triple.
_CLASS_BY_DOUBLE_ORDER = np.array([0, 0, 1, 4, 2, 0, 3], dtype=np.int64)
_TRIU: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _bonds_of(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(i, j, class)`` of every bond, ``i < j``, sorted; from RDKit's bond-order matrix (one C++ call)."""
    orders = Chem.GetAdjacencyMatrix(mol, useBO=True)
    n = orders.shape[0]
    upper = _TRIU.get(n)
    if upper is None:
        upper = _TRIU[n] = np.triu_indices(n, 1)
    values = orders[upper]
    nz = np.flatnonzero(values)
    return upper[0][nz], upper[1][nz], _CLASS_BY_DOUBLE_ORDER[(values[nz] * 2).astype(np.int64)]


def _parse_chunk(task: _ChunkTask) -> _Chunk:
    """Parse one chunk of rows (runs in worker processes: RDKit, NumPy and plain Python only).

    Per-atom RDKit calls are the slow part, so SMILES text decides what must be looked at: charges
    and radicals only where the canonical SMILES has a bracket atom, quadruple and dative bonds only
    where the input has a ``$`` or an arrow.
    """
    bond_classes = BondVocabulary(aromatic=not task.kekulize).classes_by_bond_type
    keys, num_atoms, num_bonds = array("q"), array("q"), array("q")
    rows, lines = array("q"), array("q")
    edge_i, edge_j, edge_t, kept_smiles = [], [], [], []
    skipped: dict[str, list] = {}

    def skip(reason: str, line: int) -> None:
        entry = skipped.setdefault(reason, [0, []])
        entry[0] += 1
        if len(entry[1]) < MAX_REPORTED_LINES:
            entry[1].append(line)

    with quiet_rdkit():
        for row, smiles, line in zip(task.rows, task.smiles, task.lines, strict=True):
            mol = Chem.MolFromSmiles(smiles) if smiles else None
            if mol is None or mol.GetNumAtoms() == 0:
                skip("invalid_smiles", line)
                continue
            if mol.GetNumHeavyAtoms() != mol.GetNumAtoms():
                # Hydrogens the parser keeps as atoms (isotopes such as [2H], [H][H]) are folded into
                # their heavy atoms like any other hydrogen; a molecule of hydrogens only is dropped.
                try:
                    mol = Chem.RemoveAllHs(mol)
                except (RuntimeError, ValueError):
                    mol = None
                if mol is None or mol.GetNumAtoms() == 0 or mol.GetNumHeavyAtoms() != mol.GetNumAtoms():
                    skip("hydrogen_only", line)
                    continue
            if ("$" in smiles or ">" in smiles or "<" in smiles) and any(
                b.GetBondType() not in bond_classes and b.GetBondType() != BondType.AROMATIC for b in mol.GetBonds()
            ):
                skip("unsupported_bond", line)
                continue
            canonical = Chem.MolToSmiles(mol, isomericSmiles=False)
            # RDKit writes charged atoms and radicals in brackets. (The input SMILES is no guide:
            # sanitisation turns an input nitro group N(=O)=O into [N+](=O)[O-].)
            bracket = "[" in canonical
            if bracket and not task.explicit_h and any(a.GetNumRadicalElectrons() for a in mol.GetAtoms()):
                skip("radical", line)
                continue
            if task.explicit_h:
                mol = Chem.AddHs(mol)
            n = mol.GetNumAtoms()
            if task.max_nodes is not None and n > task.max_nodes:
                skip("too_many_atoms", line)
                continue
            if task.kekulize:
                try:
                    Chem.Kekulize(mol, clearAromaticFlags=True)
                except (RuntimeError, ValueError):
                    skip("invalid_smiles", line)
                    continue
            atom = mol.GetAtomWithIdx
            if bracket:
                pairs = [(atom(k).GetAtomicNum(), atom(k).GetFormalCharge()) for k in range(n)]
                if any(abs(c) >= 16 for _, c in pairs):
                    skip("invalid_smiles", line)
                    continue
                keys.extend(atom_key(z, c) for z, c in pairs)
            else:  # organic-subset atoms only: no formal charges
                keys.extend(atom_key(atom(k).GetAtomicNum(), 0) for k in range(n))
            i, j, t = _bonds_of(mol)
            edge_i.append(i)
            edge_j.append(j)
            edge_t.append(t)
            num_atoms.append(n)
            num_bonds.append(len(t))
            kept_smiles.append(canonical)
            rows.append(row)
            lines.append(line)

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)

    return _Chunk(
        keys, num_atoms, np.stack([cat(edge_i), cat(edge_j)]), cat(edge_t), num_bonds, kept_smiles, rows, lines,
        skipped,
    )


def _num_workers(rows: int) -> int:
    env = os.environ.get(WORKERS_ENV)
    if env is not None:
        try:
            return max(0, int(env))
        except ValueError:
            raise ConfigError(f"${WORKERS_ENV}={env!r}: expected a number of processes") from None
    cpus = os.cpu_count() or 1
    if rows < PARALLEL_MIN_ROWS or cpus < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return 0
    return min(cpus, 8)


def _run_tasks(tasks: list[_ChunkTask], workers: int) -> list[_Chunk]:
    """Parse the chunks, in ``workers`` forked processes when there are several chunks.

    No worker outlives the parse: on any exception (Ctrl-C, and SIGTERM, see :func:`_sigterm_raises`) the
    pool is shut down without waiting for queued chunks, and on Linux each worker is also sent SIGTERM when
    this process dies, even by SIGKILL (:func:`_init_worker`).
    """
    if workers <= 0 or len(tasks) <= 1:
        return [_parse_chunk(t) for t in tasks]
    try:
        # fork: workers start at once and need not re-import the caller's script.
        context = multiprocessing.get_context("fork")
        with _sigterm_raises():
            pool = ProcessPoolExecutor(
                max_workers=min(workers, len(tasks)), mp_context=context, initializer=_init_worker,
                initargs=(os.getpid(),),
            )
            try:
                chunks = list(pool.map(_parse_chunk, tasks))
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown()
            return chunks
    except (BrokenProcessPool, OSError, ValueError) as exc:
        log.warning("parallel SMILES parsing failed (%s); parsing in this process", exc)
        return [_parse_chunk(t) for t in tasks]


class _Terminated(BaseException):
    """SIGTERM arrived while :func:`_sigterm_raises` was in force."""


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into :class:`_Terminated` for the block, so the code inside can stop its workers.

    Only where SIGTERM would otherwise kill the process outright (its default action) and only in the main
    thread (the one Python signal handlers run in). After the block the previous handler is back, and a
    SIGTERM that arrived is delivered again to this process, which then ends as it would have.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        raise
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _init_worker(parent: int) -> None:
    """Worker process set-up: die with the parse's process ``parent`` rather than be orphaned.

    SIGTERM gets its default action back (the fork copied the parent's handler). On Linux,
    ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` has the kernel send SIGTERM to this worker when its parent dies;
    a parent that died before the call is caught by the ``getppid`` check after it.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _concat_chunks(chunks: list[_Chunk]) -> ParsedMolecules:
    def cat(name: str) -> np.ndarray:
        parts = [np.frombuffer(getattr(c, name), dtype=np.int64) for c in chunks]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    skipped: dict[str, dict[str, Any]] = {}
    for c in chunks:
        for reason, (count, lines) in c.skipped.items():
            entry = skipped.setdefault(reason, {"count": 0, "lines": []})
            entry["count"] += count
            entry["lines"] = (entry["lines"] + lines)[:MAX_REPORTED_LINES]
    return ParsedMolecules(
        atom_keys=cat("atom_keys"),
        num_atoms=cat("num_atoms"),
        edge_index=np.concatenate([c.edge_index for c in chunks], 1) if chunks else np.zeros((2, 0), np.int64),
        edge_types=np.concatenate([c.edge_types for c in chunks]) if chunks else np.zeros(0, np.int64),
        num_bonds=cat("num_bonds"),
        smiles=[s for c in chunks for s in c.smiles],
        rows=cat("rows"),
        lines=cat("lines"),
        skipped=skipped,
    )


def _warn_skipped(where: str, reason: str, entry: dict[str, Any]) -> None:
    log.warning(
        "%s: skipped %d row(s) with %s (first at line(s) %s)",
        where, entry["count"], _SKIP_MESSAGES.get(reason, reason), ", ".join(map(str, entry["lines"])),
    )


# ---------------------------------------------------------------------------------------------- assembly
def _built(
    parsed: ParsedMolecules,
    node_classes: np.ndarray,
    atoms: AtomVocabulary,
    bonds: BondVocabulary,
    splits: dict[str, np.ndarray],
    source: dict[str, Any],
    skipped: dict[str, Any],
) -> BuiltDataset:
    return BuiltDataset(
        graphs=parsed.to_graph_list(node_classes),
        splits={k: torch.as_tensor(np.sort(v), dtype=torch.long) for k, v in splits.items()},
        kind="molecule",
        node_types=atoms.names,
        edge_types=bonds.names,
        source=source,
        skipped=skipped,
        valencies=atoms.valencies,
        atom_weights=atoms.atom_weights,
        smiles=parsed.smiles,
    )


def _file_source(path: Path) -> dict[str, str]:
    return {"file": str(path.resolve()), "sha256": file_sha256(path)}


def _multi_file_source(paths: Sequence[Path]) -> dict[str, Any]:
    """The first file's fingerprint (what the cache checks) plus every file's."""
    files = [_file_source(p) for p in paths]
    return {**files[0], "files": files}


def _merge_skipped(per_file: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Skip counts of several files: totals, with each file's count and first lines under ``by_file``."""
    merged: dict[str, Any] = {}
    for name, skipped in per_file.items():
        for reason, entry in skipped.items():
            total = merged.setdefault(reason, {"count": 0, "by_file": {}})
            total["count"] += entry["count"]
            total["by_file"][name] = entry
    return merged


def _concat_parsed(parts: Sequence[ParsedMolecules]) -> ParsedMolecules:
    return ParsedMolecules(
        atom_keys=np.concatenate([p.atom_keys for p in parts]),
        num_atoms=np.concatenate([p.num_atoms for p in parts]),
        edge_index=np.concatenate([p.edge_index for p in parts], axis=1),
        edge_types=np.concatenate([p.edge_types for p in parts]),
        num_bonds=np.concatenate([p.num_bonds for p in parts]),
        smiles=[s for p in parts for s in p.smiles],
        rows=np.concatenate([p.rows for p in parts]),
        lines=np.concatenate([p.lines for p in parts]),
    )


# ---------------------------------------------------------------------------------------------- QM9
#: Atom types of QM9's 130,831 molecules (heavy atoms): the four elements and the charged states
#: that occur in the SMILES (N+ 582 atoms, O- 411, C- 97, N- 74).
QM9_ATOMS = ["C", "C-", "N", "N+", "N-", "O", "O-", "F"]
QM9_PACK = RawFile("qm9.csv.gz", url=None, sha256=None, subdir="qm9")
#: QM9 as ``qm9.csv``, in one of two layouts told apart by the header. MoleculeNet / DeepChem's table
#: (``mol_id,smiles,...``) has no published checksum, so graphdiff never downloads it: it is read when placed
#: locally. The download is MoFlow's table as the GDSS repository holds it (``,SMILES1,SMILES2,A,B,...``: an
#: unnamed first column with the 0-based row number = GDB index - 1; ``SMILES1`` is the column GDSS reads),
#: at the pinned GDSS commit and checked against its git blob id.
QM9_CSV = RawFile(
    "qm9.csv", GDSS_DATA_URL + "qm9.csv", subdir="qm9", git_blob="98f5b0dc8a21e938977fe5dbe829986c17c2c09f"
)
#: The 3,054 molecules that failed the QM9 consistency check (Ramakrishnan et al.), as DiGress uses it. No
#: checksum of the file is published, so its download is pinned by what it parses to: the SHA-256 of its sorted
#: GDB indices (:func:`graphdiff.datasets.sources.content_sha256`), which are the 3,054 of 1..133,885 missing
#: from the 130,831-molecule ``qm9pack`` table.
QM9_UNCHARACTERIZED = RawFile(
    "uncharacterized.txt", url="https://ndownloader.figshare.com/files/3195404", subdir="qm9",
    content=ContentPin(lambda path: sorted(_read_uncharacterized(path)),
                       "ba70374c21dbc8a32e19ef74a9882ba5dc16c9d3eec3c8aa93631a90221e9777", "sorted GDB indices"),
)
QM9_FULL_SIZE = 130_831
QM9_TRAIN_SIZE = 100_000


def qm9_split(num_graphs: int, seed: int = 42) -> dict[str, np.ndarray]:
    """DiGress's QM9 split: shuffle, then 100,000 train, 10% test, the rest validation.

    The shuffle is ``numpy.random.RandomState(seed).permutation(num_graphs)`` -- the order
    ``pandas.DataFrame.sample(frac=1, random_state=seed)`` gives, which DiGress uses. Then
    ``n_test = int(0.1 * G)``, ``n_train = round(G * 100000 / 130831)`` (exactly 100,000 for the
    full data set; proportional for subsets such as ``limit``), and the permutation gives train its
    first ``n_train`` entries, val the next ``G - n_train - n_test``, test the last ``n_test``.
    """
    perm = np.random.RandomState(seed).permutation(num_graphs)
    n_test = int(0.1 * num_graphs)
    n_train = min(int(round(num_graphs * QM9_TRAIN_SIZE / QM9_FULL_SIZE)), num_graphs - n_test)
    return {"train": perm[:n_train], "val": perm[n_train : num_graphs - n_test], "test": perm[num_graphs - n_test :]}


def _resolve_qm9(ctx: BuildContext) -> tuple[Path, list[Path]]:
    """The QM9 table to read: a local ``qm9.csv.gz`` (``Index,SMILES,...``), else ``qm9.csv`` (see :data:`QM9_CSV`)."""
    try:
        return resolve(ctx.name, QM9_PACK, ctx.root, download=False), []
    except DataError:
        pass
    try:
        return resolve(ctx.name, QM9_CSV, ctx.root), []
    except DataError as exc:
        raise DataError(f"{exc} (or a qm9.csv.gz with columns Index,SMILES)") from None


def _build_qm9(ctx: BuildContext, explicit_h: bool) -> BuiltDataset:
    opts = ctx.options
    path, _ = _resolve_qm9(ctx)
    header = _csv_header(path)
    extra: list[Path] = []
    skipped: dict[str, Any] = {}
    if "mol_id" in header or "SMILES1" in header:  # DeepChem / MoFlow: drop the uncharacterized as DiGress does
        row_numbers = "mol_id" not in header  # MoFlow: the first column is the row number, GDB index - 1
        column, id_column = ("SMILES1", header[0]) if row_numbers else ("smiles", "mol_id")
        records = read_smiles_records(path, column=column, id_column=id_column, limit=opts["limit"])
        unc_path = resolve(ctx.name, QM9_UNCHARACTERIZED, ctx.root)
        extra.append(unc_path)
        uncharacterized = _read_uncharacterized(unc_path)
        pairs = zip(records.ids, records.lines, strict=True)
        ids = np.array([_gdb_index(path, value, line, row_numbers) for value, line in pairs], dtype=np.int64)
        drop = np.isin(ids, np.fromiter(uncharacterized, dtype=np.int64))
        if drop.any():
            lines = np.asarray(records.lines)[drop]
            skipped["uncharacterized"] = {"count": int(drop.sum()), "lines": lines[:MAX_REPORTED_LINES].tolist()}
        keep = ~drop
    elif "SMILES" in header:
        records = read_smiles_records(path, column="SMILES", limit=opts["limit"])
        keep = None
    else:
        raise DataError(
            f"{path}: not a QM9 table; expected columns Index,SMILES or mol_id,smiles or ,SMILES1,SMILES2, "
            f"found {', '.join(header)}"
        )

    parsed = parse_smiles(records, explicit_h=explicit_h, kekulize=opts["kekulize"], keep=keep)
    atoms = AtomVocabulary.from_names(QM9_ATOMS + (["H"] if explicit_h else []))
    parsed, classes = parsed.apply_vocabulary(atoms, str(path))
    bonds = BondVocabulary(aromatic=not opts["kekulize"])
    splits = qm9_split(len(parsed))
    source = _multi_file_source([path, *extra]) if extra else _file_source(path)
    return _built(parsed, classes, atoms, bonds, splits, source, {**skipped, **parsed.skipped})


def _csv_header(path: Path) -> list[str]:
    """The first row of a (possibly gzipped) CSV file, without reading the rest."""
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
            return [h.strip() for h in next(csv.reader(f), [])]
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: truncated or corrupt gzip file ({exc})") from None
    except (UnicodeDecodeError, csv.Error, OSError) as exc:
        raise DataError(f"{path}: cannot read the header ({exc})") from None


def _gdb_index(path: Path, value: str, line: int, row_number: bool) -> int:
    """The GDB index of a QM9 row, from DeepChem's ``mol_id`` (``gdb_<n>``) or MoFlow's 0-based row number.

    Raises:
        DataError: ``value`` is neither, naming the file and line.
    """
    try:
        return int(value) + 1 if row_number else int(value.rsplit("_", 1)[-1])
    except ValueError:
        what = "row number" if row_number else "mol_id"
        form = "an integer" if row_number else "of the form gdb_<number>"
        raise DataError(f"{path}: line {line}: {what} {value!r} is not {form}") from None


def _read_uncharacterized(path: Path) -> set[int]:
    """GDB indices from ``uncharacterized.txt``: rows whose first field is an index (header skipped)."""
    indices = set()
    for line in _read_text(path).splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].isdigit():
            indices.add(int(words[0]))
    if not indices:
        raise DataError(f"{path}: no molecule indices found; expected QM9's uncharacterized.txt")
    return indices


# QM9 is kekulized by default: DiGress reads it from the SDF file, whose bonds are Kekule (its aromatic
# class is never used), and heavy-atom *aromatic* graphs do not say which ring nitrogens carry a hydrogen
# -- 3,245 of the 130,831 molecules (2.5%) do not come back from them, against 0 from Kekule graphs.
@register(
    "qm9",
    "molecule",
    "QM9: 130,831 small molecules (<= 9 heavy atoms C, N, O, F), hydrogens implicit, Kekule bonds; DiGress split",
    kekulize=True,
    limit=None,
)
def build_qm9(ctx: BuildContext) -> BuiltDataset:
    return _build_qm9(ctx, explicit_h=False)


@register(
    "qm9_h",
    "molecule",
    "QM9 with explicit hydrogens (<= 29 atoms H, C, N, O, F), Kekule bonds; DiGress split",
    kekulize=True,
    limit=None,
)
def build_qm9_h(ctx: BuildContext) -> BuiltDataset:
    return _build_qm9(ctx, explicit_h=True)


# ---------------------------------------------------------------------------------------------- MOSES
#: Atom types of the MOSES files (no charged atoms occur: MOSES filtered them out).
MOSES_ATOMS = ["C", "N", "O", "F", "S", "Cl", "Br"]
_MOSES_URL = (
    "https://media.githubusercontent.com/media/molecularsets/moses/dd7ed6ab38e23afd3ef5371d67939a1760bd8599/"
    "moses/dataset/data/"
)
#: The files of the ``molsets`` package (Git LFS objects of molecularsets/moses at a fixed commit; the SHA-256
#: values are the LFS object ids).
MOSES_FILES = {
    "train": RawFile(
        "train.csv.gz", _MOSES_URL + "train.csv.gz",
        "786f0313aa6b9ba5514df685f885742a70ea8d86f1a4fa48115f7f80a634265c", "moses",
    ),
    "test": RawFile(
        "test.csv.gz", _MOSES_URL + "test.csv.gz",
        "f896fbf3764f88d94670b9959e5872c600c12152a18233823e820761b7a791b2", "moses",
    ),
    "test_scaffolds": RawFile(
        "test_scaffolds.csv.gz", _MOSES_URL + "test_scaffolds.csv.gz",
        "adffb2192c1bfe31ab0e13154d4af19a37dc18bdbf3cd7b4491e04405128adde", "moses",
    ),
}


@register(
    "moses",
    "molecule",
    "MOSES benchmark (ZINC Clean Leads; C, N, O, F, S, Cl, Br): train / test (= val) / test_scaffolds",
    kekulize=False,
    limit=None,
    max_nodes=None,
)
def build_moses(ctx: BuildContext) -> BuiltDataset:
    opts = ctx.options
    atoms = AtomVocabulary.from_names(MOSES_ATOMS)
    parts, paths, skipped, classes = [], [], {}, []
    for raw in MOSES_FILES.values():
        path = resolve(ctx.name, raw, ctx.root)
        records = read_smiles_records(path, column="SMILES", limit=opts["limit"])
        parsed = parse_smiles(records, kekulize=opts["kekulize"], max_nodes=opts["max_nodes"])
        parsed, cls = parsed.apply_vocabulary(atoms, str(path))
        parts.append(parsed)
        classes.append(cls)
        paths.append(path)
        skipped[raw.name] = parsed.skipped
    ends = np.cumsum([0] + [len(p) for p in parts])
    ranges = {name: np.arange(ends[k], ends[k + 1]) for k, name in enumerate(MOSES_FILES)}
    # MOSES has no validation set: like DiGress, validate on MOSES test, which is also the test set.
    splits = {"train": ranges["train"], "val": ranges["test"], "test": ranges["test"],
              "test_scaffolds": ranges["test_scaffolds"]}
    return _built(_concat_parsed(parts), np.concatenate(classes), atoms, BondVocabulary(not opts["kekulize"]),
                  splits, _multi_file_source(paths), _merge_skipped(skipped))


# ---------------------------------------------------------------------------------------------- ZINC250k
#: The chemical VAE repository's file at a fixed commit, pinned by the git blob id its tree records.
ZINC250K_CSV = RawFile(
    "250k_rndm_zinc_drugs_clean_3.csv",
    "https://raw.githubusercontent.com/aspuru-guzik-group/chemical_vae/a509dc613c4c9be54d448a34829bab25bcf09a79/"
    "models/zinc_properties/250k_rndm_zinc_drugs_clean_3.csv",
    subdir="zinc250k",
    git_blob="d31726bf929d35cb52fa109db90411c90a000dfe",
)
#: The test rows of GDSS / MoFlow / GraphAF (a JSON list of 24,887 0-based row numbers of the CSV), from the
#: GDSS repository at the pinned commit.
ZINC250K_TEST_INDEX = RawFile(
    "valid_idx_zinc250k.json",
    GDSS_DATA_URL + "valid_idx_zinc250k.json",
    "cf1af3a8588c947493ff0a2b60178db6726e9a4dbb445235b149cd3bbe6831df",
    "zinc250k",
)


@register(
    "zinc250k",
    "molecule",
    "ZINC250k (chemical VAE file) with the GDSS/MoFlow test rows; kekulized like GDSS",
    kekulize=True,
    limit=None,
    max_nodes=None,
)
def build_zinc250k(ctx: BuildContext) -> BuiltDataset:
    opts = ctx.options
    path = resolve(ctx.name, ZINC250K_CSV, ctx.root)
    index_path = resolve(ctx.name, ZINC250K_TEST_INDEX, ctx.root)
    records = read_smiles_records(path, column="smiles", limit=opts["limit"])
    test_rows = _read_index_file(index_path, len(records), opts["limit"] is not None)
    parsed = _require_molecules(parse_smiles(records, kekulize=opts["kekulize"], max_nodes=opts["max_nodes"]), records)
    atoms = AtomVocabulary(sorted(parsed.atom_types(), key=AtomType.sort_key))
    parsed, classes = parsed.apply_vocabulary(atoms, str(path))
    is_test = np.isin(parsed.rows, test_rows)
    test = np.flatnonzero(is_test)
    # GDSS has no validation set and evaluates on the test rows; val is the test set here too.
    splits = {"train": np.flatnonzero(~is_test), "val": test, "test": test}
    return _built(parsed, classes, atoms, BondVocabulary(not opts["kekulize"]), splits,
                  _multi_file_source([path, index_path]), parsed.skipped)


def _read_index_file(path: Path, num_rows: int, truncated: bool) -> np.ndarray:
    """Row numbers from a JSON list (or ``{"valid_idxs": [...]}``), checked against the row count."""
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if isinstance(data, dict) and "valid_idxs" in data:
        data = data["valid_idxs"]
    try:
        rows = np.asarray([int(v) for v in data], dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: expected a JSON list of row numbers") from None
    if rows.size and (rows.min() < 0 or (not truncated and rows.max() >= num_rows)):
        raise DataError(f"{path}: row numbers must lie in 0..{num_rows - 1}, found {rows.min()}..{rows.max()}")
    return rows


# ---------------------------------------------------------------------------------------------- GuacaMol
_FIGSHARE = "https://ndownloader.figshare.com/files/"
#: GuacaMol v1 files, pinned by the MD5 sums the GuacaMol README publishes (no SHA-256 is published).
GUACAMOL_FILES = {
    "train": RawFile("guacamol_v1_train.smiles", _FIGSHARE + "13612760", subdir="guacamol",
                     md5="05ad85d871958a05c02ab51a4fde8530"),
    "val": RawFile("guacamol_v1_valid.smiles", _FIGSHARE + "13612766", subdir="guacamol",
                   md5="e53db4bff7dc4784123ae6df72e3b1f0"),
    "test": RawFile("guacamol_v1_test.smiles", _FIGSHARE + "13612757", subdir="guacamol",
                    md5="677b757ccec4809febd83850b43e1616"),
}


@register(
    "guacamol",
    "molecule",
    "GuacaMol v1 (ChEMBL 24 subset): train / valid / test files",
    kekulize=False,
    limit=None,
    max_nodes=None,
)
def build_guacamol(ctx: BuildContext) -> BuiltDataset:
    opts = ctx.options
    parts, paths, skipped = [], [], {}
    for raw in GUACAMOL_FILES.values():
        path = resolve(ctx.name, raw, ctx.root)
        records = read_smiles_records(path, limit=opts["limit"])
        parsed = _require_molecules(
            parse_smiles(records, kekulize=opts["kekulize"], max_nodes=opts["max_nodes"]), records
        )
        parts.append(parsed)
        paths.append(path)
        skipped[raw.name] = parsed.skipped
    # The vocabulary is read from the data (all three files), in the fixed element / charge order.
    types = {t for p in parts for t in p.atom_types()}
    atoms = AtomVocabulary(sorted(types, key=AtomType.sort_key))
    classes = [p.apply_vocabulary(atoms, str(path))[1] for p, path in zip(parts, paths, strict=True)]
    ends = np.cumsum([0] + [len(p) for p in parts])
    splits = {name: np.arange(ends[k], ends[k + 1]) for k, name in enumerate(GUACAMOL_FILES)}
    return _built(_concat_parsed(parts), np.concatenate(classes), atoms, BondVocabulary(not opts["kekulize"]),
                  splits, _multi_file_source(paths), _merge_skipped(skipped))


# ---------------------------------------------------------------------------------------------- SMILES files
def load_smiles_file(
    path: str | os.PathLike,
    column: str | None = None,
    atom_types: Sequence[str] | AtomVocabulary | None = None,
    skip_unknown_atoms: bool = False,
    max_nodes: int | None = None,
    kekulize: bool = False,
    explicit_h: bool = False,
    root: str | os.PathLike | None = None,
    split_seed: int = 0,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    rebuild: bool = False,
    name: str | None = None,
) -> GraphDataset:
    """Process a file of SMILES into a cached molecule dataset.

    The cache lives in ``<root>/files/<file stem>-<hash of the file's path>/processed``
    (:func:`~graphdiff.datasets.registry.user_dataset_location`; the dataset is named ``<stem>_file`` if the
    stem is the name of a registered dataset), or ``<root>/<name>/processed`` when ``name`` is given, and is
    rebuilt when the file's bytes or any argument change.

    Args:
        path: ``.smi`` / ``.smiles`` / ``.txt`` (one SMILES per line, optionally followed by
            whitespace and a name) or ``.csv`` with a header; any of them gzipped (``.gz``).
        column: CSV column of the SMILES (default: the column named ``smiles`` in any case).
        atom_types: node classes, e.g. ``["C", "N", "O", "N+", "O-"]``; default: every atom type
            in the file, in a fixed element / charge order. ``"H"`` is added when ``explicit_h``.
        skip_unknown_atoms: drop molecules with other atom types (counted) instead of failing.
        max_nodes: drop molecules with more atoms (counted, with a warning).
        kekulize: store Kekulé bonds instead of an aromatic bond class.
        explicit_h: make every hydrogen a node.
        root: dataset root (default ``$GRAPHDIFF_ROOT`` or ``./data``).
        split_seed / split: random train / val / test fractions
            (:func:`graphdiff.datasets.graph_files.fraction_split`).
        rebuild: process again even if a valid cache exists.
        name: dataset name and cache folder under ``root`` (not a registered dataset's name).

    Raises:
        DataError: missing, empty, truncated or unreadable file; no SMILES column; an atom type
            outside ``atom_types`` (naming it and its line); no valid molecule.
        ConfigError: invalid arguments, a registered dataset's ``name``, an unusable root.
    """
    from graphdiff.datasets.graph_files import fraction_split

    path = Path(path)
    check_options(str(path), {"column": column, "skip_unknown_atoms": skip_unknown_atoms, "max_nodes": max_nodes,
                              "kekulize": kekulize, "explicit_h": explicit_h, "split_seed": split_seed,
                              "rebuild": rebuild})
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    fractions = _split_fractions(split)
    atoms = _custom_atoms(atom_types, explicit_h)
    root = dataset_root(root)
    name, directory = user_dataset_location(root, path, _smiles_stem(path), name)
    options = {
        "file": str(path.resolve()),
        "column": column,
        "atom_types": atoms.names if atoms is not None else None,
        "skip_unknown_atoms": skip_unknown_atoms,
        "max_nodes": max_nodes,
        "kekulize": kekulize,
        "explicit_h": explicit_h,
        "split": list(fractions),
        "split_seed": split_seed,
    }

    def builder(ctx: BuildContext) -> BuiltDataset:
        records = read_smiles_records(path, column=column)
        parsed = _require_molecules(
            parse_smiles(records, explicit_h=explicit_h, kekulize=kekulize, max_nodes=max_nodes), records
        )
        vocab = atoms
        if vocab is None:
            vocab = AtomVocabulary.from_keys(np.unique(parsed.atom_keys).tolist(), explicit_h=explicit_h)
        parsed, classes = parsed.apply_vocabulary(vocab, str(path), skip_unknown_atoms)
        _require_molecules(parsed, records)
        splits = {k: v.numpy() for k, v in fraction_split(len(parsed), fractions, split_seed).items()}
        return _built(parsed, classes, vocab, BondVocabulary(not kekulize), splits, _file_source(path), parsed.skipped)

    return build_or_load(name, "molecule", builder, root, options, rebuild, directory)


def _split_fractions(split: Sequence[float]) -> list[float]:
    try:
        values = [float(f) for f in split]
    except (TypeError, ValueError):
        raise ConfigError(f"split={split!r}: expected three fractions (train, val, test)") from None
    if len(values) != 3 or min(values) < 0 or abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(f"split={list(split)}: expected three non-negative fractions summing to 1")
    return values


def _custom_atoms(atom_types: Sequence[str] | AtomVocabulary | None, explicit_h: bool) -> AtomVocabulary | None:
    if atom_types is None:
        return None
    try:
        vocab = atom_types if isinstance(atom_types, AtomVocabulary) else AtomVocabulary.from_names(atom_types)
    except ValueError as exc:
        raise ConfigError(f"atom_types: {exc}") from None
    if vocab.explicit_h and not explicit_h:
        raise ConfigError("atom_types contains 'H', which means explicit hydrogens: pass explicit_h=True or drop 'H'")
    if explicit_h and not vocab.explicit_h:
        vocab = AtomVocabulary([*vocab.types, AtomType("H")])
    return vocab


def _smiles_stem(path: Path) -> str:
    name = path.name
    lower = name.lower()
    if lower.endswith(".gz"):
        name, lower = name[:-3], lower[:-3]
    for suffix in SMILES_LINE_SUFFIXES + SMILES_CSV_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)] or name
    return Path(name).stem


def _require_molecules(parsed: ParsedMolecules, records: SmilesRecords) -> ParsedMolecules:
    if len(parsed) == 0:
        summary = _skipped_summary(parsed.skipped)
        raise DataError(f"{records.path}: no usable molecule among {len(records)} rows ({summary})")
    return parsed


def _skipped_summary(skipped: dict[str, Any]) -> str:
    if not skipped:
        return "nothing was skipped"
    return ", ".join(f"{k}: {v['count']}" for k, v in skipped.items())
