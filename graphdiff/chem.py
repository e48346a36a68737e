"""The RDKit boundary: atom and bond vocabularies, molecule <-> graph conversion, SMILES helpers.

A molecule becomes a graph whose nodes are *atom types* -- an element with a formal charge, named
``"C"``, ``"N+"``, ``"O-"`` -- and whose edges are bond classes (``"single"``, ``"double"``,
``"triple"`` and, unless kekulized, ``"aromatic"``; class 0 is ``"none"``). Hydrogens are implicit
by default: RDKit infers them from the heavy-atom graph when it is turned back into a molecule.
With ``explicit_h`` they are ordinary nodes of type ``"H"`` and nothing is inferred.

Aromatic graphs lose one bit of information: which aromatic nitrogen of a ring carries the
hydrogen (``[nH]``). :func:`graph_to_mol` restores it by trying hydrogens on candidate nitrogens
until RDKit can kekulize the ring; for rings with several candidates (imidazoles, pyrazoles) this
may pick another tautomer than the source molecule. Kekulized graphs and explicit-H graphs are
exact.

RDKit's log output is silenced wherever graphdiff handles the failure itself (an unparsable SMILES
or a molecule that does not sanitise is a return value of ``None`` here, not a printed warning).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from rdkit import Chem, rdBase
from rdkit.Chem import BondType
from torch import Tensor

from graphdiff.errors import ConfigError, DataError
from graphdiff.info import DatasetInfo
from graphdiff.storage import GraphList
from graphdiff.types import DenseGraph

__all__ = [
    "AtomType",
    "AtomVocabulary",
    "BondVocabulary",
    "UnknownAtomError",
    "UnsupportedBondError",
    "canonical_smiles",
    "dense_to_mols",
    "graph_to_mol",
    "mol_to_graph",
    "quiet_rdkit",
    "sanitize_or_none",
    "smiles_to_mol",
]

_PERIODIC_TABLE = Chem.GetPeriodicTable()

#: Elements in the order node classes are sorted; others follow by atomic number, hydrogen last.
ELEMENT_ORDER = ("C", "N", "O", "F", "P", "S", "Cl", "Br", "I")

#: Largest valence commonly seen in organic molecules, by element. RDKit allows more for some
#: (iodine 5); for the others RDKit's own largest allowed valence is used.
_STANDARD_MAX_VALENCE = {
    "H": 1, "B": 3, "C": 4, "N": 3, "O": 2, "F": 1, "Si": 4, "P": 5, "S": 6, "Cl": 1, "Se": 6, "Br": 1, "I": 1,
}

#: Formal charges are packed with the atomic number into one integer key (see :func:`atom_key`).
_CHARGE_OFFSET = 16
_KEY_STRIDE = 2 * _CHARGE_OFFSET

_NAME_RE = re.compile(r"^([A-Z][a-z]?)(?:(\d*)([+-]))?$")


class UnknownAtomError(DataError):
    """A molecule holds an atom type that is not in the vocabulary."""

    def __init__(self, message: str, atom: str) -> None:
        super().__init__(message)
        self.atom = atom


class UnsupportedBondError(DataError):
    """A molecule holds a bond type that has no edge class (dative, quadruple, ...)."""


@contextmanager
def quiet_rdkit() -> Iterator[None]:
    """Block RDKit's log output inside the ``with`` block (restored afterwards)."""
    blocker = rdBase.BlockLogs()
    try:
        yield
    finally:
        del blocker


# ---------------------------------------------------------------------------------------------- atoms
@dataclass(frozen=True)
class AtomType:
    """An element with a formal charge: one node class of a molecular graph.

    Attributes:
        symbol: element symbol as RDKit writes it (``"C"``, ``"Cl"``).
        charge: formal charge.
    """

    symbol: str
    charge: int = 0

    def __post_init__(self) -> None:
        if not _is_element(self.symbol):
            raise ValueError(f"unknown element symbol {self.symbol!r}")
        if abs(self.charge) >= _CHARGE_OFFSET:
            raise ValueError(f"formal charge {self.charge} of {self.symbol} is out of range")

    @property
    def name(self) -> str:
        """``"C"``, ``"N+"``, ``"O-"``, ``"Fe2+"``."""
        if self.charge == 0:
            return self.symbol
        sign = "+" if self.charge > 0 else "-"
        size = abs(self.charge)
        return f"{self.symbol}{size if size > 1 else ''}{sign}"

    @property
    def atomic_num(self) -> int:
        return _PERIODIC_TABLE.GetAtomicNumber(self.symbol)

    @property
    def max_valence(self) -> int:
        """Largest valence of this charged state.

        A charged atom behaves like the element with the same number of electrons: ``N+`` like
        carbon (4), ``O-`` like fluorine (1), ``C-`` like nitrogen (3).
        """
        z = self.atomic_num - self.charge
        if z <= 0 or z > 118:
            return 0
        symbol = _PERIODIC_TABLE.GetElementSymbol(z)
        if symbol in _STANDARD_MAX_VALENCE:
            return _STANDARD_MAX_VALENCE[symbol]
        allowed = [v for v in _PERIODIC_TABLE.GetValenceList(z) if v >= 0]
        return max(allowed, default=0)

    @property
    def atomic_weight(self) -> float:
        """Standard atomic weight of the element (RDKit's periodic table)."""
        return float(_PERIODIC_TABLE.GetAtomicWeight(self.atomic_num))

    @property
    def key(self) -> int:
        return atom_key(self.atomic_num, self.charge)

    @classmethod
    def parse(cls, name: str) -> AtomType:
        """Parse ``"C"``, ``"N+"``, ``"O-"``, ``"Fe2+"`` (``"N++"`` is not accepted)."""
        match = _NAME_RE.match(name.strip())
        if match is None or not _is_element(match.group(1)):
            raise ValueError(f"cannot read atom type {name!r}; expected e.g. 'C', 'N+', 'O-', 'Fe2+'")
        symbol, size, sign = match.groups()
        charge = 0 if sign is None else int(size or 1) * (1 if sign == "+" else -1)
        return cls(symbol, charge)

    @classmethod
    def from_key(cls, key: int) -> AtomType:
        z, charge = divmod(int(key), _KEY_STRIDE)
        return cls(_PERIODIC_TABLE.GetElementSymbol(z), charge - _CHARGE_OFFSET)

    def sort_key(self) -> tuple[int, int, int]:
        """Fixed element order, then neutral before charged, +1 before -1, +2 before -2."""
        if self.symbol == "H":
            rank = 1000
        elif self.symbol in ELEMENT_ORDER:
            rank = ELEMENT_ORDER.index(self.symbol)
        else:
            rank = len(ELEMENT_ORDER) + self.atomic_num
        return (rank, abs(self.charge), -self.charge)


def atom_key(atomic_num: int, charge: int) -> int:
    """One integer per (element, charge): ``atomic_num * 32 + charge + 16``."""
    return atomic_num * _KEY_STRIDE + charge + _CHARGE_OFFSET


def _is_element(symbol: str) -> bool:
    try:
        return _PERIODIC_TABLE.GetAtomicNumber(symbol) > 0
    except RuntimeError:
        return False


class AtomVocabulary:
    """Ordered node classes of molecular graphs, each an :class:`AtomType`.

    Args:
        types: the atom types, in class-index order (no duplicates).

    Example:
        >>> vocab = AtomVocabulary.from_names(["C", "N", "O", "F", "N+", "O-"])
        >>> vocab.index("N", 1), vocab.valencies
        (4, [4, 3, 2, 1, 4, 1])
    """

    def __init__(self, types: Sequence[AtomType]) -> None:
        self.types: tuple[AtomType, ...] = tuple(types)
        if not self.types:
            raise ValueError("an atom vocabulary needs at least one atom type")
        keys = [t.key for t in self.types]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate atom types in {self.names}")
        self._index = {k: i for i, k in enumerate(keys)}

    # -------------------------------------------------------------- construction
    @classmethod
    def from_names(cls, names: Iterable[str]) -> AtomVocabulary:
        """From names such as ``["C", "N", "O", "N+", "O-"]``, kept in the given order."""
        return cls([AtomType.parse(n) for n in names])

    @classmethod
    def from_keys(cls, keys: Iterable[int], explicit_h: bool = False) -> AtomVocabulary:
        """From :func:`atom_key` values, sorted deterministically (see :meth:`AtomType.sort_key`)."""
        types = {AtomType.from_key(k) for k in keys}
        if explicit_h:
            types.add(AtomType("H"))
        return cls(sorted(types, key=AtomType.sort_key))

    @classmethod
    def from_mols(cls, mols: Iterable[Chem.Mol], explicit_h: bool = False) -> AtomVocabulary:
        """The atom types occurring in ``mols`` (plus ``"H"`` if ``explicit_h``), sorted by a fixed
        element order (C, N, O, F, P, S, Cl, Br, I, then by atomic number, H last) and then by
        charge (0, +1, -1, +2, -2, ...)."""
        keys = {atom_key(a.GetAtomicNum(), a.GetFormalCharge()) for m in mols for a in m.GetAtoms()}
        return cls.from_keys(keys, explicit_h=explicit_h)

    # -------------------------------------------------------------- access
    @property
    def names(self) -> list[str]:
        return [t.name for t in self.types]

    @property
    def valencies(self) -> list[int]:
        """Largest valence per class (see :attr:`AtomType.max_valence`)."""
        return [t.max_valence for t in self.types]

    @property
    def atom_weights(self) -> list[float]:
        """Atomic weight per class."""
        return [t.atomic_weight for t in self.types]

    @property
    def atomic_nums(self) -> list[int]:
        return [t.atomic_num for t in self.types]

    @property
    def charges(self) -> list[int]:
        return [t.charge for t in self.types]

    @property
    def explicit_h(self) -> bool:
        """True if hydrogen is a node class: graphs then carry every hydrogen as a node."""
        return atom_key(1, 0) in self._index

    def __len__(self) -> int:
        return len(self.types)

    def __iter__(self) -> Iterator[AtomType]:
        return iter(self.types)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AtomVocabulary) and self.types == other.types

    def __repr__(self) -> str:
        return f"AtomVocabulary({self.names})"

    def index(self, symbol: str, charge: int = 0) -> int:
        """Class index of ``symbol`` with ``charge``.

        Raises:
            UnknownAtomError: the atom type is not in the vocabulary.
        """
        return self.index_of_key(atom_key(_PERIODIC_TABLE.GetAtomicNumber(symbol), charge))

    def index_of_key(self, key: int) -> int:
        """Class index of an :func:`atom_key`; raises :class:`UnknownAtomError` if absent."""
        try:
            return self._index[key]
        except KeyError:
            name = AtomType.from_key(key).name
            raise UnknownAtomError(
                f"atom type {name!r} is not in the atom types [{', '.join(self.names)}]", name
            ) from None

    def key_table(self) -> Tensor:
        """``[K]`` long lookup table from :func:`atom_key` to class index (``-1`` if absent)."""
        table = torch.full((119 * _KEY_STRIDE,), -1, dtype=torch.long)
        for i, t in enumerate(self.types):
            table[t.key] = i
        return table


# ---------------------------------------------------------------------------------------------- bonds
_BOND_NAMES = {
    "single": BondType.SINGLE,
    "double": BondType.DOUBLE,
    "triple": BondType.TRIPLE,
    "aromatic": BondType.AROMATIC,
}
_BOND_ORDERS = {"none": 0.0, "single": 1.0, "double": 2.0, "triple": 3.0, "aromatic": 1.5}


class BondVocabulary:
    """Edge classes of molecular graphs: ``["none", "single", "double", "triple"]`` plus
    ``"aromatic"`` unless the graphs are kekulized.

    Args:
        aromatic: keep aromatic bonds as their own class (else molecules must be kekulized).
    """

    def __init__(self, aromatic: bool = True) -> None:
        self.aromatic = aromatic
        self.names: list[str] = ["none", "single", "double", "triple"] + (["aromatic"] if aromatic else [])
        self.bond_types: list[BondType | None] = [None] + [_BOND_NAMES[n] for n in self.names[1:]]
        self._index = {bt: i for i, bt in enumerate(self.bond_types) if bt is not None}

    @classmethod
    def from_names(cls, names: Sequence[str]) -> BondVocabulary:
        """Rebuild from :attr:`names` (e.g. ``DatasetInfo.edge_types``)."""
        names = list(names)
        for aromatic in (True, False):
            if cls(aromatic).names == names:
                return cls(aromatic)
        raise ValueError(
            f"edge types {names} are not a bond vocabulary; expected "
            f"{cls(True).names} or {cls(False).names}"
        )

    @property
    def classes_by_bond_type(self) -> dict[BondType, int]:
        """RDKit bond type -> edge class, for the bond types that have one."""
        return dict(self._index)

    @property
    def orders(self) -> list[float]:
        """Bond order per class: 0, 1, 2, 3 (and 1.5 for aromatic)."""
        return [_BOND_ORDERS[n] for n in self.names]

    def __len__(self) -> int:
        return len(self.names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BondVocabulary) and self.names == other.names

    def __repr__(self) -> str:
        return f"BondVocabulary(aromatic={self.aromatic})"

    def index(self, bond_type: BondType) -> int:
        """Edge class of an RDKit bond type; raises :class:`UnsupportedBondError` if it has none."""
        try:
            return self._index[bond_type]
        except KeyError:
            hint = " (kekulize the molecule or use aromatic=True)" if bond_type == BondType.AROMATIC else ""
            raise UnsupportedBondError(f"bond type {bond_type} has no edge class in {self.names}{hint}") from None

    def bond_type(self, index: int) -> BondType:
        if not 1 <= index < len(self.names):
            raise ValueError(f"edge class {index} is not a bond in {self.names}")
        return self.bond_types[index]


# ---------------------------------------------------------------------------------------------- SMILES
#: Bond order by edge-type name (RDKit's names, case-insensitive); class 0 is "no edge" (order 0).
BOND_ORDERS: dict[str, float] = {
    "none": 0.0,
    "no_bond": 0.0,
    "single": 1.0,
    "double": 2.0,
    "triple": 3.0,
    "aromatic": 1.5,
}


def bond_orders_from_names(edge_types: Sequence[str]) -> list[float]:
    """Bond order of each edge class from its name (``none``/``single``/``double``/``triple``/``aromatic``).

    Raises:
        ConfigError: an unknown name.
    """
    orders = []
    for name in edge_types:
        key = str(name).strip().lower()
        if key not in BOND_ORDERS:
            raise ConfigError(f"unknown bond type {name!r}; known: {', '.join(BOND_ORDERS)} (pass bond_orders=...)")
        orders.append(BOND_ORDERS[key])
    return orders


def graphs_to_mols(graphs: GraphList, info: DatasetInfo) -> list[Chem.Mol | None]:
    """RDKit molecules of ``graphs`` (class indices in ``info``'s vocabularies); ``None`` where RDKit rejects one.

    Raises:
        ConfigError: ``info`` describes graphs, not molecules.
    """
    if info.kind != "molecule":
        raise ConfigError(f"dataset {info.name} holds graphs, not molecules; write .npz, .json or .graphml")
    atoms = AtomVocabulary.from_names(info.node_types)
    bonds = BondVocabulary.from_names(info.edge_types)
    return [graph_to_mol(x, ei, et, atoms, bonds) for x, ei, et in graphs]


def smiles_to_mol(smiles: str, sanitize: bool = True) -> Chem.Mol | None:
    """Parse a SMILES string; ``None`` (and no log output) if RDKit cannot read it or it is empty."""
    with quiet_rdkit():
        mol = Chem.MolFromSmiles(smiles.strip(), sanitize=sanitize)
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return mol


def sanitize_or_none(mol: Chem.Mol) -> Chem.Mol | None:
    """A sanitised copy of ``mol``, or ``None`` if RDKit rejects it (valence, kekulization, ...)."""
    mol, _ = _sanitize(mol)
    return mol


def canonical_smiles(mol_or_smiles: Chem.Mol | str | None, isomeric: bool = False) -> str | None:
    """RDKit canonical SMILES of a molecule or SMILES string, hydrogens implicit.

    Args:
        mol_or_smiles: a sanitised molecule (explicit hydrogen atoms are folded back into their
            heavy atoms) or a SMILES string.
        isomeric: keep stereochemistry and isotopes. Off by default because graphs carry neither:
            SMILES compared with generated molecules (novelty, uniqueness) must not either.

    Returns:
        The canonical SMILES, or ``None`` if the input is ``None``, unparsable or not sanitisable.
    """
    if mol_or_smiles is None:
        return None
    mol = smiles_to_mol(mol_or_smiles) if isinstance(mol_or_smiles, str) else mol_or_smiles
    if mol is None:
        return None
    try:
        with quiet_rdkit():
            if mol.GetNumAtoms() != mol.GetNumHeavyAtoms():
                mol = _fold_hydrogens(mol)
            return Chem.MolToSmiles(mol, isomericSmiles=isomeric)
    except (RuntimeError, ValueError):  # RDKit raises subclasses of these for invalid molecules
        return None


def _fold_hydrogens(mol: Chem.Mol) -> Chem.Mol:
    """Hydrogen atoms turned into hydrogen counts of their heavy atoms -- all of them, isotopes
    (``[2H]``) and stereo-defining ones included, which ``Chem.RemoveHs`` keeps. A molecule that
    would be left without atoms (``[H][H]``) is returned unchanged."""
    with quiet_rdkit():
        folded = Chem.RemoveAllHs(mol)
    return folded if folded.GetNumAtoms() > 0 else mol


# ---------------------------------------------------------------------------------------------- mol -> graph
def prepare_mol(mol: Chem.Mol, explicit_h: bool, kekulize: bool) -> Chem.Mol:
    """The molecule as a graph sees it: hydrogens added (``explicit_h``) or removed, kekulized if
    asked. Returns a new molecule."""
    if mol.GetNumAtoms() != mol.GetNumHeavyAtoms():
        mol = _fold_hydrogens(mol)
    mol = Chem.AddHs(mol) if explicit_h else Chem.Mol(mol)
    if kekulize:
        Chem.Kekulize(mol, clearAromaticFlags=True)
    return mol


def mol_to_graph(
    mol: Chem.Mol,
    atoms: AtomVocabulary,
    bonds: BondVocabulary,
    explicit_h: bool = False,
    kekulize: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Turn a molecule into class indices.

    Args:
        mol: a sanitised RDKit molecule.
        atoms: node classes (must contain ``"H"`` if ``explicit_h``).
        bonds: edge classes.
        explicit_h: add every hydrogen as a node; otherwise hydrogens stay implicit.
        kekulize: replace aromatic bonds by alternating single/double bonds. Implied when ``bonds``
            has no aromatic class.

    Returns:
        ``(node_types [n], edge_index [2, m], edge_types [m])`` long tensors; each bond once, as
        ``(i, j)`` with ``i < j``, sorted.

    Raises:
        UnknownAtomError: an atom type is not in ``atoms``.
        UnsupportedBondError: a bond type has no edge class.
    """
    if explicit_h and not atoms.explicit_h:
        raise ValueError(f"explicit_h needs 'H' among the atom types {atoms.names}")
    mol = prepare_mol(mol, explicit_h, kekulize or not bonds.aromatic)
    keys = [atom_key(a.GetAtomicNum(), a.GetFormalCharge()) for a in mol.GetAtoms()]
    node_types = torch.tensor([atoms.index_of_key(k) for k in keys], dtype=torch.long)
    edges = sorted(
        (min(i, j), max(i, j), bonds.index(b.GetBondType()))
        for b in mol.GetBonds()
        for i, j in [(b.GetBeginAtomIdx(), b.GetEndAtomIdx())]
    )
    if not edges:
        return node_types, torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    e = torch.tensor(edges, dtype=torch.long)
    return node_types, e[:, :2].T.contiguous(), e[:, 2].contiguous()


# ---------------------------------------------------------------------------------------------- graph -> mol
def graph_to_mol(
    node_types: Tensor | Sequence[int],
    edge_index: Tensor | Sequence[Sequence[int]],
    edge_types: Tensor | Sequence[int],
    atoms: AtomVocabulary,
    bonds: BondVocabulary,
    sanitize: bool = True,
) -> Chem.Mol | None:
    """Build the molecule a graph describes.

    Atoms get their element and formal charge from their class. Without ``"H"`` among the atom
    types, RDKit infers implicit hydrogens from the valences; with it, hydrogens are exactly the
    ``"H"`` nodes (no implicit hydrogen is added, so an under-bonded atom becomes a radical).
    Aromatic edges get aromatic bond and atom flags, and pyrrole-type ``[nH]`` hydrogens are
    restored where the ring cannot be kekulized otherwise (see the module docstring).

    Args:
        node_types: ``[n]`` class indices.
        edge_index: ``[2, m]`` node pairs; each bond listed once or in both directions.
        edge_types: ``[m]`` edge classes; class 0 entries are ignored.
        atoms / bonds: the vocabularies the classes index.
        sanitize: run RDKit sanitisation and return ``None`` if it fails.

    Returns:
        The molecule, or ``None`` if ``sanitize`` and RDKit rejects it (an invalid molecule).

    Raises:
        ValueError: malformed input (index out of range, a self-loop, a pair given two classes).
    """
    nodes = _as_list(node_types)
    ei = _as_list(edge_index)
    et = _as_list(edge_types)
    if len(ei) != 2 or len(ei[0]) != len(et) or len(ei[1]) != len(et):
        raise ValueError(f"edge_index must be [2, m] and edge_types [m]; got {len(ei)} rows and {len(et)} types")
    pairs: dict[tuple[int, int], int] = {}
    for i, j, t in zip(ei[0], ei[1], et, strict=True):
        if t == 0:
            continue
        if i == j:
            raise ValueError(f"self-loop on node {i}")
        key = (min(i, j), max(i, j))
        if pairs.setdefault(key, t) != t:
            raise ValueError(f"bond {key} given two edge classes ({pairs[key]} and {t})")
    return _build_mol(nodes, pairs, atoms, bonds, sanitize)


def _build_mol(
    nodes: list[int], pairs: dict[tuple[int, int], int], atoms: AtomVocabulary, bonds: BondVocabulary, sanitize: bool
) -> Chem.Mol | None:
    n = len(nodes)
    rw = Chem.RWMol()
    explicit_h = atoms.explicit_h
    for c in nodes:
        if not 0 <= c < len(atoms):
            raise ValueError(f"node class {c} out of range for {len(atoms)} atom types")
        t = atoms.types[c]
        atom = Chem.Atom(t.atomic_num)
        atom.SetFormalCharge(t.charge)
        if explicit_h:
            atom.SetNoImplicit(True)
        rw.AddAtom(atom)
    aromatic_class = len(bonds) - 1 if bonds.aromatic else -1
    for (i, j), t in pairs.items():
        if j >= n:
            raise ValueError(f"edge ({i}, {j}) out of range for {n} nodes")
        rw.AddBond(i, j, bonds.bond_type(t))
        if t == aromatic_class:
            rw.GetBondBetweenAtoms(i, j).SetIsAromatic(True)
            rw.GetAtomWithIdx(i).SetIsAromatic(True)
            rw.GetAtomWithIdx(j).SetIsAromatic(True)
    mol = rw.GetMol()
    if not sanitize:
        return mol
    if n == 0:
        return None  # an empty graph is no molecule
    sanitized, error = _sanitize(mol)
    if sanitized is None and isinstance(error, Chem.KekulizeException) and not explicit_h:
        sanitized = _restore_aromatic_nh(mol)
    return sanitized


#: Upper bound on hydrogen placements tried by :func:`_restore_aromatic_nh` for one molecule.
_MAX_NH_TRIALS = 256


def _restore_aromatic_nh(mol: Chem.Mol) -> Chem.Mol | None:
    """Put one hydrogen on some neutral two-connected aromatic N/P atoms until RDKit can kekulize.

    Tries one hydrogen, then two, ..., on candidates in atom order; the first placement that
    sanitises wins.
    """
    candidates = [
        a.GetIdx()
        for a in mol.GetAtoms()
        if a.GetIsAromatic() and a.GetAtomicNum() in (7, 15) and a.GetFormalCharge() == 0 and a.GetDegree() == 2
    ]
    trials = 0
    for k in range(1, len(candidates) + 1):
        for chosen in itertools.combinations(candidates, k):
            trials += 1
            if trials > _MAX_NH_TRIALS:
                return None
            trial = Chem.RWMol(mol)
            for idx in chosen:
                trial.GetAtomWithIdx(idx).SetNumExplicitHs(1)
            sanitized, _ = _sanitize(trial.GetMol())
            if sanitized is not None:
                return sanitized
    return None


def _sanitize(mol: Chem.Mol) -> tuple[Chem.Mol | None, Exception | None]:
    mol = Chem.Mol(mol)
    try:
        with quiet_rdkit():
            Chem.SanitizeMol(mol)
    except (RuntimeError, ValueError) as exc:  # AtomValenceException, KekulizeException, ...
        return None, exc
    return mol, None


def _as_list(x: Tensor | Sequence) -> list:
    if isinstance(x, Tensor):
        return x.detach().cpu().long().tolist()
    return [list(r) if isinstance(r, (list, tuple)) or hasattr(r, "tolist") else r for r in x]


def dense_to_mols(
    graph: DenseGraph, atoms: AtomVocabulary, bonds: BondVocabulary, sanitize: bool = True
) -> list[Chem.Mol | None]:
    """Molecules of a dense batch (argmax classes; padding ignored).

    Node and edge classes are extracted for the whole batch at once; only the RDKit construction
    loops over graphs.

    Args:
        graph: a batch with ``dx == len(atoms)`` and ``de == len(bonds)``.
        atoms / bonds: the vocabularies.
        sanitize: as in :func:`graph_to_mol`.

    Returns:
        ``B`` molecules, ``None`` where RDKit rejects one.
    """
    if graph.X.shape[-1] != len(atoms) or graph.E.shape[-1] != len(bonds):
        raise ValueError(
            f"batch has {graph.X.shape[-1]} node / {graph.E.shape[-1]} edge classes; "
            f"vocabularies have {len(atoms)} / {len(bonds)}"
        )
    mask = graph.node_mask.cpu()
    nodes = graph.node_classes().cpu()
    edges = graph.edge_classes().cpu()
    # Local node numbers: position among the real nodes of the same graph.
    local = mask.long().cumsum(-1) - 1
    b, i, j = torch.nonzero(torch.triu(edges > 0, diagonal=1), as_tuple=True)
    t = edges[b, i, j]
    per_graph = torch.bincount(b, minlength=graph.batch_size).tolist()
    edge_rows = torch.stack([local[b, i], local[b, j], t], 1).tolist()
    node_lists = [nodes[k][mask[k]].tolist() for k in range(graph.batch_size)]

    mols: list[Chem.Mol | None] = []
    start = 0
    for k, count in enumerate(per_graph):
        pairs = {(p, q): c for p, q, c in edge_rows[start : start + count]}
        start += count
        mols.append(_build_mol(node_lists[k], pairs, atoms, bonds, sanitize))
    return mols
