"""ScoreSDEModel: GDSS's continuous score-based graph diffusion as a thin LightningModule.

The training step is the two denoising score-matching losses of :class:`~graphdiff.sde.ScoreSDEProcess`
(node features and adjacency); :meth:`ScoreSDEModel.generate` draws node counts, runs a predictor–corrector
or S4 sampler and quantises, returning a :class:`~graphdiff.storage.GraphList` exactly like
:meth:`graphdiff.lit.DiscreteDiffusionModel.generate`, so ``graphdiff sample``, ``graphdiff test`` and the
sampling-based validation of :class:`~graphdiff.lit.GenerativeModel` work unchanged. See ``docs/sde.md``.

    graphdiff fit --config configs/sde/community_small.yaml
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

import torch
from torch import Tensor, nn

from graphdiff.chem import BOND_ORDERS
from graphdiff.errors import ConfigError
from graphdiff.info import DatasetInfo
from graphdiff.lit import GenerativeModel, lr_factor, register_model
from graphdiff.models.gdss import GDSSScoreModel
from graphdiff.sampling import node_mask_from_counts
from graphdiff.sde.correction import correct_valency
from graphdiff.sde.process import GraphEncoding, ScoreSDEProcess
from graphdiff.sde.samplers import SamplerSettings
from graphdiff.sde.sdes import build_sde
from graphdiff.storage import GraphList
from graphdiff.types import DenseGraph, mask_adj, mask_nodes


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


class TransformerScoreNetwork(nn.Module):
    """The graph transformer as a time-conditioned score network: ``(x, adj, flags, t) -> (out_x, out_adj)``.

    ``x`` is the transformer's ``X`` and ``adj`` its one-channel ``E``; the outputs are read from the same
    positions, ``out_adj`` symmetrised with an empty diagonal, both masked. No extra features (they assume
    discrete graphs).
    """

    time_conditioned = True

    def __init__(self, num_features: int, max_nodes: int, **config: Any) -> None:
        super().__init__()
        from graphdiff.models import GraphTransformerDenoiser

        self.net = GraphTransformerDenoiser((num_features, 1, 0), (num_features, 1, 0), extra_features="none",
                                            max_nodes=max_nodes, **config)

    def forward(self, x: Tensor, adj: Tensor, flags: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        mask = flags.bool()
        y = torch.zeros(x.shape[0], 0, dtype=x.dtype, device=x.device)
        out = self.net(DenseGraph(x, adj.unsqueeze(-1), y, mask), t)
        out_adj = out.E.squeeze(-1)
        out_adj = (out_adj + out_adj.transpose(-1, -2)) / 2
        out_adj = out_adj * (1 - torch.eye(adj.shape[-1], dtype=adj.dtype, device=adj.device))
        return mask_nodes(out.X, flags), mask_adj(out_adj, flags)


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
        eval_every_n_epochs, eval_samples, eval_metrics, test_samples, sample_batch_size: as
            :class:`~graphdiff.lit.DiscreteDiffusionModel`.
    """

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
        eval_every_n_epochs: int = 0,
        eval_samples: int = 64,
        eval_metrics: list[str] | None = None,
        test_samples: int = 256,
        sample_batch_size: int = 256,
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
        self.sampler_settings = _sampler(sampler)  # validates early
        if valency_correction and (info.kind != "molecule" or not info.valencies):
            raise ConfigError("valency_correction needs a molecule dataset (with valencies)")
        config = dict(model or {})
        if network == "gdss":
            try:
                self.score_model: nn.Module = GDSSScoreModel.from_config(self.num_features, info.max_nodes, **config)
            except TypeError as exc:
                raise ConfigError(f"model: {exc}") from None
        elif network == "transformer":
            self.score_model = TransformerScoreNetwork(self.num_features, info.max_nodes, **config)
        else:
            raise ConfigError(f"network must be 'gdss' or 'transformer', got {network!r}")
        self.register_buffer("node_count_dist", info.node_count_distribution(), persistent=False)
        self._uncorrected = False
        self.check_hparams()

    # ------------------------------------------------------------------ training
    def forward(self, x: Tensor, adj: Tensor, flags: Tensor, t: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if getattr(self.score_model, "time_conditioned", False):
            return self.score_model(x, adj, flags, t)
        return self.score_model(x, adj, flags)

    def _loss(self, batch: DenseGraph, stage: str) -> Tensor:
        loss_x, loss_adj = self.process.loss(self.score_model, batch)
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
    @torch.no_grad()
    def generate(
        self,
        num_samples: int,
        steps: int | None = None,
        seed: int | None = None,
        num_nodes: int | Tensor | None = None,
        batch_size: int | None = None,
        progress: bool = False,
        valency_correction: bool | None = None,
    ) -> GraphList:
        """Sample graphs; returns a :class:`~graphdiff.storage.GraphList` of class indices.

        Args:
            num_samples: how many graphs.
            steps: sampler time steps (default ``sample_steps``, else ``sde_adj.num_scales``).
            seed: make the draw reproducible (node counts and sampler noise).
            num_nodes: a fixed size for every graph, or ``[num_samples]`` sizes; default: drawn from the
                training distribution.
            batch_size: graphs per batch (default ``sample_batch_size``).
            progress: show a progress bar over batches.
            valency_correction: override the model's ``valency_correction`` setting.
        """
        counts, steps, batch_size = self.sampling_plan(num_samples, steps, seed, num_nodes, batch_size)
        settings = _sampler(self.hparams.sampler, steps)
        correct = self.hparams.valency_correction if valency_correction is None else valency_correction
        correct = correct and not self._uncorrected
        device = self.device
        chain_gen = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
        order = torch.argsort(counts, descending=True, stable=True)
        chunks = list(order.split(batch_size))
        if progress:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, desc="sampling", unit="batch")
        was_training = self.training
        self.eval()
        try:
            parts = []
            for chunk in chunks:
                node_mask = node_mask_from_counts(counts[chunk], device)
                graph = self.process.sample(self.score_model, node_mask, self.info.num_node_types, settings,
                                            generator=chain_gen, drop_isolated=self.hparams.drop_isolated)
                if correct:
                    graph = self.correct(graph)
                parts.append(GraphList.from_dense(graph.to("cpu")))
        finally:
            self.train(was_training)
        return GraphList.concat(parts).subset(torch.argsort(order))

    def correct(self, graph: DenseGraph) -> DenseGraph:
        """GDSS's valency correction of a batch of generated molecules (:mod:`graphdiff.sde.correction`)."""
        if not self.info.valencies:
            raise ConfigError("valency correction needs a molecule dataset (with valencies)")
        orders = [0.0] + [BOND_ORDERS.get(str(name).lower(), 1.0) for name in self.info.edge_types[1:]]
        return correct_valency(graph, self.info.valencies, orders)

    def _sample_and_score(self, stage: str, total: int) -> dict[str, float]:
        """As :class:`GenerativeModel`, on uncorrected samples; with ``valency_correction`` also logs the metrics of
        the corrected molecules under ``<stage>_corrected/`` (the two are reported separately)."""
        if not self.hparams.valency_correction:
            return super()._sample_and_score(stage, total)
        self._uncorrected = True  # the base class samples through generate()
        try:
            metrics = super()._sample_and_score(stage, total)
        finally:
            self._uncorrected = False
        raw = self.last_samples
        dense = raw.to_dense(range(len(raw)), self.info.num_node_types, self.info.num_edge_types)
        corrected = GraphList.from_dense(self.correct(dense))
        extra = self._score_and_log(corrected, stage, prefix=f"{stage}_corrected")
        metrics.update({f"corrected/{k}": v for k, v in extra.items()})
        self.last_samples_corrected = corrected
        return metrics

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        hp = self.hparams
        cls = torch.optim.AdamW if hp.optimizer == "adamw" else torch.optim.Adam
        opt = cls(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay, amsgrad=hp.amsgrad)
        warmup, schedule = hp.warmup_steps, hp.lr_schedule
        if warmup == 0 and schedule == "constant":
            return opt

        def factor(step: int) -> float:
            if schedule == "exponential":  # GDSS: ExponentialLR stepped every epoch, after the warm-up ramp
                return lr_factor(self, step, warmup, "constant") * hp.lr_decay ** self.current_epoch
            return lr_factor(self, step, warmup, schedule)

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """The trainer's ``gradient_clip_val``; by norm and with GDSS networks, per network as GDSS."""
        per_network = (self.hparams.clip_per_network and isinstance(self.score_model, GDSSScoreModel)
                       and gradient_clip_val and gradient_clip_algorithm in (None, "norm"))
        if not per_network:
            self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
            return
        for net in (self.score_model.x_net, self.score_model.adj_net):
            torch.nn.utils.clip_grad_norm_(net.parameters(), float(gradient_clip_val))


def _sde(config: SDEConfig | None):
    merged = {**DEFAULT_SDE, **(config or {})}
    return build_sde(merged["type"], float(merged["beta_min"]), float(merged["beta_max"]), int(merged["num_scales"]))


def _sampler(config: SamplerConfig | None, steps: int | None = None) -> SamplerSettings:
    try:
        return SamplerSettings(**{**(config or {}), "num_steps": steps})
    except TypeError as exc:
        raise ConfigError(f"sampler: {exc}") from None
