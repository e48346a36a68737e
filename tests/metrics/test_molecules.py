"""Molecule validity variants, uniqueness/novelty, stability and FCD on crafted molecules."""

from __future__ import annotations

import json
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from graphdiff.chem import canonical_smiles
from graphdiff.metrics import molecules, moses_metrics, nspdk
from graphdiff.metrics.graph_stats import parallel_map
from graphdiff.metrics.molecules import (
    MolBinaries,
    MoleculeEvaluator,
    SmilesSet,
    atom_stability,
    build_molecule_with_partial_charges,
    fcd_score,
    mol_from_graph,
    mol_to_nx,
    parse_molecule,
)

DECODER = ["C", "N", "O", "F", "H"]


@pytest.fixture(autouse=True)
def _fresh_reference_cache(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty dataset root (where statistics are persisted) and an empty in-process cache for each test."""
    monkeypatch.setattr(molecules, "_SHARED", OrderedDict())


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


def test_reference_statistics_computed_once(monkeypatch: pytest.MonkeyPatch, data_root: Path) -> None:
    train = ["CCO", "CCN", "c1ccccc1", "CC(=O)O"]
    test = ["CCO", "c1ccc2ccccc2c1", "CC(=O)Nc1ccc(O)cc1", "CCN(CC)CC", "OCC(O)CO"]
    calls: dict[str, int] = {"canonical": 0, "fcd": 0, "scaffolds": 0, "properties": 0}

    def counting(name: str, fn, reference_only: bool = True):  # noqa: ANN001, ANN202
        def wrapped(items, *args, **kwargs):  # noqa: ANN001, ANN202
            calls[name] += not reference_only or len(items) == len(test)
            return fn(items, *args, **kwargs)
        return wrapped

    def fake_fcd(smiles, *args, **kwargs):  # noqa: ANN001, ANN202 -- ChemNet itself is tested above
        calls["fcd"] += len(smiles) == len(test)
        return np.full(3, float(len(smiles))), np.eye(3)

    monkeypatch.setattr(molecules, "_canonical_quietly", counting("canonical", molecules._canonical_quietly, False))
    monkeypatch.setattr(molecules, "fcd_statistics", fake_fcd)
    monkeypatch.setattr(molecules, "fcd_score", lambda smiles, reference, *a: float(reference[0][0]))
    monkeypatch.setattr(moses_metrics, "scaffold_counts", counting("scaffolds", moses_metrics.scaffold_counts))
    monkeypatch.setattr(moses_metrics, "_properties", counting("properties", moses_metrics._properties))
    metrics = ["novelty", "fcd", "snn", "scaf", "qed"]
    generated = ["CCO", "Cc1ccc2ccccc2c1", "CCCC", "CCOC"]  # not as many as the test set: the counters tell them apart
    first = MoleculeEvaluator(train, test, metrics=metrics, n_jobs=1, persist=False)(generated)
    assert calls == {"canonical": len(train), "fcd": 1, "scaffolds": 1, "properties": 1}
    second = MoleculeEvaluator(list(train), list(test), metrics=metrics, n_jobs=1, persist=False)(generated)
    assert calls == {"canonical": len(train), "fcd": 1, "scaffolds": 1, "properties": 1}
    assert second == first and first["fcd"] == len(test)
    assert not (data_root / molecules.REFERENCE_CACHE).exists()

    # Persisted: a new process (empty in-memory cache) reads the statistics back instead of recomputing them.
    monkeypatch.setattr(molecules, "_SHARED", OrderedDict())
    stored = MoleculeEvaluator(train, test, metrics=metrics, n_jobs=1, persist=True)(generated)
    assert calls == {"canonical": 2 * len(train), "fcd": 2, "scaffolds": 2, "properties": 2}
    monkeypatch.setattr(molecules, "_SHARED", OrderedDict())
    reread = MoleculeEvaluator(train, test, metrics=metrics, n_jobs=1, persist=True)(generated)
    assert calls == {"canonical": 2 * len(train), "fcd": 2, "scaffolds": 2, "properties": 2}
    assert reread == stored == first
    folders = list((data_root / molecules.REFERENCE_CACHE).iterdir())
    assert sorted(f.name for f in folders) == sorted([molecules.smiles_set_key(train), molecules.smiles_set_key(test)])


def test_damaged_reference_statistics_are_recomputed(monkeypatch: pytest.MonkeyPatch, data_root: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    train = ["CCO", "CCN", "c1ccccc1", "CC(=O)O"]
    test = ["CCO", "c1ccc2ccccc2c1", "CC(=O)Nc1ccc(O)cc1", "CCN(CC)CC", "OCC(O)CO"]
    metrics = ["novelty", "snn", "scaf", "qed"]
    generated = ["CCO", "Cc1ccc2ccccc2c1", "CCCC", "CCOC"]
    monkeypatch.setattr(molecules, "_SHARED", OrderedDict())
    first = MoleculeEvaluator(train, test, metrics=metrics, n_jobs=1, persist=True)(generated)
    cache = data_root / molecules.REFERENCE_CACHE
    files = sorted(p for p in cache.rglob("*") if p.is_file())
    assert {p.name for p in files} >= {"canonical_smiles.json", "fingerprints.npy", "scaffolds.json"}
    for path in files:  # truncated writes, disk errors: every file is damaged
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3])
    (canonical,) = [p for p in files if p.name == "canonical_smiles.json"]
    canonical.write_text(json.dumps({"CCO": 1}))  # readable JSON, but not a list of SMILES
    monkeypatch.setattr(molecules, "_SHARED", OrderedDict())
    again = MoleculeEvaluator(train, test, metrics=metrics, n_jobs=1, persist=True)(generated)
    assert again == first
    damaged = [r.getMessage() for r in caplog.records if "damaged cache file" in r.getMessage()]
    assert len(damaged) >= 3 and all("\n" not in m for m in damaged)
    monkeypatch.setattr(molecules, "_SHARED", OrderedDict())
    caplog.clear()
    assert MoleculeEvaluator(train, test, metrics=metrics, n_jobs=1, persist=True)(generated) == first
    assert "damaged" not in caplog.text  # rewritten whole


def test_explicit_hydrogens_are_folded_before_uniqueness_and_novelty() -> None:
    """QM9-with-H samples (DiGress writes ``[H]C([H])...``; graphdiff's explicit-H graphs decode with H atoms) are
    the same molecules as the reference's implicit-H SMILES: neither novel nor distinct from their implicit form."""
    from graphdiff.metrics.evaluate import evaluate_molecules

    explicit = Chem.MolToSmiles(Chem.AddHs(Chem.MolFromSmiles("CCO")))
    assert "[H]" in explicit
    parsed = molecules.parse_molecule(explicit)
    assert parsed.smiles == "CCO"
    assert parsed.valid.GetNumAtoms() == 3  # fingerprints, fragments, NSPDK see the heavy-atom molecule
    scores = evaluate_molecules([explicit, "CCO", "c1ccccc1"], train_smiles=["CCO", "CC"],
                                metrics=["validity", "uniqueness", "novelty"])
    assert scores["validity"] == 1.0
    assert scores["uniqueness"] == pytest.approx(2 / 3)
    assert scores["novelty"] == pytest.approx(1 / 2)  # of the 2 distinct molecules only benzene is new


def _length_hashes(strings: list[str]) -> np.ndarray:
    return np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))


@pytest.mark.parametrize("hashes", ["python", "all_equal", "by_length"])
def test_smiles_set_is_exact_when_hashes_collide(monkeypatch: pytest.MonkeyPatch, hashes: str) -> None:
    """Membership is confirmed on the strings: colliding hashes (forced here) never make a non-member a member."""
    if hashes == "all_equal":
        monkeypatch.setattr(molecules, "_str_hashes", lambda strings: np.zeros(len(strings), dtype=np.int64))
    elif hashes == "by_length":
        monkeypatch.setattr(molecules, "_str_hashes", _length_hashes)
    members = ["CCO", "CCN", "c1ccccc1", "CC(=O)O", "OCC", "CCO"]  # a duplicate
    found = SmilesSet(members)
    assert len(found) == 5 and sorted(found) == sorted(set(members))
    queries = ["CCO", "CCC", "NCC", "c1ccccc1", "", "CC(=O)O", "CC(=O)N", "OCC"]  # CCC, NCC: CCO's length
    assert found.contains(queries).tolist() == [q in set(members) for q in queries]
    assert ("CCC" in found, "OCC" in found, 3 in found) == (False, True, False)
    assert found.contains([]).tolist() == []
    again = pickle.loads(pickle.dumps(found))
    assert again.contains(queries).tolist() == found.contains(queries).tolist()


def test_novelty_is_exact_when_hashes_collide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(molecules, "_str_hashes", lambda strings: np.zeros(len(strings), dtype=np.int64))
    train = ["CCO", "CCN", "c1ccccc1", "CC(=O)O"]
    generated = ["OCC", "CCC", "c1ccccc1", "CCCl", "NCC", "CCO"]
    out = MoleculeEvaluator(train, metrics=["uniqueness", "novelty"], n_jobs=1)(generated)
    assert out == {"uniqueness": 5 / 6, "novelty": 2 / 5}  # distinct: CCO, CCC, benzene, CCCl, CCN; new: CCC, CCCl


def test_mol_binaries_are_the_molecules() -> None:
    mols = [Chem.MolFromSmiles(s) for s in ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "CCN(CC)CC"]]
    lazy = MolBinaries([m.ToBinary() for m in mols])
    assert len(lazy) == 4 and isinstance(lazy[1:3], MolBinaries) and len(lazy[1:3]) == 2
    expected = [Chem.MolToSmiles(m) for m in mols]
    assert [Chem.MolToSmiles(m) for m in lazy] == expected == [Chem.MolToSmiles(lazy[i]) for i in range(4)]
    assert [Chem.MolToSmiles(m) for m in pickle.loads(pickle.dumps(lazy[2:]))] == expected[2:]
    # Workers get slices of binaries and build the molecules themselves.
    assert parallel_map(canonical_smiles, lazy, n_jobs=2, min_items_per_job=1) == [canonical_smiles(m) for m in mols]


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_lean_evaluation_equals_the_whole_list_computation(monkeypatch: pytest.MonkeyPatch, n_jobs: int) -> None:
    """Samples kept as binaries, NSPDK features summed a few molecules at a time, the training set as hashes:
    every value equals (==) the computation on Python sets and lists of all the molecules at once."""
    monkeypatch.setattr(molecules, "SAMPLE_CHUNK", 3)
    monkeypatch.setattr(molecules, "REFERENCE_CHUNK", 2)
    train = ["CCO", "c1ccccc1", "CC(=O)O", "CCN(CC)CC", "OC1CCCC1"]
    test = ["CCO", "c1ccc2ccccc2c1", "CC(=O)Nc1ccc(O)cc1", "CCN(CC)CC", "OCC(O)CO", "Clc1ccccc1", "C1CCNCC1"]
    generated = ["OCC", "Cc1ccc2ccccc2c1", "CCCC", None, "C1CC", "CC(=O)Nc1ccc(N)cc1", "CCO.C", "c1ccccc1",
                 "OC1CCCC1", "CCOC(=O)C", "Fc1ccccc1"]
    metrics = ["validity", "uniqueness", "novelty", "nspdk", *molecules._MOSES_KEYS]
    got = MoleculeEvaluator(train, test, metrics=metrics, n_jobs=n_jobs, persist=False)(generated)

    valid = [p for p in map(parse_molecule, generated) if p.valid is not None]
    valid_mols = [p.valid for p in valid]
    unique = {p.smiles for p in valid}
    train_set = {canonical_smiles(s) for s in train}
    reference = [Chem.MolFromSmiles(s) for s in test]
    reference_mean = nspdk.nspdk_mean([mol_to_nx(m) for m in reference[i : i + 2]] for i in range(0, len(test), 2))
    expected = {
        "validity": len(valid) / len(generated),
        "uniqueness": len(unique) / len(valid),
        "novelty": sum(s not in train_set for s in unique) / len(unique),
        "nspdk": nspdk.nspdk_mmd(reference_mean, [mol_to_nx(m) for m in valid_mols]),
        **moses_metrics.moses_metrics(valid_mols, moses_metrics.ReferenceStatistics(reference, n_jobs=1),
                                      molecules._MOSES_KEYS, n_jobs=1),
    }
    assert got == expected
    assert abs(MoleculeEvaluator(None, test).nspdk_reference() - reference_mean).max() == 0.0
