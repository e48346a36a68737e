"""Valency correction of sampled molecules (GDSS's ``correct_mol``), on graphdiff's dense class tensors.

GDSS repairs a generated molecule by repeating, while some atom exceeds its allowed valence: take the first such
atom, and lower the order of its highest-order bond by one (a single bond is removed). graphdiff does the same on
the quantised :class:`~graphdiff.types.DenseGraph` with the dataset's valence table (``DatasetInfo.valencies``, the
largest valence of each node class, charge included) instead of RDKit's sanitisation message, so it needs no
RDKit and runs on any batch. Ties between bonds of the same order go to the neighbour of lowest index.

The correction changes the samples: report metrics with and without it separately (GDSS's validity numbers are
*without* correction). It is off by default in :class:`~graphdiff.lit.ScoreSDEModel`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from graphdiff.errors import ConfigError
from graphdiff.types import DenseGraph


def correct_valency_classes(nodes: Tensor, edges: Tensor, node_mask: Tensor, valencies: Sequence[float],
                            bond_orders: Sequence[float]) -> Tensor:
    """Edge classes after GDSS's valency correction.

    Args:
        nodes: ``[B, n]`` node classes.
        edges: ``[B, n, n]`` symmetric edge classes (0 = no bond).
        node_mask: ``[B, n]`` bool.
        valencies: allowed valence of each node class.
        bond_orders: bond order of each edge class, ``bond_orders[0] == 0``; class ``c`` lowered by one order
            becomes the class whose order is one less (or 0).

    Returns:
        ``[B, n, n]`` corrected edge classes (a new tensor).
    """
    orders = torch.tensor([float(o) for o in bond_orders], dtype=torch.float64)
    if orders[0] != 0:
        raise ConfigError(f"bond_orders[0] must be 0 (no bond), got {bond_orders}")
    lower = []  # class after lowering each class by one order
    for o in orders.tolist():
        target = max(o - 1.0, 0.0)
        lower.append(int((orders - target).abs().argmin()))
    max_val = torch.tensor([float(v) for v in valencies], dtype=torch.float64)
    edges = edges.clone().cpu()
    nodes = nodes.cpu()
    node_mask = node_mask.cpu()
    for b in range(edges.shape[0]):
        E = edges[b]
        allowed = max_val[nodes[b].clamp(min=0)]
        while True:
            valence = orders[E].sum(-1)
            bad = ((valence > allowed + 1e-6) & node_mask[b]).nonzero().flatten()
            if bad.numel() == 0:
                break
            i = int(bad[0])
            j = int(orders[E[i]].argmax())  # first neighbour with the highest bond order
            E[i, j] = E[j, i] = lower[int(E[i, j])]
    return edges


def correct_valency(graph: DenseGraph, valencies: Sequence[float], bond_orders: Sequence[float]) -> DenseGraph:
    """A one-hot :class:`DenseGraph` batch of molecules after GDSS's valency correction (see the module doc)."""
    de = graph.E.shape[-1]
    if len(bond_orders) != de:
        raise ConfigError(f"need one bond order per edge class ({de}), got {list(bond_orders)}")
    nodes, edges = graph.X.argmax(-1), graph.E.argmax(-1)
    fixed = correct_valency_classes(nodes, edges, graph.node_mask, valencies, bond_orders).to(graph.E.device)
    E = torch.nn.functional.one_hot(fixed, de).to(graph.E.dtype)
    return DenseGraph(graph.X, E, graph.y, graph.node_mask).mask()
