"""NSPDK reference cache: mean feature vector kept in memory and on disk, keyed by SMILES and feature code."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from rdkit import Chem

from graphdiff.metrics import molecules, nspdk
from graphdiff.metrics.molecules import MoleculeEvaluator, mol_to_nx

TEST = ["CCO", "c1ccc2ccccc2c1", "CC(=O)Nc1ccc(O)cc1", "CCN(CC)CC", "OCC(O)CO"]
GENERATED = ["CCO", "Cc1ccc2ccccc2c1", "CCCC", "CCOC"]  # fewer than TEST: the counters tell the sides apart


@pytest.fixture(autouse=True)
def _fresh_reference_cache(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(molecules, "_SHARED", OrderedDict())


@pytest.fixture
def feature_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts NSPDK feature computations (one entry of the number of atoms per graph); n_jobs=1 runs in-process."""
    calls: list[int] = []
    original = nspdk.nspdk_features

    def counting(graph, *args, **kwargs):  # noqa: ANN001, ANN202
        calls.append(graph.number_of_nodes())
        return original(graph, *args, **kwargs)

    monkeypatch.setattr(nspdk, "nspdk_features", counting)
    return calls


def _evaluate(test: list[str], persist: bool) -> float:
    return MoleculeEvaluator(None, test, metrics=["nspdk"], n_jobs=1, persist=persist)(GENERATED)["nspdk"]


def _graphs(smiles: list[str]) -> list:
    return [mol_to_nx(Chem.MolFromSmiles(s)) for s in smiles]


def test_mean_vector_gives_the_mmd_of_the_graphs_and_of_the_dense_kernel_formula() -> None:
    ref, gen = _graphs(TEST), _graphs(GENERATED)
    mean = nspdk.nspdk_mean([ref[:2], [], ref[2:]])
    assert mean.shape == (1, nspdk.NSPDK_FEATURES)
    # GDSS's formula on the dense kernel matrices, as the code computed it before the mean vectors.
    x, y = nspdk.nspdk_matrix(ref), nspdk.nspdk_matrix(gen)
    dense = np.average((x @ x.T).toarray()) + np.average((y @ y.T).toarray()) - 2 * np.average((x @ y.T).toarray())
    assert dense > 0.05
    assert nspdk.nspdk_mmd(mean, gen) == pytest.approx(dense, rel=1e-12, abs=1e-15)
    assert nspdk.nspdk_mmd(ref, gen) == pytest.approx(dense, rel=1e-12, abs=1e-15)
    assert nspdk.nspdk_mmd(mean, ref) == pytest.approx(0.0, abs=1e-15)
    assert nspdk.nspdk_mean([[], []]).shape == (0, nspdk.NSPDK_FEATURES)
    assert np.isnan(nspdk.nspdk_mmd(nspdk.nspdk_mean([]), gen))


def test_second_evaluation_reads_the_cache(
    feature_calls: list[int], data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n_ref, n_gen = len(TEST), len(GENERATED)
    first = _evaluate(TEST, persist=False)
    assert len(feature_calls) == n_ref + n_gen
    second = _evaluate(list(TEST), persist=False)  # a new evaluator, same SMILES: in-process cache
    assert len(feature_calls) == n_ref + 2 * n_gen
    assert second == first and first > 0.05
    assert not (data_root / molecules.REFERENCE_CACHE).exists()

    # Persisted: a new process (empty in-memory cache) reads the mean vector back instead of recomputing it.
    monkeypatch.setattr(molecules, "_SHARED", OrderedDict())
    stored = _evaluate(TEST, persist=True)
    assert len(feature_calls) == 2 * n_ref + 3 * n_gen
    monkeypatch.setattr(molecules, "_SHARED", OrderedDict())
    reread = _evaluate(TEST, persist=True)
    assert len(feature_calls) == 2 * n_ref + 4 * n_gen
    assert reread == stored == first
    files = list((data_root / molecules.REFERENCE_CACHE).rglob("nspdk_mean.*.npz"))
    tag = molecules.nspdk_reference_tag()
    assert [f.relative_to(data_root / molecules.REFERENCE_CACHE).as_posix() for f in files] == [
        f"{molecules.smiles_set_key(TEST)}/nspdk_mean.{tag}.npz"
    ]
    # The values of the uncached computation, bit for bit.
    ref = [mol_to_nx(m) for chunk in MoleculeEvaluator(None, TEST).test_mol_chunks() for m in chunk]
    saved = sp.load_npz(files[0])
    assert saved.shape == (1, nspdk.NSPDK_FEATURES) and saved.nnz > 100
    assert abs(saved - nspdk.nspdk_mean([ref])).max() == 0.0
    assert first == pytest.approx(nspdk.nspdk_mmd(nspdk.nspdk_mean([ref]), _graphs(GENERATED)), rel=1e-12)


@pytest.mark.parametrize("damage", ["truncated", "wrong_shape"])
def test_damaged_cache_file_is_recomputed(
    damage: str,
    feature_calls: list[int],
    data_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = _evaluate(TEST, persist=True)
    (path,) = (data_root / molecules.REFERENCE_CACHE).rglob("nspdk_mean.*.npz")
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    else:  # a readable sparse matrix that is not a mean vector
        sp.save_npz(path, sp.csr_matrix(np.ones((2, 3))))
    monkeypatch.setattr(molecules, "_SHARED", OrderedDict())
    calls_before = len(feature_calls)
    again = _evaluate(TEST, persist=True)
    assert len(feature_calls) - calls_before == len(TEST) + len(GENERATED)  # reference recomputed
    assert again == first
    assert any("damaged cache file" in r.getMessage() for r in caplog.records)
    # Rewritten whole: the next process reads it without a warning and without recomputing.
    monkeypatch.setattr(molecules, "_SHARED", OrderedDict())
    caplog.clear()
    calls_before = len(feature_calls)
    assert _evaluate(TEST, persist=True) == first
    assert len(feature_calls) - calls_before == len(GENERATED)
    assert "damaged" not in caplog.text


def test_changed_reference_or_feature_code_gives_another_key(feature_calls: list[int], data_root: Path) -> None:
    first = _evaluate(TEST, persist=True)
    changed = [*TEST[:-1], "OCC(O)CCO"]
    other = _evaluate(changed, persist=True)
    assert other != first
    cache = data_root / molecules.REFERENCE_CACHE
    folders = sorted(f.parent.name for f in cache.rglob("nspdk_mean.*.npz"))
    assert folders == sorted([molecules.smiles_set_key(TEST), molecules.smiles_set_key(changed)])
    assert len(set(folders)) == 2
    assert molecules.smiles_set_key(TEST[::-1]) != molecules.smiles_set_key(TEST)  # order is part of the key

    # A new feature definition: another file name and in-memory key, so the stored vector is not read.
    tag = molecules.nspdk_reference_tag()
    version = nspdk.FEATURE_VERSION
    nspdk.FEATURE_VERSION = version + 1
    nspdk.feature_version.cache_clear()
    try:
        new_tag = molecules.nspdk_reference_tag()
        assert new_tag != tag
        calls_before = len(feature_calls)
        assert _evaluate(TEST, persist=True) == first  # same features, recomputed under the new key
        assert len(feature_calls) - calls_before == len(TEST) + len(GENERATED)
        names = sorted(f.name for f in (cache / molecules.smiles_set_key(TEST)).glob("nspdk_mean.*.npz"))
        assert names == sorted([f"nspdk_mean.{tag}.npz", f"nspdk_mean.{new_tag}.npz"])
    finally:
        nspdk.FEATURE_VERSION = version
        nspdk.feature_version.cache_clear()
