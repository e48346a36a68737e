"""The processed-data cache: ``<dataset folder>/processed/{graphs.pt, splits.json, smiles.json, info.json}``.

:func:`build_or_load` returns the cached dataset when it is complete, intact and was built with the same options
from unchanged source files; otherwise it runs the builder, computes the :class:`~graphdiff.info.DatasetInfo` from
the training split and saves the files atomically, ``info.json`` (which marks a complete cache) last. A damaged
cache (unreadable files, or files that disagree) is rebuilt with a one-line warning saying what was wrong. Processes
that need the same cache at once build it once, under an ``fcntl.flock`` on ``processed/.lock``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from graphdiff.datasets.dataset import BuildContext, Builder, BuiltDataset, GraphDataset
from graphdiff.datasets.skipped import skipped_summary
from graphdiff.errors import ConfigError, DataError
from graphdiff.info import DatasetInfo, Kind, compute_statistics
from graphdiff.io import file_sha256, remove_stale_temp_files, torch_save, write_json
from graphdiff.log import get_logger
from graphdiff.storage import GraphList

try:
    import fcntl
except ImportError:  # not POSIX: caches are built without a lock
    fcntl = None

log = get_logger(__name__)

FORMAT_VERSION = 2  # 2: graphs.pt holds the graph-level properties
CACHE_FILES = ("graphs.pt", "splits.json", "smiles.json", "info.json")
#: Sub-folder of the processed cache holding properties computed from its graphs (RDKit descriptors).
COMPUTED_PROPERTIES = "properties"


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
            cached.cache_dir = processed
            return cached
    _make_writable_dir(processed, root)
    with _cache_lock(processed, name, exclusive=True) as waited:
        if waited and not rebuild:  # another process held the cache: it may have built just this
            cached = _load_matching(processed, wanted)
            if cached is not None:
                cached.cache_dir = processed
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
        dataset.cache_dir = processed
    return dataset


def load_cached_smiles(processed: Path, options: dict[str, Any]) -> tuple[list[str], dict[str, Tensor]] | None:
    """The SMILES and splits of the molecule cache in ``processed``, without reading its graphs.

    Takes the same checks as :func:`build_or_load` on ``info.json`` (format, options, source file unchanged),
    ``smiles.json`` and ``splits.json``; ``graphs.pt`` is not read (for MOSES it is 480 MB on disk and 1.3 GB
    while read and checked, against 0.2 GB for the SMILES).

    Args:
        processed: the ``processed`` folder of a dataset.
        options: the settings the cache must have been built with.

    Returns:
        ``(SMILES of every molecule, split name -> [k] long indices)``, or ``None`` when there is no complete
        matching cache of molecules or it is damaged (the caller then loads the dataset with
        :func:`build_or_load`, which rebuilds it).
    """
    if not (processed / "info.json").is_file():
        return None
    with _cache_lock(processed, processed.parent.name, exclusive=False):
        try:
            meta = _read_json(processed / "info.json")
            if not isinstance(meta, dict) or meta.get("version") != FORMAT_VERSION:
                return None
            if meta.get("options") != _jsonable(options) or meta.get("kind") != "molecule":
                return None
            info = DatasetInfo.from_dict({k: v for k, v in meta.items() if k != "version"})
            _check_info(info)
            if _source_changed(info):
                return None
            smiles = _read_json(processed / "smiles.json")
            if not isinstance(smiles, list) or not set(map(type, smiles)) <= {str}:
                return None
            return smiles, _read_splits(processed / "splits.json", len(smiles), info)
        except (_DamagedCache, TypeError):
            return None


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
        raise DataError(f"{name}: no graphs left after processing ({skipped_summary(built.skipped)})")
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
    return GraphDataset(built.graphs, {k: v.long() for k, v in built.splits.items()}, info, built.smiles,
                        properties=dict(built.properties))


def _save(dataset: GraphDataset, processed: Path) -> None:
    """Write the cache files (temporary files of killed writers removed first), ``info.json`` last."""
    for file in CACHE_FILES:
        remove_stale_temp_files(processed / file)
    # info.json marks a complete cache: absent while the other files change.
    (processed / "info.json").unlink(missing_ok=True)
    shutil.rmtree(processed / COMPUTED_PROPERTIES, ignore_errors=True)  # computed from the graphs being replaced
    torch_save({"version": FORMAT_VERSION, "graphs": dataset.graphs.state_dict(),
                "properties": dict(dataset.properties)}, processed / "graphs.pt")
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
    graphs, properties = _read_graphs(processed / "graphs.pt", info)
    splits = _read_splits(processed / "splits.json", len(graphs), info)
    smiles = None
    if info.kind == "molecule":
        smiles = _read_json(processed / "smiles.json")
        if not isinstance(smiles, list) or len(smiles) != len(graphs) or not set(map(type, smiles)) <= {str}:
            raise _DamagedCache(f"smiles.json: expected a list of {len(graphs)} SMILES strings")
    return GraphDataset(graphs, splits, info, smiles, properties=properties)


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

    if not isinstance(info.max_nodes, int) or isinstance(info.max_nodes, bool) or info.max_nodes < 0:
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


def _read_graphs(path: Path, info: DatasetInfo) -> tuple[GraphList, dict[str, Tensor]]:
    """``graphs.pt`` as a :class:`GraphList`, checked for shape, offsets and class ranges against ``info``, and the
    graph-level properties (one float tensor per graph each)."""
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
    properties = blob.get("properties", {})
    if not isinstance(properties, dict) or not all(
            isinstance(k, str) and isinstance(v, Tensor) and v.is_floating_point() and v.shape == (len(graphs),)
            for k, v in properties.items()):
        raise _DamagedCache(f"graphs.pt: properties are not {len(graphs)} floats per name")
    return graphs, properties


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
    return file_sha256(path) != digest


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(options, default=str))
