"""The reverse sampling loop: time grids, seeding, and recovery of a graph with the Bayes-optimal denoiser.

With the exact denoiser ``p(x_0 | G_t)`` of a one-graph dataset (computed by enumerating every placement of
the graph on the nodes), the sampler must return that graph: this checks the posterior, the marginalised
step and the loop independently of any training. It also measures what striding costs: each reverse step
samples nodes and pairs independently, which is exact only for small steps.
"""

from __future__ import annotations

import itertools

import networkx as nx
import pytest
import torch
from torch import nn

from graphdiff.diffusion import DiscreteDiffusion, make_schedule, make_transition
from graphdiff.diffusion.sampler import DiscreteGraphSampler, time_grid
from graphdiff.errors import ConfigError
from graphdiff.generation import GraphSampler, generate, node_mask_from_counts, run_sampler
from graphdiff.types import DenseGraph


class ExactDenoiser(nn.Module):
    """``p(x_0 | G_t)`` of a dataset holding one unlabelled graph, by Bayes' rule over all its placements."""

    def __init__(self, graph: nx.Graph, process: DiscreteDiffusion) -> None:
        super().__init__()
        self.process, self.n = process, graph.number_of_nodes()
        A = torch.tensor(nx.to_numpy_array(graph), dtype=torch.long)
        perms = torch.tensor(list(itertools.permutations(range(self.n))))
        placements = torch.unique(A[perms[:, :, None], perms[:, None, :]], dim=0)  # [P, n, n]
        self.iu = torch.triu_indices(self.n, self.n, 1)
        self.targets = placements[:, self.iu[0], self.iu[1]]  # [P, pairs]

    def forward(self, noisy: DenseGraph, t_norm: torch.Tensor) -> DenseGraph:
        t = (t_norm * self.process.T).round().long()
        Q_bar = self.process.Q_bar(t).E  # [B, 2, 2]
        e_t = noisy.E.argmax(-1)[:, self.iu[0], self.iu[1]]  # [B, pairs]
        # log q(e_t | x_0) for x_0 in {no edge, edge}: [B, 2, pairs]
        log_q = torch.gather(Q_bar.double(), 2, e_t[:, None, :].expand(-1, 2, -1)).clamp_min(1e-300).log()
        log_lik = torch.where(self.targets[None].bool(), log_q[:, None, 1], log_q[:, None, 0]).sum(-1)  # [B, P]
        p_edge = log_lik.softmax(-1) @ self.targets.double()  # [B, pairs]
        B, n = e_t.shape[0], self.n
        P = torch.zeros(B, n, n, dtype=torch.float64)
        P[:, self.iu[0], self.iu[1]] = p_edge
        P = P + P.transpose(1, 2)
        E = torch.stack((1 - P, P), -1).clamp(1e-12, 1).log().float()
        return DenseGraph(torch.zeros(B, n, 1), E, torch.zeros(B, 0), noisy.node_mask).mask()


def fraction_isomorphic(sampler: GraphSampler, graph: nx.Graph, samples: int) -> float:
    """The fraction of ``samples`` graphs of ``graph``'s size drawn from ``sampler`` (seed 0) isomorphic to it."""
    n = graph.number_of_nodes()
    graphs = generate(sampler, torch.full((samples,), n), batch_size=samples, seed=0).graphs
    hits = 0
    for _, edge_index, _ in graphs:
        g = nx.empty_graph(n)
        g.add_edges_from(edge_index.T.tolist())
        hits += nx.is_isomorphic(g, graph)
    return hits / samples


def recovered(graph: nx.Graph, T: int, steps: int, samples: int = 200) -> float:
    n, m = graph.number_of_nodes(), graph.number_of_edges()
    density = 2 * m / (n * (n - 1))
    process = DiscreteDiffusion(make_schedule("cosine", T),
                                make_transition("marginal", 1, 2, [1.0], torch.tensor([1 - density, density])))
    sampler = DiscreteGraphSampler(process, ExactDenoiser(graph, process), steps)
    return fraction_isomorphic(sampler, graph, samples)


def square_with_pendant() -> nx.Graph:
    g = nx.cycle_graph(4)
    g.add_edge(0, 4)
    return g


@pytest.mark.parametrize("T, steps, at_least", [(100, 100, 0.97), (500, 50, 0.9)])
def test_exact_denoiser_samples_the_graph_back(T, steps, at_least):
    assert recovered(square_with_pendant(), T, steps) >= at_least


def test_few_large_steps_lose_quality_even_with_the_exact_denoiser():
    # The factorised reverse step is exact only for small steps: 4 steps over T=100 must do visibly worse.
    assert recovered(square_with_pendant(), 100, 4) < recovered(square_with_pendant(), 100, 100) - 0.1


def test_time_grid():
    assert time_grid(10) == list(range(10, -1, -1))
    assert time_grid(500, 50) == list(range(500, -1, -10))
    grid = time_grid(7, 3)
    assert grid[0] == 7 and grid[-1] == 0 and len(grid) == 4 and all(a > b for a, b in zip(grid, grid[1:]))
    with pytest.raises(ConfigError, match="between 1 and T=10"):
        time_grid(10, 11)


def test_sampling_is_seeded_and_keeps_the_order_of_node_counts():
    graph = square_with_pendant()
    process = DiscreteDiffusion(make_schedule("cosine", 20), make_transition("uniform", 1, 2))
    net = ExactDenoiser(graph, process)
    counts = torch.tensor([5, 5, 5, 5])
    def run(seed):
        return generate(DiscreteGraphSampler(process, net, 5), counts, batch_size=2, seed=seed).graphs

    a, b, c = run(3), run(3), run(4)
    assert torch.equal(a.edge_index, b.edge_index) and not torch.equal(a.edge_index, c.edge_index)
    generator = torch.Generator().manual_seed(0)
    sampler = DiscreteGraphSampler(process, net, 4)
    graph, chain = run_sampler(sampler, node_mask_from_counts(torch.tensor([5, 3])), generator, frames=3)
    assert [label for label, _ in chain] == ["t = 20", "t = 10", "t = 0"]  # grid 20, 15, 10, 5, 0; 3 snapshots
    assert chain[-1][1] is graph and graph.node_mask.sum(1).tolist() == [5, 3]


class UniformLogits(nn.Module):
    """Predicts every class equally likely, for any graph size."""

    def forward(self, noisy: DenseGraph, t: torch.Tensor) -> DenseGraph:
        return DenseGraph(torch.zeros_like(noisy.X), torch.zeros_like(noisy.E), noisy.y, noisy.node_mask)


def test_generate_returns_the_chain_of_every_sample_in_order():
    process = DiscreteDiffusion(make_schedule("cosine", 20), make_transition("uniform", 1, 2))
    counts = torch.tensor([3, 5, 4])
    result = generate(DiscreteGraphSampler(process, UniformLogits(), 4), counts, batch_size=2, seed=0, frames=5)
    assert [label for label, _ in result.chain] == ["t = 20", "t = 15", "t = 10", "t = 5", "t = 0"]
    for _, frame in result.chain:
        assert frame.num_nodes.tolist() == [3, 5, 4]
    last = result.chain[-1][1]
    assert torch.equal(last.edge_index, result.graphs.edge_index) and torch.equal(last.edge_ptr, result.graphs.edge_ptr)
