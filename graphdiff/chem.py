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
    "MOLECULE_DECODINGS",
    "add_bonds_with_charges",
    "canonical_smiles",
    "check_decoding",
    "dense_to_mols",
    "fold_hydrogens",
    "gdss_molecule",
    "gdss_molecules",
    "graph_to_mol",
    "mol_to_graph",
    "mols_with_inferred_charges",
    "valence_problem",
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


def graphs_to_mols(graphs: GraphList, info: DatasetInfo, decoding: str | None = None) -> list[Chem.Mol | None]:
    """RDKit molecules of ``graphs`` (class indices in ``info``'s vocabularies); ``None`` where RDKit rejects one.

    Args:
        graphs: the graphs.
        info: their vocabularies; a QM9 built with ``protocol`` ``digress`` or ``gdss`` (neutral atom types) has
            its charges inferred as that code does (:func:`mols_with_inferred_charges`).
        decoding: ``"graphdiff"`` (or ``None``): the molecule the graph describes, as above; ``"gdss"``: GDSS's
            generated molecules (:func:`gdss_molecule`: charges, valency correction, largest fragment).

    Raises:
        ConfigError: ``info`` describes graphs, not molecules; an unknown ``decoding``.
    """
    if check_decoding(decoding) == "gdss":
        return gdss_molecules(graphs, info)[0]
    atoms, bonds = _vocabularies(info)
    order = _CHARGE_ORDER_BY_PROTOCOL.get((info.options or {}).get("protocol"))
    if order is not None:
        return mols_with_inferred_charges(graphs, atoms, bonds, order)
    return [graph_to_mol(x, ei, et, atoms, bonds) for x, ei, et in graphs]


def gdss_molecules(graphs: GraphList, info: DatasetInfo) -> tuple[list[Chem.Mol | None], list[bool]]:
    """GDSS's molecules of generated ``graphs`` and whether each was valid without correction
    (:func:`gdss_molecule`).

    Raises:
        ConfigError: ``info`` describes graphs, not molecules.
    """
    atoms, bonds = _vocabularies(info)
    pairs = [gdss_molecule(x, ei, et, atoms, bonds) for x, ei, et in graphs]
    return [mol for mol, _ in pairs], [valid for _, valid in pairs]


def _vocabularies(info: DatasetInfo) -> tuple[AtomVocabulary, BondVocabulary]:
    """The atom and bond vocabularies of a molecule dataset.

    Raises:
        ConfigError: ``info`` describes graphs, not molecules.
    """
    if info.kind != "molecule":
        raise ConfigError(f"dataset {info.name} holds graphs, not molecules; write .npz, .json or .graphml")
    return AtomVocabulary.from_names(info.node_types), BondVocabulary.from_names(info.edge_types)


#: How graphs become molecules: ``graphdiff`` (the dataset's atom types and charges; the default) or ``gdss``
#: (GDSS's sampler: :func:`gdss_molecule`).
MOLECULE_DECODINGS = ("graphdiff", "gdss")


def check_decoding(decoding: str | None) -> str:
    """``decoding`` if it is one of :data:`MOLECULE_DECODINGS` (``None``: ``"graphdiff"``).

    Raises:
        ConfigError: any other value.
    """
    if decoding is None:
        return "graphdiff"
    if decoding not in MOLECULE_DECODINGS:
        raise ConfigError(f"decoding={decoding!r}: expected one of {', '.join(MOLECULE_DECODINGS)}")
    return decoding


# ---------------------------------------------------------------------------------------------- inferred charges
#: Default valence by atomic number in the +1-charge rule of GDSS's ``construct_mol`` and DiGress's
#: ``build_molecule_with_partial_charges`` (their ``ATOM_VALENCY``).
ATOM_VALENCY = {6: 4, 7: 3, 8: 2, 9: 1, 15: 3, 16: 2, 17: 1, 35: 1, 53: 1}
#: Bond order of the inferred charges: DiGress adds bonds ``(i, j)``, ``i < j``, sorted by ``i`` then ``j``
#: (``"upper"``); GDSS sorted by ``j`` then ``i`` (``"lower"``: the lower triangle in row-major order).
_CHARGE_ORDER_BY_PROTOCOL = {"digress": "upper", "gdss": "lower"}


def valence_problem(mol: Chem.Mol) -> tuple[int, int] | None:
    """``(atom index, explicit valence)`` of the first atom RDKit finds over-valent, ``(-1, -1)`` if the message
    names none, or ``None`` if every valence is allowed (GDSS's ``check_valency``: RDKit's property sanitisation).
    """
    try:
        with quiet_rdkit():
            Chem.SanitizeMol(mol, sanitizeOps=Chem.SanitizeFlags.SANITIZE_PROPERTIES)
        return None
    except ValueError as error:
        message = str(error)
        numbers = [int(x) for x in re.findall(r"\d+", message[message.find("#") :])]
        return (numbers[0], numbers[1]) if len(numbers) >= 2 else (-1, -1)


def add_bonds_with_charges(mol: Chem.RWMol, bonds: Sequence[tuple[int, int, BondType]]) -> None:
    """Add ``bonds`` to ``mol`` one at a time; after each, an N, O or S atom that RDKit finds over-valent by exactly
    one (:data:`ATOM_VALENCY`) gets a formal charge of +1 (GDSS's ``construct_mol``, DiGress's
    ``build_molecule_with_partial_charges``). Only the first over-valent atom is looked at after each bond, as
    there; which atoms get charged therefore depends on the order of ``bonds``."""
    for i, j, bond_type in bonds:
        mol.AddBond(i, j, bond_type)
        problem = valence_problem(mol)
        if problem is None or problem[0] < 0:
            continue
        idx, valence = problem
        atom = mol.GetAtomWithIdx(idx)
        if atom.GetAtomicNum() in (7, 8, 16) and valence - ATOM_VALENCY[atom.GetAtomicNum()] == 1:
            atom.SetFormalCharge(1)


def _charged_mol(node_types: Tensor, edge_index: Tensor, edge_types: Tensor, atoms: AtomVocabulary,
                 bonds: BondVocabulary, order: str) -> Chem.RWMol:
    """The unsanitised molecule of one graph, bonds added in ``order`` by :func:`add_bonds_with_charges`."""
    mol = Chem.RWMol()
    for c in _as_list(node_types):
        t = atoms.types[c]
        atom = Chem.Atom(t.atomic_num)
        atom.SetFormalCharge(t.charge)
        mol.AddAtom(atom)
    ei, et = _as_list(edge_index), _as_list(edge_types)
    pairs = sorted((min(i, j), max(i, j), t) for i, j, t in zip(ei[0], ei[1], et, strict=True) if t > 0)
    if order == "lower":
        pairs.sort(key=lambda p: (p[1], p[0]))
    add_bonds_with_charges(mol, [(i, j, bonds.bond_type(t)) for i, j, t in pairs])
    return mol


def mols_with_inferred_charges(graphs: GraphList, atoms: AtomVocabulary, bonds: BondVocabulary,
                               order: str = "upper") -> list[Chem.Mol | None]:
    """Sanitised molecules of graphs whose atom types carry no charge, +1 charges inferred bond by bond
    (:func:`add_bonds_with_charges`): DiGress's decoding of its neutral QM9 graphs (``order="upper"``; a nitro group
    ``[N+](=O)[O-]`` comes back as ``[N+](=O)O``) or GDSS's (``order="lower"``, without its valency correction).

    Returns:
        One molecule per graph, ``None`` where RDKit rejects it or the graph has no node.
    """
    out = []
    for nodes, edge_index, edge_types in graphs:
        mol = _charged_mol(nodes, edge_index, edge_types, atoms, bonds, order) if len(nodes) else None
        out.append(sanitize_or_none(mol) if mol is not None else None)
    return out


def gdss_molecule(node_types: Tensor, edge_index: Tensor, edge_types: Tensor, atoms: AtomVocabulary,
                  bonds: BondVocabulary) -> tuple[Chem.Mol | None, bool]:
    """One generated graph as GDSS's ``gen_mol`` turns it into a molecule.

    The bonds are added in GDSS's order with its +1 charges (:func:`add_bonds_with_charges`, ``order="lower"``);
    the molecule is *valid without correction* when RDKit's valence check then passes (GDSS's ``check_valency``). It
    is then corrected as GDSS's ``correct_mol`` does -- while an atom is over-valent, its highest-order bond (the
    first of the atom's bonds on ties) loses one order, a single bond is removed -- and reduced to its largest
    fragment as ``valid_mol_can_with_seg`` does: the fragment with the longest SMILES in RDKit's isomeric SMILES of
    the whole molecule (the first on ties), parsed again.

    Args:
        node_types: ``[n]`` node classes (atoms GDSS drops, features without an entry above 0.5, are already gone:
            :meth:`graphdiff.sde.process.GraphEncoding.decode` with ``node_threshold``).
        edge_index: ``[2, m]`` bonds; edge_types: ``[m]`` their classes.
        atoms / bonds: the vocabularies.

    Returns:
        ``(molecule or None, valid without correction)``. A graph without nodes gives ``(None, True)``: GDSS's
        empty molecule passes its check and is left out of its SMILES.
    """
    if len(node_types) == 0:
        return None, True
    mol = _charged_mol(node_types, edge_index, edge_types, atoms, bonds, "lower")
    problem = valence_problem(mol)
    valid = problem is None
    while problem is not None and problem[0] >= 0:
        ranked = sorted(mol.GetAtomWithIdx(problem[0]).GetBonds(), key=lambda b: int(b.GetBondType()), reverse=True)
        if not ranked:
            break
        bond = ranked[0]
        i, j, order = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx(), int(bond.GetBondType())
        if order not in _GDSS_BOND_BY_ORDER:  # aromatic: GDSS's Kekule graphs have none, and it cannot lower one
            return None, valid
        mol.RemoveBond(i, j)
        if order > 1:
            mol.AddBond(i, j, _GDSS_BOND_BY_ORDER[order - 1])
        problem = valence_problem(mol)
    with quiet_rdkit():
        try:
            smiles = Chem.MolToSmiles(mol, isomericSmiles=True)
        except (RuntimeError, ValueError):
            return None, valid
        largest = max(smiles.split("."), key=len)
        return Chem.MolFromSmiles(largest) if largest else None, valid


#: GDSS's ``bond_decoder``: a lowered bond by its new order (RDKit's integer bond type).
_GDSS_BOND_BY_ORDER = {1: BondType.SINGLE, 2: BondType.DOUBLE, 3: BondType.TRIPLE}


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
                mol = fold_hydrogens(mol)
            return Chem.MolToSmiles(mol, isomericSmiles=isomeric)
    except (RuntimeError, ValueError):  # RDKit raises subclasses of these for invalid molecules
        return None


def fold_hydrogens(mol: Chem.Mol) -> Chem.Mol:
    """A sanitised molecule's hydrogen atoms turned into hydrogen counts of their heavy atoms -- all of them, isotopes
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
        mol = fold_hydrogens(mol)
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
