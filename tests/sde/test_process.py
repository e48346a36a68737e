"""Graph encoding (DenseGraph <-> x, adj, flags), quantisation, and the ScoreSDEProcess end to end."""

from __future__ import annotations

import networkx as nx
import pytest
import torch

from graphdiff.errors import ConfigError
from graphdiff.models.gdss import GDSSScoreModel
from graphdiff.sde.process import GraphEncoding, ScoreSDEProcess, default_edge_values
from graphdiff.sde.samplers import SamplerSettings
from graphdiff.sde.sdes import VESDE, VPSDE
from graphdiff.types import DenseGraph, one_hot_graph

# Batched LAPACK and small matmuls are much slower with 2 threads on a loaded 2-core machine.
pytestmark = pytest.mark.usefixtures("one_thread")


def random_graphs(B: int, n: int, dx: int, de: int, seed: int = 0) -> DenseGraph:
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(2, n + 1, (B,), generator=g)
    mask = torch.arange(n) < sizes[:, None]
    nodes = torch.randint(0, dx, (B, n), generator=g)
    upper = torch.randint(0, de, (B, n, n), generator=g) * (torch.rand(B, n, n, generator=g) < 0.5)
    upper = upper.triu(1)
    return one_hot_graph(nodes, upper + upper.transpose(1, 2), mask, dx, de)


def to_networkx(graph: DenseGraph, b: int) -> nx.Graph:
    k = int(graph.node_mask[b].sum())
    return nx.from_numpy_array(graph.E[b, :k, :k].argmax(-1).numpy())


@pytest.mark.parametrize(("dx", "de", "values"), [(1, 2, (1.0,)), (4, 4, (1.0, 2.0, 3.0)), (3, 5, (1, 2, 3, 1.5))])
def test_encode_decode_roundtrip(dx, de, values):
    graph = random_graphs(16, 7, dx, de)
    enc = GraphEncoding("types", edge_values=values)
    x, adj, flags = enc.encode(graph)
    assert x.shape == (16, 7, dx) and adj.shape == (16, 7, 7) and flags.shape == (16, 7)
    assert torch.equal(adj, adj.transpose(1, 2)) and torch.all(adj.diagonal(dim1=1, dim2=2) == 0)
    expected = torch.tensor((0.0, *map(float, values)))[graph.E.argmax(-1)] * graph.E.sum(-1)
    assert torch.equal(adj, expected)
    back = enc.decode(x, adj, flags, dx)
    assert torch.equal(back.node_mask, graph.node_mask)
    assert torch.equal(back.edge_classes(), graph.edge_classes())
    assert torch.equal(back.node_classes(), graph.node_classes())


def test_quantisation_thresholds_match_gdss():
    flags = torch.ones(1, 2)
    cases_binary = {-0.3: 0, 0.49: 0, 0.51: 1, 1.7: 1}
    cases_bond = {-1.0: 0, 0.49: 0, 0.51: 1, 1.49: 1, 1.51: 2, 2.49: 2, 2.51: 3, 7.0: 3}
    for values, cases in (((1.0,), cases_binary), ((1.0, 2.0, 3.0), cases_bond)):
        enc = GraphEncoding("types", edge_values=values)
        for a, cls in cases.items():
            adj = torch.tensor([[[0.0, a], [a, 0.0]]])
            assert enc.quantize_adj(adj, flags)[0, 0, 1].item() == cls, (values, a)


def test_quantisation_is_symmetric_and_masked():
    enc = GraphEncoding("types")
    adj = torch.tensor([[[0.9, 0.9, 0.1], [0.1, 0.0, 0.8], [0.7, 0.8, 0.0]]])  # asymmetric, diagonal set
    classes = enc.quantize_adj(adj, torch.tensor([[1.0, 1.0, 0.0]]))
    assert classes.tolist() == [[[0, 1, 0], [1, 0, 0], [0, 0, 0]]]


def test_degree_features_are_one_hot_degrees():
    graph = random_graphs(8, 6, 1, 2, seed=3)
    x, _, flags = GraphEncoding("degree", max_feat_num=6).encode(graph)
    for b in range(8):
        g = to_networkx(graph, b)
        k = g.number_of_nodes()
        assert x[b, :k].argmax(-1).tolist() == [d for _, d in sorted(g.degree())]
        assert torch.all(x[b, :k].sum(-1) == 1) and torch.all(x[b, k:] == 0)
    with pytest.raises(ConfigError, match="max_feat_num=2 is too small"):
        GraphEncoding("degree", max_feat_num=2).encode(random_graphs(8, 6, 1, 2, seed=3))


def test_encoding_settings_and_errors():
    assert default_edge_values(["none", "edge"]) == (1.0,)
    assert default_edge_values(["none", "SINGLE", "double", "triple", "aromatic"]) == (1.0, 2.0, 3.0, 1.5)
    with pytest.raises(ConfigError, match="no bond order"):
        default_edge_values(["none", "single", "quadruple"])
    enc = GraphEncoding.for_dataset("graph", ["node"], ["none", "edge"], max_feat_num=10)
    assert (enc.node_features, enc.num_features(1), enc.edge_values) == ("degree", 10, (1.0,))
    enc = GraphEncoding.for_dataset("molecule", ["C", "N", "O", "F"], ["none", "single", "double", "triple"])
    assert (enc.node_features, enc.num_features(4), enc.edge_values) == ("types", 4, (1.0, 2.0, 3.0))
    with pytest.raises(ConfigError, match="needs max_feat_num"):
        GraphEncoding("degree")
    with pytest.raises(ConfigError, match="node_features"):
        GraphEncoding("atoms")
    with pytest.raises(ConfigError, match="cannot generate 3 node types"):
        GraphEncoding("ones", max_feat_num=2).decode(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), torch.ones(1, 2), 3)
    with pytest.raises(ConfigError, match="edge classes"):
        GraphEncoding("types").encode(random_graphs(2, 4, 2, 3))
    x, _, _ = GraphEncoding("ones", max_feat_num=3).encode(random_graphs(2, 4, 1, 2))
    assert x.shape == (2, 4, 3)


def test_drop_isolated_compacts_nodes_like_gdss():
    enc = GraphEncoding("types")
    adj = torch.zeros(2, 4, 4)
    adj[0, 1, 3] = adj[0, 3, 1] = 1.0  # nodes 0 and 2 isolated
    flags = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]])  # graph 1 has no edge at all
    out = enc.decode(torch.ones(2, 4, 1), adj, flags, 1, drop_isolated=True)
    assert out.node_mask.tolist() == [[True, True, False, False], [True, False, False, False]]
    assert out.edge_classes()[0, :2, :2].tolist() == [[0, 1], [1, 0]]


def tiny_model(F: int) -> GDSSScoreModel:
    torch.manual_seed(0)
    return GDSSScoreModel.from_config(max_feat_num=F, depth=2, nhid=8, num_layers=2, num_linears=2, adim=8,
                                      c_init=2, c_hid=4, c_final=2, num_heads=2)


@pytest.mark.parametrize("settings", [SamplerSettings("Euler", "Langevin", num_steps=8),
                                      SamplerSettings("Reverse", "None", num_steps=8),
                                      SamplerSettings("S4", "None", num_steps=8)], ids=["EM+L", "Rev", "S4"])
def test_process_samples_valid_reproducible_graphs(settings):
    proc = ScoreSDEProcess(VPSDE(0.1, 1.0), VESDE(0.2, 1.0), GraphEncoding("types", edge_values=(1.0, 2.0, 3.0)))
    model = tiny_model(3)
    node_mask = torch.arange(6) < torch.tensor([6, 4, 2])[:, None]
    a = proc.sample(model, node_mask, 3, settings, generator=torch.Generator().manual_seed(0))
    b = proc.sample(model, node_mask, 3, settings, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.X, b.X) and torch.equal(a.E, b.E)
    assert a.X.shape == (3, 6, 3) and a.E.shape == (3, 6, 6, 4) and a.y.shape == (3, 0)
    assert torch.equal(a.node_mask, node_mask)
    assert torch.equal(a.E, a.E.transpose(1, 2))
    assert torch.all(a.E.diagonal(dim1=1, dim2=2) == 0)
    assert torch.all(a.X[node_mask].sum(-1) == 1) and torch.all(a.X[~node_mask] == 0)
    pair = node_mask[:, :, None] & node_mask[:, None, :] & ~torch.eye(6, dtype=torch.bool)
    assert torch.all(a.E[pair].sum(-1) == 1) and torch.all(a.E[~pair] == 0)


def test_process_prior_loss_and_correction_hook():
    proc = ScoreSDEProcess(VPSDE(0.1, 1.0), VESDE(0.2, 3.0), GraphEncoding("degree", max_feat_num=7))
    flags = torch.ones(3000, 4)
    x, adj = proc.prior_sampling(flags, 7, torch.Generator().manual_seed(0))
    assert x.std().item() == pytest.approx(1.0, rel=0.02)
    assert adj[:, 0, 1].std().item() == pytest.approx(3.0, rel=0.05)
    assert torch.equal(adj, adj.transpose(1, 2))
    graph = random_graphs(8, 6, 1, 2)
    model = tiny_model(7)
    loss_x, loss_adj = proc.loss(model, graph, generator=torch.Generator().manual_seed(0))
    (loss_x + loss_adj).backward()
    assert all(p.grad is not None for p in model.parameters())
    seen = []
    out = proc.sample(model, graph.node_mask, 1, SamplerSettings("Euler", "None", num_steps=3),
                      correction=lambda g: seen.append(g) or g)
    assert seen and seen[0] is out
