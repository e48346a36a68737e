"""The flow family's network side: RRWP features against brute force, equivariance with the mask class, gradients
of every parameter, and the noisy widths of each initial distribution."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from graphdiff.flow import INITIAL_DISTRIBUTIONS
from graphdiff.info import DatasetInfo
from graphdiff.lit import DiscreteFlowModel
from graphdiff.models.features import ExtraFeatures, RandomWalkFeatures
from graphdiff.types import DenseGraph, one_hot_graph

SMALL = {"n_layers": 2, "hidden_mlp_dims": {"X": 16, "E": 8, "y": 16},
         "hidden_dims": {"dx": 16, "de": 8, "dy": 16, "n_head": 2, "dim_ffX": 16, "dim_ffE": 8, "dim_ffy": 16}}


def info(num_node_types: int = 3, max_nodes: int = 8) -> DatasetInfo:
    return DatasetInfo(name="toy", kind="graph", node_types=[f"t{k}" for k in range(num_node_types)],
                       edge_types=["none", "a", "b"], max_nodes=max_nodes, split_sizes={"train": 10},
                       node_counts=[0] * max_nodes + [10], node_marginals=[1 / num_node_types] * num_node_types,
                       edge_marginals=[0.8, 0.15, 0.05])


def random_batch(B=3, n=7, dx=3, de=3, seed=0) -> DenseGraph:
    g = torch.Generator().manual_seed(seed)
    nodes = torch.randint(0, dx, (B, n), generator=g)
    edges = torch.randint(0, de, (B, n, n), generator=g).triu(1)
    edges = edges + edges.transpose(1, 2)
    mask = torch.arange(n) < torch.tensor([n, n - 2, n - 3][:B]).unsqueeze(1)
    return one_hot_graph(nodes, edges, mask, dx, de)


def test_rrwp_matches_powers_of_the_random_walk_matrix():
    graphs = [nx.path_graph(5), nx.star_graph(4), nx.disjoint_union(nx.cycle_graph(3), nx.empty_graph(2))]
    n, K = 6, 5
    A = torch.zeros(len(graphs), n, n, dtype=torch.float64)
    mask = torch.zeros(len(graphs), n, dtype=torch.bool)
    for b, g in enumerate(graphs):
        m = g.number_of_nodes()
        A[b, :m, :m] = torch.tensor(nx.to_numpy_array(g))
        mask[b, :m] = True
    node, edge = RandomWalkFeatures(K)(A, mask)
    for b, g in enumerate(graphs):
        m = g.number_of_nodes()
        a = nx.to_numpy_array(g)
        deg = a.sum(1)
        P = np.divide(a, deg[:, None], out=np.zeros_like(a), where=deg[:, None] > 0)
        for k in range(K):
            Pk = np.linalg.matrix_power(P, k)
            assert np.allclose(edge[b, :m, :m, k].numpy(), Pk)
            assert np.allclose(node[b, :m, k].numpy(), np.diag(Pk))
        assert torch.all(edge[b, m:] == 0) and torch.all(edge[b, :, m:] == 0) and torch.all(node[b, m:] == 0)


def test_rrwp_extra_feature_widths():
    features = ExtraFeatures("rrwp", max_nodes=8, rrwp_steps=6)
    out = features(random_batch())
    assert (out.X.shape[-1], out.E.shape[-1], out.y.shape[-1]) == (6, 6, 5) == tuple(features.dims.as_dict().values())


@pytest.mark.parametrize("transition", ["absorbing", "marginal"])
def test_flow_network_is_permutation_equivariant_and_every_parameter_learns(transition):
    torch.manual_seed(0)
    model = DiscreteFlowModel(info().to_dict(), transition=transition,
                              model={**SMALL, "extra_features": "rrwp", "rrwp_steps": 4, "dropout": 0.0})
    batch = random_batch()
    t = torch.tensor([0.2, 0.5, 0.9])
    noisy = model.flow.add_noise(batch, t, torch.Generator().manual_seed(1))
    assert noisy.X.shape[-1] == 3 + (transition == "absorbing") and noisy.E.shape[-1] == 3 + (transition == "absorbing")
    out = model(noisy, t)
    assert out.X.shape[-1] == 3 and out.E.shape[-1] == 3  # predictions over the data classes only
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(2))
    permuted = DenseGraph(noisy.X[:, perm], noisy.E[:, perm][:, :, perm], noisy.y, noisy.node_mask[:, perm])
    out_p = model(permuted, t)
    assert torch.allclose(out_p.X, out.X[:, perm], atol=1e-5)
    assert torch.allclose(out_p.E, out.E[:, perm][:, :, perm], atol=1e-5)
    loss = model.training_step(batch, 0)
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


@pytest.mark.parametrize("transition", INITIAL_DISTRIBUTIONS)
def test_every_initial_distribution_trains_and_samples(transition):
    torch.manual_seed(0)
    model = DiscreteFlowModel(info(2, 6).to_dict(), transition=transition,
                              model={**SMALL, "extra_features": "cycles", "dropout": 0.0},
                              sampler={"steps": 4, "eta": 1.0, "omega": 0.1})
    model.training_step(random_batch(dx=2, n=6), 0).backward()
    graphs = model.generate(3, seed=0)
    assert len(graphs) == 3 and int(graphs.node_types.max()) < 2 and int(graphs.edge_types.max()) < 3
