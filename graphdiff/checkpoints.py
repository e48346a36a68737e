"""Checkpoint files: written atomically, read without running code, rebuilt only as graphdiff's own models.

* :class:`AtomicCheckpointIO` is the Lightning ``CheckpointIO`` every graphdiff trainer uses: a checkpoint is
  written to a temporary file *next to* its target, flushed to disk and renamed over it, so a run killed during a
  save keeps the previous ``last.ckpt`` (Lightning's default writes through a temporary location that may be on
  another file system, where the final move is a copy in place). Reading never unpickles code
  (``torch.load(weights_only=True)``) and a remote URL is refused.
* :func:`read_checkpoint` opens a checkpoint with a one-line error when it is missing or damaged.
* :func:`model_class` maps the class name stored in a checkpoint to a registered model class
  (:func:`graphdiff.lit.register_model`) without importing anything a file names.
* :func:`check_config_classes` refuses a configuration stored in a checkpoint whose ``class_path`` entries point
  outside graphdiff and Lightning, before Lightning's parser would import them.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins import CheckpointIO

from graphdiff.errors import ConfigError, GraphdiffError
from graphdiff.io import remove_stale_temp_files, torch_save

#: Module prefixes a stored configuration may name classes from (callbacks, loggers, graphdiff's models).
TRUSTED_CLASS_PREFIXES = ("graphdiff.", "pytorch_lightning.", "lightning.", "lightning_fabric.", "torch.optim.")


class AtomicCheckpointIO(CheckpointIO):
    """Save checkpoints atomically next to their target; load them as data only."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        remove_stale_temp_files(path)
        torch_save(checkpoint, path)

    def load_checkpoint(self, path: str | os.PathLike, map_location: Callable | Any | None = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        return read_checkpoint(path, map_location=map_location)

    def remove_checkpoint(self, path: str | os.PathLike) -> None:
        Path(path).unlink(missing_ok=True)


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint as plain data (tensors, numbers, strings, containers), never running code.

    Raises:
        GraphdiffError: the path is a URL, is missing, or holds no readable checkpoint.
    """
    if str(path).startswith(("http://", "https://", "s3://", "gs://")):
        raise GraphdiffError(f"{path}: remote checkpoints are not loaded; download the file and pass its path")
    path = Path(path)
    if path.is_dir():
        raise GraphdiffError(f"{path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise GraphdiffError(f"{path}: no such checkpoint")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GraphdiffError(f"{path}: refused: the checkpoint holds more than data ({first[:200]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GraphdiffError(f"{path}: not a readable checkpoint (corrupt or truncated: {first[:200]})") from None
    if not isinstance(ckpt, dict):
        raise GraphdiffError(f"{path}: not a checkpoint (holds a {type(ckpt).__name__}, not a dict)")
    return ckpt


def model_class(name: str, where: str | os.PathLike = "checkpoint") -> type:
    """The registered model class called ``name`` (``"graphdiff.lit.DiscreteDiffusionModel"`` or its bare class
    name); nothing is imported on a file's say-so.

    Raises:
        GraphdiffError: ``name`` is not a registered model class.
    """
    from graphdiff.lit import registered_models

    models = registered_models()
    cls = models.get(name) or models.get(str(name).rpartition(".")[2])
    if cls is None:
        known = ", ".join(sorted({f"{c.__module__}.{c.__qualname__}" for c in models.values()}))
        raise GraphdiffError(f"{where}: model class {name!r} is not a registered graphdiff model (known: {known}); "
                             "register your own with graphdiff.lit.register_model")
    return cls


def checkpoint_model_class(ckpt: dict[str, Any], where: str | os.PathLike) -> type:
    """The model class a graphdiff checkpoint was written by (see :func:`model_class`)."""
    meta = ckpt.get("graphdiff")
    if not isinstance(meta, dict) or "model_class" not in meta or "hyper_parameters" not in ckpt:
        raise GraphdiffError(f"{where}: not a graphdiff checkpoint (no graphdiff metadata)")
    return model_class(str(meta["model_class"]), where)


def check_config_classes(config: Any, where: str | os.PathLike) -> None:
    """Refuse a stored configuration naming a class outside graphdiff and Lightning (:data:`TRUSTED_CLASS_PREFIXES`)
    or a model class that is not registered.

    Raises:
        ConfigError: naming the offending key.
    """

    def visit(node: Any, key: str) -> None:
        if isinstance(node, dict):
            path = node.get("class_path")
            if path is not None:
                if key == "model":
                    model_class(str(path), where)
                elif not str(path).startswith(TRUSTED_CLASS_PREFIXES):
                    raise ConfigError(f"{where}: {key}.class_path {path!r} is not a graphdiff or Lightning class; "
                                      "a checkpoint's configuration may only name those")
            for k, v in node.items():
                visit(v, f"{key}.{k}" if key else str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                visit(v, f"{key}[{i}]")

    visit(config, "")
