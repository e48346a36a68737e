"""The Python API: fit on a list of SMILES or networkx graphs, reload, sample, write and read back."""

from __future__ import annotations

import networkx as nx
import pytest
from rdkit import Chem

import graphdiff.api as gd
from graphdiff.datasets.graph_formats import read_graph_file
from graphdiff.errors import GraphdiffError
from graphdiff.sample_files import write_samples

TINY = {
    "T": 10,
    "model": {
        "n_layers": 1,
        "hidden_mlp_dims": {"X": 8, "E": 8, "y": 8},
        "hidden_dims": {"dx": 8, "de": 8, "dy": 8, "n_head": 2, "dim_ffX": 8, "dim_ffE": 8, "dim_ffy": 8},
    },
}


def test_fit_smiles_then_sample_molecules(tmp_path):
    smiles = ["CCO", "CC(=O)O", "c1ccccc1", "CCN", "OCC(O)CO", "C[N+](C)(C)C", "CC#N", "CCCl"] * 2
    model = gd.fit(smiles, output_dir=tmp_path, max_epochs=1, batch_size=8, devices=1, **TINY)
    assert model.info.kind == "molecule"
    assert {"C", "N", "O", "Cl", "N+"} <= set(model.info.node_types)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    mols = gd.sample_molecules(model, 5, steps=5, seed=0)
    assert len(mols) == 5 and all(m is None or isinstance(m, Chem.Mol) for m in mols)


def test_fit_networkx_graphs_keeps_types_and_sizes(tmp_path):
    graphs = []
    for n in range(5, 11):
        g = nx.cycle_graph(n)
        nx.set_node_attributes(g, {i: ("a" if i % 2 else "b") for i in g}, "type")
        nx.set_edge_attributes(g, "single", "type")
        graphs.append(g)
    model = gd.fit(graphs, output_dir=tmp_path, max_epochs=1, batch_size=4, devices=1, ema_decay=None, **TINY)
    assert model.info.node_types == ["a", "b"] and model.info.max_nodes == 10
    sampled = gd.sample_graphs(model, 3, steps=5, seed=0, num_nodes=7)
    assert [g.number_of_nodes() for g in sampled] == [7, 7, 7]
    assert all(d["type"] in ("a", "b") for g in sampled for _, d in g.nodes(data=True))

    out = tmp_path / "s.json"
    write_samples(out, model.generate(3, steps=5, seed=0), model.info)
    parsed = read_graph_file(out)
    assert len(parsed.triples) == 3 and set(parsed.node_types) <= {"a", "b"}


def test_fit_rejects_mixed_data(tmp_path):
    with pytest.raises(GraphdiffError, match="list of SMILES"):
        gd.fit(["CCO", nx.path_graph(3)], output_dir=tmp_path)


def test_generate_rejects_graphs_above_the_maximum(tmp_path):
    model = gd.fit(["CCO", "CCN", "CCC", "CCCl"], output_dir=tmp_path, max_epochs=1, batch_size=4, devices=1, **TINY)
    with pytest.raises(GraphdiffError, match="exceeds the model's maximum"):
        model.generate(2, num_nodes=model.info.max_nodes + 5)
