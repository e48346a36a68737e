"""LightningDataModule over any graphdiff dataset: registry name, graph file or SMILES file."""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from graphdiff.conditioning import Conditioning, PropertyKind
from graphdiff.datasets.dataset import GraphDataset
from graphdiff.datasets.registry import dataset_root
from graphdiff.datasets.sources import default_root
from graphdiff.datasets.user_files import looks_like_path, open_dataset
from graphdiff.descriptors import CATEGORICAL_BY_DEFAULT
from graphdiff.errors import ConfigError
from graphdiff.info import DatasetInfo
from graphdiff.storage import GraphList
from graphdiff.types import DenseGraph


class _Indices(Dataset):
    """Yields graph indices; the collater turns a list of them into one dense batch."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> int:
        return i


class DenseCollater:
    """Collate a list of graph indices of a :class:`GraphList` into a :class:`DenseGraph`.

    With ``properties [G, P]`` (the graphs' condition values, ``NaN`` = missing), the batch's ``y [B, P]`` holds the
    rows of its graphs; otherwise ``y`` is ``[B, 0]``.
    """

    def __init__(self, graphs: GraphList, num_node_types: int, num_edge_types: int,
                 properties: Tensor | None = None) -> None:
        self.graphs = graphs
        self.dx = num_node_types
        self.de = num_edge_types
        self.properties = properties

    def __call__(self, indices: list[int]) -> DenseGraph:
        batch = self.graphs.to_dense(indices, self.dx, self.de)
        if self.properties is None:
            return batch
        return DenseGraph(batch.X, batch.E, self.properties[torch.as_tensor(indices, dtype=torch.long)],
                          batch.node_mask)


def parse_condition_names(conditions: Sequence[str] | str | None) -> dict[str, PropertyKind]:
    """``["qed", "num_blocks:categorical"]`` -> ``{"qed": "numeric", "num_blocks": "categorical"}`` (a property
    without a kind is numeric unless :data:`~graphdiff.descriptors.CATEGORICAL_BY_DEFAULT` names it)."""
    if conditions is None:
        return {}
    if isinstance(conditions, str):
        conditions = [c for c in conditions.split(",") if c.strip()]
    out: dict[str, PropertyKind] = {}
    for entry in conditions:
        if not isinstance(entry, str) or not entry.strip():
            raise ConfigError(f"data.conditions: {entry!r} is not a property name")
        name, _, kind = entry.strip().partition(":")
        kind = kind or ("categorical" if name in CATEGORICAL_BY_DEFAULT else "numeric")
        if kind not in ("numeric", "categorical"):
            raise ConfigError(f"data.conditions: {entry!r}: the kind after ':' must be numeric or categorical")
        if name in out:
            raise ConfigError(f"data.conditions: {name!r} is listed twice")
        out[name] = kind  # type: ignore[assignment]
    return out


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum


class GraphDataModule(pl.LightningDataModule):
    """Train/val/test dense-batch loaders for one dataset.

    Args:
        dataset: registry name (``qm9``, ``planar``, ...) or a path to a graph or SMILES file.
        path: a graph or SMILES file of your own; when given it replaces ``dataset`` (so ``--data.path FILE``
            on the command line retargets any config).
        root: dataset root (default ``$GRAPHDIFF_ROOT`` or ``./data``).
        batch_size: graphs per training batch.
        eval_batch_size: graphs per validation/test batch (default: ``batch_size``).
        num_workers: DataLoader worker processes.
        options: dataset options, e.g. ``{"max_nodes": 40}`` or ``{"column": "smiles"}``.
        conditions: graph-level properties to condition a model on (``["qed", "logp"]``, ``["mu", "homo"]``): a
            column of the dataset (QM9's DFT properties, a CSV's numeric columns), an RDKit descriptor or a graph
            statistic (:mod:`graphdiff.descriptors`); ``name:categorical`` / ``name:numeric`` sets how it is
            encoded. Their training statistics go into :attr:`info` (and so into checkpoints).
        node_counts_from: the splits whose graphs make :attr:`info`'s node-count histogram, the distribution
            graph sizes are sampled from (and ``log p(n)`` of the NLL); default the training split only.
            DiGress and DeFoG use ``[train, val]`` for the SPECTRE sets (planar, sbm, comm20).

    Raises:
        ConfigError: at construction, for no data, a batch size or ``eval_batch_size`` below 1, a negative
            ``num_workers``, options that are not a mapping, a root that is a file, or ``node_counts_from``
            that is not a non-empty list of distinct split names; on first use of :attr:`info`, a split the
            dataset lacks.
    """

    def __init__(
        self,
        dataset: str | None = None,
        path: str | None = None,
        root: str | None = None,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        options: dict[str, Any] | None = None,
        conditions: list[str] | None = None,
        node_counts_from: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if dataset is None and path is None:
            raise ConfigError("no data: give data.dataset (a registered name or a file) or data.path (a file)")
        counts = [("batch_size", batch_size, 1), ("num_workers", num_workers, 0)]
        if eval_batch_size is not None:
            counts.append(("eval_batch_size", eval_batch_size, 1))
        for key, value, minimum in counts:
            if not _is_int(value, minimum):
                raise ConfigError(f"data.{key}={value!r}: expected an integer >= {minimum}")
        for key, value in (("dataset", dataset), ("path", path)):
            if value is not None and not isinstance(value, str | os.PathLike):
                raise ConfigError(f"data.{key}={value!r}: expected a dataset name or a file path")
        if options is not None and not isinstance(options, dict):
            raise ConfigError(f"data.options={options!r}: expected a mapping of dataset options such as max_nodes")
        if node_counts_from is not None and (
                not isinstance(node_counts_from, list | tuple) or not node_counts_from
                or not all(isinstance(name, str) for name in node_counts_from)
                or len(set(node_counts_from)) != len(node_counts_from)):
            raise ConfigError(f"data.node_counts_from={node_counts_from!r}: expected a list of distinct split names "
                              "such as [train, val]")
        dataset_root(root)  # a root that is a file fails here, not at the first batch
        self.dataset_name = path if path is not None else dataset
        self.root = root
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.options = dict(options or {})
        self.conditions = parse_condition_names(conditions)
        self.node_counts_from = list(node_counts_from) if node_counts_from is not None else None
        self._data: GraphDataset | None = None
        self._info: DatasetInfo | None = None

    @property
    def data(self) -> GraphDataset:
        """The processed dataset, loaded (and processed if needed) on first access."""
        if self._data is None:
            self._data = open_dataset(self.dataset_name, root=self.root, **self.options)
        return self._data

    @property
    def info(self) -> DatasetInfo:
        """The dataset's info; with :attr:`conditions`, its ``conditions`` hold their training statistics."""
        if self._info is None:
            info = self.data.info
            if self.conditions:
                train = self.data.splits["train"] if "train" in self.data.splits else slice(None)
                values = self._property_table()[train]
                conditioning = Conditioning.from_values(list(self.conditions), values, self.conditions)
                info = dataclasses.replace(info, conditions=conditioning.to_list())
            if self.node_counts_from is not None:
                info = dataclasses.replace(info, node_counts=self._node_counts(self.node_counts_from, info.max_nodes))
            self._info = info
        return self._info

    def _node_counts(self, splits: list[str], max_nodes: int) -> list[int]:
        """``[max_nodes + 1]``: the number of graphs of ``splits`` with each node count."""
        sizes = torch.cat([self.data.split(name).num_nodes.long() for name in splits])
        return torch.bincount(sizes, minlength=max_nodes + 1).tolist()

    def _property_table(self) -> Tensor:
        """``[G, P]`` values of :attr:`conditions` for every graph of the dataset."""
        return torch.stack([self.data.property_values(name) for name in self.conditions], dim=1)

    @property
    def dataset_info(self) -> dict[str, Any]:
        """:attr:`info` as a plain dict (what the CLI links into the model and checkpoints store)."""
        return self.info.to_dict()

    @property
    def root_path(self) -> Path:
        """The dataset root in use, absolute."""
        return Path(self.root if self.root is not None else default_root()).resolve()

    @property
    def portable_source(self) -> dict[str, str]:
        """``{"dataset": ...}`` or ``{"path": ...}`` with a file made absolute, so a checkpoint's config
        finds the data from any directory."""
        if self.hparams.path is not None:
            return {"dataset": None, "path": str(Path(self.hparams.path).resolve())}
        value = self.dataset_name
        return {"dataset": str(Path(value).resolve()) if looks_like_path(value) else value}

    def prepare_data(self) -> None:
        # Process once on the main process so DDP ranks find the cache.
        _ = self.data

    def _loader(self, split: str, shuffle: bool, batch_size: int) -> DataLoader:
        graphs = self.data.split(split)
        info = self.info
        properties = self._property_table()[self.data.splits[split]].float() if self.conditions else None
        return DataLoader(
            _Indices(len(graphs)),
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=DenseCollater(graphs, info.num_node_types, info.num_edge_types, properties),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True, self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False, self.eval_batch_size)

    def predict_dataloader(self) -> DataLoader:
        # `graphdiff predict` generates one graph per test graph, with that graph's node count.
        return self._loader("test", False, self.eval_batch_size)
