"""Reproduction protocols for molecules: GDSS's and DiGress's QM9, and GDSS's molecule decoding.

Each test fails when its option is ignored: the default (graphdiff's) behaviour gives other splits, vocabularies,
molecules or validity. Where the reference repositories' mirrors are present, the expected values come from their
files and functions; hand-written values keep the tests meaningful without them.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from rdkit import Chem

from graphdiff.chem import (
    AtomVocabulary,
    BondVocabulary,
    canonical_smiles,
    gdss_molecule,
    graphs_to_mols,
    mol_to_graph,
)
from graphdiff.datasets import load_dataset
from graphdiff.datasets.molecule_sets import QM9_GDSS_TEST_INDEX
from graphdiff.datasets.sources import GDSS_COMMIT, file_digest
from graphdiff.errors import ConfigError, DataError
from graphdiff.sde.process import GraphEncoding
from graphdiff.storage import GraphList

GDSS_MIRROR = Path("/work/.mirror/harryjo97+GDSS/repo")
NEUTRAL = AtomVocabulary.from_names(["C", "N", "O", "F"])
KEKULE = BondVocabulary(aromatic=False)


def mirror_file(path: str, dest: Path) -> Path:
    """``path`` of the GDSS mirror's HEAD written to ``dest``, or skip the test (mirror or blob absent)."""
    if not GDSS_MIRROR.is_dir():
        pytest.skip(f"GDSS mirror {GDSS_MIRROR} not available")
    out = subprocess.run(["git", "-C", str(GDSS_MIRROR), "show", f"HEAD:{path}"], capture_output=True)
    if out.returncode != 0:
        pytest.skip(f"GDSS mirror lacks {path} ({out.stderr.decode().strip()})")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(out.stdout)
    return dest


def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    def urlopen(url: str, timeout: float | None = None):
        raise urllib.error.URLError("offline in this test")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)


# ---------------------------------------------------------------------------------------------- GDSS's QM9
MOFLOW_ROWS = ["C", "N", "C[N+](=O)[O-]", "OCC#N", "CC(F)=O", "c1ccoc1"]


def write_moflow(raw: Path, test_rows: list[int]) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    lines = [",SMILES1,SMILES2,A"] + [f"{k},{s},{s},1.0" for k, s in enumerate(MOFLOW_ROWS)]
    (raw / "qm9.csv").write_text("\n".join(lines) + "\n")
    (raw / "valid_idx_qm9.json").write_text(json.dumps({"valid_idxs": [f"{k:06d}" for k in test_rows]}))


def test_gdss_protocol_reads_moflow_rows_and_test_index(data_root, monkeypatch):
    # $GRAPHDIFF_DATA_DIR holds a qm9pack qm9.csv.gz: protocol gdss must still read MoFlow's table.
    monkeypatch.setenv("GRAPHDIFF_DATA_DIR", str(data_root.parent / "mirror"))
    pack = data_root.parent / "mirror" / "qm9" / "qm9.csv.gz"
    pack.parent.mkdir(parents=True)
    with gzip.open(pack, "wt") as f:
        f.write("Index,SMILES\n1,CC\n2,CO\n")
    write_moflow(data_root / "qm9" / "raw", test_rows=[1, 4])
    ds = load_dataset("qm9", protocol="gdss")
    assert ds.info.node_types == ["C", "N", "O", "F"]
    assert ds.info.edge_types == ["none", "single", "double", "triple"]
    assert len(ds.graphs) == len(MOFLOW_ROWS)  # no uncharacterized list: every row is kept
    assert ds.split_smiles("test") == ["N", "CC(=O)F"]
    assert ds.splits["val"].tolist() == ds.splits["test"].tolist()
    assert ds.splits["train"].tolist() == [0, 2, 3, 5]
    # charges are not node types, but the stored (reference) SMILES keep them, as GDSS's test SMILES do
    assert "C[N+](=O)[O-]" in ds.split_smiles("train")
    assert ds.info.options["protocol"] == "gdss"
    assert load_dataset("qm9", protocol="graphdiff", limit=None).info.source["file"].endswith("qm9.csv.gz")


def test_gdss_protocol_without_moflow_table_is_one_line(data_root, monkeypatch):
    monkeypatch.setenv("GRAPHDIFF_DATA_DIR", str(data_root.parent / "nothing"))
    no_downloads(monkeypatch)
    with pytest.raises(DataError) as excinfo:
        load_dataset("qm9", protocol="gdss")
    message = str(excinfo.value)
    assert "\n" not in message and "qm9.csv" in message and "protocol gdss" in message


def test_unknown_protocol_is_a_config_error(data_root):
    with pytest.raises(ConfigError, match="protocol='gdds'.*graphdiff, gdss, digress"):
        load_dataset("qm9", protocol="gdds")


def test_gdss_test_index_pin_matches_the_mirror(tmp_path):
    if not GDSS_MIRROR.is_dir():
        pytest.skip(f"GDSS mirror {GDSS_MIRROR} not available")
    head = subprocess.run(["git", "-C", str(GDSS_MIRROR), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert head.stdout.strip() == GDSS_COMMIT
    index = mirror_file("data/valid_idx_qm9.json", tmp_path / "valid_idx_qm9.json")
    assert file_digest(index, "sha256") == QM9_GDSS_TEST_INDEX.sha256
    assert file_digest(index, "git_blob") == QM9_GDSS_TEST_INDEX.git_blob


@pytest.mark.slow
def test_gdss_split_is_the_reference_split(data_root, monkeypatch):
    """The full build (133,885 rows): GDSS's 13,082 test molecules, first and last as the reference's."""
    raw = data_root / "qm9" / "raw"
    table = mirror_file("data/qm9.csv", raw / "qm9.csv")
    index = mirror_file("data/valid_idx_qm9.json", raw / "valid_idx_qm9.json")
    import pandas as pd

    column = pd.read_csv(table)["SMILES1"]
    rows = [int(i) for i in json.loads(index.read_text())["valid_idxs"]]
    ds = load_dataset("qm9", protocol="gdss")
    test = ds.split_smiles("test")
    assert len(test) == 13082 and len(ds.split("train")) == len(column) - 13082
    # splits are stored sorted by row: the first and last test rows are the smallest and largest listed
    assert test[0] == canonical_smiles(column[min(rows)]) and test[-1] == canonical_smiles(column[max(rows)])


# ---------------------------------------------------------------------------------------------- DiGress's QM9
def test_digress_protocol_vocabulary_and_charged_nitrogen(data_root, monkeypatch):
    monkeypatch.setenv("GRAPHDIFF_DATA_DIR", str(data_root.parent / "nothing"))
    raw = data_root / "qm9" / "raw"
    raw.mkdir(parents=True)
    rows = ["C[N+](=O)[O-]", "[NH3+]CC([O-])=O", "CC#N", "CCO"]
    with gzip.open(raw / "qm9.csv.gz", "wt") as f:
        f.write("Index,SMILES\n" + "".join(f"{k + 1},{s}\n" for k, s in enumerate(rows)))
    ds = load_dataset("qm9", protocol="digress")
    assert ds.info.node_types == ["C", "N", "O", "F"]
    assert ds.info.edge_types == ["none", "single", "double", "triple", "aromatic"]
    mols = graphs_to_mols(ds.graphs, ds.info)
    # DiGress's build_molecule_with_partial_charges: the four-bonded N gets +1, the charge-less O an H
    assert [canonical_smiles(m) for m in mols] == ["C[N+](=O)O", "NCC(=O)O", "CC#N", "CCO"]
    assert ds.smiles == ["C[N+](=O)O", "NCC(=O)O", "CC#N", "CCO"]  # DiGress's training SMILES
    # graphdiff's default keeps the charged atom types, so the molecules come back unchanged
    default = load_dataset("qm9")
    assert [canonical_smiles(m) for m in graphs_to_mols(default.graphs, default.info)] == \
        [canonical_smiles(s) for s in rows]


# ---------------------------------------------------------------------------------------------- GDSS decoding
def graph_of(smiles: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The neutral Kekule graph of ``smiles`` (charges dropped, as GDSS's tensors hold it)."""
    mol = Chem.MolFromSmiles(smiles)
    Chem.Kekulize(mol, clearAromaticFlags=True)
    rw = Chem.RWMol(mol)
    for atom in rw.GetAtoms():
        atom.SetFormalCharge(0)
        atom.SetNumExplicitHs(0)
    return mol_to_graph(rw.GetMol(), NEUTRAL, KEKULE)


def over_valent(edges: list[tuple[int, int, int]], atoms: list[int]) -> tuple[torch.Tensor, ...]:
    """A hand-made graph: node classes of ``NEUTRAL`` and ``(i, j, bond order)`` edges."""
    index = torch.tensor([[i for i, _, _ in edges], [j for _, j, _ in edges]])
    return torch.tensor(atoms), index, torch.tensor([t for _, _, t in edges])


#: Hand-made graphs and what GDSS's gen_mol returns for them: (graph, SMILES, valid without correction).
CASES = [
    # nitro group without charges: N gets +1, the O its hydrogen
    (lambda: graph_of("C[N+](=O)[O-]"), "C[N+](=O)O", True),
    # a carbon with five bonds: the double bond is lowered to single
    (lambda: over_valent([(0, 1, 2), (0, 2, 1), (0, 3, 1), (0, 4, 1)], [0, 0, 0, 0, 0]), "CC(C)(C)C", False),
    # O with three single bonds: +1 (oxonium); with a double and two singles: +1, then its double bond lowered
    (lambda: over_valent([(0, 1, 1), (0, 2, 1), (0, 3, 1)], [2, 0, 0, 0]), "C[O+](C)C", True),
    (lambda: over_valent([(0, 1, 2), (0, 2, 1), (0, 3, 1)], [2, 0, 0, 0]), "C[O+](C)C", False),
    # two fragments: the one with the longer SMILES is kept
    (lambda: over_valent([(0, 1, 1), (2, 3, 1), (3, 4, 1)], [0, 2, 0, 0, 1]), "CCN", True),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_gdss_decoding_of_hand_made_graphs(case):
    make, expected, valid = CASES[case]
    mol, ok = gdss_molecule(*make(), NEUTRAL, KEKULE)
    assert (Chem.MolToSmiles(mol), ok) == (expected, valid)


def load_reference_mol_utils(tmp_path: Path):
    """GDSS's utils/mol_utils.py from the mirror, imported from a temporary copy."""
    path = mirror_file("utils/mol_utils.py", tmp_path / "gdss_mol_utils.py")
    pytest.importorskip("pandas")
    spec = importlib.util.spec_from_file_location("gdss_mol_utils", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.pop("gdss_mol_utils", None)
    spec.loader.exec_module(module)
    return module


def reference_gen_mol(module, nodes: torch.Tensor, edge_index: torch.Tensor, edge_types: torch.Tensor) -> tuple:
    """GDSS's gen_mol on the graph, given as its sampler hands it over (x one-hot + virtual column, adj one-hot)."""
    n = len(nodes)
    x = torch.zeros(1, n, 5)
    x[0, torch.arange(n), nodes] = 1
    adj_classes = torch.zeros(n, n, dtype=torch.long)
    adj_classes[edge_index[0], edge_index[1]] = edge_types
    adj_classes = adj_classes + adj_classes.T
    shifted = adj_classes - 1
    shifted[shifted == -1] = 3  # GDSS: no bond is the last channel
    adj = torch.nn.functional.one_hot(shifted, 4).permute(2, 0, 1).unsqueeze(0)
    mols, num_valid = module.gen_mol(x, adj, "QM9")
    return Chem.MolToSmiles(mols[0]), num_valid == 1


@pytest.mark.parametrize("case", range(len(CASES)))
def test_gdss_decoding_matches_the_reference_functions(case, tmp_path):
    module = load_reference_mol_utils(tmp_path)
    graph = CASES[case][0]()
    mol, ok = gdss_molecule(*graph, NEUTRAL, KEKULE)
    assert (Chem.MolToSmiles(mol), ok) == reference_gen_mol(module, *graph)


def test_gdss_node_threshold_drops_atoms():
    encoding = GraphEncoding("types", None, (1.0, 2.0, 3.0))
    x = torch.tensor([[[0.9, 0.0, 0.0, 0.0], [0.4, 0.3, 0.2, 0.1], [0.0, 0.6, 0.7, 0.0]]])
    adj = torch.tensor([[[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]])
    flags = torch.ones(1, 3)
    default = encoding.decode(x, adj, flags, 4)
    assert default.node_mask.tolist() == [[True, True, True]] and default.X.argmax(-1)[0, 2] == 2
    gdss = encoding.decode(x, adj, flags, 4, node_threshold=0.5)
    assert gdss.node_mask.tolist() == [[True, False, True]]
    assert gdss.X.argmax(-1)[0, 2] == 1  # the first type above 0.5 (N), not the argmax (O)
    graphs = GraphList.from_dense(gdss)
    assert graphs.num_nodes.tolist() == [2] and graphs.num_edges.tolist() == [1]


def test_score_sde_model_decoding_option(data_root, monkeypatch):
    from graphdiff.lit import ScoreSDEModel

    monkeypatch.setenv("GRAPHDIFF_DATA_DIR", str(data_root.parent / "nothing"))
    write_moflow(data_root / "qm9" / "raw", test_rows=[1, 4])
    info = load_dataset("qm9", protocol="gdss").info.to_dict()
    small = {"num_layers": 2, "num_linears": 1, "nhid": 4, "adim": 4, "c_init": 2, "c_hid": 2, "c_final": 2}
    model = ScoreSDEModel(info, model=small, decoding="gdss", sample_steps=2)
    assert model.molecule_decoding == "gdss"
    assert model.graph_sampler(model.sampler_config()).node_threshold == 0.5
    assert ScoreSDEModel(info, model=small).graph_sampler(ScoreSDEModel(info, model=small).sampler_config()
                                                          ).node_threshold is None
    with pytest.raises(ConfigError, match="decoding='gdds'"):
        ScoreSDEModel(info, model=small, decoding="gdds")
    with pytest.raises(ConfigError, match="valency_correction"):
        ScoreSDEModel(info, model=small, decoding="gdss", valency_correction=True)


def test_evaluation_with_gdss_decoding_reports_validity_without_correction(data_root, monkeypatch):
    monkeypatch.setenv("GRAPHDIFF_DATA_DIR", str(data_root.parent / "nothing"))
    from graphdiff.evaluation import evaluate_generated

    write_moflow(data_root / "qm9" / "raw", test_rows=[1, 4])
    ds = load_dataset("qm9", protocol="gdss")
    five_bonds = over_valent([(0, 1, 2), (0, 2, 1), (0, 3, 1), (0, 4, 1)], [0, 0, 0, 0, 0])
    graphs = GraphList.from_graphs([graph_of("CCO"), five_bonds, graph_of("C[N+](=O)[O-]"), graph_of("CC#N")])
    metrics = ["validity", "relaxed_validity", "uniqueness"]
    gdss = evaluate_generated(graphs, ds.info, ds, metrics=metrics, decoding="gdss")
    assert gdss["validity"] == 0.75  # the five-bonded carbon fails GDSS's check
    assert gdss["relaxed_validity"] == 1.0  # every corrected molecule is valid
    default = evaluate_generated(graphs, ds.info, ds, metrics=metrics)
    # the dataset's decoding infers the nitro group's charge too, but corrects nothing
    assert (default["validity"], default["relaxed_validity"]) == (0.75, 0.75)
    with pytest.raises(ConfigError, match="decoding"):
        evaluate_generated(graphs, ds.info, ds, metrics=metrics, decoding="moflow")
