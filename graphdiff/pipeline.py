"""An inference object in the style of diffusers pipelines: a trained model plus swappable sampler settings.

Example:
    >>> from graphdiff.pipeline import GraphGenerator
    >>> generator = GraphGenerator.from_checkpoint("outputs/qm9/checkpoints/last.ckpt")      # doctest: +SKIP
    >>> smiles = generator(100, steps=50, seed=0, output_type="smiles")                     # doctest: +SKIP
    >>> generator.sampler = generator.sampler.with_steps(500)       # swap the settings, keep the model
    >>> generator.save_sampler("sampler.json")                      # ... and reload them with load_sampler

The sampler settings are the family's :class:`~graphdiff.generation.SamplerConfig` (discrete diffusion:
``DiscreteSamplerConfig(steps)``; score SDE: ``SamplerSettings(predictor, corrector, snr, ..., num_steps)``), a
serialisable dataclass kept apart from the weights, as a diffusers scheduler is kept apart from its UNet.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from graphdiff.errors import ConfigError, DataError
from graphdiff.generation import SamplerConfig
from graphdiff.info import DatasetInfo
from graphdiff.io import write_json
from graphdiff.lit import GenerativeModel
from graphdiff.storage import GraphList

OutputType = Literal["networkx", "pyg", "rdkit", "smiles", "graphlist"]
OUTPUT_TYPES: tuple[str, ...] = ("networkx", "pyg", "rdkit", "smiles", "graphlist")


class GraphGenerator:
    """Generate graphs from a trained model of any family.

    Args:
        model: a trained :class:`~graphdiff.lit.GenerativeModel` (e.g. from :func:`graphdiff.api.load_model`).
        sampler: sampler settings of the model's family, or their dict (default: the model's own).
    """

    def __init__(self, model: GenerativeModel, sampler: SamplerConfig | dict[str, Any] | None = None) -> None:
        if not isinstance(model, GenerativeModel):
            raise ConfigError(f"GraphGenerator needs a graphdiff model, got {type(model).__name__}")
        self.model = model.eval()
        self.sampler = model.resolve_sampler(sampler)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device = "cpu",
                        sampler: SamplerConfig | dict[str, Any] | str | os.PathLike | None = None) -> GraphGenerator:
        """Load a checkpoint written by ``graphdiff fit`` (see :func:`graphdiff.api.load_model`).

        Args:
            path: the ``.ckpt`` file.
            device: where to run.
            sampler: settings, their dict, or a JSON file written by :meth:`save_sampler`.
        """
        from graphdiff.api import load_model

        if isinstance(sampler, str | os.PathLike):
            sampler = load_sampler(sampler)
        return cls(load_model(path, device=device), sampler)

    @property
    def info(self) -> DatasetInfo:
        """The vocabularies and statistics of the data the model was trained on."""
        return self.model.info

    @property
    def family(self) -> str:
        return self.model.family

    def __call__(self, num_graphs: int, steps: int | None = None, seed: int | None = None,
                 num_nodes: int | Sequence[int] | torch.Tensor | None = None, batch_size: int | None = None,
                 output_type: OutputType = "networkx", progress: bool | None = None) -> Any:
        """Generate ``num_graphs`` graphs.

        Args:
            num_graphs: how many.
            steps: reverse steps for this call (default: the sampler settings').
            seed: makes the draw reproducible.
            num_nodes: a fixed size for every graph, or one size per graph (default: drawn from the training data).
            batch_size: graphs per batch.
            output_type: ``networkx`` (node/edge attribute ``type``), ``pyg`` (``torch_geometric.data.Data`` with
                one-hot ``x`` and ``edge_attr``), ``rdkit`` (``Chem.Mol`` or ``None`` where invalid), ``smiles``
                (canonical SMILES or ``None``), or ``graphlist`` (graphdiff's compact
                :class:`~graphdiff.storage.GraphList` of class indices).
            progress: progress bar (``None``: when stderr is a terminal).

        Returns:
            A list of graphs (or a :class:`GraphList` for ``graphlist``).
        """
        if output_type not in OUTPUT_TYPES:
            raise ConfigError(f"output_type={output_type!r}: expected one of {', '.join(OUTPUT_TYPES)}")
        if output_type in ("rdkit", "smiles") and self.info.kind != "molecule":
            raise ConfigError(f"output_type={output_type!r} needs a molecule model; this one generates graphs "
                              f"({self.info.name})")
        graphs = self.model.generate(num_graphs, steps=steps, seed=seed, num_nodes=num_nodes, batch_size=batch_size,
                                     progress=progress, sampler=self.sampler)
        return convert(graphs, self.info, output_type, self.model.molecule_decoding)

    def save_sampler(self, path: str | os.PathLike) -> Path:
        """Write the sampler settings as JSON (atomically)."""
        write_json(path, self.sampler.to_dict())
        return Path(path)

    def __repr__(self) -> str:
        return f"GraphGenerator(family={self.family!r}, data={self.info.name!r}, sampler={self.sampler!r})"


def load_sampler(path: str | os.PathLike) -> SamplerConfig:
    """Sampler settings from a JSON file written by :meth:`GraphGenerator.save_sampler`.

    Raises:
        DataError: the file is missing or not JSON; ConfigError: it does not describe sampler settings.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no such sampler settings file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a JSON file of sampler settings ({exc})") from None
    return SamplerConfig.from_dict(data)


def convert(graphs: GraphList, info: DatasetInfo, output_type: OutputType, decoding: str | None = None) -> Any:
    """``graphs`` as ``output_type`` (see :meth:`GraphGenerator.__call__`); molecules made with ``decoding``
    (:func:`graphdiff.chem.graphs_to_mols`)."""
    if output_type == "graphlist":
        return graphs
    if output_type == "networkx":
        from graphdiff.graph import graphs_to_networkx

        return graphs_to_networkx(graphs, info)
    if output_type == "pyg":
        from graphdiff.datasets.pyg import graph_list_to_pyg

        return graph_list_to_pyg(graphs, info.num_node_types, info.num_edge_types)
    from graphdiff.chem import canonical_smiles, graphs_to_mols

    mols = graphs_to_mols(graphs, info, decoding)
    return mols if output_type == "rdkit" else [canonical_smiles(m) if m is not None else None for m in mols]
