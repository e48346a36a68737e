"""Tests of the RDKit boundary: vocabularies, molecule <-> graph round trips, SMILES helpers."""

from __future__ import annotations

import pytest
import torch
from rdkit import Chem

from graphdiff.chem import (
    AtomType,
    AtomVocabulary,
    BondVocabulary,
    UnknownAtomError,
    UnsupportedBondError,
    canonical_smiles,
    dense_to_mols,
    graph_to_mol,
    mol_to_graph,
    sanitize_or_none,
    smiles_to_mol,
)
from graphdiff.errors import DataError
from graphdiff.types import one_hot_graph

HEAVY = AtomVocabulary.from_names(["C", "N", "O", "F", "S", "Cl", "N+", "N-", "O-", "C-"])
WITH_H = AtomVocabulary.from_names([*HEAVY.names, "H"])
AROMATIC = BondVocabulary(aromatic=True)
KEKULE = BondVocabulary(aromatic=False)

# Charged atoms, zwitterions, aromatic rings (with [nH]), hypervalent sulfur, halogens.
ROUND_TRIP_SMILES = [
    "C[N+](C)(C)C",
    "[O-][N+](=O)c1ccccc1",
    "[NH3+]CC(=O)[O-]",
    "C[N+]1=CC=CC=C1",
    "[C-]#[N+]C",
    "CC(=O)[O-]",
    "c1ccccc1",
    "c1cc[nH]c1",
    "c1ccc2[nH]ccc2c1",
    "Cc1c[nH]cn1",
    "O=c1cc[nH]cc1",
    "c1ccsc1",
    "CS(=O)(=O)Nc1ccc(Cl)cc1F",
    "C#CC(=O)NC1CC1",
    "OC1C2CC3C1N23",
    "CC[N-]S(C)(=O)=O",
]

MODES = [
    pytest.param(HEAVY, AROMATIC, False, False, id="heavy-aromatic"),
    pytest.param(HEAVY, KEKULE, False, True, id="heavy-kekulized"),
    pytest.param(WITH_H, AROMATIC, True, False, id="explicitH-aromatic"),
    pytest.param(WITH_H, KEKULE, True, True, id="explicitH-kekulized"),
]


# ---------------------------------------------------------------------------------------------- atom types
@pytest.mark.parametrize(
    ("name", "symbol", "charge"),
    [("C", "C", 0), ("N+", "N", 1), ("O-", "O", -1), ("Cl", "Cl", 0), ("Fe2+", "Fe", 2), ("S2-", "S", -2)],
)
def test_atom_type_names_parse_and_print(name: str, symbol: str, charge: int) -> None:
    t = AtomType.parse(name)
    assert (t.symbol, t.charge) == (symbol, charge)
    assert t.name == name
    assert AtomType.from_key(t.key) == t


@pytest.mark.parametrize("bad", ["Xx", "N++", "c", "", "2C"])
def test_atom_type_rejects_bad_names(bad: str) -> None:
    with pytest.raises(ValueError):
        AtomType.parse(bad)


def test_valencies_are_the_standard_maxima_of_each_charged_state() -> None:
    names = ["C", "N", "N+", "N-", "O", "O-", "F", "H", "S", "C-", "Cl", "Br", "P", "S-", "B-"]
    expected = [4, 3, 4, 2, 2, 1, 1, 1, 6, 3, 1, 1, 5, 1, 4]
    assert AtomVocabulary.from_names(names).valencies == expected


def test_atom_weights_are_standard_atomic_weights() -> None:
    weights = AtomVocabulary.from_names(["C", "N+", "O", "H"]).atom_weights
    assert weights == pytest.approx([12.011, 14.007, 15.999, 1.008], abs=2e-3)


def test_vocabulary_from_mols_has_a_fixed_order_whatever_the_input_order() -> None:
    smiles = ["[O-][N+](=O)c1ccccc1", "ClCBr", "C[S-]", "FC(F)F", "[NH3+]CC([O-])=O", "C[N-]C"]
    mols = [Chem.MolFromSmiles(s) for s in smiles]
    expected = ["C", "N+", "N-", "O", "O-", "F", "S-", "Cl", "Br"]  # no neutral N among them
    assert AtomVocabulary.from_mols(mols).names == expected
    assert AtomVocabulary.from_mols(mols[::-1]).names == expected
    assert AtomVocabulary.from_mols(mols, explicit_h=True).names == [*expected, "H"]


def test_unknown_atom_is_a_data_error_naming_the_atom() -> None:
    vocab = AtomVocabulary.from_names(["C", "N", "O"])
    with pytest.raises(UnknownAtomError, match="'Si'") as info:
        mol_to_graph(Chem.MolFromSmiles("C[Si](C)(C)C"), vocab, AROMATIC)
    assert isinstance(info.value, DataError)
    assert info.value.atom == "Si"
    with pytest.raises(UnknownAtomError, match="'N\\+'"):
        vocab.index("N", 1)
    assert vocab.index("O") == 2


def test_duplicate_atom_types_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        AtomVocabulary.from_names(["C", "N", "C"])


# ---------------------------------------------------------------------------------------------- bonds
def test_bond_vocabularies() -> None:
    assert AROMATIC.names == ["none", "single", "double", "triple", "aromatic"]
    assert KEKULE.names == ["none", "single", "double", "triple"]
    assert BondVocabulary.from_names(AROMATIC.names) == AROMATIC
    assert BondVocabulary.from_names(KEKULE.names) == KEKULE
    assert AROMATIC.orders == [0.0, 1.0, 2.0, 3.0, 1.5]
    with pytest.raises(ValueError):
        BondVocabulary.from_names(["none", "edge"])
    with pytest.raises(UnsupportedBondError, match="kekulize"):
        KEKULE.index(Chem.BondType.AROMATIC)
    with pytest.raises(UnsupportedBondError):
        AROMATIC.index(Chem.BondType.DATIVE)


# ---------------------------------------------------------------------------------------------- mol -> graph
def test_mol_to_graph_by_hand() -> None:
    vocab = AtomVocabulary.from_names(["C", "O", "N+", "O-"])
    # Atoms in SMILES order: O C C [N+] [O-] O ; bonds O-C, C=C, C-N+, N+-O-, N+=O
    nodes, edge_index, edge_types = mol_to_graph(Chem.MolFromSmiles("OC=C[N+]([O-])=O"), vocab, AROMATIC)
    assert nodes.tolist() == [1, 0, 0, 2, 3, 1]
    assert edge_index.tolist() == [[0, 1, 2, 3, 3], [1, 2, 3, 4, 5]]
    assert edge_types.tolist() == [1, 2, 1, 1, 2]


def test_mol_to_graph_aromatic_and_kekulized_benzene() -> None:
    benzene = Chem.MolFromSmiles("c1ccccc1")
    _, _, aromatic = mol_to_graph(benzene, HEAVY, AROMATIC)
    assert aromatic.tolist() == [4] * 6
    _, ei, kekule = mol_to_graph(benzene, HEAVY, AROMATIC, kekulize=True)
    assert sorted(kekule.tolist()) == [1, 1, 1, 2, 2, 2]
    # Alternation: every atom has exactly one double bond.
    doubles = ei[:, kekule == 2].flatten()
    assert sorted(doubles.tolist()) == list(range(6))
    # A vocabulary without an aromatic class implies kekulization.
    assert sorted(mol_to_graph(benzene, HEAVY, KEKULE)[2].tolist()) == [1, 1, 1, 2, 2, 2]


def test_mol_to_graph_explicit_hydrogens() -> None:
    nodes, ei, et = mol_to_graph(Chem.MolFromSmiles("C[NH3+]"), WITH_H, AROMATIC, explicit_h=True)
    h = WITH_H.index("H")
    assert sorted(nodes.tolist()) == sorted([WITH_H.index("C"), WITH_H.index("N", 1)] + [h] * 6)
    assert ei.shape == (2, 7) and et.tolist() == [1] * 7
    with pytest.raises(ValueError, match="'H'"):
        mol_to_graph(Chem.MolFromSmiles("C"), HEAVY, AROMATIC, explicit_h=True)


# ---------------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize(("atoms", "bonds", "explicit_h", "kekulize"), MODES)
@pytest.mark.parametrize("smiles", ROUND_TRIP_SMILES)
def test_smiles_graph_mol_round_trip_is_exact(
    smiles: str, atoms: AtomVocabulary, bonds: BondVocabulary, explicit_h: bool, kekulize: bool
) -> None:
    mol = Chem.MolFromSmiles(smiles)
    graph = mol_to_graph(mol, atoms, bonds, explicit_h=explicit_h, kekulize=kekulize)
    rebuilt = graph_to_mol(*graph, atoms, bonds)
    assert rebuilt is not None
    assert canonical_smiles(rebuilt) == canonical_smiles(mol)
    # Atom by atom: same elements, formal charges and hydrogen counts in the same order.
    source = Chem.AddHs(mol) if explicit_h else mol
    assert rebuilt.GetNumAtoms() == source.GetNumAtoms()
    for a, b in zip(source.GetAtoms(), rebuilt.GetAtoms(), strict=True):
        assert (a.GetSymbol(), a.GetFormalCharge(), a.GetTotalNumHs(includeNeighbors=True)) == (
            b.GetSymbol(), b.GetFormalCharge(), b.GetTotalNumHs(includeNeighbors=True)
        ), (a.GetIdx(), smiles)
    # graph -> molecule -> graph gives back the very same tensors (same Kekule structure too).
    again = mol_to_graph(rebuilt, atoms, bonds, explicit_h=explicit_h, kekulize=kekulize)
    for got, want in zip(again, graph, strict=True):
        assert torch.equal(got, want)


def test_ambiguous_aromatic_nh_gives_a_valid_tautomer_and_exact_otherwise() -> None:
    """4-methylimidazole: the aromatic graph does not say which N carries the H."""
    tautomers = {canonical_smiles("Cc1cnc[nH]1"), canonical_smiles("Cc1c[nH]cn1")}
    mol = Chem.MolFromSmiles("Cc1cnc[nH]1")
    rebuilt = graph_to_mol(*mol_to_graph(mol, HEAVY, AROMATIC), HEAVY, AROMATIC)
    assert canonical_smiles(rebuilt) in tautomers
    for atoms, bonds, explicit_h, kekulize in [(HEAVY, KEKULE, False, True), (WITH_H, AROMATIC, True, False)]:
        graph = mol_to_graph(mol, atoms, bonds, explicit_h=explicit_h, kekulize=kekulize)
        assert canonical_smiles(graph_to_mol(*graph, atoms, bonds)) == canonical_smiles(mol)


def test_graph_to_mol_invalid_valence_is_none() -> None:
    c, o = HEAVY.index("C"), HEAVY.index("O")
    # An oxygen with three single bonds.
    assert graph_to_mol([o, c, c, c], [[0, 0, 0], [1, 2, 3]], [1, 1, 1], HEAVY, KEKULE) is None
    # ... but the same with N+ in the middle of three carbons... is a valid cation.
    n_plus = HEAVY.index("N", 1)
    mol = graph_to_mol([n_plus, c, c, c], [[0, 0, 0], [1, 2, 3]], [1, 1, 1], HEAVY, KEKULE)
    assert canonical_smiles(mol) == "C[NH+](C)C"
    assert graph_to_mol([], [[], []], [], HEAVY, KEKULE) is None


def test_graph_to_mol_explicit_h_adds_no_hydrogens() -> None:
    c, h = WITH_H.index("C"), WITH_H.index("H")
    # A carbon with three hydrogens is a methyl radical, not methane.
    mol = graph_to_mol([c, h, h, h], [[0, 0, 0], [1, 2, 3]], [1, 1, 1], WITH_H, KEKULE)
    assert canonical_smiles(mol) == "[CH3]"
    assert mol.GetAtomWithIdx(0).GetNumRadicalElectrons() == 1


def test_graph_to_mol_accepts_both_directions_and_rejects_conflicts() -> None:
    c, o = HEAVY.index("C"), HEAVY.index("O")
    mol = graph_to_mol(torch.tensor([c, o]), torch.tensor([[0, 1], [1, 0]]), torch.tensor([2, 2]), HEAVY, KEKULE)
    assert canonical_smiles(mol) == "C=O"
    with pytest.raises(ValueError, match="two edge classes"):
        graph_to_mol([c, o], [[0, 1], [1, 0]], [2, 1], HEAVY, KEKULE)
    with pytest.raises(ValueError, match="self-loop"):
        graph_to_mol([c], [[0], [0]], [1], HEAVY, KEKULE)
    with pytest.raises(ValueError, match="out of range"):
        graph_to_mol([c], [[0], [3]], [1], HEAVY, KEKULE)


def test_dense_to_mols_matches_graph_to_mol_with_padding_gaps() -> None:
    smiles = ["[O-][N+](=O)c1ccccc1", "CC(=O)[O-]", "c1cc[nH]c1"]
    graphs = [mol_to_graph(Chem.MolFromSmiles(s), HEAVY, AROMATIC) for s in smiles]
    n = 20
    node_classes = torch.zeros(3, n, dtype=torch.long)
    edge_classes = torch.zeros(3, n, n, dtype=torch.long)
    node_mask = torch.zeros(3, n, dtype=torch.bool)
    for b, (nodes, ei, et) in enumerate(graphs):
        pos = 2 * torch.arange(nodes.numel()) + 1  # real nodes at odd positions, padding in between
        node_mask[b, pos] = True
        node_classes[b, pos] = nodes
        edge_classes[b, pos[ei[0]], pos[ei[1]]] = et
        edge_classes[b, pos[ei[1]], pos[ei[0]]] = et
    batch = one_hot_graph(node_classes, edge_classes, node_mask, len(HEAVY), len(AROMATIC))
    mols = dense_to_mols(batch, HEAVY, AROMATIC)
    assert [canonical_smiles(m) for m in mols] == [canonical_smiles(s) for s in smiles]

    # A carbon with five single bonds to carbons is invalid.
    bad_nodes = torch.zeros(1, 6, dtype=torch.long)
    bad_edges = torch.zeros(1, 6, 6, dtype=torch.long)
    bad_edges[0, 0, 1:] = 1
    bad_edges[0, 1:, 0] = 1
    bad = one_hot_graph(bad_nodes, bad_edges, torch.ones(1, 6, dtype=torch.bool), len(HEAVY), len(AROMATIC))
    assert dense_to_mols(bad, HEAVY, AROMATIC) == [None]
    with pytest.raises(ValueError, match="vocabularies"):
        dense_to_mols(batch, HEAVY, KEKULE)


# ---------------------------------------------------------------------------------------------- SMILES helpers
def test_canonical_smiles() -> None:
    assert canonical_smiles("OCC") == "CCO"
    assert canonical_smiles(Chem.MolFromSmiles("OCC")) == "CCO"
    assert canonical_smiles("C1CC") is None
    assert canonical_smiles(None) is None
    assert canonical_smiles("C[C@H](N)O") == "CC(N)O"
    assert canonical_smiles("C[C@H](N)O", isomeric=True) == "C[C@H](N)O"
    assert canonical_smiles(Chem.AddHs(Chem.MolFromSmiles("CC[O-]"))) == "CC[O-]"
    assert canonical_smiles("[2H]c1ccccc1") == "c1ccccc1"  # isotopic H folded in, not written as [H]


def test_isotopic_hydrogen_is_folded_into_its_heavy_atom() -> None:
    """RDKit keeps [2H] as an atom; a heavy-atom graph must not get an H node from it."""
    mol = Chem.MolFromSmiles("[2H]C(Cl)Cl")
    assert mol.GetNumAtoms() == 4
    nodes, ei, et = mol_to_graph(mol, HEAVY, AROMATIC)
    assert nodes.tolist() == [HEAVY.index("C"), HEAVY.index("Cl"), HEAVY.index("Cl")]
    assert ei.tolist() == [[0, 0], [1, 2]] and et.tolist() == [1, 1]
    nodes_h, _, _ = mol_to_graph(mol, WITH_H, AROMATIC, explicit_h=True)
    assert sorted(nodes_h.tolist()) == sorted([WITH_H.index("C")] + [WITH_H.index("Cl")] * 2 + [WITH_H.index("H")] * 2)


def test_invalid_smiles_is_none_and_silent(capfd: pytest.CaptureFixture[str]) -> None:
    assert smiles_to_mol("C1CC") is None
    assert smiles_to_mol("not a molecule") is None
    assert smiles_to_mol("") is None
    assert smiles_to_mol("CC(C)(C)(C)C") is None  # pentavalent carbon
    assert smiles_to_mol("CC(C)(C)(C)C", sanitize=False) is not None
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_sanitize_or_none() -> None:
    mol = Chem.MolFromSmiles("CC(C)(C)(C)C", sanitize=False)
    assert sanitize_or_none(mol) is None
    fine = sanitize_or_none(Chem.MolFromSmiles("c1ccccc1", sanitize=False))
    assert fine is not None and fine.GetBondWithIdx(0).GetIsAromatic()
