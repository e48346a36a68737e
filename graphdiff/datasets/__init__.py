"""Datasets: every source of graphs becomes one cached :class:`GraphDataset`.

A registered benchmark, a SMILES file, a graph file or PyG graphs all end up the same way: every graph in one compact
:class:`~graphdiff.storage.GraphList`, named splits, and a :class:`~graphdiff.info.DatasetInfo` (vocabularies,
node-count distribution, marginals, source fingerprint, skipped rows), processed once into ``<root>/.../processed``
and reloaded from there::

    from graphdiff.datasets import load_dataset, open_dataset, load_smiles_file, from_pyg

    planar = load_dataset("planar")              # a registered name (available_datasets() lists them)
    mols = open_dataset("mols.smi", max_nodes=30) # a name or a path; load_smiles_file / load_graph_file for files
    train = planar.split("train")                # a GraphList: what training and metrics use
    planar[0]                                    # a torch_geometric Data: one-hot x, both edge directions
    loader = torch_geometric.loader.DataLoader(planar.subset("train"), batch_size=32)

``GraphDataModule`` serves dense batches to Lightning. Modules, one job each:

* ``registry``: ``@register`` builders, :func:`load_dataset`; ``cache``: the processed files; ``dataset``:
  :class:`GraphDataset`; ``splits``: the split recipes; ``skipped``: dropped rows and their reports.
* builders: ``synthetic`` (planar, sbm, tree, comm20), ``gdss_sets`` (community_small, ego_small, grid, enzymes),
  ``molecule_sets`` (qm9, qm9_h, moses, zinc250k, guacamol).
* reading: ``sources`` (raw files and pinned downloads), ``smiles_files``, ``molecule_parsing`` (RDKit rows to
  graphs, in ``workers``), ``graph_formats`` (JSON, npz, GraphML, pickles), ``pyg`` (GraphList <-> PyG).
* your data: ``user_files`` (:func:`open_dataset`, :func:`load_smiles_file`, :func:`load_graph_file`,
  :func:`from_pyg`); ``datamodule`` (:class:`GraphDataModule`).

Importing this package imports the registry, then the builder modules, which register themselves.
"""

from __future__ import annotations

from typing import Any

from graphdiff.datasets.registry import available_datasets, load_dataset, register

# isort: split
import graphdiff.datasets.gdss_sets  # noqa: F401  (registers its datasets)
import graphdiff.datasets.molecule_sets  # noqa: F401  (registers its datasets)
import graphdiff.datasets.synthetic  # noqa: F401  (registers its datasets)
from graphdiff.datasets.dataset import GraphDataset
from graphdiff.datasets.graph_formats import read_graph_file
from graphdiff.datasets.pyg import graph_list_to_pyg, pyg_to_graph_list
from graphdiff.datasets.smiles_files import read_smiles_records
from graphdiff.datasets.splits import fraction_split, gdss_split, qm9_split, spectre_split
from graphdiff.datasets.user_files import from_pyg, load_graph_file, load_smiles_file, open_dataset
from graphdiff.info import DatasetInfo
from graphdiff.storage import GraphList

__all__ = [
    "DatasetInfo",
    "GraphDataModule",
    "GraphDataset",
    "GraphList",
    "available_datasets",
    "fraction_split",
    "from_pyg",
    "gdss_split",
    "graph_list_to_pyg",
    "load_dataset",
    "load_graph_file",
    "load_smiles_file",
    "open_dataset",
    "pyg_to_graph_list",
    "qm9_split",
    "read_graph_file",
    "read_smiles_records",
    "register",
    "spectre_split",
]


def __getattr__(name: str) -> Any:
    """:class:`GraphDataModule`, imported on first use: its module imports Lightning, which takes seconds."""
    if name == "GraphDataModule":
        from graphdiff.datasets.datamodule import GraphDataModule

        return GraphDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
