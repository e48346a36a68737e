"""PyTorch Geometric interchange: a :class:`GraphList` to one ``Data`` per graph and back, vectorised.

graphdiff keeps a dataset in one :class:`~graphdiff.storage.GraphList` (five flat tensors); PyG code wants one
:class:`torch_geometric.data.Data` per graph. Both directions here work on all nodes and edges at once (one-hot
encoding, both edge directions, sorting, duplicate and range checks are whole-tensor operations); the only Python
loops run over graphs, to split or collect their tensors.

* :func:`graph_list_to_pyg`: ``x`` one-hot float ``[n, dx]``, ``edge_index`` long ``[2, 2m]`` with every edge in both
  directions (sorted by source, then target, as ``torch_geometric.utils.coalesce`` leaves them), ``edge_attr``
  one-hot float ``[2m, de]`` (column 0, "no edge", is a column but never set), ``y`` empty ``[1, 0]``, ``num_nodes``.
* :func:`pyg_to_graph_list`: reads ``x`` / ``edge_attr`` as :func:`graphdiff.graph.pyg_to_dense` does (integer classes
  or one-hot rows; missing means unlabelled), each undirected edge once or in both directions.

``torch_geometric`` is imported when a function needs it (it takes seconds to import).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from graphdiff.errors import DataError
from graphdiff.storage import GraphList

if TYPE_CHECKING:
    from torch_geometric.data import Data

#: The largest class a :class:`GraphList` stores (uint8).
MAX_CLASS = 255


def graph_list_to_pyg(graphs: GraphList, num_node_types: int, num_edge_types: int) -> list[Data]:
    """One PyG graph per graph of ``graphs`` (the layout is in the module docstring).

    Args:
        graphs: ``G`` graphs.
        num_node_types: ``dx``, the width of ``x``.
        num_edge_types: ``de``, the width of ``edge_attr`` (class 0 = no edge included).

    Returns:
        ``G`` :class:`~torch_geometric.data.Data` with ``x [n, dx]`` float, ``edge_index [2, 2m]`` long,
        ``edge_attr [2m, de]`` float, ``y [1, 0]`` float and ``num_nodes = n``.

    Raises:
        ValueError: a class of ``graphs`` outside ``0..dx-1`` (nodes) or ``1..de-1`` (edges).
    """
    from torch_geometric.data import Data

    node_types, edge_types = graphs.node_types.long(), graphs.edge_types.long()
    if node_types.numel() and int(node_types.max()) >= num_node_types:
        raise ValueError(f"node class {int(node_types.max())} outside 0..{num_node_types - 1}")
    if edge_types.numel() and int(edge_types.max()) >= num_edge_types:
        raise ValueError(f"edge class {int(edge_types.max())} outside 1..{num_edge_types - 1}")
    x = F.one_hot(node_types, num_node_types).float()
    # Every edge in both directions, in global node numbering, sorted by (source, target): graph by graph, since
    # the graphs' nodes are numbered one graph after the other.
    first_node = graphs.node_ptr[:-1]
    offset = torch.repeat_interleave(first_node, graphs.num_edges).repeat(2)
    i, j = graphs.edge_index.long()
    source, target = torch.cat([i, j]) + offset, torch.cat([j, i]) + offset
    order = torch.argsort(source * max(node_types.numel(), 1) + target)
    directed = 2 * graphs.num_edges
    local = torch.repeat_interleave(first_node, directed)
    edge_index = torch.stack([source[order] - local, target[order] - local])
    edge_attr = F.one_hot(edge_types.repeat(2)[order], num_edge_types).float()

    counts = graphs.num_nodes.tolist()
    parts = zip(x.split(counts), edge_index.split(directed.tolist(), 1), edge_attr.split(directed.tolist()),
                counts, strict=True)
    return [Data(x=xk, edge_index=ek, edge_attr=ak, y=torch.zeros(1, 0), num_nodes=n) for xk, ek, ak, n in parts]


@dataclass
class PygGraphs:
    """Graphs read from PyG.

    Attributes:
        graphs: every graph, in input order.
        num_node_types: ``dx``: as given, else the widest one-hot ``x`` or the largest node class + 1.
        num_edge_types: ``de`` including "no edge": as given, else ``max(2, largest edge class + 1)``.
        labelled_nodes: whether any graph has ``x``.
        self_loops: self-loops dropped (graphdiff graphs have none).
    """

    graphs: GraphList
    num_node_types: int
    num_edge_types: int
    labelled_nodes: bool
    self_loops: int


def pyg_to_graph_list(
    graphs: Iterable[Data], num_node_types: int | None = None, num_edge_types: int | None = None
) -> PygGraphs:
    """Store PyG graphs (a list of ``Data`` or a PyG dataset) in one :class:`GraphList`.

    ``x``: integer classes ``[n]`` / ``[n, 1]`` or one-hot rows ``[n, dx]``; missing: class 0. ``edge_attr``:
    integer classes ``>= 1`` (``[m]`` / ``[m, 1]``) or one-hot rows ``[m, de]`` (column 0 = no edge, as DiGress) or
    ``[m, de - 1]`` (no such column, as PyG's QM9; give ``num_edge_types``); missing: class 1. Graphs may mix these
    forms. Self-loops are dropped (and counted); graph-level ``y`` is not kept.

    Args:
        graphs: the graphs.
        num_node_types: ``dx`` (default: inferred, see :class:`PygGraphs`).
        num_edge_types: ``de`` including "no edge" (default: inferred).

    Raises:
        DataError: naming the graph: rows that are neither classes nor one-hot, a class out of range, an edge naming
            a node outside its graph, or a node pair listed twice with different classes.
    """
    counts, xs, edge_indices, edge_attrs = [], [], [], []
    for data in graphs:
        counts.append(int(data.num_nodes or 0))
        xs.append(data.x)
        edge_index = data.edge_index if data.edge_index is not None else torch.zeros(2, 0)
        edge_indices.append(edge_index.long().reshape(2, -1))
        edge_attrs.append(data.edge_attr)
    num_edges = [ei.shape[1] for ei in edge_indices]
    node_cls = _classes(xs, counts, "x", num_node_types)
    edge_cls = _classes(edge_attrs, num_edges, "edge_attr", num_edge_types)
    node_ptr = _ptr(counts)

    # Edges in global node numbering, checked against their own graph, reduced to one (i < j) per pair.
    edge_graph = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(num_edges, dtype=torch.long))
    ei = torch.cat(edge_indices, 1) if edge_indices else torch.zeros(2, 0, dtype=torch.long)
    size = torch.tensor(counts, dtype=torch.long)[edge_graph]
    outside = ((ei < 0) | (ei >= size)).any(0)
    if outside.any():
        e = int(torch.nonzero(outside)[0])
        bad = int(ei[0, e]) if not 0 <= int(ei[0, e]) < int(size[e]) else int(ei[1, e])
        raise DataError(f"graph {int(edge_graph[e])}: an edge names node {bad}, outside 0..{int(size[e]) - 1}")
    ei = ei + node_ptr[:-1][edge_graph]
    loops = ei[0] == ei[1]
    ei, edge_cls = ei[:, ~loops], edge_cls[~loops]
    lo, hi = torch.minimum(ei[0], ei[1]), torch.maximum(ei[0], ei[1])
    key, order = torch.sort(lo * max(int(node_ptr[-1]), 1) + hi, stable=True)
    lo, hi, edge_cls = lo[order], hi[order], edge_cls[order]
    same = key[1:] == key[:-1]
    clash = same & (edge_cls[1:] != edge_cls[:-1])
    if clash.any():
        k = int(torch.nonzero(clash)[0])
        g = int(torch.searchsorted(node_ptr, lo[k], right=True)) - 1
        first = int(node_ptr[g])
        raise DataError(
            f"graph {g}: edge ({int(lo[k]) - first}, {int(hi[k]) - first}) is listed twice with different classes "
            f"{int(edge_cls[k])} and {int(edge_cls[k + 1])}"
        )
    keep = torch.ones_like(key, dtype=torch.bool)
    keep[1:] = ~same
    lo, hi, edge_cls = lo[keep], hi[keep], edge_cls[keep]
    graph_of_edge = torch.searchsorted(node_ptr, lo, right=True) - 1
    first_node = node_ptr[graph_of_edge]

    stored = GraphList(
        node_types=_uint8(node_cls, "node"),
        node_ptr=node_ptr,
        edge_index=torch.stack([lo - first_node, hi - first_node]).to(torch.int32),
        edge_types=_uint8(edge_cls, "edge"),
        edge_ptr=_ptr(torch.bincount(graph_of_edge, minlength=len(counts)).tolist()),
    )
    widths = [int(x.shape[1]) for x in xs if x is not None and x.dim() == 2 and x.shape[1] > 1]
    top_node = int(node_cls.max()) if node_cls.numel() else 0
    top_edge = int(edge_cls.max()) if edge_cls.numel() else 1
    return PygGraphs(
        graphs=stored,
        num_node_types=num_node_types or max([*widths, top_node + 1]),
        num_edge_types=num_edge_types or max(2, top_edge + 1),
        labelled_nodes=any(x is not None for x in xs),
        self_loops=int(loops.sum()),
    )


def _classes(parts: list[Tensor | None], counts: list[int], what: str, num_types: int | None) -> Tensor:
    """``[sum(counts)]`` long classes of every graph's ``x`` (``what="x"``) or ``edge_attr``.

    Graphs whose tensors have one layout (dimensions, width, integer or floating) are converted together; a
    missing tensor gives class 0 (nodes) or 1 (edges).

    Raises:
        DataError: naming the graph (and row) at fault.
    """
    nodes = what == "x"
    out = torch.full((sum(counts),), 0 if nodes else 1, dtype=torch.long)
    groups: dict[tuple, list[int]] = {}
    for k, t in enumerate(parts):
        if t is None:
            continue
        if t.shape[0] != counts[k]:
            raise DataError(f"graph {k}: {what} has {t.shape[0]} rows for {counts[k]} {'nodes' if nodes else 'edges'}")
        groups.setdefault((t.dim(), tuple(t.shape[1:]), t.is_floating_point()), []).append(k)
    starts = _ptr(counts)
    for ks in groups.values():
        rows = torch.cat([parts[k] for k in ks])
        group_ptr = _ptr([counts[k] for k in ks])
        shift = _one_hot_shift(parts[ks[0]], what, num_types, ks[0])
        if shift is None:
            cls = rows.reshape(-1).long()
        else:
            bad = ((rows != 0) & (rows != 1)).any(-1) | (rows.sum(-1) != 1)
            if bad.any():
                k, r = _locate(ks, group_ptr, int(torch.nonzero(bad)[0]))
                raise DataError(f"graph {k}: {what} row {r} is {parts[k][r].tolist()[:8]}: expected one-hot rows "
                                "(a single 1) or integer classes")
            cls = rows.argmax(-1).long() + shift
        wrong = cls < (0 if nodes else 1)
        if num_types is not None:
            wrong |= cls >= num_types
        if wrong.any():
            first = int(torch.nonzero(wrong)[0])
            k, _ = _locate(ks, group_ptr, first)
            raise DataError(f"graph {k}: {_range_message(int(cls[first]), nodes, num_types)}")
        if len(ks) == len(parts):
            out = cls
        else:
            index = torch.tensor(ks, dtype=torch.long)
            shift_to_graph = torch.repeat_interleave(starts[index] - group_ptr[:-1], starts[index + 1] - starts[index])
            out[torch.arange(cls.numel()) + shift_to_graph] = cls
    return out


def _locate(graphs: list[int], group_ptr: Tensor, row: int) -> tuple[int, int]:
    """``(graph, row within it)`` of row ``row`` of the rows of ``graphs`` stacked (``group_ptr``: their offsets)."""
    g = int(torch.searchsorted(group_ptr, torch.tensor(row), right=True)) - 1
    return graphs[g], row - int(group_ptr[g])


def _one_hot_shift(t: Tensor, what: str, num_types: int | None, graph: int) -> int | None:
    """``None`` for integer classes, else the class of a one-hot row's first column (0, or 1 without a "no edge"
    column).

    Raises:
        DataError: a layout that is neither (graph, shape and dtype in the message).
    """
    if not t.is_floating_point() and (t.dim() == 1 or (t.dim() == 2 and t.shape[1] == 1)):
        return None
    if t.dim() == 2 and (num_types is None or t.shape[1] == num_types):
        return 0
    if what == "edge_attr" and t.dim() == 2 and num_types is not None and t.shape[1] == num_types - 1:
        return 1
    if what == "x":
        width = num_types if num_types is not None else "dx"
        expected = f"integer node classes [N] or [N, 1], or one-hot rows [N, {width}]"
    else:
        expected = ("integer edge classes >= 1 ([M] or [M, 1]) or one-hot rows [M, de] (column 0 = no edge) "
                    "or [M, de - 1]")
    raise DataError(f"graph {graph}: {what} has shape {list(t.shape)} and dtype {t.dtype}: expected {expected}")


def _range_message(value: int, nodes: bool, num_types: int | None) -> str:
    if nodes:
        return f"node class {value} is negative" if num_types is None else (
            f"node class {value} outside 0..{num_types - 1}")
    if value < 1:
        return ("an edge has class 0, which means 'no edge': edge classes start at 1 (for one-hot edge_attr without "
                "a no-edge column, give num_edge_types)")
    return f"edge class {value} outside 1..{num_types - 1}"


def _uint8(classes: Tensor, what: str) -> Tensor:
    if classes.numel() and int(classes.max()) > MAX_CLASS:
        raise DataError(f"{what} class {int(classes.max())}: graphdiff stores at most {MAX_CLASS + 1} classes")
    return classes.to(torch.uint8)


def _ptr(counts: list[int]) -> Tensor:
    ptr = torch.zeros(len(counts) + 1, dtype=torch.long)
    if counts:
        ptr[1:] = torch.cumsum(torch.tensor(counts, dtype=torch.long), 0)
    return ptr
