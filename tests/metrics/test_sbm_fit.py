"""Block-model fit: exact move costs, description length by hand, recovery of planted partitions."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest

from graphdiff.metrics.sbm_fit import _Partition, description_length, fit_block_model


def _sbm(sizes: list[int], seed: int, p_in: float = 0.3, p_out: float = 0.005) -> nx.Graph:
    k = len(sizes)
    p = np.full((k, k), p_out)
    np.fill_diagonal(p, p_in)
    return nx.stochastic_block_model(sizes, p.tolist(), seed=seed)


def test_description_length_of_a_triangle_by_hand() -> None:
    # One block: ln C(3, 3) + ln multiset(1, 3) + ln C(2, 0) + ln 3! - ln 3! + ln 3 = ln 3.
    a = nx.to_numpy_array(nx.complete_graph(3))
    assert description_length(a, np.zeros(3, dtype=int)) == pytest.approx(math.log(3))
    # Two blocks {0, 1}, {2}: ln C(1,1) + ln C(0,0) + ln C(2,2) + ln multiset(3, 3) + ln C(2,1) + ln 3! - ln 2! + ln 3
    expected = math.log(math.comb(3 + 3 - 1, 3)) + math.log(2) + math.log(6) - math.log(2) + math.log(3)
    assert description_length(a, np.array([0, 0, 1])) == pytest.approx(expected)


def test_move_deltas_equal_recomputed_description_length() -> None:
    rng = np.random.default_rng(0)
    a = nx.to_numpy_array(nx.gnp_random_graph(18, 0.25, seed=2))
    part = _Partition(a, rng.integers(0, 4, 18))
    deltas = part.move_deltas()
    base = description_length(a, part.blocks)
    for i in range(18):
        for t in range(part.n_blocks):
            if np.isfinite(deltas[i, t]):
                moved = part.blocks.copy()
                moved[i] = t
                assert deltas[i, t] == pytest.approx(description_length(a, moved) - base, abs=1e-9)
    part.move(3, (part.blocks[3] + 1) % part.n_blocks)
    assert part.total() == pytest.approx(description_length(a, part.blocks), abs=1e-9)


def test_recovers_planted_blocks() -> None:
    sizes = [35, 22, 28]
    fit = fit_block_model(_sbm(sizes, seed=4))
    assert sorted(fit.node_counts.tolist()) == sorted(sizes)
    truth = np.repeat(np.arange(3), sizes)
    # Same partition up to relabelling: every fitted block lies inside one true block.
    for b in range(fit.n_blocks):
        assert len(set(truth[fit.blocks == b])) == 1
    assert fit.edge_counts.sum() - np.triu(fit.edge_counts, 1).sum() + np.triu(fit.edge_counts, 1).sum() > 0


def test_erdos_renyi_graph_gets_one_block() -> None:
    fit = fit_block_model(nx.gnp_random_graph(90, 0.1, seed=5))
    assert fit.n_blocks == 1
