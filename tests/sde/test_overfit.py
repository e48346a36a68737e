"""End to end: GDSS networks trained by denoising score matching on two small graphs reproduce them."""

from __future__ import annotations

import time

import networkx as nx
import pytest
import torch

from graphdiff.models.gdss import GDSSScoreModel
from graphdiff.sde.process import GraphEncoding, ScoreSDEProcess
from graphdiff.sde.samplers import SamplerSettings
from graphdiff.sde.sdes import VPSDE
from graphdiff.types import DenseGraph, one_hot_graph

TRAIN_STEPS = 900  # ~40 s on one CPU core; sampling ~15 s (200 steps, two samplers)
NUM_SAMPLES = 100


def dense_batch(graphs: list[nx.Graph], n: int) -> DenseGraph:
    B = len(graphs)
    edges = torch.zeros(B, n, n, dtype=torch.long)
    mask = torch.zeros(B, n, dtype=torch.bool)
    for b, g in enumerate(graphs):
        mask[b, : g.number_of_nodes()] = True
        for u, v in g.edges():
            edges[b, u, v] = edges[b, v, u] = 1
    return one_hot_graph(torch.zeros(B, n, dtype=torch.long), edges, mask, 1, 2)


def match_training_graph(sample: DenseGraph, b: int, train: list[nx.Graph]) -> int:
    """Index of the training graph that sample ``b`` is isomorphic to, or -1."""
    k = int(sample.node_mask[b].sum())
    g = nx.from_numpy_array(sample.E[b, :k, :k].argmax(-1).numpy())
    return next((i for i, h in enumerate(train) if nx.is_isomorphic(g, h)), -1)


@pytest.mark.slow
def test_overfit_two_graphs_with_gdss_community_small_sdes():
    """Bull and star graph (5 nodes each, so the node count does not give the answer), degree features, GDSS's
    community_small SDEs (VP beta 0.1..1 for X and A); >= 90% of samples must be isomorphic to one of them, and
    both must be generated."""
    train = [nx.bull_graph(), nx.star_graph(4)]
    batch = dense_batch(train * 32, 5)
    process = ScoreSDEProcess(VPSDE(0.1, 1.0), VPSDE(0.1, 1.0), GraphEncoding("degree", max_feat_num=5))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = GDSSScoreModel.from_config(max_feat_num=5, depth=2, nhid=16, num_layers=3, num_linears=2, adim=16,
                                           c_init=2, c_hid=8, c_final=4, num_heads=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)  # GDSS's lr for generic graphs
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(TRAIN_STEPS):
        loss_x, loss_adj = process.loss(model, batch, generator=g)
        optimizer.zero_grad()
        (loss_x + loss_adj).backward()
        torch.nn.utils.clip_grad_norm_(model.x_net.parameters(), 1.0)  # GDSS clips each network separately
        torch.nn.utils.clip_grad_norm_(model.adj_net.parameters(), 1.0)
        optimizer.step()
    train_time = time.perf_counter() - start

    node_mask = torch.ones(NUM_SAMPLES, 5, dtype=torch.bool)
    report = {"train_steps": TRAIN_STEPS, "train_s": round(train_time, 1)}
    for name, settings in {
        "S4": SamplerSettings("S4", "None", snr=0.15, scale_eps=0.7, num_steps=200),
        "Reverse+Langevin": SamplerSettings("Reverse", "Langevin", snr=0.2, scale_eps=0.7, num_steps=200),
    }.items():
        start = time.perf_counter()
        samples = process.sample(model, node_mask, 1, settings, generator=torch.Generator().manual_seed(1))
        matches = [match_training_graph(samples, b, train) for b in range(NUM_SAMPLES)]
        rate = sum(m >= 0 for m in matches) / NUM_SAMPLES
        share = [matches.count(i) / NUM_SAMPLES for i in range(len(train))]
        report[name] = {"isomorphic": rate, "per_graph": share, "sample_s": round(time.perf_counter() - start, 1)}
        assert rate >= 0.9, report
        assert min(share) >= 0.15, report  # both are generated (observed: about half each)
    print(report)
