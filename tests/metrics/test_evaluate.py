"""The evaluate_* entry points: metric selection, inputs, protocols, folds, real data smoke test."""

from __future__ import annotations

import csv
import gzip
import itertools

import networkx as nx
import numpy as np
import pytest

from graphdiff.errors import ConfigError
from graphdiff.metrics import GraphEvaluator, MoleculeEvaluator, evaluate_folds, evaluate_graphs, evaluate_molecules
from graphdiff.metrics.mmd import mmd_squared
from tests.conftest import data_file


def _trees(seed: int, count: int) -> list[nx.Graph]:
    rng = np.random.default_rng(seed)
    return [nx.random_labeled_tree(int(rng.integers(12, 20)), seed=int(rng.integers(1 << 30))) for _ in range(count)]


def test_evaluate_graphs_tree_keys_and_values() -> None:
    gen = _trees(0, 6) + [nx.cycle_graph(10)]
    ref, train = _trees(1, 6), _trees(2, 6)
    out = evaluate_graphs(gen, ref, train=train, protocol="spectre", kind="tree", n_jobs=1)
    assert list(out) == ["degree", "clustering", "orbit", "spectral", "wavelet", "unique", "valid", "novel",
                         "unique_novel", "vun"]  # fmt: skip
    assert out["valid"] == pytest.approx(6 / 7)
    assert out["vun"] <= out["valid"] and all(v >= -1e-12 for v in out.values())
    # The degree MMD equals the kernel MMD of the degree histograms (reference first).
    expected = mmd_squared([np.array(nx.degree_histogram(g)) for g in ref],
                           [np.array(nx.degree_histogram(g)) for g in gen], "gaussian_tv", sigma=1.0)  # fmt: skip
    assert out["degree"] == pytest.approx(expected, rel=1e-12)


def test_same_sets_give_zero_mmd_and_adjacency_input() -> None:
    graphs = _trees(3, 5)
    adjacency = [nx.to_numpy_array(g) for g in graphs]
    out = evaluate_graphs(adjacency, graphs, protocol="gdss", n_jobs=1)
    assert set(out) == {"degree", "clustering", "orbit", "spectral", "unique"}
    for name in ("degree", "clustering", "orbit", "spectral"):
        assert out[name] == pytest.approx(0.0, abs=1e-12)


def test_bad_requests_are_config_errors() -> None:
    graphs = _trees(4, 2)
    with pytest.raises(ConfigError, match="unknown MMD protocol"):
        evaluate_graphs(graphs, graphs, protocol="gran")
    with pytest.raises(ConfigError, match="not part of protocol 'gdss'"):
        evaluate_graphs(graphs, graphs, protocol="gdss", metrics=["wavelet"])
    with pytest.raises(ConfigError, match="valid needs a graph kind"):
        evaluate_graphs(graphs, graphs, metrics=["valid"])
    with pytest.raises(ConfigError, match="square adjacency"):
        evaluate_graphs([np.zeros((2, 3))], graphs)


def test_graph_evaluator_reuses_reference_statistics() -> None:
    ref = _trees(5, 4)
    ev = GraphEvaluator(ref, metrics=["degree", "orbit"], n_jobs=1)
    first = ev(_trees(6, 4))
    cached = ev.reference_statistics()
    assert ev(_trees(6, 4)) == first and ev.reference_statistics() is cached


def test_evaluate_folds_mean_and_std_by_hand() -> None:
    def fake(fold: list[int]) -> dict[str, float]:
        return {"m": float(sum(fold))}

    out = evaluate_folds(list(range(7)), fake, n_folds=3)  # folds [0, 1], [2, 3], [4, 5]; 6 is dropped
    assert out["m"]["mean"] == pytest.approx(5.0)
    assert out["m"]["std"] == pytest.approx(np.std([1.0, 5.0, 9.0]))
    with pytest.raises(ConfigError):
        evaluate_folds([1], fake, n_folds=2)


def test_molecule_metric_selection_errors() -> None:
    with pytest.raises(ConfigError, match="need test_smiles"):
        MoleculeEvaluator(metrics=["fcd"])
    with pytest.raises(ConfigError, match="unknown molecule metrics"):
        MoleculeEvaluator(metrics=["qed_score"])


def test_qm9_sample_smoke() -> None:
    with gzip.open(data_file("qm9", "qm9.csv.gz"), "rt") as handle:
        smiles = [row["SMILES"] for row in itertools.islice(csv.DictReader(handle), 300)]
    out = evaluate_molecules(
        smiles[:60], train_smiles=smiles[60:], test_smiles=smiles[200:260],
        metrics=["validity", "uniqueness", "novelty", "nspdk", "snn", "qed"], n_jobs=1,
    )  # fmt: skip
    assert out["validity"] == 1.0 and out["uniqueness"] == 1.0 and out["novelty"] == 1.0
    assert 0.0 <= out["nspdk"] < 0.2 and 0.0 < out["snn"] <= 1.0 and out["qed"] >= 0.0
