"""PARD's block-wise diffusion: the loss against Bayes' rule on a tiny case, and the block sampler driven by an exact
(Bayes) denoiser and block head recovering the graphs of a tiny dataset."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from graphdiff.diffusion import CosineSchedule, DiscreteDiffusion, UniformTransition
from graphdiff.diffusion.blocks import parallel_layout, partial_order
from graphdiff.diffusion.blockwise import BlockwiseDiffusion, PardGraphSampler, block_head_loss
from graphdiff.generation import generate
from graphdiff.models.pard import PardOutput
from graphdiff.types import BlockLayout, DenseGraph, one_hot_graph
from tests.diffusion.test_blocks import random_graphs


def _process(T: int, dx: int, de: int) -> BlockwiseDiffusion:
    return BlockwiseDiffusion(DiscreteDiffusion(CosineSchedule(T), UniformTransition(dx, de)))


def test_pard_loss_is_the_bound_of_bayes_rule_plus_weighted_cross_entropy():
    dx = de = 3
    T = 6
    blocks = _process(T, dx, de)
    graphs = random_graphs(3, seed=2, dx=dx, de=de, n_max=5)
    graph, layout = parallel_layout(graphs, partial_order(graphs, 1))
    torch.manual_seed(0)
    t = torch.tensor([1, 3, 6])
    noisy = blocks.add_noise(graph, layout, t)
    logits = DenseGraph(torch.randn_like(graph.X), torch.randn_like(graph.E), graph.y, graph.node_mask)
    logits = DenseGraph(logits.X, (logits.E + logits.E.transpose(1, 2)) / 2, graph.y, graph.node_mask)
    w = 0.3
    got = blocks.loss(logits, graph, noisy, layout, t, "pard", ce_weight=w)

    def term(x0: int, xt: int, logit: torch.Tensor, tb: int, Qt: torch.Tensor, Qbar_prev: torch.Tensor) -> float:
        p0 = torch.softmax(logit.double(), -1)
        d = len(p0)

        def q(c: int) -> torch.Tensor:  # q(x_{t-1} = a | x_t, x_0 = c) by Bayes' rule
            w_a = torch.tensor([float(Qt[a, xt] * Qbar_prev[c, a]) for a in range(d)], dtype=torch.float64)
            return w_a / w_a.sum()

        true = q(x0)
        model = sum(p0[c] * q(c) for c in range(d))
        kl = sum(float(true[a] * (math.log(true[a]) - math.log(model[a]))) for a in range(d) if true[a] > 0)
        return kl - w * math.log(float(p0[x0]))

    expected_X = expected_E = 0.0
    pairs = torch.triu(layout.target_pairs(), 1)
    for b in range(graph.batch_size):
        tb = int(t[b])
        Qt, Qbar_prev = blocks.process.Q_t(tb), blocks.process.Q_bar(tb - 1)
        for i in layout.target[b].nonzero()[:, 0].tolist():
            expected_X += term(int(graph.X[b, i].argmax()), int(noisy.X[b, i].argmax()), logits.X[b, i], tb,
                               Qt.X[0], Qbar_prev.X[0])
        for i, j in pairs[b].nonzero().tolist():
            expected_E += term(int(graph.E[b, i, j].argmax()), int(noisy.E[b, i, j].argmax()), logits.E[b, i, j], tb,
                               Qt.E[0], Qbar_prev.E[0])
    B = graph.batch_size
    assert float(got["X"]) == pytest.approx(expected_X / B, rel=1e-4)
    assert float(got["E"]) == pytest.approx(expected_E / B, rel=1e-4)
    # Noise touches only the targets; the clean half is the graph.
    n = graphs.max_nodes
    assert torch.equal(noisy.X[:, :n], graph.X[:, :n]) and torch.equal(noisy.E[:, :n, :n], graph.E[:, :n, :n])


def test_a_perfect_prediction_has_zero_bound_and_ce_loss_is_digress():
    blocks = _process(5, 3, 3)
    graphs = random_graphs(4, seed=8, dx=3, de=3, n_max=6)
    graph, layout = parallel_layout(graphs, partial_order(graphs, 2))
    t = torch.tensor([1, 2, 4, 5])
    noisy = blocks.add_noise(graph, layout, t)
    sure = DenseGraph(60 * graph.X, 60 * graph.E, graph.y, graph.node_mask)
    assert float(blocks.loss(sure, graph, noisy, layout, t, "pard")["loss"]) < 1e-6
    flat = DenseGraph(torch.zeros_like(graph.X), torch.zeros_like(graph.E), graph.y, graph.node_mask)
    ce = blocks.loss(flat, graph, noisy, layout, t, "ce", lambda_edge=2.0)
    assert float(ce["X"]) == pytest.approx(math.log(3)) and float(ce["loss"]) == pytest.approx(3 * math.log(3))


def test_block_head_loss_counts_every_next_block_and_the_stop():
    layout = BlockLayout(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.bool),
                         torch.tensor([[0, 1, 1]]), torch.tensor([[1, 2, 1]]))
    C = 4
    size = torch.full((1, 3, C), -30.0)
    degree = torch.full((1, 3, C), -30.0)
    size[0, 0, 2] = size[0, 1, 1] = size[0, 2, 0] = 30.0  # next sizes 2, 1, then stop (0)
    degree[0, 0, 1] = degree[0, 1, 1] = degree[0, 2, 0] = 30.0
    first = torch.full((1, C), -30.0)
    first[0, 0] = 30.0
    assert float(block_head_loss(size, degree, first, layout)["loss"]) < 1e-20
    size[0, 2] = 0.0  # a uniform guess of the stop costs log C
    assert float(block_head_loss(size, degree, first, layout)["loss"]) == pytest.approx(math.log(C))


# ---------------------------------------------------------------------------------------------------------------
# the sampler with an exact denoiser


def tiny_dataset() -> DenseGraph:
    """Three graphs whose nodes all have distinct types (so node correspondences are unambiguous)."""
    n, dx, de = 5, 5, 3
    types = torch.tensor([[0, 1, 2, 3, 0], [0, 1, 2, 3, 4], [4, 3, 2, 1, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], dtype=torch.bool)
    E = torch.zeros(3, n, n, dtype=torch.long)
    for b, edges in enumerate([[(0, 1, 1), (1, 2, 1), (2, 3, 2)],                 # a path
                               [(0, 1, 1), (0, 2, 2), (0, 3, 1), (0, 4, 2)],      # a star
                               [(0, 1, 1), (1, 2, 1), (0, 2, 2), (2, 3, 1)]]):    # a triangle with a tail
        for i, j, k in edges:
            E[b, i, j] = E[b, j, i] = k
    return one_hot_graph(types, E, mask, dx, de)


class ExactPard:
    """The Bayes-optimal denoiser and block head of a dataset whose graphs have distinct node types: the posterior
    over (dataset graph, assignment of the target nodes to its block's nodes) given the clean blocks, the block's
    size and degree, and the noisy target."""

    def __init__(self, data: DenseGraph, blocks: BlockwiseDiffusion, max_hops: int) -> None:
        self.blocks = blocks
        order = partial_order(data, max_hops)
        self.graphs = []
        for b in range(data.batch_size):
            n = int(data.node_mask[b].sum())
            self.graphs.append({"types": data.X[b, :n].argmax(-1).tolist(), "edges": data.E[b, :n, :n].argmax(-1),
                                "block": order.block[b, :n].tolist(), "size": order.size[b].tolist(),
                                "degree": order.degree[b].tolist()})
        self.dx, self.de = data.X.shape[-1], data.E.shape[-1]
        self.width = data.max_nodes + 1

    def _consistent(self, g: dict, types: list[int], edges: torch.Tensor, block: list[int], k: int) -> bool:
        """Whether the clean blocks ``0..k-1`` (node ``types`` per position, their ``block``s) are ``g``'s."""
        where = {ty: i for i, ty in enumerate(g["types"])}
        if sorted(types) != sorted(ty for ty, bl in zip(g["types"], g["block"], strict=True) if bl < k):
            return False
        mine = [where[ty] for ty in types]
        if any(g["block"][m] != bl for m, bl in zip(mine, block, strict=True)):
            return False
        return all(int(g["edges"][mine[p], mine[q]]) == int(edges[p, q])
                   for p in range(len(types)) for q in range(len(types)) if p != q)

    def _clean(self, graph: DenseGraph, layout: BlockLayout, b: int) -> tuple[list[int], list[int], torch.Tensor, int]:
        clean = (layout.node_mask[b] & ~layout.target[b]).nonzero()[:, 0]
        types = graph.X[b, clean].argmax(-1).tolist()
        block = layout.block[b, clean].tolist()
        k = max(block) + 1 if block else 0
        return clean.tolist(), types, graph.E[b][clean][:, clean].argmax(-1), k, block

    # -- block head -----------------------------------------------------------------------------------------
    def first_degree_logits(self, size: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(size), self.width)
        for i, s in enumerate(size.tolist()):
            for g in self.graphs:
                if g["size"][0] == s:
                    out[i, g["degree"][0]] += 1
        return torch.log(out + 1e-30)

    def block_summary(self, graph: DenseGraph, layout: BlockLayout) -> torch.Tensor:
        B, K = graph.batch_size, layout.size.shape[1]
        out = torch.zeros(B, K, len(self.graphs) + 1)
        for b in range(B):
            _, types, edges, k, block = self._clean(graph, layout, b)
            for gi, g in enumerate(self.graphs):
                out[b, k - 1, gi] = float(self._consistent(g, types, edges, block, k))
            out[b, k - 1, -1] = k
        return out

    def _next(self, row: torch.Tensor, key: str, size: torch.Tensor | None = None) -> torch.Tensor:
        out = torch.zeros(row.shape[0], self.width)
        for b in range(row.shape[0]):
            k = int(row[b, -1])
            for gi, g in enumerate(self.graphs):
                s = g["size"][k] if k < len(g["size"]) else 0
                if row[b, gi] > 0 and (size is None or s == int(size[b])):
                    out[b, s if key == "size" else (g["degree"][k] if s else 0)] += 1
        return torch.log(out + 1e-30)

    def size_logits(self, row: torch.Tensor) -> torch.Tensor:
        return self._next(row, "size")

    def degree_logits(self, row: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
        return self._next(row, "degree", size)

    # -- denoiser -------------------------------------------------------------------------------------------
    def __call__(self, graph: DenseGraph, t: torch.Tensor, layout: BlockLayout, causal: bool = True) -> PardOutput:
        X = torch.zeros(graph.X.shape)
        E = torch.zeros(graph.E.shape)
        steps = (t * self.blocks.T).round().long()
        for b in range(graph.batch_size):
            Qbar = self.blocks.process.Q_bar(int(steps[b]))
            clean, types, edges, k, block = self._clean(graph, layout, b)
            target = layout.target[b].nonzero()[:, 0].tolist()
            m = len(target)
            if not m:
                continue
            x_t = graph.X[b].argmax(-1)
            e_t = graph.E[b].argmax(-1)
            for g in self.graphs:
                if k >= len(g["size"]) or g["size"][k] != m or g["degree"][k] != int(layout.degree[b, k]):
                    continue
                if not self._consistent(g, types, edges, block, k):
                    continue
                where = {ty: i for i, ty in enumerate(g["types"])}
                earlier = [where[ty] for ty in types]
                members = [i for i, bl in enumerate(g["block"]) if bl == k]
                for assign in itertools.permutations(members):
                    like = 1.0
                    for p, node in zip(target, assign, strict=True):
                        like *= float(Qbar.X[0, g["types"][node], x_t[p]])
                    for (p, u), (q, v) in itertools.combinations(zip(target, assign, strict=True), 2):
                        like *= float(Qbar.E[0, g["edges"][u, v], e_t[p, q]])
                    for p, u in zip(target, assign, strict=True):
                        for c, v in zip(clean, earlier, strict=True):
                            like *= float(Qbar.E[0, g["edges"][u, v], e_t[p, c]])
                    for p, u in zip(target, assign, strict=True):
                        X[b, p, g["types"][u]] += like
                    for (p, u), (q, v) in itertools.permutations(zip(target, assign, strict=True), 2):
                        E[b, p, q, g["edges"][u, v]] += like
                    for p, u in zip(target, assign, strict=True):
                        for c, v in zip(clean, earlier, strict=True):
                            E[b, p, c, g["edges"][u, v]] += like
                            E[b, c, p, g["edges"][u, v]] += like
        logits = DenseGraph(torch.log(X + 1e-30), torch.log(E + 1e-30), graph.y, graph.node_mask)
        return PardOutput(logits)


def _as_typed_edges(graphs, dx: int, de: int) -> list[tuple[tuple[int, ...], frozenset]]:
    dense = graphs.to_dense(range(len(graphs)), dx, de)
    out = []
    for b in range(len(graphs)):
        n = int(dense.node_mask[b].sum())
        types = dense.X[b, :n].argmax(-1).tolist()
        e = dense.E[b, :n, :n].argmax(-1)
        edges = frozenset((frozenset((types[i], types[j])), int(e[i, j])) for i in range(n) for j in range(i + 1, n)
                          if e[i, j] > 0)
        out.append((tuple(sorted(types)), edges))
    return out


def exact_sampler(data: DenseGraph, T: int, steps: int, fixed_size: bool = False) -> PardGraphSampler:
    """PARD's sampler driven by :class:`ExactPard` of ``data`` (max_hops 1, uniform noise over ``T`` steps)."""
    blocks = _process(T, data.X.shape[-1], data.E.shape[-1])
    exact = ExactPard(data, blocks, max_hops=1)
    first = torch.zeros(data.max_nodes + 1)
    for g in exact.graphs:
        first[g["size"][0]] += 1
    return PardGraphSampler(blocks, exact, exact, first / first.sum(), max_nodes=data.max_nodes, steps=steps,
                            fixed_size=fixed_size)


@pytest.mark.parametrize(("steps", "rate"), [(50, 0.95), (10, 0.8)])
def test_block_sampler_with_an_exact_denoiser_recovers_the_data(steps, rate):
    """Each reverse step draws every element from its own marginal (DiGress's and PARD's factorisation), so even an
    exact denoiser recovers whole graphs only when steps change few elements at a time: nearly always with 50 steps
    per block, less often with 10."""
    data = tiny_dataset()
    sampler = exact_sampler(data, T=50, steps=steps)
    graphs = generate(sampler, torch.full((30,), data.max_nodes), batch_size=10, seed=0).graphs
    known = _as_typed_edges(GraphsOf(data), 5, 3)
    got = _as_typed_edges(graphs, 5, 3)
    recovered = sum(g in known for g in got)
    assert recovered >= rate * len(got), got
    assert len({g for g in got if g in known}) == 3  # every graph of the data comes out


def test_fixed_sizes_are_kept():
    sampler = exact_sampler(tiny_dataset(), T=4, steps=2, fixed_size=True)
    sizes = torch.tensor([4, 5, 3, 4, 5, 2])
    graphs = generate(sampler, sizes, batch_size=6, seed=1).graphs
    assert graphs.num_nodes.tolist() == sizes.tolist()


def GraphsOf(dense: DenseGraph):
    from graphdiff.storage import GraphList

    return GraphList.from_dense(dense)
