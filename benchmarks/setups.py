"""The model configurations the benchmarks measure, built from graphdiff's own classes.

* ``planar`` — DiGress ``configs/experiment/planar.yaml``: 64 nodes, 10 layers, hidden_mlp_dims
  ``{X: 128, E: 64, y: 128}``, hidden_dims ``{dx: 256, de: 64, dy: 64, n_head: 8, dim_ffX: 256, dim_ffE: 64,
  dim_ffy: 2048}``, extra features ``all``, T = 1000, cosine schedule, marginal transitions.
* ``qm9`` — DiGress ``configs/experiment/qm9_no_h.yaml`` on graphdiff's heavy-atom QM9 (9 nodes, 8 charged atom
  types): 9 layers, hidden_mlp_dims ``{X: 256, E: 128, y: 128}``, hidden_dims ``{dx: 256, de: 64, dy: 64,
  n_head: 8, dim_ffX: 256, dim_ffE: 128, dim_ffy: 2048}``, extra features ``all`` + molecular, T = 500.

``dim_ffy`` is 2048 as in graphdiff's presets and shipped configs, what users run: DiGress's configs say 256 / 128,
but its code never passed the value on and ran 2048. Training batches are random draws from the training split
(``train_batch``), not its first graphs: QM9's first molecules are its smallest.

GDSS (``configs/sde/*.yaml``, GDSS's ``config/*.yaml``): ``gdss_qm9`` (ScoreNetworkX depth 2, nhid 16;
ScoreNetworkA nhid 16, 3 layers, 3 linears, c 2/8/4, adim 16, 4 heads; VE/VE σ 0.1..1; batch 1024; reverse
diffusion + Langevin, snr 0.2) and ``gdss_community_small`` (ScoreNetworkX depth 3, nhid 32; ScoreNetworkA
nhid 32, 5 layers, 2 linears, adim 32; VP/VP β 0.1..1; batch 128; Euler + Langevin, snr 0.05).

PARD (``graphdiff.lit.PardModel``): the model settings of graphdiff's shipped ``pard/<dataset>.yaml``, PARD's
published ones (read when the setup is built, so the benchmark follows the config users run). ``qm9``: T = 50
steps per block, uniform transitions, max_hops 3, ``training_mode: parallel`` (the graph padded to 2n nodes, causal
network), ``PardNetwork`` hidden_dims 256, edge_dims 64, 8 layers, 8 heads. ``planar``: T = 50, uniform, max_hops
1, ``training_mode: batched_sequential`` (one graph per block, non-causal), hidden_dims 256, edge_dims 32, 10
layers, 8 heads, extra features ``all`` on the denoiser. Both ``block_model: separate`` (a second network of the
same shape, without extra features, predicts the next block's size and degree), PPGN blocks with
``add_transpose``, input residual.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

DIGRESS_SETUPS: dict[str, dict[str, Any]] = {
    "planar": {
        "dataset": "planar",
        "T": 1000,
        "denoiser": {
            "preset": "planar",
            "n_layers": 10,
            "hidden_mlp_dims": {"X": 128, "E": 64, "y": 128},
            "hidden_dims": {"dx": 256, "de": 64, "dy": 64, "n_head": 8, "dim_ffX": 256, "dim_ffE": 64,
                            "dim_ffy": 2048},
            "extra_features": "all",
        },
    },
    "qm9": {
        "dataset": "qm9",
        "T": 500,
        "denoiser": {
            "preset": "qm9",
            "n_layers": 9,
            "hidden_mlp_dims": {"X": 256, "E": 128, "y": 128},
            "hidden_dims": {"dx": 256, "de": 64, "dy": 64, "n_head": 8, "dim_ffX": 256, "dim_ffE": 128,
                            "dim_ffy": 2048},
            "extra_features": "all",
        },
    },
}

GDSS_SETUPS: dict[str, dict[str, Any]] = {
    "gdss_qm9": {
        "dataset": "qm9",
        "node_features": "types",
        "max_feat_num": None,
        "sde_x": ("VE", 0.1, 1.0, 1000),
        "sde_adj": ("VE", 0.1, 1.0, 1000),
        "model": dict(x="ScoreNetworkX", adj="ScoreNetworkA", conv="GCN", num_heads=4, depth=2, adim=16, nhid=16,
                      num_layers=3, num_linears=3, c_init=2, c_hid=8, c_final=4),
        "sampler": dict(predictor="Reverse", corrector="Langevin", snr=0.2, scale_eps=0.7, n_steps=1),
        "batch_size": 1024,
    },
    "gdss_community_small": {
        "dataset": "community_small",
        "node_features": "degree",
        "max_feat_num": 10,
        "sde_x": ("VP", 0.1, 1.0, 1000),
        "sde_adj": ("VP", 0.1, 1.0, 1000),
        "model": dict(x="ScoreNetworkX", adj="ScoreNetworkA", conv="GCN", num_heads=4, depth=3, adim=32, nhid=32,
                      num_layers=5, num_linears=2, c_init=2, c_hid=8, c_final=4),
        "sampler": dict(predictor="Euler", corrector="Langevin", snr=0.05, scale_eps=0.7, n_steps=1),
        "batch_size": 128,
    },
}


#: The shipped PARD config of each setup (``graphdiff/configs/pard/<dataset>.yaml``, PARD's published settings).
PARD_SETUPS: dict[str, str] = {"planar": "pard/planar", "qm9": "pard/qm9"}
#: Settings of a shipped config the benchmarks do not use (periodic evaluation, learning-rate schedule).
PARD_UNUSED = {"eval_every_n_epochs", "eval_samples", "eval_metrics", "test_samples", "test_folds", "warmup_steps",
               "lr_schedule", "sample_batch_size"}

#: GDSS's published setup on the same data as a DiGress / PARD setup (for the family comparison).
GDSS_FOR = {"qm9": "gdss_qm9"}


def ensure_data_env() -> None:
    """Point graphdiff at the shared raw data when the caller has not."""
    if "GRAPHDIFF_DATA_DIR" not in os.environ:
        for candidate in ("../shared/data", "/work/shared/data"):
            if os.path.isdir(candidate):
                os.environ["GRAPHDIFF_DATA_DIR"] = os.path.abspath(candidate)
                break


def load(name: str):
    ensure_data_env()
    from graphdiff.datasets.registry import load_dataset

    return load_dataset(name)


def train_batch(dataset, batch_size: int, device: str = "cpu", offset: int = 0):
    """``batch_size`` training graphs drawn at random (seed ``offset``) as a :class:`DenseGraph`, as a shuffled
    loader gives them (the split repeated if it is smaller than the batch)."""
    graphs = dataset.split("train")
    order = torch.randperm(len(graphs), generator=torch.Generator().manual_seed(offset))
    idx = order.repeat(-(-batch_size // len(graphs)))[:batch_size].tolist()
    info = dataset.info
    return graphs.to_dense(idx, info.num_node_types, info.num_edge_types).to(device)


@dataclass
class DiGressSetup:
    name: str
    dataset: Any
    process: Any
    T: int

    @property
    def info(self):
        return self.dataset.info

    def denoiser(self, dropout: float = 0.1, seed: int = 0):
        from graphdiff.models import GraphTransformerDenoiser

        torch.manual_seed(seed)
        cfg = dict(DIGRESS_SETUPS[self.name]["denoiser"])
        return GraphTransformerDenoiser.from_dataset_info(self.info, dropout=dropout, **cfg)


def digress_setup(name: str) -> DiGressSetup:
    from graphdiff.diffusion import DiscreteDiffusion

    spec = DIGRESS_SETUPS[name]
    dataset = load(spec["dataset"])
    process = DiscreteDiffusion.for_dataset(dataset.info, spec["T"])
    return DiGressSetup(name, dataset, process, spec["T"])


def split_forward(denoiser, noisy, t):
    """``GraphTransformerDenoiser.forward`` in two timed halves: ``(extra-features fn, network fn)``.

    Returns closures so the caller can time them apart; ``network(features(...))`` equals ``denoiser(noisy, t)``
    (checked by ``tests/test_benchmarks.py``). Works for graphdiff's denoiser and the baseline.
    """
    from graphdiff.models.base import sanitize_padding

    if hasattr(denoiser, "inputs"):  # the baseline
        noisy = noisy.mask()

        def features():
            return denoiser.extra_features(noisy)

        def network(extra):
            return denoiser.network(*denoiser.inputs(noisy, extra, t))

        return features, network

    t = denoiser.check_input(noisy, t)
    noisy = sanitize_padding(noisy)

    def features():
        return denoiser.extra_features(noisy)

    def network(extra):
        X = torch.cat((noisy.X, extra.X), dim=-1)
        E = torch.cat((noisy.E, extra.E), dim=-1) if extra.E.shape[-1] else noisy.E
        y = torch.cat((noisy.y, extra.y.to(noisy.y.dtype), t.unsqueeze(-1).to(noisy.y.dtype)), dim=-1)
        return denoiser.network(X, E, y, noisy.node_mask)

    return features, network


@dataclass
class GDSSSetup:
    name: str
    dataset: Any
    process: Any
    encoding: Any
    num_features: int
    spec: dict

    def model(self, seed: int = 0):
        from graphdiff.models.gdss import GDSSScoreModel

        torch.manual_seed(seed)
        return GDSSScoreModel.from_config(self.num_features, self.dataset.info.max_nodes, **self.spec["model"])


def gdss_setup(name: str) -> GDSSSetup:
    from graphdiff.sde import GraphEncoding, ScoreSDEProcess, build_sde

    spec = GDSS_SETUPS[name]
    dataset = load(spec["dataset"])
    info = dataset.info
    encoding = GraphEncoding.for_dataset(info.kind, info.node_types, info.edge_types,
                                         max_feat_num=spec["max_feat_num"], node_features=spec["node_features"])
    process = ScoreSDEProcess(build_sde(*spec["sde_x"]), build_sde(*spec["sde_adj"]), encoding)
    return GDSSSetup(name, dataset, process, encoding, encoding.num_features(info.num_node_types), spec)


@dataclass
class PardSetup:
    name: str
    dataset: Any
    config: str
    spec: dict
    batch_size: int | None

    @property
    def info(self):
        return self.dataset.info

    def model(self, seed: int = 0, block_sizes: bool = True):
        """An untrained :class:`~graphdiff.lit.PardModel` of this setup; ``block_sizes``: ready to sample, with the
        first block's size distribution of the training split (``first_block_distribution``) and the block head's
        size logits set to the training split's block sizes (:func:`calibrate_block_sizes`)."""
        from graphdiff.lit.pard import PardModel

        torch.manual_seed(seed)
        model = PardModel(self.info.to_dict(), **self.spec)
        if block_sizes:
            train = self.dataset.split("train")
            model.first_block_sizes.copy_(model.first_block_distribution(train))
            calibrate_block_sizes(model, train)
        return model


def pard_setup(name: str) -> PardSetup:
    """PARD on the data of DiGress setup ``name`` with the model settings of its shipped config."""
    import yaml

    from graphdiff.configs import resolve_config

    config = yaml.safe_load(resolve_config(PARD_SETUPS[name]).read_text())
    spec = {k: v for k, v in config["model"]["init_args"].items() if k not in PARD_UNUSED}
    batch = (config.get("data") or {}).get("batch_size")
    return PardSetup(name, load(DIGRESS_SETUPS[name]["dataset"]), PARD_SETUPS[name], spec, batch)


def block_statistics(model, graphs, limit: int = 4096, seed: int = 0) -> dict[str, Any]:
    """PARD's block decomposition of up to ``limit`` training graphs drawn at random: blocks per graph and the
    distribution of the sizes of the blocks after the first (``next_sizes``, index = size, 0 = "no more blocks")."""
    from graphdiff.diffusion.blocks import partial_order

    info = model.info
    order = torch.randperm(len(graphs), generator=torch.Generator().manual_seed(seed))[:limit].tolist()
    dense = graphs.to_dense(order, info.num_node_types, info.num_edge_types)
    blocks = partial_order(dense, model.hparams.max_hops)
    num_blocks = blocks.num_blocks
    later = blocks.size[:, 1:]
    sizes = torch.bincount(later[later > 0], minlength=info.max_nodes + 1)[: info.max_nodes + 1].float()
    sizes[0] = len(order)  # one stop per graph
    return {"graphs": len(order), "blocks_mean": float(num_blocks.float().mean()), "blocks_max": int(num_blocks.max()),
            "block_size_mean": float(blocks.size[blocks.size > 0].float().mean()), "next_sizes": sizes / sizes.sum()}


def calibrate_block_sizes(model, graphs) -> dict[str, Any]:
    """Make an untrained PARD block head draw block sizes as the training split has them.

    An untrained head draws the next block's size about uniformly among those that fit, so a graph of ``n`` nodes
    takes about ``ln n`` blocks, where a trained model takes about as many as the data's decomposition has (planar
    with max_hops 1: ~21 blocks of ~3 nodes; QM9 with max_hops 3: ~4.3 of ~2): sampling speed would be measured on
    the wrong number of network calls. The last layer of
    the size head is set to output the log of the data's block-size distribution (weights 0), whatever the input;
    the network's cost does not depend on its weights. Returns :func:`block_statistics`.
    """
    stats = block_statistics(model, graphs)
    last = model.block_head.size_head[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(stats["next_sizes"].clamp(min=1e-12).log())
    return stats
