"""Choosing the denoiser of a training run: registered names only (in Python or through an installed package's
entry points), class paths of registered classes, and never an import or a call of what a configuration names."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from graphdiff.errors import ConfigError
from graphdiff.info import DatasetInfo
from graphdiff.lit import DiscreteDiffusionModel
from graphdiff.models import Denoiser, GraphTransformerDenoiser, denoiser_for_dataset, register_denoiser
from graphdiff.models import base as denoiser_base
from graphdiff.types import DenseGraph, one_hot_graph


@register_denoiser("node_only")
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


@pytest.mark.parametrize("name", ["node_only", f"{__name__}.NodeOnly"])  # the class path is what old checkpoints hold
def test_registered_user_class_trains_inside_the_lightning_module(name):
    model = DiscreteDiffusionModel(toy_info(), T=10, model={"denoiser": name, "hidden": 7})
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
                                          ("no.such.module.Net", "accepted only for a registered class")])
def test_unknown_denoiser_is_a_config_error(name, needle):
    with pytest.raises(ConfigError, match=needle) as excinfo:
        denoiser_for_dataset(toy_info(), name)
    message = str(excinfo.value)
    assert "\n" not in message and "available: graph_transformer" in message and "node_only" in message
    assert "register_denoiser" in message and "'graphdiff.denoisers'" in message


# ---------------------------------------------------------------------------------------------- nothing named runs
class Unregistered(NodeOnly):
    """Importable (and already imported), but never registered."""


def _recorder(calls: list) -> object:
    def record(*args, **kwargs):
        calls.append((args, kwargs))
        return 0

    return record


@pytest.mark.parametrize("target", [(os, "system"), (subprocess, "Popen")], ids=["os.system", "subprocess.Popen"])
def test_a_config_naming_a_callable_neither_imports_nor_calls_it(monkeypatch, target):
    module, attr = target
    calls: list = []
    monkeypatch.setattr(module, attr, _recorder(calls))
    name = f"{module.__name__}.{attr}"
    with pytest.raises(ConfigError, match=f"unknown denoiser '{name}'"):
        DiscreteDiffusionModel(toy_info(), T=10, model={"denoiser": name, "command": "touch pwned"})
    assert calls == []


def test_an_importable_but_unregistered_class_is_refused():
    with pytest.raises(ConfigError, match="accepted only for a registered class"):
        denoiser_for_dataset(toy_info(), f"{__name__}.Unregistered")


@pytest.fixture
def hostile_module(tmp_path, monkeypatch):
    """A module on ``sys.path`` that writes a file when imported; yields ``(class path, that file)``."""
    marker = tmp_path / "imported"
    (tmp_path / "graphdiff_hostile_denoiser.py").write_text(
        f"open({str(marker)!r}, 'w').write('x')\nfrom tests.models.test_base import NodeOnly as Net\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "graphdiff_hostile_denoiser.Net", marker
    sys.modules.pop("graphdiff_hostile_denoiser", None)


def test_a_config_naming_a_module_never_imports_it(hostile_module):
    name, marker = hostile_module
    with pytest.raises(ConfigError, match="graphdiff imports no module a configuration names"):
        denoiser_for_dataset(toy_info(), name)
    assert not marker.exists() and "graphdiff_hostile_denoiser" not in sys.modules


def test_a_checkpoint_naming_a_module_never_imports_it(tmp_path, hostile_module):
    name, marker = hostile_module
    model = DiscreteDiffusionModel(toy_info().to_dict(), T=10, model={"denoiser": "node_only"})
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                  "pytorch-lightning_version": pl.__version__}
    path = tmp_path / "model.ckpt"
    torch.save(checkpoint, path)
    assert isinstance(DiscreteDiffusionModel.load_from_checkpoint(path).denoiser, NodeOnly)
    checkpoint["hyper_parameters"]["model"] = {"denoiser": name}
    torch.save(checkpoint, path)
    with pytest.raises(ConfigError, match=f"unknown denoiser '{name}'"):
        DiscreteDiffusionModel.load_from_checkpoint(path)
    assert not marker.exists() and "graphdiff_hostile_denoiser" not in sys.modules


# ---------------------------------------------------------------------------------------------- entry points
class PluginNet(NodeOnly):
    """What an installed package would declare as ``plugin_net = "its.module:PluginNet"``."""


def _fake_entry_points(monkeypatch, *specs: tuple[str, str]) -> None:
    """Installed packages declaring ``(name, "module:attr")`` in group graphdiff.denoisers; a fresh registry."""
    points = [importlib.metadata.EntryPoint(n, v, denoiser_base.ENTRY_POINT_GROUP) for n, v in specs]

    def entry_points(**selection):
        return [ep for ep in points if selection.get("group") == ep.group]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setattr(denoiser_base, "_DENOISERS", dict(denoiser_base._DENOISERS))


def test_an_entry_point_registers_its_denoiser_when_first_named(monkeypatch):
    _fake_entry_points(monkeypatch, ("plugin_net", f"{__name__}:PluginNet"))
    assert "plugin_net" in denoiser_base.available_denoisers() and "plugin_net" not in denoiser_base._DENOISERS
    net = denoiser_for_dataset(toy_info(), "plugin_net", hidden=3)
    assert type(net) is PluginNet and net.hidden == 3 and denoiser_base._DENOISERS["plugin_net"] is PluginNet
    assert type(denoiser_for_dataset(toy_info(), f"{__name__}.PluginNet")) is PluginNet


def test_an_entry_point_is_found_by_its_class_path(monkeypatch):
    _fake_entry_points(monkeypatch, ("plugin_net", f"{__name__}:PluginNet"))
    assert type(denoiser_for_dataset(toy_info(), f"{__name__}.PluginNet")) is PluginNet


def test_a_broken_entry_point_is_a_config_error(monkeypatch, hostile_module):
    _fake_entry_points(monkeypatch, ("missing", "graphdiff_no_such_plugin:Net"), ("not_a_class", "os:system"))
    with pytest.raises(ConfigError, match="entry point missing = 'graphdiff_no_such_plugin:Net'.*cannot be loaded"):
        denoiser_for_dataset(toy_info(), "missing")
    with pytest.raises(ConfigError, match="not a Denoiser subclass"):
        denoiser_for_dataset(toy_info(), "not_a_class")
    name, marker = hostile_module  # a config cannot reach a module no entry point declares
    with pytest.raises(ConfigError, match="unknown denoiser"):
        denoiser_for_dataset(toy_info(), name)
    assert not marker.exists()
