"""Molecule validity variants, uniqueness/novelty, stability and FCD on crafted molecules."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem

from graphdiff.metrics.molecules import (
    MoleculeEvaluator,
    atom_stability,
    build_molecule_with_partial_charges,
    fcd_score,
    mol_from_graph,
    parse_molecule,
)

DECODER = ["C", "N", "O", "F", "H"]


def _graph_mol(atoms: list[str], bonds: list[tuple[int, int, int]]) -> Chem.RWMol:
    n = len(atoms)
    edges = np.zeros((n, n), dtype=int)
    for i, j, order in bonds:
        edges[i, j] = edges[j, i] = order
    return mol_from_graph([DECODER.index(a) for a in atoms], edges, DECODER)


def test_valid_molecule_and_largest_fragment() -> None:
    ethanol = parse_molecule("CCO")
    assert ethanol.valid is not None and ethanol.smiles == "CCO" and ethanol.n_fragments == 1
    # Ethanol and a separate methane: valid, reported as its largest fragment, not strictly valid.
    two = parse_molecule(_graph_mol(["C", "C", "O", "C"], [(0, 1, 1), (1, 2, 1)]))
    assert two.valid is not None and two.smiles == "CCO" and two.n_fragments == 2


def test_invalid_valence_and_none() -> None:
    # Carbon with five single bonds does not sanitize, and no charge rule applies to carbon.
    penta = _graph_mol(["C", "C", "C", "C", "C", "C"], [(0, k, 1) for k in range(1, 6)])
    parsed = parse_molecule(penta)
    assert parsed.valid is None and parsed.relaxed is None
    assert parse_molecule(None).valid is None
    assert parse_molecule("C1CC").valid is None  # unclosed ring: SMILES does not parse


def test_relaxed_validity_adds_positive_charge_on_nitrogen() -> None:
    # N bonded to four carbons: invalid as built, valid once N gets a +1 charge (quaternary ammonium).
    ammonium = _graph_mol(["N", "C", "C", "C", "C"], [(0, 1, 1), (0, 2, 1), (0, 3, 1), (0, 4, 1)])
    parsed = parse_molecule(ammonium)
    assert parsed.valid is None
    assert parsed.relaxed is not None and parsed.relaxed_smiles == "C[N+](C)(C)C"
    rebuilt = build_molecule_with_partial_charges(ammonium)
    assert rebuilt.GetAtomWithIdx(0).GetFormalCharge() == 1
    # Oxygen with three bonds -> oxonium; fluorine with two bonds stays invalid.
    oxonium = _graph_mol(["O", "C", "C", "C"], [(0, 1, 1), (0, 2, 1), (0, 3, 1)])
    assert parse_molecule(oxonium).relaxed_smiles == "C[O+](C)C"
    fluorine = _graph_mol(["F", "C", "C"], [(0, 1, 1), (0, 2, 1)])
    assert parse_molecule(fluorine).relaxed is None


def test_evaluator_validity_uniqueness_novelty_by_hand() -> None:
    ammonium = _graph_mol(["N", "C", "C", "C", "C"], [(0, 1, 1), (0, 2, 1), (0, 3, 1), (0, 4, 1)])
    disconnected = _graph_mol(["C", "C", "O", "C"], [(0, 1, 1), (1, 2, 1)])
    generated = ["CCO", "OCC", "c1ccccc1", None, disconnected, ammonium]
    ev = MoleculeEvaluator(train_smiles=["C(O)C", "CCN"], metrics=None)
    out = ev(generated)
    assert out["validity"] == pytest.approx(4 / 6)  # CCO, OCC, benzene, disconnected
    assert out["relaxed_validity"] == pytest.approx(5 / 6)  # + the ammonium
    assert out["strict_validity"] == pytest.approx(3 / 6)
    assert out["uniqueness"] == pytest.approx(2 / 4)  # {CCO, benzene} among 4 valid
    assert out["novelty"] == pytest.approx(1 / 2)  # benzene is new, ethanol is in training
    relaxed = MoleculeEvaluator(train_smiles=["CCO"], unique_over="relaxed")(generated)
    assert relaxed["uniqueness"] == pytest.approx(3 / 5) and relaxed["novelty"] == pytest.approx(2 / 3)


def test_atom_and_molecule_stability() -> None:
    methane = Chem.AddHs(Chem.MolFromSmiles("C"))
    assert atom_stability(methane) == (5, 5)
    methyl = Chem.RWMol(methane)
    methyl.RemoveAtom(4)  # a hydrogen is missing: carbon has 3 bonds
    assert atom_stability(methyl) == (3, 4)
    out = MoleculeEvaluator(metrics=["atom_stability", "mol_stability"])([methane, methyl.GetMol()])
    assert out["atom_stability"] == pytest.approx(8 / 9)
    assert out["mol_stability"] == pytest.approx(1 / 2)


@pytest.fixture(scope="module")
def chemnet_loaded() -> None:
    from graphdiff.metrics.molecules import _chemnet

    _chemnet()


def test_fcd_self_zero_and_positive_for_different_sets(chemnet_loaded: None) -> None:
    set_a = ["CCO", "CCN", "CCC", "CC(=O)O", "c1ccccc1", "CCOC", "OCCO", "CC#N"]
    set_b = ["c1ccncc1", "C1CCCCC1", "ClCCl", "OC1CCCC1", "FC(F)F", "CN(C)C", "C=CC=C", "O=C=O"]
    assert fcd_score(set_a, set_a) == pytest.approx(0.0, abs=1e-3)
    assert fcd_score(set_a, set_b) > 1.0
