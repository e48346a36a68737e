"""Choosing the denoiser of a training run: registered names, importable classes, clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from graphdiff.datasets.info import DatasetInfo
from graphdiff.errors import ConfigError
from graphdiff.lit import DiscreteDiffusionModel
from graphdiff.models import Denoiser, GraphTransformerDenoiser, denoiser_for_dataset
from graphdiff.types import DenseGraph, one_hot_graph


class NodeOnly(Denoiser):
    """Logits from each node's and pair's own noisy class (enough to exercise the plumbing)."""

    def __init__(self, input_dims, output_dims, hidden: int = 4) -> None:
        super().__init__(input_dims, output_dims)
        self.hidden = hidden
        self.node = nn.Linear(self.input_dims.X, self.output_dims.X)
        self.pair = nn.Linear(self.input_dims.E, self.output_dims.E)

    def forward(self, noisy: DenseGraph, t: torch.Tensor) -> DenseGraph:
        E = self.pair(noisy.E)
        E = (E + E.transpose(1, 2)) / 2
        y = noisy.X.new_zeros(noisy.X.shape[0], self.output_dims.y)
        return DenseGraph(self.node(noisy.X), E, y, noisy.node_mask).mask()


def toy_info() -> DatasetInfo:
    return DatasetInfo(name="toy", kind="graph", node_types=["a", "b"], edge_types=["none", "edge"], max_nodes=5,
                       split_sizes={"train": 1, "val": 1, "test": 1}, node_counts=[0, 0, 0, 1, 1, 1],
                       node_marginals=[0.5, 0.5], edge_marginals=[0.7, 0.3])


def test_registered_name_builds_the_transformer_with_dataset_widths():
    net = denoiser_for_dataset(toy_info(), "graph_transformer", n_layers=1, extra_features="none")
    assert isinstance(net, GraphTransformerDenoiser)
    assert (net.output_dims.X, net.output_dims.E) == (2, 2)


def test_importable_class_trains_inside_the_lightning_module():
    model = DiscreteDiffusionModel(toy_info(), T=10, model={"denoiser": f"{__name__}.NodeOnly", "hidden": 7})
    assert isinstance(model.denoiser, NodeOnly) and model.denoiser.hidden == 7
    nodes = torch.tensor([[0, 1, 1, 0, 0]])
    edges = torch.zeros(1, 5, 5, dtype=torch.long)
    edges[0, 0, 1] = edges[0, 1, 0] = 1
    batch = one_hot_graph(nodes, edges, torch.tensor([[True, True, True, False, False]]), 2, 2)
    loss = model._loss(batch, training=True)["loss"]
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters())
    assert model.generate(3, steps=2, seed=0, num_nodes=4).num_nodes.tolist() == [4, 4, 4]


@pytest.mark.parametrize("name, needle", [("no_such_net", "unknown denoiser 'no_such_net'"),
                                          ("no.such.module.Net", "cannot be imported")])
def test_unknown_denoiser_is_a_config_error(name, needle):
    with pytest.raises(ConfigError, match=needle):
        denoiser_for_dataset(toy_info(), name)
