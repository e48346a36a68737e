"""PARD's causal network: no block sees a later one (outputs unchanged and zero gradients), and permuting the nodes
permutes the outputs."""

from __future__ import annotations

import pytest
import torch

from graphdiff.diffusion.blocks import parallel_layout, partial_order
from graphdiff.models.pard import PardNetwork
from graphdiff.types import BlockLayout, DenseGraph
from tests.diffusion.test_blocks import random_graphs

DX, DE = 3, 3


def network(seed: int = 0, **kwargs) -> PardNetwork:
    torch.manual_seed(seed)
    settings = {"hidden_dims": 16, "edge_dims": 8, "n_layers": 2, "n_heads": 2, **kwargs}
    return PardNetwork(DX, DE, max_nodes=12, **settings)


def laid_out(seed: int = 0, count: int = 6) -> tuple[DenseGraph, BlockLayout]:
    graphs = random_graphs(count, seed=seed, dx=DX, de=DE, n_max=9)
    return parallel_layout(graphs, partial_order(graphs, 1))


def _later(layout: BlockLayout, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and pairs that the targets of block ``b`` must not depend on: every node of a later block, and the
    clean copies of block ``b`` itself (the answer); pairs with such an end."""
    nodes = layout.node_mask & ((layout.block > b) | ((layout.block == b) & ~layout.target))
    return nodes, nodes.unsqueeze(1) | nodes.unsqueeze(2)


def _outputs_of_block(out, layout: BlockLayout, b: int) -> torch.Tensor:
    target = layout.target & (layout.block == b)
    pairs = layout.target_pairs() & target.unsqueeze(2)
    return torch.cat([out.logits.X[target].flatten(), out.logits.E[pairs].flatten()])


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("options", [{}, {"add_transpose": False, "relative_block_id": False},
                                     {"transformer_only": True, "input_residual": False}])
def test_later_blocks_do_not_change_a_block_prediction(mode, options):
    net = network(**options).train(mode == "train")
    graph, layout = laid_out(seed=1)
    t = torch.rand(graph.batch_size)
    base = net(graph, t, layout)
    g = torch.Generator().manual_seed(3)
    for b in range(int(layout.num_blocks.max())):
        nodes, pairs = _later(layout, b)
        # Replace everything the block must not see with other one-hot classes.
        X = torch.where(nodes.unsqueeze(-1),
                        torch.nn.functional.one_hot(torch.randint(DX, nodes.shape, generator=g), DX).float(), graph.X)
        E_new = torch.randint(DE, pairs.shape, generator=g)
        E_new = torch.triu(E_new, 1) + torch.triu(E_new, 1).transpose(1, 2)
        E = torch.where(pairs.unsqueeze(-1), torch.nn.functional.one_hot(E_new, DE).float(), graph.E)
        changed = DenseGraph(X, E, graph.y, graph.node_mask).mask()
        other = net(changed, t, layout)
        torch.testing.assert_close(_outputs_of_block(other, layout, b), _outputs_of_block(base, layout, b))
        # ... and the block head's prediction from blocks 0..b-1 does not move either.
        if b > 0:
            torch.testing.assert_close(other.size[:, b - 1], base.size[:, b - 1])
        assert not torch.allclose(other.logits.X, base.logits.X)  # the change did reach later blocks


def test_gradients_with_respect_to_later_inputs_are_zero():
    net = network(seed=2)
    graph, layout = laid_out(seed=4)
    for b in range(int(layout.num_blocks.max())):
        X = graph.X.clone().requires_grad_(True)
        E = graph.E.clone().requires_grad_(True)
        out = net(DenseGraph(X, E, graph.y, graph.node_mask), torch.rand(graph.batch_size), layout)
        _outputs_of_block(out, layout, b).square().sum().backward()
        nodes, pairs = _later(layout, b)
        assert X.grad[nodes].abs().max() == 0 and E.grad[pairs].abs().max() == 0
        assert X.grad.abs().max() > 0  # the block does depend on something


def test_permuting_nodes_permutes_the_outputs():
    net = network(seed=5).eval()
    graph, layout = laid_out(seed=7)
    t = torch.rand(graph.batch_size)
    out = net(graph, t, layout)
    n = graph.max_nodes
    g = torch.Generator().manual_seed(0)
    perm = torch.stack([torch.randperm(n, generator=g) for _ in range(graph.batch_size)])
    rows = torch.arange(graph.batch_size).unsqueeze(1)
    P = DenseGraph(graph.X[rows, perm], graph.E[rows.unsqueeze(2), perm.unsqueeze(2), perm.unsqueeze(1)], graph.y,
                   graph.node_mask[rows, perm])
    L = BlockLayout(layout.block[rows, perm], layout.target[rows, perm], layout.degree, layout.size)
    other = net(P, t, L)
    torch.testing.assert_close(other.logits.X, out.logits.X[rows, perm], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(other.logits.E, out.logits.E[rows.unsqueeze(2), perm.unsqueeze(2), perm.unsqueeze(1)],
                               atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(other.size, out.size, atol=1e-5, rtol=1e-4)  # block predictions are invariant
    torch.testing.assert_close(other.degree, out.degree, atol=1e-5, rtol=1e-4)
    assert torch.allclose(out.logits.E, out.logits.E.transpose(1, 2))


def test_non_causal_mode_with_extra_features_sees_everything():
    net = network(seed=1, extra_features="all").eval()
    graph, layout = laid_out(seed=2)
    out = net(graph, torch.rand(graph.batch_size), layout, causal=False)
    assert out.logits.X.shape == graph.X.shape
    with pytest.raises(Exception, match="batched_sequential"):
        net(graph, torch.rand(graph.batch_size), layout, causal=True)
