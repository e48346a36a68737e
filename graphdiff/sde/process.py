"""The GDSS score-SDE process on graphs: (X, A) encoding, joint loss, prior, sampling and quantisation.

GDSS (Jo et al., 2022) diffuses a graph as a pair of continuous tensors

* ``x [B, n, F]``: node features, ``0`` on padded nodes;
* ``adj [B, n, n]``: a weighted, symmetric adjacency with an empty diagonal, ``0`` on padding;
* ``flags [B, n]``: the node mask (fixed during sampling: the number of nodes is drawn beforehand).

:class:`GraphEncoding` maps graphdiff's one-hot :class:`~graphdiff.types.DenseGraph` to that triple and back
(quantisation), and :class:`ScoreSDEProcess` bundles the two SDEs with the graph-shaped noise
(:func:`~graphdiff.sde.sdes.node_noise`, :func:`~graphdiff.sde.sdes.symmetric_noise`), the loss and the samplers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from graphdiff.chem import BOND_ORDERS
from graphdiff.conditioning import WithCondition
from graphdiff.errors import ConfigError
from graphdiff.generation import GraphSampler, run_sampler
from graphdiff.sde.losses import GraphNetwork, GraphScoreMatchingLoss, call_network, output_to_score
from graphdiff.sde.samplers import JointScoreFn, NoiseFn, SamplerSettings, SystemSampler, discretise
from graphdiff.sde.sdes import SDE, node_noise, symmetric_noise
from graphdiff.types import DenseGraph, mask_adj, mask_nodes, symmetrize_upper

__all__ = [
    "GraphEncoding",
    "ScoreSDEProcess",
    "default_edge_values",
    "mask_adj",
    "mask_nodes",
    "node_noise",
    "symmetric_noise",
]

NODE_FEATURES = ("types", "degree", "ones")

Correction = Callable[[DenseGraph], DenseGraph]


def default_edge_values(edge_types: Sequence[str]) -> tuple[float, ...]:
    """Adjacency value of each edge class ``1..de-1`` from the dataset's edge-type names.

    Two classes (``["none", <edge>]``) give ``(1.0,)``: a binary adjacency. Otherwise every name must be a bond
    (:data:`graphdiff.chem.BOND_ORDERS`, case-insensitive), e.g.
    ``["none", "single", "double", "triple"] -> (1.0, 2.0, 3.0)``.
    """
    if len(edge_types) < 2:
        raise ConfigError(f"need at least two edge types (no edge + one), got {list(edge_types)}")
    if len(edge_types) == 2:
        return (1.0,)
    # GDSS diffuses kekulized molecules with A_ij in {0, 1, 2, 3}: the bond orders (graphdiff.chem.BOND_ORDERS).
    values = []
    for name in edge_types[1:]:
        key = str(name).strip().lower()
        if key not in BOND_ORDERS or BOND_ORDERS[key] == 0:
            raise ConfigError(f"edge type {name!r} has no bond order; pass edge_values explicitly")
        values.append(BOND_ORDERS[key])
    return tuple(values)


@dataclass
class GraphEncoding:
    """How a one-hot :class:`DenseGraph` becomes GDSS's continuous ``(x, adj, flags)``, and back.

    Attributes:
        node_features: what ``x`` holds.

            * ``"types"``: the node-type one-hots ``X`` (GDSS's ``init: atom`` for molecules); decoded by argmax.
            * ``"degree"``: a one-hot of each node's degree with ``max_feat_num`` slots (GDSS's ``init: deg``
              for community_small, ego_small, grid, enzymes); only for unlabelled graphs (one node type), the
              sampled ``x`` is discarded.
            * ``"ones"``: a constant ``max_feat_num``-vector (GDSS's ``init: ones``); unlabelled graphs only.
        max_feat_num: width ``F`` of ``x`` for ``"degree"``/``"ones"`` (GDSS's ``data.max_feat_num``).
        edge_values: adjacency value of edge classes ``1..de-1`` (class 0 is 0). ``(1.0,)`` for plain graphs;
            ``(1.0, 2.0, 3.0)`` for kekulized molecules, as GDSS (bond order, not divided by 3). Decoding
            maps each entry to the class of the nearest value, i.e. GDSS's thresholds 0.5 / 1.5 / 2.5.
    """

    node_features: str = "types"
    max_feat_num: int | None = None
    edge_values: tuple[float, ...] = field(default=(1.0,))

    def __post_init__(self) -> None:
        if self.node_features not in NODE_FEATURES:
            raise ConfigError(f"node_features must be one of {NODE_FEATURES}, got {self.node_features!r}")
        if self.node_features != "types" and (self.max_feat_num is None or self.max_feat_num < 1):
            raise ConfigError(f"node_features={self.node_features!r} needs max_feat_num >= 1")
        self.edge_values = tuple(float(v) for v in self.edge_values)
        if not self.edge_values or any(v == 0 for v in self.edge_values):
            raise ConfigError(f"edge_values must be non-empty and non-zero (0 means no edge), got {self.edge_values}")
        if len(set(self.edge_values)) != len(self.edge_values):
            raise ConfigError(f"edge_values must be distinct, got {self.edge_values}")

    @classmethod
    def for_dataset(cls, kind: str, node_types: Sequence[str], edge_types: Sequence[str],
                    max_feat_num: int | None = None, node_features: str | None = None) -> GraphEncoding:
        """GDSS's choice for a dataset: atom types for molecules or labelled graphs, degree one-hots otherwise.

        Args:
            kind: ``"molecule"`` or ``"graph"`` (``DatasetInfo.kind``).
            node_types: ``DatasetInfo.node_types``.
            edge_types: ``DatasetInfo.edge_types``.
            max_feat_num: width of degree features (GDSS config ``data.max_feat_num``); required for unlabelled
                graphs unless ``node_features="types"``.
            node_features: override the choice.
        """
        if node_features is None:
            node_features = "types" if kind == "molecule" or len(node_types) > 1 else "degree"
        return cls(node_features, max_feat_num, default_edge_values(edge_types))

    def num_features(self, num_node_types: int) -> int:
        """Width ``F`` of ``x``."""
        return num_node_types if self.node_features == "types" else int(self.max_feat_num)

    # ---- DenseGraph -> (x, adj, flags) ----------------------------------------------------------------
    def encode(self, graph: DenseGraph) -> tuple[Tensor, Tensor, Tensor]:
        """Continuous tensors of a one-hot graph batch.

        Args:
            graph: ``X [B, n, dx]``, ``E [B, n, n, de]`` with ``de == len(edge_values) + 1``.

        Returns:
            ``x [B, n, F]``, ``adj [B, n, n]`` (symmetric, zero diagonal), ``flags [B, n]`` float 0/1.
        """
        de = graph.E.shape[-1]
        if de != len(self.edge_values) + 1:
            raise ConfigError(f"graph has {de} edge classes but edge_values gives {len(self.edge_values) + 1}")
        graph = graph.mask()
        flags = graph.node_mask.to(graph.E.dtype)
        values = torch.tensor((0.0, *self.edge_values), dtype=graph.E.dtype, device=graph.E.device)
        adj = mask_adj((graph.E * values).sum(-1), flags)
        if self.node_features == "types":
            x = graph.X.to(adj.dtype)
        elif self.node_features == "degree":
            degree = (graph.E[..., 1:].sum(-1) > 0).sum(-1)
            if int(degree.max()) >= self.max_feat_num:
                raise ConfigError(
                    f"max_feat_num={self.max_feat_num} is too small for node degree {int(degree.max())}; "
                    f"use max_feat_num >= {int(degree.max()) + 1}"
                )
            x = torch.nn.functional.one_hot(degree, self.max_feat_num).to(adj.dtype)
        else:
            x = torch.ones(*flags.shape, self.max_feat_num, dtype=adj.dtype, device=adj.device)
        return mask_nodes(x, flags), adj, flags

    # ---- (x, adj, flags) -> DenseGraph -----------------------------------------------------------------
    def quantize_adj(self, adj: Tensor, flags: Tensor) -> Tensor:
        """``[B, n, n]`` long edge classes: the class of the nearest edge value (0 on padding and diagonal).

        For binary graphs this is GDSS's ``quantize`` (threshold 0.5); for bond orders, ``quantize_mol``.
        """
        values = torch.tensor((0.0, *self.edge_values), dtype=adj.dtype, device=adj.device)
        classes = (adj.unsqueeze(-1) - values).abs().argmin(-1)
        classes = symmetrize_upper(classes)  # one decision per unordered pair
        pair = flags.bool().unsqueeze(-1) & flags.bool().unsqueeze(-2)
        return classes * pair

    def decode(self, x: Tensor, adj: Tensor, flags: Tensor, num_node_types: int,
               drop_isolated: bool = False, node_threshold: float | None = None) -> DenseGraph:
        """Quantise continuous samples into a one-hot :class:`DenseGraph`.

        Args:
            x: ``[B, n, F]`` sampled node features.
            adj: ``[B, n, n]`` sampled adjacency.
            flags: ``[B, n]`` node mask.
            num_node_types: ``dx`` of the output.
            drop_isolated: remove nodes without edges, as GDSS's ``adjs_to_graphs`` does for generic graphs
                (a graph keeps at least one node); real nodes are moved to the front.
            node_threshold: with ``node_features="types"``, GDSS's molecule decoding: a node's type is the first
                feature above the threshold, and a node with none is dropped with its edges (GDSS's sampler,
                threshold 0.5; the other nodes keep their order). ``None``: the argmax of every node.

        Returns:
            One-hot graph with ``E`` of ``len(edge_values) + 1`` classes and an empty ``y``.
        """
        node_mask = flags.bool()
        edges = self.quantize_adj(adj, flags)
        if self.node_features == "types":
            if x.shape[-1] != num_node_types:
                raise ConfigError(f"x has {x.shape[-1]} features but the dataset has {num_node_types} node types")
            if node_threshold is None:
                nodes = x.argmax(-1)
            else:
                above = x > node_threshold
                nodes = above.to(torch.int8).argmax(-1)  # the first feature above the threshold
                node_mask = node_mask & above.any(-1)
                edges = edges * (node_mask.unsqueeze(-1) & node_mask.unsqueeze(-2))
        else:
            if num_node_types != 1:
                raise ConfigError(
                    f"node_features={self.node_features!r} cannot generate {num_node_types} node types; "
                    "use node_features='types'"
                )
            nodes = torch.zeros(node_mask.shape, dtype=torch.long, device=x.device)
        if drop_isolated:
            nodes, edges, node_mask = _drop_isolated(nodes, edges, node_mask)
        E = torch.nn.functional.one_hot(edges, len(self.edge_values) + 1).to(adj.dtype)
        X = torch.nn.functional.one_hot(nodes, num_node_types).to(adj.dtype)
        y = torch.zeros(x.shape[0], 0, dtype=adj.dtype, device=adj.device)
        return DenseGraph(X, E, y, node_mask).mask()


def _drop_isolated(nodes: Tensor, edges: Tensor, node_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    keep = node_mask & (edges > 0).any(-1)
    # GDSS turns an empty graph into a single node.
    first = node_mask.long().argmax(-1)
    empty = ~keep.any(-1) & node_mask.any(-1)
    keep[empty, first[empty]] = True
    order = torch.argsort((~keep).to(torch.int8), dim=-1, stable=True)
    nodes = nodes.gather(1, order)
    edges = edges.gather(1, order.unsqueeze(-1).expand_as(edges)).gather(2, order.unsqueeze(1).expand_as(edges))
    keep = keep.gather(1, order)
    return nodes, edges, keep


class ScoreSDEProcess:
    """Two forward SDEs (node features, adjacency) and everything graph-shaped around them (GDSS).

    Args:
        sde_x: SDE of the node features ``x``.
        sde_adj: SDE of the adjacency ``adj``.
        encoding: :class:`GraphEncoding` between :class:`DenseGraph` and ``(x, adj, flags)``.
        reduce_mean: loss reduction (GDSS ``train.reduce_mean``; ``False`` = ``0.5 * sum``).
        eps: smallest training time (GDSS ``train.eps``).
        likelihood_weighting: ``g(t)^2`` loss weighting instead of GDSS's ``std(t)^2``.
    """

    def __init__(self, sde_x: SDE, sde_adj: SDE, encoding: GraphEncoding | None = None, reduce_mean: bool = False,
                 eps: float = 1e-5, likelihood_weighting: bool = False) -> None:
        self.sde_x = sde_x
        self.sde_adj = sde_adj
        self.encoding = encoding if encoding is not None else GraphEncoding()
        self.loss_fn = GraphScoreMatchingLoss(sde_x, sde_adj, reduce_mean, eps, likelihood_weighting)

    @property
    def sdes(self) -> tuple[SDE, SDE]:
        return self.sde_x, self.sde_adj

    def loss(self, network: GraphNetwork, graph: DenseGraph,
             generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``(loss_x, loss_adj)`` of a batch; ``network(x, adj, flags) -> (out_x, out_adj)``."""
        return self.loss_fn(network, *self.encoding.encode(graph), generator=generator)

    def score_fn(self, network: GraphNetwork, flags: Tensor) -> JointScoreFn:
        """Joint score ``((x, adj), t) -> (score_x, score_adj)`` of a network for fixed node flags."""

        def score(states: Sequence[Tensor], t: Tensor) -> list[Tensor]:
            x, adj = states
            out_x, out_adj = call_network(network, x, adj, flags, t)
            return [
                mask_nodes(output_to_score(self.sde_x, out_x, t), flags),
                mask_adj(output_to_score(self.sde_adj, out_adj, t), flags),
            ]

        return score

    @staticmethod
    def noise_fn(flags: Tensor, generator: torch.Generator | None = None) -> NoiseFn:
        """Structured noise: masked i.i.d. for ``x`` (state 0), masked symmetric for ``adj`` (state 1)."""

        def noise(i: int, like: Tensor) -> Tensor:
            return node_noise(like, flags, generator) if i == 0 else symmetric_noise(like, flags, generator)

        return noise

    def prior_sampling(self, flags: Tensor, num_features: int,
                       generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``x [B, n, F]`` and symmetric ``adj [B, n, n]`` from the priors, zero on padding and diagonal."""
        B, n = flags.shape
        shape_x = (B, n, num_features)
        x = node_noise(torch.empty(shape_x, device=flags.device), flags, generator) * self.sde_x.prior_std
        adj = symmetric_noise(torch.empty(B, n, n, device=flags.device), flags, generator) * self.sde_adj.prior_std
        return x, adj

    def sampler(self, network: GraphNetwork, num_node_types: int, settings: SamplerSettings | None = None,
                drop_isolated: bool = False, correction: Correction | None = None,
                node_threshold: float | None = None) -> ScoreSDEGraphSampler:
        """The reverse system with ``network`` bound, as a :class:`~graphdiff.generation.GraphSampler`.

        Args:
            network: ``(DenseGraph, t) -> DenseGraph`` (see :func:`~graphdiff.sde.losses.call_network`).
            num_node_types: ``dx`` of the output graphs.
            settings: sampler (default: GDSS's QM9 sampler, reverse diffusion + Langevin, snr 0.2, scale 0.7).
            drop_isolated: see :meth:`GraphEncoding.decode`.
            correction: optional post-quantisation step of the final samples, e.g. a valency correction for
                molecules; results with and without it are reported separately (GDSS reports validity without).
            node_threshold: see :meth:`GraphEncoding.decode` (GDSS's molecule decoding: 0.5).
        """
        return ScoreSDEGraphSampler(self, network, num_node_types, settings or SamplerSettings(), drop_isolated,
                                    correction, node_threshold)

    def sample(self, network: GraphNetwork, node_mask: Tensor, num_node_types: int,
               settings: SamplerSettings | None = None, generator: torch.Generator | None = None,
               drop_isolated: bool = False, correction: Correction | None = None) -> DenseGraph:
        """Sample one batch and quantise it (adjacency to the nearest edge value, ``x`` by argmax).

        Args:
            node_mask: ``[B, n]`` bool, the node count of each sample (drawn by the caller).
            generator: RNG for the prior and every noise draw (put it on ``node_mask.device``).
            network, num_node_types, settings, drop_isolated, correction: as :meth:`sampler`.

        Returns:
            One-hot :class:`DenseGraph` batch.
        """
        sampler = self.sampler(network, num_node_types, settings, drop_isolated, correction)
        return run_sampler(sampler, node_mask, generator)[0]


class ScoreSDEGraphSampler(GraphSampler):
    """The reverse SDE system of a :class:`ScoreSDEProcess` as a :class:`~graphdiff.generation.GraphSampler`: the
    state is ``(states, means, flags)`` with ``states = [x, adj]``; decoding quantises (the means after the last
    step with ``noise_removal``, as GDSS)."""

    def __init__(self, process: ScoreSDEProcess, network: GraphNetwork, num_node_types: int,
                 settings: SamplerSettings, drop_isolated: bool, correction: Correction | None,
                 node_threshold: float | None = None) -> None:
        self.process = process
        self.network = network
        self.num_node_types = num_node_types
        self.settings = settings
        self.drop_isolated = drop_isolated
        self.correction = correction
        self.node_threshold = node_threshold
        self._steps = discretise(process.sdes, settings.num_steps)[-1].N
        self._times: Tensor | None = None

    @property
    def num_steps(self) -> int:
        return self._steps

    def prior(self, node_mask: Tensor, generator: torch.Generator | None = None,
              condition: Tensor | None = None) -> tuple:
        flags = node_mask.float()
        x, adj = self.process.prior_sampling(flags, self.process.encoding.num_features(self.num_node_types),
                                             generator)
        network = self.network if condition is None else WithCondition(self.network, condition)
        system = SystemSampler(self.settings, self.process.sdes, self.process.score_fn(network, flags),
                               self.process.noise_fn(flags, generator))
        self._times = system.times(x)
        return system, [x, adj], [x, adj], flags

    def step(self, state: tuple, k: int, generator: torch.Generator | None = None) -> tuple:
        system, states, _, flags = state
        states, means = system.step(states, self._times[k])
        return system, states, means, flags

    def decode(self, state: tuple, final: bool = False) -> DenseGraph:
        _, states, means, flags = state
        x, adj = means if final and self.settings.noise_removal else states
        graph = self.process.encoding.decode(mask_nodes(x, flags), mask_adj(adj, flags), flags, self.num_node_types,
                                             drop_isolated=self.drop_isolated, node_threshold=self.node_threshold)
        return self.correction(graph) if final and self.correction is not None else graph

    def label(self, k: int) -> str:
        if self._times is None or k >= len(self._times):
            return "t = 0"
        return f"t = {float(self._times[k]):.2f}"
