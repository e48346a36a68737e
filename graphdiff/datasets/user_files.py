"""Your own data as a cached dataset: a SMILES file, a graph file, PyG graphs, or (:func:`open_dataset`) any of
these or a registered name.

Each loader reads the data with the readers of this package, drops and reports what it cannot use
(:mod:`graphdiff.datasets.skipped`), splits the rest by random fractions
(:func:`~graphdiff.datasets.splits.fraction_split`) and caches the result like a registered dataset
(:func:`~graphdiff.datasets.registry.build_or_load`): in ``<root>/files/<stem>-<hash of the path>/processed``
(:func:`~graphdiff.datasets.registry.user_dataset_location`), or ``<root>/<name>/processed`` with ``name=...``,
rebuilt when the file's bytes (or the PyG graphs) or any argument change.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from graphdiff.chem import AtomType, AtomVocabulary, BondVocabulary
from graphdiff.datasets.cache import build_or_load
from graphdiff.datasets.dataset import BuildContext, BuiltDataset, GraphDataset
from graphdiff.datasets.graph_formats import (
    UNLABELLED_EDGES,
    UNLABELLED_NODES,
    graph_format,
    graph_stem,
    read_graph_file,
)
from graphdiff.datasets.molecule_parsing import parse_smiles, require_molecules
from graphdiff.datasets.pyg import pyg_to_graph_list
from graphdiff.datasets.registry import (
    check_dataset_name,
    check_options,
    dataset_root,
    load_dataset,
    user_dataset_location,
)
from graphdiff.datasets.skipped import report_skipped, skipped_graphs
from graphdiff.datasets.smiles_files import is_smiles_file, read_smiles_records, smiles_stem
from graphdiff.datasets.sources import file_source
from graphdiff.datasets.splits import check_fractions, fraction_split
from graphdiff.errors import ConfigError, DataError
from graphdiff.log import get_logger
from graphdiff.storage import GraphList

if TYPE_CHECKING:
    from torch_geometric.data import Data

log = get_logger(__name__)


def open_dataset(
    name: str | os.PathLike,
    /,
    root: str | os.PathLike | None = None,
    transform: Callable[[Data], Data] | None = None,
    **options: Any,
) -> GraphDataset:
    """Load a dataset by registry name, or a graph / SMILES file by path.

    Files ending in ``.smi``, ``.smiles``, ``.txt`` or ``.csv`` (each maybe ``.gz``) are read as molecules
    (:func:`load_smiles_file`); ``.json``, ``.json.gz``, ``.npz``, ``.graphml``, ``.pkl`` as graphs
    (:func:`load_graph_file`). ``name`` is positional only, so a file's ``name=`` option reaches its loader.

    Args:
        name: a registered name (:func:`~graphdiff.datasets.registry.available_datasets`) or a file path.
        root: dataset root (default ``$GRAPHDIFF_ROOT`` or ``./data``).
        transform: applied to each PyG item on access (:attr:`GraphDataset.transform`).
        **options: options of the dataset or loader (``max_nodes``, ``split_seed``, ...).

    Raises:
        ConfigError: ``name`` is not a string or path, or an option the loader does not have (the message
            lists the valid ones).
    """
    if not isinstance(name, str | os.PathLike):
        raise ConfigError(f"dataset {name!r}: expected a registered name or a file path")
    name = os.fspath(name)
    if not looks_like_path(name):
        return load_dataset(name, root=root, transform=transform, **options)
    path = Path(name)
    is_smiles = is_smiles_file(path)
    loader = load_smiles_file if is_smiles else load_graph_file
    valid = [p for p in inspect.signature(loader).parameters if p not in ("path", "root")]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(
            f"{path}: unknown option(s) {', '.join(unknown)} for a {'SMILES' if is_smiles else 'graph'} file; "
            f"valid: {', '.join(sorted(valid))}"
        )
    dataset = loader(path, root=root, **options)
    dataset.transform = transform
    return dataset


def looks_like_path(name: str) -> bool:
    """Whether :func:`open_dataset` reads ``name`` as a file: it has a folder or a suffix, or exists."""
    return os.sep in name or "." in Path(name).name or Path(name).exists()


# ---------------------------------------------------------------------------------------------- SMILES files
def load_smiles_file(
    path: str | os.PathLike,
    column: str | None = None,
    atom_types: Sequence[str] | AtomVocabulary | None = None,
    skip_unknown_atoms: bool = False,
    max_nodes: int | None = None,
    kekulize: bool = False,
    explicit_h: bool = False,
    root: str | os.PathLike | None = None,
    split_seed: int = 0,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    rebuild: bool = False,
    name: str | None = None,
) -> GraphDataset:
    """Process a file of SMILES into a cached molecule dataset (the cache: see the module docstring).

    The dataset is named after the file's stem, ``<stem>_file`` if the stem is a registered dataset's name.

    Args:
        path: ``.smi`` / ``.smiles`` / ``.txt`` (one SMILES per line, optionally followed by
            whitespace and a name) or ``.csv`` with a header; any of them gzipped (``.gz``).
        column: CSV column of the SMILES (default: the column named ``smiles`` in any case).
        atom_types: node classes, e.g. ``["C", "N", "O", "N+", "O-"]``; default: every atom type
            in the file, in a fixed element / charge order. ``"H"`` is added when ``explicit_h``.
        skip_unknown_atoms: drop molecules with other atom types (counted) instead of failing.
        max_nodes: drop molecules with more atoms (counted and reported).
        kekulize: store Kekulé bonds instead of an aromatic bond class.
        explicit_h: make every hydrogen a node.
        root: dataset root (default ``$GRAPHDIFF_ROOT`` or ``./data``).
        split_seed / split: random train / val / test fractions (:func:`~graphdiff.datasets.splits.fraction_split`).
        rebuild: process again even if a valid cache exists.
        name: dataset name and cache folder under ``root`` (not a registered dataset's name).

    Raises:
        DataError: missing, empty, truncated or unreadable file; no SMILES column; an atom type
            outside ``atom_types`` (naming it and its line); no valid molecule.
        ConfigError: invalid arguments, a registered dataset's ``name``, an unusable root.
    """
    path = Path(path)
    check_options(str(path), {"column": column, "skip_unknown_atoms": skip_unknown_atoms, "max_nodes": max_nodes,
                              "kekulize": kekulize, "explicit_h": explicit_h, "split_seed": split_seed,
                              "rebuild": rebuild})
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    fractions = check_fractions(split)
    atoms = _custom_atoms(atom_types, explicit_h)
    root = dataset_root(root)
    name, directory = user_dataset_location(root, path, smiles_stem(path), name)
    options = {
        "file": str(path.resolve()),
        "column": column,
        "atom_types": atoms.names if atoms is not None else None,
        "skip_unknown_atoms": skip_unknown_atoms,
        "max_nodes": max_nodes,
        "kekulize": kekulize,
        "explicit_h": explicit_h,
        "split": list(fractions),
        "split_seed": split_seed,
    }

    def builder(ctx: BuildContext) -> BuiltDataset:
        records = read_smiles_records(path, column=column)
        parsed = require_molecules(
            parse_smiles(records, explicit_h=explicit_h, kekulize=kekulize, max_nodes=max_nodes), records
        )
        vocab = atoms
        if vocab is None:
            vocab = AtomVocabulary.from_keys(np.unique(parsed.atom_keys).tolist(), explicit_h=explicit_h)
        parsed, classes = parsed.apply_vocabulary(vocab, str(path), skip_unknown_atoms)
        require_molecules(parsed, records)
        splits = {k: v.numpy() for k, v in fraction_split(len(parsed), fractions, split_seed).items()}
        return parsed.to_built(classes, vocab, BondVocabulary(not kekulize), splits, file_source(path), parsed.skipped,
                               records.numbers)

    return build_or_load(name, "molecule", builder, root, options, rebuild, directory)


def _custom_atoms(atom_types: Sequence[str] | AtomVocabulary | None, explicit_h: bool) -> AtomVocabulary | None:
    if atom_types is None:
        return None
    try:
        vocab = atom_types if isinstance(atom_types, AtomVocabulary) else AtomVocabulary.from_names(atom_types)
    except ValueError as exc:
        raise ConfigError(f"atom_types: {exc}") from None
    if vocab.explicit_h and not explicit_h:
        raise ConfigError("atom_types contains 'H', which means explicit hydrogens: pass explicit_h=True or drop 'H'")
    if explicit_h and not vocab.explicit_h:
        vocab = AtomVocabulary([*vocab.types, AtomType("H")])
    return vocab


# ---------------------------------------------------------------------------------------------- graph files
def load_graph_file(
    path: str | os.PathLike,
    name: str | None = None,
    max_nodes: int | None = None,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    split_seed: int = 0,
    root: str | os.PathLike | None = None,
    node_attr: str | None = None,
    edge_attr: str | None = None,
    rebuild: bool = False,
) -> GraphDataset:
    """Process a file of graphs into a cached dataset (formats: see :func:`read_graph_file`).

    Args:
        path: the graph file.
        name: dataset name and cache folder ``<root>/<name>`` (not a registered dataset's name); default: the
            file name without suffixes, cached in ``<root>/files/<stem>-<hash of the path>``.
        max_nodes: drop larger graphs (counted in ``info.skipped`` and reported).
        split: train / val / test fractions, summing to 1.
        split_seed: seed of the random split (see :func:`~graphdiff.datasets.splits.fraction_split`).
        root: dataset root (default ``$GRAPHDIFF_ROOT`` or ``./data``).
        node_attr, edge_attr: GraphML / pickle attributes holding categorical classes.
        rebuild: process again even if a valid cache exists.

    Raises:
        DataError: a missing or unreadable file.
        ConfigError: an option of the wrong type or range, a registered dataset's ``name``, an unusable root.
    """
    path = Path(path)
    check_options(str(path), {"max_nodes": max_nodes, "split_seed": split_seed, "node_attr": node_attr,
                              "edge_attr": edge_attr, "rebuild": rebuild})
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    root = dataset_root(root)
    name, directory = user_dataset_location(root, path, graph_stem(path), name)
    fractions = check_fractions(split)
    options = {
        "file": str(path.resolve()),
        "max_nodes": max_nodes,
        "split": list(fractions),
        "split_seed": split_seed,
        "node_attr": node_attr,
        "edge_attr": edge_attr,
    }

    def builder(ctx: BuildContext) -> BuiltDataset:
        parsed = read_graph_file(path, node_attr, edge_attr)
        source = {**file_source(path), "format": graph_format(path)}
        graphs = GraphList.from_graphs(parsed.triples)
        return _graph_dataset(str(path), graphs, parsed.node_types, parsed.edge_types, source, max_nodes, fractions,
                              split_seed, parsed.properties)

    return build_or_load(name, "graph", builder, root, options, rebuild, directory)


# ---------------------------------------------------------------------------------------------- PyG
def from_pyg(
    dataset: Iterable[Data],
    name: str,
    root: str | os.PathLike | None = None,
    max_nodes: int | None = None,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    split_seed: int = 0,
    num_node_types: int | None = None,
    num_edge_types: int | None = None,
    node_types: Sequence[str] | None = None,
    edge_types: Sequence[str] | None = None,
    rebuild: bool = False,
) -> GraphDataset:
    """Process a PyG dataset (an ``InMemoryDataset`` or a list of ``Data``) into a cached :class:`GraphDataset`.

    ``x`` / ``edge_attr`` are read by :func:`~graphdiff.datasets.pyg.pyg_to_graph_list` (integer classes or one-hot
    rows; missing means unlabelled). The cache under ``root/name`` is keyed by a SHA-256 of the graphs' contents, so
    a changed dataset is processed again.

    Args:
        dataset: the graphs.
        name: dataset name and cache folder ``<root>/<name>`` (not a registered dataset's name).
        root, max_nodes, split, split_seed, rebuild: as :func:`load_graph_file`.
        num_node_types: ``dx`` (default: ``len(node_types)``, else the one-hot width or largest class + 1).
        num_edge_types: ``de`` including "no edge" (default: ``len(edge_types)``, else inferred).
        node_types: names of the node classes (default ``"0", "1", ...`` or ``["node"]``).
        edge_types: names of the edge classes, ``"none"`` first.

    Raises:
        DataError: a graph that cannot be read (naming it), or no graph at all.
        ConfigError: an option of the wrong type or range, a registered dataset's ``name``, class names that do not
            match the numbers of classes.
    """
    check_dataset_name(name)
    check_options(name, {"max_nodes": max_nodes, "split_seed": split_seed, "rebuild": rebuild})
    if num_node_types is None and node_types is not None:
        num_node_types = len(node_types)
    if num_edge_types is None and edge_types is not None:
        num_edge_types = len(edge_types)
    try:
        read = pyg_to_graph_list(dataset, num_node_types, num_edge_types)
    except DataError as exc:
        raise DataError(f"{name}: {exc}") from None
    if len(read.graphs) == 0:
        raise DataError(f"{name}: the PyG dataset holds no graphs")
    if read.self_loops:
        log.warning("%s: dropped %d self-loop(s); graphdiff graphs have none", name, read.self_loops)
    dx, de = read.num_node_types, read.num_edge_types
    node_names = list(node_types) if node_types is not None else (
        [str(i) for i in range(dx)] if read.labelled_nodes else list(UNLABELLED_NODES)
    )
    edge_names = list(edge_types) if edge_types is not None else (
        ["none", *(str(i) for i in range(1, de))] if de > 2 else list(UNLABELLED_EDGES)
    )
    if len(node_names) != dx or len(edge_names) != de:
        raise ConfigError(f"{name}: {len(node_names)} node / {len(edge_names)} edge names for {dx} / {de} classes")
    digest = _content_sha256(read.graphs, node_names, edge_names)
    fractions = check_fractions(split)
    options = {"pyg_sha256": digest, "max_nodes": max_nodes, "split": list(fractions), "split_seed": split_seed,
               "node_types": node_names, "edge_types": edge_names}

    def builder(ctx: BuildContext) -> BuiltDataset:
        source = {"pyg": type(dataset).__name__, "content_sha256": digest}
        return _graph_dataset(name, read.graphs, node_names, edge_names, source, max_nodes, fractions, split_seed)

    return build_or_load(name, "graph", builder, dataset_root(root), options, rebuild)


def _content_sha256(graphs: GraphList, node_types: list[str], edge_types: list[str]) -> str:
    h = hashlib.sha256(json.dumps([node_types, edge_types]).encode())
    for t in graphs.state_dict().values():
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------- graph datasets
def _graph_dataset(
    where: str,
    graphs: GraphList,
    node_types: list[str],
    edge_types: list[str],
    source: dict[str, Any],
    max_nodes: int | None,
    fractions: tuple[float, float, float],
    split_seed: int,
    properties: dict[str, np.ndarray] | None = None,
) -> BuiltDataset:
    """Drop graphs that are empty or above ``max_nodes`` (counted and reported) and split the rest (``properties``:
    graph-level values per graph, kept for the kept graphs)."""
    n = graphs.num_nodes
    empty = n == 0
    large = ~empty & (n > max_nodes) if max_nodes is not None else torch.zeros_like(empty)
    skipped = skipped_graphs({"no_nodes": torch.nonzero(empty).flatten().tolist(),
                              "too_many_nodes": torch.nonzero(large).flatten().tolist()})
    report_skipped(where, skipped)
    keep = torch.nonzero(~(empty | large)).flatten()
    kept = graphs.subset(keep)
    return BuiltDataset(
        graphs=kept,
        splits=fraction_split(len(kept), fractions, split_seed) if len(kept) else {"train": torch.zeros(0)},
        kind="graph",
        node_types=node_types,
        edge_types=edge_types,
        source=source,
        skipped=skipped,
        properties={k: torch.as_tensor(v, dtype=torch.float64)[keep] for k, v in (properties or {}).items()},
    )
