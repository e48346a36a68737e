"""Write generated graphs to files: ``.smi``, ``.sdf``, ``.npz``, ``.json``, ``.graphml``.

Every writer is atomic (a temporary file moved into place), so an interrupted run never leaves a
half-written output. The formats:

* ``.smi`` / ``.txt`` (molecules): one SMILES a line, in sample order; a graph RDKit cannot sanitise is
  an **empty line**, so line ``k`` is always sample ``k``. Disconnected molecules keep all fragments
  (``.``-separated); metrics decide what to do with them.
* ``.sdf`` (molecules): one record per sample; an invalid one is an empty molecule titled ``invalid``.
* ``.npz``: one square ``int8`` matrix per graph, ``graph_00000``, ``graph_00001``, ...; entry = edge class
  (0 = no edge, 1.. as in the dataset's edge types). Node types are not stored (use ``.json``).
* ``.json``: a list of ``{"num_nodes", "edges": [[u, v], ...], "node_types": [...], "edge_types": [...]}``
  with type *names*: the format graphdiff reads as a graph dataset.
* ``.graphml``: one ``<graph>`` per sample, node and edge attribute ``type`` (the type name).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import networkx as nx
import numpy as np

from graphdiff.chem import graphs_to_mols
from graphdiff.errors import ConfigError
from graphdiff.graph import graphs_to_networkx
from graphdiff.info import DatasetInfo
from graphdiff.io import atomic_write
from graphdiff.storage import GraphList

MOLECULE_SUFFIXES = (".smi", ".txt", ".sdf")
GRAPH_SUFFIXES = (".npz", ".json", ".graphml")
SAMPLE_SUFFIXES = MOLECULE_SUFFIXES + GRAPH_SUFFIXES


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def check_sample_suffix(path: str | os.PathLike, info: DatasetInfo) -> None:
    """Refuse, before sampling, an output type :func:`write_samples` cannot write for ``info``'s kind of data.

    Raises:
        ConfigError: an unknown suffix, or a molecule format for graphs.
    """
    suffix = _suffix(Path(path))
    if suffix not in MOLECULE_SUFFIXES + GRAPH_SUFFIXES:
        raise ConfigError(f"{path}: unknown output type {suffix or '(none)'}; use one of "
                          f"{', '.join(MOLECULE_SUFFIXES + GRAPH_SUFFIXES)}")
    if suffix in MOLECULE_SUFFIXES and info.kind != "molecule":
        raise ConfigError(f"{path}: {suffix} holds molecules but the model generates graphs ({info.name}); "
                          f"use one of {', '.join(GRAPH_SUFFIXES)}")


def write_samples(path: str | os.PathLike, graphs: GraphList, info: DatasetInfo,
                  decoding: str | None = None) -> dict[str, int]:
    """Write ``graphs`` to ``path`` in the format its suffix names (molecules made with ``decoding``, see
    :func:`graphdiff.chem.graphs_to_mols`).

    Returns:
        ``{"written": N, "invalid": K}`` (``invalid`` counts molecules RDKit rejected).
    """
    path = Path(path)
    check_sample_suffix(path, info)
    suffix = _suffix(path)
    if suffix in MOLECULE_SUFFIXES:
        mols = graphs_to_mols(graphs, info, decoding)
        invalid = sum(m is None for m in mols)
        if suffix == ".sdf":
            _write_sdf(path, mols)
        else:
            from graphdiff.chem import canonical_smiles

            lines = [canonical_smiles(m) or "" if m is not None else "" for m in mols]
            with atomic_write(path, "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
        return {"written": len(mols), "invalid": invalid}
    if suffix == ".npz":
        arrays = {}
        for k, (x, ei, et) in enumerate(graphs):
            A = np.zeros((x.numel(), x.numel()), dtype=np.int8)
            A[ei[0].numpy(), ei[1].numpy()] = et.numpy()
            arrays[f"graph_{k:05d}"] = A + A.T
        with atomic_write(path, "wb") as f:
            np.savez_compressed(f, **arrays)
    elif suffix == ".json":
        records = [
            {
                "num_nodes": int(x.numel()),
                "edges": ei.T.tolist(),
                "node_types": [info.node_types[c] for c in x.tolist()],
                "edge_types": [info.edge_types[c] for c in et.tolist()],
            }
            for x, ei, et in graphs
        ]
        with atomic_write(path, "w", encoding="utf-8") as f:
            json.dump(records, f)
    elif suffix == ".graphml":
        writer = nx.readwrite.graphml.GraphMLWriter()
        for k, g in enumerate(graphs_to_networkx(graphs, info)):
            g.graph["id"] = f"g{k}"
            writer.add_graph_element(g)
        buffer = io.BytesIO()
        writer.dump(buffer)
        with atomic_write(path, "wb") as f:
            f.write(buffer.getvalue())
    return {"written": len(graphs), "invalid": 0}


def _write_sdf(path: Path, mols: list) -> None:
    from rdkit import Chem

    buffer = io.StringIO()
    writer = Chem.SDWriter(buffer)
    for k, mol in enumerate(mols):
        if mol is None:
            mol = Chem.Mol()
            mol.SetProp("_Name", "invalid")
        else:
            mol = Chem.Mol(mol)
            mol.SetProp("_Name", f"sample_{k}")
        writer.write(mol)
    writer.close()
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(buffer.getvalue())
