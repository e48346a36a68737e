"""Graph files: the GDSS sets, every accepted user format, PyG datasets, and one-line errors."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import urllib.error
import urllib.request

import networkx as nx
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Data, InMemoryDataset

from graphdiff.datasets.gdss_sets import GDSS_SETS
from graphdiff.datasets.graph_formats import read_graph_file
from graphdiff.datasets.registry import load_dataset
from graphdiff.datasets.splits import fraction_split, gdss_split
from graphdiff.datasets.user_files import from_pyg, load_graph_file
from graphdiff.errors import ConfigError, DataError
from graphdiff.io import file_sha256
from tests.conftest import data_file


def edge_set(triple) -> set[tuple[int, int, int]]:
    _, ei, et = triple
    return {(u, v, c) for (u, v), c in zip(ei.T.tolist(), et.tolist(), strict=True)}


def write_json(path, graphs, compress=False):
    text = json.dumps(graphs)
    if compress:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def warnings(caplog) -> list[str]:
    """The warnings graphdiff logged during the test."""
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and r.name.startswith("graphdiff")]


def one_line_data_error(excinfo, *needles: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


# ---------------------------------------------------------------------------------------------- GDSS sets
@pytest.mark.parametrize(
    "name, count, nodes",
    [("community_small", 100, (12, 20)), ("ego_small", 200, (4, 17)), ("grid", 100, (110, 361)),
     ("enzymes", 587, (10, 125))],
)
def test_gdss_sets_split_as_gdss(data_root, name, count, nodes):
    path = data_file("graphs", f"{name}.json.gz")
    ds = load_dataset(name)
    raw = json.loads(gzip.open(path).read())
    assert len(ds.graphs) == len(raw) == count
    n = ds.graphs.num_nodes
    assert (int(n.min()), int(n.max())) == nodes
    test_size = int(0.2 * count)
    assert ds.splits["test"].tolist() == list(range(test_size))
    assert ds.splits["train"].tolist() == list(range(test_size, count))
    assert torch.equal(ds.splits["val"], ds.splits["test"])
    for i in (0, test_size - 1, count - 1):  # graph i is the file's graph i
        expected = {(min(u, v), max(u, v), 1) for u, v in raw[i]["edges"]}
        assert ds.graphs.num_nodes[i] == raw[i]["num_nodes"] and edge_set(ds.graphs.graph(i)) == expected
    assert ds.info.source["sha256"] == GDSS_SETS[name].json_sha256 == file_sha256(path)
    assert ds.info.source["origin"].endswith(GDSS_SETS[name].pickle_name)


def test_gdss_val_fraction_carves_val_from_the_end_of_train(data_root):
    data_file("graphs", "community_small.json.gz")
    ds = load_dataset("community_small", val_fraction=0.1)
    assert ds.splits["test"].tolist() == list(range(20))
    assert ds.splits["val"].tolist() == list(range(92, 100))
    assert ds.splits["train"].tolist() == list(range(20, 92))
    with pytest.raises(ConfigError, match="val_fraction"):
        gdss_split(100, 1.5)


def test_gdss_falls_back_to_the_canonical_pickle(data_root, monkeypatch):
    monkeypatch.setenv("GRAPHDIFF_DATA_DIR", str(data_root / "empty"))
    raw = data_root / "ego_small" / "raw"
    raw.mkdir(parents=True)
    # Like GDSS's files: subgraph views of one big graph with numpy-typed attributes.
    big = nx.Graph()
    big.add_edges_from([(1, 2), (2, 3), (3, 1), (4, 5), (5, 6), (10, 11), (11, 12), (12, 13), (13, 10)])
    nx.set_node_attributes(big, {v: np.int64(v % 3) for v in big}, "label")
    graphs = [big.subgraph([1, 2, 3]), big.subgraph([4, 5, 6]), big.subgraph([10, 11, 12, 13]), nx.path_graph(5),
              nx.star_graph(4)]
    (raw / "ego_small.pkl").write_bytes(pickle.dumps(graphs, protocol=pickle.HIGHEST_PROTOCOL))
    ds = load_dataset("ego_small")
    assert ds.graphs.num_nodes.tolist() == [3, 3, 4, 5, 5]
    assert ds.graphs.num_edges.tolist() == [3, 2, 4, 4, 4]
    assert ds.splits["test"].tolist() == [0] and ds.info.source["format"] == "pickle"


def test_gdss_without_any_copy_is_a_one_line_error(data_root, monkeypatch):
    monkeypatch.setenv("GRAPHDIFF_DATA_DIR", str(data_root / "empty"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as excinfo:
        load_dataset("grid")
    one_line_data_error(excinfo, "grid.json.gz", "grid.pkl", "offline")


# ---------------------------------------------------------------------------------------------- user files
def test_json_with_labels_round_trips_and_splits(tmp_path):
    g = torch.Generator().manual_seed(0)
    graphs, expected = [], []
    for k in range(10):
        n = 3 + k % 4
        names = [["C", "N", "O"][int(c)] for c in torch.randint(0, 3, (n,), generator=g)]
        edges = [[i, i + 1] for i in range(n - 1)]
        kinds = ["single" if i % 2 else "double" for i in range(n - 1)]
        graphs.append({"num_nodes": n, "edges": edges, "node_types": names, "edge_types": kinds})
        expected.append((names, {(i, i + 1, 2 if i % 2 else 1) for i in range(n - 1)}))
    path = write_json(tmp_path / "labelled.json.gz", graphs, compress=True)
    ds = load_graph_file(path, root=tmp_path / "root")
    assert ds.info.name == "labelled"
    assert ds.info.node_types == ["C", "N", "O"] and ds.info.edge_types == ["none", "double", "single"]
    for i, (names, edges) in enumerate(expected):
        x, _, _ = ds.graphs.graph(i)
        assert [ds.info.node_types[c] for c in x.tolist()] == names
        assert edge_set(ds.graphs.graph(i)) == edges
    assert ds.info.split_sizes == {"train": 8, "val": 1, "test": 1}
    every = torch.cat([ds.splits[k] for k in ("train", "val", "test")])
    assert sorted(every.tolist()) == list(range(10))
    assert ds.info.source["sha256"] == file_sha256(path)


def test_max_nodes_filters_with_a_report_per_reason_and_a_count(tmp_path, caplog):
    graphs = [{"num_nodes": n, "edges": [[0, 1]]} for n in (2, 9, 3, 12, 4)] + [{"num_nodes": 0, "edges": []}]
    path = write_json(tmp_path / "sizes.json", graphs)
    ds = load_graph_file(path, root=tmp_path / "root", max_nodes=8, split=(1.0, 0.0, 0.0))
    assert warnings(caplog) == [
        f"{path}: skipped 1 graph(s) with no nodes (first at graph(s) 5)",
        f"{path}: skipped 2 graph(s) with more nodes than max_nodes (first at graph(s) 1, 3)",
    ]
    assert ds.graphs.num_nodes.tolist() == [2, 3, 4]
    assert ds.info.skipped == {
        "no_nodes": {"count": 1, "graphs": [5]},
        "too_many_nodes": {"count": 2, "graphs": [1, 3]},
    }
    assert ds.info.split_sizes == {"train": 3, "val": 0, "test": 0}


def test_reading_a_file_of_many_graphs_shows_a_progress_bar(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRAPHDIFF_PROGRESS", "1")
    many = write_json(tmp_path / "many.json", [{"num_nodes": 2, "edges": [[0, 1]]}] * 1000)
    few = write_json(tmp_path / "few.json", [{"num_nodes": 2, "edges": [[0, 1]]}] * 999)
    assert len(read_graph_file(many).triples) == 1000
    assert "reading many.json" in capsys.readouterr().err
    assert len(read_graph_file(few).triples) == 999
    assert capsys.readouterr().err == ""


def test_npz_one_array_per_graph_with_integer_classes(tmp_path, caplog):
    a = np.array([[0, 2, 0], [2, 0, 5], [0, 5, 0]])
    b = np.array([[1, 2], [2, 0]])  # the diagonal 1 is a self-loop
    path = tmp_path / "mats.npz"
    np.savez(path, a, b)
    parsed = read_graph_file(path)
    assert warnings(caplog) == [f"{path}: dropped 1 self-loop(s); graphdiff graphs have none"]
    assert parsed.edge_types == ["none", "2", "5"]
    assert [edge_set(t) for t in parsed.triples] == [{(0, 1, 1), (1, 2, 2)}, {(0, 1, 1)}]


def test_npz_padded_form_with_node_types_and_float_weights(tmp_path, caplog):
    A = np.zeros((2, 4, 4))
    A[0, 0, 1] = A[0, 1, 0] = 0.5
    A[1, :3, :3] = 1 - np.eye(3)
    path = tmp_path / "padded.npz"
    np.savez(path, adj=A, num_nodes=np.array([2, 3]), node_types=np.array([[7, 3, 0, 0], [3, 3, 9, 0]]))
    parsed = read_graph_file(path)
    assert warnings(caplog) == [f"{path}: floating-point edge weights are read as binary edges (nonzero = edge)"]
    assert parsed.node_types == ["3", "7", "9"] and parsed.edge_types == ["none", "edge"]
    assert [t[0].tolist() for t in parsed.triples] == [[1, 0], [0, 0, 2]]
    assert [edge_set(t) for t in parsed.triples] == [{(0, 1, 1)}, {(0, 1, 1), (0, 2, 1), (1, 2, 1)}]


GRAPHML = """<?xml version="1.0" encoding="UTF-8"?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns">
  <key id="k" for="node" attr.name="kind" attr.type="string"/>
  <key id="b" for="edge" attr.name="bond" attr.type="int"/>
  <graph edgedefault="undirected">
    <node id="x"><data key="k">C</data></node><node id="y"><data key="k">O</data></node>
    <edge source="x" target="y"><data key="b">2</data></edge>
  </graph>
  <graph edgedefault="undirected">
    <node id="p"><data key="k">O</data></node><node id="q"><data key="k">C</data></node>
    <node id="r"><data key="k">C</data></node>
    <edge source="p" target="q"><data key="b">1</data></edge><edge source="q" target="r"><data key="b">2</data></edge>
  </graph>
</graphml>
"""


def test_graphml_with_many_graphs_and_attributes(tmp_path):
    path = tmp_path / "two.graphml"
    path.write_text(GRAPHML)
    parsed = read_graph_file(path, node_attr="kind", edge_attr="bond")
    assert parsed.node_types == ["C", "O"] and parsed.edge_types == ["none", "1", "2"]
    assert [t[0].tolist() for t in parsed.triples] == [[0, 1], [1, 0, 0]]
    assert [edge_set(t) for t in parsed.triples] == [{(0, 1, 2)}, {(0, 1, 1), (1, 2, 2)}]
    plain = read_graph_file(path)
    assert plain.node_types == ["node"] and [len(edge_set(t)) for t in plain.triples] == [1, 2]


def test_pickled_networkx_list_and_its_errors(tmp_path):
    G = nx.Graph()
    G.add_edge("a", "b", order=1)
    G.add_edge("b", "c", order=2)
    path = tmp_path / "graphs.pkl"
    path.write_bytes(pickle.dumps([G, nx.cycle_graph(4)]))
    with pytest.raises(DataError) as excinfo:
        read_graph_file(path, edge_attr="order")
    one_line_data_error(excinfo, "graphs.pkl", "graph 1", "no attribute 'order'")
    parsed = read_graph_file(path)
    cycle = {(0, 1, 1), (1, 2, 1), (2, 3, 1), (0, 3, 1)}
    assert [edge_set(t) for t in parsed.triples] == [{(0, 1, 1), (1, 2, 1)}, cycle]
    path.write_bytes(pickle.dumps([nx.path_graph(2), nx.DiGraph([(0, 1)])]))
    with pytest.raises(DataError) as excinfo:
        read_graph_file(path)
    one_line_data_error(excinfo, "graph 1", "directed")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_pickles_that_would_run_code_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps([_Exploit()]))
    with pytest.raises(DataError) as excinfo:
        read_graph_file(path)
    one_line_data_error(excinfo, "evil.pkl", "refusing to load", "system")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "filename, content, needles",
    [
        ("empty.json", b"", ["empty.json", "empty"]),
        ("bad.json", b'[{"num_nodes": 2,\n "edges": [[0, 1]]}\n oops]', ["bad.json", "invalid JSON at line 3"]),
        ("truncated.json.gz", gzip.compress(b'[{"num_nodes": 2, "edges": []}]', mtime=0)[:-12],
         ["truncated.json.gz", "gzip"]),
        ("range.json", b'[{"num_nodes": 2, "edges": [[0, 1]]}, {"num_nodes": 2, "edges": [[0, 2]]}]',
         ["range.json", "graph 1", "outside 0..1"]),
        ("pairs.json", b'[{"num_nodes": 3, "edges": [[0, 1, 2]]}]', ["pairs.json", "graph 0", "[u, v]"]),
        ("notlist.json", b'{"num_nodes": 3}', ["notlist.json", "expected a JSON list"]),
        ("bad.graphml", b"<graphml><graph>", ["bad.graphml", "invalid GraphML at line 1"]),
        ("trunc.pkl", pickle.dumps([nx.path_graph(3)])[:-5], ["trunc.pkl", "pickle"]),
        ("graphs.csv", b"a,b", ["graphs.csv", "unknown graph file type"]),
        ("bad.npz", b"not a zip", ["bad.npz", "npz"]),
    ],
    ids=lambda value: value if isinstance(value, str) and "." in value else "",
)
def test_bad_files_are_one_line_data_errors(tmp_path, filename, content, needles):
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(DataError) as excinfo:
        read_graph_file(path)
    one_line_data_error(excinfo, *needles)


def test_bad_matrices_name_the_graph(tmp_path):
    path = tmp_path / "m.npz"
    np.savez(path, np.zeros((2, 2)), np.zeros((3, 4)))
    with pytest.raises(DataError) as excinfo:
        read_graph_file(path)
    one_line_data_error(excinfo, "m.npz", "graph 1", "[3, 4]", "square")
    np.savez(path, np.array([[0, 1], [0, 0]]))
    with pytest.raises(DataError) as excinfo:
        read_graph_file(path)
    one_line_data_error(excinfo, "graph 0", "not symmetric")
    np.savez(path, adj=np.ones((1, 3, 3)) - np.eye(3), num_nodes=np.array([2]))
    with pytest.raises(DataError) as excinfo:
        read_graph_file(path)
    one_line_data_error(excinfo, "graph 0", "beyond its num_nodes=2")


def test_split_fractions_are_checked():
    with pytest.raises(ConfigError, match="summing to 1"):
        fraction_split(10, (0.5, 0.2, 0.2))
    with pytest.raises(ConfigError, match="no training graph"):
        fraction_split(2, (0.0, 0.5, 0.5))
    sizes = {k: v.numel() for k, v in fraction_split(25, (0.6, 0.2, 0.2), seed=3).items()}
    assert sizes == {"train": 15, "val": 5, "test": 5}


# ---------------------------------------------------------------------------------------------- PyG
class _ListDataset(InMemoryDataset):
    def __init__(self, data_list):
        super().__init__(None)
        self.data, self.slices = self.collate(data_list)


def _pyg_graphs(count: int, seed: int = 0) -> list[Data]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        n = int(torch.randint(2, 7, (1,), generator=g))
        x = F.one_hot(torch.randint(0, 3, (n,), generator=g), 3).float()
        i = torch.arange(n - 1)
        ei = torch.stack([torch.cat([i, i + 1]), torch.cat([i + 1, i])])
        t = torch.randint(1, 4, (n - 1,), generator=g)
        out.append(Data(x=x, edge_index=ei, edge_attr=F.one_hot(torch.cat([t, t]), 4).float()))
    return out


def test_from_pyg_list_and_in_memory_dataset(tmp_path):
    graphs = _pyg_graphs(12)
    a = from_pyg(graphs, "toy", root=tmp_path, node_types=["C", "N", "O"])
    b = from_pyg(_ListDataset(graphs), "toy2", root=tmp_path, node_types=["C", "N", "O"])
    assert a.info.node_types == ["C", "N", "O"] and a.info.edge_types == ["none", "1", "2", "3"]
    for i, data in enumerate(graphs):
        x, ei, et = a.graphs.graph(i)
        assert x.tolist() == data.x.argmax(-1).tolist()
        n = data.num_nodes
        assert ei.tolist() == [list(range(n - 1)), list(range(1, n))]
        assert et.tolist() == data.edge_attr.argmax(-1)[: n - 1].tolist()
        assert edge_set(b.graphs.graph(i)) == edge_set((x, ei, et))
    assert a.info.split_sizes == {"train": 10, "val": 1, "test": 1}


def test_from_pyg_cache_follows_the_content(tmp_path):
    old, new = _pyg_graphs(6, seed=0), _pyg_graphs(6, seed=1)
    first = from_pyg(old, "same", root=tmp_path)
    second = from_pyg(new, "same", root=tmp_path)
    assert first.info.options["pyg_sha256"] != second.info.options["pyg_sha256"]
    for ds, graphs in ((first, old), (second, new)):
        x = torch.cat([d.x.argmax(-1) for d in graphs])
        assert torch.equal(ds.graphs.node_types.long(), x)
    assert from_pyg(new, "same", root=tmp_path).info == second.info


def test_from_pyg_errors_name_the_graph(tmp_path):
    graphs = _pyg_graphs(3)
    graphs[2].edge_attr = F.one_hot(graphs[2].edge_attr.argmax(-1) - 1, 3).float()  # no "no edge" column
    with pytest.raises(DataError) as excinfo:
        from_pyg(graphs, "broken", root=tmp_path)
    one_line_data_error(excinfo, "broken", "graph 2", "num_edge_types")
