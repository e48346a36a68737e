"""GDSS's released ego_small weights, mapped by ``benchmarks.gdss_checkpoints``, make graphdiff's score networks
compute what GDSS's own ScoreNetworkX / ScoreNetworkA compute.

GDSS's network modules are read from the bare git mirror of github.com/harryjo97/GDSS into a temporary directory
and imported from there for the comparison only; the tests are skipped when the mirror is absent.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import gdss_checkpoints as gc
from graphdiff.models.gdss import GDSSScoreModel
from graphdiff.types import DenseGraph

MIRROR = Path(os.environ.get("GDSS_MIRROR", "/work/.mirror/harryjo97+GDSS/repo"))
GDSS_FILES = ["models/__init__.py", "models/layers.py", "models/attention.py", "models/ScoreNetwork_X.py",
              "models/ScoreNetwork_A.py", "utils/__init__.py", "utils/graph_utils.py"]


def _mirror_has(path: str) -> bool:
    if not (MIRROR / "HEAD").is_file():
        return False
    done = subprocess.run(["git", "-C", str(MIRROR), "cat-file", "-e", f"HEAD:{path}"], capture_output=True)
    return done.returncode == 0


pytestmark = pytest.mark.skipif(not _mirror_has(gc.RELEASES["ego_small"].checkpoint),
                                reason=f"GDSS mirror with checkpoints not found at {MIRROR} (set GDSS_MIRROR)")


@pytest.fixture(scope="module")
def checkpoint():
    return gc.read_checkpoint("ego_small", mirror=MIRROR)


@pytest.fixture(scope="module")
def gdss_modules(tmp_path_factory):
    """GDSS's ``models.ScoreNetwork_X`` and ``models.ScoreNetwork_A``, imported from a temporary copy."""
    root = tmp_path_factory.mktemp("gdss")
    for rel in GDSS_FILES:
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith("__init__.py") and not _mirror_has(rel):
            dest.write_text("")  # GDSS's folders are namespace packages
        else:
            dest.write_bytes(gc.git_show(MIRROR, rel))
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] in ("models", "utils")}
    for k in saved:
        del sys.modules[k]
    sys.path.insert(0, str(root))
    try:
        importlib.invalidate_caches()
        score_x = importlib.import_module("models.ScoreNetwork_X")
        score_a = importlib.import_module("models.ScoreNetwork_A")
    finally:
        sys.path.remove(str(root))
        for k in [k for k in sys.modules if k.split(".")[0] in ("models", "utils")]:
            del sys.modules[k]
        sys.modules.update(saved)
    return score_x, score_a


def _gdss_networks(modules, checkpoint, state_x, state_adj):
    score_x, score_a = modules
    px = {k: v for k, v in checkpoint["params_x"].items() if k != "model_type"}
    pa = {k: v for k, v in checkpoint["params_adj"].items() if k != "model_type"}
    assert checkpoint["params_x"]["model_type"] == "ScoreNetworkX"
    net_x, net_a = score_x.ScoreNetworkX(**px), score_a.ScoreNetworkA(**pa)
    net_x.load_state_dict(state_x)
    net_a.load_state_dict(state_adj)
    return net_x.double().eval(), net_a.double().eval()


def _graphdiff_network(checkpoint, use_ema):
    cfg = gc.plain(checkpoint["model_config"])
    model = GDSSScoreModel.from_config(cfg["data"]["max_feat_num"], cfg["data"]["max_node_num"], **cfg["model"])
    dropped = gc.load_gdss_weights(model, checkpoint, use_ema)
    return model.double().eval(), dropped


def _batch(n_max, features, seed=0, batch=6):
    """A batch as the sampler sees it: masked Gaussian ``x``, symmetric masked ``adj`` with an empty diagonal."""
    g = torch.Generator().manual_seed(seed)
    counts = torch.tensor([n_max, n_max - 1, 3, 7, 12, 1][:batch])
    flags = (torch.arange(n_max)[None, :] < counts[:, None]).double()
    x = torch.randn(batch, n_max, features, generator=g, dtype=torch.float64) * flags[..., None]
    upper = torch.randn(batch, n_max, n_max, generator=g, dtype=torch.float64).triu(1)
    adj = (upper + upper.transpose(1, 2)) * flags[:, :, None] * flags[:, None, :]
    return x, adj, flags


@pytest.mark.parametrize("use_ema", [False, True])
def test_mapped_weights_reproduce_gdss_networks(gdss_modules, checkpoint, use_ema):
    state_x, state_adj = checkpoint["x_state_dict"], checkpoint["adj_state_dict"]
    if use_ema:
        state_x = gc.ema_state(checkpoint["ema_x"], state_x, "x")
        state_adj = gc.ema_state(checkpoint["ema_adj"], state_adj, "adj")
    net_x, net_a = _gdss_networks(gdss_modules, checkpoint, state_x, state_adj)
    ours, dropped = _graphdiff_network(checkpoint, use_ema)
    # the only GDSS tensors left out: values and multi_channel of the last ScoreNetworkA layer (c_hid channels)
    last = checkpoint["params_adj"]["num_layers"] - 1
    assert dropped and all(k.startswith(f"adj:layers.{last}.") for k in dropped)
    n_max = checkpoint["params_adj"]["max_node_num"]  # GDSS's ScoreNetworkA needs inputs of this size
    x, adj, flags = _batch(n_max, checkpoint["params_x"]["max_feat_num"])
    with torch.no_grad():
        want_x, want_adj = net_x(x, adj, flags), net_a(x, adj, flags)
        got = ours(DenseGraph(x, adj.unsqueeze(-1), None, flags.bool()), None)
    assert want_adj.abs().max() > 1e-3  # a real comparison, not of zeros
    torch.testing.assert_close(got.X, want_x, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(got.E.squeeze(-1), want_adj, rtol=1e-10, atol=1e-10)


def test_raw_and_ema_weights_differ(checkpoint):
    raw, _ = _graphdiff_network(checkpoint, False)
    ema, _ = _graphdiff_network(checkpoint, True)
    assert any(not torch.equal(a, b) for a, b in zip(raw.state_dict().values(), ema.state_dict().values()))


def test_mapping_refuses_unmatched_and_misshaped_tensors(checkpoint):
    cfg = gc.plain(checkpoint["model_config"])
    model = GDSSScoreModel.from_config(cfg["data"]["max_feat_num"], cfg["data"]["max_node_num"], **cfg["model"])
    layers = checkpoint["params_adj"]["num_layers"]
    x_state, adj_state = dict(checkpoint["x_state_dict"]), dict(checkpoint["adj_state_dict"])

    bad = {**adj_state, "layers.0.attn.0.gnn_q.weight": adj_state["layers.0.attn.0.gnn_q.weight"][:, :-1]}
    with pytest.raises(gc.MappingError, match="does not fit"):
        gc.map_gdss_state_dict(x_state, bad, model, layers)
    with pytest.raises(gc.MappingError, match="no mapping rule"):
        gc.map_gdss_state_dict({**x_state, "extra.weight": torch.zeros(1)}, adj_state, model, layers)
    missing = {k: v for k, v in adj_state.items() if k != "layers.1.attn.3.gnn_k.bias"}
    with pytest.raises(gc.MappingError, match="not set by the checkpoint"):
        gc.map_gdss_state_dict(x_state, missing, model, layers)
    extra_channel = {**adj_state, "layers.0.attn.5.gnn_q.bias": adj_state["layers.0.attn.0.gnn_q.bias"]}
    with pytest.raises(gc.MappingError):  # layer 0 has c_init = 2 channels
        gc.map_gdss_state_dict(x_state, extra_channel, model, layers)


def test_checkpoint_settings_match_the_shipped_config(checkpoint):
    init = gc.graphdiff_config("ego_small")
    checked = gc.check_config("ego_small", checkpoint, init, 17, MIRROR)
    assert "config/ego_small.yaml" in checked["sampler"]
    with pytest.raises(gc.MappingError, match="model.depth"):
        gc.check_config("ego_small", checkpoint, {**init, "model": {**init["model"], "depth": 3}}, 17, None)
