"""GDSS's score networks (Jo et al., ICML 2022): ScoreNetworkX (GCN) and ScoreNetworkA (graph multi-head attention).

Both take ``x [B, n, F]``, a continuous symmetric ``adj [B, n, n]`` and ``flags [B, n]`` and return an output of
the shape of what they score: ``[B, n, F]`` for X, ``[B, n, n]`` (symmetric, zero diagonal) for A, zero on
padding. They are not conditioned on the diffusion time; :func:`graphdiff.sde.losses.output_to_score` turns
the output into a score (``-out / std(t)`` for VP/sub-VP, ``out`` for VE).

Layer and hyper-parameter names follow GDSS's configs (``depth``, ``nhid``, ``adim``, ``num_heads``, ``conv``,
``c_init``, ``c_hid``, ``c_final``, ``num_layers``, ``num_linears``) so its published settings carry over.
All layers are dense and batched; every operation is permutation-equivariant.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphdiff.errors import ConfigError
from graphdiff.models.base import ConditionEmbedding, split_condition
from graphdiff.types import DenseGraph, mask_nodes
from graphdiff.types import mask_adj as mask_adjs

Activation = Callable[[Tensor], Tensor]


def adjacency_powers(adj: Tensor, num_powers: int) -> Tensor:
    """``[B, c, n, n]`` stack ``A, A^2, ..., A^c`` of ``adj [B, n, n]`` (GDSS ``pow_tensor``)."""
    powers = [adj]
    for _ in range(num_powers - 1):
        powers.append(torch.bmm(powers[-1], adj))
    return torch.stack(powers, dim=1)


class DenseGCNConv(nn.Module):
    """Dense graph convolution ``D^-1/2 (A + I) D^-1/2 X W + b`` (Kipf & Welling; PyG ``DenseGCNConv``).

    The diagonal of ``adj`` is *replaced* by 1 (2 with ``improved``), and degrees below 1 are clamped to 1,
    which keeps the normalisation finite on noisy, possibly negative, adjacencies.

    Args:
        in_channels: input feature width.
        out_channels: output feature width.
        improved: self-loop weight 2 instead of 1.
        bias: add a learnable bias.
    """

    def __init__(self, in_channels: int, out_channels: int, improved: bool = False, bias: bool = True) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.improved = improved
        self.weight = nn.Parameter(torch.empty(in_channels, out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = math.sqrt(6.0 / (self.in_channels + self.out_channels))  # Glorot uniform
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, adj: Tensor, mask: Tensor | None = None, add_loop: bool = True) -> Tensor:
        """Args: ``x [B, n, F_in]``, ``adj [B, n, n]``, optional ``mask [B, n]``. Returns ``[B, n, F_out]``."""
        if add_loop:
            norm_adj = normalize_adjacency(adj, 2.0 if self.improved else 1.0)
        else:
            deg_inv_sqrt = adj.sum(-1).clamp(min=1).pow(-0.5)
            norm_adj = deg_inv_sqrt.unsqueeze(-1) * adj * deg_inv_sqrt.unsqueeze(-2)
        out = norm_adj @ (x @ self.weight)
        if self.bias is not None:
            out = out + self.bias
        if mask is not None:
            out = mask_nodes(out, mask)
        return out

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}"


class MLP(nn.Module):
    """``num_layers`` linear layers with ``activation`` in between (a single linear layer if ``num_layers == 1``).

    Args:
        num_layers: number of linear layers (>= 1).
        input_dim, hidden_dim, output_dim: widths.
        activation: non-linearity between layers.
    """

    def __init__(self, num_layers: int, input_dim: int, hidden_dim: int, output_dim: int,
                 activation: Activation = F.relu) -> None:
        super().__init__()
        if num_layers < 1:
            raise ConfigError(f"MLP: num_layers must be >= 1, got {num_layers}")
        dims = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        for linear in self.linears[:-1]:
            x = self.activation(linear(x))
        return self.linears[-1](x)


class ChannelLinear(nn.Module):
    """``C`` independent affine maps applied channel-wise: ``out[..., c, :, :] = x[..., c, :, :] W_c + b_c``.

    Each channel is initialised as ``torch.nn.Linear`` (uniform in ``+-1/sqrt(in_dim)``).

    Args:
        channels: number of channels ``C``.
        in_dim, out_dim: widths.
    """

    def __init__(self, channels: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(channels, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(channels, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        """Args: ``x [B, C, n, in]`` or ``[B, n, in]`` (shared by all channels). Returns ``[B, C, n, out]``."""
        if x.dim() == 3:
            return torch.einsum("bni,cio->bcno", x, self.weight) + self.bias
        return x @ self.weight + self.bias


class ChannelGCNConv(nn.Module):
    """``C`` independent :class:`DenseGCNConv` layers, channel ``c`` convolving over adjacency channel ``c``.

    Args:
        channels: number of channels ``C``.
        in_channels, out_channels: widths.
    """

    def __init__(self, channels: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        bound = math.sqrt(6.0 / (in_channels + out_channels))  # Glorot uniform, as DenseGCNConv
        self.weight = nn.Parameter(torch.empty(channels, in_channels, out_channels).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(channels, 1, out_channels))

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        """Args: ``x [B, n, in]`` (shared by all channels), ``adj [B, C, n, n]``. Returns ``[B, C, n, out]``."""
        return normalize_adjacency(adj) @ torch.einsum("bni,cio->bcno", x, self.weight) + self.bias


def normalize_adjacency(adj: Tensor, self_loop: float = 1.0) -> Tensor:
    """``D^-1/2 A' D^-1/2`` where ``A'`` is ``adj [..., n, n]`` with its diagonal set to ``self_loop`` and degrees
    clamped to at least 1 (GDSS / PyG ``DenseGCNConv``)."""
    n = adj.shape[-1]
    eye = torch.eye(n, dtype=adj.dtype, device=adj.device)
    adj = adj * (1 - eye) + eye * self_loop
    deg_inv_sqrt = adj.sum(-1).clamp(min=1).pow(-0.5)
    return deg_inv_sqrt.unsqueeze(-1) * adj * deg_inv_sqrt.unsqueeze(-2)


class AttentionLayer(nn.Module):
    """One GDSS ScoreNetworkA layer: graph multi-head attention (Baek et al., 2021) on each of ``C_in`` adjacency
    channels, with independent weights per channel (GDSS's ``AttentionLayer`` of ``Attention`` modules, computed
    for all channels at once).

    Per channel ``c``: queries and keys are GCNs over ``adj_c`` (2-layer ``tanh`` MLPs with ``conv="MLP"``), values
    a GCN; the attention matrix is ``tanh(Q_h K_h^T / sqrt(conv_output_dim))`` averaged over heads and
    symmetrised, and is not used to mix the values.

    Node features: the values of all channels, concatenated, through a 2-layer ELU MLP, masked, ``tanh``.
    Adjacency channels: a ``num_linears``-layer ELU MLP over ``[attention_c, adj_c]_c`` per node pair,
    symmetrised (``M + M^T``), masked.

    Args:
        num_linears: layers of the adjacency MLP.
        conv_input_dim: input node feature width.
        attn_dim: query/key width (split over heads).
        conv_output_dim: output node feature width (values).
        input_dim: number of input adjacency channels ``C_in``.
        output_dim: number of output adjacency channels ``C_out``.
        num_heads: attention heads (must divide ``attn_dim``).
        conv: ``"GCN"`` or ``"MLP"`` for queries and keys.
        node_output: compute the node features (GDSS's last ScoreNetworkA layer computes them but never uses them;
            without them that layer has no dead parameters).
        adj_output: compute the adjacency channels (unused after the last ScoreNetworkX_GMH layer).
    """

    def __init__(self, num_linears: int, conv_input_dim: int, attn_dim: int, conv_output_dim: int, input_dim: int,
                 output_dim: int, num_heads: int = 4, conv: str = "GCN", node_output: bool = True,
                 adj_output: bool = True) -> None:
        super().__init__()
        if attn_dim % num_heads:
            raise ConfigError(f"attention width {attn_dim} is not divisible by num_heads={num_heads}")
        if conv not in ("GCN", "MLP"):
            raise ConfigError(f"conv must be 'GCN' or 'MLP', got {conv!r}")
        self.num_heads = num_heads
        self.conv = conv
        self.conv_output_dim = conv_output_dim
        C = input_dim
        self.query: nn.Module | None = None
        self.key: nn.Module | None = None
        if not adj_output:
            pass  # queries and keys only shape the attention matrices, i.e. the adjacency output
        elif conv == "GCN":
            self.query = ChannelGCNConv(C, conv_input_dim, attn_dim)
            self.key = ChannelGCNConv(C, conv_input_dim, attn_dim)
        else:
            self.query = nn.Sequential(ChannelLinear(C, conv_input_dim, 2 * attn_dim), nn.Tanh(),
                                       ChannelLinear(C, 2 * attn_dim, attn_dim))
            self.key = nn.Sequential(ChannelLinear(C, conv_input_dim, 2 * attn_dim), nn.Tanh(),
                                     ChannelLinear(C, 2 * attn_dim, attn_dim))
        hidden = 2 * max(input_dim, output_dim)
        self.value = ChannelGCNConv(C, conv_input_dim, conv_output_dim) if node_output else None
        self.multi_channel = (MLP(2, input_dim * conv_output_dim, hidden, conv_output_dim, activation=F.elu)
                              if node_output else None)
        self.mlp = MLP(num_linears, 2 * input_dim, hidden, output_dim, activation=F.elu) if adj_output else None

    def attention(self, x: Tensor, adj: Tensor) -> Tensor:
        """Symmetric attention ``[B, C, n, n]`` of every channel."""
        if self.conv == "GCN":
            q, k = self.query(x, adj), self.key(x, adj)
        else:
            q, k = self.query(x), self.key(x)
        B, C, n, _ = q.shape
        q = q.view(B, C, n, self.num_heads, -1).transpose(2, 3)  # [B, C, h, n, d]
        k = k.view(B, C, n, self.num_heads, -1).transpose(2, 3)
        scores = torch.tanh(q @ k.transpose(-1, -2) / math.sqrt(self.conv_output_dim)).mean(2)
        return (scores + scores.transpose(-1, -2)) / 2

    def forward(self, x: Tensor, adj: Tensor, flags: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """Args: ``x [B, n, F_in]``, ``adj [B, C_in, n, n]``, ``flags [B, n]``.

        Returns:
            ``x [B, n, F_out]`` (``None`` without ``node_output``), ``adj [B, C_out, n, n]`` (``None`` without
            ``adj_output``).
        """
        x_out = adj_out = None
        if self.value is not None:
            values = self.value(x, adj)  # [B, C, n, F_out]
            B, C, n, _ = values.shape
            values = values.permute(0, 2, 1, 3).reshape(B, n, -1)  # channel-major concatenation, as GDSS
            x_out = torch.tanh(mask_nodes(self.multi_channel(values), flags))
        if self.mlp is not None:
            pairs = torch.cat([self.attention(x, adj), adj], dim=1).permute(0, 2, 3, 1)
            adj_out = self.mlp(pairs).permute(0, 3, 1, 2)
            adj_out = mask_adjs(adj_out + adj_out.transpose(-1, -2), flags)
        return x_out, adj_out


class ScoreNetworkX(nn.Module):
    """GDSS's node-feature network: ``depth`` GCN layers (``tanh``), skip-concatenated, then a 3-layer MLP.

    Args:
        max_feat_num: node feature width ``F`` (input and output).
        depth: number of GCN layers.
        nhid: GCN width.
    """

    def __init__(self, max_feat_num: int, depth: int, nhid: int) -> None:
        super().__init__()
        self.nfeat = max_feat_num
        self.depth = depth
        self.nhid = nhid
        self.layers = nn.ModuleList(
            DenseGCNConv(max_feat_num if i == 0 else nhid, nhid) for i in range(depth)
        )
        fdim = max_feat_num + depth * nhid
        self.final = MLP(3, fdim, 2 * fdim, max_feat_num, activation=F.elu)

    def forward(self, x: Tensor, adj: Tensor, flags: Tensor) -> Tensor:
        """Args: ``x [B, n, F]``, ``adj [B, n, n]``, ``flags [B, n]``. Returns ``[B, n, F]``, zero on padding."""
        x, adj = mask_nodes(x, flags), mask_adjs(adj, flags)
        features = [x]
        for layer in self.layers:
            x = torch.tanh(layer(x, adj))
            features.append(x)
        return mask_nodes(self.final(torch.cat(features, dim=-1)), flags)


class ScoreNetworkXGMH(nn.Module):
    """GDSS's attention variant of the node-feature network (``ScoreNetworkX_GMH``).

    Args:
        max_feat_num, depth, nhid: as :class:`ScoreNetworkX`.
        num_linears, c_init, c_hid, c_final, adim, num_heads, conv: as :class:`ScoreNetworkA`.
    """

    def __init__(self, max_feat_num: int, depth: int, nhid: int, num_linears: int, c_init: int, c_hid: int,
                 c_final: int, adim: int, num_heads: int = 4, conv: str = "GCN") -> None:
        super().__init__()
        self.c_init = c_init
        layers = []
        for i in range(depth):
            first, last = i == 0, i == depth - 1
            layers.append(AttentionLayer(
                num_linears,
                max_feat_num if first else nhid,
                nhid if first else adim,  # GDSS: the first layer's query/key width is nhid
                nhid,
                c_init if first else c_hid,
                c_final if last else c_hid,
                num_heads,
                conv,
                adj_output=not last,  # the last layer's adjacency channels are never used
            ))
        self.layers = nn.ModuleList(layers)
        fdim = max_feat_num + depth * nhid
        self.final = MLP(3, fdim, 2 * fdim, max_feat_num, activation=F.elu)

    def forward(self, x: Tensor, adj: Tensor, flags: Tensor) -> Tensor:
        x, adj = mask_nodes(x, flags), mask_adjs(adj, flags)
        adjc = adjacency_powers(adj, self.c_init)
        features = [x]
        for layer in self.layers:
            x, adjc = layer(x, adjc, flags)
            x = torch.tanh(x)
            features.append(x)
        return mask_nodes(self.final(torch.cat(features, dim=-1)), flags)


class ScoreNetworkA(nn.Module):
    """GDSS's adjacency network over adjacency powers ``A, ..., A^c_init`` with attention layers.

    Every layer's adjacency channels (``c_init + (num_layers-1) c_hid + c_final`` in all) are concatenated per
    node pair and mapped to one value by a 3-layer MLP; the result has a zero diagonal and padding.

    Args:
        max_feat_num: node feature width ``F``.
        max_node_num: accepted for GDSS config compatibility; any ``n`` works.
        nhid: node feature width inside the network.
        num_layers: attention layers (>= 2).
        num_linears: layers of each adjacency MLP.
        c_init: adjacency powers fed to the first layer.
        c_hid: adjacency channels between layers.
        c_final: adjacency channels of the last layer.
        adim: query/key width of layers after the first (the first uses ``nhid``, as GDSS).
        num_heads: attention heads.
        conv: ``"GCN"`` or ``"MLP"`` for queries and keys.
    """

    def __init__(self, max_feat_num: int, max_node_num: int | None, nhid: int, num_layers: int, num_linears: int,
                 c_init: int, c_hid: int, c_final: int, adim: int, num_heads: int = 4, conv: str = "GCN") -> None:
        super().__init__()
        if num_layers < 2:
            raise ConfigError(f"ScoreNetworkA: num_layers must be >= 2, got {num_layers}")
        self.nfeat = max_feat_num
        self.max_node_num = max_node_num
        self.c_init = c_init
        layers = []
        for i in range(num_layers):
            if i == 0:
                layers.append(AttentionLayer(num_linears, max_feat_num, nhid, nhid, c_init, c_hid, num_heads, conv))
            elif i == num_layers - 1:
                layers.append(AttentionLayer(num_linears, nhid, adim, nhid, c_hid, c_final, num_heads, conv,
                                             node_output=False))
            else:
                layers.append(AttentionLayer(num_linears, nhid, adim, nhid, c_hid, c_hid, num_heads, conv))
        self.layers = nn.ModuleList(layers)
        fdim = c_hid * (num_layers - 1) + c_final + c_init
        self.final = MLP(3, fdim, 2 * fdim, 1, activation=F.elu)

    def forward(self, x: Tensor, adj: Tensor, flags: Tensor) -> Tensor:
        """Args: ``x [B, n, F]``, ``adj [B, n, n]``, ``flags [B, n]``. Returns symmetric ``[B, n, n]``."""
        x, adj = mask_nodes(x, flags), mask_adjs(adj, flags)
        adjc = adjacency_powers(adj, self.c_init)
        channels = [adjc]
        for layer in self.layers:
            x, adjc = layer(x, adjc, flags)
            channels.append(adjc)
        score = self.final(torch.cat(channels, dim=1).permute(0, 2, 3, 1)).squeeze(-1)
        n = score.shape[-1]
        score = score * (1 - torch.eye(n, dtype=score.dtype, device=score.device))
        return mask_adjs(score, flags)


class GDSSScoreModel(nn.Module):
    """The pair of GDSS networks as one module on graphdiff's network contract: ``(graph, t) -> graph``, with
    ``graph.X`` the node state ``x [B, n, F]`` and ``graph.E`` the adjacency ``adj [B, n, n, 1]`` (``t`` is
    ignored: GDSS's networks are not time-conditioned).

    GDSS trains the two networks with separate Adam optimisers and clips each one's gradient norm separately
    (``train.grad_norm``); with one optimiser over ``parameters()``, clip ``x_net`` and ``adj_net`` apart.

    A conditional model (``condition_dim > 0``) reads the encoded condition from ``graph.y``
    (:mod:`graphdiff.conditioning`) and adds a linear embedding of it (no bias: no condition adds nothing) to every
    node's features before both networks (:class:`~graphdiff.models.base.ConditionEmbedding`).

    Args:
        x_net: node-feature network (:class:`ScoreNetworkX` or :class:`ScoreNetworkXGMH`).
        adj_net: adjacency network (:class:`ScoreNetworkA`).
        num_features: ``F``, the node-feature width (needed with a condition).
        condition_dim: width of the encoded condition (0: unconditional).
    """

    def __init__(self, x_net: nn.Module, adj_net: nn.Module, num_features: int = 0, condition_dim: int = 0) -> None:
        super().__init__()
        self.x_net = x_net
        self.adj_net = adj_net
        self.condition_dim = condition_dim
        self.condition_embedding = ConditionEmbedding(condition_dim, num_features) if condition_dim else None

    def forward(self, graph: DenseGraph, t: Tensor | None = None) -> DenseGraph:
        x, adj, flags = graph.X, graph.E.squeeze(-1), graph.node_mask.to(graph.X.dtype)
        _, condition = split_condition(graph.y, self.condition_dim)
        x_in = x
        if self.condition_embedding is not None and condition is not None:
            x_in = x + self.condition_embedding(condition).to(x.dtype).unsqueeze(1) * flags.unsqueeze(-1)
        out_x, out_adj = self.x_net(x_in, adj, flags), self.adj_net(x_in, adj, flags)
        return DenseGraph(out_x, out_adj.unsqueeze(-1), graph.y, graph.node_mask)

    @classmethod
    def from_config(cls, max_feat_num: int, max_node_num: int | None = None, x: str = "ScoreNetworkX",
                    adj: str = "ScoreNetworkA", conv: str = "GCN", num_heads: int = 4, depth: int = 2,
                    adim: int = 16, nhid: int = 16, num_layers: int = 3, num_linears: int = 3, c_init: int = 2,
                    c_hid: int = 8, c_final: int = 4, condition_dim: int = 0) -> GDSSScoreModel:
        """Both networks from GDSS's ``model`` config keys (defaults: GDSS's QM9 config)."""
        if x == "ScoreNetworkX":
            x_net: nn.Module = ScoreNetworkX(max_feat_num, depth, nhid)
        elif x in ("ScoreNetworkX_GMH", "ScoreNetworkXGMH"):
            x_net = ScoreNetworkXGMH(max_feat_num, depth, nhid, num_linears, c_init, c_hid, c_final, adim,
                                     num_heads, conv)
        else:
            raise ConfigError(f"unknown node network {x!r}; expected ScoreNetworkX or ScoreNetworkX_GMH")
        if adj != "ScoreNetworkA":
            raise ConfigError(f"unknown adjacency network {adj!r}; expected ScoreNetworkA")
        adj_net = ScoreNetworkA(max_feat_num, max_node_num, nhid, num_layers, num_linears, c_init, c_hid, c_final,
                                adim, num_heads, conv)
        return cls(x_net, adj_net, max_feat_num, condition_dim)
