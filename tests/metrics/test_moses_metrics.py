"""MOSES-style metrics on crafted molecules and hand-computed Tanimoto similarities."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from graphdiff.errors import DataError
from graphdiff.metrics import moses_metrics as moses_metrics_module
from graphdiff.metrics.moses_metrics import (
    ReferenceStatistics,
    cosine_similarity_counts,
    internal_diversities,
    internal_diversity,
    load_filters,
    moses_metrics,
    scaffold_counts,
    similarity_to_nearest_neighbour,
    tanimoto_matrix,
)

SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "c1ccc2ccccc2c1", "CCN(CC)CC"]


def _mols(smiles: list[str]) -> list[Chem.Mol]:
    return [Chem.MolFromSmiles(s) for s in smiles]


def test_tanimoto_by_hand() -> None:
    x = np.array([[1, 1, 0, 0], [0, 0, 0, 0]], dtype=np.uint8)
    y = np.array([[1, 0, 1, 0], [0, 0, 0, 0]], dtype=np.uint8)
    sim = tanimoto_matrix(x, y)
    assert sim[0, 0] == pytest.approx(1 / 3)  # 1 common bit, 3 in the union
    assert sim[0, 1] == 0.0 and sim[1, 1] == 1.0  # two empty fingerprints count as identical
    # IntDiv_1 of {x0, y0}: 1 - mean([[1, 1/3], [1/3, 1]]) = 1/3; IntDiv_2: 1 - mean(sqrt((1 + 1/9) / 2)).
    fps = np.stack([x[0], y[0]])
    assert internal_diversity(fps, 1) == pytest.approx(1 / 3)
    assert internal_diversity(fps, 2) == pytest.approx(1 - np.sqrt((1 + 1 / 9) / 2))
    # SNN of x0 against {y0, empty}: 1/3.
    assert similarity_to_nearest_neighbour(x[:1], y) == pytest.approx(1 / 3)


def test_same_set_scores() -> None:
    mols = _mols(SMILES)
    out = moses_metrics(mols, ReferenceStatistics(mols), n_jobs=1)
    assert out["snn"] == pytest.approx(1.0)
    assert out["frag"] == pytest.approx(1.0)
    assert out["scaf"] == pytest.approx(1.0)  # naphthalene is the only scaffold with two rings
    for name in ("logp", "sa", "qed", "weight"):
        assert out[name] == pytest.approx(0.0, abs=1e-12)
    assert 0.0 < out["intdiv1"] < 1.0 and out["intdiv2"] <= out["intdiv1"] + 1e-12
    identical = moses_metrics(_mols(["CCO"] * 4), None, ["intdiv1"])
    assert identical["intdiv1"] == pytest.approx(0.0)


def test_weight_distance_by_hand() -> None:
    ref = ReferenceStatistics(_mols(["C", "CC"]))
    out = moses_metrics(_mols(["CC", "CCC"]), ref, ["weight"])
    # W1 between {16.043, 30.07} and {30.07, 44.097}: sorted pairs differ by 14.027 each.
    assert out["weight"] == pytest.approx(14.027, abs=1e-3)


def test_scaffolds_need_two_rings_and_cosine_by_hand() -> None:
    counts = scaffold_counts(_mols(["c1ccccc1CC", "c1ccc2ccccc2c1", "c1ccc2ccccc2c1C"]))
    assert counts == Counter({"c1ccc2ccccc2c1": 2})
    assert cosine_similarity_counts(Counter({"a": 1, "b": 1}), Counter({"a": 2})) == pytest.approx(1 / np.sqrt(2))
    assert np.isnan(cosine_similarity_counts(Counter(), Counter({"a": 1})))


def test_filters_basic_rules() -> None:
    flt = load_filters()
    assert flt.passes(Chem.MolFromSmiles("CCO"))
    assert not flt.passes(Chem.MolFromSmiles("C[N+](C)(C)C"))  # charged
    assert not flt.passes(Chem.MolFromSmiles("C1CCCCCCC1"))  # 8-membered ring
    assert not flt.passes(Chem.MolFromSmiles("CCP"))  # phosphorus not allowed


def test_filters_from_a_folder(tmp_path: Path) -> None:
    (tmp_path / "mcf.csv").write_text("names,smarts\nnitrile,[#6]#[#7]\n")
    (tmp_path / "wehi_pains.csv").write_text('"[#8]-[#8]"   ,"<regId=peroxide>"\n')
    flt = load_filters(str(tmp_path))
    assert flt.source == f"moses:{tmp_path}"
    assert not flt.passes(Chem.MolFromSmiles("CC#N")) and not flt.passes(Chem.MolFromSmiles("COOC"))
    assert flt.passes(Chem.MolFromSmiles("CCO"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "mcf.csv").write_text("names,smarts\nbroken,[#6\n")
    (bad / "wehi_pains.csv").write_text("")
    with pytest.raises(DataError, match="mcf.csv:2"):
        load_filters(str(bad))


def _random_fps(rng: np.random.Generator, n: int, density: float = 0.1) -> np.ndarray:
    fps = (rng.random((n, 64)) < density).astype(np.uint8)
    fps[::7] = 0  # empty fingerprints: the 0/0 convention must hold in every tile
    return fps


def _dense_tanimoto(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The straightforward ``[n, m]`` float64 computation the tiled code must reproduce."""
    xf, yf = x.astype(np.float64), y.astype(np.float64)
    common = xf @ yf.T
    union = xf.sum(1)[:, None] + yf.sum(1)[None, :] - common
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union == 0, 1.0, common / union)


@pytest.mark.parametrize(("n_gen", "n_ref", "block", "row_chunk"), [(23, 31, 7, 5), (10, 10, 10, 10), (9, 50, 64, 4),
                                                                   (1, 13, 3, 1), (40, 3, 2, 17)])
def test_snn_tiles_equal_dense(n_gen: int, n_ref: int, block: int, row_chunk: int) -> None:
    rng = np.random.default_rng(n_gen * 100 + n_ref)
    gen, ref = _random_fps(rng, n_gen), _random_fps(rng, n_ref)
    dense = _dense_tanimoto(gen, ref)
    assert np.array_equal(tanimoto_matrix(gen, ref), dense)
    tiled = similarity_to_nearest_neighbour(gen, ref, block=block, row_chunk=row_chunk)
    assert tiled == float(dense.max(1).mean())  # exactly: the max does not depend on the tiling
    packed = np.packbits(ref, axis=1)  # as ReferenceStatistics keeps them
    assert similarity_to_nearest_neighbour(gen, packed, block=block, row_chunk=row_chunk, packed=True) == tiled


@pytest.mark.parametrize(("n", "block", "row_chunk"), [(23, 7, 5), (16, 4, 16), (30, 64, 7), (5, 2, 1)])
def test_intdiv_tiles_equal_blocked_sums(monkeypatch: pytest.MonkeyPatch, n: int, block: int, row_chunk: int) -> None:
    import graphdiff.metrics.moses_metrics as mm

    monkeypatch.setattr(mm, "_BLOCK", block)
    fps = _random_fps(np.random.default_rng(n), n)
    dense = _dense_tanimoto(fps, fps)
    got = internal_diversities(fps, (1, 2), row_chunk=row_chunk)
    for p in (1, 2):
        # Column blocks of _BLOCK summed in order: the original computation, equal to the last bit.
        total = sum((dense[:, s : s + block] ** p).sum(1) for s in range(0, n, block))
        assert got[p] == float(1 - np.mean((total / n) ** (1 / p)))
        assert got[p] == pytest.approx(1 - np.mean(((dense**p).mean(1)) ** (1 / p)), rel=1e-12)
        assert internal_diversity(fps, p) == got[p]


def test_reference_statistics_stored_and_read_back(tmp_path: Path) -> None:
    mols = _mols(SMILES)
    first = ReferenceStatistics(mols, n_jobs=1, cache_dir=tmp_path)
    values = (first.fingerprints(), first.fragments(), first.scaffolds(), first.properties())

    def no_molecules() -> list[Chem.Mol]:
        raise AssertionError("cached statistics must not need the molecules")

    again = ReferenceStatistics(no_molecules, cache_dir=tmp_path)
    assert np.array_equal(again.fingerprints(), values[0]) and again.fingerprints().dtype == np.uint8
    assert np.array_equal(again.packed_fingerprints(), np.packbits(values[0], axis=1))
    assert np.array_equal(values[0], moses_metrics_module.morgan_fingerprints(mols))
    assert again.fragments() == values[1] and again.scaffolds() == values[2]
    assert again.properties().keys() == values[3].keys()
    assert all(np.array_equal(again.properties()[k], v) for k, v in values[3].items())
    assert moses_metrics(mols, again, n_jobs=1) == moses_metrics(mols, first, n_jobs=1)


def test_reference_statistics_from_chunks_equal_one_list() -> None:
    mols = _mols(SMILES + ["c1ccc2ccccc2c1C", "CCCCO"])
    passes = []

    def chunks() -> list[list[Chem.Mol]]:
        passes.append(1)
        return [mols[:3], mols[3:4], [], mols[4:]]

    chunked, whole = ReferenceStatistics(chunks, n_jobs=1), ReferenceStatistics(mols, n_jobs=1)
    generated = _mols(["CCO", "c1ccc2ccccc2c1", "CCN"])
    assert moses_metrics(generated, chunked, n_jobs=1) == moses_metrics(generated, whole, n_jobs=1)
    assert len(passes) == 1  # all four statistics in one pass over the reference
    assert np.array_equal(chunked.fingerprints(), whole.fingerprints()) and len(passes) == 1
