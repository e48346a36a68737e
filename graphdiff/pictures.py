"""Pictures: a PNG grid of generated molecules or graphs, and a strip of the denoising chain."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any

import networkx as nx

from graphdiff.chem import graphs_to_mols
from graphdiff.graph import graphs_to_networkx
from graphdiff.info import DatasetInfo
from graphdiff.io import atomic_write
from graphdiff.storage import GraphList

#: What pictures are written as.
IMAGE_SUFFIXES = (".png",)


def _figure_grid(count: int, columns: int, size: float = 2.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(1, math.ceil(count / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * size, rows * size), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes.flat


def _figure_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


_PALETTE = ("#3b6ea8", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d6a9f", "#2e4057", "#c2847a")


def _draw_graph(ax, g: nx.Graph, node_types: list[str], title: str | None = None) -> None:
    """Draw ``g`` on ``ax``; nodes coloured by their ``type`` attribute when there is more than one node type."""
    if title:
        ax.set_title(title, fontsize=7)
    if g.number_of_nodes() == 0:
        return
    pos = nx.kamada_kawai_layout(g) if nx.is_connected(g) and g.number_of_nodes() < 200 else nx.spring_layout(g, seed=0)
    index = {name: k for k, name in enumerate(node_types)}
    colors = [_PALETTE[index.get(d.get("type"), 0) % len(_PALETTE)] for _, d in g.nodes(data=True)]
    nx.draw_networkx(g, pos, ax=ax, node_size=18, with_labels=False, width=0.6, node_color=colors,
                     edge_color="#555555")


def samples_png(graphs: GraphList, info: DatasetInfo, max_items: int = 24, columns: int = 6) -> bytes:
    """PNG bytes of a grid of the first ``max_items`` graphs (molecules drawn by RDKit, invalid ones labelled)."""
    count = min(max_items, len(graphs))
    subset = graphs.subset(range(count))
    if info.kind == "molecule":
        from rdkit import Chem
        from rdkit.Chem import Draw

        mols = graphs_to_mols(subset, info)
        shown = [m if m is not None else Chem.Mol() for m in mols]
        legends = ["" if m is not None else "invalid" for m in mols]
        image = Draw.MolsToGridImage(shown, molsPerRow=columns, subImgSize=(220, 180), legends=legends)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    fig, axes = _figure_grid(count, min(columns, max(count, 1)))
    for ax, g in zip(axes, graphs_to_networkx(subset, info)):
        _draw_graph(ax, g, info.node_types)
    return _figure_png(fig)


def chain_png(chain: list[tuple[str, GraphList]], info: DatasetInfo) -> bytes:
    """PNG bytes of a strip of one chain's snapshots ``[(caption, GraphList of one graph)]``, noise (left) to sample.

    Graphs are drawn as graphs (molecules too: intermediate states are rarely valid molecules), nodes coloured by
    type.
    """
    fig, axes = _figure_grid(len(chain), len(chain))
    for ax, (caption, frame) in zip(axes, chain):
        _draw_graph(ax, graphs_to_networkx(frame.subset([0]), info)[0], info.node_types, title=caption)
    return _figure_png(fig)


def draw_samples(graphs: GraphList, info: DatasetInfo, path: str | os.PathLike, max_items: int = 24,
                 columns: int = 6) -> Path:
    """Write a PNG grid of the first ``max_items`` graphs (molecules drawn by RDKit)."""
    png = samples_png(graphs, info, max_items, columns)
    with atomic_write(path, "wb") as f:
        f.write(png)
    return Path(path)


def draw_chain(model, path: str | os.PathLike, seed: int = 0, steps: int | None = None,
               num_nodes: int | None = None, frames: int = 8, condition: dict[str, float] | None = None,
               guidance: float | dict[str, float] | None = None, **steering: Any) -> Path:
    """Write a PNG strip of ``frames`` snapshots of one reverse chain of ``model`` (any family), noise to sample.

    Args:
        model: a :class:`~graphdiff.lit.GenerativeModel`.
        path: the PNG file.
        seed, steps, num_nodes, condition, guidance: as :meth:`~graphdiff.lit.GenerativeModel.generate`.
        steering: ``regressor`` and ``regressor_scale`` of a regressor-guided chain (as ``generate``).
        frames: snapshots, evenly spaced over the chain.
    """
    result = model.generate_with_chain(1, frames=frames, steps=steps, seed=seed, num_nodes=num_nodes,
                                       condition=condition, guidance=guidance, **steering)
    png = chain_png(result.chain, model.info)
    with atomic_write(path, "wb") as f:
        f.write(png)
    return Path(path)
