"""What a dataset is: the processed :class:`GraphDataset`, and the :class:`BuiltDataset` a builder makes.

A builder (registered with :func:`graphdiff.datasets.registry.register`, or a user loader's own) turns raw files or a
seeded generator into a :class:`BuiltDataset`; :func:`graphdiff.datasets.cache.build_or_load` adds the
:class:`~graphdiff.info.DatasetInfo` and caches it, and hands out the :class:`GraphDataset`.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from rdkit import rdBase
from torch import Tensor
from torch.utils.data import Dataset

from graphdiff.datasets.pyg import graph_list_to_pyg
from graphdiff.descriptors import GRAPH_PROPERTIES, computable_properties, compute_property
from graphdiff.errors import ConfigError
from graphdiff.info import DatasetInfo, Kind
from graphdiff.io import atomic_write, read_cache_file
from graphdiff.log import get_logger
from graphdiff.storage import GraphList

if TYPE_CHECKING:
    from torch_geometric.data import Data


log = get_logger(__name__)


@dataclass
class BuiltDataset:
    """What a builder returns.

    Attributes:
        graphs: every kept graph.
        splits: split name -> ``[k]`` long indices into ``graphs`` (train is disjoint from the others;
            GDSS's sets evaluate on their test split, so their ``val`` may equal ``test``; further splits such as
            MOSES ``test_scaffolds`` may follow).
        kind: ``"graph"`` or ``"molecule"``.
        node_types: names of node classes.
        edge_types: names of edge classes, ``"none"`` first.
        source: fingerprint of what the data came from (file + sha256, or generator + settings).
        skipped: rows dropped, by reason: ``{"invalid_smiles": {"count": 3, "lines": [5, 17, 90]}}``.
        valencies / atom_weights: per node class, for molecules.
        smiles: canonical SMILES per graph, for molecules (novelty, FCD references).
        properties: graph-level properties from the source (e.g. QM9's DFT properties, a CSV's numeric columns):
            name -> ``[G]`` float64 values, ``NaN`` where missing.
    """

    graphs: GraphList
    splits: dict[str, Tensor]
    kind: Kind
    node_types: list[str]
    edge_types: list[str]
    source: dict[str, Any]
    skipped: dict[str, Any] = field(default_factory=dict)
    valencies: list[int] | None = None
    atom_weights: list[float] | None = None
    smiles: list[str] | None = None
    properties: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class BuildContext:
    """Handed to builders: the dataset's name, the dataset root (raw files are under ``<root>/<name>/raw``) and
    the options it was asked with."""

    name: str
    root: Path
    options: dict[str, Any]


Builder = Callable[[BuildContext], BuiltDataset]


@dataclass(eq=False)
class GraphDataset(Dataset):
    """A processed dataset: all graphs, their splits and their :class:`DatasetInfo`.

    It is also a ``torch.utils.data.Dataset`` of PyG graphs, as a PyG dataset is: item ``i`` is graph ``i`` as a
    :class:`torch_geometric.data.Data` with ``x [n, dx]`` one-hot float node types, ``edge_index [2, 2m]`` long
    (both directions), ``edge_attr [2m, de]`` one-hot float edge types (class 0 = no edge is a column, never set),
    ``y [1, 0]`` and ``num_nodes`` (:func:`graphdiff.datasets.pyg.graph_list_to_pyg`), passed through
    ``transform`` when one is set. :meth:`subset` gives the items of one split, for a
    ``torch_geometric.loader.DataLoader``; :meth:`split` gives a split as the compact :class:`GraphList` the rest of
    graphdiff uses.

    Attributes:
        graphs: every graph.
        splits: split name -> ``[k]`` long indices into ``graphs``.
        info: vocabularies, statistics of the training split, source and skipped rows.
        smiles: canonical SMILES per graph, for molecules.
        transform: called on each item on access (e.g. a ``torch_geometric.transforms`` object).
        properties: graph-level properties the source holds (name -> ``[G]`` float64, ``NaN`` where missing);
            :meth:`property_values` also computes RDKit descriptors and graph statistics.
    """

    graphs: GraphList
    splits: dict[str, Tensor]
    info: DatasetInfo
    smiles: list[str] | None = None
    transform: Callable[[Data], Data] | None = None
    properties: dict[str, Tensor] = field(default_factory=dict)
    _computed: dict[str, Tensor] = field(default_factory=dict, repr=False)
    #: the processed cache folder this dataset was read from or saved to (computed properties are kept there).
    cache_dir: Path | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int) -> Data:
        """Graph ``index`` as a PyG ``Data`` (see the class docstring), transformed if :attr:`transform` is set."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"graph index {index} out of range for {len(self)} graphs")
        data = graph_list_to_pyg(self.graphs.subset([index % len(self)]), self.info.num_node_types,
                                 self.info.num_edge_types)[0]
        return data if self.transform is None else self.transform(data)

    def split(self, name: str) -> GraphList:
        """The graphs of split ``name``, in split order."""
        return self.graphs.subset(self._split_indices(name))

    def split_smiles(self, name: str) -> list[str]:
        """The canonical SMILES of split ``name``, in split order."""
        if self.smiles is None:
            raise ConfigError(f"dataset {self.info.name} holds no molecules")
        return [self.smiles[i] for i in self._split_indices(name).tolist()]

    def property_names(self) -> list[str]:
        """Properties :meth:`property_values` gives: the source's columns, then the computable ones."""
        computable = computable_properties(self.info.kind == "molecule")
        return [*self.properties, *(n for n in computable if n not in self.properties)]

    def property_values(self, name: str) -> Tensor:
        """``[G]`` float64 values of property ``name`` for every graph (``NaN`` where missing): the source's column
        of that name, else the RDKit descriptor or graph statistic (computed once per dataset object).

        Raises:
            ConfigError: no such column and nothing of that name can be computed (the message lists the names).
        """
        if name in self.properties:
            return self.properties[name]
        if name not in self._computed:
            if name not in computable_properties(self.info.kind == "molecule"):
                raise ConfigError(f"dataset {self.info.name} has no property {name!r}; available: "
                                  f"{', '.join(self.property_names())}")
            self._computed[name] = self._computed_property(name)
        return self._computed[name]

    def _computed_property(self, name: str) -> Tensor:
        """``name`` computed from the graphs, read from / written to the cache folder when there is one (the file
        name holds the RDKit version; rebuilding the dataset removes the folder)."""
        path = None
        if self.cache_dir is not None and name not in GRAPH_PROPERTIES:  # statistics are cheaper than a file
            path = self.cache_dir / "properties" / f"{name}-rdkit{rdBase.rdkitVersion}.pt"

        def read(p: Path) -> Tensor:
            try:
                values = torch.load(p, weights_only=True)
            except (pickle.UnpicklingError, RuntimeError) as exc:  # truncated or foreign bytes
                raise ValueError(str(exc).splitlines()[0]) from None
            if not isinstance(values, Tensor) or values.shape != (len(self.graphs),):
                raise ValueError(f"expected {len(self.graphs)} values")
            return values

        cached = read_cache_file(path, read)
        if cached is not None:
            return cached
        values = compute_property(name, self.graphs, self.smiles)
        if path is not None:
            try:
                path.parent.mkdir(exist_ok=True)
                with atomic_write(path, "wb") as handle:
                    torch.save(values, handle)
            except OSError as exc:  # a read-only cache: the values are still used
                log.warning("%s: cannot keep the computed property (%s)", path, exc.strerror or exc)
        return values

    def subset(self, name: str) -> GraphDataset:
        """The dataset of split ``name``'s graphs (in split order), with this dataset's ``info`` and ``transform``.

        Its only split is ``name``, covering all of it; ``info`` still describes the whole dataset (vocabularies,
        and statistics of the training split).
        """
        indices = self._split_indices(name)
        smiles = None if self.smiles is None else [self.smiles[i] for i in indices.tolist()]
        return GraphDataset(self.graphs.subset(indices), {name: torch.arange(indices.numel())}, self.info, smiles,
                            self.transform, {k: v[indices] for k, v in self.properties.items()})

    def _split_indices(self, name: str) -> Tensor:
        if name not in self.splits:
            raise ConfigError(f"dataset {self.info.name} has no split {name!r}; it has {', '.join(self.splits)}")
        return self.splits[name]
