"""One registry of datasets, and the processed-data cache behind it.

Each dataset registers a *builder* that turns raw files (or a seeded generator) into a
:class:`BuiltDataset`: a :class:`GraphList`, persisted split indices and vocabularies. The first
:func:`load_dataset` call processes it into ``<root>/<name>/processed/`` (graphs, splits, info,
and SMILES for molecules); later calls load that cache, which is rebuilt only when the source
fingerprint, the options or the format version change, or when it is damaged. A user's file is cached in
``<root>/files/<stem>-<hash of its path>/processed`` (:func:`user_dataset_location`). Processes that need
the same cache at once build it once: see :func:`build_or_load`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import numbers
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from graphdiff.datasets.sources import default_root
from graphdiff.errors import ConfigError, DataError
from graphdiff.info import DatasetInfo, Kind, compute_statistics
from graphdiff.io import remove_stale_temp_files, torch_save, write_json
from graphdiff.storage import GraphList

try:
    import fcntl
except ImportError:  # not POSIX: caches are built without a lock
    fcntl = None

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
#: Folder under the dataset root holding the caches of users' files.
USER_FILES_DIR = "files"
CACHE_FILES = ("graphs.pt", "splits.json", "smiles.json", "info.json")

# Options checked by name wherever they occur (builders check the others).
_COUNT_OPTIONS = ("max_nodes", "limit")
_SEED_OPTIONS = ("seed", "split_seed")
_FLAG_OPTIONS = ("rebuild", "kekulize", "explicit_h", "skip_unknown_atoms", "fixed_communities")
_TEXT_OPTIONS = ("column", "node_attr", "edge_attr")


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
    check_options(f"dataset {name}", {**options, "rebuild": rebuild})
    opts = {**spec.defaults, **options}
    return build_or_load(spec.name, spec.kind, spec.builder, dataset_root(root), opts, rebuild)


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


def build_or_load(
    name: str,
    kind: Kind,
    builder: Builder,
    root: Path,
    options: dict[str, Any],
    rebuild: bool = False,
    directory: Path | None = None,
) -> GraphDataset:
    """Process with ``builder`` into ``<directory>/processed`` unless a matching, intact cache is there.

    Processes (and threads) that want the same cache at once build it once: reading holds a shared
    ``fcntl.flock`` on ``processed/.lock`` and checking, building and saving an exclusive one, so a second
    caller waits (saying so in one line) and then reuses the first one's cache. Without ``fcntl`` (not POSIX)
    there is no lock. A root that cannot be read needs no lock to read a cache; building needs a writable one.

    Args:
        name: dataset name (``info.name``).
        kind: ``"graph"`` or ``"molecule"``.
        builder: makes the dataset from its source.
        root: dataset root.
        options: the settings the cache must have been built with.
        rebuild: build even if a matching cache exists.
        directory: the dataset's folder (default ``root/name``).

    Raises:
        ConfigError: the cache folder cannot be created or written.
    """
    ctx = BuildContext(name, root, options)
    processed = (directory if directory is not None else root / name) / "processed"
    wanted = _jsonable(options)
    if not rebuild and (processed / "info.json").is_file():
        with _cache_lock(processed, name, exclusive=False):
            cached = _load_matching(processed, wanted)
        if cached is not None:
            return cached
    _make_writable_dir(processed, root)
    with _cache_lock(processed, name, exclusive=True) as waited:
        if waited and not rebuild:  # another process held the cache: it may have built just this
            cached = _load_matching(processed, wanted)
            if cached is not None:
                return cached
        built = builder(ctx)
        dataset = _finalise(name, kind, built, options)
        try:
            _save(dataset, processed)
        except OSError as exc:
            raise DataError(
                f"{name}: cannot save the processed dataset in {processed} ({exc.strerror or exc}); "
                "free space there or pass another root= / --root / data.root"
            ) from None
    return dataset


def _make_writable_dir(processed: Path, root: Path) -> None:
    try:
        processed.mkdir(parents=True, exist_ok=True)
        writable = os.access(processed, os.W_OK)
        reason = "permission denied"
    except OSError as exc:
        writable, reason = False, exc.strerror or str(exc)
    if not writable:
        raise ConfigError(
            f"dataset root {root}: cannot write {processed} ({reason}); pass a writable directory as "
            "root= / --root / data.root (or $GRAPHDIFF_ROOT)"
        )


@contextmanager
def _cache_lock(processed: Path, name: str, exclusive: bool) -> Iterator[bool]:
    """Hold ``processed/.lock`` shared or exclusive for the block; yields whether another holder made it wait.

    Where the lock cannot be had (no ``fcntl``, a read-only folder without a lock file, a file system
    without locks) the block runs unlocked.
    """
    fd = None
    if fcntl is not None:
        try:
            fd = os.open(processed / ".lock", os.O_RDONLY | os.O_CREAT, 0o666)
        except OSError:
            fd = None
    waited = False
    try:
        if fd is not None:
            waited = _flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, name, processed)
        yield waited
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


def _flock(fd: int, mode: int, name: str, processed: Path) -> bool:
    """Take ``mode`` on ``fd``, waiting (with a message) if another holder is in the way; True if it waited."""
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        log.warning("%s: waiting for another process building or reading the cache in %s", name, processed)
    except OSError:  # the file system has no locks (some network mounts): go on unlocked
        return False
    fcntl.flock(fd, mode)
    return True


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
    """Write the cache files (temporary files of killed writers removed first), ``info.json`` last."""
    for file in CACHE_FILES:
        remove_stale_temp_files(processed / file)
    # info.json marks a complete cache: absent while the other files change.
    (processed / "info.json").unlink(missing_ok=True)
    torch_save({"version": FORMAT_VERSION, "graphs": dataset.graphs.state_dict()}, processed / "graphs.pt")
    write_json(processed / "splits.json", {k: v.tolist() for k, v in dataset.splits.items()})
    if dataset.smiles is not None:
        write_json(processed / "smiles.json", dataset.smiles)
    else:
        (processed / "smiles.json").unlink(missing_ok=True)
    write_json(processed / "info.json", {"version": FORMAT_VERSION, **dataset.info.to_dict()})


class _DamagedCache(Exception):
    """A cache file that cannot be read or disagrees with the others; the message says which and how."""


def _load_matching(processed: Path, options: dict[str, Any]) -> GraphDataset | None:
    """The cache in ``processed`` if it is complete, intact and built with ``options`` from an unchanged source.

    A damaged cache is reported in one warning saying what is wrong, and reads as no cache (so it is rebuilt).
    """
    try:
        return _load_cached(processed, options)
    except _DamagedCache as exc:
        log.warning("%s: the cached dataset is damaged (%s); rebuilding it", processed, exc)
        return None


def _load_cached(processed: Path, options: dict[str, Any]) -> GraphDataset | None:
    """Read and check the cache; ``None`` if absent or built otherwise.

    The checks are whole-tensor operations (no Python loop over graphs), cheap next to reading the files.

    Raises:
        _DamagedCache: a file is unreadable, has the wrong structure, or disagrees with the others.
    """
    if not (processed / "info.json").is_file():
        return None
    meta = _read_json(processed / "info.json")
    if not isinstance(meta, dict):
        raise _DamagedCache("info.json: not a JSON object")
    if meta.get("version") != FORMAT_VERSION or meta.get("options") != options:
        return None
    try:
        info = DatasetInfo.from_dict({k: v for k, v in meta.items() if k != "version"})
    except TypeError as exc:
        raise _DamagedCache(f"info.json: {exc}") from None
    _check_info(info)
    if _source_changed(info):
        return None
    graphs = _read_graphs(processed / "graphs.pt", info)
    splits = _read_splits(processed / "splits.json", len(graphs), info)
    smiles = None
    if info.kind == "molecule":
        smiles = _read_json(processed / "smiles.json")
        if not isinstance(smiles, list) or len(smiles) != len(graphs) or not set(map(type, smiles)) <= {str}:
            raise _DamagedCache(f"smiles.json: expected a list of {len(graphs)} SMILES strings")
    return GraphDataset(graphs, splits, info, smiles)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _DamagedCache(f"{path.name}: missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _DamagedCache(f"{path.name}: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= 160 else text[:157] + "..."


def _check_info(info: DatasetInfo) -> None:
    """The fields that the graphs are checked against, and that training reads, have their types."""

    def int_list(v: Any) -> bool:
        return isinstance(v, list) and set(map(type, v)) <= {int}

    def str_list(v: Any) -> bool:
        return isinstance(v, list) and set(map(type, v)) <= {str}

    def numbers_of(v: Any, n: int) -> bool:
        return isinstance(v, list) and len(v) == n and set(map(type, v)) <= {int, float}

    if not _is_int(info.max_nodes, 0):
        raise _DamagedCache("info.json: malformed max_nodes")
    checks = {
        "node_types": str_list(info.node_types) and len(info.node_types) >= 1,
        "edge_types": str_list(info.edge_types) and len(info.edge_types) >= 2,
        "split_sizes": isinstance(info.split_sizes, dict) and int_list(list(info.split_sizes.values())),
        "node_counts": int_list(info.node_counts) and len(info.node_counts) == int(info.max_nodes) + 1,
        "node_marginals": numbers_of(info.node_marginals, len(info.node_types)),
        "edge_marginals": numbers_of(info.edge_marginals, len(info.edge_types)),
        "source": isinstance(info.source, dict),
        "skipped": isinstance(info.skipped, dict),
    }
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise _DamagedCache(f"info.json: malformed {', '.join(bad)}")


_GRAPH_TENSORS = {"node_types": 1, "node_ptr": 1, "edge_index": 2, "edge_types": 1, "edge_ptr": 1}
_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _read_graphs(path: Path, info: DatasetInfo) -> GraphList:
    """``graphs.pt`` as a :class:`GraphList`, checked for shape, offsets and class ranges against ``info``."""
    try:
        blob = torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise _DamagedCache("graphs.pt: missing") from None
    except Exception as exc:  # noqa: BLE001 - truncated, garbage or foreign pickles all fail differently
        raise _DamagedCache(f"graphs.pt: unreadable ({_one_line(exc)})") from None
    state = blob.get("graphs") if isinstance(blob, dict) and blob.get("version") == FORMAT_VERSION else None
    if not isinstance(state, dict) or set(state) != set(_GRAPH_TENSORS):
        raise _DamagedCache(f"graphs.pt: expected the tensors {', '.join(_GRAPH_TENSORS)}")
    for key, dim in _GRAPH_TENSORS.items():
        t = state[key]
        if not isinstance(t, Tensor) or t.dim() != dim or t.dtype not in _INT_DTYPES:
            raise _DamagedCache(f"graphs.pt: {key} is not a {dim}-D integer tensor")
    graphs = GraphList.from_state_dict(state)
    reason = _graph_list_problem(graphs, info)
    if reason:
        raise _DamagedCache(f"graphs.pt: {reason}")
    return graphs


def _graph_list_problem(g: GraphList, info: DatasetInfo) -> str | None:
    """What is inconsistent in ``g`` (offsets, edge ends, classes) or with ``info``; ``None`` if nothing."""
    for ptr, values, what in ((g.node_ptr, g.node_types.numel(), "node"), (g.edge_ptr, g.edge_types.numel(), "edge")):
        if ptr.numel() < 2 or ptr[0] != 0 or ptr[-1] != values or (ptr[1:] < ptr[:-1]).any():
            return f"{what}_ptr does not index its {values} {what}s"
    if g.node_ptr.numel() != g.edge_ptr.numel():
        return f"{len(g)} graphs by node_ptr but {g.edge_ptr.numel() - 1} by edge_ptr"
    if g.edge_index.shape[0] != 2 or g.edge_index.shape[1] != g.edge_types.numel():
        return f"edge_index has shape {list(g.edge_index.shape)} for {g.edge_types.numel()} edges"
    if g.node_types.numel() and int(g.node_types.max()) >= len(info.node_types):
        return f"node classes beyond the {len(info.node_types)} node types of info.json"
    if g.edge_types.numel() and not (1 <= int(g.edge_types.min()) and int(g.edge_types.max()) < len(info.edge_types)):
        return f"edge classes outside 1..{len(info.edge_types) - 1}"
    n_of_edge = torch.repeat_interleave(g.num_nodes, g.num_edges)
    i, j = g.edge_index.long()
    if i.numel() and ((i < 0) | (i >= j) | (j >= n_of_edge)).any():
        return "edge ends outside their graphs (or not i < j)"
    if int(g.num_nodes.max()) != info.max_nodes:
        return f"largest graph has {int(g.num_nodes.max())} nodes, info.json says {info.max_nodes}"
    return None


def _read_splits(path: Path, num_graphs: int, info: DatasetInfo) -> dict[str, Tensor]:
    """``splits.json`` as long tensors: lists of integers in ``0..num_graphs-1``, sized as ``info`` says."""
    data = _read_json(path)
    if not isinstance(data, dict):
        raise _DamagedCache("splits.json: expected an object of split name -> index list")
    splits = {}
    for key, values in data.items():
        if not isinstance(values, list) or not set(map(type, values)) <= {int}:
            raise _DamagedCache(f"splits.json: split {key!r} is not a list of integers")
        try:
            t = torch.tensor(values, dtype=torch.long)
        except (OverflowError, RuntimeError, ValueError):  # beyond int64
            t = None
        if t is None or (t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_graphs)):
            raise _DamagedCache(f"splits.json: split {key!r} has indices outside 0..{num_graphs - 1}")
        splits[key] = t
    sizes = {k: int(v.numel()) for k, v in splits.items()}
    if sizes != info.split_sizes:
        raise _DamagedCache(f"splits.json: split sizes {sizes} differ from info.json's {info.split_sizes}")
    return splits


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
