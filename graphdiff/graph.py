"""Conversions between graphdiff's graph forms, PyTorch Geometric and NetworkX.

graphdiff speaks three forms of a graph with categorical node and edge types:

* :class:`~graphdiff.types.DenseGraph` — a padded one-hot batch (what models see);
* a *triple* ``(node_types [n], edge_index [2, m], edge_types [m])`` of long tensors, each
  undirected edge once with ``i < j`` and edge classes ``>= 1`` (what
  :class:`~graphdiff.storage.GraphList` stores);
* :class:`torch_geometric.data.Data` and :class:`networkx.Graph` for interchange.

Conventions shared by every function here:

* Edge class 0 means "no edge"; real edges have classes ``1..de-1``. An unlabelled edge is class 1.
* An unlabelled node is class 0.
* Graphs are simple and undirected. Self-loops are **dropped with a warning** (a
  :class:`DenseGraph` has an empty diagonal by construction); directed graphs, multigraphs and a
  node pair listed twice with different classes raise :class:`ValueError`.
* A PyG edge list may hold each undirected edge once (either direction) or in both directions.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import networkx as nx
import torch
import torch.nn.functional as F
from torch import Tensor

from graphdiff.info import DatasetInfo
from graphdiff.storage import GraphList
from graphdiff.types import DenseGraph

if TYPE_CHECKING:  # torch_geometric is imported lazily: it takes seconds to import
    from torch_geometric.data import Batch, Data

Triple = tuple[Tensor, Tensor, Tensor]

__all__ = [
    "Triple",
    "collect_vocab",
    "data_to_triple",
    "dense_to_networkx",
    "dense_to_pyg",
    "dense_to_triples",
    "networkx_to_dense",
    "networkx_to_triple",
    "normalize_edges",
    "pyg_to_dense",
    "triple_to_data",
    "triple_to_networkx",
    "triples_to_dense",
]


# ---------------------------------------------------------------------------------------------- triples
def dense_to_triples(graph: DenseGraph) -> list[Triple]:
    """Split a dense batch into per-graph triples of argmax classes (padding dropped).

    Real nodes are renumbered ``0..n-1`` in their order along the padded axis.

    Args:
        graph: ``X [B, n, dx]``, ``E [B, n, n, de]``, ``node_mask [B, n]``.

    Returns:
        ``B`` triples ``(node_types [n_b], edge_index [2, m_b] with i<j, edge_types [m_b])``.
    """
    nodes, edges = graph.node_classes(), graph.edge_classes()
    out = []
    for b in range(graph.batch_size):
        idx = torch.nonzero(graph.node_mask[b]).squeeze(-1)
        n = idx.numel()
        e = edges[b][idx][:, idx]
        i, j = torch.triu_indices(n, n, offset=1, device=e.device)
        t = e[i, j]
        keep = t > 0
        out.append((nodes[b, idx].cpu(), torch.stack([i[keep], j[keep]]).cpu(), t[keep].cpu()))
    return out


def triples_to_dense(
    triples: Sequence[Triple], num_node_types: int, num_edge_types: int, max_nodes: int | None = None
) -> DenseGraph:
    """Collate triples into a one-hot :class:`DenseGraph`.

    Args:
        triples: ``(node_types [n], edge_index [2, m], edge_types [m])`` per graph; each undirected
            edge once or twice, self-loops not allowed.
        num_node_types: ``dx``.
        num_edge_types: ``de`` (including class 0 = no edge).
        max_nodes: pad to this many nodes (default: the largest graph).

    Raises:
        ValueError: a graph is larger than ``max_nodes`` or a class is out of range.
    """
    for k, (x, _, ea) in enumerate(triples):
        _check_range(torch.as_tensor(x), 0, num_node_types, f"graph {k}: node class")
        _check_range(torch.as_tensor(ea), 1, num_edge_types, f"graph {k}: edge class")
    graphs = GraphList.from_graphs(triples)
    dense = graphs.to_dense(torch.arange(len(graphs)), num_node_types, num_edge_types)
    return _pad(dense, max_nodes)


# ---------------------------------------------------------------------------------------------- PyG
def pyg_to_dense(
    batch: Data | Batch, num_node_types: int, num_edge_types: int, max_nodes: int | None = None
) -> DenseGraph:
    """Convert a PyG graph or batch to a one-hot :class:`DenseGraph`.

    ``x`` may be integer classes (``[N]`` or ``[N, 1]``) or one-hot rows ``[N, dx]``; missing ``x``
    means one node class. ``edge_attr`` may be integer classes ``>= 1`` (``[M]`` or ``[M, 1]``),
    one-hot rows ``[M, de]`` (column 0 = no edge, as DiGress) or ``[M, de - 1]`` (no such column, as
    PyG's QM9); missing ``edge_attr`` means class 1. Graph-level ``y`` is not carried over.

    Args:
        batch: a :class:`~torch_geometric.data.Data` (one graph) or a
            :class:`~torch_geometric.data.Batch`.
        num_node_types: ``dx``.
        num_edge_types: ``de`` (including class 0 = no edge).
        max_nodes: pad to this many nodes (default: the largest graph of the batch).

    Returns:
        ``X [B, n, dx]``, ``E [B, n, n, de]``, ``y [B, 0]``, ``node_mask [B, n]``.

    Raises:
        ValueError: bad classes, inconsistent duplicate edges, an edge between two graphs of the
            batch, or a graph larger than ``max_nodes``.
    """
    from torch_geometric.utils import to_dense_adj, to_dense_batch

    N = int(batch.num_nodes or 0)
    vec = getattr(batch, "batch", None)
    if vec is None:
        vec = torch.zeros(N, dtype=torch.long)
    B = int(getattr(batch, "num_graphs", 1) or 1)
    counts = torch.bincount(vec, minlength=B)
    largest = int(counts.max()) if counts.numel() else 0
    n = largest if max_nodes is None else int(max_nodes)
    if largest > n:
        raise ValueError(f"a graph has {largest} nodes, more than max_nodes={n}")

    node_cls = _node_classes(batch.x, N, num_node_types)
    edge_cls = _edge_classes(batch.edge_attr, _num_edges(batch), num_edge_types)
    ei, edge_cls = normalize_edges(_edge_index(batch), edge_cls, N)
    if ei.numel() and (vec[ei[0]] != vec[ei[1]]).any():
        raise ValueError("edge_index joins nodes of two different graphs of the batch")

    X, node_mask = to_dense_batch(F.one_hot(node_cls, num_node_types).float(), vec, max_num_nodes=n, batch_size=B)
    both = torch.cat([ei, ei.flip(0)], 1)
    E_cls = to_dense_adj(both, vec, edge_attr=torch.cat([edge_cls, edge_cls]).float(), max_num_nodes=n, batch_size=B)
    E = F.one_hot(E_cls.round().long(), num_edge_types).float()
    return DenseGraph(X, E, torch.zeros(B, 0), node_mask).mask()


def dense_to_pyg(graph: DenseGraph) -> list[Data]:
    """Split a dense batch into PyG graphs of argmax classes.

    Returns:
        One :class:`~torch_geometric.data.Data` per graph with ``x [n]`` long node classes,
        ``edge_index [2, 2m]`` listing every edge in both directions (sorted by source), and
        ``edge_attr [2m]`` long edge classes ``>= 1``.
    """
    return [triple_to_data(*t) for t in dense_to_triples(graph)]


def triple_to_data(node_types: Tensor, edge_index: Tensor, edge_types: Tensor) -> Data:
    """A PyG graph (``x`` classes, both edge directions, ``edge_attr`` classes) from a triple."""
    from torch_geometric.data import Data
    from torch_geometric.utils import coalesce

    x = torch.as_tensor(node_types, dtype=torch.long).reshape(-1)
    ei = torch.as_tensor(edge_index, dtype=torch.long).reshape(2, -1)
    ea = torch.as_tensor(edge_types, dtype=torch.long).reshape(-1)
    both, attr = coalesce(torch.cat([ei, ei.flip(0)], 1), torch.cat([ea, ea]), num_nodes=x.numel(), reduce="max")
    return Data(x=x, edge_index=both, edge_attr=attr, num_nodes=x.numel())


def data_to_triple(data: Data, num_node_types: int | None = None, num_edge_types: int | None = None) -> Triple:
    """The triple of one PyG graph (see :func:`pyg_to_dense` for the accepted ``x`` / ``edge_attr``).

    Without ``num_edge_types``, one-hot ``edge_attr`` is read with column 0 = no edge (DiGress).

    Returns:
        ``(node_types [n], edge_index [2, m] with i<j, edge_types [m])``, all long.
    """
    n = int(data.num_nodes or 0)
    x = _node_classes(data.x, n, num_node_types)
    ea = _edge_classes(data.edge_attr, _num_edges(data), num_edge_types)
    ei, ea = normalize_edges(_edge_index(data), ea, n)
    return x, ei, ea


# ---------------------------------------------------------------------------------------------- networkx
def networkx_to_triple(
    G: nx.Graph,
    node_attr: str | None = None,
    edge_attr: str | None = None,
    node_vocab: Sequence[Hashable] | None = None,
    edge_vocab: Sequence[Hashable] | None = None,
) -> Triple:
    """The triple of a NetworkX graph.

    Nodes of any hashable type are numbered ``0..n-1`` in ``G.nodes`` order (insertion order, the
    order of :func:`networkx.convert_node_labels_to_integers`).

    Args:
        G: an undirected simple graph.
        node_attr: categorical node attribute giving the node class (``None``: all class 0).
        edge_attr: categorical edge attribute giving the edge class (``None``: all class 1).
        node_vocab: node classes in order; a node's class is the position of its attribute value.
            Without it, attribute values must already be class indices ``>= 0``.
        edge_vocab: edge classes in order with index 0 = no edge (like ``DatasetInfo.edge_types``);
            an edge's class is the position of its value in ``edge_vocab[1:]`` plus one. Without it,
            values must already be class indices ``>= 1``.

    Raises:
        ValueError: a directed graph or multigraph, a missing attribute, or a value outside the
            vocabulary.
    """
    if G.is_directed():
        raise ValueError("directed graph: graphdiff handles undirected graphs (use G.to_undirected() first)")
    if G.is_multigraph():
        raise ValueError("multigraph: graphdiff handles simple graphs (collapse parallel edges with nx.Graph(G))")
    index = {v: i for i, v in enumerate(G.nodes)}
    n = len(index)
    if node_attr is None:
        x = torch.zeros(n, dtype=torch.long)
    else:
        lookup = _lookup(node_vocab, offset=0)
        values = []
        for v, d in G.nodes(data=True):
            if node_attr not in d:
                raise ValueError(f"node {v!r} has no attribute {node_attr!r}")
            values.append(_class_of(d[node_attr], lookup, 0, f"node {v!r} attribute {node_attr!r}"))
        x = torch.tensor(values, dtype=torch.long)

    pairs, classes, loops = [], [], 0
    lookup = _lookup(edge_vocab, offset=1)
    for u, v, d in G.edges(data=True):
        if u == v:
            loops += 1
            continue
        pairs.append((index[u], index[v]))
        if edge_attr is not None:
            if edge_attr not in d:
                raise ValueError(f"edge ({u!r}, {v!r}) has no attribute {edge_attr!r}")
            classes.append(_class_of(d[edge_attr], lookup, 1, f"edge ({u!r}, {v!r}) attribute {edge_attr!r}"))
    if loops:
        warnings.warn(f"dropped {loops} self-loop(s): graphdiff graphs have no self-loops", stacklevel=2)
    ei = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2).T
    ea = torch.tensor(classes, dtype=torch.long) if edge_attr is not None else torch.ones(ei.shape[1], dtype=torch.long)
    lo, hi = torch.minimum(ei[0], ei[1]), torch.maximum(ei[0], ei[1])
    order = torch.argsort(lo * max(n, 1) + hi)
    return x, torch.stack([lo[order], hi[order]]), ea[order]


def triple_to_networkx(
    node_types: Tensor,
    edge_index: Tensor,
    edge_types: Tensor,
    node_vocab: Sequence[Any] | None = None,
    edge_vocab: Sequence[Any] | None = None,
    node_attr: str = "label",
    edge_attr: str = "label",
) -> nx.Graph:
    """A NetworkX graph with nodes ``0..n-1`` from a triple.

    The node attribute ``node_attr`` holds the class index, or ``node_vocab[class]`` when a
    vocabulary is given; likewise ``edge_attr`` with ``edge_vocab`` (index 0 = no edge).
    """
    x = torch.as_tensor(node_types).reshape(-1).tolist()
    ei = torch.as_tensor(edge_index).reshape(2, -1).T.tolist()
    ea = torch.as_tensor(edge_types).reshape(-1).tolist()
    G = nx.Graph()
    G.add_nodes_from((i, {node_attr: node_vocab[c] if node_vocab is not None else c}) for i, c in enumerate(x))
    G.add_edges_from(
        (u, v, {edge_attr: edge_vocab[c] if edge_vocab is not None else c}) for (u, v), c in zip(ei, ea, strict=True)
    )
    return G


def dense_to_networkx(graph: DenseGraph) -> list[nx.Graph]:
    """One NetworkX graph per batch element: nodes ``0..n-1``, node and edge attribute ``"label"`` = class index."""
    return [triple_to_networkx(*t) for t in dense_to_triples(graph)]


def networkx_to_dense(
    graphs: Iterable[nx.Graph],
    num_node_types: int | None = None,
    num_edge_types: int | None = None,
    node_attr: str | None = None,
    edge_attr: str | None = None,
    node_vocab: Sequence[Hashable] | None = None,
    edge_vocab: Sequence[Hashable] | None = None,
    max_nodes: int | None = None,
) -> DenseGraph:
    """Collate NetworkX graphs into a one-hot :class:`DenseGraph` (see :func:`networkx_to_triple`).

    Args:
        graphs: undirected simple graphs.
        num_node_types: ``dx`` (default: ``len(node_vocab)``, else the largest class + 1).
        num_edge_types: ``de`` (default: ``len(edge_vocab)``, else max(2, largest class + 1)).
        node_attr, edge_attr, node_vocab, edge_vocab: as :func:`networkx_to_triple`.
        max_nodes: pad to this many nodes (default: the largest graph).
    """
    triples = [networkx_to_triple(G, node_attr, edge_attr, node_vocab, edge_vocab) for G in graphs]
    if num_node_types is None:
        top = max((int(t[0].max()) for t in triples if t[0].numel()), default=0)
        num_node_types = len(node_vocab) if node_vocab is not None else top + 1
    if num_edge_types is None:
        top = max((int(t[2].max()) for t in triples if t[2].numel()), default=1)
        num_edge_types = len(edge_vocab) if edge_vocab is not None else max(2, top + 1)
    return triples_to_dense(triples, num_node_types, num_edge_types, max_nodes)


def collect_vocab(
    graphs: Iterable[nx.Graph], node_attr: str | None = None, edge_attr: str | None = None
) -> tuple[list[Hashable] | None, list[Hashable] | None]:
    """Sorted distinct attribute values over many graphs, as vocabularies for :func:`networkx_to_triple`.

    Returns:
        ``(node_vocab, edge_vocab)``; ``edge_vocab`` starts with ``"none"`` (class 0 = no edge).
        Each is ``None`` when its attribute is ``None``.

    Raises:
        ValueError: a node or edge lacks the attribute.
    """
    node_values: set = set()
    edge_values: set = set()
    for k, G in enumerate(graphs):
        if node_attr is not None:
            for v, d in G.nodes(data=True):
                if node_attr not in d:
                    raise ValueError(f"graph {k}: node {v!r} has no attribute {node_attr!r}")
                node_values.add(_hashable(d[node_attr]))
        if edge_attr is not None:
            for u, v, d in G.edges(data=True):
                if edge_attr not in d:
                    raise ValueError(f"graph {k}: edge ({u!r}, {v!r}) has no attribute {edge_attr!r}")
                if u != v:
                    edge_values.add(_hashable(d[edge_attr]))
    node_vocab = _sorted(node_values) if node_attr is not None else None
    edge_vocab = ["none", *_sorted(edge_values)] if edge_attr is not None else None
    return node_vocab, edge_vocab


# ---------------------------------------------------------------------------------------------- helpers
def _node_classes(x: Tensor | None, num_nodes: int, num_node_types: int | None) -> Tensor:
    """``[N]`` long node classes from integer classes or one-hot rows (``None``: all class 0)."""
    if x is None:
        return torch.zeros(num_nodes, dtype=torch.long)
    if x.shape[0] != num_nodes:
        raise ValueError(f"x has {x.shape[0]} rows for {num_nodes} nodes")
    if x.dim() == 2 and x.shape[1] == 1 and not x.is_floating_point():
        cls = x[:, 0].long()
    elif x.dim() == 1 and not x.is_floating_point():
        cls = x.long()
    elif x.dim() == 2 and (num_node_types is None or x.shape[1] == num_node_types):
        cls = _argmax_rows(x, "x")
    else:
        expected = f"[N, {num_node_types}]" if num_node_types is not None else "[N, dx]"
        raise ValueError(
            f"x has shape {list(x.shape)} and dtype {x.dtype}: expected integer node classes [N] or [N, 1], "
            f"or one-hot rows {expected}"
        )
    if num_node_types is not None:
        _check_range(cls, 0, num_node_types, "node class")
    elif cls.numel() and cls.min() < 0:
        raise ValueError(f"node class {int(cls.min())} is negative")
    return cls


def _edge_classes(edge_attr: Tensor | None, num_edges: int, num_edge_types: int | None) -> Tensor:
    """``[M]`` long edge classes ``>= 1`` from integer classes or one-hot rows (``None``: all class 1)."""
    if edge_attr is None:
        return torch.ones(num_edges, dtype=torch.long)
    if edge_attr.shape[0] != num_edges:
        raise ValueError(f"edge_attr has {edge_attr.shape[0]} rows for {num_edges} edges")
    if edge_attr.dim() == 2 and edge_attr.shape[1] == 1 and not edge_attr.is_floating_point():
        cls = edge_attr[:, 0].long()
    elif edge_attr.dim() == 1 and not edge_attr.is_floating_point():
        cls = edge_attr.long()
    elif edge_attr.dim() == 2 and (num_edge_types is None or edge_attr.shape[1] == num_edge_types):
        cls = _argmax_rows(edge_attr, "edge_attr")
    elif edge_attr.dim() == 2 and edge_attr.shape[1] == num_edge_types - 1:
        cls = _argmax_rows(edge_attr, "edge_attr") + 1
    else:
        raise ValueError(
            f"edge_attr has shape {list(edge_attr.shape)} and dtype {edge_attr.dtype}: expected integer edge "
            f"classes >= 1 ([M] or [M, 1]) or one-hot rows [M, de] (column 0 = no edge) or [M, de - 1]"
        )
    if cls.numel() and cls.min() < 1:
        raise ValueError(
            "an edge has class 0, which means 'no edge': edge classes start at 1 "
            "(for one-hot edge_attr without a no-edge column, give num_edge_types)"
        )
    if num_edge_types is not None:
        _check_range(cls, 1, num_edge_types, "edge class")
    return cls


def _argmax_rows(t: Tensor, what: str) -> Tensor:
    """Classes of one-hot rows; anything else (continuous features, empty rows) is refused."""
    bad = ((t != 0) & (t != 1)).any(-1) | (t.sum(-1) != 1)
    if bad.any():
        row = int(torch.nonzero(bad)[0])
        raise ValueError(
            f"{what} row {row} is {t[row].tolist()[:8]}: expected one-hot rows (a single 1) or integer classes"
        )
    return t.argmax(-1).long()


def normalize_edges(edge_index: Tensor, classes: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    """Reduce an edge list to one ``(i, j)``, ``i < j`` per undirected edge, sorted by ``(i, j)``.

    Args:
        edge_index: ``[2, m]`` node pairs, each undirected edge once or in both directions.
        classes: ``[m]`` edge classes.
        num_nodes: ``n``; every index must lie in ``0..n-1``.

    Returns:
        ``(edge_index [2, m'], classes [m'])``, long.

    Raises:
        ValueError: an index out of range, or a pair listed twice with different classes.
        Self-loops are dropped with a warning.
    """
    ei = edge_index.long().reshape(2, -1)
    if ei.numel() and (ei.min() < 0 or ei.max() >= num_nodes):
        bad = int(ei.max()) if ei.max() >= num_nodes else int(ei.min())
        raise ValueError(f"an edge names node {bad}, outside 0..{num_nodes - 1}")
    loops = ei[0] == ei[1]
    if loops.any():
        warnings.warn(f"dropped {int(loops.sum())} self-loop(s): graphdiff graphs have no self-loops", stacklevel=3)
        ei, classes = ei[:, ~loops], classes[~loops]
    lo, hi = torch.minimum(ei[0], ei[1]), torch.maximum(ei[0], ei[1])
    key, order = torch.sort(lo * max(num_nodes, 1) + hi, stable=True)
    lo, hi, classes = lo[order], hi[order], classes[order]
    same = key[1:] == key[:-1]
    clash = same & (classes[1:] != classes[:-1])
    if clash.any():
        k = int(torch.nonzero(clash)[0])
        raise ValueError(
            f"edge ({int(lo[k])}, {int(hi[k])}) is listed twice with different classes "
            f"{int(classes[k])} and {int(classes[k + 1])}"
        )
    keep = torch.ones_like(key, dtype=torch.bool)
    keep[1:] = ~same
    return torch.stack([lo[keep], hi[keep]]), classes[keep]


def _edge_index(data: Data) -> Tensor:
    ei = getattr(data, "edge_index", None)
    return torch.zeros(2, 0, dtype=torch.long) if ei is None else ei


def _num_edges(data: Data) -> int:
    return int(_edge_index(data).shape[1])


def _check_range(cls: Tensor, low: int, high: int, what: str) -> None:
    if cls.numel() and (cls.min() < low or cls.max() >= high):
        bad = int(cls.min()) if cls.min() < low else int(cls.max())
        raise ValueError(f"{what} {bad} outside {low}..{high - 1}")


def _pad(graph: DenseGraph, max_nodes: int | None) -> DenseGraph:
    n = graph.max_nodes
    if max_nodes is None or max_nodes == n:
        return graph
    if max_nodes < n:
        raise ValueError(f"a graph has {n} nodes, more than max_nodes={max_nodes}")
    p = max_nodes - n
    return DenseGraph(
        F.pad(graph.X, (0, 0, 0, p)), F.pad(graph.E, (0, 0, 0, p, 0, p)), graph.y, F.pad(graph.node_mask, (0, p))
    )


def _lookup(vocab: Sequence[Hashable] | None, offset: int) -> dict | None:
    if vocab is None:
        return None
    entries = list(vocab)[offset:]
    return {_hashable(v): i + offset for i, v in enumerate(entries)}


def _class_of(value: Any, lookup: dict | None, low: int, what: str) -> int:
    if lookup is None:
        if isinstance(value, bool) or not _is_int(value) or int(value) < low:
            raise ValueError(
                f"{what} is {value!r}: without a vocabulary it must be an integer class >= {low}; "
                "pass a vocabulary to map other values"
            )
        return int(value)
    key = _hashable(value)
    if key not in lookup:
        raise ValueError(f"{what} is {value!r}, which is not in the vocabulary")
    return lookup[key]


def _is_int(value: Any) -> bool:
    try:
        return int(value) == value and not isinstance(value, float | str)
    except (TypeError, ValueError):
        return False


def _hashable(value: Any) -> Hashable:
    """Attribute values as dictionary keys (numpy scalars become Python scalars, lists tuples)."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


def _sorted(values: set) -> list:
    try:
        return sorted(values)
    except TypeError:  # mixed types: order by type name, then text
        return sorted(values, key=lambda v: (type(v).__name__, repr(v)))


def graphs_to_networkx(graphs: GraphList, info: DatasetInfo) -> list[nx.Graph]:
    """networkx graphs of ``graphs`` (class indices in ``info``'s vocabularies), node and edge attribute ``type``
    holding the type name."""
    return [triple_to_networkx(x, ei, et, info.node_types, info.edge_types, "type", "type") for x, ei, et in graphs]
