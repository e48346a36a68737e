"""GDSS score networks: equivariance, gradients, symmetry, padding, and layer-level reference checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from graphdiff.errors import ConfigError
from graphdiff.models.gdss import (
    AttentionLayer,
    DenseGCNConv,
    GDSSScoreModel,
    ScoreNetworkA,
    ScoreNetworkX,
    ScoreNetworkXGMH,
    adjacency_powers,
)
from graphdiff.types import DenseGraph

SMALL = dict(nhid=8, num_layers=3, num_linears=2, adim=8, c_init=2, c_hid=4, c_final=2, num_heads=2)


# Batched LAPACK and small matmuls are much slower with 2 threads on a loaded 2-core machine.
pytestmark = pytest.mark.usefixtures("one_thread")


def networks(F_: int = 5) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {
        "X": ScoreNetworkX(F_, depth=3, nhid=8),
        "X_GMH": ScoreNetworkXGMH(F_, depth=3, nhid=8, num_linears=2, c_init=2, c_hid=4, c_final=2, adim=8,
                                  num_heads=2),
        "A": ScoreNetworkA(F_, None, **SMALL),
        "A_MLP": ScoreNetworkA(F_, None, **SMALL, conv="MLP"),
    }


def noisy_batch(B: int = 3, n: int = 7, F_: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    sizes = torch.tensor([7, 5, 2])[:B]
    flags = (torch.arange(n) < sizes[:, None]).float()
    x = torch.randn(B, n, F_, generator=g) * flags[..., None]
    a = torch.randn(B, n, n, generator=g).triu(1)
    adj = (a + a.transpose(1, 2)) * flags[:, None, :] * flags[:, :, None]
    return x, adj, flags


@pytest.mark.parametrize("name", ["X", "X_GMH", "A", "A_MLP"])
def test_permutation_equivariance(name):
    net = networks()[name]
    x, adj, flags = noisy_batch()
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(1))
    out = net(x, adj, flags)
    out_perm = net(x[:, perm], adj[:, perm][:, :, perm], flags[:, perm])
    expected = out[:, perm] if out.dim() == 3 and name.startswith("X") else out[:, perm][:, :, perm]
    assert torch.allclose(out_perm, expected, atol=1e-5)


@pytest.mark.parametrize("name", ["X", "X_GMH", "A", "A_MLP"])
def test_every_parameter_gets_a_gradient(name):
    net = networks()[name]
    x, adj, flags = noisy_batch()
    net(x, adj, flags).pow(2).sum().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing


@pytest.mark.parametrize("name", ["A", "A_MLP"])
def test_adjacency_score_is_symmetric_with_empty_diagonal_and_padding(name):
    x, adj, flags = noisy_batch()
    out = networks()[name](x, adj, flags)
    assert out.shape == adj.shape
    assert torch.allclose(out, out.transpose(1, 2), atol=1e-6)
    assert torch.all(out.diagonal(dim1=1, dim2=2) == 0)
    pad = (flags[:, :, None] * flags[:, None, :]) == 0
    assert torch.all(out[pad] == 0) and torch.all(out[~pad & ~torch.eye(7, dtype=torch.bool)] != 0)


@pytest.mark.parametrize("name", ["X", "X_GMH", "A", "A_MLP"])
def test_padding_is_ignored(name):
    """Garbage in padded rows/columns changes nothing, and a padded graph scores like the unpadded one."""
    net = networks()[name]
    x, adj, flags = noisy_batch()
    out = net(x, adj, flags)
    garbage = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    pad = flags == 0
    x_bad = torch.where(pad[..., None], garbage, x)
    adj_bad = torch.where(pad[:, :, None] | pad[:, None, :], 3.0, adj)
    assert torch.allclose(net(x_bad, adj_bad, flags), out, atol=1e-6)
    k = 5  # graph 1 has 5 real nodes
    alone = net(x[1:2, :k], adj[1:2, :k, :k], flags[1:2, :k])
    expected = out[1:2, :k] if name.startswith("X") else out[1:2, :k, :k]
    assert torch.allclose(alone, expected, atol=1e-5)
    assert torch.all(out[1, k:] == 0)


def test_dense_gcn_matches_pytorch_geometric():
    from torch_geometric.nn import DenseGCNConv as PygDenseGCNConv

    torch.manual_seed(0)
    ours = DenseGCNConv(4, 6)
    ours.bias.data.normal_()
    theirs = PygDenseGCNConv(4, 6)
    theirs.lin.weight.data.copy_(ours.weight.data.T)
    theirs.bias.data.copy_(ours.bias.data)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 5, 4, generator=g)
    adj = torch.rand(2, 5, 5, generator=g)
    adj = adj + adj.transpose(1, 2)  # non-negative weights, arbitrary diagonal (replaced by the self-loop)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    assert torch.allclose(ours(x, adj, mask), theirs(x, adj, mask), atol=1e-6)


def reference_attention_layer(layer: AttentionLayer, x, adj, flags):
    """GDSS's AttentionLayer written channel by channel with one DenseGCNConv per channel (brute force)."""

    def gcn(weight, bias, adj_c):
        conv = DenseGCNConv(weight.shape[0], weight.shape[1])
        conv.weight.data.copy_(weight)
        conv.bias.data.copy_(bias.reshape(-1))
        return conv(x, adj_c)

    values, attentions = [], []
    B, C, n, _ = adj.shape
    for c in range(C):
        q = gcn(layer.query.weight[c], layer.query.bias[c], adj[:, c])
        k = gcn(layer.key.weight[c], layer.key.bias[c], adj[:, c])
        values.append(gcn(layer.value.weight[c], layer.value.bias[c], adj[:, c]))
        d = q.shape[-1] // layer.num_heads
        q_heads = torch.cat(q.split(d, 2), 0)
        k_heads = torch.cat(k.split(d, 2), 0)
        a = torch.tanh(q_heads.bmm(k_heads.transpose(1, 2)) / math.sqrt(layer.conv_output_dim))
        a = a.view(-1, B, n, n).mean(0)
        attentions.append(((a + a.transpose(-1, -2)) / 2).unsqueeze(-1))
    x_out = torch.tanh(layer.multi_channel(torch.cat(values, -1)) * flags[..., None])
    m = layer.mlp(torch.cat([torch.cat(attentions, -1), adj.permute(0, 2, 3, 1)], -1)).permute(0, 3, 1, 2)
    m = m + m.transpose(-1, -2)
    return x_out, m * flags[:, None, :, None] * flags[:, None, None, :]


def test_batched_attention_layer_matches_per_channel_reference():
    torch.manual_seed(0)
    layer = AttentionLayer(num_linears=2, conv_input_dim=5, attn_dim=8, conv_output_dim=6, input_dim=3,
                           output_dim=4, num_heads=2)
    for p in layer.parameters():
        p.data.normal_(0, 0.5)
    x, adj, flags = noisy_batch()
    adjc = adjacency_powers(adj, 3)
    x_out, adj_out = layer(x, adjc, flags)
    x_ref, adj_ref = reference_attention_layer(layer, x, adjc, flags)
    assert torch.allclose(x_out, x_ref, atol=1e-5)
    assert torch.allclose(adj_out, adj_ref, atol=1e-5)


def test_adjacency_powers():
    adj = torch.tensor([[[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]])
    p = adjacency_powers(adj, 3)
    assert torch.equal(p[0, 0], adj[0])
    assert torch.equal(p[0, 1], adj[0] @ adj[0])
    assert torch.equal(p[0, 2], adj[0] @ adj[0] @ adj[0])


def test_model_from_gdss_config_and_errors():
    # GDSS's community_small model settings
    model = GDSSScoreModel.from_config(max_feat_num=10, max_node_num=20, x="ScoreNetworkX", adj="ScoreNetworkA",
                                       conv="GCN", num_heads=4, depth=3, adim=32, nhid=32, num_layers=5,
                                       num_linears=2, c_init=2, c_hid=8, c_final=4)
    x, adj, flags = noisy_batch(F_=10)
    graph = DenseGraph(x, adj.unsqueeze(-1), torch.zeros(x.shape[0], 0), flags.bool())
    out = model(graph, torch.rand(x.shape[0]))
    assert out.X.shape == x.shape and out.E.shape == (*adj.shape, 1)
    assert torch.equal(out.X, model.x_net(x, adj, flags)) and torch.equal(out.E[..., 0], model.adj_net(x, adj, flags))
    with pytest.raises(ConfigError, match="not divisible"):
        ScoreNetworkA(5, None, **{**SMALL, "adim": 6, "num_heads": 4})
    with pytest.raises(ConfigError, match="num_layers"):
        ScoreNetworkA(5, None, **{**SMALL, "num_layers": 1})
    with pytest.raises(ConfigError, match="conv"):
        ScoreNetworkA(5, None, **SMALL, conv="GAT")
    with pytest.raises(ConfigError, match="unknown node network"):
        GDSSScoreModel.from_config(max_feat_num=3, x="GIN")


def test_mlp_depth():
    assert len(ScoreNetworkX(3, 1, 4).final.linears) == 3
    with pytest.raises(ConfigError):
        from graphdiff.models.gdss import MLP

        MLP(0, 2, 2, 2, F.relu)
