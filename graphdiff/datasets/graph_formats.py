"""Reading files of graphs: JSON, NumPy ``.npz`` adjacency matrices, GraphML and pickled NetworkX lists.

:func:`read_graph_file` picks the reader by the file name's ending and returns :class:`ParsedGraphs` (one
``(node_types, edge_index i<j, edge_types)`` triple per graph, with the class names). Categorical labels become
classes through a vocabulary of their sorted distinct values; unlabelled graphs have node classes ``["node"]`` and
edge classes ``["none", "edge"]``. Self-loops are dropped and reported once per file. Pickles are read with a
restricted unpickler (:class:`_GraphUnpickler`) that builds only graphs, arrays and builtin containers and runs no
code. Problems with a file are one-line :class:`~graphdiff.errors.DataError` naming it (and the graph at fault).
Files of many graphs show a progress bar (:func:`graphdiff.log.progress`).
"""

from __future__ import annotations

import builtins
import collections
import copyreg
import io
import json
import os
import pickle
import struct
import warnings
import xml.etree.ElementTree as ElementTree
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import networkx as nx
import networkx.classes.coreviews as nx_coreviews
import networkx.classes.filters as nx_filters
import networkx.classes.function as nx_function
import networkx.classes.reportviews as nx_reportviews
import numpy as np
import torch
from torch import Tensor

from graphdiff.errors import DataError
from graphdiff.graph import Triple, collect_vocab, networkx_to_triple, normalize_edges
from graphdiff.io import read_file_bytes
from graphdiff.log import get_logger, progress

try:  # NumPy >= 2 keeps the pickle helpers in numpy._core
    from numpy._core import multiarray as _np_multiarray
    from numpy._core import numeric as _np_numeric
except ImportError:  # NumPy 1
    from numpy.core import multiarray as _np_multiarray
    from numpy.core import numeric as _np_numeric

T = TypeVar("T")

log = get_logger(__name__)

UNLABELLED_NODES = ["node"]
UNLABELLED_EDGES = ["none", "edge"]
GRAPH_SUFFIXES = (".json", ".json.gz", ".npz", ".graphml", ".graphml.gz", ".xml", ".pkl", ".pickle", ".pkl.gz")


# ---------------------------------------------------------------------------------------------- parsed files
@dataclass
class ParsedGraphs:
    """Graphs read from one file, before filtering and splitting.

    Attributes:
        triples: ``(node_types [n], edge_index [2, m] with i<j, edge_types [m])`` per graph.
        node_types: names of the node classes.
        edge_types: names of the edge classes, ``"none"`` first.
        self_loops: self-loops dropped while reading.
        properties: graph-level numbers given with the graphs (JSON: the other numeric keys of each graph's
            object), name -> ``[G]`` float64, ``NaN`` where a graph has none.
    """

    triples: list[Triple]
    node_types: list[str] = field(default_factory=lambda: list(UNLABELLED_NODES))
    edge_types: list[str] = field(default_factory=lambda: list(UNLABELLED_EDGES))
    self_loops: int = 0
    properties: dict[str, np.ndarray] = field(default_factory=dict)


def read_graph_file(
    path: str | os.PathLike, node_attr: str | None = None, edge_attr: str | None = None
) -> ParsedGraphs:
    """Read every graph of a file (format chosen by the file name's ending).

    Args:
        path: a ``.json``/``.json.gz``, ``.npz``, ``.graphml``/``.graphml.gz``/``.xml`` or
            ``.pkl``/``.pickle``/``.pkl.gz`` file.
        node_attr: GraphML / pickle: categorical node attribute giving node classes.
        edge_attr: GraphML / pickle: categorical edge attribute giving edge classes.

    Raises:
        DataError: a missing, empty, truncated or malformed file, in one line naming the file (and
            the graph index where one graph is at fault).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    name = path.name.lower()
    if name.endswith((".json", ".json.gz")):
        parsed = _read_json(path)
    elif name.endswith(".npz"):
        parsed = _read_npz(path)
    elif name.endswith((".graphml", ".graphml.gz", ".xml")):
        parsed = _from_networkx(path, _read_graphml(path), node_attr, edge_attr)
    elif name.endswith((".pkl", ".pickle", ".pkl.gz", ".pickle.gz")):
        parsed = _from_networkx(path, _read_pickle(path), node_attr, edge_attr)
    else:
        raise DataError(f"{path}: unknown graph file type; expected one of {', '.join(GRAPH_SUFFIXES)}")
    if (node_attr or edge_attr) and name.endswith((".json", ".json.gz", ".npz")):
        log.warning("%s: node_attr/edge_attr apply to GraphML and pickle files only; ignored", path)
    if parsed.self_loops:
        log.warning("%s: dropped %d self-loop(s); graphdiff graphs have none", path, parsed.self_loops)
    return parsed


# ---------------------------------------------------------------------------------------------- JSON
def _read_json(path: Path) -> ParsedGraphs:
    """A JSON list of ``{"num_nodes": n, "edges": [[u, v], ...], "node_types"?: [...], "edge_types"?: [...]}``; any
    other key with a number (``"label": 1``) is a graph-level property."""
    try:
        data = json.loads(read_file_bytes(path).decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of graphs, found {type(data).__name__}")

    raw = []  # (n, edges [m, 2], node labels | None, edge labels | None)
    numbers: dict[str, dict[int, float]] = {}  # property -> {graph: value}
    for k, g in enumerate(data):
        where = f"{path}: graph {k}"
        if not isinstance(g, dict) or "num_nodes" not in g:
            raise DataError(f"{where}: expected an object with 'num_nodes' and 'edges'")
        n = g["num_nodes"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise DataError(f"{where}: num_nodes must be a non-negative integer, found {n!r}")
        edges = _edge_pairs(g.get("edges", []))
        if edges is None:
            raise DataError(f"{where}: 'edges' must be a list of [u, v] integer pairs")
        nodes, etypes = g.get("node_types"), g.get("edge_types")
        if nodes is not None and (not isinstance(nodes, list) or len(nodes) != n):
            raise DataError(f"{where}: 'node_types' must be a list of {n} labels")
        if etypes is not None and (not isinstance(etypes, list) or len(etypes) != len(edges)):
            raise DataError(f"{where}: 'edge_types' must be a list of {len(edges)} labels, one per edge")
        raw.append((n, edges, nodes, etypes))
        for key, value in g.items():
            if key not in _JSON_GRAPH_KEYS and isinstance(value, int | float) and not isinstance(value, bool):
                numbers.setdefault(key, {})[k] = float(value)

    node_vocab = _label_vocab(path, [r[2] for r in raw], "node_types")
    edge_vocab = _label_vocab(path, [r[3] for r in raw], "edge_types")
    triples, loops = [], 0
    for k, (n, edges, nodes, etypes) in enumerate(_each_graph(raw, path)):
        x = torch.tensor([node_vocab[_key(v)] for v in nodes] if nodes is not None else [0] * n, dtype=torch.long)
        et = [edge_vocab[_key(v)] + 1 for v in etypes] if etypes is not None else [1] * len(edges)
        triple, dropped = _triple(path, k, x, torch.from_numpy(edges).T, torch.tensor(et, dtype=torch.long))
        triples.append(triple)
        loops += dropped
    return ParsedGraphs(
        triples,
        _names(node_vocab, UNLABELLED_NODES),
        ["none", *_names(edge_vocab, UNLABELLED_EDGES[1:])],
        loops,
        {key: _column(values, len(raw)) for key, values in numbers.items()},
    )


_JSON_GRAPH_KEYS = frozenset({"num_nodes", "edges", "node_types", "edge_types"})


def _column(values: dict[int, float], count: int) -> np.ndarray:
    out = np.full(count, np.nan)
    out[list(values)] = list(values.values())
    return out


def _edge_pairs(edges: Any) -> np.ndarray | None:
    """``[m, 2]`` int64 pairs, or ``None`` if ``edges`` is not a list of integer pairs."""
    try:
        arr = np.asarray(edges)
    except ValueError:  # ragged
        return None
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.dtype.kind not in "iu":
        return None
    return arr.astype(np.int64)


def _label_vocab(path: Path, labels: list[list | None], key: str) -> dict:
    """Sorted distinct labels -> class (0-based); every graph must have the labels or none may."""
    present = [lab is not None for lab in labels]
    if any(present) and not all(present):
        k = present.index(False)
        raise DataError(f"{path}: graph {k}: has no '{key}' while other graphs do")
    values = {_key(v) for lab in labels if lab is not None for v in lab}
    return {v: i for i, v in enumerate(_sorted(values))}


def _names(vocab: dict, default: list[str]) -> list[str]:
    return [str(v) for v in vocab] if vocab else list(default)


# ---------------------------------------------------------------------------------------------- NPZ
def _read_npz(path: Path) -> ParsedGraphs:
    """Adjacency matrices: one square 2-D array per graph, or one padded ``[G, n, n]`` array plus
    ``num_nodes [G]`` (and optional ``node_types [G, n]``).

    Integer or boolean entries are edge classes (0 = no edge; distinct nonzero values become classes
    1, 2, ... in increasing order); floating entries are binary (nonzero = edge, weights ignored).
    """
    try:
        archive = np.load(path, allow_pickle=False)
        arrays = {k: archive[k] for k in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"{path}: not a readable .npz archive ({exc})") from None
    if not arrays:
        raise DataError(f"{path}: the archive holds no arrays")

    node_types: list[np.ndarray | None]
    if "num_nodes" in arrays:
        counts = arrays.pop("num_nodes").astype(np.int64).reshape(-1)
        types = arrays.pop("node_types", None)
        if len(arrays) != 1:
            raise DataError(f"{path}: with 'num_nodes', expected one [G, n, n] adjacency array, found {sorted(arrays)}")
        key, A = next(iter(arrays.items()))
        if A.ndim != 3 or A.shape[1] != A.shape[2] or A.shape[0] != counts.size:
            raise DataError(
                f"{path}: '{key}' has shape {list(A.shape)}; expected [{counts.size}, n, n] to match num_nodes"
            )
        if types is not None and (types.ndim != 2 or types.shape[0] != counts.size or types.shape[1] < A.shape[1]):
            raise DataError(f"{path}: 'node_types' has shape {list(types.shape)}; expected [{counts.size}, n]")
        if counts.size and (counts.min() < 0 or counts.max() > A.shape[1]):
            raise DataError(f"{path}: num_nodes must lie in 0..{A.shape[1]}")
        matrices, labels = [], []
        for g, n in enumerate(counts.tolist()):
            outside = A[g].copy()
            outside[:n, :n] = 0
            if outside.any():
                raise DataError(f"{path}: graph {g}: nonzero entries beyond its num_nodes={n}")
            matrices.append((f"{key}[{g}]", A[g, :n, :n]))
            labels.append(types[g, :n] if types is not None else None)
        node_types = labels
    else:
        matrices = list(arrays.items())
        node_types = [None] * len(matrices)
    return _from_matrices(path, matrices, node_types)


def _from_matrices(
    path: Path, matrices: list[tuple[str, np.ndarray]], node_types: list[np.ndarray | None]
) -> ParsedGraphs:
    """Graphs from named ``[n, n]`` adjacency matrices and optional ``[n]`` node labels (see :func:`_read_npz`)."""
    float_weights = False
    for g, (key, M) in enumerate(matrices):
        if M.ndim != 2 or M.shape[0] != M.shape[1]:
            raise DataError(f"{path}: graph {g} ('{key}'): adjacency matrix has shape {list(M.shape)}; expected square")
        if not (np.issubdtype(M.dtype, np.number) or M.dtype == np.bool_):
            raise DataError(f"{path}: graph {g} ('{key}'): adjacency matrix has dtype {M.dtype}; expected numbers")
        if not np.array_equal(M, M.T):
            raise DataError(f"{path}: graph {g} ('{key}'): adjacency matrix is not symmetric (graphs are undirected)")
        if np.issubdtype(M.dtype, np.floating) and np.isin(M, (0.0, 1.0), invert=True).any():
            float_weights = True
        if np.issubdtype(M.dtype, np.integer) and M.size and M.min() < 0:
            raise DataError(f"{path}: graph {g} ('{key}'): negative entry {int(M.min())}; edge classes are >= 0")
    if float_weights:
        log.warning("%s: floating-point edge weights are read as binary edges (nonzero = edge)", path)

    integer = [np.issubdtype(M.dtype, np.integer) for _, M in matrices]
    edge_values = sorted(  # off-diagonal values only: the diagonal holds self-loops, which are dropped
        {int(v) for (_, M), i in zip(matrices, integer, strict=True) if i for v in np.unique(_upper(M)) if v}
    )
    edge_class = {v: c + 1 for c, v in enumerate(edge_values)}
    node_values = sorted({int(v) for t in node_types if t is not None for v in np.unique(t)})
    node_class = {v: c for c, v in enumerate(node_values)}

    triples, loops = [], 0
    for g, ((_, M), is_int) in enumerate(_each_graph(list(zip(matrices, integer, strict=True)), path)):
        n = M.shape[0]
        loops += int(np.count_nonzero(np.diagonal(M)))
        i, j = np.nonzero(np.triu(M, 1))
        if is_int:
            et = torch.tensor([edge_class[int(v)] for v in M[i, j]], dtype=torch.long)
        else:
            et = torch.ones(i.size, dtype=torch.long)
        t = node_types[g]
        x = torch.zeros(n, dtype=torch.long)
        if t is not None:
            x = torch.tensor([node_class[int(v)] for v in t], dtype=torch.long)
        ei = torch.from_numpy(np.stack([i, j]).astype(np.int64))
        triples.append(_triple(path, g, x, ei, et)[0])
    edge_names = ["none", *(str(v) for v in edge_values)] if len(edge_values) > 1 else list(UNLABELLED_EDGES)
    node_names = [str(v) for v in node_values] if node_values else list(UNLABELLED_NODES)
    return ParsedGraphs(triples, node_names, edge_names, loops)


# ---------------------------------------------------------------------------------------------- DiGress text
def is_digress_samples(path: str | os.PathLike) -> bool:
    """Whether a ``.txt`` file is in the text format DiGress writes its generated graphs in (first line ``N=<n>``)."""
    with open(path, "rb") as f:
        head = f.read(64).lstrip()
    return head.startswith(b"N=")


def read_digress_samples(path: str | os.PathLike) -> ParsedGraphs:
    """Graphs in DiGress's samples text format (its ``generated_samples/*.txt``): per graph, ``N=<n>``, a line
    ``X:`` followed by the ``n`` node class indices, a line ``E:`` followed by ``n`` rows of ``n`` edge class
    indices (0 = no edge), graphs separated by blank lines. Classes are kept as numbers (node type names ``"0"``,
    ``"1"``, ...; edge classes as in :func:`_read_npz`).

    Raises:
        DataError: a block that does not follow the format, naming the file and line.
    """
    path = Path(path)
    lines = read_file_bytes(path).decode("utf-8", errors="replace").splitlines()
    matrices: list[tuple[str, np.ndarray]] = []
    node_types: list[np.ndarray | None] = []
    k = 0
    while k < len(lines):
        if not lines[k].strip():
            k += 1
            continue
        start = k + 1
        header = lines[k].strip()
        try:
            if not header.startswith("N="):
                raise ValueError(f"expected 'N=<number of nodes>', found {header[:40]!r}")
            n = int(header[2:])
            if lines[k + 1].strip() != "X:" or lines[k + 3].strip() != "E:":
                raise ValueError("expected the lines 'X:' and 'E:' after 'N='")
            x = np.array(lines[k + 2].split(), dtype=np.int64)
            E = np.array([row.split() for row in lines[k + 4: k + 4 + n]], dtype=np.int64)
            if x.shape != (n,) or E.shape != (n, n):
                raise ValueError(f"N={n} but X has {x.size} entries and E shape {list(E.shape)}")
        except (ValueError, IndexError) as exc:
            raise DataError(f"{path}: line {start}: graph {len(matrices)}: {exc}") from None
        matrices.append((f"line {start}", E))
        node_types.append(x)
        k += 4 + n
    if not matrices:
        raise DataError(f"{path}: no graphs found")
    return _from_matrices(path, matrices, node_types)


def _upper(M: np.ndarray) -> np.ndarray:
    """Entries strictly above the diagonal."""
    return M[np.triu_indices(M.shape[0], k=1)]


# ---------------------------------------------------------------------------------------------- GraphML / pickle
def _read_graphml(path: Path) -> list[nx.Graph]:
    """Every graph of a GraphML document (``networkx.read_graphml`` keeps only the first)."""
    data = read_file_bytes(path)
    try:
        graphs = list(nx.readwrite.graphml.GraphMLReader()(string=data))
    except ElementTree.ParseError as exc:
        line, column = exc.position
        raise DataError(f"{path}: invalid GraphML at line {line}, column {column}: {exc}") from None
    except (nx.NetworkXError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: invalid GraphML ({exc})") from None
    if not graphs:
        raise DataError(f"{path}: the GraphML document holds no <graph>")
    return graphs


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """``_codecs.encode`` as pickle protocols 0-2 call it to rebuild ``bytes``; any codec but Latin-1 is refused.

    Args:
        text: the bytes as a Latin-1 string.
        encoding: must be ``"latin1"`` (what ``pickle`` writes).

    Raises:
        pickle.UnpicklingError: another encoding or a non-string argument.
    """
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing to call _codecs.encode with {type(text).__name__}, {encoding!r}")
    return text.encode("latin-1")


def _unpickling_globals() -> dict[tuple[str, str], Any]:
    """The exact ``(module, name)`` pairs a graph pickle may name, and the objects they resolve to.

    * classes that only store what they are given: builtin containers and scalars, ``collections.OrderedDict`` /
      ``defaultdict``, the four NetworkX graph classes, the read-only views of ``networkx.classes.coreviews`` and
      ``reportviews`` (graphs carry them in ``__dict__``: NetworkX 3 caches ``G.nodes``/``G.adj``/... there, and the
      subgraph views GDSS's ``ENZYMES.pkl`` holds keep ``FilterAtlas``/``FilterAdjacency``) and the
      ``filters.show_nodes`` predicate of those views;
    * two NetworkX functions such views hold: ``filters.no_filter`` (returns ``True``) and ``function.frozen``
      (raises);
    * NumPy's ``dtype``, ``ndarray`` and array / scalar rebuilders (``_reconstruct``, ``scalar``, ``_frombuffer``),
      under NumPy 1's ``numpy.core`` and NumPy 2's ``numpy._core`` names;
    * for protocols 0-2: the Python 2 names of the builtins (``__builtin__``), ``copyreg._reconstructor`` (it
      only calls ``__new__``/``__init__`` of classes that are themselves in this table) and ``_codecs.encode``,
      replaced by :func:`_latin1_bytes`.
    """
    builtin_names = ("dict", "list", "set", "frozenset", "tuple", "int", "float", "complex", "str", "bytes",
                     "bytearray", "bool", "object", "slice", "range")
    table: dict[tuple[str, str], Any] = {
        (module, name): getattr(builtins, name) for module in ("builtins", "__builtin__") for name in builtin_names
    }
    views = [getattr(m, n) for m in (nx_coreviews, nx_reportviews) for n in m.__all__]
    networkx_objects = [nx.Graph, nx.DiGraph, nx.MultiGraph, nx.MultiDiGraph, nx_filters.show_nodes,
                        nx_filters.no_filter, nx_function.frozen, *(v for v in views if isinstance(v, type))]
    table.update({(obj.__module__, obj.__qualname__): obj for obj in networkx_objects})
    table.update({("collections", "OrderedDict"): collections.OrderedDict,
                  ("collections", "defaultdict"): collections.defaultdict,
                  ("copyreg", "_reconstructor"): copyreg._reconstructor,
                  ("copy_reg", "_reconstructor"): copyreg._reconstructor,
                  ("_codecs", "encode"): _latin1_bytes,
                  ("numpy", "dtype"): np.dtype,
                  ("numpy", "ndarray"): np.ndarray})
    for core in ("numpy.core", "numpy._core"):
        table[f"{core}.multiarray", "_reconstruct"] = _np_multiarray._reconstruct
        table[f"{core}.multiarray", "scalar"] = _np_multiarray.scalar
        table[f"{core}.numeric", "_frombuffer"] = _np_numeric._frombuffer
    return table


_UNPICKLING_GLOBALS = _unpickling_globals()
_UNPICKLING_GLOBAL_IDS = frozenset(id(obj) for obj in _UNPICKLING_GLOBALS.values())


class _GraphUnpickler(pickle._Unpickler):
    """An unpickler that only builds NetworkX graphs (and their views), NumPy arrays/scalars and builtin containers.

    Unpickling calls whatever globals a file names. This one resolves only the exact ``(module, name)`` pairs of
    :func:`_unpickling_globals` -- never a dotted name (protocol 4 would walk attributes from it), never by
    importing -- and refuses a ``BUILD`` whose target is one of those shared globals (it would set attributes of,
    say, ``networkx.Graph`` for the whole process). It extends the pure-Python unpickler: the C one has no hook at
    ``BUILD``. A refusal raises :class:`pickle.UnpicklingError` with a message starting ``refusing``.
    """

    def find_class(self, module: str, name: str) -> Any:
        """The allowed global ``module.name``.

        Raises:
            pickle.UnpicklingError: ``(module, name)`` is not in the table.
        """
        obj = _UNPICKLING_GLOBALS.get((module, name))
        if obj is None:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return obj

    def load_build(self) -> None:
        """The ``BUILD`` opcode, refused when it would set the state of an allowed global itself."""
        target = self.stack[-2]
        if id(target) in _UNPICKLING_GLOBAL_IDS:
            raise pickle.UnpicklingError(f"refusing to set attributes of {getattr(target, '__qualname__', target)}")
        super().load_build()

    dispatch = {**pickle._Unpickler.dispatch, pickle.BUILD[0]: load_build}


def _read_pickle(path: Path) -> list[nx.Graph]:
    """A pickled list (or tuple) of NetworkX graphs, or one graph, read with :class:`_GraphUnpickler`."""
    data = read_file_bytes(path)
    try:
        obj = _GraphUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as exc:
        if str(exc).startswith("refusing"):
            raise DataError(
                f"{path}: {exc}: graphdiff only unpickles NetworkX graphs, NumPy arrays and builtin containers"
            ) from None
        raise DataError(f"{path}: corrupt pickle ({exc})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, OverflowError, RecursionError,
            struct.error, nx.NetworkXException) as exc:
        raise DataError(f"{path}: corrupt or truncated pickle ({type(exc).__name__}: {exc})") from None
    graphs = [obj] if isinstance(obj, nx.Graph) else obj
    if not isinstance(graphs, list | tuple):
        raise DataError(f"{path}: expected a list of NetworkX graphs, found {type(obj).__name__}")
    for k, G in enumerate(graphs):
        if not isinstance(G, nx.Graph):
            raise DataError(f"{path}: graph {k}: expected a NetworkX graph, found {type(G).__name__}")
    return list(graphs)


def _from_networkx(path: Path, graphs: list[nx.Graph], node_attr: str | None, edge_attr: str | None) -> ParsedGraphs:
    try:
        node_vocab, edge_vocab = collect_vocab(graphs, node_attr, edge_attr)
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from None
    triples, loops = [], 0
    for k, G in enumerate(_each_graph(graphs, path)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # self-loops are counted and reported once per file
                triples.append(networkx_to_triple(G, node_attr, edge_attr, node_vocab, edge_vocab))
        except ValueError as exc:
            raise DataError(f"{path}: graph {k}: {exc}") from None
        loops += nx.number_of_selfloops(G)
    return ParsedGraphs(
        triples,
        [str(v) for v in node_vocab] if node_vocab is not None else list(UNLABELLED_NODES),
        [str(v) for v in edge_vocab] if edge_vocab is not None else list(UNLABELLED_EDGES),
        loops,
    )


def _triple(path: Path, k: int, x: Tensor, ei: Tensor, et: Tensor) -> tuple[Triple, int]:
    """Drop self-loops (counted), then check and reduce the edges of graph ``k``."""
    loops = ei[0] == ei[1]
    try:
        ei, et = normalize_edges(ei[:, ~loops], et[~loops], x.numel())
    except ValueError as exc:
        raise DataError(f"{path}: graph {k}: {exc}") from None
    return (x, ei, et), int(loops.sum())


#: Files with at least this many graphs show a progress bar while they are read.
PROGRESS_MIN_GRAPHS = 1000


def _each_graph(graphs: list[T], path: Path) -> Iterator[T]:
    """``graphs`` in order, with a progress bar for files of many graphs."""
    big = len(graphs) >= PROGRESS_MIN_GRAPHS
    return progress(graphs, f"reading {path.name}", total=len(graphs), unit="graph", enabled=None if big else False)


def graph_stem(path: Path) -> str:
    """The file name without its graph-file suffixes (``g.json.gz`` -> ``g``)."""
    name = path.name
    for suffix in sorted(GRAPH_SUFFIXES + (".pickle.gz",), key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return path.stem


def graph_format(path: Path) -> str:
    """``json``, ``npz``, ``graphml``, ``pickle`` (or ``unknown``) by the file name, for ``info.source``."""
    name = path.name.lower()
    for fmt, endings in (("json", (".json", ".json.gz")), ("npz", (".npz",)),
                         ("graphml", (".graphml", ".graphml.gz", ".xml")),
                         ("pickle", (".pkl", ".pickle", ".pkl.gz", ".pickle.gz"))):
        if name.endswith(endings):
            return fmt
    return "unknown"


def _key(value: Any) -> Any:
    """Labels as dictionary keys (lists become tuples)."""
    return tuple(_key(v) for v in value) if isinstance(value, list) else value


def _sorted(values: set) -> list:
    try:
        return sorted(values)
    except TypeError:  # mixed types: order by type name, then text
        return sorted(values, key=lambda v: (type(v).__name__, repr(v)))
