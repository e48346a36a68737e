"""End to end through the command line: ``graphdiff fit`` a DeFoG model on two tiny graphs, ``sample`` it and
``evaluate`` the samples; the model must reproduce the training graphs.

The bull graph and the 4-star have 5 nodes each, so the node count does not give the answer. Measured while writing
this test (2,500 optimiser steps, one thread, ~2 min in all): 88 of 100 samples (100 CTMC steps) isomorphic to a
training graph (28 bulls, 60 stars); degree MMD² 0.006, clustering 0.064 against the training graphs. The bounds
leave room for another CPU's rounding.
"""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest
import torch
import yaml

from graphdiff.cli import main
from graphdiff.datasets.graph_formats import read_graph_file

TRAIN_STEPS = 2500


def run(*args) -> int:
    return main([str(a) for a in args])


@pytest.mark.slow
def test_defog_fits_samples_and_evaluates_two_tiny_graphs(tmp_path: Path):
    torch.set_num_threads(1)
    train = [nx.bull_graph(), nx.star_graph(4)]
    records = [{"num_nodes": g.number_of_nodes(), "edges": [list(e) for e in g.edges]} for g in train]
    data = tmp_path / "two.json"
    data.write_text(json.dumps(records * 40))
    config = {
        "seed_everything": 0,
        "model": {"class_path": "graphdiff.lit.DiscreteFlowModel", "init_args": {
            "model": {"n_layers": 3, "hidden_mlp_dims": {"X": 32, "E": 32, "y": 32},
                      "hidden_dims": {"dx": 32, "de": 32, "dy": 32, "n_head": 4, "dim_ffX": 64, "dim_ffE": 64,
                                      "dim_ffy": 64},
                      "extra_features": "rrwp", "rrwp_steps": 6, "dropout": 0.0},
            "lr": 3e-3, "warmup_steps": 50, "lr_schedule": "cosine", "sampler": {"steps": 100}}},
        "data": {"path": str(data), "batch_size": 64, "root": str(tmp_path / "data"),
                 "options": {"split": [0.9, 0.05, 0.05]}},
        "trainer": {"accelerator": "cpu", "max_steps": TRAIN_STEPS, "max_epochs": -1, "logger": False,
                    "enable_progress_bar": False, "enable_model_summary": False, "limit_val_batches": 0,
                    "num_sanity_val_steps": 0, "default_root_dir": str(tmp_path / "run")},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert run("fit", "--config", tmp_path / "config.yaml") == 0
    ckpt = next((tmp_path / "run").rglob("last.ckpt"))
    assert torch.load(ckpt, weights_only=True)["global_step"] == TRAIN_STEPS

    samples = tmp_path / "samples.json"
    assert run("sample", "--ckpt_path", ckpt, "--num_samples", "100", "--seed", "1", "--output", samples) == 0
    hits = [0, 0]
    for _, edge_index, _ in read_graph_file(samples).triples:
        g = nx.empty_graph(5)
        g.add_edges_from(edge_index.T.tolist())
        for k, target in enumerate(train):
            hits[k] += nx.is_isomorphic(g, target)
    assert sum(hits) >= 80 and min(hits) >= 15, hits

    reference = tmp_path / "reference.json"
    reference.write_text(json.dumps(records * 10))
    metrics = tmp_path / "metrics.json"
    assert run("evaluate", "--samples", samples, "--reference", reference, "--metrics", "degree,clustering",
               "--output", metrics) == 0
    result = json.loads(metrics.read_text())
    assert result["degree"] < 0.02 and result["clustering"] < 0.1, result
