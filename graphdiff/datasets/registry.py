"""One registry of datasets, and the processed-data cache behind it.

Each dataset registers a *builder* that turns raw files (or a seeded generator) into a
:class:`BuiltDataset`: a :class:`GraphList`, persisted split indices and vocabularies. The first
:func:`load_dataset` call processes it into ``<root>/<name>/processed/`` (graphs, splits, info,
and SMILES for molecules); later calls load that cache, which is rebuilt only when the source
fingerprint, the options or the format version change.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from graphdiff.datasets.info import DatasetInfo, Kind, compute_statistics
from graphdiff.datasets.sources import default_root
from graphdiff.datasets.storage import GraphList
from graphdiff.errors import ConfigError, DataError
from graphdiff.io import torch_save, write_json

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")


@dataclass
class BuiltDataset:
    """What a builder returns.

    Attributes:
        graphs: every kept graph.
        splits: split name -> ``[k]`` long indices into ``graphs`` (train is disjoint from the others;
            GDSS's sets evaluate on their test split, so their ``val`` may equal ``test``).
        kind: ``"graph"`` or ``"molecule"``.
        node_types: names of node classes.
        edge_types: names of edge classes, ``"none"`` first.
        source: fingerprint of what the data came from (file + sha256, or generator + settings).
        skipped: rows dropped, by reason: ``{"invalid_smiles": {"count": 3, "lines": [5, 17, 90]}}``.
        valencies / atom_weights: per node class, for molecules.
        smiles: canonical SMILES per graph, for molecules (novelty, FCD references).
        extra_splits: further named index sets (e.g. MOSES ``test_scaffolds``).
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


@dataclass
class BuildContext:
    """Handed to builders: where the dataset lives and the options it was asked with."""

    name: str
    root: Path
    options: dict[str, Any]

    @property
    def raw_dir(self) -> Path:
        return self.root / self.name / "raw"


Builder = Callable[[BuildContext], BuiltDataset]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kind: Kind
    description: str
    builder: Builder
    defaults: dict[str, Any]


_REGISTRY: dict[str, DatasetSpec] = {}


def register(name: str, kind: Kind, description: str, **defaults: Any) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder`` under ``name`` with default options."""

    def wrap(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} registered twice")
        _REGISTRY[name] = DatasetSpec(name, kind, description, builder, dict(defaults))
        return builder

    return wrap


def available_datasets() -> dict[str, DatasetSpec]:
    """Registered datasets by name."""
    _import_builders()
    return dict(sorted(_REGISTRY.items()))


def get_spec(name: str) -> DatasetSpec:
    specs = available_datasets()
    if name not in specs:
        raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(specs)} (or pass a file path)")
    return specs[name]


@dataclass
class GraphDataset:
    """A processed dataset: all graphs, their splits and their :class:`DatasetInfo`."""

    graphs: GraphList
    splits: dict[str, Tensor]
    info: DatasetInfo
    smiles: list[str] | None = None

    def split(self, name: str) -> GraphList:
        if name not in self.splits:
            raise ConfigError(f"dataset {self.info.name} has no split {name!r}; it has {', '.join(self.splits)}")
        return self.graphs.subset(self.splits[name])

    def split_smiles(self, name: str) -> list[str]:
        if self.smiles is None:
            raise ConfigError(f"dataset {self.info.name} holds no molecules")
        return [self.smiles[i] for i in self.splits[name].tolist()]


def load_dataset(
    name: str, root: str | os.PathLike | None = None, rebuild: bool = False, **options: Any
) -> GraphDataset:
    """Load a registered dataset, processing it on first use.

    Args:
        name: a registry name (see :func:`available_datasets`).
        root: dataset root (default ``$GRAPHDIFF_ROOT`` or ``./data``).
        rebuild: process again even if a valid cache exists.
        **options: builder options overriding the registered defaults (e.g. ``max_nodes``).
    """
    spec = get_spec(name)
    unknown = set(options) - set(spec.defaults)
    if unknown:
        raise ConfigError(
            f"dataset {name}: unknown option(s) {', '.join(sorted(unknown))}; "
            f"valid: {', '.join(sorted(spec.defaults)) or 'none'}"
        )
    opts = {**spec.defaults, **options}
    root = Path(root) if root is not None else default_root()
    return build_or_load(spec.name, spec.kind, spec.builder, root, opts, rebuild)


def build_or_load(
    name: str, kind: Kind, builder: Builder, root: Path, options: dict[str, Any], rebuild: bool = False
) -> GraphDataset:
    """Process with ``builder`` into ``root/name/processed`` unless a matching cache is there."""
    ctx = BuildContext(name, root, options)
    processed = root / name / "processed"
    info_path = processed / "info.json"
    if not rebuild and info_path.is_file():
        cached = _load_cached(processed)
        if cached is not None and cached.info.options == _jsonable(options):
            return cached
    built = builder(ctx)
    dataset = _finalise(name, kind, built, options)
    _save(dataset, processed)
    return dataset


def _finalise(name: str, kind: Kind, built: BuiltDataset, options: dict[str, Any]) -> GraphDataset:
    if len(built.graphs) == 0:
        raise DataError(f"{name}: no graphs left after processing ({_skipped_text(built.skipped)})")
    train = built.graphs.subset(built.splits["train"]) if "train" in built.splits else built.graphs
    stats = compute_statistics(train, len(built.node_types), len(built.edge_types))
    stats["node_counts"] += [0] * (int(built.graphs.num_nodes.max()) + 1 - len(stats["node_counts"]))
    info = DatasetInfo(
        name=name,
        kind=kind,
        node_types=list(built.node_types),
        edge_types=list(built.edge_types),
        max_nodes=int(built.graphs.num_nodes.max()),
        split_sizes={k: int(v.numel()) for k, v in built.splits.items()},
        valencies=built.valencies,
        atom_weights=built.atom_weights,
        options=_jsonable(options),
        source=built.source,
        skipped=built.skipped,
        **stats,
    )
    return GraphDataset(built.graphs, {k: v.long() for k, v in built.splits.items()}, info, built.smiles)


def _save(dataset: GraphDataset, processed: Path) -> None:
    processed.mkdir(parents=True, exist_ok=True)
    torch_save({"version": FORMAT_VERSION, "graphs": dataset.graphs.state_dict()}, processed / "graphs.pt")
    write_json(processed / "splits.json", {k: v.tolist() for k, v in dataset.splits.items()})
    if dataset.smiles is not None:
        write_json(processed / "smiles.json", dataset.smiles)
    # info.json last: its presence marks a complete cache.
    write_json(processed / "info.json", {"version": FORMAT_VERSION, **dataset.info.to_dict()})


def _load_cached(processed: Path) -> GraphDataset | None:
    try:
        meta = json.loads((processed / "info.json").read_text())
        if meta.pop("version", None) != FORMAT_VERSION:
            return None
        info = DatasetInfo.from_dict(meta)
        blob = torch.load(processed / "graphs.pt", weights_only=True)
        graphs = GraphList.from_state_dict(blob["graphs"])
        split_lists = json.loads((processed / "splits.json").read_text())
        splits = {k: torch.tensor(v, dtype=torch.long) for k, v in split_lists.items()}
        smiles_path = processed / "smiles.json"
        smiles = json.loads(smiles_path.read_text()) if smiles_path.is_file() else None
    except Exception:  # noqa: BLE001 - any damage (truncated, unpicklable, wrong schema) means: rebuild
        return None
    if _source_changed(info):
        return None
    return GraphDataset(graphs, splits, info, smiles)


def _source_changed(info: DatasetInfo) -> bool:
    """True if the cached data was built from a file whose bytes have since changed."""
    path, digest = info.source.get("file"), info.source.get("sha256")
    if not path or not digest or not Path(path).is_file():
        return False
    from graphdiff.io import file_sha256

    return file_sha256(path) != digest


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(options, default=str))


def _skipped_text(skipped: dict[str, Any]) -> str:
    if not skipped:
        return "nothing was skipped"
    return ", ".join(f"{k}: {v['count'] if isinstance(v, dict) else v}" for k, v in skipped.items())


def _import_builders() -> None:
    """Import the modules whose ``@register`` calls fill the registry."""
    from graphdiff.datasets import graph_files, molecules, synthetic  # noqa: F401
