"""The shipped DeFoG configs hold DeFoG's published settings (manuelmlmadeira/DeFoG configs/experiment/*.yaml) and
build their model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from graphdiff.configs import shipped_configs
from graphdiff.info import DatasetInfo
from graphdiff.lit import DiscreteFlowModel
from tests.test_configs import (
    BIG_MOL_HID,
    BIG_MOL_MLP,
    DEFAULT_HID,
    DEFAULT_MLP,
    SPECTRE_HID,
    SPECTRE_MLP,
    print_config,
)

FLOW = {name.split("/", 1)[1]: path for name, path in shipped_configs().items() if name.startswith("flow/")}


def _defog(n_layers, mlp, hid, rrwp, transition, train_td, steps, td, omega, eta, batch, epochs, check_val, every):
    return locals()


# (configs/experiment/<name>.yaml on top of model/discrete.yaml, train/train_default.yaml, sample/sample_default.yaml)
PUBLISHED: dict[str, dict[str, Any]] = {
    "qm9": _defog(9, DEFAULT_MLP, DEFAULT_HID, 12, "marginal", "identity", 500, "polydec", 0, 0, 1024, 1000, 50, 1),
    "qm9_h": _defog(7, DEFAULT_MLP, DEFAULT_HID, 12, "marginal", "identity", 500, "polydec", 0.05, 0, 512, 2000, 5, 4),
    "planar": _defog(10, SPECTRE_MLP, SPECTRE_HID, 12, "marginal", "identity", 1000, "polydec", 0.05, 50, 64, 100_000,
                     2000, 1),
    "sbm": _defog(8, SPECTRE_MLP, SPECTRE_HID, 20, "absorbfirst", "identity", 1000, "identity", 0, 0, 32, 50_000,
                  2000, 1),
    "tree": _defog(10, SPECTRE_MLP, SPECTRE_HID, 12, "marginal", "polydec", 1000, "polydec", 0, 0, 64, 100_000,
                   2000, 1),
    "comm20": _defog(8, DEFAULT_MLP, DEFAULT_HID, 12, "marginal", "identity", 1000, "identity", 0, 0, 256, 1_000_000,
                     1000, 10),
    "moses": _defog(12, BIG_MOL_MLP, BIG_MOL_HID, 20, "marginal", "polydec", 1000, "polydec", 0.5, 200, 256, 300, 1, 4),
    "guacamol": _defog(12, BIG_MOL_MLP, BIG_MOL_HID, 20, "marginal", "polydec", 1000, "polydec", 0.1, 300, 64, 1000,
                       2, 4),
    "zinc250k": _defog(12, BIG_MOL_MLP, BIG_MOL_HID, 20, "marginal", "polydec", 1000, "polydec", 0.1, 300, 256, 300,
                       4, 4),
}


def test_one_flow_config_per_published_setting():
    assert sorted(FLOW) == sorted(PUBLISHED)


def _info(name: str) -> DatasetInfo:
    molecule = name in ("qm9", "qm9_h", "moses", "guacamol", "zinc250k")
    nodes = ["C", "N", "O", "F"] if molecule else ["node"]
    edges = ["none", "single", "double", "triple"] if molecule else ["none", "edge"]
    return DatasetInfo(name=name, kind="molecule" if molecule else "graph", node_types=nodes, edge_types=edges,
                       max_nodes=9, split_sizes={"train": 10}, node_counts=[0] * 9 + [10],
                       node_marginals=[1 / len(nodes)] * len(nodes), edge_marginals=[0.7] + [0.3 / (len(edges) - 1)]
                       * (len(edges) - 1), valencies=[4, 3, 2, 1] if molecule else None,
                       atom_weights=[12.0, 14.0, 16.0, 19.0] if molecule else None)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_flow_config_holds_the_published_settings_and_builds(name: str):
    expected = PUBLISHED[name]
    config = print_config(Path(FLOW[name]))
    init = config["model"]["init_args"]
    assert config["model"]["class_path"] == "graphdiff.lit.DiscreteFlowModel"
    assert init["transition"] == expected["transition"] and init["train_distortion"] == expected["train_td"]
    assert init["lambda_edge"] == 5.0 and init["lr"] == pytest.approx(2e-4) and init["amsgrad"]
    sampler = init["sampler"]
    assert (sampler["steps"], sampler["time_distortion"]) == (expected["steps"], expected["td"])
    assert sampler["omega"] == pytest.approx(expected["omega"]) and sampler["eta"] == pytest.approx(expected["eta"])
    assert sampler["x1"] == "sample"  # DeFoG's estimator
    assert config["data"]["batch_size"] == expected["batch"]
    trainer = config["trainer"]
    assert trainer["max_epochs"] == expected["epochs"]
    assert trainer["check_val_every_n_epoch"] == expected["check_val"]
    assert init["eval_every_n_epochs"] == expected["check_val"] * expected["every"]
    assert trainer.get("gradient_clip_val") is None
    # The model, built on a small stand-in of the dataset's vocabulary.
    model = DiscreteFlowModel(_info(name).to_dict(), **{k: v for k, v in init.items() if k != "dataset_info"})
    net = model.denoiser.network
    assert len(net.layers) == expected["n_layers"]
    assert net.hidden_dims == expected["hid"] and net.hidden_mlp_dims == expected["mlp"]
    features = model.denoiser.extra_features
    assert features.mode == "rrwp" and features.random_walk.steps == expected["rrwp"]
    assert isinstance(model.configure_optimizers(), torch.optim.AdamW)
