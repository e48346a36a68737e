"""Reverse-diffusion sampling loops: node counts, strided time grids, chunking, snapshots.

The loop is deliberately thin (noise -> model -> posterior -> sample): the process object owns the
math (:meth:`~graphdiff.diffusion.DiscreteDiffusion.prior` and
:meth:`~graphdiff.diffusion.DiscreteDiffusion.step`), the denoiser owns the network.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch
from torch import Tensor

from graphdiff.errors import ConfigError
from graphdiff.storage import GraphList
from graphdiff.types import DenseGraph


@dataclass
class SampleResult:
    """Generated graphs and, optionally, snapshots of the chain.

    Attributes:
        graphs: one-hot :class:`DenseGraph` ``[B, n, ...]``.
        chain: snapshots ``[(t, DenseGraph)]`` from noise to data (empty unless asked for).
    """

    graphs: DenseGraph
    chain: list[tuple[int, DenseGraph]] = field(default_factory=list)


def time_grid(T: int, steps: int | None = None) -> list[int]:
    """Decreasing integer times ``T = t_0 > t_1 > ... > t_K = 0`` with ``K = steps`` (default ``T``).

    Strided sampling uses the exact skip-step posterior between consecutive grid points.
    """
    steps = T if steps is None else int(steps)
    if not 1 <= steps <= T:
        raise ConfigError(f"steps must be between 1 and T={T}, got {steps}")
    grid = torch.linspace(T, 0, steps + 1).round().long().tolist()
    return grid


def sample_num_nodes(distribution: Tensor, count: int, generator: torch.Generator | None = None) -> Tensor:
    """Draw ``count`` node counts from ``distribution`` ``[max_n + 1]`` (probability of each size)."""
    return torch.multinomial(distribution.float(), count, replacement=True, generator=generator)


def node_mask_from_counts(num_nodes: Tensor, device: torch.device | str | None = None) -> Tensor:
    """``[B, max(num_nodes)]`` bool mask of real nodes."""
    n = int(num_nodes.max())
    return torch.arange(n, device=device).unsqueeze(0) < num_nodes.to(device).unsqueeze(1)


@torch.no_grad()
def sample(
    denoiser: torch.nn.Module,
    process,
    num_nodes: Tensor,
    steps: int | None = None,
    generator: torch.Generator | None = None,
    snapshots: int = 0,
    progress: bool = False,
) -> SampleResult:
    """Run the reverse chain for one batch.

    Args:
        denoiser: maps ``(noisy DenseGraph, t [B] in [0, 1])`` to logits of the clean graph.
        process: a :class:`~graphdiff.diffusion.DiscreteDiffusion`.
        num_nodes: ``[B]`` node count of each graph to generate.
        steps: number of reverse steps (``<= T``; default ``T``).
        generator: random source for reproducible sampling (on the denoiser's device).
        snapshots: keep this many evenly spaced snapshots of the chain (0 = none).
        progress: show a progress bar.
    """
    device = _device_of(denoiser)
    T = process.T
    grid = time_grid(T, steps)
    node_mask = node_mask_from_counts(num_nodes, device)
    graph = process.prior(node_mask, generator=generator)
    keep = _snapshot_times(grid, snapshots)
    chain = [(T, graph)] if T in keep else []
    B = num_nodes.numel()
    pairs = list(zip(grid[:-1], grid[1:]))
    iterator = pairs
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(pairs, desc="sampling", unit="step", leave=False)
    for t, s in iterator:
        t_vec = torch.full((B,), t, dtype=torch.long, device=device)
        s_vec = torch.full((B,), s, dtype=torch.long, device=device)
        logits = denoiser(graph, t_vec.float() / T)
        pred = DenseGraph(logits.X.softmax(-1), logits.E.softmax(-1), logits.y, node_mask)
        graph = process.step(pred, graph, s_vec, t_vec, generator=generator)
        if s in keep:
            chain.append((s, graph))
    return SampleResult(graph.argmax(), chain)


def sample_many(
    denoiser: torch.nn.Module,
    process,
    num_nodes: Tensor,
    batch_size: int = 64,
    steps: int | None = None,
    seed: int | None = None,
    progress: bool = False,
) -> GraphList:
    """Sample ``len(num_nodes)`` graphs in chunks of ``batch_size``; reproducible for a given seed and batch size.

    Chunks are sorted by size so padding stays small; the output order follows ``num_nodes``.
    """
    device = _device_of(denoiser)
    generator = None
    if seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)
    order = torch.argsort(num_nodes, descending=True, stable=True)
    chunks = list(order.split(batch_size))
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="sampling", unit="batch")
    parts = [GraphList.from_dense(sample(denoiser, process, num_nodes[c], steps, generator).graphs.to("cpu"))
             for c in chunks]
    return GraphList.concat(parts).subset(torch.argsort(order))


def _device_of(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (CPU for a module without any)."""
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        return tensor.device
    return torch.device("cpu")


def _snapshot_times(grid: list[int], snapshots: int) -> set[int]:
    if snapshots <= 0:
        return set()
    picks = torch.linspace(0, len(grid) - 1, min(snapshots, len(grid))).round().long().tolist()
    return {grid[i] for i in picks}
