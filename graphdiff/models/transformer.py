"""DiGress's graph transformer (Vignac et al., ICLR 2023, §4.3 and Appendix B), written for speed.

Three streams — nodes ``X [B, n, dx]``, edges ``E [B, n, n, de]``, globals ``y [B, dy]`` — updated by
:class:`TransformerLayer` blocks. Inside :class:`NodeEdgeAttention`:

* per-channel attention scores ``S_ijc = Q_ic K_jc / sqrt(df)`` (``df = dx / n_head``). As in the reference code the
  product is **not** summed over a head's channels: every one of the ``dx`` channels has its own softmax, and
  ``n_head`` only sets the ``1/sqrt(df)`` scale;
* FiLM from edges: ``Y = S ∘ (E W_mul + 1) + E W_add``;
* new edges from the modulated scores, FiLM'd by ``y``: ``E' = W_out((y W_emul + 1) ∘ Y + y W_eadd)``;
* new nodes: softmax of ``Y`` over the real keys ``j``, values ``V``, FiLM'd by ``y``;
* new globals: ``y W + pool(X) + pool(E)`` (mean, min, max, std over real nodes / real node pairs) and an MLP.

Faster and leaner than the reference for the same function: the edge FiLM and the score product run in one
custom autograd function that recomputes its intermediates in the backward pass, the y-FiLM of the new edges is
folded into a per-graph output matrix, and the attention softmax is recomputed in the backward pass
(:class:`_SoftmaxAggregate`), so a layer keeps one ``[B, n, n, dx]`` tensor (the modulated scores) instead of
about ten; the edge stream's LayerNorms and feed-forward are recomputed too (``recompute_edges``).

Deviations from the reference, all needed for padding invariance (a graph's output does not depend on the
other graphs of its batch): pooling to ``y`` ignores padded nodes (the reference averages over padding too), and
a graph with a single node gets a zero standard deviation instead of NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as activation_checkpoint

from graphdiff.errors import ConfigError
from graphdiff.models.base import (
    ConditionEmbedding,
    Denoiser,
    GraphDims,
    register_denoiser,
    sanitize_padding,
    split_condition,
)
from graphdiff.models.features import (
    DiGressMolecularFeatures,
    ExtraFeatures,
    FeatureMode,
    InputProtocol,
    MolecularFeatures,
    check_protocol,
    molecular_features,
)
from graphdiff.types import DenseGraph

if TYPE_CHECKING:
    from graphdiff.info import DatasetInfo

# --------------------------------------------------------------------------------------------------------------
# Sizes

HIDDEN_DIM_KEYS = ("dx", "de", "dy", "n_head", "dim_ffX", "dim_ffE", "dim_ffy")
HIDDEN_MLP_KEYS = ("X", "E", "y")

# The reference GraphTransformer never passes ``dim_ffy`` to its layers, whose default is 2048: every published
# DiGress model ran with a 2048-wide y feed-forward whatever its config said. The presets reproduce that.
_REFERENCE_DIM_FFY = 2048

TRANSFORMER_PRESETS: dict[str, dict[str, Any]] = {
    # cvignac/DiGress configs/model/discrete.yaml (the defaults every experiment starts from).
    "digress": {
        "n_layers": 5,
        "hidden_mlp_dims": {"X": 256, "E": 128, "y": 128},
        "hidden_dims": {
            "dx": 256, "de": 64, "dy": 64, "n_head": 8, "dim_ffX": 256, "dim_ffE": 128, "dim_ffy": _REFERENCE_DIM_FFY,
        },
    },
    # cvignac/DiGress configs/experiment/planar.yaml (config dim_ffy: 256, unused by the reference).
    "planar": {
        "n_layers": 10,
        "hidden_mlp_dims": {"X": 128, "E": 64, "y": 128},
        "hidden_dims": {
            "dx": 256, "de": 64, "dy": 64, "n_head": 8, "dim_ffX": 256, "dim_ffE": 64, "dim_ffy": _REFERENCE_DIM_FFY,
        },
    },
    # cvignac/DiGress configs/experiment/sbm.yaml: as planar with 8 layers.
    "sbm": {
        "n_layers": 8,
        "hidden_mlp_dims": {"X": 128, "E": 64, "y": 128},
        "hidden_dims": {
            "dx": 256, "de": 64, "dy": 64, "n_head": 8, "dim_ffX": 256, "dim_ffE": 64, "dim_ffy": _REFERENCE_DIM_FFY,
        },
    },
    # cvignac/DiGress configs/experiment/qm9_no_h.yaml: n_layers 9 (qm9_with_h.yaml has 7, set in
    # configs/discrete/qm9_h.yaml), the rest from
    # configs/model/discrete.yaml (config dim_ffy: 128, unused by the reference).
    "qm9": {
        "n_layers": 9,
        "hidden_mlp_dims": {"X": 256, "E": 128, "y": 128},
        "hidden_dims": {
            "dx": 256, "de": 64, "dy": 64, "n_head": 8, "dim_ffX": 256, "dim_ffE": 128, "dim_ffy": _REFERENCE_DIM_FFY,
        },
    },
}


def transformer_config(preset: str | None = None, **overrides: Any) -> dict[str, Any]:
    """The keyword arguments of :class:`GraphTransformer` for a preset, with overrides merged in.

    ``hidden_dims`` and ``hidden_mlp_dims`` overrides are merged key by key, so ``hidden_dims={"dx": 128}``
    changes only ``dx``. Without a preset the base is ``"digress"`` (DiGress's model defaults).

    Raises:
        ConfigError: unknown preset or unknown size key.
    """
    name = preset or "digress"
    if name not in TRANSFORMER_PRESETS:
        raise ConfigError(f"unknown transformer preset {name!r}; choose one of {', '.join(TRANSFORMER_PRESETS)}")
    base = TRANSFORMER_PRESETS[name]
    config: dict[str, Any] = {
        "n_layers": base["n_layers"],
        "hidden_mlp_dims": dict(base["hidden_mlp_dims"]),
        "hidden_dims": dict(base["hidden_dims"]),
    }
    for key, value in overrides.items():
        if value is None:
            continue
        if key in ("hidden_dims", "hidden_mlp_dims"):
            allowed = HIDDEN_DIM_KEYS if key == "hidden_dims" else HIDDEN_MLP_KEYS
            unknown = set(value) - set(allowed)
            if unknown:
                raise ConfigError(f"unknown {key} keys {sorted(unknown)}; allowed: {', '.join(allowed)}")
            config[key].update(value)
        else:
            config[key] = value
    return config


# --------------------------------------------------------------------------------------------------------------
# Building blocks


class _EdgeModulatedScores(torch.autograd.Function):
    """``Y = (q_i ∘ k_j) ∘ (E_ij W_mul^T + b_mul + 1) + E_ij W_add^T + b_add`` without keeping intermediates.

    Shapes: ``q, k [B, n, C]``, ``E [B, n, n, de]``, ``W [C, de]``, ``b [C]`` → ``Y [B, n, n, C]``. Only the
    inputs are saved; the backward pass recomputes the two ``[B, n, n, C]`` intermediates it needs.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, q: Tensor, k: Tensor, E: Tensor, w_mul: Tensor, b_mul: Tensor, w_add: Tensor, b_add: Tensor
    ) -> Tensor:
        dtype = q.dtype
        B, n, _, de = E.shape
        C = q.shape[-1]
        E_flat = E.reshape(B * n * n, de).to(dtype)
        Y = F.linear(E_flat, w_mul.to(dtype), b_mul.to(dtype) + 1).view(B, n, n, C)
        Y.mul_(q.unsqueeze(2)).mul_(k.unsqueeze(1))
        Y.view(B * n * n, C).addmm_(E_flat, w_add.to(dtype).t()).add_(b_add.to(dtype))
        ctx.save_for_backward(q, k, E, w_mul, b_mul, w_add)
        return Y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        q, k, E, w_mul, b_mul, w_add = ctx.saved_tensors
        dtype = q.dtype
        B, n, _, de = E.shape
        C = q.shape[-1]
        grad = grad.to(dtype).contiguous()
        E_flat = E.reshape(B * n * n, de).to(dtype)
        g_flat = grad.view(B * n * n, C)
        need_q, need_k, need_E, need_wm, need_bm, need_wa, need_ba = ctx.needs_input_grad
        dq = dk = dE = dwm = dbm = dwa = dba = None

        # d scores = grad ∘ (E W_mul + b_mul + 1); reuse the recomputed factor's buffer.
        g_scores = F.linear(E_flat, w_mul.to(dtype), b_mul.to(dtype) + 1).view(B, n, n, C).mul_(grad)
        buffer = torch.empty_like(grad)
        if need_q:
            dq = torch.mul(g_scores, k.unsqueeze(1), out=buffer).sum(2)
        if need_k:
            dk = torch.mul(g_scores, q.unsqueeze(2), out=buffer).sum(1)
        del g_scores
        # d (E W_mul + b_mul) = grad ∘ q_i ∘ k_j.
        g_mul = torch.mul(q.unsqueeze(2), k.unsqueeze(1), out=buffer).mul_(grad).view(B * n * n, C)
        if need_wm:
            dwm = g_mul.t() @ E_flat
        if need_bm:
            dbm = g_mul.sum(0)
        if need_E:
            dE = torch.addmm(g_mul @ w_mul.to(dtype), g_flat, w_add.to(dtype)).view(B, n, n, de)
        del g_mul, buffer
        if need_wa:
            dwa = g_flat.t() @ E_flat
        if need_ba:
            dba = g_flat.sum(0)
        return dq, dk, dE, dwm, dbm, dwa, dba


def edge_modulated_scores(q: Tensor, k: Tensor, E: Tensor, mul: nn.Linear, add: nn.Linear) -> Tensor:
    """``(q_i ∘ k_j) ∘ (mul(E_ij) + 1) + add(E_ij)``, ``[B, n, n, C]``; see :class:`_EdgeModulatedScores`."""
    return _EdgeModulatedScores.apply(q, k, E, mul.weight, mul.bias, add.weight, add.bias)


class _SoftmaxAggregate(torch.autograd.Function):
    """``out_ic = Σ_j softmax_j(S_ijc) v_jc``: per-channel attention that keeps no attention weights.

    Shapes: ``S [B, n, n, C]`` (query ``i``, key ``j``), ``v [B, n, C]``, ``key_mask [B, 1, n, 1]`` bool or
    ``None`` → ``[B, n, C]``. Masked keys get weight 0. Autograd would keep the ``[B, n, n, C]`` weights for the
    backward pass; this function keeps only ``S`` (which the caller keeps anyway) and recomputes the softmax,
    using ``dS_ijc = a_ijc g_ic (v_jc - out_ic)``.
    """

    @staticmethod
    def forward(ctx: Any, scores: Tensor, v: Tensor, key_mask: Tensor | None) -> Tensor:  # type: ignore[override]
        attn = _masked_softmax(scores, key_mask)
        out = attn.mul_(v.unsqueeze(1)).sum(2)
        ctx.save_for_backward(scores, v, out, key_mask)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        scores, v, out, key_mask = ctx.saved_tensors
        attn = _masked_softmax(scores, key_mask)
        weighted = attn.mul_(grad.unsqueeze(2))  # a_ijc g_ic, in the weights' buffer
        dv = weighted.sum(1) if ctx.needs_input_grad[1] else None
        d_scores = weighted.mul_(v.unsqueeze(1) - out.unsqueeze(2))
        if key_mask is not None:  # rows without any real key get uniform weights; no gradient flows there
            d_scores.masked_fill_(~key_mask, 0.0)
        return d_scores, dv, None


def _masked_softmax(scores: Tensor, key_mask: Tensor | None) -> Tensor:
    """Softmax over keys (axis 2) of ``scores [B, n, n, C]``; masked keys get a finite -inf (no NaN rows)."""
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=2)


def softmax_aggregate(scores: Tensor, v: Tensor, key_mask: Tensor | None = None) -> Tensor:
    """``Σ_j softmax_j(scores_ijc) v_jc``, ``[B, n, C]``; see :class:`_SoftmaxAggregate`."""
    return _SoftmaxAggregate.apply(scores, v, key_mask)


def masked_pool(values: Tensor, mask: Tensor, dims: tuple[int, ...]) -> Tensor:
    """Mean, min, max and (unbiased) standard deviation over the entries where ``mask`` is true.

    Args:
        values: ``[B, ..., d]``.
        mask: bool, broadcastable to ``values`` with a trailing singleton axis.
        dims: the axes reduced.

    Returns:
        ``[B, 4d]`` = ``[mean, min, max, std]``; zeros for a graph without entries; std 0 for a single entry.
    """
    count = mask.sum(dims)  # [B, 1]
    weights = mask.to(values.dtype)
    denom = count.clamp(min=1).to(values.dtype)
    mean = (values * weights).sum(dims) / denom
    low = values.masked_fill(~mask, math.inf).amin(dims)
    high = values.masked_fill(~mask, -math.inf).amax(dims)
    centred = values - mean.view(mean.shape[0], *([1] * len(dims)), mean.shape[-1])
    var = (centred * centred * weights).sum(dims) / (count - 1).clamp(min=1).to(values.dtype)
    std = var.clamp(min=1e-12).sqrt()  # clamp: finite gradient at zero variance
    stats = torch.cat((mean, low, high, std), dim=-1)
    return torch.where(count > 0, stats, torch.zeros((), dtype=stats.dtype, device=stats.device))


class NodeEdgeAttention(nn.Module):
    """DiGress's ``NodeEdgeBlock``: the attention that updates nodes, edges and globals.

    Args:
        dx, de, dy: hidden widths of the three streams.
        n_head: heads (``dx % n_head == 0``); sets the score scale ``1/sqrt(dx / n_head)``.
        update_y: compute a new ``y`` (the last layer of a network without a ``y`` output skips it, so every
            parameter gets a gradient).
    """

    def __init__(self, dx: int, de: int, dy: int, n_head: int, update_y: bool = True) -> None:
        super().__init__()
        if dx % n_head != 0:
            raise ConfigError(f"hidden dx ({dx}) must be divisible by n_head ({n_head})")
        self.dx, self.de, self.dy, self.n_head = dx, de, dy, n_head
        self.scale = 1.0 / math.sqrt(dx // n_head)
        self.qkv = nn.Linear(dx, 3 * dx)
        self.e_mul = nn.Linear(de, dx)  # FiLM edges -> scores
        self.e_add = nn.Linear(de, dx)
        self.y_e = nn.Linear(dy, 2 * dx)  # FiLM y -> new edges (add, mul), width dx as the reference
        self.y_x = nn.Linear(dy, 2 * dx)  # FiLM y -> new nodes (add, mul)
        self.x_out = nn.Linear(dx, dx)
        self.e_out = nn.Linear(dx, de)
        self.update_y = update_y
        if update_y:
            self.y_y = nn.Linear(dy, dy)
            self.x_y = nn.Linear(4 * dx, dy)
            self.e_y = nn.Linear(4 * de, dy)
            self.y_out = nn.Sequential(nn.Linear(dy, dy), nn.ReLU(), nn.Linear(dy, dy))

    def forward(
        self, X: Tensor, E: Tensor, y: Tensor, node_mask: Tensor, has_padding: bool = True
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """One attention step.

        Args:
            X: ``[B, n, dx]``; E: ``[B, n, n, de]``; y: ``[B, dy]``; node_mask: ``[B, n]`` bool.
            has_padding: ``False`` lets the key mask be skipped when every node is real.

        Returns:
            ``(new_X [B, n, dx], new_E [B, n, n, de], new_y [B, dy] or None)``; values at padding are finite
            but meaningless.
        """
        B, n, dx = X.shape
        q, k, v = self.qkv(X).chunk(3, dim=-1)
        Y = edge_modulated_scores(q * self.scale, k, E, self.e_mul, self.e_add)  # [B, n, n, dx]

        # New edges: e_out(y_add + (y_mul + 1) ∘ Y) as one batched product with a per-graph matrix.
        ye_add, ye_mul = self.y_e(y).chunk(2, dim=-1)  # [B, dx] each
        W = self.e_out.weight  # [de, dx]
        W_graph = W.unsqueeze(0) * (ye_mul + 1).unsqueeze(1)  # [B, de, dx]
        bias = F.linear(ye_add, W, self.e_out.bias)  # [B, de]
        new_E = torch.baddbmm(bias.unsqueeze(1), Y.view(B, n * n, dx), W_graph.transpose(1, 2)).view(B, n, n, -1)

        # New nodes: per-channel softmax over real keys j.
        agg = softmax_aggregate(Y, v, node_mask.view(B, 1, n, 1) if has_padding else None)  # [B, n, dx]
        yx_add, yx_mul = self.y_x(y).chunk(2, dim=-1)
        new_X = self.x_out(yx_add.unsqueeze(1) + (yx_mul.unsqueeze(1) + 1) * agg)

        new_y = None
        if self.update_y:
            pair = node_mask.unsqueeze(1) & node_mask.unsqueeze(2)
            pooled_x = masked_pool(X, node_mask.unsqueeze(-1), (1,))
            if torch.is_grad_enabled():  # recompute the cheap pooling in backward: it would keep two E-sized tensors
                pooled_e = activation_checkpoint(masked_pool, E, pair.unsqueeze(-1), (1, 2), use_reentrant=False)
            else:
                pooled_e = masked_pool(E, pair.unsqueeze(-1), (1, 2))
            new_y = self.y_out(self.y_y(y) + self.x_y(pooled_x) + self.e_y(pooled_e))
        return new_X, new_E, new_y


def _feed_forward(width: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, width), nn.Dropout(dropout)
    )


class TransformerLayer(nn.Module):
    """DiGress's ``XEyTransformerLayer``: attention, then per stream residual + LayerNorm, feed-forward,
    residual + LayerNorm (post-norm).

    Args:
        dx, de, dy, n_head: widths (see :class:`NodeEdgeAttention`).
        dim_ffX, dim_ffE, dim_ffy: feed-forward hidden widths.
        dropout: dropout rate of the residual branches and feed-forwards.
        layer_norm_eps: LayerNorm epsilon.
        update_y: whether this layer updates ``y``.
        recompute_edges: in training, recompute the edge stream's residual, LayerNorms and feed-forward in the
            backward pass instead of keeping their ``[B, n, n, de]`` float activations (about 7 per layer). The
            dropout masks are drawn once and kept as booleans, so the result is the same either way.

    The edge stream's three dropouts draw their masks with :func:`dropout_mask` (``uniform >= p``, the same
    Bernoulli law as :class:`torch.nn.Dropout`, about twice as fast on a CPU, where ``bernoulli_`` on the
    ``[B, n, n, de]`` edge tensors was the largest single operator in the profile of a planar layer).
    """

    def __init__(
        self,
        dx: int,
        de: int,
        dy: int,
        n_head: int,
        dim_ffX: int,
        dim_ffE: int,
        dim_ffy: int,
        dropout: float = 0.1,
        layer_norm_eps: float = 1e-5,
        update_y: bool = True,
        recompute_edges: bool = True,
    ) -> None:
        super().__init__()
        self.attention = NodeEdgeAttention(dx, de, dy, n_head, update_y=update_y)
        self.update_y = update_y
        self.recompute_edges = recompute_edges
        self.drop_x = nn.Dropout(dropout)
        self.drop_e = nn.Dropout(dropout)
        self.norm_x1 = nn.LayerNorm(dx, eps=layer_norm_eps)
        self.norm_x2 = nn.LayerNorm(dx, eps=layer_norm_eps)
        self.norm_e1 = nn.LayerNorm(de, eps=layer_norm_eps)
        self.norm_e2 = nn.LayerNorm(de, eps=layer_norm_eps)
        self.ff_x = _feed_forward(dx, dim_ffX, dropout)
        self.ff_e = _feed_forward(de, dim_ffE, dropout)  # its Dropouts, like drop_e, only carry the rate here
        if update_y:
            self.drop_y = nn.Dropout(dropout)
            self.norm_y1 = nn.LayerNorm(dy, eps=layer_norm_eps)
            self.norm_y2 = nn.LayerNorm(dy, eps=layer_norm_eps)
            self.ff_y = _feed_forward(dy, dim_ffy, dropout)

    def forward(
        self, X: Tensor, E: Tensor, y: Tensor, node_mask: Tensor, has_padding: bool = True
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Shapes as :meth:`NodeEdgeAttention.forward`; returns ``(X, E, y)`` of the input shapes."""
        new_X, new_E, new_y = self.attention(X, E, y, node_mask, has_padding)
        X = self.norm_x1(X + self.drop_x(new_X))
        X = self.norm_x2(X + self.ff_x(X))
        p = self.drop_e.p if self.training else 0.0
        masks: tuple[Tensor | None, ...] = (None, None, None)
        if p > 0:
            masks = (dropout_mask(E, p), dropout_mask(E, p, width=self.ff_e[0].out_features), dropout_mask(E, p))
        if self.recompute_edges and torch.is_grad_enabled():
            # The masks are inputs, so the recomputation draws no random numbers.
            E = activation_checkpoint(self._update_edges, E, new_E, *masks, use_reentrant=False,
                                      preserve_rng_state=False)
        else:
            E = self._update_edges(E, new_E, *masks)
        if new_y is not None:
            y = self.norm_y1(y + self.drop_y(new_y))
            y = self.norm_y2(y + self.ff_y(y))
        return X, E, y

    def _update_edges(
        self, E: Tensor, new_E: Tensor, keep_new: Tensor | None, keep_hidden: Tensor | None, keep_out: Tensor | None
    ) -> Tensor:
        """Residual + LayerNorm, feed-forward, residual + LayerNorm of the edge stream, ``[B, n, n, de]``.

        ``keep_*``: bool dropout masks of ``new_E``, of the feed-forward's hidden layer and of its output, or
        ``None`` for no dropout.
        """
        scale = 1.0 / (1.0 - self.drop_e.p) if self.drop_e.p < 1 else 0.0
        linear_in, _, _, linear_out, _ = self.ff_e
        E = self.norm_e1(E + _dropout(new_E, keep_new, scale))
        hidden = _dropout(F.relu(linear_in(E)), keep_hidden, scale)
        return self.norm_e2(E + _dropout(linear_out(hidden), keep_out, scale))


def dropout_mask(like: Tensor, p: float, width: int | None = None) -> Tensor:
    """Bool keep-mask with ``P(keep) = 1 - p``, shaped as ``like`` (last axis ``width`` when given)."""
    shape = like.shape if width is None else (*like.shape[:-1], width)
    return torch.rand(shape, dtype=like.dtype, device=like.device) >= p


def _dropout(x: Tensor, keep: Tensor | None, scale: float) -> Tensor:
    return x if keep is None else x * keep * scale


def _mlp(sizes: Sequence[int], final_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if final_activation or i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _add_residual(out: Tensor, inp: Tensor, width: int) -> Tensor:
    """``out[..., :width] += inp[..., :width]`` without in-place ops."""
    if width == 0:
        return out
    if width == out.shape[-1]:
        return out + inp[..., :width]
    return torch.cat((out[..., :width] + inp[..., :width], out[..., width:]), dim=-1)


class GraphTransformer(nn.Module):
    """The DiGress graph transformer on raw tensors (no extra features, no time handling).

    ``input MLPs -> n_layers x TransformerLayer -> output MLPs``, plus the reference's skip connection: the first
    ``residual_dims`` input channels are added to the output logits (in DiGress, the noisy one-hot graph itself).
    The output ``E`` is averaged with its transpose and, like ``X`` and ``y``, zeroed at padding (and on the
    diagonal for ``E``).

    Args:
        input_dims: widths of the input ``X, E, y``.
        output_dims: widths of the output logits (``y`` may be 0).
        n_layers: number of :class:`TransformerLayer`.
        hidden_mlp_dims: hidden widths of the input/output MLPs, keys ``X, E, y``.
        hidden_dims: widths inside the layers, keys ``dx, de, dy, n_head, dim_ffX, dim_ffE, dim_ffy``.
        dropout: dropout rate inside the layers (the reference's fixed 0.1).
        residual_dims: how many leading input channels of each stream are added to the outputs; defaults to
            ``min(input, output)`` per stream.
        layer_norm_eps: LayerNorm epsilon.
        checkpoint: recompute each layer in the backward pass (activation checkpointing) to save memory.
        recompute_edges: recompute each layer's edge-stream LayerNorms and feed-forward in the backward pass
            (default; see :class:`TransformerLayer`): measured on 2 CPU cores, a planar training step at batch 32
            needs about 3 GiB instead of 7 GiB and is faster; QM9-sized graphs at batch 256-1024 take 7-19 % longer.
    """

    def __init__(
        self,
        input_dims: GraphDims | Mapping[str, int] | Sequence[int],
        output_dims: GraphDims | Mapping[str, int] | Sequence[int],
        n_layers: int = 5,
        hidden_mlp_dims: Mapping[str, int] | None = None,
        hidden_dims: Mapping[str, int] | None = None,
        dropout: float = 0.1,
        residual_dims: GraphDims | Mapping[str, int] | Sequence[int] | None = None,
        layer_norm_eps: float = 1e-5,
        checkpoint: bool = False,
        recompute_edges: bool = True,
        condition_dim: int = 0,
    ) -> None:
        super().__init__()
        sizes = transformer_config(None, hidden_mlp_dims=hidden_mlp_dims, hidden_dims=hidden_dims)
        mlp, hid = sizes["hidden_mlp_dims"], sizes["hidden_dims"]
        if n_layers < 1:
            raise ConfigError(f"n_layers must be at least 1, got {n_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        self.input_dims = GraphDims.of(input_dims)
        self.output_dims = GraphDims.of(output_dims)
        inp, out = self.input_dims, self.output_dims
        if residual_dims is None:
            residual_dims = GraphDims(min(inp.X, out.X), min(inp.E, out.E), min(inp.y, out.y))
        self.residual_dims = GraphDims.of(residual_dims)
        res = self.residual_dims
        if res.X > min(inp.X, out.X) or res.E > min(inp.E, out.E) or res.y > min(inp.y, out.y):
            raise ConfigError(f"residual_dims {res} exceed the input {inp} or output {out} dims")
        self.n_layers = n_layers
        self.hidden_dims = dict(hid)
        self.hidden_mlp_dims = dict(mlp)
        self.checkpoint = checkpoint

        self.mlp_in_X = _mlp((inp.X, mlp["X"], hid["dx"]), final_activation=True)
        self.mlp_in_E = _mlp((inp.E, mlp["E"], hid["de"]), final_activation=True)
        self.mlp_in_y = _mlp((inp.y, mlp["y"], hid["dy"]), final_activation=True)
        self.layers = nn.ModuleList(
            TransformerLayer(
                hid["dx"], hid["de"], hid["dy"], hid["n_head"], hid["dim_ffX"], hid["dim_ffE"], hid["dim_ffy"],
                dropout=dropout, layer_norm_eps=layer_norm_eps,
                update_y=out.y > 0 or i < n_layers - 1, recompute_edges=recompute_edges,
            )
            for i in range(n_layers)
        )
        self.mlp_out_X = _mlp((hid["dx"], mlp["X"], out.X), final_activation=False)
        self.mlp_out_E = _mlp((hid["de"], mlp["E"], out.E), final_activation=False)
        self.mlp_out_y = _mlp((hid["dy"], mlp["y"], out.y), final_activation=False) if out.y > 0 else None
        self.condition_dim = condition_dim
        self.condition_embedding = ConditionEmbedding(condition_dim, hid["dy"]) if condition_dim else None

    def forward(self, X: Tensor, E: Tensor, y: Tensor, node_mask: Tensor, condition: Tensor | None = None
                ) -> DenseGraph:
        """Run the network.

        Args:
            X: ``[B, n, input_dims.X]``; E: ``[B, n, n, input_dims.E]`` (symmetric); y: ``[B, input_dims.y]``;
            node_mask: ``[B, n]`` bool.
            condition: ``[B, condition_dim]`` encoded graph-level conditions
                (:mod:`graphdiff.conditioning`), added to the global stream by a :class:`ConditionEmbedding`.

        Returns:
            Logits ``X [B, n, out.X]``, symmetric ``E [B, n, n, out.E]``, ``y [B, out.y]``; zero at padding and on
            the diagonal of ``E``.
        """
        # Eager mode skips the key mask when no node is padded (one [B, n, n, dx] masked_fill fewer per layer and
        # pass; an all-true mask changes no value). Reading the mask is a data-dependent branch, a graph break
        # under torch.compile, so a compiled forward always masks: the compiler fuses the fill into the softmax.
        has_padding = torch.compiler.is_compiling() or not bool(node_mask.all())
        hE = self.mlp_in_E(E)
        hE = (hE + hE.transpose(1, 2)) / 2
        hX = self.mlp_in_X(X)
        hy = self.mlp_in_y(y)
        if self.condition_embedding is not None and condition is not None:
            hy = hy + self.condition_embedding(condition).to(hy.dtype)
        for layer in self.layers:
            if self.checkpoint and torch.is_grad_enabled():
                hX, hE, hy = activation_checkpoint(layer, hX, hE, hy, node_mask, has_padding, use_reentrant=False)
            else:
                hX, hE, hy = layer(hX, hE, hy, node_mask, has_padding)

        res = self.residual_dims
        out_X = _add_residual(self.mlp_out_X(hX), X, res.X)
        out_E = _add_residual(self.mlp_out_E(hE), E, res.E)
        out_E = (out_E + out_E.transpose(1, 2)) / 2
        if self.mlp_out_y is not None:
            out_y = _add_residual(self.mlp_out_y(hy), y, res.y)
        else:
            out_y = hy.new_zeros(hy.shape[0], 0)
        return DenseGraph(out_X, out_E, out_y, node_mask).mask()


# --------------------------------------------------------------------------------------------------------------
# The denoiser


def no_edge_diagonal(graph: DenseGraph) -> DenseGraph:
    """``graph`` with the one-hot of class 0 ("no edge") on the diagonal of ``E`` for every real node, where the
    reference's noisy graphs hold it (graphdiff's hold zeros there).

    Args:
        graph: ``E [B, n, n, de]`` with a zero diagonal, ``node_mask [B, n]``.

    Returns:
        The same graph, ``E[b, i, i] = (1, 0, ..., 0)`` where ``node_mask[b, i]``.
    """
    n, de = graph.E.shape[1], graph.E.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=graph.E.device)
    on_diagonal = (eye & graph.node_mask.unsqueeze(-1)).unsqueeze(-1)  # [B, n, n, 1]
    no_edge = F.one_hot(torch.zeros((), dtype=torch.long, device=graph.E.device), de).to(graph.E.dtype)
    return DenseGraph(graph.X, torch.where(on_diagonal, no_edge, graph.E), graph.y, graph.node_mask)


@register_denoiser("graph_transformer")
class GraphTransformerDenoiser(Denoiser):
    """DiGress's denoiser: extra features of the noisy graph, ``t`` appended to ``y``, the graph transformer.

    Network input: ``X = [X_t, extra X]``, ``E = [E_t, extra E]``, ``y = [y_t, extra y, t]`` (DiGress's order);
    the noisy ``X_t``, ``E_t`` (and ``y_t``) are added to the output logits as the reference does.

    Args:
        input_dims: widths of the noisy data graph (``dx``, ``de``, ``dy``).
        output_dims: widths of the predicted logits (``dx``, ``de``, ``dy_out``).
        preset: ``"digress"`` (default sizes), ``"planar"``, ``"sbm"`` or ``"qm9"`` (see ``TRANSFORMER_PRESETS``).
        n_layers, hidden_mlp_dims, hidden_dims: override the preset (dicts merged key by key).
        dropout: dropout rate (default 0.1 as the reference).
        extra_features: ``"none"``, ``"cycles"``, ``"eigenvalues"``, ``"all"`` or ``"rrwp"`` (see
            :class:`~graphdiff.models.features.ExtraFeatures`).
        rrwp_steps: ``K`` of the ``rrwp`` features (DeFoG: 12, or 20 for SBM, MOSES, GuacaMol, ZINC).
        max_nodes: the dataset's largest graph (needed by the extra features).
        molecular: molecular features to add, or ``None``.
        virtual_classes: node and edge classes appended after the data's in the noisy input (the flow family's
            mask class); the extra features read only the data's classes.
        checkpoint: activation checkpointing of each layer.
        recompute_edges: recompute the edge stream's cheap activations in the backward pass (see
            :class:`GraphTransformer`).
        protocol: ``"graphdiff"`` (default: exact extra features, empty diagonal of ``E``) or ``"digress"``: the
            reference code's input, i.e. its 5-cycle count and padded eigenvalues (see
            :class:`~graphdiff.models.features.ExtraFeatures`), the "no edge" one-hot on the diagonal of the noisy
            ``E`` of every real node, and (built by :meth:`from_dataset_info`) its index-based molecular features.
    """

    def __init__(
        self,
        input_dims: GraphDims | Mapping[str, int] | Sequence[int],
        output_dims: GraphDims | Mapping[str, int] | Sequence[int],
        *,
        preset: str | None = None,
        n_layers: int | None = None,
        hidden_mlp_dims: Mapping[str, int] | None = None,
        hidden_dims: Mapping[str, int] | None = None,
        dropout: float = 0.1,
        extra_features: FeatureMode = "all",
        rrwp_steps: int = 12,
        max_nodes: int | None = None,
        molecular: MolecularFeatures | DiGressMolecularFeatures | None = None,
        virtual_classes: Sequence[int] = (0, 0),
        checkpoint: bool = False,
        recompute_edges: bool = True,
        condition_dim: int = 0,
        protocol: InputProtocol = "graphdiff",
    ) -> None:
        super().__init__(input_dims, output_dims)
        self.protocol = check_protocol(protocol)
        if not 0 <= condition_dim <= self.input_dims.y:
            raise ConfigError(f"condition_dim={condition_dim}: must be within the input y width {self.input_dims.y}")
        self.condition_dim = condition_dim
        self.extra_features = ExtraFeatures(extra_features, max_nodes=max_nodes, molecular=molecular,
                                            rrwp_steps=rrwp_steps, protocol=protocol)
        self.virtual_classes = (int(virtual_classes[0]), int(virtual_classes[1]))
        out = self.output_dims
        # The condition (the trailing columns of y) enters apart from the MLP of y, see GraphTransformer.
        data = GraphDims(self.input_dims.X, self.input_dims.E, self.input_dims.y - condition_dim)
        net_input = data + self.extra_features.dims + GraphDims(0, 0, 1)  # + t
        residual = GraphDims(min(data.X, out.X), min(data.E, out.E), min(data.y, out.y))
        sizes = transformer_config(preset, n_layers=n_layers, hidden_mlp_dims=hidden_mlp_dims, hidden_dims=hidden_dims)
        self.preset = preset
        self.network = GraphTransformer(
            net_input, out, dropout=dropout, residual_dims=residual, checkpoint=checkpoint,
            recompute_edges=recompute_edges, condition_dim=condition_dim, **sizes
        )

    @classmethod
    def from_dataset_info(
        cls,
        info: DatasetInfo,
        *,
        molecular: bool | None = None,
        output_y: int = 0,
        **config: Any,
    ) -> GraphTransformerDenoiser:
        """Build for a dataset: dims from its vocabularies, ``max_nodes`` from its largest graph.

        Args:
            info: the dataset's statistics.
            molecular: add the molecular features (default: when ``info.kind == "molecule"``).
            output_y: width of a predicted ``y`` (0 for unconditional generation).
            **config: other :class:`GraphTransformerDenoiser` arguments (``preset``, ``extra_features``,
                ``protocol``, ...).
        """
        if molecular is None:
            molecular = info.kind == "molecule"
        mol = molecular_features(info, config.get("protocol", "graphdiff")) if molecular else None
        dims = GraphDims(info.num_node_types, info.num_edge_types, 0)
        config.setdefault("max_nodes", info.max_nodes)
        vx, ve = config.get("virtual_classes", (0, 0))
        width = info.conditioning.width  # the noisy graph's y is the encoded condition
        return cls(GraphDims(dims.X + vx, dims.E + ve, width), GraphDims(dims.X, dims.E, output_y), molecular=mol,
                   condition_dim=width, **config)

    def forward(self, noisy: DenseGraph, t: Tensor) -> DenseGraph:
        """Logits of the clean graph; see :class:`~graphdiff.models.base.Denoiser`.

        Args:
            noisy: ``X [B, n, dx]``, ``E [B, n, n, de]``, ``y [B, dy]``, ``node_mask [B, n]``.
            t: ``[B]`` normalised time in ``[0, 1]``.
        """
        t = self.check_input(noisy, t)
        noisy = sanitize_padding(noisy)
        if self.protocol == "digress":
            noisy = no_edge_diagonal(noisy)
        vx, ve = self.virtual_classes
        data = noisy if not (vx or ve) else DenseGraph(noisy.X[..., : noisy.X.shape[-1] - vx],
                                                       noisy.E[..., : noisy.E.shape[-1] - ve], noisy.y, noisy.node_mask)
        extra = self.extra_features(data)
        X = torch.cat((noisy.X, extra.X), dim=-1)
        E = torch.cat((noisy.E, extra.E), dim=-1) if extra.E.shape[-1] else noisy.E
        y_t, condition = split_condition(noisy.y, self.condition_dim)
        y = torch.cat((y_t, extra.y.to(y_t.dtype), t.unsqueeze(-1).to(y_t.dtype)), dim=-1)
        return self.network(X, E, y, noisy.node_mask, condition)
