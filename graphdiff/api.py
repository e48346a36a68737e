"""A small Python API: load a checkpoint and sample, or fit a model on your own graphs or SMILES.

Example:
    >>> import graphdiff.api as gd
    >>> model = gd.load_model("runs/qm9/checkpoints/last.ckpt")          # doctest: +SKIP
    >>> mols = gd.sample_molecules(model, 100, steps=100, seed=0)        # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import networkx as nx
import torch

from graphdiff.checkpoints import checkpoint_model_class, read_checkpoint
from graphdiff.errors import GraphdiffError
from graphdiff.lit import GenerativeModel, GraphModel, PropertyRegressor

__all__ = ["fit", "load_model", "load_regressor", "read_checkpoint", "sample_graphs", "sample_molecules"]


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu",
               sample_with_ema: bool | None = None) -> GenerativeModel:
    """Rebuild a trained model from a graphdiff checkpoint alone (config and dataset info are inside).

    Args:
        path: a ``.ckpt`` written by ``graphdiff fit`` or :func:`fit`.
        device: where to put the model.
        sample_with_ema: with a run that used the EMA callback, load the averaged weights (``True``) or the raw
            ones (``False``, GDSS's ``sample.use_ema: False``); default: the model's ``sample_with_ema`` setting.

    Returns:
        The model in eval mode, with the weights ``sample_with_ema`` picks (the only ones without EMA).
    """
    return _load(path, device, GenerativeModel, {} if sample_with_ema is None else {"sample_with_ema": sample_with_ema})


def load_regressor(path: str | os.PathLike, device: str | torch.device = "cpu") -> PropertyRegressor:
    """Rebuild a :class:`~graphdiff.lit.PropertyRegressor` from its checkpoint: for regressor guidance
    (``model.generate(..., regressor=...)``) or as an oracle (``condition_errors(..., oracle=...)``)."""
    return _load(path, device, PropertyRegressor)


def _load(path: str | os.PathLike, device: str | torch.device, expected: type[GraphModel],
          overrides: dict[str, Any] | None = None) -> Any:
    ckpt = read_checkpoint(path)
    cls = checkpoint_model_class(ckpt, path)  # a registered class only: a file never names what gets called
    if not issubclass(cls, expected):
        use = ("load_regressor (CLI: --regressor or --oracle)" if issubclass(cls, PropertyRegressor)
               else "load_model (CLI: --ckpt_path)")
        raise GraphdiffError(f"{path}: holds a {cls.__qualname__}, not a {expected.__qualname__}; load it with {use}")
    # Lightning's CLI adds private keys (``_class_path``, ``_instantiator``) to the saved arguments.
    hparams = {**{k: v for k, v in ckpt["hyper_parameters"].items() if not k.startswith("_")}, **(overrides or {})}
    try:
        model = cls(**hparams)
    except TypeError as exc:
        raise GraphdiffError(f"{path}: hyper-parameters do not fit {cls.__qualname__} ({exc})") from None
    state = ckpt.get("state_dict")
    if not isinstance(state, dict):
        raise GraphdiffError(f"{path}: holds no weights (no state_dict)")
    if isinstance(model, GenerativeModel):
        state = model.checkpoint_weights(ckpt)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes that do not fit
        last = str(exc).strip().splitlines()[-1][:200]
        raise GraphdiffError(f"{path}: weights do not fit the model ({last})") from None
    if missing or unexpected:
        raise GraphdiffError(
            f"{path}: weights do not fit the model (missing {len(missing)}, unexpected {len(unexpected)} tensors)"
        )
    return model.to(_device(device)).eval()


def _device(device: str | torch.device) -> torch.device:
    """``device`` checked: a one-line error for a malformed or unavailable device."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise GraphdiffError(f"device {device!r}: {first}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise GraphdiffError(f"device {device!r}: CUDA is not available on this machine; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise GraphdiffError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise GraphdiffError(f"device {device!r}: MPS is not available on this machine; use --device cpu")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise GraphdiffError(f"device {device!r}: unsupported device type; use cpu, cuda or cuda:N")
    return dev


def sample_graphs(model: GenerativeModel, num_samples: int, **kwargs: Any) -> list[nx.Graph]:
    """Sample networkx graphs (node/edge attribute ``type`` = type name). ``kwargs`` as ``model.generate``."""
    from graphdiff.graph import graphs_to_networkx

    return graphs_to_networkx(_generate(model, num_samples, kwargs), model.info)


def sample_molecules(model: GenerativeModel, num_samples: int, **kwargs: Any) -> list:
    """Sample RDKit molecules (``None`` where a graph is not a valid molecule)."""
    from graphdiff.chem import graphs_to_mols

    if not isinstance(model, GenerativeModel) or model.info.kind != "molecule":
        what = model.info.name if isinstance(model, GenerativeModel) else type(model).__name__
        raise GraphdiffError(f"sample_molecules: the model generates graphs ({what}), not molecules; "
                             "use sample_graphs")
    return graphs_to_mols(_generate(model, num_samples, kwargs), model.info, model.molecule_decoding)


def _generate(model: GenerativeModel, num_samples: int, kwargs: dict[str, Any]):
    """``model.generate`` with the model and the option names checked (a one-line error, not a TypeError)."""
    if not isinstance(model, GenerativeModel):
        raise GraphdiffError(f"expected a model from load_model or fit, got {type(model).__name__}")
    allowed = [p for p in inspect.signature(model.generate).parameters if p != "num_samples"]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise GraphdiffError(f"unknown sampling option(s) {', '.join(unknown)}; valid: {', '.join(allowed)}")
    return model.generate(num_samples, **kwargs)


def fit(
    data: Sequence[str] | Sequence[nx.Graph] | str | os.PathLike,
    output_dir: str | os.PathLike = "outputs/api",
    max_epochs: int = 100,
    batch_size: int = 32,
    devices: int | str = "auto",
    ema_decay: float | None = 0.999,
    name: str = "custom",
    family: str = "discrete",
    conditions: Sequence[str] | None = None,
    **model_args: Any,
) -> GraphModel:
    """Train a model of any family on your own molecules or graphs in one call.

    Args:
        data: a list of SMILES, a list of networkx graphs (node/edge attribute ``type``, if present, gives the
            classes), or the path of a dataset file (``.smi``, ``.csv``, ``.json``, ``.npz``, ``.graphml``, ...).
        output_dir: where the dataset cache, checkpoints and logs go.
        max_epochs: training epochs.
        batch_size: graphs per batch.
        devices: Lightning ``devices``.
        ema_decay: EMA of the weights (``None`` to disable).
        name: file name used for a list given as ``data``.
        family: the model family (``discrete``: :class:`~graphdiff.lit.DiscreteDiffusionModel`, ``sde``:
            :class:`~graphdiff.lit.ScoreSDEModel`, or any registered one, see :func:`graphdiff.lit.model_families`;
            ``regressor``: a :class:`~graphdiff.lit.PropertyRegressor` of ``conditions``, for guidance or as an
            oracle).
        conditions: graph-level properties to condition on (a conditional model, see ``docs/conditioning.md``):
            columns of a CSV / JSON file, RDKit descriptors (``qed``, ``logp``, ...) or graph statistics.
        **model_args: arguments of the family's model class (``T``, ``model``, ``lr``, ``condition_dropout``,
            ...).

    Returns:
        The trained model (EMA weights when enabled); its checkpoint is in ``output_dir/checkpoints/last.ckpt``.
    """
    import pytorch_lightning as pl
    from lightning_fabric.utilities.exceptions import MisconfigurationException
    from pytorch_lightning.callbacks import ModelCheckpoint

    from graphdiff.callbacks import EMA, LastCheckpoint
    from graphdiff.checkpoints import AtomicCheckpointIO
    from graphdiff.datasets.datamodule import GraphDataModule
    from graphdiff.lit import model_families
    from graphdiff.lit.base import _count
    from graphdiff.outputs import check_output_path

    families: dict[str, type[GraphModel]] = {**model_families(), "regressor": PropertyRegressor}
    if family not in families:
        raise GraphdiffError(f"fit: unknown model family {family!r}; known: {', '.join(sorted(families))}")
    model_class = families[family]
    max_epochs = _count("max_epochs", max_epochs, minimum=1)
    batch_size = _count("batch_size", batch_size, minimum=1)
    if ema_decay is not None and not (isinstance(ema_decay, float | int) and 0.0 < ema_decay < 1.0):
        raise GraphdiffError(f"fit: ema_decay={ema_decay!r}: expected a number in (0, 1), or None for no EMA")
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise GraphdiffError(f"fit: output_dir {out} is a file; give a folder")
    check_output_path(out / "checkpoints" / "last.ckpt", option="output_dir")
    path = _dataset_file(data, out, name)
    options = {}
    if isinstance(data, Sequence) and not isinstance(data, str) and data and all(isinstance(g, nx.Graph) for g in data):
        graphs = cast("Sequence[nx.Graph]", data)
        if all(all("type" in d for _, d in g.nodes(data=True)) for g in graphs):
            options["node_attr"] = "type"
        if all(all("type" in d for *_, d in g.edges(data=True)) for g in graphs):
            options["edge_attr"] = "type"
    datamodule = GraphDataModule(str(path), root=str(out / "data"), batch_size=batch_size, options=options,
                                 conditions=list(conditions) if conditions is not None else None)
    try:
        model = model_class(dataset_info=datamodule.dataset_info, **model_args)
    except TypeError as exc:
        raise GraphdiffError(f"fit: {exc}") from None
    callbacks = [ModelCheckpoint(dirpath=out / "checkpoints", save_last=True), LastCheckpoint()]
    if ema_decay:
        callbacks.append(EMA(decay=ema_decay))
    try:
        trainer = pl.Trainer(max_epochs=max_epochs, devices=devices, default_root_dir=out, callbacks=callbacks,
                             logger=pl.loggers.CSVLogger(out, name="logs"), plugins=[AtomicCheckpointIO()])
    except (MisconfigurationException, ValueError, TypeError) as exc:
        raise GraphdiffError(f"fit: {str(exc).strip().splitlines()[0]}") from None
    trainer.fit(model, datamodule)
    return _load(out / "checkpoints" / "last.ckpt", "cpu", GraphModel)


def _dataset_file(data: Any, out: Path, name: str) -> Path:
    """The path of ``data`` as a dataset file, writing lists of SMILES / graphs to ``out`` first."""
    from graphdiff.io import atomic_write

    if isinstance(data, str | os.PathLike):
        if Path(data).is_dir():
            raise GraphdiffError(f"fit: {data} is a directory; give a dataset file, a list of SMILES or of graphs")
        if not Path(data).is_file():
            raise GraphdiffError(f"fit: {data}: no such file (give a dataset file, a list of SMILES or of graphs)")
        return Path(data)
    try:
        items = list(data)
    except TypeError:
        raise GraphdiffError(f"fit: data of type {type(data).__name__} is not a file path or a list") from None
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
