"""The PARD family end to end: trained through the CLI on one graph it samples that graph back; its settings are
checked; it generates block by block with any number of steps per block; seeds make it reproducible."""

from __future__ import annotations

import json

import networkx as nx
import pytest
import torch
import yaml

import graphdiff.api as gd
from graphdiff.cli import main
from graphdiff.errors import ConfigError
from graphdiff.info import DatasetInfo
from graphdiff.lit import PardModel


def cycle_with_pendant() -> nx.Graph:
    g = nx.cycle_graph(6)
    g.add_edge(0, 6)
    return g


def run(*args) -> int:
    return main([str(a) for a in args])


@pytest.mark.slow
def test_cli_overfit_samples_the_training_graph_back(tmp_path):
    target = cycle_with_pendant()
    graphs = [{"num_nodes": 7, "edges": [list(e) for e in target.edges]}] * 64
    data = tmp_path / "graphs.json"
    data.write_text(json.dumps(graphs))
    config = {
        "seed_everything": 0,
        "model": {"class_path": "graphdiff.lit.PardModel", "init_args": {
            "T": 50, "max_hops": 1, "transition": "marginal", "block_model": "combined",
            "model": {"hidden_dims": 32, "edge_dims": 16, "n_layers": 2, "n_heads": 4},
            "lr": 3e-3, "warmup_steps": 20, "lr_schedule": "cosine"}},
        "data": {"dataset": str(data), "batch_size": 32, "root": str(tmp_path / "data")},
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 1000, "limit_val_batches": 0,
                    "num_sanity_val_steps": 0, "enable_progress_bar": False, "enable_model_summary": False,
                    "logger": False, "default_root_dir": str(tmp_path / "run")},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert run("fit", "--config", path) == 0
    finally:
        torch.set_num_threads(threads)
    last = next((tmp_path / "run").rglob("last.ckpt"))
    out = tmp_path / "samples.json"
    assert run("sample", "--ckpt_path", last, "--num_samples", 50, "--seed", 1, "--output", out) == 0
    samples = json.loads(out.read_text())
    hits = 0
    for g in samples:
        graph = nx.empty_graph(g["num_nodes"])
        graph.add_edges_from(g["edges"])
        hits += nx.is_isomorphic(graph, target)
    assert hits >= 0.9 * len(samples), f"{hits}/{len(samples)} samples are the training graph"


def _info() -> dict:
    return DatasetInfo(name="toy", kind="graph", node_types=["node"], edge_types=["none", "edge"], max_nodes=6,
                       split_sizes={"train": 2, "val": 0, "test": 0}, node_counts=[0, 0, 0, 1, 0, 0, 1],
                       node_marginals=[1.0], edge_marginals=[0.6, 0.4]).to_dict()


@pytest.mark.parametrize(("settings", "message"), [
    ({"block_model": "both"}, "model.block_model='both'"),
    ({"training_mode": "batched_sequential", "block_model": "combined"}, "needs model.block_model=separate"),
    ({"model": {"extra_features": "all"}}, "batched_sequential"),
    ({"max_hops": -1}, "model.max_hops"),
    ({"loss": "vlb"}, "model.loss"),
    ({"model": {"hidden_dim": 3}}, "model:"),
    ({"model": {"hidden_dims": 10, "n_heads": 4}}, "multiple of"),
    ({"sampler": {"steps": 0}}, "steps"),
])
def test_bad_settings_are_one_line_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        PardModel(dataset_info=_info(), **settings)


def test_generation_is_seeded_and_takes_any_steps_per_block():
    torch.manual_seed(0)
    model = PardModel(dataset_info=_info(), T=6, max_hops=1,
                      model={"hidden_dims": 8, "edge_dims": 4, "n_layers": 1, "n_heads": 2})
    with pytest.raises(ConfigError, match="train it"):
        model.generate(2)
    model.first_block_sizes.copy_(torch.tensor([0, 0.5, 0.5, 0, 0, 0, 0]))
    a = model.generate(6, seed=3)
    b = model.generate(6, seed=3)
    assert [g[1].tolist() for g in a] == [g[1].tolist() for g in b]
    assert all(1 <= int(n) <= 6 for n in a.num_nodes)
    for steps in (1, 2, 6):
        assert len(model.generate(3, steps=steps, seed=0)) == 3
    with pytest.raises(ConfigError, match="exceeds"):
        model.generate(2, steps=7)
    fixed = model.generate(4, num_nodes=[3, 5, 6, 4], seed=0)  # sizes asked for are kept
    assert fixed.num_nodes.tolist() == [3, 5, 6, 4]
    chain = model.generate_with_chain(2, frames=4, seed=0)
    labels = [label for label, _ in chain.chain]
    assert labels[:3] == ["1 block", "2 blocks", "3 blocks"] and labels[-1] == "sample"  # pictured block by block
    assert [int(n) for n in chain.chain[0][1].num_nodes] <= [int(n) for n in chain.graphs.num_nodes]


def test_api_fit_trains_a_pard_model(tmp_path):
    graphs = [nx.cycle_graph(5), nx.path_graph(4), nx.star_graph(3)] * 4
    model = gd.fit(graphs, output_dir=tmp_path, max_epochs=1, batch_size=4, family="pard", T=4, max_hops=1,
                   model={"hidden_dims": 8, "edge_dims": 4, "n_layers": 1, "n_heads": 2})
    assert isinstance(model, PardModel)
    assert float(model.first_block_sizes.sum()) == pytest.approx(1.0)
    assert len(model.generate(2, seed=0)) == 2


@pytest.mark.parametrize("settings", [
    {"block_model": "combined"},
    {"block_model": "separate", "loss": "ce"},
    {"training_mode": "batched_sequential", "block_model": "separate", "model": {"extra_features": "all"}},
])
def test_every_training_mode_trains_and_samples(settings):
    from graphdiff.graph import networkx_to_dense

    torch.manual_seed(0)
    batch = networkx_to_dense([nx.cycle_graph(5), nx.path_graph(6), nx.star_graph(3)], max_nodes=6)
    network = {"hidden_dims": 8, "edge_dims": 4, "n_layers": 1, "n_heads": 2, **settings.pop("model", {})}
    model = PardModel(dataset_info=_info(), T=5, max_hops=1, model=network, **settings)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = model._loss(batch, training=True)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    model.first_block_sizes.copy_(model.first_block_distribution(_graph_list(batch)))
    # First blocks: the star's centre (1 node), the path's middle pair (2), the whole 5-cycle (5).
    assert model.first_block_sizes.tolist() == pytest.approx([0, 1 / 3, 1 / 3, 0, 0, 1 / 3, 0])
    assert len(model.generate(3, seed=0, steps=2)) == 3


def _graph_list(batch):
    from graphdiff.storage import GraphList

    return GraphList.from_dense(batch)
