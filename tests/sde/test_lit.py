"""ScoreSDEModel through the CLI: fit from configs/sde, sample, evaluate and test from the checkpoint; configs parse."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from graphdiff.cli import main
from graphdiff.errors import ConfigError
from graphdiff.info import DatasetInfo
from graphdiff.lightning_cli import run_lightning
from graphdiff.lit import ScoreSDEModel
from graphdiff.models.score_transformer import TransformerScoreNetwork
from graphdiff.sde.correction import correct_valency
from graphdiff.storage import GraphList
from graphdiff.types import DenseGraph, mask_adj, mask_nodes, one_hot_graph
from tests.conftest import REPO, data_file

CONFIGS = sorted((REPO / "configs" / "sde").glob("*.yaml"))
TINY_GDSS = '{"depth": 1, "nhid": 8, "adim": 8, "num_layers": 2, "num_linears": 2, "num_heads": 2}'


def graph_info(max_nodes: int = 6) -> DatasetInfo:
    counts = [0] * (max_nodes + 1)
    counts[max_nodes - 1] = counts[max_nodes] = 1
    return DatasetInfo(name="toy", kind="graph", node_types=["node"], edge_types=["none", "edge"],
                       max_nodes=max_nodes, split_sizes={"train": 2}, node_counts=counts, node_marginals=[1.0],
                       edge_marginals=[0.6, 0.4])


def molecule_info() -> DatasetInfo:
    return DatasetInfo(name="toymol", kind="molecule", node_types=["C", "N", "O", "F"],
                       edge_types=["none", "single", "double", "triple"], max_nodes=9, split_sizes={"train": 2},
                       node_counts=[0] * 9 + [1], node_marginals=[0.7, 0.1, 0.15, 0.05],
                       edge_marginals=[0.8, 0.15, 0.04, 0.01], valencies=[4, 3, 2, 1])


def init_args(config: Path) -> dict:
    return yaml.safe_load(config.read_text())["model"]["init_args"]


# ---------------------------------------------------------------------------------------------- configs
@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_config_parses_and_builds(config: Path, capsys):
    """--print_config accepts every key (no unknown keys), and the model builds from the config's init_args."""
    with pytest.raises(SystemExit) as exit_info:
        run_lightning(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"] == "graphdiff.lit.ScoreSDEModel"
    args = init_args(config)
    info = molecule_info() if args["node_features"] == "types" else graph_info(max_nodes=8)
    model = ScoreSDEModel(info.to_dict(), **args)
    assert model.process.sde_x.N == model.process.sde_adj.N == 1000


def test_expected_configs_exist():
    assert {p.stem for p in CONFIGS} == {"qm9", "zinc250k", "community_small", "ego_small", "grid", "enzymes"}


def test_config_with_an_unknown_key_is_rejected(tmp_path: Path, capsys):
    blob = yaml.safe_load((REPO / "configs" / "sde" / "community_small.yaml").read_text())
    blob["model"]["init_args"]["sampler"]["snr_typo"] = 0.1
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(blob))
    with pytest.raises(ConfigError, match="snr_typo"):
        run_lightning(["fit", "--config", str(bad), "--print_config"])


# ---------------------------------------------------------------------------------------------- gradients
TINY_TRANSFORMER = {"n_layers": 2, "hidden_mlp_dims": {"X": 8, "E": 8, "y": 8}, "dropout": 0.0,
                    "hidden_dims": {"dx": 8, "de": 8, "dy": 8, "n_head": 2, "dim_ffX": 8, "dim_ffE": 8, "dim_ffy": 8}}


@pytest.mark.parametrize("network", ["gdss", "transformer", "transformer+rrwp"])
def test_every_parameter_gets_a_gradient(network: str):
    info = graph_info()
    model_cfg = ({"depth": 2, "nhid": 8, "adim": 8, "num_layers": 3, "num_linears": 2, "num_heads": 2}
                 if network == "gdss" else dict(TINY_TRANSFORMER))
    if network.endswith("rrwp"):
        model_cfg.update(extra_features="rrwp", rrwp_steps=4)
    torch.manual_seed(0)
    model = ScoreSDEModel(info.to_dict(), node_features="degree", max_feat_num=6, network=network.split("+")[0],
                          model=model_cfg)
    nodes = torch.zeros(4, 6, dtype=torch.long)
    edges = torch.zeros(4, 6, 6, dtype=torch.long)
    for b in range(4):
        for i in range(5):
            edges[b, i, i + 1] = edges[b, i + 1, i] = 1
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[0, 5] = False
    edges[0, 4, 5] = edges[0, 5, 4] = 0
    batch = one_hot_graph(nodes, edges, mask, 1, 2)
    loss_x, loss_adj = model.process.loss(model.score_model, batch)
    (loss_x + loss_adj).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_gradient_clipping_is_per_network_with_gdss():
    model = ScoreSDEModel(graph_info().to_dict(), node_features="degree", max_feat_num=6, model=json.loads(TINY_GDSS))
    for p in model.parameters():
        p.grad = torch.full_like(p, 10.0)
    model.configure_gradient_clipping(None, 1.0, "norm")
    for net in (model.score_model.x_net, model.score_model.adj_net):
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in net.parameters()]))
        assert norm == pytest.approx(1.0, rel=1e-4)


def test_exponential_schedule_decays_per_epoch():
    model = ScoreSDEModel(graph_info().to_dict(), node_features="degree", max_feat_num=6, model=json.loads(TINY_GDSS),
                          lr=0.01, lr_decay=0.5)
    sched = model.configure_optimizers()["lr_scheduler"]["scheduler"]
    lam = sched.lr_lambdas[0]
    assert lam(0) == 1.0
    model._trainer = SimpleNamespace(current_epoch=2)  # what LightningModule.current_epoch reads
    assert model.current_epoch == 2
    assert lam(7) == pytest.approx(0.25)


# ---------------------------------------------------------------------------------------------- sampling
def test_generate_is_reproducible_and_respects_sizes():
    torch.manual_seed(0)
    model = ScoreSDEModel(graph_info().to_dict(), node_features="degree", max_feat_num=6, model=json.loads(TINY_GDSS),
                          sampler={"predictor": "S4", "corrector": "None", "snr": 0.15, "scale_eps": 0.7})
    a = model.generate(5, steps=4, seed=3, batch_size=2)
    b = model.generate(5, steps=4, seed=3, batch_size=2)
    c = model.generate(5, steps=4, seed=4, batch_size=2)
    assert isinstance(a, GraphList) and len(a) == 5
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.num_nodes, b.num_nodes)
    assert not (torch.equal(a.num_nodes, c.num_nodes) and torch.equal(a.edge_index, c.edge_index))
    fixed = model.generate(3, steps=2, seed=0, num_nodes=4)
    assert fixed.num_nodes.tolist() == [4, 4, 4]
    with pytest.raises(ConfigError):
        model.generate(2, steps=2, num_nodes=7)


def test_transformer_network_generates():
    torch.manual_seed(0)
    model = ScoreSDEModel(graph_info().to_dict(), node_features="degree", max_feat_num=6, network="transformer",
                          model={"n_layers": 1, "hidden_mlp_dims": {"X": 8, "E": 8, "y": 8},
                                 "hidden_dims": {"dx": 8, "de": 8, "dy": 8, "n_head": 2, "dim_ffX": 8,
                                                 "dim_ffE": 8, "dim_ffy": 8}})
    graphs = model.generate(3, steps=3, seed=0)
    assert len(graphs) == 3


def test_rrwp_score_network_is_equivariant_and_walks_on_the_clamped_adjacency():
    torch.manual_seed(0)
    net = TransformerScoreNetwork(3, 6, extra_features="rrwp", rrwp_steps=3, **TINY_TRANSFORMER).eval()
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    noise = torch.randn(2, 6, 6)
    adj = mask_adj((noise + noise.transpose(1, 2)) * (1 - torch.eye(6)), mask)
    x = mask_nodes(torch.randn(2, 6, 3), mask)
    t = torch.tensor([0.3, 0.8])
    out = net(DenseGraph(x, adj.unsqueeze(-1), torch.zeros(2, 0), mask), t)
    perm = torch.randperm(6)
    mask_p = mask[:, perm]
    out_p = net(DenseGraph(x[:, perm], adj[:, perm][:, :, perm].unsqueeze(-1), torch.zeros(2, 0), mask_p), t)
    assert torch.allclose(out_p.X, out.X[:, perm], atol=1e-5)
    assert torch.allclose(out_p.E, out.E[:, perm][:, :, perm], atol=1e-5)
    # the features: P = D^-1 clamp(A, 0, 1) by hand, return probability after two steps on the diagonal
    seen = {}
    net.net.register_forward_pre_hook(lambda module, args: seen.update(x=args[0].X))
    net(DenseGraph(x, adj.unsqueeze(-1), torch.zeros(2, 0), mask), t)
    w = adj[0].clamp(0, 1)
    P = w / w.sum(-1, keepdim=True)
    assert torch.allclose(seen["x"][0, :, 3:], torch.stack([torch.ones(6), torch.zeros(6), torch.diag(P @ P)], -1),
                          atol=1e-5)
    with pytest.raises(ConfigError, match="'none' or 'rrwp'"):
        TransformerScoreNetwork(3, 6, extra_features="cycles")


def test_valency_correction_lowers_the_highest_bond_of_overfull_atoms():
    # O=C#O-F style chain: C(0) triple O(1), O(1) single F(2): O has valence 4 > 2, F has valence 1.
    nodes = torch.tensor([[0, 2, 3]])
    edges = torch.zeros(1, 3, 3, dtype=torch.long)
    edges[0, 0, 1] = edges[0, 1, 0] = 3
    edges[0, 1, 2] = edges[0, 2, 1] = 1
    graph = one_hot_graph(nodes, edges, torch.ones(1, 3, dtype=torch.bool), 4, 4)
    fixed = correct_valency(graph, [4, 3, 2, 1], [0.0, 1.0, 2.0, 3.0]).E.argmax(-1)
    assert fixed[0, 0, 1] == fixed[0, 1, 0] == 1  # triple -> double -> single: O now 1 + 1 = 2
    assert fixed[0, 1, 2] == 1
    model = ScoreSDEModel(molecule_info().to_dict(), model=json.loads(TINY_GDSS), valency_correction=True)
    graphs = model.generate(4, steps=3, seed=0)
    dense = graphs.to_dense(range(4), 4, 4)
    orders = torch.tensor([0.0, 1.0, 2.0, 3.0])
    valence = orders[dense.E.argmax(-1)].sum(-1)
    allowed = torch.tensor([4.0, 3.0, 2.0, 1.0])[dense.X.argmax(-1)]
    assert bool(((valence <= allowed) | ~dense.node_mask).all())
    with pytest.raises(ConfigError):
        ScoreSDEModel(graph_info().to_dict(), node_features="degree", max_feat_num=6, valency_correction=True)


# ---------------------------------------------------------------------------------------------- CLI end to end
def test_fit_sample_evaluate_and_test_from_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    data_file("graphs", "community_small.json.gz")
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "data"
    run_lightning([
        "fit", "--config", str(REPO / "configs" / "sde" / "community_small.yaml"),
        "--data.root", str(root), "--data.batch_size", "16",
        "--model.init_args.model", TINY_GDSS, "--model.init_args.sample_steps", "4",
        "--model.init_args.test_samples", "4",
        "--trainer.max_steps", "3", "--trainer.max_epochs", "1", "--trainer.accelerator", "cpu",
        "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.limit_val_batches", "1",
        "--trainer.check_val_every_n_epoch", "1", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--trainer.logger", "false",
    ])
    ckpts = sorted((tmp_path / "run").rglob("*.ckpt"))
    assert ckpts, "no checkpoint written"
    ckpt = str(ckpts[-1])

    from graphdiff.api import load_model

    model = load_model(ckpt)
    assert isinstance(model, ScoreSDEModel) and not model.training

    out = tmp_path / "x.json"
    assert main(["sample", "--ckpt_path", ckpt, "--output", str(out), "--num_samples", "6", "--steps", "5"]) == 0
    assert out.is_file()
    assert main(["evaluate", "--samples", str(out), "--reference", "community_small:test", "--root", str(root),
                 "--metrics", "degree,clustering", "--output", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert {"degree", "clustering"} <= set(metrics)

    cli = run_lightning(["test", "--ckpt_path", ckpt, "--trainer.limit_test_batches", "1",
                         "--trainer.logger", "false", "--trainer.enable_progress_bar", "false"])
    logged = cli.trainer.callback_metrics
    assert "test/loss" in logged and "test/num_samples" in logged
    assert float(logged["test/num_samples"]) == 4


def test_valency_correction_is_reported_separately(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """On molecules with valency_correction, validation logs uncorrected metrics and, apart, corrected ones."""
    monkeypatch.chdir(tmp_path)
    smiles = ["CCO", "CC(=O)O", "C1CCCCC1", "CC#N", "OCC(O)CO", "CN(C)C", "C=CC=C", "CC(F)(F)F", "O=CNC", "CCCC"]
    path = tmp_path / "mols.smi"
    path.write_text("\n".join(smiles * 2) + "\n")
    cli = run_lightning([
        "fit", "--model", "graphdiff.lit.ScoreSDEModel", "--data.dataset", str(path),
        "--data.root", str(tmp_path / "data"), "--data.batch_size", "8", "--data.options", '{"kekulize": true}',
        "--model.init_args.model", TINY_GDSS, "--model.init_args.sample_steps", "3",
        "--model.init_args.valency_correction", "true", "--model.init_args.eval_every_n_epochs", "1",
        "--model.init_args.eval_samples", "6", "--model.init_args.eval_metrics", '["validity", "uniqueness"]',
        "--trainer.max_steps", "2", "--trainer.max_epochs", "1", "--trainer.accelerator", "cpu",
        "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
        "--trainer.default_root_dir", str(tmp_path / "run"),
    ])
    logged = cli.trainer.callback_metrics
    assert "val/validity" in logged and "val_corrected/validity" in logged, sorted(logged)
    assert float(logged["val_corrected/validity"]) >= float(logged["val/validity"])
    assert float(logged["val/num_samples"]) == float(logged["val_corrected/num_samples"]) == 6
    # the two sets are the same samples, before and after the correction
    model = cli.model
    raw = model.generate(6, seed=5, postprocess=False)
    variants = model.evaluation_variants(raw)
    assert set(variants) == {"", "_corrected"} and variants[""] is raw
    dense = raw.to_dense(range(6), model.info.num_node_types, model.info.num_edge_types)
    fixed = model.correct(dense)
    assert torch.equal(variants["_corrected"].node_types, fixed.node_classes()[fixed.node_mask].to(torch.uint8))
    assert torch.equal(model.generate(6, seed=5).edge_types, variants["_corrected"].edge_types)
