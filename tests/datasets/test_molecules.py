"""Tests of the molecule datasets and the SMILES-file loader."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from rdkit import Chem

from graphdiff.chem import AtomVocabulary, BondVocabulary, canonical_smiles, graph_to_mol, mol_to_graph
from graphdiff.datasets import cache, molecule_parsing
from graphdiff.datasets.molecule_parsing import parse_smiles
from graphdiff.datasets.molecule_sets import MOSES_FILES
from graphdiff.datasets.registry import load_dataset, load_split_smiles
from graphdiff.datasets.smiles_files import read_smiles_records
from graphdiff.datasets.splits import qm9_split
from graphdiff.datasets.user_files import load_smiles_file
from graphdiff.errors import ConfigError, DataError
from tests.conftest import data_file

MIXED_SMILES = [
    "C[N+](C)(C)C",
    "[O-][N+](=O)c1ccccc1",
    "[NH3+]CC(=O)[O-]",
    "c1ccc2[nH]ccc2c1",
    "Cc1cnc[nH]1",
    "CS(=O)(=O)Nc1ccc(Cl)cc1F",
    "C#CC(=O)NC1CC1",
    "[C-]#[N+]C",
    "OC1C2CC3C1N23",
    "O=N(=O)c1ccc[nH]1",  # sanitisation makes the nitro group charged: [N+](=O)[O-]
    "CN(=O)=O",
    "[2H]C(Cl)Cl",  # isotopic hydrogen: RDKit keeps it as an atom, graphs fold it in like any hydrogen
]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def round_trip_failures(ds, atoms: AtomVocabulary, bonds: BondVocabulary) -> list[tuple[int, str, str | None]]:
    """Stored graphs whose molecule's canonical SMILES differs from the stored SMILES."""
    failures = []
    for i in range(len(ds.graphs)):
        smiles = canonical_smiles(graph_to_mol(*ds.graphs.graph(i), atoms, bonds))
        if smiles != ds.smiles[i]:
            failures.append((i, ds.smiles[i], smiles))
    return failures


# ---------------------------------------------------------------------------------------------- reading files
def test_read_smi_with_names_blank_lines_and_header(tmp_path: Path) -> None:
    path = write(tmp_path / "mols.smi", "SMILES Name\nCCO ethanol\n\nc1ccccc1\tbenzene\n  C  \n")
    records = read_smiles_records(path)
    assert records.smiles == ["CCO", "c1ccccc1", "C"]
    assert records.lines == [2, 4, 5]


def test_read_csv_finds_the_smiles_column_in_any_case(tmp_path: Path) -> None:
    path = write(tmp_path / "mols.csv.gz", "id,SMILES,y\na,CCO,1\nb,  c1ccccc1 ,2\n")
    records = read_smiles_records(path, id_column="id")
    assert records.smiles == ["CCO", "c1ccccc1"]
    assert records.lines == [2, 3]
    assert records.ids == ["a", "b"]
    assert read_smiles_records(path, limit=1).smiles == ["CCO"]


def test_read_csv_multiline_quoted_smiles_reports_start_lines(tmp_path: Path) -> None:
    # The chemical VAE ZINC file quotes SMILES that end in a newline.
    path = write(tmp_path / "zinc.csv", 'smiles,logP\n"CCO\n",1.0\n"CCN\n",2.0\n')
    records = read_smiles_records(path)
    assert records.smiles == ["CCO", "CCN"]
    assert records.lines == [2, 4]


def test_csv_without_smiles_column_lists_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "mols.csv", "name,structure\na,CCO\n")
    with pytest.raises(DataError, match="columns are name, structure") as info:
        read_smiles_records(path)
    assert "\n" not in str(info.value)
    assert read_smiles_records(path, column="structure").smiles == ["CCO"]
    with pytest.raises(DataError, match="no column 'smile'"):
        read_smiles_records(path, column="smile")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.smi", "", "file is empty"),
        ("blank.smi", "\n  \n", "file is empty"),
        ("header.csv", "smiles\n", "only a header"),
        ("mols.sdf", "CCO\n", "unknown SMILES file type"),
    ],
)
def test_unusable_files_give_one_line_errors(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = write(tmp_path / name, content)
    with pytest.raises(DataError, match=message) as info:
        read_smiles_records(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_truncated_gzip_is_a_one_line_error(tmp_path: Path) -> None:
    full = tmp_path / "full.smi.gz"
    write(full, "CCO\n" * 5000)
    cut = tmp_path / "cut.smi.gz"
    cut.write_bytes(full.read_bytes()[:-30])
    with pytest.raises(DataError, match="truncated or corrupt gzip") as info:
        read_smiles_records(cut)
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="no such file"):
        read_smiles_records(tmp_path / "missing.smi")


# ---------------------------------------------------------------------------------------------- row processing
@pytest.mark.parametrize(("explicit_h", "kekulize"), [(False, False), (False, True), (True, False), (True, True)])
def test_parse_smiles_matches_mol_to_graph(tmp_path: Path, explicit_h: bool, kekulize: bool) -> None:
    """The fast row processing gives exactly the graphs of :func:`mol_to_graph`."""
    path = write(tmp_path / "mols.smi", "\n".join(MIXED_SMILES) + "\n")
    parsed = parse_smiles(read_smiles_records(path), explicit_h=explicit_h, kekulize=kekulize)
    atoms = AtomVocabulary.from_keys(np.unique(parsed.atom_keys).tolist(), explicit_h=explicit_h)
    bonds = BondVocabulary(aromatic=not kekulize)
    parsed, classes = parsed.apply_vocabulary(atoms, str(path))
    graphs = parsed.to_graph_list(classes)
    assert len(graphs) == len(MIXED_SMILES)
    for k, smiles in enumerate(MIXED_SMILES):
        expected = mol_to_graph(Chem.MolFromSmiles(smiles), atoms, bonds, explicit_h=explicit_h, kekulize=kekulize)
        for got, want in zip(graphs.graph(k), expected, strict=True):
            assert torch.equal(got, want)
        assert parsed.smiles[k] == canonical_smiles(smiles)


def test_parsing_shows_a_progress_bar_per_chunk(tmp_path: Path, monkeypatch, capsys) -> None:
    path = write(tmp_path / "mols.smi", "\n".join(MIXED_SMILES) + "\n")
    monkeypatch.setattr(molecule_parsing, "_CHUNK_ROWS", 5)
    monkeypatch.setenv("GRAPHDIFF_PROGRESS", "1")
    assert len(parse_smiles(read_smiles_records(path), num_workers=0)) == len(MIXED_SMILES)
    assert "parsing mols.smi" in capsys.readouterr().err
    monkeypatch.setenv("GRAPHDIFF_PROGRESS", "0")
    parse_smiles(read_smiles_records(path), num_workers=0)
    assert capsys.readouterr().err == ""


def test_parse_smiles_in_worker_processes_gives_the_same_result(tmp_path: Path, monkeypatch) -> None:
    path = write(tmp_path / "mols.smi", "\n".join(MIXED_SMILES * 3) + "\nC1CC\n")
    invalid_line = 3 * len(MIXED_SMILES) + 1
    records = read_smiles_records(path)
    monkeypatch.setattr(molecule_parsing, "_CHUNK_ROWS", 7)
    serial = parse_smiles(records, num_workers=0)
    parallel = parse_smiles(records, num_workers=2)
    for name in ("atom_keys", "num_atoms", "edge_index", "edge_types", "num_bonds", "rows", "lines"):
        assert np.array_equal(getattr(serial, name), getattr(parallel, name)), name
    assert serial.smiles == parallel.smiles
    assert serial.skipped == parallel.skipped == {"invalid_smiles": {"count": 1, "lines": [invalid_line]}}


# ---------------------------------------------------------------------------------------------- SMILES files
def test_load_smiles_file_counts_and_reports_skipped_rows(tmp_path: Path, caplog) -> None:
    lines = ["CCO", "C1CC", "c1ccccc1", "not_smiles", "CCCCCCCCCCCC", "[CH2]C", "", "OC(=O)C", "C(", "CCN", "[H][H]"]
    path = write(tmp_path / "mine.smi", "\n".join(lines) + "\n")
    ds = load_smiles_file(path, root=tmp_path / "root", max_nodes=10)
    skipped = ds.info.skipped
    assert skipped["invalid_smiles"] == {"count": 3, "lines": [2, 4, 9]}
    assert skipped["too_many_atoms"] == {"count": 1, "lines": [5]}
    assert skipped["radical"] == {"count": 1, "lines": [6]}
    assert skipped["hydrogen_only"] == {"count": 1, "lines": [11]}
    assert ds.smiles == ["CCO", "c1ccccc1", "CC(=O)O", "CCN"]
    assert ds.info.node_types == ["C", "N", "O"]
    assert ds.info.edge_types == ["none", "single", "double", "triple", "aromatic"]
    assert sum(ds.info.split_sizes.values()) == 4
    assert "invalid SMILES" in caplog.text and "line(s) 2, 4, 9" in caplog.text
    assert ds.info.source["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ds.info.valencies == [4, 3, 2]


def test_many_bad_rows_are_all_counted_but_only_the_first_lines_reported(tmp_path: Path, caplog, monkeypatch) -> None:
    """Counts span chunks (brute force: every line is checked by hand); five line numbers are kept."""
    monkeypatch.setattr(molecule_parsing, "_CHUNK_ROWS", 4)
    rows, invalid, large = [], [], []
    for k in range(30):
        if k % 4 == 1:
            rows.append("C1CC" if k % 8 == 1 else "C(")
            invalid.append(k + 2)  # line 1 is the header
        elif k % 7 == 3:
            rows.append("C" * 12)
            large.append(k + 2)
        else:
            rows.append("C" * (1 + k % 5) + "O")
    path = write(tmp_path / "many.smi", "smiles\n" + "\n".join(rows) + "\n")
    ds = load_smiles_file(path, root=tmp_path / "root", max_nodes=10)
    assert ds.info.skipped == {
        "invalid_smiles": {"count": len(invalid), "lines": invalid[:5]},
        "too_many_atoms": {"count": len(large), "lines": large[:5]},
    }
    assert len(invalid) > 5 and len(large) >= 2
    assert len(ds.smiles) == 30 - len(invalid) - len(large)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(f"skipped {len(large)} row(s) with more atoms than max_nodes" in w for w in warnings), warnings
    assert any(f"skipped {len(invalid)} row(s) with invalid SMILES" in w for w in warnings), warnings
    assert all("\n" not in w for w in warnings)


def test_cli_data_info_reads_a_smiles_file(tmp_path: Path, capsys, monkeypatch) -> None:
    from graphdiff.cli import main

    monkeypatch.setenv("GRAPHDIFF_ROOT", str(tmp_path / "root"))
    path = write(tmp_path / "mine.smi", "CCO\nC1CC\n[NH3+]CC(=O)[O-]\nc1ccccc1\n")
    assert main(["data", "info", str(path), "-o", "kekulize=true"]) == 0
    out = capsys.readouterr().out
    assert "dataset       mine (molecule)" in out
    assert "graphs        3  " in out
    assert "node types    C:" in out and "N+:" in out and "O-:" in out
    assert "edge types    none:" in out and "aromatic" not in out
    assert "skipped       invalid_smiles: 1 (first lines [2])" in out


def test_load_smiles_file_unknown_atom_stops_or_is_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "mols.csv", "name,smiles\na,CCO\nb,C[Si](C)(C)C\nc,CCN\nd,CCBr\n")
    with pytest.raises(DataError, match="line 3: atom type 'Si' is not in the atom types") as info:
        load_smiles_file(path, atom_types=["C", "N", "O"], root=tmp_path / "root")
    assert "\n" not in str(info.value)
    ds = load_smiles_file(path, atom_types=["C", "N", "O"], skip_unknown_atoms=True, root=tmp_path / "root")
    assert ds.info.skipped["unknown_atom"] == {"count": 2, "lines": [3, 5], "atoms": ["Br", "Si"]}
    assert ds.smiles == ["CCO", "CCN"]
    assert ds.info.node_types == ["C", "N", "O"]


def test_load_smiles_file_explicit_h_kekulized(tmp_path: Path) -> None:
    path = write(tmp_path / "mols.smi", "c1ccccc1 benzene\n[NH3+]CC(=O)[O-] glycine\n")
    ds = load_smiles_file(path, explicit_h=True, kekulize=True, root=tmp_path / "root", split=(1.0, 0.0, 0.0))
    assert ds.info.node_types == ["C", "N+", "O", "O-", "H"]
    assert ds.info.edge_types == ["none", "single", "double", "triple"]
    assert ds.graphs.num_nodes.tolist() == [12, 10]
    atoms = AtomVocabulary.from_names(ds.info.node_types)
    assert round_trip_failures(ds, atoms, BondVocabulary.from_names(ds.info.edge_types)) == []
    assert ds.info.split_sizes == {"train": 2, "val": 0, "test": 0}
    with pytest.raises(ConfigError, match="explicit_h=True"):
        load_smiles_file(path, atom_types=["C", "H"], root=tmp_path / "root")
    with pytest.raises(ConfigError, match="split"):
        load_smiles_file(path, split=(0.5, 0.2), root=tmp_path / "root")


def test_load_smiles_file_caches_and_rebuilds_on_new_options(tmp_path: Path) -> None:
    path = write(tmp_path / "qm9.smi", "CCO\nCCN\nCCC\nCC=O\n")
    root = tmp_path / "root"
    first = load_smiles_file(path, root=root)
    assert first.info.name == "qm9_file" and not (root / "qm9").exists()  # no clash with the registered qm9
    assert len(list((root / "files").glob("qm9-*/processed/info.json"))) == 1
    again = load_smiles_file(path, root=root)
    assert again.smiles == first.smiles and again.info.options == first.info.options
    kekulized = load_smiles_file(path, root=root, kekulize=True)
    assert kekulized.info.edge_types == ["none", "single", "double", "triple"]


def test_no_valid_molecule_is_a_data_error(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.smi", "C1CC\nxyz\n")
    with pytest.raises(DataError, match="no usable molecule among 2 rows"):
        load_smiles_file(path, root=tmp_path / "root")


# ---------------------------------------------------------------------------------------------- QM9
def test_qm9_split_sizes_and_shuffle() -> None:
    splits = qm9_split(130_831)
    assert {k: len(v) for k, v in splits.items()} == {"train": 100_000, "val": 17_748, "test": 13_083}
    every = np.concatenate(list(splits.values()))
    assert np.array_equal(np.sort(every), np.arange(130_831))
    assert np.array_equal(splits["train"][:5], np.random.RandomState(42).permutation(130_831)[:5])
    small = qm9_split(2000)
    assert {k: len(v) for k, v in small.items()} == {"train": 1529, "val": 271, "test": 200}


def test_qm9_split_is_pandas_sample_order() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"i": np.arange(1000)})
    expected = frame.sample(frac=1, random_state=42).index.to_numpy()
    splits = qm9_split(1000)
    assert np.array_equal(np.concatenate([splits["train"], splits["val"], splits["test"]]), expected)


def test_qm9_first_2000_rows(data_root: Path) -> None:
    data_file("qm9", "qm9.csv.gz")
    ds = load_dataset("qm9", limit=2000)
    assert len(ds.graphs) == 2000 and ds.info.skipped == {}
    assert ds.info.node_types == ["C", "C-", "N", "N+", "N-", "O", "O-", "F"]
    assert ds.info.edge_types == ["none", "single", "double", "triple"]
    assert ds.info.split_sizes == {"train": 1529, "val": 271, "test": 200}
    assert ds.info.max_nodes <= 9
    assert ds.info.options == {"kekulize": True, "limit": 2000, "protocol": "graphdiff"}
    atoms, bonds = AtomVocabulary.from_names(ds.info.node_types), BondVocabulary.from_names(ds.info.edge_types)
    assert round_trip_failures(ds, atoms, bonds) == []
    # Stored SMILES are the canonical SMILES of the file's rows, in file order.
    records = read_smiles_records(data_file("qm9", "qm9.csv.gz"), limit=2000)
    assert ds.smiles == [canonical_smiles(s) for s in records.smiles]


def test_qm9_h_first_2000_rows(data_root: Path) -> None:
    data_file("qm9", "qm9.csv.gz")
    ds = load_dataset("qm9_h", limit=2000)
    assert ds.info.node_types[-1] == "H" and ds.info.max_nodes <= 29
    atoms, bonds = AtomVocabulary.from_names(ds.info.node_types), BondVocabulary.from_names(ds.info.edge_types)
    assert round_trip_failures(ds, atoms, bonds) == []
    # Node counts include the hydrogens: methane is 5 atoms, water 3.
    assert ds.graphs.num_nodes[:3].tolist() == [5, 4, 3]


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("GRAPHDIFF_FULL_DATA"),
    reason="whole QM9 takes minutes (set GRAPHDIFF_FULL_DATA=1); docs/datasets.md has the measured numbers",
)
def test_qm9_full_file_loads_and_round_trips(data_root: Path) -> None:
    data_file("qm9", "qm9.csv.gz")
    ds = load_dataset("qm9")
    assert len(ds.graphs) == 130_831 and ds.info.skipped == {}
    assert ds.info.split_sizes == {"train": 100_000, "val": 17_748, "test": 13_083}
    atoms, bonds = AtomVocabulary.from_names(ds.info.node_types), BondVocabulary.from_names(ds.info.edge_types)
    failures = round_trip_failures(ds, atoms, bonds)
    assert len(failures) <= 0.001 * len(ds.graphs), failures[:10]


def test_qm9_deepchem_layout_drops_uncharacterized(data_root: Path, tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("GRAPHDIFF_DATA_DIR", str(tmp_path / "nothing"))
    raw = data_root / "qm9" / "raw"
    write(raw / "qm9.csv", "mol_id,smiles,A\ngdb_1,C,1\ngdb_2,N,1\ngdb_3,O,1\ngdb_4,C#C,1\ngdb_5,C#N,1\n")
    unc = "Header text\n  Index  GDB17 SMILES\n     2   N   N  0.1\n     5  C#N C#N 0.2\n\n"
    write(raw / "uncharacterized.txt", unc)
    ds = load_dataset("qm9")
    assert ds.smiles == ["C", "O", "C#C"]
    assert ds.info.skipped["uncharacterized"] == {"count": 2, "lines": [3, 6]}
    assert f"{raw / 'qm9.csv'}: skipped 2 row(s) with QM9 molecules listed as uncharacterized (first at line(s) 3, 6)" \
        in caplog.text
    assert [Path(f["file"]).name for f in ds.info.source["files"]] == ["qm9.csv", "uncharacterized.txt"]


# ---------------------------------------------------------------------------------------------- MOSES
def test_moses_first_rows_and_published_checksums(data_root: Path) -> None:
    for raw in MOSES_FILES.values():
        data_file("moses", raw.name)
    ds = load_dataset("moses", limit=300)
    assert ds.info.split_sizes == {"train": 300, "val": 300, "test": 300, "test_scaffolds": 300}
    assert torch.equal(ds.splits["val"], ds.splits["test"])
    assert ds.info.node_types == ["C", "N", "O", "F", "S", "Cl", "Br"]
    assert ds.info.edge_types[-1] == "aromatic"
    # The shared copies are the Git LFS objects of molecularsets/moses.
    digests = {Path(f["file"]).name: f["sha256"] for f in ds.info.source["files"]}
    assert digests == {raw.name: raw.sha256 for raw in MOSES_FILES.values()}
    train = read_smiles_records(data_file("moses", "train.csv.gz"), limit=300)
    assert ds.split_smiles("train") == [canonical_smiles(s) for s in train.smiles]


# ---------------------------------------------------------------------------------------------- ZINC250k / GuacaMol
def test_zinc250k_from_placed_files(data_root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GRAPHDIFF_DATA_DIR", str(tmp_path / "nothing"))
    raw = data_root / "zinc250k" / "raw"
    rows = ["CC[NH+](C)C", "c1ccccc1O", "CC(=O)[O-]", "C1CC", "CCS(=O)(=O)N"]
    table = "smiles,logP,qed,SAS\n" + "".join(f'"{s}\n",1,0.5,2\n' for s in rows)
    write(raw / "250k_rndm_zinc_drugs_clean_3.csv", table)
    write(raw / "valid_idx_zinc250k.json", json.dumps([1, 3]))
    ds = load_dataset("zinc250k")
    assert ds.info.skipped == {"invalid_smiles": {"count": 1, "lines": [8]}}
    assert ds.split_smiles("test") == ["Oc1ccccc1"]  # row 3 is the invalid one
    assert ds.split_smiles("train") == ["CC[NH+](C)C", "CC(=O)[O-]", "CCS(N)(=O)=O"]
    assert ds.info.node_types == ["C", "N", "N+", "O", "O-", "S"]
    assert ds.info.edge_types == ["none", "single", "double", "triple"]


def test_guacamol_from_placed_files(data_root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GRAPHDIFF_DATA_DIR", str(tmp_path / "nothing"))
    raw = data_root / "guacamol" / "raw"
    write(raw / "guacamol_v1_train.smiles", "CCO\nc1ccncc1\nCCBr\n")
    write(raw / "guacamol_v1_valid.smiles", "CC[O-]\n")
    write(raw / "guacamol_v1_test.smiles", "CCN\nCCI\n")
    ds = load_dataset("guacamol", limit=2)
    assert ds.info.split_sizes == {"train": 2, "val": 1, "test": 2}
    assert ds.info.node_types == ["C", "N", "O", "O-", "I"]
    assert ds.split_smiles("test") == ["CCN", "CCI"]


def _offline(*args, **kwargs):
    raise urllib.error.URLError("network is unreachable")


@pytest.mark.parametrize(
    ("name", "file"),
    [("zinc250k", "250k_rndm_zinc_drugs_clean_3.csv"), ("guacamol", "guacamol_v1_train.smiles"), ("qm9", "qm9.csv")],
)
def test_offline_download_names_the_file_and_where_to_put_it(
    data_root: Path, tmp_path: Path, monkeypatch, name: str, file: str
) -> None:
    monkeypatch.setenv("GRAPHDIFF_DATA_DIR", str(tmp_path / "nothing"))
    monkeypatch.setattr(urllib.request, "urlopen", _offline)
    with pytest.raises(DataError) as info:
        load_dataset(name)
    message = str(info.value)
    assert "\n" not in message
    assert f"place {file} at {data_root / name / 'raw' / file}" in message
    assert "network is unreachable" in message


def test_guacamol_download_is_checked_against_the_published_md5(data_root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GRAPHDIFF_DATA_DIR", str(tmp_path / "nothing"))
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: io.BytesIO(b"CCO\n"))
    with pytest.raises(DataError, match="MD5 .* expected 05ad85d871958a05c02ab51a4fde8530"):
        load_dataset("guacamol")


def test_split_smiles_and_evaluation_read_no_graphs(data_root: Path, tmp_path: Path, monkeypatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """``load_split_smiles`` (what ``graphdiff evaluate --reference DATASET:split`` reads for molecules) takes the
    SMILES from the cache without its graphs; without a usable cache it loads (builds) the dataset."""
    from graphdiff.evaluation import evaluate_files

    monkeypatch.setenv("GRAPHDIFF_DATA_DIR", str(tmp_path / "nothing"))
    raw = data_root / "guacamol" / "raw"
    write(raw / "guacamol_v1_train.smiles", "CCO\nc1ccncc1\nCCBr\n")
    write(raw / "guacamol_v1_valid.smiles", "CC[O-]\n")
    write(raw / "guacamol_v1_test.smiles", "CCN\nCCI\n")
    expected = {"test": ["CCN", "CCI"], "train": ["CCO", "c1ccncc1", "CCBr"]}
    assert load_split_smiles("guacamol", ["test", "train"]) == expected  # no cache yet: built

    def no_graphs(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("graphs.pt must not be read")

    with monkeypatch.context() as m:
        m.setattr(cache, "_read_graphs", no_graphs)
        assert load_split_smiles("guacamol", ["test", "train"]) == expected
        samples = write(tmp_path / "samples.smi", "CCO\nCCN\nC1CC\nCCCl\n")
        scores = evaluate_files(samples, "guacamol:test", metrics=["validity", "uniqueness", "novelty"])
        assert scores == {"validity": 0.75, "uniqueness": 1.0, "novelty": 2 / 3}
        with pytest.raises(ConfigError, match="no split 'nope'"):
            load_split_smiles("guacamol", ["nope"])
        with pytest.raises(ConfigError, match="holds graphs"):
            load_split_smiles("comm20", ["test"])
    # A damaged or differently built cache is not read: the dataset is loaded (and rebuilt) instead.
    smiles_file = data_root / "guacamol" / "processed" / "smiles.json"
    smiles_file.write_text(smiles_file.read_text()[:10])
    assert load_split_smiles("guacamol", ["test", "train"]) == expected
    assert "damaged" in caplog.text
    assert load_split_smiles("guacamol", ["test"], limit=1) == {"test": ["CCN"]}
