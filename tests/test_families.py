"""Every model family through every entry point: the CLI (fit with validation-time sampling and pictures, sample
with --image and --chain, predict, test, evaluate), the Python API, the pipeline object and the pictures.

A family that plugs into the one generation contract (``GenerativeModel.sampler_config`` / ``graph_sampler``)
must pass all of it without any entry point knowing which family it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest
import torch
import yaml

import graphdiff.api as gd
from graphdiff.cli import main
from graphdiff.datasets.graph_formats import read_graph_file
from graphdiff.generation import SamplerConfig
from graphdiff.lit import model_families
from graphdiff.pictures import draw_chain
from graphdiff.pipeline import OUTPUT_TYPES, GraphGenerator, load_sampler
from tests.test_cli import TINY_MODEL

PNG = b"\x89PNG\r\n\x1a\n"

TINY = {
    "discrete": TINY_MODEL,
    "flow": {
        "class_path": "graphdiff.lit.DiscreteFlowModel",
        "init_args": {
            "transition": "absorbing",
            "model": {**TINY_MODEL["init_args"]["model"], "extra_features": "rrwp", "rrwp_steps": 4},
            "sampler": {"steps": 5, "eta": 1.0, "omega": 0.1, "time_distortion": "polydec"},
            "eval_samples": 4, "test_samples": 4, "sample_batch_size": 4,
        },
    },
    "pard": {
        "class_path": "graphdiff.lit.PardModel",
        "init_args": {
            "T": 5, "max_hops": 1,
            "model": {"hidden_dims": 16, "edge_dims": 8, "n_layers": 1, "n_heads": 2},
            "eval_samples": 4, "test_samples": 4, "sample_batch_size": 4,
        },
    },
    "sde": {
        "class_path": "graphdiff.lit.ScoreSDEModel",
        "init_args": {
            "model": {"depth": 1, "nhid": 8, "adim": 8, "num_layers": 2, "num_linears": 2, "num_heads": 2},
            "sde_x": {"num_scales": 20}, "sde_adj": {"num_scales": 20},
            "eval_samples": 4, "test_samples": 4, "sample_batch_size": 4,
        },
    },
}


def run(*args) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module", params=sorted(TINY))
def trained(request, tmp_path_factory):
    """A tiny model of each family fitted for 3 steps on comm20 through the CLI, with sampling at validation."""
    family = request.param
    work = tmp_path_factory.mktemp(family)
    model = json.loads(json.dumps(TINY[family]))
    model["init_args"]["eval_every_n_epochs"] = 1
    config = {
        "seed_everything": 0,
        "model": model,
        "data": {"dataset": "comm20", "batch_size": 8, "root": str(work / "data")},
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_steps": 3, "limit_train_batches": 3, "limit_val_batches": 1,
            "num_sanity_val_steps": 0, "enable_progress_bar": False, "enable_model_summary": False,
            "default_root_dir": str(work / "run"),
            "logger": {"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": str(work)}},
        },
    }
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert run("fit", "--config", path) == 0
    last = next((work / "run").rglob("last.ckpt"), None) or next(work.rglob("last.ckpt"))
    return family, work, last


def test_fit_samples_and_pictures_at_validation(trained):
    family, work, last = trained
    pictures = sorted(p.name for p in work.rglob("samples/*.png"))
    assert any(name.startswith("val-samples-") for name in pictures), pictures
    assert any(name.startswith("val-chain-") for name in pictures), pictures
    assert all(p.read_bytes()[:8] == PNG for p in work.rglob("samples/*.png"))
    metrics = (next(work.rglob("metrics.csv"))).read_text()
    assert "val/num_samples" in metrics and "val/degree" in metrics
    assert torch.load(last, weights_only=True)["graphdiff"]["family"] == family


def test_cli_sample_with_image_and_chain(trained, tmp_path):
    _, _, last = trained
    out, grid, chain = tmp_path / "s.json", tmp_path / "g.png", tmp_path / "c.png"
    assert run("sample", "--ckpt_path", last, "--num_samples", "3", "--steps", "3", "--output", out,
               "--image", grid, "--chain", chain) == 0
    assert len(read_graph_file(out).triples) == 3
    assert grid.read_bytes()[:8] == PNG and chain.read_bytes()[:8] == PNG


def test_cli_predict_test_and_evaluate(trained, tmp_path, monkeypatch):
    _, work, last = trained
    monkeypatch.chdir(tmp_path)
    pred = tmp_path / "p.json"
    assert run("predict", "--ckpt_path", last, "--trainer.logger", "false", "--output", pred) == 0
    assert len(read_graph_file(pred).triples) == 20  # one per test graph of comm20
    assert run("test", "--ckpt_path", last, "--trainer.logger", "false") == 0
    metrics = tmp_path / "m.json"
    assert run("evaluate", "--samples", pred, "--reference", "comm20:test", "--root", work / "data",
               "--metrics", "degree,clustering", "--output", metrics) == 0
    assert {"degree", "clustering"} <= set(json.loads(metrics.read_text()))


def test_api_pictures_and_seeds(trained, tmp_path):
    family, _, last = trained
    model = gd.load_model(last)
    assert model.family == family
    graphs = gd.sample_graphs(model, 3, steps=3, seed=1)
    again = gd.sample_graphs(model, 3, steps=3, seed=1)
    assert [sorted(g.edges) for g in graphs] == [sorted(g.edges) for g in again]
    assert all(isinstance(g, nx.Graph) for g in graphs)
    path = draw_chain(model, tmp_path / "chain.png", seed=0, steps=4, frames=3)
    assert path.read_bytes()[:8] == PNG
    result = model.generate_with_chain(2, frames=3, steps=4, seed=0)
    assert len(result.chain) == 3 and all(len(frame) == 2 for _, frame in result.chain)
    assert torch.equal(result.chain[-1][1].edge_index, result.graphs.edge_index)


def test_pipeline_every_output_type_and_a_swapped_sampler(trained, tmp_path):
    family, _, last = trained
    generator = GraphGenerator.from_checkpoint(last)
    assert generator.family == family and isinstance(generator.sampler, SamplerConfig)
    for output_type in OUTPUT_TYPES:
        if output_type in ("rdkit", "smiles"):
            with pytest.raises(gd.GraphdiffError, match="needs a molecule model"):
                generator(2, steps=2, output_type=output_type)
            continue
        out = generator(2, steps=2, seed=0, output_type=output_type)
        assert len(out) == 2
    pyg = generator(2, steps=2, seed=0, output_type="pyg")
    assert pyg[0].x.shape[1] == generator.info.num_node_types
    generator.sampler = generator.sampler.with_steps(3)
    saved = generator.save_sampler(tmp_path / "sampler.json")
    assert load_sampler(saved) == generator.sampler
    reloaded = GraphGenerator.from_checkpoint(last, sampler=saved)
    a = reloaded(2, seed=4, output_type="graphlist")
    b = generator(2, seed=4, output_type="graphlist")
    assert torch.equal(a.edge_index, b.edge_index)
    other = "sde" if family != "sde" else "discrete"
    with pytest.raises(gd.GraphdiffError, match="do not fit"):
        GraphGenerator.from_checkpoint(last, sampler={"family": other})


@pytest.mark.parametrize("family", sorted(TINY))
def test_api_fit_trains_every_family(family, tmp_path):
    args = {k: v for k, v in TINY[family]["init_args"].items() if k != "eval_every_n_epochs"}
    if family == "discrete":
        args["T"] = 5
    model = gd.fit([nx.cycle_graph(n) for n in (4, 5, 6) * 4], output_dir=tmp_path / family, max_epochs=1,
                   batch_size=4, family=family, **args)
    assert model.family == family
    assert len(gd.sample_graphs(model, 2, steps=2)) == 2


def test_every_registered_family_is_covered():
    assert set(model_families()) == set(TINY)


def test_unknown_family_is_one_line(tmp_path):
    with pytest.raises(gd.GraphdiffError, match="unknown model family 'gran'"):
        gd.fit(["CCO", "CCN"] * 5, output_dir=tmp_path, family="gran")


def test_sampler_settings_round_trip_and_errors():
    from graphdiff.diffusion.blockwise import PardSamplerConfig
    from graphdiff.diffusion.sampler import DiscreteSamplerConfig
    from graphdiff.errors import ConfigError
    from graphdiff.sde.samplers import SamplerSettings

    for config in (DiscreteSamplerConfig(steps=7), SamplerSettings("S4", "None", snr=0.1, num_steps=9),
                   PardSamplerConfig(steps=4, fixed_size=True)):
        assert SamplerConfig.from_dict(json.loads(config.to_json())) == config
        assert config.with_steps(3).steps == 3 and config.with_steps(None) is config
    with pytest.raises(ConfigError, match="unknown snr"):
        SamplerConfig.from_dict({"family": "discrete", "snr": 0.1})
    with pytest.raises(ConfigError, match="unknown family"):
        SamplerConfig.from_dict({"family": "nope"})
    with pytest.raises(ConfigError, match="positive integer"):
        DiscreteSamplerConfig(steps=0)


def test_ckpt_chain_path_is_the_same_for_any_family(trained):
    """Nothing in the entry points branches on the family: the chain of the CLI equals the API's."""
    _, _, last = trained
    model = gd.load_model(Path(last))
    a = model.generate_with_chain(1, frames=4, steps=4, seed=0, num_nodes=12)
    b = model.generate_with_chain(1, frames=4, steps=4, seed=0, num_nodes=12)
    assert [label for label, _ in a.chain] == [label for label, _ in b.chain]
    assert all(torch.equal(x.edge_index, y.edge_index) for (_, x), (_, y) in zip(a.chain, b.chain))


def test_cosine_schedule_anneals_over_the_time_budget():
    """With max_time alone (infinite steps), the cosine factor follows the fraction of the time budget trained."""
    import math
    from types import SimpleNamespace

    from pytorch_lightning.callbacks import Timer

    from graphdiff.errors import ConfigError
    from graphdiff.lit import lr_factor

    timer = Timer(duration={"minutes": 10})
    elapsed = {"s": 0.0}
    timer.time_elapsed = lambda stage="train": elapsed["s"]  # type: ignore[method-assign]
    module = SimpleNamespace(trainer=SimpleNamespace(estimated_stepping_batches=math.inf, callbacks=[timer]))
    assert lr_factor(module, 3, 10, "cosine") == pytest.approx(0.4)  # warm-up first
    for seconds, expected in ((0, 1.0), (150, 0.5 * (1 + math.cos(math.pi / 4))), (300, 0.5), (600, 0.0), (900, 0.0)):
        elapsed["s"] = seconds
        assert lr_factor(module, 50, 10, "cosine") == pytest.approx(expected, abs=1e-12), seconds
    stepped = SimpleNamespace(trainer=SimpleNamespace(estimated_stepping_batches=110, callbacks=[timer]))
    assert lr_factor(stepped, 60, 10, "cosine") == pytest.approx(0.5)  # steps win when they are known
    unbounded = SimpleNamespace(trainer=SimpleNamespace(estimated_stepping_batches=math.inf, callbacks=[]))
    with pytest.raises(ConfigError, match="lr_schedule: cosine needs a length of training"):
        lr_factor(unbounded, 50, 10, "cosine")
