"""Score generated graphs against a dataset: the protocol and validity test follow from the dataset.

This is the one place that maps datasets to metric settings, used by validation/test inside training
and by ``graphdiff evaluate --reference DATASET[:split]``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from graphdiff.datasets.registry import GraphDataset
from graphdiff.errors import ConfigError, DataError
from graphdiff.info import DatasetInfo
from graphdiff.io import read_file_text
from graphdiff.storage import GraphList

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
    from graphdiff.graph import graphs_to_networkx

    return graphs_to_networkx(dataset.split(split), dataset.info)


def evaluate_generated(
    graphs: GraphList,
    info: DatasetInfo,
    dataset: GraphDataset,
    reference_split: str = "test",
    metrics: Iterable[str] | None = None,
    protocol: str | None = None,
    decoding: str | None = None,
) -> dict:
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
        decoding: how molecules are made (:func:`graphdiff.chem.graphs_to_mols`); with ``"gdss"`` the metrics are
            GDSS's: ``validity`` is the fraction valid without correction, the others are of the corrected
            molecules' largest fragments (:func:`graphdiff.chem.gdss_molecule`).

    Returns:
        ``{metric: value}``; a metric that cannot be computed is ``None``, with the reason under
        ``result["not_computed"]`` (see :func:`explain_undefined`).
    """
    from graphdiff.chem import check_decoding, gdss_molecules, graphs_to_mols
    from graphdiff.graph import graphs_to_networkx
    from graphdiff.metrics.evaluate import evaluate_graphs, evaluate_molecules

    if info.kind == "molecule":
        if check_decoding(decoding) == "gdss":
            mols, valid = gdss_molecules(graphs, info)
        else:
            mols, valid = graphs_to_mols(graphs, info), None
        result = evaluate_molecules(
            mols,
            train_smiles=dataset.split_smiles("train"),
            test_smiles=dataset.split_smiles(reference_split),
            metrics=metrics,
        )
        if valid is not None and "validity" in result:
            result["validity"] = sum(valid) / len(valid)
        return explain_undefined(result, "molecule", mols)
    default_protocol, kind = protocol_for(dataset.info.name)
    generated = graphs_to_networkx(graphs, info)
    result = evaluate_graphs(
        generated,
        reference_graphs(dataset, reference_split),
        train=reference_graphs(dataset, "train"),
        protocol=protocol or default_protocol,
        kind=kind,
        metrics=metrics,
    )
    return explain_undefined(result, "graph", generated)


def read_samples(path: str | os.PathLike) -> tuple[str, list]:
    """Read generated samples for evaluation.

    ``.smi`` / ``.txt``: one SMILES a line (the first whitespace-separated token); an empty line is a failed
    sample (``None``), as ``graphdiff sample`` writes them, and so is a line ``None``, as DiGress writes them. A
    ``.txt`` starting with ``N=`` holds graphs in DiGress's samples format
    (:func:`~graphdiff.datasets.graph_formats.read_digress_samples`). ``.npz``, ``.json``, ``.graphml``: graphs.

    Returns:
        ``("molecule", [smiles | None, ...])`` or ``("graph", [networkx.Graph, ...])``.
    """
    from graphdiff.datasets.graph_formats import is_digress_samples, read_digress_samples, read_graph_file
    from graphdiff.graph import triple_to_networkx

    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a samples file")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix.lower() == ".txt" and is_digress_samples(path):
        return "graph", [triple_to_networkx(*t) for t in read_digress_samples(path).triples]
    if path.suffix.lower() in (".smi", ".txt"):
        text = read_file_text(path)
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines = lines[:-1]
        if not lines:
            raise DataError(f"{path}: file is empty")
        # DiGress writes a failed sample as the word None.
        return "molecule", [line.split()[0] if line.strip() and line.split()[0] != "None" else None for line in lines]
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


def _molecule_reference(reference: str, root: str | None) -> tuple[list[str], list[str]] | None:
    """``(reference SMILES, training SMILES)`` when ``reference`` is ``DATASET[:split]`` of a registered molecule
    dataset, else ``None``. Only the SMILES are read, not the dataset's graphs
    (:func:`~graphdiff.datasets.registry.load_split_smiles`: 0.2 GB instead of 1.9 GB for MOSES)."""
    from graphdiff.datasets.registry import available_datasets, load_split_smiles

    name, _, split = reference.partition(":")
    specs = available_datasets()
    if name not in specs or specs[name].kind != "molecule":
        return None
    smiles = load_split_smiles(name, [split or "test", "train"], root=root)
    return smiles[split or "test"], smiles["train"]


def evaluate_files(
    samples: str | os.PathLike,
    reference: str,
    train: str | None = None,
    protocol: str | None = None,
    kind: str | None = None,
    metrics: Iterable[str] | None = None,
    folds: int = 1,
    root: str | None = None,
    targets: Sequence[Mapping[str, float]] | None = None,
    oracle: Any = None,
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
        targets: the targets the samples were generated for (one row, or one per sample): adds
            :func:`condition_errors`.
        oracle: a :class:`~graphdiff.lit.PropertyRegressor` trained on clean molecules: scores the properties of
            ``targets`` that are not computable from the structure (see :func:`condition_errors`).
    """
    from graphdiff.metrics.evaluate import GraphEvaluator, evaluate_folds
    from graphdiff.metrics.molecules import MoleculeEvaluator

    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 1:
        raise ConfigError(f"folds={folds!r}: expected a positive integer")
    sample_kind, generated = read_samples(samples)
    train_items = read_samples(train)[1] if train else None
    default_protocol, default_kind = "spectre", None
    molecule_smiles = _molecule_reference(reference, root)
    if molecule_smiles is not None:
        ref_kind, (ref_items, train_items) = "molecule", molecule_smiles
    else:
        dataset, split, ref_items = resolve_reference(reference, root)
        if dataset is not None:
            ref_kind = dataset.info.kind
            default_protocol, default_kind = protocol_for(dataset.info.name)
            ref_items, train_items = reference_graphs(dataset, split), reference_graphs(dataset, "train")
        else:
            ref_kind = split
    if ref_kind != sample_kind:
        raise ConfigError(f"samples {samples} hold {sample_kind}s but the reference {reference} holds {ref_kind}s")
    if sample_kind == "molecule":
        evaluator = MoleculeEvaluator([s for s in train_items if s] if train_items else None,
                                      [s for s in ref_items if s], metrics=metrics)
    else:
        evaluator = GraphEvaluator(ref_items, train_items, protocol=protocol or default_protocol,
                                   kind=kind or default_kind, metrics=metrics)
    result = evaluate_folds(generated, evaluator, n_folds=folds) if folds > 1 else evaluator(generated)
    result = explain_undefined(result, sample_kind, generated)
    if targets is not None:
        errors = condition_errors(sample_kind, generated, targets, oracle=oracle)
        reasons = {**result.pop(UNDEFINED_KEY, {}), **errors.pop(UNDEFINED_KEY, {})}
        result.update(errors)
        if reasons:
            result[UNDEFINED_KEY] = reasons
    return result


def condition_errors(kind: str, samples: Sequence, targets: Sequence[Mapping[str, float]],
                     oracle: Any = None) -> dict[str, Any]:
    """How close generated samples are to the targets they were generated for.

    For every property with a target that can be computed from the structure (RDKit descriptors of molecules,
    graph statistics; :mod:`graphdiff.descriptors`), ``mae/<name>``: the mean absolute error between each sample's
    exact value and its target, over the samples that have both (invalid molecules have no value), and
    ``scored/<name>``: how many samples that is. A property that cannot be computed from the structure (QM9's DFT
    properties) is scored by ``oracle`` when it predicts it, else ``None`` with the reason under
    :data:`UNDEFINED_KEY`.

    Args:
        kind: ``"molecule"`` (``samples`` are SMILES or ``None``) or ``"graph"`` (networkx graphs).
        samples: as :func:`read_samples` returns them.
        targets: one ``{property: target}`` per sample, or a single one for all.
        oracle: for molecules, a regressor of clean graphs (:class:`~graphdiff.lit.PropertyRegressor`, its
            ``names`` and ``predict_smiles``): the MAE of a property it predicts is to its prediction. Its own test
            MAE (``graphdiff test`` on its checkpoint) is the floor of that number.

    Raises:
        ConfigError: a number of target rows that is neither 1 nor the number of samples.
    """
    import networkx as nx

    from graphdiff.descriptors import GRAPH_PROPERTIES, MOLECULE_PROPERTIES, molecule_property

    if len(targets) == 1:
        targets = list(targets) * len(samples)
    if len(targets) != len(samples):
        raise ConfigError(f"{len(targets)} target rows for {len(samples)} samples: give one row, or one per sample")
    names = sorted({name for row in targets for name in row})
    result: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    mols = None
    predicted = None
    oracle_names = list(getattr(oracle, "names", [])) if oracle is not None and kind == "molecule" else []
    for name in names:
        if name in GRAPH_PROPERTIES and kind == "graph":
            graphs = [g if isinstance(g, nx.Graph) else nx.Graph() for g in samples]
            n = torch.tensor([g.number_of_nodes() for g in graphs], dtype=torch.float64)
            m = torch.tensor([g.number_of_edges() for g in graphs], dtype=torch.float64)
            pairs = (n * (n - 1) / 2).clamp(min=1)
            values = {"num_nodes": n, "num_edges": m, "density": m / pairs}[name]
        elif kind == "molecule" and (name in MOLECULE_PROPERTIES or name in ("num_nodes", "num_edges")):
            if mols is None:  # parsed once for every property
                from graphdiff.chem import smiles_to_mol

                mols = [smiles_to_mol(s) if s else None for s in samples]
            if name in MOLECULE_PROPERTIES:
                values = molecule_property(name, mols)
            else:  # heavy atoms and bonds
                values = torch.tensor([float("nan") if mol is None else float(
                    mol.GetNumHeavyAtoms() if name == "num_nodes" else mol.GetNumBonds()) for mol in mols],
                    dtype=torch.float64)
        elif name in oracle_names:
            if predicted is None:  # one pass of the oracle for every property it predicts
                predicted = oracle.predict_smiles(list(samples)).double()
            values = predicted[:, oracle_names.index(name)]
        else:
            result[f"mae/{name}"] = None
            reasons[f"mae/{name}"] = (f"{name} is not computable from the structure (a dataset column; score it "
                                      "with an oracle regressor: --oracle)")
            continue
        target = torch.tensor([float(row.get(name, float("nan"))) for row in targets], dtype=torch.float64)
        both = ~torch.isnan(values) & ~torch.isnan(target)
        result[f"scored/{name}"] = int(both.sum())
        result[f"mae/{name}"] = float((values[both] - target[both]).abs().mean()) if both.any() else None
        if not both.any():
            reasons[f"mae/{name}"] = "no valid sample with a target"
    if reasons:
        result[UNDEFINED_KEY] = reasons
    return result


#: Key of the metrics dict that says why a metric is ``None``.
UNDEFINED_KEY = "not_computed"


def explain_undefined(result: dict, kind: str, samples: Sequence) -> dict:
    """Replace metrics that could not be computed (NaN) by ``None`` and say why under :data:`UNDEFINED_KEY`.

    Args:
        result: ``{metric: value}`` or, for folds, ``{metric: {"mean", "std"}}``.
        kind: ``"molecule"`` (``samples`` are SMILES or ``None``, or RDKit molecules) or ``"graph"`` (networkx).
        samples: the generated samples the metrics were computed on.
    """
    def undefined(value: object) -> bool:
        if isinstance(value, dict):
            return any(undefined(v) for v in value.values())
        return isinstance(value, float) and not math.isfinite(value)

    bad = [k for k, v in result.items() if undefined(v)]
    if not bad:
        return result
    n = len(samples)
    if kind == "molecule":
        from graphdiff.chem import quiet_rdkit

        with quiet_rdkit():
            from rdkit import Chem

            valid = sum(1 for s in samples if s is not None and (not isinstance(s, str) or Chem.MolFromSmiles(s)))
        why = (f"no valid molecule among the {n} samples" if valid == 0
               else f"undefined for these {n} samples ({valid} valid molecules)")
    else:
        empty = sum(1 for g in samples if g.number_of_nodes() == 0)
        edgeless = sum(1 for g in samples if g.number_of_edges() == 0)
        why = (f"all {n} samples are empty graphs (no nodes)" if empty == n
               else f"all {n} samples have no edges" if edgeless == n
               else f"undefined for these {n} samples")
    out = {k: (None if k in bad else v) for k, v in result.items()}
    out[UNDEFINED_KEY] = {k: why for k in bad}
    return out
