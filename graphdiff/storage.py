"""Compact storage of many small graphs with integer node and edge types.

A :class:`GraphList` keeps a whole dataset in five flat tensors (like PyG's collated
``InMemoryDataset``), so a million molecules cost a few hundred MB, load in one ``torch.load``
and collate into a :class:`~graphdiff.types.DenseGraph` with vectorised gathers only.

Node types are class indices ``0..dx-1``. Edges are stored once, as ``(i, j)`` with ``i < j`` in
local node numbering, with edge classes ``1..de-1`` (class 0, "no edge", is implicit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from graphdiff.types import DenseGraph


@dataclass
class GraphList:
    """A list of graphs in flat tensors.

    Attributes:
        node_types: ``[N]`` uint8 node classes of all graphs, concatenated.
        node_ptr: ``[G+1]`` long offsets into ``node_types``.
        edge_index: ``[2, M]`` int32 local ``(i, j)`` with ``i < j``.
        edge_types: ``[M]`` uint8 edge classes (>= 1).
        edge_ptr: ``[G+1]`` long offsets into the edge arrays.
    """

    node_types: Tensor
    node_ptr: Tensor
    edge_index: Tensor
    edge_types: Tensor
    edge_ptr: Tensor

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_graphs(cls, graphs: Sequence[tuple[Tensor, Tensor, Tensor]]) -> GraphList:
        """Build from ``(node_types [n], edge_index [2, m], edge_types [m])`` triples.

        ``edge_index`` may list each undirected edge once or twice and in any order; it is reduced
        to ``i < j``. Self-loops are rejected.
        """
        node_types, edge_index, edge_types = [], [], []
        node_counts, edge_counts = [], []
        for k, (x, ei, ea) in enumerate(graphs):
            x = torch.as_tensor(x, dtype=torch.long).reshape(-1)
            ei = torch.as_tensor(ei, dtype=torch.long).reshape(2, -1)
            ea = torch.as_tensor(ea, dtype=torch.long).reshape(-1)
            if ei.shape[1] != ea.shape[0]:
                raise ValueError(f"graph {k}: {ei.shape[1]} edges but {ea.shape[0]} edge types")
            if (ei[0] == ei[1]).any():
                raise ValueError(f"graph {k}: self-loops are not supported")
            if ei.numel() and (ei.min() < 0 or ei.max() >= x.numel()):
                raise ValueError(f"graph {k}: edge index out of range for {x.numel()} nodes")
            if ea.numel() and ea.min() < 1:
                raise ValueError(f"graph {k}: edge types must be >= 1 (0 means no edge)")
            lo, hi = torch.minimum(ei[0], ei[1]), torch.maximum(ei[0], ei[1])
            key = lo * max(x.numel(), 1) + hi
            key, order = torch.sort(key)
            keep = torch.ones_like(key, dtype=torch.bool)
            keep[1:] = key[1:] != key[:-1]
            order = order[keep]
            node_types.append(x)
            edge_index.append(torch.stack([lo[order], hi[order]]))
            edge_types.append(ea[order])
            node_counts.append(x.numel())
            edge_counts.append(int(order.numel()))
        return cls(
            node_types=_cat(node_types, torch.uint8),
            node_ptr=_ptr(node_counts),
            edge_index=torch.cat(edge_index, 1).to(torch.int32) if edge_index else torch.zeros(2, 0, dtype=torch.int32),
            edge_types=_cat(edge_types, torch.uint8),
            edge_ptr=_ptr(edge_counts),
        )

    @classmethod
    def from_dense(cls, graph: DenseGraph) -> GraphList:
        """Store the argmax classes of a dense batch (padding dropped)."""
        nodes = graph.node_classes()
        edges = graph.edge_classes()
        out = []
        for b in range(graph.batch_size):
            n = int(graph.node_mask[b].sum())
            idx = torch.nonzero(graph.node_mask[b]).squeeze(-1)
            e = edges[b][idx][:, idx]
            i, j = torch.triu_indices(n, n, offset=1)
            t = e[i, j]
            keep = t > 0
            out.append((nodes[b, idx], torch.stack([i[keep], j[keep]]), t[keep]))
        return cls.from_graphs(out)

    @classmethod
    def concat(cls, parts: Sequence[GraphList]) -> GraphList:
        """The graphs of ``parts``, one list after the other."""
        node_counts = torch.cat([p.num_nodes for p in parts]) if parts else torch.zeros(0, dtype=torch.long)
        edge_counts = torch.cat([p.num_edges for p in parts]) if parts else torch.zeros(0, dtype=torch.long)
        return cls(
            node_types=torch.cat([p.node_types for p in parts]) if parts else torch.zeros(0, dtype=torch.uint8),
            node_ptr=_ptr(node_counts.tolist()),
            edge_index=torch.cat([p.edge_index for p in parts], 1) if parts else torch.zeros(2, 0, dtype=torch.int32),
            edge_types=torch.cat([p.edge_types for p in parts]) if parts else torch.zeros(0, dtype=torch.uint8),
            edge_ptr=_ptr(edge_counts.tolist()),
        )

    # ---------------------------------------------------------------- access
    def __len__(self) -> int:
        return self.node_ptr.numel() - 1

    @property
    def num_nodes(self) -> Tensor:
        """``[G]`` node count of each graph."""
        return self.node_ptr[1:] - self.node_ptr[:-1]

    @property
    def num_edges(self) -> Tensor:
        """``[G]`` undirected edge count of each graph."""
        return self.edge_ptr[1:] - self.edge_ptr[:-1]

    def graph(self, i: int) -> tuple[Tensor, Tensor, Tensor]:
        """``(node_types [n], edge_index [2, m] with i<j, edge_types [m])`` of graph ``i`` (long)."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"graph index {i} out of range for {len(self)} graphs")
        i = i % len(self)
        a, b = int(self.node_ptr[i]), int(self.node_ptr[i + 1])
        c, d = int(self.edge_ptr[i]), int(self.edge_ptr[i + 1])
        return self.node_types[a:b].long(), self.edge_index[:, c:d].long(), self.edge_types[c:d].long()

    def __iter__(self):
        for i in range(len(self)):
            yield self.graph(i)

    def subset(self, indices: Tensor | Sequence[int]) -> GraphList:
        """A new :class:`GraphList` with the graphs at ``indices``, in that order."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        nodes = _gather_ranges(self.node_ptr, idx)
        edges = _gather_ranges(self.edge_ptr, idx)
        return GraphList(
            node_types=self.node_types[nodes],
            node_ptr=_ptr(self.num_nodes[idx].tolist()),
            edge_index=self.edge_index[:, edges],
            edge_types=self.edge_types[edges],
            edge_ptr=_ptr(self.num_edges[idx].tolist()),
        )

    def to_dense(self, indices: Tensor | Sequence[int], num_node_types: int, num_edge_types: int) -> DenseGraph:
        """Collate graphs into a one-hot :class:`DenseGraph` padded to their largest size.

        Vectorised over all nodes and edges of the batch (no Python loop over graphs).

        Args:
            indices: ``[B]`` graph indices.
            num_node_types: ``dx``.
            num_edge_types: ``de`` (including class 0 = no edge).
        """
        idx = torch.as_tensor(indices, dtype=torch.long)
        B = idx.numel()
        counts = self.num_nodes[idx]
        n = int(counts.max()) if B else 0
        node_mask = torch.arange(n).unsqueeze(0) < counts.unsqueeze(1)

        node_pos = _gather_ranges(self.node_ptr, idx)
        node_cls = torch.zeros(B, n, dtype=torch.long)
        node_cls[node_mask] = self.node_types[node_pos].long()

        edge_pos = _gather_ranges(self.edge_ptr, idx)
        edge_batch = torch.repeat_interleave(torch.arange(B), self.num_edges[idx])
        ei = self.edge_index[:, edge_pos].long()
        et = self.edge_types[edge_pos].long()
        edge_cls = torch.zeros(B, n, n, dtype=torch.long)
        edge_cls[edge_batch, ei[0], ei[1]] = et
        edge_cls[edge_batch, ei[1], ei[0]] = et

        X = torch.nn.functional.one_hot(node_cls, num_node_types).float()
        E = torch.nn.functional.one_hot(edge_cls, num_edge_types).float()
        return DenseGraph(X, E, torch.zeros(B, 0), node_mask).mask()

    # ---------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, Tensor]:
        return {k: getattr(self, k) for k in ("node_types", "node_ptr", "edge_index", "edge_types", "edge_ptr")}

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor]) -> GraphList:
        return cls(**state)


def _cat(parts: list[Tensor], dtype: torch.dtype) -> Tensor:
    if not parts:
        return torch.zeros(0, dtype=dtype)
    flat = torch.cat(parts)
    if flat.numel() and int(flat.max()) > torch.iinfo(dtype).max:
        raise ValueError(f"type index {int(flat.max())} does not fit in {dtype}")
    return flat.to(dtype)


def _ptr(counts: Sequence[int]) -> Tensor:
    ptr = torch.zeros(len(counts) + 1, dtype=torch.long)
    if len(counts):
        ptr[1:] = torch.cumsum(torch.as_tensor(counts, dtype=torch.long), 0)
    return ptr


def _gather_ranges(ptr: Tensor, idx: Tensor) -> Tensor:
    """Flat positions ``[ptr[i], ptr[i+1])`` for each ``i`` in ``idx``, concatenated."""
    starts, lengths = ptr[idx], ptr[idx + 1] - ptr[idx]
    total = int(lengths.sum())
    offsets = torch.repeat_interleave(starts - (torch.cumsum(lengths, 0) - lengths), lengths)
    return torch.arange(total) + offsets
