"""The dense graph batch that every layer of graphdiff speaks.

A batch of ``B`` graphs padded to ``n`` nodes:

* ``X`` ``[B, n, dx]`` node-type one-hots (or probabilities),
* ``E`` ``[B, n, n, de]`` edge-type one-hots, class 0 = "no edge", symmetric in the two node
  axes, empty diagonal,
* ``y`` ``[B, dy]`` global features (``dy`` may be 0),
* ``node_mask`` ``[B, n]`` bool, ``True`` for real nodes.

Padding rows of ``X`` and padded rows/columns of ``E`` are all-zero after :meth:`DenseGraph.mask`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor


@dataclass
class DenseGraph:
    """A padded batch of graphs with one-hot (or probability) node and edge types.

    Attributes:
        X: ``[B, n, dx]`` node features.
        E: ``[B, n, n, de]`` edge features, class 0 = no edge.
        y: ``[B, dy]`` global features.
        node_mask: ``[B, n]`` bool mask of real nodes.
    """

    X: Tensor
    E: Tensor
    y: Tensor
    node_mask: Tensor

    @property
    def batch_size(self) -> int:
        return self.X.shape[0]

    @property
    def max_nodes(self) -> int:
        return self.X.shape[1]

    @property
    def num_nodes(self) -> Tensor:
        """``[B]`` number of real nodes per graph."""
        return self.node_mask.sum(-1)

    def to(self, device: torch.device | str) -> DenseGraph:
        """Move every tensor to ``device`` (dtypes unchanged)."""
        return DenseGraph(self.X.to(device), self.E.to(device), self.y.to(device), self.node_mask.to(device))

    def replace(self, **changes: Tensor) -> DenseGraph:
        """A copy with some fields replaced."""
        return replace(self, **changes)

    def mask(self) -> DenseGraph:
        """Zero the padding of ``X`` and ``E`` and the diagonal of ``E``.

        Returns:
            A new :class:`DenseGraph`; the input is not modified.
        """
        X, E = mask_features(self.X, self.E, self.node_mask)
        return DenseGraph(X, E, self.y, self.node_mask)

    def argmax(self) -> DenseGraph:
        """Collapse probabilities to one-hot classes (padding and diagonal stay zero)."""
        X = torch.nn.functional.one_hot(self.X.argmax(-1), self.X.shape[-1]).to(self.X.dtype)
        E = torch.nn.functional.one_hot(self.E.argmax(-1), self.E.shape[-1]).to(self.E.dtype)
        return DenseGraph(X, E, self.y, self.node_mask).mask()

    def node_classes(self) -> Tensor:
        """``[B, n]`` long node classes, ``-1`` on padding."""
        return self.X.argmax(-1).masked_fill(~self.node_mask, -1)

    def edge_classes(self) -> Tensor:
        """``[B, n, n]`` long edge classes (0 = no edge), ``-1`` where either end is padding."""
        pair = self.node_mask.unsqueeze(-1) & self.node_mask.unsqueeze(-2)
        return self.E.argmax(-1).masked_fill(~pair, -1)

    def __getitem__(self, index: int | slice | Tensor) -> DenseGraph:
        """Select graphs of the batch (padding width is kept)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return DenseGraph(self.X[index], self.E[index], self.y[index], self.node_mask[index])


def mask_features(X: Tensor, E: Tensor, node_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Zero padded nodes, padded edges and the diagonal.

    Args:
        X: ``[B, n, dx]``.
        E: ``[B, n, n, de]``.
        node_mask: ``[B, n]`` bool.

    Returns:
        ``(X, E)`` with the same shapes.
    """
    n = X.shape[1]
    x_mask = node_mask.unsqueeze(-1).to(X.dtype)
    pair = node_mask.unsqueeze(1) & node_mask.unsqueeze(2)
    pair = pair & ~torch.eye(n, dtype=torch.bool, device=X.device)
    return X * x_mask, E * pair.unsqueeze(-1).to(E.dtype)


def symmetrize_upper(E: Tensor) -> Tensor:
    """Copy the strict upper triangle of ``E`` onto the lower one and clear the diagonal.

    Used after sampling edge classes independently per ordered pair, so each undirected edge is
    drawn exactly once.

    Args:
        E: ``[B, n, n, ...]``.

    Returns:
        Symmetric ``E`` of the same shape with a zero diagonal.
    """
    n = E.shape[1]
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=E.device), diagonal=1)
    shape = (1, n, n) + (1,) * (E.dim() - 3)
    upper = upper.view(shape)
    E_up = torch.where(upper, E, torch.zeros((), dtype=E.dtype, device=E.device))
    return E_up + E_up.transpose(1, 2)


def one_hot_graph(
    node_classes: Tensor, edge_classes: Tensor, node_mask: Tensor, dx: int, de: int, y: Tensor | None = None
) -> DenseGraph:
    """Build a masked one-hot :class:`DenseGraph` from integer classes.

    Args:
        node_classes: ``[B, n]`` long (values on padding are ignored).
        edge_classes: ``[B, n, n]`` long, symmetric (values on padding/diagonal are ignored).
        node_mask: ``[B, n]`` bool.
        dx: number of node classes.
        de: number of edge classes (including class 0 = no edge).
        y: optional ``[B, dy]`` global features; empty if ``None``.
    """
    B = node_classes.shape[0]
    X = torch.nn.functional.one_hot(node_classes.clamp(min=0), dx).float()
    E = torch.nn.functional.one_hot(edge_classes.clamp(min=0), de).float()
    if y is None:
        y = torch.zeros(B, 0, device=X.device)
    return DenseGraph(X, E, y, node_mask).mask()


def mask_nodes(x: Tensor, flags: Tensor) -> Tensor:
    """Zero the padded rows of node features ``x [B, n, F]`` (``flags [B, n]``, bool or 0/1)."""
    return x * flags.unsqueeze(-1).to(x.dtype)


def mask_adj(adj: Tensor, flags: Tensor) -> Tensor:
    """Zero the padded rows and columns of ``adj [B, n, n]`` or ``[B, C, n, n]`` (``flags [B, n]``)."""
    f = flags.to(adj.dtype)
    if adj.dim() == 4:
        f = f.unsqueeze(1)
    return adj * f.unsqueeze(-1) * f.unsqueeze(-2)


@dataclass
class BlockLayout:
    """Where every node of a dense batch sits in PARD's block order (:mod:`graphdiff.diffusion.blocks`).

    Attributes:
        block: ``[B, n]`` long block index of each node (0 = the first block generated), ``-1`` on padding.
        target: ``[B, n]`` bool: the node is (a copy of) a node of its block being generated, i.e. noisy; the others
            are clean nodes of earlier, finished blocks.
        degree: ``[B, K]`` long degree of each block's nodes in the graph of blocks ``<= k`` (0 past the last block).
        size: ``[B, K]`` long number of nodes of each block (0 past the last block).
    """

    block: Tensor
    target: Tensor
    degree: Tensor
    size: Tensor

    @property
    def node_mask(self) -> Tensor:
        """``[B, n]`` bool mask of real (not padded) nodes."""
        return self.block >= 0

    @property
    def num_blocks(self) -> Tensor:
        """``[B]`` number of blocks of each graph."""
        return (self.size > 0).sum(-1)

    def causal_mask(self) -> Tensor:
        """``[B, n, n]`` bool ``C[i, j]``: node ``i`` may read node ``j``.

        A clean node reads the clean nodes of its block and of earlier blocks; a target node reads the target nodes
        of its own block and the clean nodes of earlier blocks. The relation is reflexive and transitive, so a
        network that only ever combines what a position may read cannot see a later block.
        """
        bi, bj = self.block.unsqueeze(-1), self.block.unsqueeze(-2)
        ti, tj = self.target.unsqueeze(-1), self.target.unsqueeze(-2)
        valid = (bi >= 0) & (bj >= 0)
        same = (bi == bj) & (ti == tj)
        earlier = (bi > bj) & ~tj
        return valid & (same | earlier)

    def target_pairs(self) -> Tensor:
        """``[B, n, n]`` bool, symmetric: the pairs whose edge class is generated with a target block: the pairs
        inside a target block, and the pairs from a target node to the clean nodes of earlier blocks."""
        bi, bj = self.block.unsqueeze(-1), self.block.unsqueeze(-2)
        ti, tj = self.target.unsqueeze(-1), self.target.unsqueeze(-2)
        n = self.block.shape[1]
        inside = ti & tj & (bi == bj) & ~torch.eye(n, dtype=torch.bool, device=self.block.device)
        to_earlier = ti & ~tj & (bj >= 0) & (bj < bi)
        return inside | to_earlier | to_earlier.transpose(1, 2)

    def to(self, device: torch.device | str) -> BlockLayout:
        return BlockLayout(self.block.to(device), self.target.to(device), self.degree.to(device),
                           self.size.to(device))
