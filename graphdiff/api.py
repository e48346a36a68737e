"""A small Python API: load a checkpoint and sample, or fit a model on your own graphs or SMILES.

Example:
    >>> import graphdiff.api as gd
    >>> model = gd.load_model("runs/qm9/checkpoints/last.ckpt")          # doctest: +SKIP
    >>> mols = gd.sample_molecules(model, 100, steps=100, seed=0)        # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
import zipfile
from collections.abc import Sequence
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


def fit(
    data: Sequence[str] | Sequence[nx.Graph] | str | os.PathLike,
    output_dir: str | os.PathLike = "outputs/api",
    max_epochs: int = 100,
    batch_size: int = 32,
    devices: int | str = "auto",
    ema_decay: float | None = 0.999,
    name: str = "custom",
    **model_args: Any,
) -> GenerativeModel:
    """Train a DiGress model on your own molecules or graphs in one call.

    Args:
        data: a list of SMILES, a list of networkx graphs (node/edge attribute ``type``, if present, gives the
            classes), or the path of a dataset file (``.smi``, ``.csv``, ``.json``, ``.npz``, ``.graphml``, ...).
        output_dir: where the dataset cache, checkpoints and logs go.
        max_epochs: training epochs.
        batch_size: graphs per batch.
        devices: Lightning ``devices``.
        ema_decay: EMA of the weights (``None`` to disable).
        name: file name used for a list given as ``data``.
        **model_args: :class:`~graphdiff.lit.DiscreteDiffusionModel` arguments (``T``, ``model``, ``lr``, ...).

    Returns:
        The trained model (EMA weights when enabled); its checkpoint is in ``output_dir/checkpoints/last.ckpt``.
    """
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    from graphdiff.callbacks import EMA
    from graphdiff.datasets.datamodule import GraphDataModule
    from graphdiff.lit import DiscreteDiffusionModel

    out = Path(output_dir)
    path = _dataset_file(data, out, name)
    options = {}
    if isinstance(data, Sequence) and data and all(isinstance(g, nx.Graph) for g in data):
        if all(all("type" in d for _, d in g.nodes(data=True)) for g in data):
            options["node_attr"] = "type"
        if all(all("type" in d for *_, d in g.edges(data=True)) for g in data):
            options["edge_attr"] = "type"
    datamodule = GraphDataModule(str(path), root=str(out / "data"), batch_size=batch_size, options=options)
    model = DiscreteDiffusionModel(dataset_info=datamodule.dataset_info, **model_args)
    callbacks = [ModelCheckpoint(dirpath=out / "checkpoints", save_last=True)]
    if ema_decay:
        callbacks.append(EMA(decay=ema_decay))
    trainer = pl.Trainer(max_epochs=max_epochs, devices=devices, default_root_dir=out, callbacks=callbacks,
                         logger=pl.loggers.CSVLogger(out, name="logs"))
    trainer.fit(model, datamodule)
    return load_model(out / "checkpoints" / "last.ckpt")


def _dataset_file(data: Any, out: Path, name: str) -> Path:
    """The path of ``data`` as a dataset file, writing lists of SMILES / graphs to ``out`` first."""
    from graphdiff.io import atomic_write

    if isinstance(data, (str, os.PathLike)) and Path(data).is_file():
        return Path(data)
    items = list(data)
    if not items:
        raise GraphdiffError("fit: no training data given")
    out.mkdir(parents=True, exist_ok=True)
    if all(isinstance(s, str) for s in items):
        path = out / f"{name}.smi"
        with atomic_write(path, "w", encoding="utf-8") as f:
            f.write("\n".join(items) + "\n")
        return path
    if all(isinstance(g, nx.Graph) for g in items):
        path = out / f"{name}.graphml"
        writer = nx.readwrite.graphml.GraphMLWriter()
        for g in items:
            writer.add_graph_element(nx.convert_node_labels_to_integers(g))
        buffer = io.BytesIO()
        writer.dump(buffer)
        with atomic_write(path, "wb") as f:
            f.write(buffer.getvalue())
        return path
    raise GraphdiffError("fit: data must be a file path, a list of SMILES strings or a list of networkx graphs")
