"""The graph transformer and the denoiser wrapper: equivariance, masking, gradients, reference formulas."""

from __future__ import annotations

import math

import networkx as nx
import pytest
import torch
import torch.nn.functional as F

from graphdiff.errors import ConfigError
from graphdiff.info import DatasetInfo
from graphdiff.models import (
    Denoiser,
    GraphTransformer,
    GraphTransformerDenoiser,
    available_denoisers,
    build_denoiser,
    transformer_config,
)
from graphdiff.models.transformer import TransformerLayer, _EdgeModulatedScores, _SoftmaxAggregate
from graphdiff.types import DenseGraph, one_hot_graph
from tests.models.test_features import assert_close, random_graphs, well_determined

SMALL = {
    "n_layers": 2,
    "hidden_mlp_dims": {"X": 16, "E": 8, "y": 8},
    "hidden_dims": {"dx": 16, "de": 8, "dy": 8, "n_head": 4, "dim_ffX": 16, "dim_ffE": 8, "dim_ffy": 16},
}


# Batched LAPACK and small matmuls are much slower with 2 threads on a loaded 2-core machine.
pytestmark = pytest.mark.usefixtures("one_thread")


def labelled_batch(
    graphs: list[nx.Graph], n: int, dx: int = 3, de: int = 3, seed: int = 0, dtype: torch.dtype = torch.float64
) -> DenseGraph:
    """Padded batch with random node classes and random non-zero edge classes on the graphs' edges."""
    gen = torch.Generator().manual_seed(seed)
    B = len(graphs)
    edges = torch.zeros(B, n, n, dtype=torch.long)
    mask = torch.zeros(B, n, dtype=torch.bool)
    for b, g in enumerate(graphs):
        mask[b, : g.number_of_nodes()] = True
        for i, j in g.edges():
            edges[b, i, j] = edges[b, j, i] = int(torch.randint(1, de, (1,), generator=gen))
    nodes = torch.randint(0, dx, (B, n), generator=gen)
    g = one_hot_graph(nodes, edges, mask, dx, de)
    return DenseGraph(g.X.to(dtype), g.E.to(dtype), g.y.to(dtype), mask)


def small_denoiser(dims: tuple[int, int, int] = (3, 3, 0), out_y: int = 0, **kw) -> GraphTransformerDenoiser:
    torch.manual_seed(0)
    config = {**SMALL, "extra_features": "all", "max_nodes": 12, **kw}
    return GraphTransformerDenoiser(dims, (dims[0], dims[1], out_y), **config)


def connected_graphs(count: int, low: int, high: int, seed: int) -> list[nx.Graph]:
    graphs = [g for g in random_graphs(10 * count, low, high, seed) if well_determined(g)][:count]
    assert len(graphs) == count
    return graphs


# ---------------------------------------------------------------------------------------------- building blocks


def test_edge_modulated_scores_gradcheck() -> None:
    gen = torch.Generator().manual_seed(0)
    B, n, C, de = 2, 3, 4, 3

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64).requires_grad_()

    args = (rand(B, n, C), rand(B, n, C), rand(B, n, n, de), rand(C, de), rand(C), rand(C, de), rand(C))
    q, k, E, wm, bm, wa, ba = args
    expected = (q[:, :, None] * k[:, None]) * (E @ wm.T + bm + 1) + E @ wa.T + ba
    assert_close(_EdgeModulatedScores.apply(*args), expected, atol=1e-12)
    assert torch.autograd.gradcheck(_EdgeModulatedScores.apply, args)


@pytest.mark.parametrize("masked", [False, True])
def test_softmax_aggregate_matches_autograd_softmax(masked: bool) -> None:
    gen = torch.Generator().manual_seed(1)
    B, n, C = 3, 4, 5
    S = torch.randn(B, n, n, C, generator=gen, dtype=torch.float64).requires_grad_()
    v = torch.randn(B, n, C, generator=gen, dtype=torch.float64).requires_grad_()
    mask = None
    if masked:  # graph 0: 3 real nodes, graph 1: all real, graph 2: no real node (every row fully masked)
        mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=torch.bool).view(B, 1, n, 1)
    # Brute force: softmax of each (graph, query, channel) over the real keys only, written out per key.
    weights = S.exp() if mask is None else S.exp() * mask
    expected = (weights * v.unsqueeze(1)).sum(2) / weights.sum(2).clamp(min=1e-300)
    got = _SoftmaxAggregate.apply(S, v, mask)
    real_rows = slice(None) if mask is None else slice(0, 2)  # an empty graph's output is meaningless
    assert_close(got[real_rows], expected[real_rows], atol=1e-12)
    assert torch.autograd.gradcheck(lambda s_, v_: _SoftmaxAggregate.apply(s_, v_, mask), (S, v))
    # Gradients equal those of autograd through the masked softmax the reference uses.
    reference = (torch.softmax(S if mask is None else S.masked_fill(~mask, torch.finfo(S.dtype).min), 2)
                 * v.unsqueeze(1)).sum(2)
    g = torch.randn(B, n, C, generator=gen, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad(got, (S, v), g), torch.autograd.grad(reference, (S, v), g), strict=True):
        assert_close(a, b, atol=1e-12)


def test_edge_recompute_gives_the_same_gradients_with_dropout() -> None:
    """Recomputing the edge stream in backward replays the same dropout masks: identical loss and gradients."""
    dims = dict(dx=16, de=8, dy=8, n_head=4, dim_ffX=16, dim_ffE=8, dim_ffy=16, dropout=0.5)
    torch.manual_seed(0)
    kept = TransformerLayer(**dims, recompute_edges=False).double().train()
    recomputed = TransformerLayer(**dims, recompute_edges=True).double().train()
    recomputed.load_state_dict(kept.state_dict())
    gen = torch.Generator().manual_seed(3)
    X = torch.randn(2, 6, 16, generator=gen, dtype=torch.float64)
    E = torch.randn(2, 6, 6, 8, generator=gen, dtype=torch.float64)
    y = torch.randn(2, 8, generator=gen, dtype=torch.float64)
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2], dtype=torch.bool)
    results = []
    for layer in (kept, recomputed):
        torch.manual_seed(7)
        out = layer(X, E, y, mask)
        loss = sum((o * torch.linspace(-1, 1, o.shape[-1], dtype=o.dtype)).sum() for o in out)
        grads = torch.autograd.grad(loss, list(layer.parameters()))
        results.append((out, grads))
    for a, b in zip(results[0][0] + results[0][1], results[1][0] + results[1][1], strict=True):
        assert_close(a, b, atol=1e-12)
    assert any(bool((p != 0).any()) for p in results[0][1])


def naive_attention(att, X: torch.Tensor, E: torch.Tensor, y: torch.Tensor):
    """DiGress's NodeEdgeBlock written out loop-free but literally, for graphs without padding."""
    dx = att.dx
    Q, K, V = X @ att.qkv.weight.T[:, :dx], X @ att.qkv.weight.T[:, dx : 2 * dx], X @ att.qkv.weight.T[:, 2 * dx :]
    Q, K, V = Q + att.qkv.bias[:dx], K + att.qkv.bias[dx : 2 * dx], V + att.qkv.bias[2 * dx :]
    S = Q[:, :, None, :] * K[:, None, :, :] / math.sqrt(dx // att.n_head)
    Y = S * (att.e_mul(E) + 1) + att.e_add(E)
    ye = att.y_e(y)
    newE = att.e_out(ye[:, None, None, :dx] + (ye[:, None, None, dx:] + 1) * Y)
    attn = torch.softmax(Y, dim=2)
    agg = (attn * V[:, None, :, :]).sum(2)
    yx = att.y_x(y)
    newX = att.x_out(yx[:, None, :dx] + (yx[:, None, dx:] + 1) * agg)

    def stats(t: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
        return torch.cat((t.mean(dims), t.amin(dims), t.amax(dims), t.std(dims)), -1)

    new_y = att.y_out(att.y_y(y) + att.x_y(stats(X, (1,))) + att.e_y(stats(E, (1, 2))))
    return newX, newE, new_y


def test_attention_matches_reference_formulas() -> None:
    net = GraphTransformer((3, 2, 1), (3, 2, 0), **SMALL).double()
    att = net.layers[0].attention
    gen = torch.Generator().manual_seed(1)
    B, n = 2, 5
    X = torch.randn(B, n, 16, generator=gen, dtype=torch.float64)
    E = torch.randn(B, n, n, 8, generator=gen, dtype=torch.float64)
    y = torch.randn(B, 8, generator=gen, dtype=torch.float64)
    mask = torch.ones(B, n, dtype=torch.bool)
    got = att(X, E, y, mask, has_padding=False)
    got_masked = att(X, E, y, mask, has_padding=True)
    for a, b, c in zip(got, got_masked, naive_attention(att, X, E, y), strict=True):
        assert_close(a, c, atol=1e-10)
        assert_close(b, c, atol=1e-10)


def test_skip_connection_adds_noisy_input_to_logits() -> None:
    model = small_denoiser().eval()
    for mlp in (model.network.mlp_out_X, model.network.mlp_out_E):
        torch.nn.init.zeros_(mlp[-1].weight)
        torch.nn.init.zeros_(mlp[-1].bias)
    graphs = random_graphs(3, 3, 7, seed=2)
    noisy = labelled_batch(graphs, n=8, dtype=torch.float32)
    with torch.no_grad():
        out = model(noisy, torch.rand(3))
    assert_close(out.X, noisy.X, atol=0)
    assert_close(out.E, noisy.E, atol=0)


# ------------------------------------------------------------------------------------------ denoiser contract


def test_output_shapes_symmetric_and_masked() -> None:
    model = small_denoiser(dims=(3, 3, 2), out_y=2)
    noisy = labelled_batch(random_graphs(4, 2, 7, seed=3), n=9, dtype=torch.float32)
    noisy = noisy.replace(y=torch.randn(4, 2))
    out = model(noisy, torch.rand(4))
    assert out.X.shape == (4, 9, 3) and out.E.shape == (4, 9, 9, 3) and out.y.shape == (4, 2)
    assert_close(out.E, out.E.transpose(1, 2), atol=0)
    assert (out.X[~noisy.node_mask] == 0).all()
    pair = noisy.node_mask[:, :, None] & noisy.node_mask[:, None, :]
    assert (out.E[~pair] == 0).all()
    assert (torch.diagonal(out.E, dim1=1, dim2=2) == 0).all()
    assert torch.isfinite(out.X).all() and torch.isfinite(out.E).all()


def test_permutation_equivariance() -> None:
    model = small_denoiser().double().eval()
    noisy = labelled_batch(connected_graphs(4, 5, 8, seed=4), n=10)
    t = torch.tensor([0.1, 0.4, 0.7, 1.0], dtype=torch.float64)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(5))  # shuffles padding slots too
    permuted = DenseGraph(noisy.X[:, perm], noisy.E[:, perm][:, :, perm], noisy.y, noisy.node_mask[:, perm])
    with torch.no_grad():
        out, out_p = model(noisy, t), model(permuted, t)
    assert_close(out_p.X, out.X[:, perm], atol=1e-5)
    assert_close(out_p.E, out.E[:, perm][:, :, perm], atol=1e-5)
    assert out.X.abs().max() > 1e-3  # a non-trivial output


def test_padding_content_is_ignored() -> None:
    model = small_denoiser().eval()
    noisy = labelled_batch(connected_graphs(3, 4, 7, seed=6), n=9, dtype=torch.float32)
    pad = ~noisy.node_mask
    pair_pad = pad[:, :, None] | pad[:, None, :]
    garbage_X = torch.where(pad[..., None], torch.randn_like(noisy.X) * 100, noisy.X)
    garbage_E = torch.where(pair_pad[..., None], torch.randn_like(noisy.E) * 100, noisy.E)
    garbage_E[:, -1, -1] = float("nan")  # the last slot is padding in every graph
    garbage = DenseGraph(garbage_X, garbage_E, noisy.y, noisy.node_mask)
    t = torch.rand(3)
    with torch.no_grad():
        out, out_g = model(noisy, t), model(garbage, t)
    assert_close(out_g.X, out.X, atol=1e-6)
    assert_close(out_g.E, out.E, atol=1e-6)


def test_batch_matches_graphs_alone() -> None:
    model = small_denoiser(dims=(3, 3, 1), out_y=1).double().eval()
    graphs = connected_graphs(3, 4, 8, seed=7)
    batch = labelled_batch(graphs, n=10, seed=8)
    batch = batch.replace(y=torch.randn(3, 1, dtype=torch.float64))
    t = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    with torch.no_grad():
        out = model(batch, t)
        for b, g in enumerate(graphs):
            m = g.number_of_nodes()
            alone = DenseGraph(batch.X[b : b + 1, :m], batch.E[b : b + 1, :m, :m], batch.y[b : b + 1],
                               batch.node_mask[b : b + 1, :m])
            single = model(alone, t[b : b + 1])
            assert_close(single.X[0], out.X[b, :m], atol=1e-6)
            assert_close(single.E[0], out.E[b, :m, :m], atol=1e-6)
            assert_close(single.y[0], out.y[b], atol=1e-6)


@pytest.mark.parametrize("out_y", [0, 2])
def test_every_parameter_gets_a_gradient(out_y: int) -> None:
    model = small_denoiser(dims=(3, 3, out_y), out_y=out_y).train()
    noisy = labelled_batch(random_graphs(4, 2, 7, seed=9), n=8, dtype=torch.float32)
    noisy = noisy.replace(y=torch.randn(4, out_y))
    out = model(noisy, torch.rand(4))
    gen = torch.Generator().manual_seed(0)
    loss = sum((o * torch.randn(o.shape, generator=gen)).sum() for o in (out.X, out.E, out.y))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, name


def test_checkpointing_gives_the_same_gradients() -> None:
    noisy = labelled_batch(random_graphs(3, 3, 6, seed=10), n=7, dtype=torch.float32)
    t = torch.rand(3)
    grads = []
    for checkpoint in (False, True):
        model = small_denoiser(checkpoint=checkpoint).eval()
        out = model(noisy, t)
        (out.X.square().sum() + out.E.square().sum()).backward()
        grads.append([p.grad for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        assert_close(a, b, atol=1e-5)


def test_bfloat16_autocast_runs() -> None:
    model = small_denoiser()
    noisy = labelled_batch(random_graphs(2, 3, 6, seed=11), n=6, dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(noisy, torch.rand(2))
        loss = F.cross_entropy(out.X.reshape(-1, 3).float(), noisy.X.argmax(-1).reshape(-1))
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_rejects_wrong_inputs() -> None:
    model = small_denoiser()
    noisy = labelled_batch(random_graphs(2, 3, 5, seed=12), n=5, dtype=torch.float32)
    with pytest.raises(ValueError, match="input dims"):
        model(noisy.replace(X=noisy.X[..., :2]), torch.rand(2))
    with pytest.raises(ValueError, match="one time per graph"):
        model(noisy, torch.rand(3))


# ------------------------------------------------------------------------------------------- configuration


def test_registry_and_presets() -> None:
    assert "graph_transformer" in available_denoisers()
    model = build_denoiser("graph_transformer", (2, 2, 0), (2, 2, 0), preset="qm9", extra_features="none")
    assert isinstance(model, Denoiser) and len(model.network.layers) == 9
    assert model.network.hidden_dims["dim_ffE"] == 128
    with pytest.raises(ConfigError):
        build_denoiser("no_such_net", (2, 2, 0), (2, 2, 0))
    with pytest.raises(ConfigError):
        transformer_config("no_such_preset")
    with pytest.raises(ConfigError):
        transformer_config("planar", hidden_dims={"width": 3})
    merged = transformer_config("planar", hidden_dims={"dx": 128}, n_layers=3)
    assert merged["n_layers"] == 3 and merged["hidden_dims"]["dx"] == 128 and merged["hidden_dims"]["de"] == 64
    with pytest.raises(ConfigError):
        GraphTransformer((2, 2, 1), (2, 2, 0), hidden_dims={"dx": 30, "n_head": 8})


def test_from_dataset_info_with_molecular_features() -> None:
    info = DatasetInfo(
        name="toy", kind="molecule", node_types=["C", "N", "O", "O-"], edge_types=["none", "single", "double"],
        max_nodes=6, split_sizes={"train": 1}, node_counts=[0] * 7, node_marginals=[0.25] * 4,
        edge_marginals=[0.8, 0.1, 0.1], valencies=[4, 3, 2, 1], atom_weights=[12.0, 14.0, 16.0, 16.0],
    )
    model = GraphTransformerDenoiser.from_dataset_info(info, **SMALL)
    # data 4 + cycles 3 + spectral 3 + molecular 2 node channels; 3 edge channels; 5 + 6 + 1 globals + t.
    assert model.network.input_dims.as_dict() == {"X": 12, "E": 3, "y": 13}
    noisy = labelled_batch(random_graphs(2, 3, 6, seed=13), n=6, dx=4, de=3, dtype=torch.float32)
    out = model(noisy, torch.rand(2))
    assert out.X.shape == (2, 6, 4) and out.E.shape == (2, 6, 6, 3) and out.y.shape == (2, 0)
