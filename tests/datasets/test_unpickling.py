"""The graph-pickle reader runs no code: hand-made hostile pickles are refused before any side effect, while
ordinary pickles of NetworkX graphs with NumPy attributes (every protocol) and GDSS's own files still load.

Each hostile pickle is first shown to do its damage under the standard unpickler (so the test can fail), after
graphdiff refused it and left no trace.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from graphdiff.datasets.graph_formats import _read_pickle, read_graph_file
from graphdiff.errors import DataError
from tests.conftest import data_file

GDSS_MIRROR = Path("/work/.mirror/harryjo97+GDSS/repo")
GDSS_COMMIT = "24cc490e0c5b39cbd265fda33ab2bc8b528d4454"


class FileWriter:
    """Writes a file when constructed: what a pickle must never be able to call."""

    def __init__(self, path: str) -> None:
        Path(path).write_text("pwned")


class _System:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.target))}",))


# ---------------------------------------------------------------------------------------------- opcodes
def _text(value: str) -> bytes:
    data = value.encode()
    return pickle.SHORT_BINUNICODE + bytes([len(data)]) + data if len(data) < 256 else (
        pickle.BINUNICODE + len(data).to_bytes(4, "little") + data
    )


def _global(module: str, name: str) -> bytes:
    """Protocol 4's ``STACK_GLOBAL``, which resolves dotted names attribute by attribute."""
    return _text(module) + _text(name) + pickle.STACK_GLOBAL


def _call(func: bytes, *args: bytes) -> bytes:
    """``func(*args)`` through ``REDUCE``."""
    return func + pickle.MARK + b"".join(args) + pickle.TUPLE + pickle.REDUCE


def _protocol4(body: bytes) -> bytes:
    return pickle.PROTO + b"\x04" + body + pickle.STOP


def _new_graph() -> bytes:
    return _call(_global("networkx.classes.graph", "Graph"))


HOSTILE: dict[str, tuple[Callable[[Path], bytes], str]] = {
    # name: (pickle writing `target`, what the refusal names)
    "dotted name from a graph module to nx.write_edgelist": (
        lambda target: _protocol4(_call(_global("networkx.classes.graph", "nx.write_edgelist"), _new_graph(),
                                        _text(str(target)))),
        "networkx.classes.graph.nx.write_edgelist",
    ),
    "dotted name from numpy.ndarray to its tofile method": (
        lambda target: _protocol4(_call(_global("numpy", "ndarray.tofile"),
                                        _call(_global("numpy", "ndarray"), pickle.BININT1 + b"\x03" + pickle.TUPLE1),
                                        _text(str(target)))),
        "numpy.ndarray.tofile",
    ),
    "networkx function outside the graph classes": (
        lambda target: _protocol4(_call(_global("networkx.readwrite.edgelist", "write_edgelist"), _new_graph(),
                                        _text(str(target)))),
        "networkx.readwrite.edgelist.write_edgelist",
    ),
    "builtins.eval": (
        lambda target: _protocol4(_call(_global("builtins", "eval"), _text(f"open({str(target)!r}, 'w').write('x')"))),
        "builtins.eval",
    ),
    "os.system through __reduce__": (
        lambda target: pickle.dumps([nx.path_graph(2), _System(target)]),
        f"{os.system.__module__}.system",
    ),
    "copyreg._reconstructor with a class not allowed": (
        lambda target: _protocol4(_call(_global("copyreg", "_reconstructor"), _global(__name__, "FileWriter"),
                                        _global(__name__, "FileWriter"), _text(str(target)))),
        f"{__name__}.FileWriter",
    ),
    "protocol-0 GLOBAL of a class not allowed": (
        lambda target: pickle.GLOBAL + f"{__name__}\nFileWriter\n".encode() + pickle.MARK + pickle.UNICODE
        + str(target).encode("raw_unicode_escape") + b"\n" + pickle.TUPLE + pickle.REDUCE + pickle.STOP,
        f"{__name__}.FileWriter",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_pickles_are_refused_without_side_effects(tmp_path, monkeypatch, case):
    make, needle = HOSTILE[case]
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "written_by_the_pickle"
    path = tmp_path / "graphs.pkl"
    path.write_bytes(make(target))
    with pytest.raises(DataError) as excinfo:
        read_graph_file(path)
    message = str(excinfo.value)
    assert "\n" not in message and str(path) in message and f"refusing to load {needle}" in message, message
    assert not target.exists()
    # The same bytes under the standard unpickler do write the file: the payload is real.
    with contextlib.suppress(Exception):  # what the payload returns need not be a graph list
        pickle.loads(path.read_bytes())
    assert target.exists()


@pytest.mark.parametrize(
    "module, name",
    [("os", "system"), ("subprocess", "Popen"), ("builtins", "getattr"), ("builtins", "__import__"),
     ("networkx.classes.graph", "nx"), ("networkx.classes.function", "freeze"),
     ("networkx.classes.graph", "Graph.add_edge"), ("numpy", "load"), ("numpy", "dtype.__class__"),
     ("numpy._core.multiarray", "_reconstruct.__self__"), ("copyreg", "__newobj__"), ("pickle", "loads")],
)
def test_every_global_outside_the_table_is_refused(tmp_path, module, name):
    path = tmp_path / "g.pkl"
    path.write_bytes(_protocol4(_global(module, name)))
    with pytest.raises(DataError, match=f"refusing to load {module}.{name}"):
        read_graph_file(path)


def test_a_module_named_by_a_pickle_is_never_imported(tmp_path, monkeypatch):
    target = tmp_path / "imported"
    (tmp_path / "graphdiff_hostile_module.py").write_text(f"open({str(target)!r}, 'w').write('x')\nclass G: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "g.pkl"
    path.write_bytes(_protocol4(_call(_global("graphdiff_hostile_module", "G"))))
    with pytest.raises(DataError, match="refusing to load graphdiff_hostile_module.G"):
        read_graph_file(path)
    assert not target.exists() and "graphdiff_hostile_module" not in sys.modules
    pickle.loads(path.read_bytes())  # the standard unpickler imports it
    sys.modules.pop("graphdiff_hostile_module")
    assert target.exists()


def test_a_pickle_cannot_set_attributes_of_an_allowed_class(tmp_path):
    # BUILD with a (None, {name: value}) state on the class itself sets a class attribute for the whole process.
    state = pickle.NONE + pickle.EMPTY_DICT + _text("injected_by_pickle") + pickle.NEWTRUE + pickle.SETITEM
    path = tmp_path / "g.pkl"
    path.write_bytes(_protocol4(_global("networkx.classes.graph", "Graph") + state + pickle.TUPLE2 + pickle.BUILD))
    with pytest.raises(DataError, match="refusing to set attributes of Graph"):
        read_graph_file(path)
    assert not hasattr(nx.Graph, "injected_by_pickle")
    try:
        pickle.loads(path.read_bytes())
        assert nx.Graph.injected_by_pickle is True  # the standard unpickler patches networkx
    finally:
        del nx.Graph.injected_by_pickle


def test_codecs_encode_accepts_only_latin1(tmp_path):
    path = tmp_path / "g.pkl"
    call = pickle.GLOBAL + b"_codecs\nencode\n" + _text("uryyb") + _text("rot13") + pickle.TUPLE2 + pickle.REDUCE
    path.write_bytes(pickle.PROTO + b"\x02" + call + pickle.STOP)
    with pytest.raises(DataError, match="refusing to call _codecs.encode with str, 'rot13'"):
        read_graph_file(path)
    assert pickle.loads(path.read_bytes()) == "hello"  # what the codec would have run


# ---------------------------------------------------------------------------------------------- what still loads
def _graphs_with_numpy_attributes() -> list[nx.Graph]:
    big = nx.Graph(name=np.array([1.5, 2.5]))
    big.add_nodes_from((v, {"kind": np.int64(v % 2), "x": np.arange(v, v + 3, dtype=np.float32),
                            "tag": np.array(["a", "bc"]), "raw": np.frombuffer(b"\x00\x01", np.uint8),
                            "mixed": np.array([v, "x"], dtype=object)}) for v in range(6))
    big.add_edges_from([(0, 1), (1, 2), (2, 0), (3, 4), (4, 5)], bond=np.int8(3), w=np.float64(0.25))
    big.add_edge(2, 3, bond=np.int8(1), w=np.float64(1.0))
    _ = big.nodes, big.edges, big.degree, big.adj  # NetworkX caches these views in the instance __dict__
    return [big, big.subgraph([0, 1, 2]), big.subgraph([3, 4]), nx.Graph()]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_networkx_graphs_with_numpy_attributes_load_under_every_protocol(tmp_path, protocol):
    graphs = _graphs_with_numpy_attributes()
    path = tmp_path / "graphs.pkl"
    path.write_bytes(pickle.dumps(graphs, protocol=protocol))
    loaded = _read_pickle(path)
    assert len(loaded) == 4
    for G, H in zip(graphs, loaded, strict=True):
        assert type(H) is type(G) and list(H.nodes) == list(G.nodes) and list(H.edges) == list(G.edges)
        for v in G:
            for key, value in G.nodes[v].items():
                assert H.nodes[v][key].dtype == value.dtype and np.array_equal(H.nodes[v][key], value)
        for u, v, data in G.edges(data=True):
            assert H.edges[u, v] == data and type(H.edges[u, v]["bond"]) is np.int8
    np.testing.assert_array_equal(loaded[0].graph["name"], [1.5, 2.5])
    parsed = read_graph_file(path, node_attr="kind", edge_attr="bond")
    assert parsed.node_types == ["0", "1"] and parsed.edge_types == ["none", "1", "3"]
    x, ei, et = parsed.triples[1]
    assert x.tolist() == [0, 1, 0] and ei.T.tolist() == [[0, 1], [0, 2], [1, 2]] and et.tolist() == [2, 2, 2]


def test_other_graph_classes_unpickle_and_then_meet_the_usual_checks(tmp_path):
    path = tmp_path / "g.pkl"
    for graph, needle in ((nx.DiGraph([(0, 1)]), "directed"), (nx.MultiGraph([(0, 1), (0, 1)]), "multigraph"),
                          (nx.MultiDiGraph([(0, 1)]), "directed")):
        path.write_bytes(pickle.dumps([graph]))
        with pytest.raises(DataError, match=f"graph 0: {needle}"):
            read_graph_file(path)


@pytest.mark.parametrize("name, json_name", [("community_small", "community_small"), ("ego_small", "ego_small"),
                                             ("grid", "grid"), ("ENZYMES", "enzymes")])
def test_the_gdss_pickles_load_and_match_the_json_copies(tmp_path, name, json_name):
    reference = data_file("graphs", f"{json_name}.json.gz")
    if not (GDSS_MIRROR / "HEAD").exists():
        pytest.skip(f"the GDSS repository is not mirrored at {GDSS_MIRROR}")
    path = tmp_path / f"{name}.pkl"
    path.write_bytes(subprocess.run(["git", "-C", str(GDSS_MIRROR), "show", f"{GDSS_COMMIT}:data/{name}.pkl"],
                                    check=True, capture_output=True).stdout)
    from_pickle, from_json = read_graph_file(path), read_graph_file(reference)
    assert len(from_pickle.triples) == len(from_json.triples) > 0
    for a, b in zip(from_pickle.triples, from_json.triples, strict=True):
        assert all(p.tolist() == q.tolist() for p, q in zip(a, b, strict=True))
