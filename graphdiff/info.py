"""Dataset statistics that models are built from, computed once and cached with the processed data."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from graphdiff.conditioning import Conditioning
from graphdiff.storage import GraphList

Kind = Literal["graph", "molecule"]


@dataclass
class DatasetInfo:
    """What a model and a sampler need to know about a dataset.

    Attributes:
        name: registry name (or file stem for custom data).
        kind: ``"graph"`` or ``"molecule"``.
        node_types: names of the ``dx`` node classes (atom symbols with charge for molecules,
            e.g. ``"N+"``; ``["node"]`` for unlabelled graphs).
        edge_types: names of the ``de`` edge classes; index 0 is ``"none"`` (no edge).
        max_nodes: largest graph in any split.
        split_sizes: number of graphs per split.
        node_counts: ``node_counts[k]`` = number of training graphs with ``k`` nodes
            (length ``max_nodes + 1``); of the splits ``data.node_counts_from`` names when it is set.
        node_marginals: ``[dx]`` frequency of each node class over training nodes.
        edge_marginals: ``[de]`` frequency of each edge class over ordered pairs of distinct nodes
            of the same training graph (so class 0 counts absent edges), as DiGress.
        valencies: per node class, the maximal valence (molecules only).
        atom_weights: per node class, the atomic mass (molecules only).
        options: settings the data was processed with (kekulize, explicit hydrogens, ...).
        source: ``{"file": ..., "sha256": ...}`` or the generator and its settings.
        skipped: counts of rows dropped while processing, with reasons and first line numbers.
        conditions: the graph-level properties a model is conditioned on, with their training statistics
            (:meth:`graphdiff.conditioning.Conditioning.to_list`); empty for unconditional data.
    """

    name: str
    kind: Kind
    node_types: list[str]
    edge_types: list[str]
    max_nodes: int
    split_sizes: dict[str, int]
    node_counts: list[int]
    node_marginals: list[float]
    edge_marginals: list[float]
    valencies: list[int] | None = None
    atom_weights: list[float] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, Any] = field(default_factory=dict)
    conditions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def num_node_types(self) -> int:
        return len(self.node_types)

    @property
    def num_edge_types(self) -> int:
        return len(self.edge_types)

    @property
    def conditioning(self) -> Conditioning:
        """The :class:`~graphdiff.conditioning.Conditioning` of :attr:`conditions` (no properties: unconditional)."""
        return Conditioning.from_list(self.conditions)

    def node_count_distribution(self) -> Tensor:
        """``[max_nodes + 1]`` probabilities of each node count (:attr:`node_counts` normalised)."""
        counts = torch.tensor(self.node_counts, dtype=torch.float)
        return counts / counts.sum()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetInfo:
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def compute_statistics(graphs: GraphList, num_node_types: int, num_edge_types: int) -> dict[str, Any]:
    """Node-count histogram and node/edge marginals of ``graphs`` (vectorised).

    Returns:
        ``{"node_counts": [...], "node_marginals": [...], "edge_marginals": [...]}``.
    """
    n = graphs.num_nodes
    node_counts = torch.bincount(n, minlength=int(n.max()) + 1 if n.numel() else 1)
    node_hist = torch.bincount(graphs.node_types.long(), minlength=num_node_types).double()
    edge_hist = torch.bincount(graphs.edge_types.long(), minlength=num_edge_types).double()
    # Ordered pairs of distinct nodes: each stored (undirected) edge is two of them.
    pairs = float((n * (n - 1)).sum())
    edge_hist = 2.0 * edge_hist
    edge_hist[0] = pairs - edge_hist[1:].sum()
    return {
        "node_counts": node_counts.tolist(),
        "node_marginals": (node_hist / node_hist.sum().clamp(min=1)).tolist(),
        "edge_marginals": (edge_hist / max(pairs, 1.0)).tolist(),
    }
