"""A straightforward dense DiGress graph transformer: the speed baseline of ``docs/performance.md``.

This is the architecture of :mod:`graphdiff.models.transformer` written the way the DiGress reference code
(``cvignac/DiGress``, ``src/models/transformer_model.py``) writes it, with no attention to memory traffic:

* separate ``q``, ``k``, ``v`` projections; the scores are an explicit ``[B, n, n, n_head, df]`` product
  ``Q_i * K_j`` (not summed over a head's channels), then FiLM'd by two more ``[B, n, n, dx]`` tensors from
  the edges, ``Y = S * (E1 + 1) + E2``;
* new edges FiLM'd by ``y`` per layer (two ``[B, 1, 1, dx]`` broadcasts over a ``[B, n, n, dx]`` tensor) and
  then projected; masks applied by multiplication everywhere as the reference does;
* masked softmax by cloning the scores and writing ``-inf`` into them;
* extra features: cycle counts from full matrix powers ``A^2 .. A^6``; connected components, Laplacian
  eigenvalues and eigenvectors by a Python loop over the graphs of the batch, one ``eigh`` (and one scipy
  connected-components call) per graph.

Deliberate differences from the reference, so that both models compute the *same function* and their losses can
be compared weight for weight (``copy_weights``): pooling to ``y`` ignores padded nodes (graphdiff's padding-
invariant choice; the reference pools over padding) and the extra features use graphdiff's exact formulas
(the reference's 5-cycle count is exact only on triangle-free graphs and it counts components with an eigenvalue
threshold). The reference's ``EigenFeatures`` is itself batched (one batched ``eigh``); the per-graph loop here is
what a straightforward implementation does and is the baseline the performance issue asked for. The extra
features and the network are timed separately, so the network-only ratio is unaffected by this choice.

Not part of the package: used by ``python -m benchmarks`` and ``tests/test_benchmarks.py`` only.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components as scipy_components
from torch import Tensor, nn

from graphdiff.models.features import MolecularFeatures
from graphdiff.types import DenseGraph

# ----------------------------------------------------------------------------------------------------------------
# Network


def masked_softmax(x: Tensor, mask: Tensor, **kwargs) -> Tensor:
    """The reference's masked softmax: clone, write ``-inf`` where ``mask == 0``, softmax."""
    if mask.sum() == 0:
        return x
    x_masked = x.clone()
    x_masked[mask == 0] = -float("inf")
    return torch.softmax(x_masked, **kwargs)


def _pool(values: Tensor, mask: Tensor, dims: tuple[int, ...]) -> Tensor:
    """``[mean, min, max, std]`` over real entries, written out plainly (graphdiff's masked pooling)."""
    count = mask.sum(dims)
    weights = mask.to(values.dtype)
    denom = count.clamp(min=1).to(values.dtype)
    mean = (values * weights).sum(dims) / denom
    low = torch.where(mask, values, torch.full_like(values, math.inf)).amin(dims)
    high = torch.where(mask, values, torch.full_like(values, -math.inf)).amax(dims)
    centred = values - mean.view(mean.shape[0], *([1] * len(dims)), mean.shape[-1])
    var = (centred * centred * weights).sum(dims) / (count - 1).clamp(min=1).to(values.dtype)
    std = var.clamp(min=1e-12).sqrt()
    stats = torch.cat((mean, low, high, std), dim=-1)
    return torch.where(count > 0, stats, torch.zeros_like(stats))


class Xtoy(nn.Module):
    def __init__(self, dx: int, dy: int) -> None:
        super().__init__()
        self.lin = nn.Linear(4 * dx, dy)

    def forward(self, X: Tensor, node_mask: Tensor) -> Tensor:
        return self.lin(_pool(X, node_mask.unsqueeze(-1), (1,)))


class Etoy(nn.Module):
    def __init__(self, de: int, dy: int) -> None:
        super().__init__()
        self.lin = nn.Linear(4 * de, dy)

    def forward(self, E: Tensor, node_mask: Tensor) -> Tensor:
        pair = (node_mask.unsqueeze(1) & node_mask.unsqueeze(2)).unsqueeze(-1)
        return self.lin(_pool(E, pair, (1, 2)))


class NodeEdgeBlock(nn.Module):
    """The reference ``NodeEdgeBlock``."""

    def __init__(self, dx: int, de: int, dy: int, n_head: int) -> None:
        super().__init__()
        self.dx, self.de, self.dy, self.n_head = dx, de, dy, n_head
        self.df = dx // n_head
        self.q = nn.Linear(dx, dx)
        self.k = nn.Linear(dx, dx)
        self.v = nn.Linear(dx, dx)
        self.e_add = nn.Linear(de, dx)
        self.e_mul = nn.Linear(de, dx)
        self.y_e_mul = nn.Linear(dy, dx)
        self.y_e_add = nn.Linear(dy, dx)
        self.y_x_mul = nn.Linear(dy, dx)
        self.y_x_add = nn.Linear(dy, dx)
        self.y_y = nn.Linear(dy, dy)
        self.x_y = Xtoy(dx, dy)
        self.e_y = Etoy(de, dy)
        self.x_out = nn.Linear(dx, dx)
        self.e_out = nn.Linear(dx, de)
        self.y_out = nn.Sequential(nn.Linear(dy, dy), nn.ReLU(), nn.Linear(dy, dy))

    def forward(self, X: Tensor, E: Tensor, y: Tensor, node_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        bs, n, _ = X.shape
        x_mask = node_mask.unsqueeze(-1).to(X.dtype)  # bs, n, 1
        e_mask1 = x_mask.unsqueeze(2)  # bs, n, 1, 1
        e_mask2 = x_mask.unsqueeze(1)  # bs, 1, n, 1

        Q = (self.q(X) * x_mask).reshape(bs, n, self.n_head, self.df).unsqueeze(2)  # bs, n, 1, h, df
        K = (self.k(X) * x_mask).reshape(bs, n, self.n_head, self.df).unsqueeze(1)  # bs, 1, n, h, df
        Y = Q * K
        Y = Y / math.sqrt(Y.size(-1))
        E1 = (self.e_mul(E) * e_mask1 * e_mask2).reshape(bs, n, n, self.n_head, self.df)
        E2 = (self.e_add(E) * e_mask1 * e_mask2).reshape(bs, n, n, self.n_head, self.df)
        Y = Y * (E1 + 1) + E2  # bs, n, n, h, df

        newE = Y.flatten(start_dim=3)
        ye1 = self.y_e_add(y).unsqueeze(1).unsqueeze(1)
        ye2 = self.y_e_mul(y).unsqueeze(1).unsqueeze(1)
        newE = ye1 + (ye2 + 1) * newE
        newE = self.e_out(newE) * e_mask1 * e_mask2

        softmax_mask = e_mask2.unsqueeze(-1).expand(-1, n, -1, self.n_head, self.df)
        attn = masked_softmax(Y, softmax_mask, dim=2)
        V = (self.v(X) * x_mask).reshape(bs, n, self.n_head, self.df).unsqueeze(1)
        weighted_V = (attn * V).sum(dim=2).flatten(start_dim=2)
        yx1 = self.y_x_add(y).unsqueeze(1)
        yx2 = self.y_x_mul(y).unsqueeze(1)
        newX = yx1 + (yx2 + 1) * weighted_V
        newX = self.x_out(newX) * x_mask

        new_y = self.y_y(y) + self.x_y(X, node_mask) + self.e_y(E, node_mask)
        new_y = self.y_out(new_y)
        return newX, newE, new_y


class XEyTransformerLayer(nn.Module):
    """The reference ``XEyTransformerLayer`` (post-norm, dropout on every branch)."""

    def __init__(self, dx: int, de: int, dy: int, n_head: int, dim_ffX: int, dim_ffE: int, dim_ffy: int,
                 dropout: float = 0.1, layer_norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.self_attn = NodeEdgeBlock(dx, de, dy, n_head)
        self.linX1, self.linX2 = nn.Linear(dx, dim_ffX), nn.Linear(dim_ffX, dx)
        self.normX1, self.normX2 = nn.LayerNorm(dx, eps=layer_norm_eps), nn.LayerNorm(dx, eps=layer_norm_eps)
        self.linE1, self.linE2 = nn.Linear(de, dim_ffE), nn.Linear(dim_ffE, de)
        self.normE1, self.normE2 = nn.LayerNorm(de, eps=layer_norm_eps), nn.LayerNorm(de, eps=layer_norm_eps)
        self.lin_y1, self.lin_y2 = nn.Linear(dy, dim_ffy), nn.Linear(dim_ffy, dy)
        self.norm_y1, self.norm_y2 = nn.LayerNorm(dy, eps=layer_norm_eps), nn.LayerNorm(dy, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, X: Tensor, E: Tensor, y: Tensor, node_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        d = self.dropout
        newX, newE, new_y = self.self_attn(X, E, y, node_mask)
        X = self.normX1(X + d(newX))
        E = self.normE1(E + d(newE))
        y = self.norm_y1(y + d(new_y))
        X = self.normX2(X + d(self.linX2(d(F.relu(self.linX1(X))))))
        E = self.normE2(E + d(self.linE2(d(F.relu(self.linE1(E))))))
        y = self.norm_y2(y + d(self.lin_y2(d(F.relu(self.lin_y1(y))))))
        return X, E, y


def _mlp(a: int, b: int, c: int, final_relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(a, b), nn.ReLU(), nn.Linear(b, c)]
    if final_relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class BaselineGraphTransformer(nn.Module):
    """The reference ``GraphTransformer``: input MLPs, ``n_layers`` layers, output MLPs, input skip connection."""

    def __init__(self, n_layers: int, input_dims: Mapping[str, int], hidden_mlp_dims: Mapping[str, int],
                 hidden_dims: Mapping[str, int], output_dims: Mapping[str, int], dropout: float = 0.1) -> None:
        super().__init__()
        self.out_X, self.out_E, self.out_y = output_dims["X"], output_dims["E"], output_dims["y"]
        h, m = hidden_dims, hidden_mlp_dims
        self.mlp_in_X = _mlp(input_dims["X"], m["X"], h["dx"], True)
        self.mlp_in_E = _mlp(input_dims["E"], m["E"], h["de"], True)
        self.mlp_in_y = _mlp(input_dims["y"], m["y"], h["dy"], True)
        self.tf_layers = nn.ModuleList(
            XEyTransformerLayer(h["dx"], h["de"], h["dy"], h["n_head"], h["dim_ffX"], h["dim_ffE"], h["dim_ffy"],
                                dropout=dropout)
            for _ in range(n_layers)
        )
        self.mlp_out_X = _mlp(h["dx"], m["X"], self.out_X, False)
        self.mlp_out_E = _mlp(h["de"], m["E"], self.out_E, False)
        with warnings.catch_warnings():  # an output y of width 0 is a zero-element Linear
            warnings.simplefilter("ignore", UserWarning)
            self.mlp_out_y = _mlp(h["dy"], m["y"], self.out_y, False)

    def forward(self, X: Tensor, E: Tensor, y: Tensor, node_mask: Tensor) -> DenseGraph:
        bs, n = X.shape[0], X.shape[1]
        diag_mask = (~torch.eye(n, dtype=torch.bool, device=X.device)).unsqueeze(0).unsqueeze(-1).expand(bs, -1, -1, -1)
        X_to_out, E_to_out, y_to_out = X[..., : self.out_X], E[..., : self.out_E], y[..., : self.out_y]
        new_E = self.mlp_in_E(E)
        new_E = (new_E + new_E.transpose(1, 2)) / 2
        x_mask = node_mask.unsqueeze(-1).to(X.dtype)  # the reference's PlaceHolder.mask (diagonal kept)
        X = self.mlp_in_X(X) * x_mask
        E = new_E * x_mask.unsqueeze(2) * x_mask.unsqueeze(1)
        y = self.mlp_in_y(y)
        for layer in self.tf_layers:
            X, E, y = layer(X, E, y, node_mask)
        X = self.mlp_out_X(X) + X_to_out
        E = (self.mlp_out_E(E) + E_to_out) * diag_mask
        y = self.mlp_out_y(y) + y_to_out
        E = 0.5 * (E + E.transpose(1, 2))
        return DenseGraph(X, E, y, node_mask).mask()


# ----------------------------------------------------------------------------------------------------------------
# Extra features


class BaselineExtraFeatures(nn.Module):
    """DiGress's ``all`` extra features (+ molecular), computed plainly: matrix powers and a per-graph loop."""

    def __init__(self, max_nodes: int, molecular: MolecularFeatures | None = None, num_eigenvalues: int = 5,
                 num_eigenvectors: int = 2) -> None:
        super().__init__()
        self.max_nodes = max_nodes
        self.molecular = molecular
        self.k_val, self.k_vec = num_eigenvalues, num_eigenvectors

    @staticmethod
    def cycles(A: Tensor) -> tuple[Tensor, Tensor]:
        """Cycle counts from the full powers ``A^1..A^6`` (same formulas as graphdiff's ``cycle_counts``)."""
        A1 = A
        A2 = A1 @ A
        A3 = A2 @ A
        A4 = A3 @ A
        A5 = A4 @ A
        A6 = A5 @ A
        d = A.sum(-1)

        def diag(M: Tensor) -> Tensor:
            return torch.diagonal(M, dim1=-2, dim2=-1)

        a2, a3, a4, a5 = diag(A2), diag(A3), diag(A4), diag(A5)
        tr6 = diag(A6).sum(-1)
        c3 = a3 / 2
        c4 = (a4 - d * (d - 1) - (A @ d.unsqueeze(-1)).squeeze(-1)) / 2
        c5 = (a5 - 2 * a3 * d + 5 * a3 - (A @ a3.unsqueeze(-1)).squeeze(-1)
              - 2 * ((A * A2) @ d.unsqueeze(-1)).squeeze(-1)) / 2
        c6 = (tr6 - 3 * (a3 * a3).sum(-1) + 9 * (A * A2 * A2).sum((-2, -1)) - 6 * (a2 * a4).sum(-1)
              + 6 * a4.sum(-1) - 4 * a3.sum(-1) + 4 * (a2**3).sum(-1) + 3 * A3.sum((-2, -1))
              - 12 * (a2 * a2).sum(-1) + 4 * a2.sum(-1)) / 12
        node = torch.stack((c3, c4, c5), dim=-1)
        graph = torch.stack((c3.sum(-1) / 3, c4.sum(-1) / 4, c5.sum(-1) / 5, c6), dim=-1)
        return node, graph

    def spectral_one(self, A: Tensor) -> tuple[Tensor, Tensor]:
        """One graph's ``[not_lcc, v1, v2]`` per node and ``[#components, λ1/m .. λk/m]``; ``A`` is ``[m, m]``."""
        m = A.shape[0]
        dtype = A.dtype
        node = torch.zeros(m, 1 + self.k_vec, dtype=dtype)
        graph = torch.full((1 + self.k_val,), 2.0, dtype=dtype)
        if m == 0:
            graph[0] = 0.0
            return node, graph
        c, labels = scipy_components(csr_matrix((A > 0).numpy()), directed=False)
        sizes = np.bincount(labels)
        node[:, 0] = torch.from_numpy((sizes[labels] < sizes.max()).astype(np.float64)).to(dtype)
        L = torch.diag(A.sum(-1)) - A
        L = (L + L.T) / 2
        vals, vecs = torch.linalg.eigh(L)
        graph[0] = c
        for i in range(self.k_val):
            if c + i < m:
                graph[1 + i] = vals[c + i] / m
        for i in range(self.k_vec):
            if c + i < m:
                v = vecs[:, c + i]
                node[:, 1 + i] = -v if (v**3).sum() < 0 else v
        return node, graph

    @torch.no_grad()
    def forward(self, noisy: DenseGraph) -> DenseGraph:
        X, E, mask = noisy.X, noisy.E, noisy.node_mask
        B, n = mask.shape
        pair = mask.unsqueeze(1) & mask.unsqueeze(2) & ~torch.eye(n, dtype=torch.bool, device=E.device)
        A = (E[..., 1:].sum(-1) * pair).to(torch.float64)
        node_c, graph_c = self.cycles(A)
        node_c = (node_c / 10).clamp(max=1.0) * mask.unsqueeze(-1)
        graph_c = (graph_c / 10).clamp(max=1.0)
        node_s = torch.zeros(B, n, 1 + self.k_vec, dtype=torch.float64)
        graph_s = torch.zeros(B, 1 + self.k_val, dtype=torch.float64)
        A_cpu = A.cpu()
        for b in range(B):  # one eigendecomposition per graph
            idx = torch.nonzero(mask[b].cpu()).squeeze(-1)
            node_b, graph_b = self.spectral_one(A_cpu[b][idx][:, idx])
            node_s[b, idx] = node_b
            graph_s[b] = graph_b
        node_s, graph_s = node_s.to(X.device), graph_s.to(X.device)
        xs = [node_c, node_s]
        ys = [mask.sum(-1, keepdim=True).to(torch.float64) / self.max_nodes, graph_c, graph_s]
        if self.molecular is not None:
            node_m, graph_m = self.molecular(X, E, mask)
            xs.append(node_m.to(torch.float64))
            ys.append(graph_m.to(torch.float64))
        extra_X = torch.cat(xs, dim=-1).to(X.dtype)
        extra_y = torch.cat(ys, dim=-1).to(X.dtype)
        return DenseGraph(extra_X, E.new_zeros(B, n, n, 0), extra_y, mask)


class BaselineDenoiser(nn.Module):
    """Extra features + :class:`BaselineGraphTransformer`, the same interface as ``GraphTransformerDenoiser``."""

    def __init__(self, extra_features: BaselineExtraFeatures, network: BaselineGraphTransformer) -> None:
        super().__init__()
        self.extra_features = extra_features
        self.network = network

    def inputs(self, noisy: DenseGraph, extra: DenseGraph, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        X = torch.cat((noisy.X, extra.X), dim=-1)
        y = torch.cat((noisy.y, extra.y, t.unsqueeze(-1).to(noisy.X.dtype)), dim=-1)
        return X, noisy.E, y, noisy.node_mask

    def forward(self, noisy: DenseGraph, t: Tensor) -> DenseGraph:
        noisy = noisy.mask()
        return self.network(*self.inputs(noisy, self.extra_features(noisy), t))


def baseline_like(denoiser, dropout: float = 0.1) -> BaselineDenoiser:
    """A :class:`BaselineDenoiser` with the sizes of a ``graphdiff`` ``GraphTransformerDenoiser`` (fresh weights)."""
    net = denoiser.network
    features = denoiser.extra_features
    if features.mode != "all":
        raise ValueError("the baseline implements extra_features='all' only")
    extra = BaselineExtraFeatures(features.max_nodes, features.molecular)
    baseline = BaselineGraphTransformer(
        net.n_layers, net.input_dims.as_dict(), net.hidden_mlp_dims, net.hidden_dims, net.output_dims.as_dict(),
        dropout=dropout,
    )
    return BaselineDenoiser(extra, baseline)


@torch.no_grad()
def copy_weights(denoiser, baseline: BaselineDenoiser) -> int:
    """Copy a graphdiff ``GraphTransformerDenoiser``'s weights into a :class:`BaselineDenoiser` of the same sizes.

    The fused projections are split (``qkv`` -> ``q, k, v``; ``y_e`` / ``y_x`` -> ``add, mul`` halves). The last
    graphdiff layer of a network without a ``y`` output has no ``y`` update; the baseline's (unused) one keeps
    its own weights. Returns the number of tensors copied.
    """
    src, dst = denoiser.network, baseline.network
    copied = 0

    def put(target: nn.Linear, weight: Tensor, bias: Tensor) -> None:
        nonlocal copied
        target.weight.copy_(weight)
        target.bias.copy_(bias)
        copied += 2

    def linear(target: nn.Linear, source: nn.Linear) -> None:
        put(target, source.weight, source.bias)

    for name in ("mlp_in_X", "mlp_in_E", "mlp_in_y", "mlp_out_X", "mlp_out_E"):
        a, b = getattr(src, name), getattr(dst, name)
        linear(b[0], a[0])
        linear(b[2], a[2])
    if src.mlp_out_y is not None:
        linear(dst.mlp_out_y[0], src.mlp_out_y[0])
        linear(dst.mlp_out_y[2], src.mlp_out_y[2])
    for layer_s, layer_d in zip(src.layers, dst.tf_layers, strict=True):
        att_s, att_d = layer_s.attention, layer_d.self_attn
        dx = att_s.dx
        w, b = att_s.qkv.weight, att_s.qkv.bias
        for i, target in enumerate((att_d.q, att_d.k, att_d.v)):
            put(target, w[i * dx : (i + 1) * dx], b[i * dx : (i + 1) * dx])
        linear(att_d.e_mul, att_s.e_mul)
        linear(att_d.e_add, att_s.e_add)
        for fused, add, mul in ((att_s.y_e, att_d.y_e_add, att_d.y_e_mul), (att_s.y_x, att_d.y_x_add, att_d.y_x_mul)):
            put(add, fused.weight[:dx], fused.bias[:dx])
            put(mul, fused.weight[dx:], fused.bias[dx:])
        linear(att_d.x_out, att_s.x_out)
        linear(att_d.e_out, att_s.e_out)
        if att_s.update_y:
            linear(att_d.y_y, att_s.y_y)
            linear(att_d.x_y.lin, att_s.x_y)
            linear(att_d.e_y.lin, att_s.e_y)
            linear(att_d.y_out[0], att_s.y_out[0])
            linear(att_d.y_out[2], att_s.y_out[2])
            linear(layer_d.lin_y1, layer_s.ff_y[0])
            linear(layer_d.lin_y2, layer_s.ff_y[3])
            for a, b in ((layer_d.norm_y1, layer_s.norm_y1), (layer_d.norm_y2, layer_s.norm_y2)):
                put(a, b.weight, b.bias)
        linear(layer_d.linX1, layer_s.ff_x[0])
        linear(layer_d.linX2, layer_s.ff_x[3])
        linear(layer_d.linE1, layer_s.ff_e[0])
        linear(layer_d.linE2, layer_s.ff_e[3])
        for a, b in ((layer_d.normX1, layer_s.norm_x1), (layer_d.normX2, layer_s.norm_x2),
                     (layer_d.normE1, layer_s.norm_e1), (layer_d.normE2, layer_s.norm_e2)):
            put(a, b.weight, b.bias)
    return copied
