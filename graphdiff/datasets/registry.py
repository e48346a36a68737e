"""One registry of datasets: names, their builders and default options, and loading by name.

Each dataset registers a *builder* (:func:`register`) that turns raw files (or a seeded generator) into a
:class:`~graphdiff.datasets.dataset.BuiltDataset`: a :class:`GraphList`, split indices and vocabularies. The first
:func:`load_dataset` call processes it into ``<root>/<name>/processed/`` (:mod:`graphdiff.datasets.cache`); later
calls load that cache. A user's file is cached in ``<root>/files/<stem>-<hash of its path>/processed``
(:func:`user_dataset_location`).

This module imports no builder: the builder modules import it and register themselves, and
``graphdiff/datasets/__init__.py`` imports them right after it, so importing ``graphdiff.datasets`` (or any of its
modules) fills the registry.
"""

from __future__ import annotations

import hashlib
import numbers
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphdiff.datasets.cache import build_or_load, load_cached_smiles
from graphdiff.datasets.dataset import Builder, GraphDataset
from graphdiff.datasets.sources import default_root
from graphdiff.errors import ConfigError
from graphdiff.info import Kind

if TYPE_CHECKING:
    from torch_geometric.data import Data

#: Folder under the dataset root holding the caches of users' files.
USER_FILES_DIR = "files"

# Options checked by name wherever they occur (builders check the others).
_COUNT_OPTIONS = ("max_nodes", "limit")
_SEED_OPTIONS = ("seed", "split_seed")
_FLAG_OPTIONS = ("rebuild", "kekulize", "explicit_h", "skip_unknown_atoms", "fixed_communities")
_TEXT_OPTIONS = ("column", "node_attr", "edge_attr")


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: its name, ``"graph"`` or ``"molecule"``, a one-line description, its builder and the
    options it takes with their defaults."""

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
    return dict(sorted(_REGISTRY.items()))


def get_spec(name: str) -> DatasetSpec:
    """The registered dataset ``name``.

    Raises:
        ConfigError: no dataset has that name (the message lists the names).
    """
    specs = available_datasets()
    if name not in specs:
        raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(specs)} (or pass a file path)")
    return specs[name]


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    rebuild: bool = False,
    transform: Callable[[Data], Data] | None = None,
    **options: Any,
) -> GraphDataset:
    """Load a registered dataset, processing it on first use.

    Args:
        name: a registry name (see :func:`available_datasets`).
        root: dataset root (default ``$GRAPHDIFF_ROOT`` or ``./data``).
        rebuild: process again even if a valid cache exists.
        transform: applied to each PyG item on access (:attr:`GraphDataset.transform`); not part of the cache.
        **options: builder options overriding the registered defaults (e.g. ``max_nodes``).

    Raises:
        ConfigError: an unknown name, an unknown option or one of the wrong type, an unusable root.
    """
    spec = get_spec(name)
    unknown = set(options) - set(spec.defaults)
    if unknown:
        raise ConfigError(
            f"dataset {name}: unknown option(s) {', '.join(sorted(unknown))}; "
            f"valid: {', '.join(sorted(spec.defaults)) or 'none'}"
        )
    check_options(f"dataset {name}", {**options, "rebuild": rebuild})
    opts = {**spec.defaults, **options}
    dataset = build_or_load(spec.name, spec.kind, spec.builder, dataset_root(root), opts, rebuild)
    dataset.transform = transform
    return dataset


def load_split_smiles(
    name: str, splits: Sequence[str], root: str | os.PathLike | None = None, **options: Any
) -> dict[str, list[str]]:
    """The canonical SMILES of some splits of a registered molecule dataset, without holding its graphs.

    Read from the processed cache's ``smiles.json`` and ``splits.json`` when it is complete and matches
    (:func:`graphdiff.datasets.cache.load_cached_smiles`): for MOSES 0.2 GB instead of the 1.9 GB of
    :func:`load_dataset`, which also reads the 1.9M graphs. Otherwise the dataset is loaded (built on first use)
    with :func:`load_dataset` and only the SMILES are kept.

    Args:
        name: a registered molecule dataset.
        splits: split names (e.g. ``["test", "train"]``).
        root: dataset root (default ``$GRAPHDIFF_ROOT`` or ``./data``).
        **options: builder options, as for :func:`load_dataset`.

    Returns:
        ``{split: [SMILES in split order]}``.

    Raises:
        ConfigError: an unknown or non-molecule dataset, an unknown option or split, an unusable root.
    """
    spec = get_spec(name)
    if spec.kind != "molecule":
        raise ConfigError(f"dataset {name} holds graphs, not molecules: it has no SMILES")
    unknown = set(options) - set(spec.defaults)
    if unknown:
        raise ConfigError(f"dataset {name}: unknown option(s) {', '.join(sorted(unknown))}; "
                          f"valid: {', '.join(sorted(spec.defaults)) or 'none'}")
    check_options(f"dataset {name}", options)
    cached = load_cached_smiles(dataset_root(root) / name / "processed", {**spec.defaults, **options})
    if cached is None:
        dataset = load_dataset(name, root=root, **options)
        return {split: dataset.split_smiles(split) for split in splits}
    smiles, indices = cached
    missing = [split for split in splits if split not in indices]
    if missing:
        raise ConfigError(f"dataset {name} has no split {missing[0]!r}; it has {', '.join(indices)}")
    return {split: [smiles[i] for i in indices[split].tolist()] for split in splits}


def dataset_root(root: str | os.PathLike | None) -> Path:
    """The dataset root: ``root``, else ``$GRAPHDIFF_ROOT`` or ``./data``.

    Raises:
        ConfigError: ``root`` is not a path, or is an existing file.
    """
    if root is not None and not isinstance(root, str | os.PathLike):
        raise ConfigError(f"dataset root {root!r} is not a path; pass a directory as root= / --root / data.root")
    path = Path(root) if root is not None else default_root()
    if path.exists() and not path.is_dir():
        raise ConfigError(
            f"dataset root {path} is a file, not a directory; pass a directory as root= / --root / data.root "
            "(or $GRAPHDIFF_ROOT)"
        )
    return path


def check_options(where: str, options: dict[str, Any]) -> None:
    """Refuse a value of the wrong type or range for the options every loader shares (checked by name).

    Raises:
        ConfigError: naming the option, its value and what is expected.
    """
    for key, value in options.items():
        expected = None
        if key in _COUNT_OPTIONS and value is not None and not _is_int(value, 1):
            expected = "an integer >= 1, or null for no limit"
        elif key in _SEED_OPTIONS and not _is_int(value, 0):
            expected = "an integer >= 0"
        elif key in _FLAG_OPTIONS and not isinstance(value, bool):
            expected = "true or false"
        elif key in _TEXT_OPTIONS and value is not None and not isinstance(value, str):
            expected = "a string (a column or attribute name)"
        if expected is not None:
            raise ConfigError(f"{where}: option {key}={value!r}: expected {expected}")


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum


def check_dataset_name(name: Any) -> str:
    """``name`` if it can name a user's dataset: a plain folder name that no registered dataset uses.

    Raises:
        ConfigError: ``name`` is not a plain folder name, or would share a registered dataset's cache.
    """
    if not isinstance(name, str) or name in ("", ".", "..") or any(s and s in name for s in (os.sep, os.altsep)):
        raise ConfigError(f"name={name!r}: expected a plain folder name such as 'my_graphs'")
    if name in available_datasets() or name == USER_FILES_DIR:
        what = "a registered dataset" if name != USER_FILES_DIR else "the folder of file caches"
        raise ConfigError(
            f"name={name!r} is {what}, whose cache it would overwrite; choose another name or leave name out"
        )
    return name


def user_dataset_location(root: Path, path: Path, stem: str, name: str | None) -> tuple[str, Path]:
    """``(dataset name, cache folder)`` of a user's file.

    Without ``name`` the cache folder is ``<root>/files/<stem>-<12 hex digits of the SHA-256 of the resolved
    path>``: it never meets a registered dataset's folder, nor another file with the same stem. The dataset is
    named after the stem, ``<stem>_file`` when the stem is a registered name (so it is not taken for that
    benchmark, whose metrics protocol follows the name). An explicit ``name`` (see :func:`check_dataset_name`)
    names both the dataset and its folder ``<root>/<name>``.
    """
    if name is not None:
        name = check_dataset_name(name)
        return name, root / name
    digest = hashlib.sha256(str(path.resolve()).encode("utf-8")).hexdigest()[:12]
    display = f"{stem}_file" if stem in available_datasets() else stem
    return display, root / USER_FILES_DIR / f"{stem}-{digest}"
