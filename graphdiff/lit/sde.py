"""ScoreSDEModel: GDSS's continuous score-based graph diffusion as a thin LightningModule.

The training step is the two denoising score-matching losses of :class:`~graphdiff.sde.ScoreSDEProcess`
(node features and adjacency); sampling is the process's :class:`~graphdiff.sde.process.ScoreSDEGraphSampler`
(predictor–corrector or S4, then quantisation), run by the shared
:meth:`~graphdiff.lit.base.GenerativeModel.generate`. See ``docs/sde.md``.

    graphdiff fit --config configs/sde/community_small.yaml
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

import torch
from torch import Tensor, nn

from graphdiff.chem import BOND_ORDERS, check_decoding
from graphdiff.conditioning import WithCondition
from graphdiff.errors import ConfigError
from graphdiff.info import DatasetInfo
from graphdiff.lit.base import GenerativeModel, register_model
from graphdiff.models.gdss import GDSSScoreModel
from graphdiff.models.score_transformer import TransformerScoreNetwork
from graphdiff.sde.correction import correct_valency
from graphdiff.sde.process import GraphEncoding, ScoreSDEGraphSampler, ScoreSDEProcess
from graphdiff.sde.samplers import SamplerSettings
from graphdiff.sde.sdes import build_sde
from graphdiff.storage import GraphList
from graphdiff.types import DenseGraph


class SDEConfig(TypedDict, total=False):
    """One forward SDE, GDSS's ``sde.x`` / ``sde.adj`` keys (for ``VE``, ``beta_min/max`` are ``sigma_min/max``)."""

    type: Literal["VP", "VE", "subVP"]
    beta_min: float
    beta_max: float
    num_scales: int


class SamplerConfig(TypedDict, total=False):
    """GDSS's ``sampler`` and ``sample`` keys (see :class:`~graphdiff.sde.samplers.SamplerSettings`)."""

    predictor: Literal["Euler", "Reverse", "S4", "None"]
    corrector: Literal["Langevin", "None"]
    snr: float
    scale_eps: float
    n_steps: int
    probability_flow: bool
    noise_removal: bool
    eps: float


class GDSSNetworkConfig(TypedDict, total=False):
    """GDSS's ``model`` keys (:meth:`~graphdiff.models.gdss.GDSSScoreModel.from_config`)."""

    x: Literal["ScoreNetworkX", "ScoreNetworkX_GMH"]
    adj: Literal["ScoreNetworkA"]
    conv: Literal["GCN", "MLP"]
    num_heads: int
    depth: int
    adim: int
    nhid: int
    num_layers: int
    num_linears: int
    c_init: int
    c_hid: int
    c_final: int


class TransformerNetworkConfig(TypedDict, total=False):
    """Graph transformer sizes (:class:`~graphdiff.models.GraphTransformerDenoiser`)."""

    preset: str
    n_layers: int
    hidden_mlp_dims: dict[str, int]
    hidden_dims: dict[str, int]
    dropout: float


DEFAULT_SDE: SDEConfig = {"type": "VP", "beta_min": 0.1, "beta_max": 1.0, "num_scales": 1000}


@register_model
class ScoreSDEModel(GenerativeModel):
    """GDSS (Jo et al., 2022): score networks for node features and adjacency trained by denoising score matching.

    Args:
        dataset_info: the data module's :class:`DatasetInfo` as a dict (linked by the CLI; stored in checkpoints).
        sde_x: SDE of the node features (GDSS ``sde.x``: ``type`` VP/VE/subVP, ``beta_min``, ``beta_max``,
            ``num_scales``).
        sde_adj: SDE of the adjacency (GDSS ``sde.adj``).
        node_features: what the node state holds: ``types`` (one-hot node types; GDSS ``init: atom``), ``degree``
            (one-hot degree; GDSS ``init: deg``) or ``ones``. Default: types for molecules and labelled graphs,
            degree otherwise.
        max_feat_num: width of degree/ones features (GDSS ``data.max_feat_num``; default ``max_nodes``).
        edge_values: adjacency value of each edge class after "no edge" (default: 1 for plain graphs, the bond
            order for molecules, as GDSS).
        network: ``gdss`` (ScoreNetworkX + ScoreNetworkA, not time-conditioned) or ``transformer`` (the graph
            transformer, conditioned on ``t``).
        model: network settings: GDSS ``model`` keys for ``gdss``; ``preset``, ``n_layers``, ``hidden_mlp_dims``,
            ``hidden_dims``, ``dropout`` for ``transformer``.
        reduce_mean: loss reduction (GDSS ``train.reduce_mean``; ``False`` = half the sum over entries).
        train_eps: smallest training time (GDSS ``train.eps``).
        likelihood_weighting: weight the loss by ``g(t)^2``.
        lambda_adj: weight of the adjacency loss (GDSS: 1, the two networks train separately).
        optimizer: ``adamw`` (decoupled weight decay) or ``adam`` (L2 weight decay, GDSS).
        lr, weight_decay, amsgrad: optimiser settings (GDSS: 5e-3 molecules / 1e-2 graphs, 1e-4, no amsgrad).
        warmup_steps: linear learning-rate warm-up.
        lr_schedule: ``constant``, ``cosine`` (as DiscreteDiffusionModel) or ``exponential``: the rate is
            multiplied by ``lr_decay`` after every epoch (GDSS ``lr_schedule: True``, ``lr_decay``).
        lr_decay: factor per epoch of the exponential schedule.
        clip_per_network: with ``gdss`` networks, apply the trainer's ``gradient_clip_val`` (norm) to each network
            separately, as GDSS (which trains them with two optimisers); otherwise to all parameters together.
        sampler: GDSS ``sampler``/``sample`` keys (``predictor`` Euler/Reverse/S4/None, ``corrector``
            Langevin/None, ``snr``, ``scale_eps``, ``n_steps``, ``probability_flow``, ``noise_removal``, ``eps``).
        sample_steps: time steps of the sampler (default: ``sde_adj.num_scales``).
        drop_isolated: remove nodes without edges from generated graphs (GDSS does, for generic graphs).
        valency_correction: apply GDSS's valency correction to generated molecules (default off); evaluation then
            logs metrics without (``val/...``) and with it (``val_corrected/...``).
        decoding: ``graphdiff`` (default: node types by argmax, molecules as the graph says) or ``gdss``: GDSS's
            molecule decoding -- a node whose features have no entry above 0.5 is dropped, the others take the first
            type above it, and molecules are made, corrected and scored as GDSS's sampler does
            (:func:`graphdiff.chem.gdss_molecule`; ``validity`` is then GDSS's validity without correction).
        eval_every_n_epochs, eval_samples, eval_metrics, test_samples, test_folds, sample_with_ema,
        sample_batch_size, compile: as :class:`~graphdiff.lit.DiscreteDiffusionModel` (GDSS samples qm9,
            zinc250k, community_small and ego_small with ``sample_with_ema: false``).
    """

    family = "sde"
    structural_hparams = ("sde_x", "sde_adj", "node_features", "max_feat_num", "edge_values", "network", "model")
    optimizer_state_hparams = ("amsgrad", "optimizer")

    def __init__(
        self,
        dataset_info: dict[str, Any],
        sde_x: SDEConfig | None = None,
        sde_adj: SDEConfig | None = None,
        node_features: Literal["types", "degree", "ones"] | None = None,
        max_feat_num: int | None = None,
        edge_values: list[float] | None = None,
        network: Literal["gdss", "transformer"] = "gdss",
        model: GDSSNetworkConfig | TransformerNetworkConfig | None = None,
        reduce_mean: bool = False,
        train_eps: float = 1e-5,
        likelihood_weighting: bool = False,
        lambda_adj: float = 1.0,
        optimizer: Literal["adamw", "adam"] = "adamw",
        lr: float = 5e-3,
        weight_decay: float = 1e-4,
        amsgrad: bool = False,
        warmup_steps: int = 0,
        lr_schedule: Literal["constant", "cosine", "exponential"] = "exponential",
        lr_decay: float = 0.999,
        clip_per_network: bool = True,
        sampler: SamplerConfig | None = None,
        sample_steps: int | None = None,
        drop_isolated: bool = False,
        valency_correction: bool = False,
        decoding: Literal["graphdiff", "gdss"] = "graphdiff",
        eval_every_n_epochs: int = 0,
        eval_samples: int = 64,
        eval_metrics: list[str] | None = None,
        test_samples: int | str = 256,
        test_folds: int = 1,
        sample_with_ema: bool = True,
        sample_batch_size: int = 256,
        compile: bool = False,
        condition_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.info = DatasetInfo.from_dict(dataset_info) if isinstance(dataset_info, dict) else dataset_info
        info = self.info
        encoding = GraphEncoding.for_dataset(info.kind, info.node_types, info.edge_types,
                                             max_feat_num=max_feat_num or info.max_nodes, node_features=node_features)
        if edge_values is not None:
            encoding = GraphEncoding(encoding.node_features, encoding.max_feat_num, tuple(edge_values))
        self.process = ScoreSDEProcess(_sde(sde_x), _sde(sde_adj), encoding, reduce_mean=reduce_mean, eps=train_eps,
                                       likelihood_weighting=likelihood_weighting)
        self.num_features = encoding.num_features(info.num_node_types)
        _sampler(sampler)  # validates early
        if valency_correction and (info.kind != "molecule" or not info.valencies):
            raise ConfigError("valency_correction needs a molecule dataset (with valencies)")
        _check_decoding(check_decoding(decoding), info, encoding, valency_correction)
        config = dict(model or {})
        if network == "gdss":
            try:
                self.score_model: nn.Module = GDSSScoreModel.from_config(
                    self.num_features, info.max_nodes, condition_dim=info.conditioning.width, **config)
            except TypeError as exc:
                raise ConfigError(f"model: {exc}") from None
        elif network == "transformer":
            self.score_model = TransformerScoreNetwork(self.num_features, info.max_nodes,
                                                       condition_dim=info.conditioning.width, **config)
        else:
            raise ConfigError(f"network must be 'gdss' or 'transformer', got {network!r}")
        self.register_buffer("node_count_dist", info.node_count_distribution(), persistent=False)
        self.check_hparams()

    # ------------------------------------------------------------------ training
    def forward(self, graph: DenseGraph, t: Tensor) -> DenseGraph:
        """The score network on graphdiff's network contract (``graph.X = x``, ``graph.E = adj[..., None]``)."""
        return self.score_model(graph, t)

    @property
    def network(self) -> nn.Module:
        return self.score_model

    def _loss(self, batch: DenseGraph, stage: str) -> Tensor:
        network = self.score_model
        if len(self.info.conditioning):  # the condition travels bound to the network: the states have no y
            network = WithCondition(network, self.conditional_batch(batch, stage == "train").y)
        loss_x, loss_adj = self.process.loss(network, batch)
        loss = loss_x + self.hparams.lambda_adj * loss_adj
        bs, sync = batch.batch_size, stage != "train"
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=bs, sync_dist=sync)
        self.log_dict({f"{stage}/loss_x": loss_x, f"{stage}/loss_adj": loss_adj}, batch_size=bs, sync_dist=sync)
        return loss

    def training_step(self, batch: DenseGraph, batch_idx: int) -> Tensor:
        return self._loss(batch, "train")

    def validation_step(self, batch: DenseGraph, batch_idx: int) -> None:
        self._loss(batch, "val")

    def test_step(self, batch: DenseGraph, batch_idx: int) -> None:
        self._loss(batch, "test")

    # ------------------------------------------------------------------ sampling
    def sampler_config(self) -> SamplerSettings:
        return _sampler(self.hparams.sampler, self.hparams.sample_steps)

    def graph_sampler(self, config: SamplerSettings, postprocess: bool = True,
                      network: nn.Module | None = None, steering: nn.Module | None = None) -> ScoreSDEGraphSampler:
        if steering is not None:
            raise ConfigError(f"regressor guidance is for the discrete family, not {self.family!r}")
        correct = self.correct if postprocess and self.hparams.valency_correction else None
        return self.process.sampler(network if network is not None else self.score_model,
                                    self.info.num_node_types, config,
                                    drop_isolated=self.hparams.drop_isolated, correction=correct,
                                    node_threshold=GDSS_NODE_THRESHOLD if self.hparams.decoding == "gdss" else None)

    def correct(self, graph: DenseGraph) -> DenseGraph:
        """GDSS's valency correction of a batch of generated molecules (:mod:`graphdiff.sde.correction`)."""
        if not self.info.valencies:
            raise ConfigError("valency correction needs a molecule dataset (with valencies)")
        orders = [0.0] + [BOND_ORDERS.get(str(name).lower(), 1.0) for name in self.info.edge_types[1:]]
        return correct_valency(graph, self.info.valencies, orders)

    def evaluation_variants(self, graphs: GraphList) -> dict[str, GraphList]:
        """The raw samples, and with ``valency_correction`` also the corrected ones, logged under
        ``<stage>_corrected/`` (GDSS reports validity without correction: the two are kept apart)."""
        if not self.hparams.valency_correction:
            return {"": graphs}
        dense = graphs.to_dense(range(len(graphs)), self.info.num_node_types, self.info.num_edge_types)
        return {"": graphs, "_corrected": GraphList.from_dense(self.correct(dense))}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """The trainer's ``gradient_clip_val``; by norm and with GDSS networks, per network as GDSS."""
        per_network = (self.hparams.clip_per_network and isinstance(self.score_model, GDSSScoreModel)
                       and gradient_clip_val and gradient_clip_algorithm in (None, "norm"))
        if not per_network:
            self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
            return
        for net in (self.score_model.x_net, self.score_model.adj_net):
            torch.nn.utils.clip_grad_norm_(net.parameters(), float(gradient_clip_val))


#: GDSS's sampler keeps a node when one of its features exceeds this value.
GDSS_NODE_THRESHOLD = 0.5


def _check_decoding(decoding: str, info: DatasetInfo, encoding: GraphEncoding, valency_correction: bool) -> None:
    """Refuse ``decoding="gdss"`` where it cannot apply.

    Raises:
        ConfigError: not a molecule dataset, node features other than types, or with ``valency_correction``.
    """
    if decoding != "gdss":
        return
    if info.kind != "molecule" or encoding.node_features != "types":
        raise ConfigError("decoding=gdss is GDSS's molecule decoding: it needs a molecule dataset and "
                          "node_features=types")
    if valency_correction:
        raise ConfigError("decoding=gdss applies GDSS's own valency correction; set valency_correction=false")


def _sde(config: SDEConfig | None):
    merged = {**DEFAULT_SDE, **(config or {})}
    return build_sde(merged["type"], float(merged["beta_min"]), float(merged["beta_max"]), int(merged["num_scales"]))


def _sampler(config: SamplerConfig | None, steps: int | None = None) -> SamplerSettings:
    try:
        return SamplerSettings(**{**(config or {}), "num_steps": steps})
    except TypeError as exc:
        raise ConfigError(f"sampler: {exc}") from None
