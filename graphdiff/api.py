"""A small Python API: load a checkpoint and sample, or fit a model on your own graphs or SMILES.

Example:
    >>> import graphdiff.api as gd
    >>> model = gd.load_model("runs/qm9/checkpoints/last.ckpt")          # doctest: +SKIP
    >>> mols = gd.sample_molecules(model, 100, steps=100, seed=0)        # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import networkx as nx
import torch

from graphdiff.errors import GraphdiffError
from graphdiff.lit import GenerativeModel


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint file on the CPU, with a one-line error if it is missing or damaged."""
    path = Path(path)
    if not path.is_file():
        raise GraphdiffError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GraphdiffError(f"{path}: not a readable checkpoint (corrupt or truncated: {first})") from None


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> GenerativeModel:
    """Rebuild a trained model from a graphdiff checkpoint alone (config and dataset info are inside).

    Args:
        path: a ``.ckpt`` written by ``graphdiff fit`` or :func:`fit`.
        device: where to put the model.

    Returns:
        The model in eval mode (with EMA weights when the run used the EMA callback).
    """
    ckpt = read_checkpoint(path)
    meta = ckpt.get("graphdiff")
    if not meta or "model_class" not in meta or "hyper_parameters" not in ckpt:
        raise GraphdiffError(f"{path}: not a graphdiff checkpoint (no graphdiff metadata)")
    module_name, _, cls_name = meta["model_class"].rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError):
        raise GraphdiffError(f"{path}: model class {meta['model_class']} is unknown to this graphdiff") from None
    # Lightning's CLI adds private keys (``_class_path``, ``_instantiator``) to the saved arguments.
    hparams = {k: v for k, v in ckpt["hyper_parameters"].items() if not k.startswith("_")}
    model = cls(**hparams)
    missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
    if missing or unexpected:
        raise GraphdiffError(
            f"{path}: weights do not fit the model (missing {len(missing)}, unexpected {len(unexpected)} tensors)"
        )
    return model.to(device).eval()


def sample_graphs(model: GenerativeModel, num_samples: int, **kwargs: Any) -> list[nx.Graph]:
    """Sample networkx graphs (node/edge attribute ``type`` = type name). ``kwargs`` as ``model.generate``."""
    from graphdiff.sample_files import graphs_to_networkx

    return graphs_to_networkx(model.generate(num_samples, **kwargs), model.info)


def sample_molecules(model: GenerativeModel, num_samples: int, **kwargs: Any) -> list:
    """Sample RDKit molecules (``None`` where a graph is not a valid molecule)."""
    from graphdiff.sample_files import graphs_to_mols

    return graphs_to_mols(model.generate(num_samples, **kwargs), model.info)
