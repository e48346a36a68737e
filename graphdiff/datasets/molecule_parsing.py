"""From SMILES rows to molecule graphs: the row processing every molecule dataset goes through.

:func:`parse_smiles` parses each SMILES with RDKit, keeps its canonical SMILES (no stereochemistry, see
:func:`graphdiff.chem.canonical_smiles`) and turns the molecule into a graph of atom types (element + formal charge)
and bond classes, hydrogens implicit unless ``explicit_h``. Rows are dropped -- counted in ``info.skipped`` with their
first line numbers, and reported (:mod:`graphdiff.datasets.skipped`) -- when the SMILES is invalid, the molecule has
more than ``max_nodes`` atoms, holds a radical (heavy-atom graphs cannot carry one), an unsupported bond, no heavy
atom (``[H][H]``), or (only with ``skip_unknown_atoms``) an atom type outside the vocabulary; otherwise an unknown
atom type stops processing with a :class:`DataError` naming it and its line.

Files of 50,000 rows or more are parsed in chunks in worker processes (:mod:`graphdiff.datasets.workers`); the
result is identical to a serial parse.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from rdkit import Chem
from rdkit.Chem import BondType

from graphdiff.chem import AtomType, AtomVocabulary, BondVocabulary, atom_key, quiet_rdkit
from graphdiff.datasets.dataset import BuiltDataset
from graphdiff.datasets.skipped import MAX_REPORTED_LINES, report_skipped, skipped_summary
from graphdiff.datasets.smiles_files import SmilesRecords
from graphdiff.datasets.workers import default_num_workers, run_in_workers
from graphdiff.errors import ConfigError, DataError
from graphdiff.storage import GraphList

#: Files with fewer rows are parsed in this process.
PARALLEL_MIN_ROWS = 50_000
_CHUNK_ROWS = 20_000


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

    @classmethod
    def concat(cls, parts: Sequence[ParsedMolecules]) -> ParsedMolecules:
        """The molecules of ``parts`` one after the other (``skipped`` is left empty: merge it per file)."""
        return cls(
            atom_keys=np.concatenate([p.atom_keys for p in parts]),
            num_atoms=np.concatenate([p.num_atoms for p in parts]),
            edge_index=np.concatenate([p.edge_index for p in parts], axis=1),
            edge_types=np.concatenate([p.edge_types for p in parts]),
            num_bonds=np.concatenate([p.num_bonds for p in parts]),
            smiles=[s for p in parts for s in p.smiles],
            rows=np.concatenate([p.rows for p in parts]),
            lines=np.concatenate([p.lines for p in parts]),
        )

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
            where: file name for messages.
            skip_unknown_atoms: drop molecules with atom types outside ``atoms`` (counted as
                ``"unknown_atom"`` and reported) instead of raising.

        Returns:
            ``(kept molecules, [N'] int64 node classes)``.

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
        entry = {"count": int(bad_graphs.sum()), "lines": self.lines[bad_graphs][:MAX_REPORTED_LINES].tolist(),
                 "atoms": names}
        kept.skipped["unknown_atom"] = entry
        report_skipped(where, {"unknown_atom": entry})
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

    def to_built(
        self,
        node_classes: np.ndarray,
        atoms: AtomVocabulary,
        bonds: BondVocabulary,
        splits: dict[str, np.ndarray],
        source: dict[str, Any],
        skipped: dict[str, Any],
        columns: dict[str, np.ndarray] | None = None,
    ) -> BuiltDataset:
        """The molecule dataset of these molecules.

        Args:
            node_classes: ``[N]`` node classes from :meth:`apply_vocabulary` with ``atoms``.
            atoms: the node classes' atom types.
            bonds: the edge classes.
            splits: split name -> ``[k]`` molecule indices (stored sorted).
            source: the fingerprint of the files.
            skipped: every row dropped on the way, by reason.
            columns: per-row values of the file's numeric columns (:attr:`SmilesRecords.numbers`), kept for the
                molecules kept as the dataset's graph-level properties.
        """
        return BuiltDataset(
            graphs=self.to_graph_list(node_classes),
            splits={k: torch.as_tensor(np.sort(v), dtype=torch.long) for k, v in splits.items()},
            kind="molecule",
            node_types=atoms.names,
            edge_types=bonds.names,
            source=source,
            skipped=skipped,
            valencies=atoms.valencies,
            atom_weights=atoms.atom_weights,
            smiles=self.smiles,
            properties={name: torch.as_tensor(values[self.rows], dtype=torch.float64)
                        for name, values in (columns or {}).items()},
        )


def require_molecules(parsed: ParsedMolecules, records: SmilesRecords) -> ParsedMolecules:
    """``parsed``, unless no molecule is left.

    Raises:
        DataError: no usable molecule, saying how many rows were dropped for what.
    """
    if len(parsed) == 0:
        raise DataError(
            f"{records.path}: no usable molecule among {len(records)} rows ({skipped_summary(parsed.skipped)})"
        )
    return parsed


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
        The kept molecules, with the dropped rows counted in ``skipped`` and reported.
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
    workers = default_num_workers(len(positions), PARALLEL_MIN_ROWS) if num_workers is None else num_workers
    chunks = run_in_workers(_parse_chunk, tasks, workers, f"parsing {records.path.name}")
    parsed = _concat_chunks(chunks)
    report_skipped(str(records.path), parsed.skipped)
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
