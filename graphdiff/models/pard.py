"""PARD's causal higher-order graph transformer (Zhao, Ding and Akoglu, NeurIPS 2024, §4.2).

One network serves two heads: the *denoiser* of the block being generated (logits of its clean node classes and of
its pairs' edge classes) and the *block head* (the size and degree of the next block). Its input is a dense batch
whose nodes carry a :class:`~graphdiff.types.BlockLayout`: clean nodes of finished blocks and target (noisy) nodes
of the block being generated.

Layers (PARD's ``PPGNTransformer``, channels last here): each is

* a transformer block on nodes: attention logits from an edge representation ``E' = SiLU(E_k + SiLU(q_i + k_j)
  * E_q + q_i + k_j)`` (GRIT's edge-aware attention), node ``i`` attending the nodes it may read, messages
  ``sum_j a_ij (V x_j + W E'_ij)``, then a feed-forward layer;
* a PPGN block on pairs: ``E <- E + W (M_1(E) @ M_2(E))`` (matrix product over the middle node, per channel),
  optionally on ``[E, E^T]``, then a feed-forward layer.

Causality (``causal=True``): ``C[i, j]`` (node ``i`` may read node ``j``, :meth:`BlockLayout.causal_mask`) is
reflexive and transitive. Node ``i`` attends only the ``j`` with ``C[i, j]``; the pair ``(i, j)`` exists when
``C[i, j]`` or ``C[j, i]``; and PPGN's product at ``(i, j)`` sums only over the ``k`` that ``i`` or ``j`` may read,

.. code-block:: text

    P = (M_1 * C) @ M_2 + M_1 @ (M_2 * C^T) - (M_1 * C) @ (M_2 * C^T)     (PARD's restricted product)

so every representation at a node or pair depends only on what that node (or the later end of the pair) may read:
no block sees a later one. Normalisation is LayerNorm, per position (a batch norm's statistics would mix blocks).

``causal=False`` (batched sequential training, one graph per block) lifts the restriction and allows DiGress's
extra features (:class:`~graphdiff.models.features.ExtraFeatures`) of the noisy graph.

A conditional network adds a zero-initialised embedding of the encoded condition to every node;
:class:`PardGuidance` is its classifier-free guidance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphdiff.errors import ConfigError
from graphdiff.models.base import ConditionEmbedding
from graphdiff.models.features import FEATURE_MODES, ExtraFeatures
from graphdiff.models.guidance import ClassifierFreeGuidance
from graphdiff.types import BlockLayout, DenseGraph


@dataclass
class PardOutput:
    """What :class:`PardNetwork` returns.

    Attributes:
        logits: logits of the target nodes' and pairs' clean classes (``X [B, n, dx]``, ``E [B, n, n, de]``,
            symmetric, zero off the real pairs), or ``None`` without the denoising head.
        size: ``[B, K, max_size + 1]`` logits of the size of block ``k + 1`` (0: no more blocks) from the clean
            blocks ``0..k``, or ``None``.
        degree: ``[B, K, max_degree + 1]`` logits of the degree of block ``k + 1`` given its size, or ``None``.
    """

    logits: DenseGraph | None
    size: Tensor | None = None
    degree: Tensor | None = None


def sinusoidal(x: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """``[..., dim]`` sine/cosine features of ``x [...]`` (frequencies ``max_period^(-k / (dim/2))``)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = x.float().unsqueeze(-1) * freqs
    return torch.cat([angles.cos(), angles.sin()], -1).to(x.dtype if x.is_floating_point() else torch.float32)


class _MLP(nn.Sequential):
    """Linear -> LayerNorm -> SiLU -> Linear."""

    def __init__(self, d_in: int, d_out: int, d_hidden: int | None = None) -> None:
        d_hidden = d_hidden or d_out
        super().__init__(nn.Linear(d_in, d_hidden), nn.LayerNorm(d_hidden), nn.SiLU(), nn.Linear(d_hidden, d_out))


class _Transformer(nn.Module):
    """Node attention biased by the pairs, and the pairs' update from the nodes (see the module docstring)."""

    def __init__(self, node_dim: int, edge_dim: int, heads: int) -> None:
        super().__init__()
        if node_dim % heads:
            raise ConfigError(f"model.hidden_dims={node_dim} must be a multiple of model.n_heads={heads}")
        self.heads = heads
        self.node_norm = nn.LayerNorm(node_dim)
        self.edge_norm = nn.LayerNorm(edge_dim)
        self.qk_node = nn.Linear(node_dim, 2 * edge_dim)
        self.qk_edge = nn.Linear(edge_dim, 2 * edge_dim)
        self.v_node = nn.Linear(node_dim, node_dim)
        self.v_edge = nn.Linear(edge_dim, node_dim)
        self.o_node = nn.Linear(node_dim, node_dim)
        self.o_edge = nn.Linear(edge_dim, edge_dim)
        self.att = nn.Linear(edge_dim, heads)
        self.ff_norm = nn.LayerNorm(node_dim)
        self.ff = _MLP(node_dim, node_dim, 2 * node_dim)

    def forward(self, x: Tensor, e: Tensor, node_mask: Tensor, pair_mask: Tensor, reads: Tensor
                ) -> tuple[Tensor, Tensor]:
        B, n, d = x.shape
        xn = self.node_norm(x)
        q, k = self.qk_node(xn).chunk(2, -1)
        e_q, e_k = self.qk_edge(self.edge_norm(e)).chunk(2, -1)
        both = q.unsqueeze(2) + k.unsqueeze(1)
        e_new = F.silu(e_k + F.silu(both) * e_q + both) * pair_mask.unsqueeze(-1)
        e = e + self.o_edge(e_new) * pair_mask.unsqueeze(-1)
        logits = self.att(e_new).permute(0, 3, 1, 2).masked_fill(~reads.unsqueeze(1), float("-inf"))
        att = torch.softmax(logits, -1).nan_to_num(0.0)  # [B, h, n, n]; padded rows read nothing
        h, k = self.heads, d // self.heads
        v = self.v_node(xn).view(B, n, h, k).transpose(1, 2)  # [B, h, n, d/h]
        # sum_j a_ij (W e'_ij + c) = W (sum_j a_ij e'_ij) + c sum_j a_ij, head by head: the pairs are averaged
        # at their own width before the projection, never projected to [B, n, n, d].
        pooled = torch.einsum("bhij,bijc->bhic", att, e_new)  # [B, h, n, De]
        weight = self.v_edge.weight.view(h, k, -1)
        msg = att @ v + torch.einsum("bhic,hkc->bhik", pooled, weight)
        msg = msg + self.v_edge.bias.view(1, h, 1, k) * att.sum(-1, keepdim=True)
        x = x + self.o_node(msg.transpose(1, 2).reshape(B, n, d)) * node_mask.unsqueeze(-1)
        x = x + self.ff(self.ff_norm(x)) * node_mask.unsqueeze(-1)
        return x, e


class _PPGN(nn.Module):
    """PPGN's matrix product over the middle node, restricted for causality (see the module docstring)."""

    def __init__(self, edge_dim: int, add_transpose: bool) -> None:
        super().__init__()
        self.add_transpose = add_transpose
        self.norm = nn.LayerNorm(edge_dim)
        width = 2 * edge_dim if add_transpose else edge_dim
        self.m1 = _MLP(width, edge_dim)
        self.m2 = _MLP(edge_dim, edge_dim)
        self.out = nn.Linear(edge_dim, edge_dim)
        self.ff_norm = nn.LayerNorm(edge_dim)
        self.ff = _MLP(edge_dim, edge_dim, 2 * edge_dim)

    def forward(self, e: Tensor, pair_mask: Tensor, reads: Tensor | None) -> Tensor:
        en = self.norm(e)
        inp = torch.cat([en, en.transpose(1, 2)], -1) if self.add_transpose else en
        pm = pair_mask.unsqueeze(1)
        a = F.silu(self.m1(inp)).permute(0, 3, 1, 2) * pm  # [B, D, n, n]
        b = F.silu(self.m2(en)).permute(0, 3, 1, 2) * pm
        if reads is None:
            prod = a @ b
        else:
            c = reads.unsqueeze(1).to(a.dtype)
            a_c = a * c                      # k that i may read
            b_c = b * c.transpose(-1, -2)    # k that j may read
            prod = a_c @ b + (a - a_c) @ b_c  # = a_c @ b + a @ b_c - a_c @ b_c, with two products
        e = e + self.out(prod.permute(0, 2, 3, 1)) * pair_mask.unsqueeze(-1)
        return e + self.ff(self.ff_norm(e)) * pair_mask.unsqueeze(-1)


class _Monotone(nn.Module):
    """A monotone increasing map ``[0, 1] -> (0, 1)``: PARD's weight of the noisy input added to the logits."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.rand(1, width))
        self.b1 = nn.Parameter(torch.rand(width))
        self.w2 = nn.Parameter(torch.rand(width, 1))
        self.b2 = nn.Parameter(torch.rand(1))

    def forward(self, s: Tensor) -> Tensor:
        h = F.silu(s.unsqueeze(-1) @ self.w1.abs() + self.b1)
        return torch.sigmoid(h @ self.w2.abs() + self.b2)[..., 0]


class PardNetwork(nn.Module):
    """PARD's network: a causal PPGN-transformer trunk with a denoising head and/or a block head.

    Args:
        dx, de: node and edge classes (edge class 0 = no edge).
        max_nodes: the largest graph: bounds the block index, block size and block degree embeddings.
        hidden_dims: node channels (PARD ``model.hidden_size``).
        edge_dims: pair channels (PARD ``model.edge_hidden``).
        n_layers: layers (PARD ``model.num_layers``).
        n_heads: attention heads (PARD ``model.num_heads``).
        add_transpose: PPGN reads ``[E, E^T]`` (PARD ``model.add_transpose``).
        transformer_only: no PPGN blocks (PARD ``model.transformer_only``).
        absolute_block_id: add an embedding of each node's block index (PARD ``model.use_absolute_blockid``).
        relative_block_id: add an encoding of ``1 / (|b_i - b_j| + 1)`` to the pairs (``use_relative_blockid``).
        input_residual: add ``phi(1 - t) * x_t`` to the logits, ``phi`` a learnt monotone map (``input_residual``).
        denoise: build the denoising head.
        blocks: build the block head.
        extra_features: DiGress's extra features of the input graph (``none``, ``cycles``, ``eigenvalues``,
            ``all``); only for ``causal=False`` use (batched sequential training).
        condition_dim: width of an encoded graph-level condition (:mod:`graphdiff.conditioning`) read from the
            trailing columns of ``graph.y`` and added to every node (0: unconditional).
    """

    def __init__(self, dx: int, de: int, max_nodes: int, hidden_dims: int = 256, edge_dims: int = 64,
                 n_layers: int = 8, n_heads: int = 8, add_transpose: bool = True, transformer_only: bool = False,
                 absolute_block_id: bool = True, relative_block_id: bool = True, input_residual: bool = True,
                 denoise: bool = True, blocks: bool = True, extra_features: str = "none",
                 condition_dim: int = 0) -> None:
        super().__init__()
        for name, value in (("hidden_dims", hidden_dims), ("edge_dims", edge_dims), ("n_layers", n_layers),
                            ("n_heads", n_heads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"model.{name}={value!r}: expected a positive integer")
        if extra_features not in FEATURE_MODES or extra_features == "rrwp":
            raise ConfigError(f"model.extra_features={extra_features!r}: choose none, cycles, eigenvalues or all")
        self.dx, self.de, self.max_nodes = dx, de, max_nodes
        self.hidden_dims, self.edge_dims = hidden_dims, edge_dims
        self.input_residual = input_residual
        self.node_in = nn.Linear(dx, hidden_dims)
        self.edge_in = nn.Linear(de, edge_dims)
        self.block_id = nn.Embedding(max_nodes + 1, hidden_dims) if absolute_block_id else None
        self.block_degree = nn.Embedding(max_nodes + 1, hidden_dims)
        self.relative = _MLP(32, edge_dims, 2 * edge_dims) if relative_block_id else None
        self.time = _MLP(hidden_dims, hidden_dims)
        self.condition_dim = condition_dim
        # Zero-initialised, no bias: an absent (all-zero) condition adds nothing (classifier-free guidance).
        self.condition = ConditionEmbedding(condition_dim, hidden_dims) if condition_dim else None
        self.features = ExtraFeatures(extra_features, max_nodes) if extra_features != "none" else None
        if self.features is not None:
            dims = self.features.dims
            self.feature_in = _MLP(dims.X + dims.y, hidden_dims)
        self.transformers = nn.ModuleList(_Transformer(hidden_dims, edge_dims, n_heads) for _ in range(n_layers))
        self.ppgns = nn.ModuleList(() if transformer_only else
                                   (_PPGN(edge_dims, add_transpose) for _ in range(n_layers)))
        self.node_norm = nn.LayerNorm(hidden_dims)
        self.edge_norm = nn.LayerNorm(edge_dims)
        if denoise:
            self.out_node = nn.Sequential(nn.Linear(hidden_dims + 2 * edge_dims, hidden_dims), nn.SiLU())
            self.out_pair_node = nn.Linear(hidden_dims, 4 * edge_dims)
            self.out_pair_edge = nn.Linear(edge_dims, 2 * edge_dims)
            self.node_head = _MLP(hidden_dims, dx, hidden_dims)
            self.edge_head = _MLP(2 * edge_dims, de, edge_dims)
            self.phi_node = _Monotone() if input_residual else None
            self.phi_edge = _Monotone() if input_residual else None
        self.denoise = denoise
        if blocks:
            self.block_in = nn.Sequential(nn.Linear(hidden_dims + 2 * edge_dims, hidden_dims), nn.SiLU())
            self.size_embedding = nn.Embedding(max_nodes + 1, hidden_dims)
            self.size_head = _MLP(hidden_dims, max_nodes + 1, hidden_dims)
            self.degree_head = _MLP(hidden_dims, max_nodes + 1, hidden_dims)
            self.first_degree_head = _MLP(hidden_dims, max_nodes + 1, hidden_dims)
            # A conditional model draws its first block's size given the condition (else: the data's histogram).
            self.first_size_head = _MLP(hidden_dims, max_nodes + 1, hidden_dims) if condition_dim else None
        self.blocks = blocks

    # -- trunk ----------------------------------------------------------------------------------------------
    def _trunk(self, graph: DenseGraph, t: Tensor, layout: BlockLayout, causal: bool
               ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        node_mask = layout.node_mask
        n = node_mask.shape[1]
        eye = torch.eye(n, dtype=torch.bool, device=node_mask.device)
        reads = layout.causal_mask() if causal else (node_mask.unsqueeze(1) & node_mask.unsqueeze(2))
        pair_mask = (reads | reads.transpose(1, 2)) & ~eye
        block = layout.block.clamp(min=0)
        dtype = self.node_in.weight.dtype
        x = self.node_in(graph.X.to(dtype))
        if self.block_id is not None:
            x = x + self.block_id(block.clamp(max=self.max_nodes))
        degree = layout.degree.gather(1, block.clamp(max=max(layout.degree.shape[1] - 1, 0))) \
            if layout.degree.shape[1] else torch.zeros_like(block)
        x = x + self.block_degree(degree.clamp(max=self.max_nodes))
        temb = self.time(sinusoidal(t.to(dtype) * 1000, self.hidden_dims).to(dtype))  # [B, H]
        x = x + temb.unsqueeze(1) * layout.target.unsqueeze(-1).to(dtype)  # the time is the target block's
        if self.condition is not None:
            x = x + self.condition(graph.y[:, graph.y.shape[1] - self.condition_dim:]).to(dtype).unsqueeze(1)
        if self.features is not None:
            if causal:
                raise ConfigError("extra features see the whole graph: use them with training_mode "
                                  "batched_sequential")
            extra = self.features(DenseGraph(graph.X, graph.E, graph.y, node_mask).mask())
            feats = torch.cat([extra.X, extra.y.unsqueeze(1).expand(-1, n, -1)], -1).to(dtype)
            x = x + self.feature_in(feats)
        x = x * node_mask.unsqueeze(-1)
        e = self.edge_in(graph.E.to(dtype))
        if self.relative is not None:
            rel = 1.0 / ((block.unsqueeze(1) - block.unsqueeze(2)).abs() + 1.0)
            e = e + self.relative(sinusoidal(rel * 10, 32).to(dtype))
        e = e * pair_mask.unsqueeze(-1)
        restrict = reads if causal else None
        for i, attention in enumerate(self.transformers):
            x, e = attention(x, e, node_mask, pair_mask, reads)
            if len(self.ppgns):
                e = self.ppgns[i](e, pair_mask, restrict)
        x = self.node_norm(x) * node_mask.unsqueeze(-1)
        e = self.edge_norm(e) * pair_mask.unsqueeze(-1)
        return x, e, node_mask, pair_mask, reads

    @staticmethod
    def _pool_pairs(e: Tensor, reads: Tensor) -> Tensor:
        """``[B, n, 2 * De]``: each node's mean over the pairs to the nodes it reads, in both directions."""
        r = reads.to(e.dtype).unsqueeze(-1)
        count = r.sum(2).clamp(min=1)
        return torch.cat([(e * r).sum(2) / count, (e.transpose(1, 2) * r).sum(2) / count], -1)

    # -- heads ----------------------------------------------------------------------------------------------
    def forward(self, graph: DenseGraph, t: Tensor, layout: BlockLayout, causal: bool = True,
                next_size: Tensor | None = None) -> PardOutput:
        """Run the trunk and the heads.

        Args:
            graph: ``X [B, n, dx]``, ``E [B, n, n, de]`` one-hot: clean finished blocks, noisy target blocks.
            t: ``[B]`` normalised time ``t / T`` of the target blocks.
            layout: the nodes' blocks.
            causal: restrict every position to what it may read (parallel training and sampling).
            next_size: ``[B, K]`` the size of block ``k + 1`` that the degree head is conditioned on (default: the
                layout's own next sizes, as in training).
        """
        x, e, node_mask, pair_mask, reads = self._trunk(graph, t, layout, causal)
        pooled = self._pool_pairs(e, reads)  # both heads read each node's pooled pairs
        logits = None
        if self.denoise:
            h = self.out_node(torch.cat([x, pooled], -1)) * node_mask.unsqueeze(-1)
            a, b = self.out_pair_node(h).chunk(2, -1)
            pair = F.silu(a.unsqueeze(1) + b.unsqueeze(2) + self.out_pair_edge(e))
            pair = (pair + pair.transpose(1, 2)) * pair_mask.unsqueeze(-1)
            X = self.node_head(h)
            E = self.edge_head(pair)
            if self.input_residual:
                keep = (1 - t.to(X.dtype)).view(-1, 1)
                X = X + self.phi_node(keep).view(-1, 1, 1) * graph.X.to(X.dtype)
                E = E + self.phi_edge(keep).view(-1, 1, 1, 1) * graph.E.to(E.dtype)
            X = X * node_mask.unsqueeze(-1)
            E = E * pair_mask.unsqueeze(-1)
            logits = DenseGraph(X, E, graph.y[:, :0], node_mask)
        size = degree = None
        if self.blocks:
            summary = self._block_summary(x, pooled, layout)
            if next_size is None:
                next_size = F.pad(layout.size[:, 1:], (0, 1))
            size, degree = self.size_head(summary), self.degree_logits(summary, next_size)
        return PardOutput(logits, size, degree)

    def _block_summary(self, x: Tensor, pooled: Tensor, layout: BlockLayout) -> Tensor:
        """``[B, K, H]``: row ``k`` sums the clean nodes of blocks ``0..k`` (what the next block depends on);
        ``pooled`` is :meth:`_pool_pairs` of the trunk's pairs."""
        K = layout.size.shape[1]
        clean = layout.node_mask & ~layout.target
        h = self.block_in(torch.cat([x, pooled], -1)) * clean.unsqueeze(-1)
        member = F.one_hot(layout.block.clamp(min=0), K + 1)[..., :K] * clean.unsqueeze(-1)  # [B, n, K]
        return (member.to(h.dtype).transpose(1, 2) @ h).cumsum(1)

    def block_summary(self, graph: DenseGraph, layout: BlockLayout) -> Tensor:
        """``[B, K, H]`` block summaries of a graph of clean blocks (sampling: then :meth:`size_logits` and
        :meth:`degree_logits` of the chosen size)."""
        t = torch.zeros(graph.batch_size, device=graph.X.device)
        x, e, _, _, reads = self._trunk(graph, t, layout, causal=True)
        return self._block_summary(x, self._pool_pairs(e, reads), layout)

    def size_logits(self, summary: Tensor) -> Tensor:
        """``[..., max_nodes + 1]`` logits of the next block's size (0: the graph is complete)."""
        return self.size_head(summary)

    def degree_logits(self, summary: Tensor, next_size: Tensor) -> Tensor:
        """``[..., max_nodes + 1]`` logits of the next block's degree given its size ``next_size [...]``."""
        return self.degree_head(summary + self.size_embedding(next_size.clamp(0, self.max_nodes)))

    def first_size_logits(self, condition: Tensor) -> Tensor:
        """``[B, max_nodes + 1]`` logits of the first block's size given the encoded condition ``[B, C]`` (a
        conditional network only)."""
        if self.first_size_head is None or self.condition is None:
            raise ValueError("first_size_logits needs a conditional network with its block head")
        return self.first_size_head(self.condition(condition))

    def first_degree_logits(self, size: Tensor) -> Tensor:
        """``[B, max_degree + 1]`` logits of the first block's degree given its size ``[B]``."""
        return self.first_degree_head(self.size_embedding(size.clamp(0, self.max_nodes)))


class PardGuidance(nn.Module):
    """Classifier-free guidance of a conditional :class:`PardNetwork`: its denoising logits guided as
    :class:`~graphdiff.models.guidance.ClassifierFreeGuidance` guides any network (``u + s (c - u)``, one batched
    call); the block head is left conditional (scale 1).

    Args:
        network: the conditional network.
        scale: as :class:`~graphdiff.models.guidance.ClassifierFreeGuidance`'s.
    """

    def __init__(self, network: PardNetwork, scale: float | list[tuple[slice, float]]) -> None:
        super().__init__()
        self.network = network
        self.scale = scale

    def forward(self, graph: DenseGraph, t: Tensor, layout: BlockLayout, causal: bool = True) -> PardOutput:
        def denoise(stacked: DenseGraph, times: Tensor) -> DenseGraph:
            k = stacked.batch_size // graph.batch_size  # the guidance stacks k copies of the batch
            repeated = BlockLayout(layout.block.repeat(k, 1), layout.target.repeat(k, 1), layout.degree.repeat(k, 1),
                                   layout.size.repeat(k, 1))
            logits = self.network(stacked, times, repeated, causal=causal).logits
            assert logits is not None
            return logits

        guided = ClassifierFreeGuidance(_Call(denoise), self.network.condition_dim, self.scale)(graph, t)
        return PardOutput(guided)


class _Call(nn.Module):
    """A function as a module (what :class:`ClassifierFreeGuidance` wraps)."""

    def __init__(self, function) -> None:
        super().__init__()
        self.function = function

    def forward(self, graph: DenseGraph, t: Tensor) -> DenseGraph:
        return self.function(graph, t)
