"""Pictures: a PNG grid of generated molecules or graphs, and a strip of the denoising chain."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import networkx as nx
import torch

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


def _save_figure(fig, path: str | os.PathLike) -> None:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    with atomic_write(path, "wb") as f:
        f.write(buffer.getvalue())


def _draw_graph(ax, g: nx.Graph, title: str | None = None) -> None:
    if g.number_of_nodes() == 0:
        return
    pos = nx.kamada_kawai_layout(g) if nx.is_connected(g) and g.number_of_nodes() < 200 else nx.spring_layout(g, seed=0)
    nx.draw_networkx(g, pos, ax=ax, node_size=18, with_labels=False, width=0.6, node_color="#3b6ea8",
                     edge_color="#555555")
    if title:
        ax.set_title(title, fontsize=7)


def draw_samples(graphs: GraphList, info: DatasetInfo, path: str | os.PathLike, max_items: int = 24,
                 columns: int = 6) -> Path:
    """Write a PNG grid of the first ``max_items`` graphs (molecules drawn by RDKit)."""
    count = min(max_items, len(graphs))
    subset = graphs.subset(range(count))
    if info.kind == "molecule":
        from rdkit.Chem import Draw

        from graphdiff.chem import graphs_to_mols

        mols = graphs_to_mols(subset, info)
        from rdkit import Chem

        shown = [m if m is not None else Chem.Mol() for m in mols]
        legends = ["" if m is not None else "invalid" for m in mols]
        image = Draw.MolsToGridImage(shown, molsPerRow=columns, subImgSize=(220, 180), legends=legends)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        with atomic_write(path, "wb") as f:
            f.write(buffer.getvalue())
        return Path(path)
    from graphdiff.graph import graphs_to_networkx

    fig, axes = _figure_grid(count, min(columns, max(count, 1)))
    for ax, g in zip(axes, graphs_to_networkx(subset, info)):
        _draw_graph(ax, g)
    _save_figure(fig, path)
    return Path(path)


def draw_chain(model, path: str | os.PathLike, seed: int = 0, steps: int | None = None,
               num_nodes: int | None = None, frames: int = 8) -> Path:
    """Write a PNG strip of ``frames`` snapshots of one reverse chain, from noise (left) to the sample."""
    from graphdiff.graph import graphs_to_networkx
    from graphdiff.sampling import sample, sample_num_nodes
    from graphdiff.storage import GraphList as _GraphList

    gen = torch.Generator().manual_seed(seed)
    if num_nodes is None:
        counts = sample_num_nodes(model.node_count_dist.cpu(), 1, gen)
    else:
        counts = torch.tensor([num_nodes])
    device = next(model.parameters()).device
    model.eval()
    result = sample(model.denoiser, model.process, counts.to(device), steps=steps,
                    generator=torch.Generator(device=device).manual_seed(seed), snapshots=frames)
    fig, axes = _figure_grid(len(result.chain), len(result.chain))
    info = model.info
    for ax, (t, g) in zip(axes, result.chain):
        nxg = graphs_to_networkx(_GraphList.from_dense(g.argmax().to("cpu")), info)[0]
        _draw_graph(ax, nxg, title=f"t = {t}")
    _save_figure(fig, path)
    return Path(path)
