"""Score generated graphs against a dataset: the protocol and validity test follow from the dataset.

This is the one place that maps datasets to metric settings, used by validation/test inside training
and by ``graphdiff evaluate --reference DATASET[:split]``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from graphdiff.datasets.info import DatasetInfo
from graphdiff.datasets.registry import GraphDataset
from graphdiff.datasets.storage import GraphList
from graphdiff.errors import ConfigError, DataError

#: dataset -> (MMD protocol, validity kind) of the papers that report it.
DATASET_PROTOCOLS: dict[str, tuple[str, str | None]] = {
    "planar": ("spectre", "planar"),
    "sbm": ("spectre", "sbm"),
    "tree": ("spectre", "tree"),
    "comm20": ("spectre", None),
    "community_small": ("gdss", None),
    "ego_small": ("gdss", None),
    "grid": ("gdss", None),
    "enzymes": ("gdss", None),
}

#: Metrics cheap enough to compute every few epochs during training.
FAST_MOLECULE_METRICS = ("validity", "relaxed_validity", "uniqueness", "novelty")


def protocol_for(name: str) -> tuple[str, str | None]:
    """``(protocol, validity kind)`` for a dataset name; custom graph datasets get ``("spectre", None)``."""
    return DATASET_PROTOCOLS.get(name, ("spectre", None))


def reference_graphs(dataset: GraphDataset, split: str) -> list:
    """networkx graphs of one split of ``dataset``."""
    from graphdiff.sample_files import graphs_to_networkx

    return graphs_to_networkx(dataset.split(split), dataset.info)


def evaluate_generated(
    graphs: GraphList,
    info: DatasetInfo,
    dataset: GraphDataset,
    reference_split: str = "test",
    metrics: Iterable[str] | None = None,
    protocol: str | None = None,
) -> dict[str, float]:
    """Metrics of generated ``graphs`` (class indices in ``info``'s vocabularies) against ``dataset``.

    Molecules: validity variants, uniqueness, novelty against the training SMILES and, with the reference
    split's SMILES, FCD, NSPDK and the MOSES-style metrics. Graphs: the MMDs of the dataset's protocol
    against ``reference_split``, and validity / uniqueness / novelty / V.U.N. where the dataset defines validity.

    Args:
        graphs: the samples.
        info: vocabularies of the samples.
        dataset: the reference dataset (its ``train`` split is used for novelty).
        reference_split: split to compare with (``val`` during training, ``test`` for the final numbers).
        metrics: restrict to these metric names; default all that apply.
        protocol: override the dataset's MMD protocol (``spectre`` or ``gdss``).
    """
    from graphdiff.metrics.evaluate import evaluate_graphs, evaluate_molecules
    from graphdiff.sample_files import graphs_to_mols, graphs_to_networkx

    if info.kind == "molecule":
        return evaluate_molecules(
            graphs_to_mols(graphs, info),
            train_smiles=dataset.split_smiles("train"),
            test_smiles=dataset.split_smiles(reference_split),
            metrics=metrics,
        )
    default_protocol, kind = protocol_for(dataset.info.name)
    return evaluate_graphs(
        graphs_to_networkx(graphs, info),
        reference_graphs(dataset, reference_split),
        train=reference_graphs(dataset, "train"),
        protocol=protocol or default_protocol,
        kind=kind,
        metrics=metrics,
    )


def read_samples(path: str | os.PathLike) -> tuple[str, list]:
    """Read generated samples for evaluation.

    ``.smi`` / ``.txt``: one SMILES a line (the first whitespace-separated token); an empty line is a failed
    sample (``None``), as ``graphdiff sample`` writes them. ``.npz``, ``.json``, ``.graphml``: graphs.

    Returns:
        ``("molecule", [smiles | None, ...])`` or ``("graph", [networkx.Graph, ...])``.
    """
    from graphdiff.datasets.graph_files import read_graph_file
    from graphdiff.graph import triple_to_networkx

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix.lower() in (".smi", ".txt"):
        text = path.read_text(encoding="utf-8", errors="replace")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines = lines[:-1]
        if not lines:
            raise DataError(f"{path}: file is empty")
        return "molecule", [line.split()[0] if line.strip() else None for line in lines]
    parsed = read_graph_file(path)
    return "graph", [triple_to_networkx(*t) for t in parsed.triples]


def resolve_reference(reference: str, root: str | None = None) -> tuple[GraphDataset | None, str, list | None]:
    """``DATASET[:split]`` (default split ``test``) or a file path.

    Returns:
        ``(dataset or None, split, samples read from the file or None)``.
    """
    from graphdiff.datasets.registry import available_datasets, load_dataset

    name, _, split = reference.partition(":")
    if name in available_datasets():
        return load_dataset(name, root=root), split or "test", None
    kind, items = read_samples(reference)
    return None, kind, items


def evaluate_files(
    samples: str | os.PathLike,
    reference: str,
    train: str | None = None,
    protocol: str | None = None,
    kind: str | None = None,
    metrics: Iterable[str] | None = None,
    folds: int = 1,
    root: str | None = None,
) -> dict:
    """What ``graphdiff evaluate`` computes: metrics of a samples file against a dataset split or a file.

    Args:
        samples: generated samples (see :func:`read_samples`).
        reference: ``DATASET[:split]`` or a file of reference graphs / SMILES.
        train: a file of training graphs / SMILES for novelty when ``reference`` is a file.
        protocol: MMD protocol for graphs (default: the dataset's, else ``spectre``).
        kind: validity test for graphs (``planar``, ``sbm``, ``tree``; default: the dataset's).
        metrics: restrict to these metrics.
        folds: ``> 1`` reports ``{metric: {"mean", "std"}}`` over that many folds of the samples.
    """
    from graphdiff.metrics.evaluate import GraphEvaluator, evaluate_folds
    from graphdiff.metrics.molecules import MoleculeEvaluator

    sample_kind, generated = read_samples(samples)
    dataset, split, ref_items = resolve_reference(reference, root)
    train_items = read_samples(train)[1] if train else None
    if dataset is not None:
        ref_kind = dataset.info.kind
        default_protocol, default_kind = protocol_for(dataset.info.name)
        if ref_kind == "molecule":
            ref_items, train_items = dataset.split_smiles(split), dataset.split_smiles("train")
        else:
            ref_items, train_items = reference_graphs(dataset, split), reference_graphs(dataset, "train")
    else:
        ref_kind, default_protocol, default_kind = split, "spectre", None
    if ref_kind != sample_kind:
        raise ConfigError(f"samples {samples} hold {sample_kind}s but the reference {reference} holds {ref_kind}s")
    if sample_kind == "molecule":
        evaluator = MoleculeEvaluator([s for s in train_items if s] if train_items else None,
                                      [s for s in ref_items if s], metrics=metrics)
    else:
        evaluator = GraphEvaluator(ref_items, train_items, protocol=protocol or default_protocol,
                                   kind=kind or default_kind, metrics=metrics)
    if folds > 1:
        return evaluate_folds(generated, evaluator, n_folds=folds)
    return evaluator(generated)
