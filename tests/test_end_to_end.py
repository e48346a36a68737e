"""End to end: a model trained on one small graph samples that graph back (issue 3's acceptance check).

The graph is a 6-cycle with a pendant node. A small graph transformer is trained on it for a couple of
minutes on the CPU; sampling with the full T steps and with a stride of 10 must return a graph
isomorphic to it in at least 90% of samples.
"""

from __future__ import annotations

import networkx as nx
import pytest
import torch

from graphdiff.datasets.storage import GraphList
from graphdiff.diffusion import DiscreteDiffusion, cross_entropy_loss, make_schedule, make_transition
from graphdiff.models import GraphTransformerDenoiser
from graphdiff.sampling import sample_many

T = 100


def cycle_with_pendant() -> nx.Graph:
    g = nx.cycle_graph(6)
    g.add_edge(0, 6)
    return g


def train(graph: nx.Graph, steps: int, seed: int = 0):
    torch.manual_seed(seed)
    n = graph.number_of_nodes()
    edges = torch.tensor(list(graph.edges)).T
    store = GraphList.from_graphs([(torch.zeros(n, dtype=torch.long), edges, torch.ones(edges.shape[1]))])
    batch = store.to_dense([0] * 32, 1, 2)
    density = 2 * graph.number_of_edges() / (n * (n - 1))
    marg_e = torch.tensor([1 - density, density])
    process = DiscreteDiffusion(make_schedule("cosine", T), make_transition("marginal", 1, 2, [1.0], marg_e))
    model = GraphTransformerDenoiser(
        (1, 2, 0), (1, 2, 0), n_layers=2, extra_features="cycles", max_nodes=n, dropout=0.0,
        hidden_mlp_dims={"X": 32, "E": 32, "y": 32},
        hidden_dims={"dx": 32, "de": 16, "dy": 32, "n_head": 4, "dim_ffX": 64, "dim_ffE": 32, "dim_ffy": 64},
    )
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for _ in range(steps):
        t = process.sample_timesteps(batch.batch_size)
        noisy = process.add_noise(batch, t)
        loss = cross_entropy_loss(model(noisy, t.float() / T), batch, lambda_E=5.0)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), process


@pytest.mark.slow
def test_overfit_single_graph_is_sampled_back():
    target = cycle_with_pendant()
    model, process = train(target, steps=400)
    counts = torch.full((50,), target.number_of_nodes())
    for steps in (T, T // 10):
        graphs = sample_many(model, process, counts, batch_size=50, steps=steps, seed=1)
        hits = 0
        for _, ei, _ in graphs:
            g = nx.Graph()
            g.add_nodes_from(range(target.number_of_nodes()))
            g.add_edges_from(ei.T.tolist())
            hits += nx.is_isomorphic(g, target)
        assert hits / len(graphs) >= 0.9, f"{hits}/{len(graphs)} samples isomorphic to the target with {steps} steps"
