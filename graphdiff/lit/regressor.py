"""PropertyRegressor: a graph transformer that predicts graph-level properties, for guidance and as an oracle.

Two uses, one class (``docs/conditioning.md``):

* **Regressor guidance** (DiGress, Vignac et al. 2023, guidance branch): trained on *noisy* graphs ``G_t`` of the
  same discrete diffusion as the generator (``noisy: true``), it steers an unconditional model at sampling time:
  :class:`~graphdiff.models.guidance.RegressorGuidance` multiplies each reverse distribution by
  ``softmax(-lambda * grad_{G_t} ||r(G_t) - y*||^2)``.
* **Oracle** (``noisy: false``): trained on clean graphs only, it scores generated molecules on properties that
  no toolkit computes (QM9's DFT values); its own test MAE (``graphdiff test``) is the floor of that score.

Targets are the data module's ``conditions`` (numeric only), normalised with the training mean and standard
deviation that the checkpoint stores; missing values are left out of the loss. Metrics are in the properties' units.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

import torch

from graphdiff.diffusion import DiscreteDiffusion
from graphdiff.errors import ConfigError, DataError
from graphdiff.info import DatasetInfo
from graphdiff.lit.base import GraphModel, register_model
from graphdiff.models.base import denoiser_for_dataset
from graphdiff.storage import GraphList
from graphdiff.types import DenseGraph

#: DiGress's regressor (``configs/experiment/regressor_model.yaml``, guidance branch): 5 layers of its default
#: transformer widths, no extra or molecular features (its gradient is taken through the one-hot input alone).
DEFAULT_REGRESSOR = {"preset": "digress", "n_layers": 5, "extra_features": "none", "molecular": False}


@register_model
class PropertyRegressor(GraphModel):
    """Predicts the data module's ``conditions`` (numeric graph-level properties) from noisy or clean graphs.

    Args:
        dataset_info: the data module's :class:`DatasetInfo` (linked by the CLI); its ``conditions`` are the
            properties predicted, with the training statistics that normalise them.
        T, schedule, schedule_options, transition: the discrete diffusion whose noisy graphs the regressor reads
            (for guidance they must match the generator's: checked when sampling).
        noisy: train on ``G_t`` at ``t ~ U{0..T}`` (guidance); ``False`` trains on clean graphs only (an oracle).
        model: network settings of the graph transformer (default :data:`DEFAULT_REGRESSOR`, DiGress's).
        lr, weight_decay, amsgrad, warmup_steps, lr_schedule: optimiser settings (as the generative models');
            ``exponential`` multiplies the rate by ``lr_decay`` every epoch (DiGress's regressor: 0.99).
        compile: compile the network with ``torch.compile`` (opt-in).
    """

    family = "regressor"
    structural_hparams = ("T", "schedule", "schedule_options", "transition", "model")

    def __init__(
        self,
        dataset_info: dict[str, Any],
        T: int = 500,
        schedule: Literal["cosine", "linear", "custom"] = "cosine",
        schedule_options: dict[str, Any] | None = None,
        transition: Literal["marginal", "uniform", "absorbing"] = "marginal",
        noisy: bool = True,
        model: dict[str, Any] | None = None,
        lr: float = 2e-4,
        weight_decay: float = 1e-12,
        amsgrad: bool = True,
        warmup_steps: int = 0,
        lr_schedule: Literal["constant", "cosine", "exponential"] = "constant",
        lr_decay: float = 0.99,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.info = DatasetInfo.from_dict(dataset_info) if isinstance(dataset_info, dict) else dataset_info
        conditioning = self.info.conditioning
        if not len(conditioning):
            raise ConfigError("a property regressor needs the properties to predict: set data.conditions "
                              "(e.g. [mu, homo])")
        categorical = [p.name for p in conditioning.properties if p.kind != "numeric"]
        if categorical:
            raise ConfigError(f"a property regressor predicts numeric properties; {', '.join(categorical)} "
                              "is categorical")
        if not isinstance(noisy, bool):
            raise ConfigError(f"model.noisy={noisy!r}: expected true or false")
        self.process = DiscreteDiffusion.for_dataset(self.info, T, schedule, schedule_options, transition)
        # The network reads the graph alone: the properties are its output, never its input.
        plain = dataclasses.replace(self.info, conditions=[])
        settings = {**DEFAULT_REGRESSOR, **(model or {}), "output_y": len(conditioning)}
        self.regressor = denoiser_for_dataset(plain, **settings)
        props = conditioning.properties
        self.register_buffer("mean", torch.tensor([p.mean for p in props], dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.tensor([p.std for p in props], dtype=torch.float32), persistent=False)
        self.check_hparams()

    @property
    def network(self) -> torch.nn.Module:
        return self.regressor

    @property
    def names(self) -> list[str]:
        """The predicted properties, in output order."""
        return self.info.conditioning.names

    # ------------------------------------------------------------------ prediction
    def forward(self, graph: DenseGraph, t: torch.Tensor) -> torch.Tensor:
        """Normalised predictions ``[B, P]`` for (noisy) one-hot graphs ``graph`` at normalised times ``t [B]``."""
        plain = DenseGraph(graph.X, graph.E, graph.X.new_zeros(graph.batch_size, 0), graph.node_mask)
        return self.regressor(plain, t).y

    @torch.no_grad()
    def predict(self, graphs: GraphList | DenseGraph, batch_size: int = 256) -> torch.Tensor:
        """Properties of clean graphs in their units, ``[G, P]`` (the oracle's use).

        Args:
            graphs: class-index graphs of this model's vocabulary (e.g. ``model.generate(...)``), or a one-hot batch.
            batch_size: graphs per forward pass.
        """
        if isinstance(graphs, DenseGraph):
            batches = [graphs]
        else:
            batches = (graphs.to_dense(range(start, min(start + batch_size, len(graphs))), self.info.num_node_types,
                                       self.info.num_edge_types) for start in range(0, len(graphs), batch_size))
        was_training = self.training
        self.eval()
        try:
            out = [self._denormalise(self(b.to(self.device), torch.zeros(b.batch_size, device=self.device)))
                   for b in batches]
        finally:
            self.train(was_training)
        return torch.cat(out).cpu() if out else torch.zeros(0, len(self.names))

    def predict_smiles(self, smiles: Sequence[str | None], batch_size: int = 256) -> torch.Tensor:
        """Properties of molecules given as SMILES, ``[N, P]``; ``NaN`` rows for a missing or unparseable SMILES or
        one outside the model's atom and bond types."""
        from graphdiff.chem import AtomVocabulary, BondVocabulary, mol_to_graph, smiles_to_mol

        if self.info.kind != "molecule":
            raise ConfigError(f"the regressor was trained on {self.info.name} graphs, not molecules")
        atoms = AtomVocabulary.from_names(self.info.node_types)
        bonds = BondVocabulary.from_names(self.info.edge_types)
        triples, rows = [], []
        for i, s in enumerate(smiles):
            mol = smiles_to_mol(s) if s else None
            if mol is None:
                continue
            try:
                triples.append(mol_to_graph(mol, atoms, bonds, explicit_h=atoms.explicit_h))
            except (DataError, KeyError, ValueError):  # an atom or bond type the model has no class for
                continue
            rows.append(i)
        result = torch.full((len(smiles), len(self.names)), float("nan"))
        if triples:
            result[torch.tensor(rows)] = self.predict(GraphList.from_graphs(triples), batch_size)
        return result

    def _denormalise(self, normalised: torch.Tensor) -> torch.Tensor:
        return normalised * self.std + self.mean

    # ------------------------------------------------------------------ training
    def _loss(self, batch: DenseGraph, stage: str) -> torch.Tensor:
        values = batch.y.to(self.mean.dtype)  # [B, P] raw property values, NaN = missing
        clean = DenseGraph(batch.X, batch.E, batch.y[:, :0], batch.node_mask)
        B = batch.batch_size
        if self.hparams.noisy:
            t = self.process.sample_timesteps(B, device=batch.X.device, training=stage == "train")
            graph = self.process.add_noise(clean, t)
        else:
            t = torch.zeros(B, dtype=torch.long, device=batch.X.device)
            graph = clean
        pred = self(graph, t.float() / self.process.T)
        present = ~torch.isnan(values)
        target = torch.where(present, (values - self.mean) / self.std, 0.0)
        squared = torch.where(present, (pred - target) ** 2, 0.0)
        loss = squared.sum() / present.sum().clamp(min=1)
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=B, sync_dist=stage != "train")
        if stage != "train":
            error = (self._denormalise(pred) - values).abs()
            for k, name in enumerate(self.names):
                count = int(present[:, k].sum())
                if count:
                    self.log(f"{stage}/mae/{name}", error[present[:, k], k].mean(), batch_size=count, sync_dist=True)
        return loss

    def training_step(self, batch: DenseGraph, batch_idx: int) -> torch.Tensor:
        return self._loss(batch, "train")

    def validation_step(self, batch: DenseGraph, batch_idx: int) -> None:
        self._loss(batch, "val")

    def test_step(self, batch: DenseGraph, batch_idx: int) -> None:
        self._loss(batch, "test")
