"""PARD's structural partial order of a graph's nodes, and the block layouts its training and sampling use.

PARD (Zhao, Ding and Akoglu, NeurIPS 2024) peels a graph: the nodes of smallest *higher-order degree* are removed
together as one block, then the next smallest of what remains, until no node is left; generation runs the peeling
backwards (the last block peeled is generated first). The order of blocks depends only on the graph's structure,
so it is the same for every numbering of its nodes (the blocks are permuted with the nodes).

Higher-order degree with ``h = max_hops`` hops, in the graph left at that point (``A`` its adjacency, ``N`` the
node count of the whole graph, ``x_0 = 1``):

.. code-block:: text

    x_k = (I + A) x_{k-1}                 (so x_1 = 1 + degree)
    w   = sum_{k=1..h} x_k N^(h-k)        (h = 0: w = 1, one block: plain diffusion)

the weighting of PARD's ``compute_higher_order_degrees`` (``pard/parallel/transform.py``). A block's *degree* is the
degree of its nodes in the graph left when it was peeled, i.e. in the graph of blocks ``0..k``.

Layouts (:class:`~graphdiff.types.BlockLayout`):

* :func:`parallel_layout` — PARD's parallel training: the graph of ``n`` nodes padded to ``2n``, a clean copy of
  every node and a *target* copy; with the causal mask of :meth:`~graphdiff.types.BlockLayout.causal_mask` every
  block's conditional is trained in one pass of a causal network.
* :func:`sequential_layout` — PARD's batched sequential training: one graph per (graph, block) pair, the blocks
  before it clean and the block itself as target; any network (extra features included) may be used.

Everything is batched over the padded ``[B, n, ...]`` tensors; the peeling loop runs once per block of the
largest block count in the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from graphdiff.types import BlockLayout, DenseGraph


@dataclass
class BlockOrder:
    """The partial order of a batch of graphs.

    Attributes:
        block: ``[B, n]`` long block of each node (0 = generated first), ``-1`` on padding.
        degree: ``[B, K]`` long degree of each block (``K`` = the batch's largest block count; 0 past the last).
        size: ``[B, K]`` long nodes per block (0 past the last block).
    """

    block: Tensor
    degree: Tensor
    size: Tensor

    @property
    def num_blocks(self) -> Tensor:
        """``[B]`` blocks per graph."""
        return (self.size > 0).sum(-1)

    def layout(self) -> BlockLayout:
        """The graph itself as a layout: every node clean (no target)."""
        return BlockLayout(self.block, torch.zeros_like(self.block, dtype=torch.bool), self.degree, self.size)


def higher_order_degrees(adj: Tensor, num_nodes: Tensor, max_hops: int) -> Tensor:
    """PARD's higher-order degree ``w`` of every node (see the module docstring).

    Args:
        adj: ``[B, n, n]`` 0/1 adjacency of the graph left (no self-loops).
        num_nodes: ``[B]`` node count ``N`` of the whole graph (the weighting base).
        max_hops: ``h >= 0``.

    Returns:
        ``[B, n]`` float64 (exact integers for ``N^h`` below ``2^53``).
    """
    B, n = adj.shape[:2]
    x = torch.ones(B, n, 1, dtype=torch.float64, device=adj.device)
    if max_hops == 0:
        return x[..., 0]
    A = adj.to(torch.float64)
    base = num_nodes.to(torch.float64).view(B, 1)
    weighted = torch.zeros(B, n, dtype=torch.float64, device=adj.device)
    for _ in range(max_hops):
        x = x + torch.bmm(A, x)
        weighted = weighted * base + x[..., 0]
    return weighted


def partial_order(graph: DenseGraph, max_hops: int = 3) -> BlockOrder:
    """PARD's block decomposition of every graph of ``graph`` (edges: any class but 0).

    Args:
        graph: one-hot batch.
        max_hops: hops of the higher-order degree (PARD's ``diffusion.max_hops``; 0: one block).

    Returns:
        The :class:`BlockOrder`; blocks are numbered in generation order.
    """
    if max_hops < 0:
        raise ValueError(f"max_hops must be >= 0, got {max_hops}")
    mask = graph.node_mask
    B, n = mask.shape
    device = mask.device
    pair = mask.unsqueeze(1) & mask.unsqueeze(2)
    adj = (graph.E.argmax(-1) > 0) & pair & (graph.E.sum(-1) > 0)
    adj = adj & ~torch.eye(n, dtype=torch.bool, device=device)
    num_nodes = mask.sum(-1)
    alive = mask.clone()
    peel = torch.full((B, n), -1, dtype=torch.long, device=device)
    degrees: list[Tensor] = []
    sizes: list[Tensor] = []
    big = torch.finfo(torch.float64).max
    step = 0
    while bool(alive.any()):
        degree = adj.sum(-1)
        weight = higher_order_degrees(adj, num_nodes, max_hops).masked_fill(~alive, big)
        chosen = alive & (weight == weight.min(-1, keepdim=True).values)
        peel = peel.masked_fill(chosen, step)
        # Nodes of a block share their degree (the first hop dominates the weighting); the minimum keeps the
        # block's degree independent of the numbering in the unlikely case they do not.
        limit = torch.iinfo(torch.long).max
        block_degree = degree.masked_fill(~chosen, limit).min(-1).values
        size = chosen.sum(-1)
        degrees.append(torch.where(size > 0, block_degree, 0))
        sizes.append(size)
        alive = alive & ~chosen
        adj = adj & ~chosen.unsqueeze(1) & ~chosen.unsqueeze(2)
        step += 1
    K = step
    if K == 0:
        empty = torch.zeros(B, 0, dtype=torch.long, device=device)
        return BlockOrder(peel, empty, empty)
    peeled_degree = torch.stack(degrees, 1)  # [B, K] in peeling order
    peeled_size = torch.stack(sizes, 1)
    num_blocks = (peeled_size > 0).sum(-1)  # [B]
    block = torch.where(peel >= 0, num_blocks.unsqueeze(1) - 1 - peel, -1)
    # Reverse each graph's peeling order: block k is peeling step num_blocks - 1 - k.
    k = torch.arange(K, device=device).unsqueeze(0)
    source = (num_blocks.unsqueeze(1) - 1 - k).clamp(min=0)
    inside = k < num_blocks.unsqueeze(1)
    degree = torch.where(inside, peeled_degree.gather(1, source), 0)
    size = torch.where(inside, peeled_size.gather(1, source), 0)
    return BlockOrder(block, degree, size)


def parallel_layout(graph: DenseGraph, order: BlockOrder) -> tuple[DenseGraph, BlockLayout]:
    """PARD's parallel training input: ``graph`` padded from ``n`` to ``2n`` nodes.

    Nodes ``0..n-1`` are the clean graph; node ``n + i`` is the target copy of node ``i``, with its block. A
    target copy holds its node's class; its pairs to the target copies of its block and to the clean nodes of
    earlier blocks hold the graph's edge classes (these are what the block's diffusion noises and predicts); every
    other pair of a target copy is empty.

    Returns:
        ``(graph [B, 2n, ...], layout)``; ``layout.target_pairs()`` marks the generated pairs.
    """
    n = graph.max_nodes
    mask = graph.node_mask
    block = torch.cat([order.block, order.block], 1)
    target = torch.zeros_like(block, dtype=torch.bool)
    target[:, n:] = mask
    layout = BlockLayout(block, target, order.degree, order.size)
    X = torch.cat([graph.X, graph.X], 1)
    E = graph.E.repeat(1, 2, 2, 1)
    keep = ~target.unsqueeze(1) & ~target.unsqueeze(2) | layout.target_pairs()
    E = E * keep.unsqueeze(-1).to(E.dtype)
    full_mask = torch.cat([mask, mask], 1)
    return DenseGraph(X, E, graph.y, full_mask).mask(), layout


def sequential_layout(graph: DenseGraph, order: BlockOrder) -> tuple[DenseGraph, BlockLayout, Tensor]:
    """PARD's batched sequential training input: for every graph and block ``k``, the graph of blocks ``0..k``
    with block ``k`` as target.

    Returns:
        ``(graph [sum of block counts, n, ...], layout, source [sum of block counts])`` with ``source`` the index
        in ``graph`` of each row's graph.
    """
    num_blocks = order.num_blocks
    source = torch.repeat_interleave(torch.arange(graph.batch_size, device=num_blocks.device), num_blocks)
    first = torch.cumsum(num_blocks, 0) - num_blocks
    k = torch.arange(len(source), device=num_blocks.device) - first[source]  # the row's target block
    block = order.block[source]
    keep = (block >= 0) & (block <= k.unsqueeze(1))
    block = block.masked_fill(~keep, -1)
    target = keep & (block == k.unsqueeze(1))
    K = order.size.shape[1]
    upto = torch.arange(K, device=k.device).unsqueeze(0) <= k.unsqueeze(1)
    layout = BlockLayout(block, target, order.degree[source] * upto, order.size[source] * upto)
    rows = DenseGraph(graph.X[source], graph.E[source], graph.y[source], keep).mask()
    return rows, layout, source


def reassemble(graph: DenseGraph, layout: BlockLayout, n: int) -> DenseGraph:
    """The graph of ``n`` nodes a parallel layout's *target* parts describe: node ``i`` from target copy
    ``n + i``, each generated pair from the target pair that holds it. The inverse of :func:`parallel_layout`
    over the generated parts (used to check that the blocks cover every node and pair exactly once)."""
    pairs = layout.target_pairs()
    X = graph.X[:, n:]
    inside = graph.E[:, n:, n:] * pairs[:, n:, n:].unsqueeze(-1)
    across = graph.E[:, n:, :n] * pairs[:, n:, :n].unsqueeze(-1)
    E = inside + across + across.transpose(1, 2)
    mask = layout.target[:, n:]
    return DenseGraph(X, E, graph.y, mask).mask()
