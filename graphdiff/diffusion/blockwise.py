"""PARD's block-wise discrete diffusion: each block's conditional, given the blocks before it, is a small
:class:`~graphdiff.diffusion.DiscreteDiffusion` shared by all blocks; blocks are generated one after another.

Training (:class:`BlockwiseDiffusion`): the target nodes and target pairs of a layout (:mod:`.blocks`) are noised
to ``x_t ~ q(x_t | x_0)`` at one time ``t ~ U{1..T}`` per graph, everything else stays clean, and the network
predicts the clean classes of the targets. PARD's loss per graph (``pard/diffusion.py``, USD3's discrete-time
loss) is

.. code-block:: text

    L = sum over target nodes and pairs of  KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))  +  w * CE(x_0, p(x_0 | x_t))

(``w`` = ``ce_weight``, PARD's ``diffusion.ce_coeff``; at ``t = 1`` the KL is the cross-entropy), averaged over
graphs; ``loss: ce`` trains DiGress's cross-entropy instead. The block head adds the cross-entropy of every next
block's size (0 after the last block) and degree, and of the first block's degree.

Sampling (:class:`PardGraphSampler`): draw the first block's size from the training distribution and its degree from
the network; denoise the block with ``steps`` reverse steps of the shared diffusion (nodes of earlier blocks
clean); predict the next block's size (0: stop) and degree; repeat.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphdiff.diffusion.process import DiscreteDiffusion
from graphdiff.diffusion.sampler import check_steps, time_grid
from graphdiff.errors import ConfigError
from graphdiff.generation import GraphSampler, SamplerConfig, sample_categorical
from graphdiff.types import BlockLayout, DenseGraph

#: losses of the block diffusion: PARD's (variational bound + weighted cross-entropy) or DiGress's cross-entropy.
BLOCK_LOSSES = ("pard", "ce")


class BlockwiseDiffusion:
    """The shared diffusion of PARD's blocks, on the target parts of a :class:`~graphdiff.types.BlockLayout`.

    Args:
        process: the discrete diffusion every block uses (schedule and transition).
    """

    def __init__(self, process: DiscreteDiffusion) -> None:
        self.process = process
        self.T = process.T

    def sample_timesteps(self, batch_size: int, device: torch.device | str,
                         generator: torch.Generator | None = None) -> Tensor:
        """``[B]`` times ``t ~ U{1..T}`` (PARD's training times)."""
        return torch.randint(1, self.T + 1, (batch_size,), device=device, generator=generator)

    def add_noise(self, graph: DenseGraph, layout: BlockLayout, t: Tensor,
                  generator: torch.Generator | None = None) -> DenseGraph:
        """``graph`` with its target nodes and pairs drawn from ``q(x_t | x_0)``, the rest unchanged."""
        noisy = self.process.add_noise(graph, t, generator)
        return merge_targets(graph, noisy, layout)

    def loss(self, logits: DenseGraph, clean: DenseGraph, noisy: DenseGraph, layout: BlockLayout, t: Tensor,
             kind: str = "pard", ce_weight: float = 0.1, lambda_edge: float = 1.0) -> dict[str, Tensor]:
        """The training loss of the target parts.

        Args:
            logits: the network's ``X [B, n, dx]``, ``E [B, n, n, de]`` logits.
            clean, noisy: the layout's graph before and after :meth:`add_noise`.
            layout: which nodes and pairs are targets.
            t: ``[B]`` times of the noise.
            kind: ``"pard"`` (per-graph sums of ``KL + ce_weight * CE``, averaged over graphs) or ``"ce"``
                (DiGress: mean node cross-entropy + ``lambda_edge`` x mean pair cross-entropy).

        Returns:
            ``{"loss", "X", "E"}`` (``X``/``E``: the node and pair parts, per graph for ``pard``).
        """
        if kind not in BLOCK_LOSSES:
            raise ConfigError(f"model.loss={kind!r}: choose one of {', '.join(BLOCK_LOSSES)}")
        nodes = layout.target
        pairs = torch.triu(layout.target_pairs(), diagonal=1)  # each generated pair once
        logp_X = F.log_softmax(logits.X.float(), -1)
        logp_E = F.log_softmax(logits.E.float(), -1)
        ce_X = -(clean.X.float() * logp_X).sum(-1)
        ce_E = -(clean.E.float() * logp_E).sum(-1)
        B = clean.batch_size
        if kind == "ce":
            loss_X = ce_X[nodes].mean() if bool(nodes.any()) else ce_X.sum() * 0
            loss_E = ce_E[pairs].mean() if bool(pairs.any()) else ce_E.sum() * 0
            return {"loss": loss_X + lambda_edge * loss_E, "X": loss_X, "E": loss_E}
        pred = DenseGraph(logp_X.exp(), logp_E.exp(), noisy.y, noisy.node_mask)
        true = self.process.posterior(noisy, clean, t - 1, t)
        model = self.process.posterior_marginalised(noisy, pred, t - 1, t)
        kl_X = _kl(true.X, model.X)
        kl_E = _kl(true.E, model.E)
        loss_X = ((kl_X + ce_weight * ce_X) * nodes).sum() / B
        loss_E = ((kl_E + ce_weight * ce_E) * pairs).sum() / B
        return {"loss": loss_X + lambda_edge * loss_E, "X": loss_X, "E": loss_E}


def block_head_loss(size_logits: Tensor, degree_logits: Tensor, first_degree_logits: Tensor,
                    layout: BlockLayout, first_size_logits: Tensor | None = None) -> dict[str, Tensor]:
    """Cross-entropy of the block head: for every block ``k`` of every graph, the size of block ``k + 1`` (0 after
    the last) and its degree; and the first block's degree (and size, for a conditional model). Per-graph sums
    averaged over graphs (PARD).

    Args:
        size_logits, degree_logits: ``[B, K, C]`` from the clean blocks ``0..k``.
        first_degree_logits: ``[B, C]``.
        layout: the blocks (``size`` and ``degree`` ``[B, K]``).
        first_size_logits: ``[B, C]`` logits of the first block's size given the condition, or ``None``.
    """
    blocks = layout.size > 0
    next_size = F.pad(layout.size[:, 1:], (0, 1))
    next_degree = F.pad(layout.degree[:, 1:], (0, 1))
    size_ce = F.cross_entropy(size_logits[blocks], next_size[blocks], reduction="sum")
    degree_ce = F.cross_entropy(degree_logits[blocks], next_degree[blocks], reduction="sum")
    first = F.cross_entropy(first_degree_logits, layout.degree[:, 0], reduction="sum")
    if first_size_logits is not None:
        first = first + F.cross_entropy(first_size_logits, layout.size[:, 0], reduction="sum")
    B = layout.size.shape[0]
    accuracy = (size_logits[blocks].argmax(-1) == next_size[blocks]).float().mean()
    return {"loss": (size_ce + degree_ce + first) / B, "size_accuracy": accuracy}


def merge_targets(base: DenseGraph, update: DenseGraph, layout: BlockLayout) -> DenseGraph:
    """``base`` with its target nodes and pairs taken from ``update``."""
    nodes = layout.target.unsqueeze(-1)
    pairs = layout.target_pairs().unsqueeze(-1)
    return DenseGraph(torch.where(nodes, update.X, base.X), torch.where(pairs, update.E, base.E), base.y,
                      base.node_mask)


def _kl(p: Tensor, q: Tensor) -> Tensor:
    """``KL(p || q)`` over the last axis (0 where ``p`` is 0)."""
    tiny = torch.finfo(q.dtype).tiny
    p = p.float()
    return (p * (torch.log(p.clamp(min=tiny)) - torch.log(q.float().clamp(min=tiny)))).sum(-1)


# ---------------------------------------------------------------------------------------------------------------
# sampling


@dataclass
class PardSamplerConfig(SamplerConfig):
    """Sampler settings of the PARD family.

    Attributes:
        steps: reverse diffusion steps per block, ``1..T`` (``None``: ``T``).
        fixed_size: make every graph exactly as large as asked (the next block's size is drawn among the sizes
            that fit, and the graph stops when full); ``False``: PARD's sampler, the block head decides when a
            graph is complete (at most the largest training graph).
    """

    family = "pard"
    steps_field = "steps"

    steps: int | None = None
    fixed_size: bool = False

    def __post_init__(self) -> None:
        check_steps(self.steps)
        if not isinstance(self.fixed_size, bool):
            raise ConfigError(f"sampler: fixed_size must be true or false, got {self.fixed_size!r}")


@dataclass
class PardState:
    """A batch of graphs being generated block by block.

    Attributes:
        graph: ``[B, N, ...]`` one-hot (``N`` = the largest graph allowed); nodes ``0..count`` in use.
        layout: their blocks; the target nodes are the block being denoised.
        count: ``[B]`` nodes of finished blocks.
        limit: ``[B]`` nodes allowed (the size asked for with ``fixed_size``).
        finished: ``[B]`` graphs that are complete.
    """

    graph: DenseGraph
    layout: BlockLayout
    count: Tensor
    limit: Tensor
    finished: Tensor


class PardGraphSampler(GraphSampler):
    """PARD's block-by-block generation as a :class:`~graphdiff.generation.GraphSampler`.

    Step ``k`` is reverse step ``k mod steps`` of block ``k // steps``; a block's first step first draws its size
    and degree from the block head. There are ``max_nodes * steps`` steps (no graph has more blocks than nodes);
    once every graph of the batch is complete the remaining steps do nothing.

    Args:
        process: the shared block diffusion.
        denoiser: a :class:`~graphdiff.models.pard.PardNetwork` with its denoising head.
        block_model: a :class:`~graphdiff.models.pard.PardNetwork` with its block head (may be ``denoiser``).
        first_size: ``[max_nodes + 1]`` distribution of the first block's size.
        max_nodes: the largest graph.
        steps: reverse steps per block (default ``T``).
        fixed_size: see :class:`PardSamplerConfig`.
        causal: run the denoiser causally (``False`` for a model trained in batched sequential mode).
    """

    def __init__(self, process: BlockwiseDiffusion, denoiser: nn.Module, block_model: nn.Module,
                 first_size: Tensor, max_nodes: int, steps: int | None = None, fixed_size: bool = False,
                 causal: bool = True) -> None:
        self.process = process
        self.denoiser = denoiser
        self.block_model = block_model
        self.first_size = first_size
        self.max_nodes = max_nodes
        self.grid = time_grid(process.T, steps)
        self.fixed_size = fixed_size
        self.causal = causal

    @property
    def steps_per_block(self) -> int:
        return len(self.grid) - 1

    @property
    def num_steps(self) -> int:
        return self.max_nodes * self.steps_per_block

    def label(self, k: int) -> str:
        if k >= self.num_steps:
            return "sample"
        if k % self.steps_per_block:
            return f"step {k}"
        blocks = k // self.steps_per_block
        return f"{blocks} block{'s' * (blocks != 1)}"

    def frame_steps(self, frames: int) -> list[int]:
        """Snapshots at the ends of the first ``frames - 1`` blocks, and the sample."""
        if frames <= 0:
            return []
        ends = [b * self.steps_per_block for b in range(1, frames)]
        return sorted({k for k in ends if k < self.num_steps} | {self.num_steps})

    # -- the chain -------------------------------------------------------------------------------------------
    def prior(self, node_mask: Tensor, generator: torch.Generator | None = None,
              condition: Tensor | None = None) -> PardState:
        B, device = node_mask.shape[0], node_mask.device
        limit = node_mask.sum(-1) if self.fixed_size else torch.full((B,), self.max_nodes, device=device)
        N = int(limit.max())
        dx, de = self.process.process.dx, self.process.process.de
        y = condition.to(device) if condition is not None else torch.zeros(B, 0, device=device)
        graph = DenseGraph(torch.zeros(B, N, dx, device=device), torch.zeros(B, N, N, de, device=device), y,
                           torch.zeros(B, N, dtype=torch.bool, device=device))
        layout = BlockLayout(torch.full((B, N), -1, dtype=torch.long, device=device),
                             torch.zeros(B, N, dtype=torch.bool, device=device),
                             torch.zeros(B, N, dtype=torch.long, device=device),
                             torch.zeros(B, N, dtype=torch.long, device=device))
        state = PardState(graph, layout, torch.zeros(B, dtype=torch.long, device=device), limit,
                          torch.zeros(B, dtype=torch.bool, device=device))
        if condition is not None and getattr(self.block_model, "first_size_head", None) is not None:
            probs = torch.softmax(self.block_model.first_size_logits(y).float(), -1)
        else:
            probs = self.first_size.to(device).float().expand(B, -1)
        size = sample_categorical(self._allowed(probs, state, first=True), generator)
        degree = sample_categorical(torch.softmax(self.block_model.first_degree_logits(size).float(), -1),
                                    generator)
        return self._open_block(state, size, degree, 0, generator)

    def step(self, state: PardState, k: int, generator: torch.Generator | None = None) -> PardState:
        if bool(state.finished.all()):
            return state
        block, i = divmod(k, self.steps_per_block)
        if i == 0 and block > 0:
            state = self._next_block(state, block, generator)
            if bool(state.finished.all()):
                return state
        n = max(int((state.count + state.layout.target.sum(-1)).max()), 1)  # nodes in use
        graph, layout = _slice(state.graph, n), _slice_layout(state.layout, n)
        B, device = graph.batch_size, graph.X.device
        t = torch.full((B,), self.grid[i], dtype=torch.long, device=device)
        s = torch.full((B,), self.grid[i + 1], dtype=torch.long, device=device)
        out = self.denoiser(graph, t.float() / self.process.T, layout, causal=self.causal)
        pred = DenseGraph(torch.softmax(out.logits.X.float(), -1), torch.softmax(out.logits.E.float(), -1),
                          graph.y, graph.node_mask)
        noisy = DenseGraph(graph.X.float(), graph.E.float(), graph.y, graph.node_mask)
        stepped = self.process.process.step(pred, noisy, s, t, generator)
        merged = merge_targets(graph, stepped, layout)
        state = self._write(state, merged, n)
        if i == self.steps_per_block - 1:  # the block is clean: it joins the graph
            target = state.layout.target
            state.count = state.count + target.sum(-1)
            state.layout = BlockLayout(state.layout.block, torch.zeros_like(target), state.layout.degree,
                                       state.layout.size)
        return state

    def decode(self, state: PardState, final: bool = False) -> DenseGraph:
        clean = state.graph.node_mask & ~state.layout.target
        return DenseGraph(state.graph.X, state.graph.E, state.graph.y, clean).mask()

    # -- blocks ---------------------------------------------------------------------------------------------
    def _allowed(self, probs: Tensor, state: PardState, first: bool = False) -> Tensor:
        """``probs [B, max_nodes + 1]`` of the next block's size restricted to the sizes that fit: at most the
        room left; with ``fixed_size`` no stop before the graph is full; nothing but a stop once it is full. A
        graph whose model puts no mass on any allowed size draws uniformly among them."""
        room = (state.limit - state.count).unsqueeze(1)
        sizes = torch.arange(probs.shape[1], device=probs.device).unsqueeze(0)
        ok = sizes <= room
        if first or self.fixed_size:
            ok = ok & ((sizes > 0) | (room == 0))
        probs = probs * ok
        empty = probs.sum(-1, keepdim=True) <= 0
        return torch.where(empty, ok.to(probs.dtype), probs)

    def _next_block(self, state: PardState, block: int, generator: torch.Generator | None) -> PardState:
        n = max(int(state.count.max()), 1)
        graph, layout = _slice(state.graph, n), _slice_layout(state.layout, n)
        row = self.block_model.block_summary(graph, layout)[:, block - 1]  # [B, H]: blocks 0..block-1
        probs = torch.softmax(self.block_model.size_logits(row).float(), -1)
        size = sample_categorical(self._allowed(probs, state), generator)
        size = torch.where(state.finished, 0, size)
        degree = sample_categorical(torch.softmax(self.block_model.degree_logits(row, size).float(), -1),
                                    generator)
        state.finished = state.finished | (size == 0)
        return self._open_block(state, size, degree, block, generator)

    def _open_block(self, state: PardState, size: Tensor, degree: Tensor, block: int,
                    generator: torch.Generator | None) -> PardState:
        """Add ``size [B]`` target nodes as block ``block`` with degree ``degree [B]``, drawn from the prior."""
        B, N = state.layout.block.shape
        device = size.device
        pos = torch.arange(N, device=device).unsqueeze(0)
        new = (pos >= state.count.unsqueeze(1)) & (pos < (state.count + size).unsqueeze(1))
        lay = state.layout
        if block >= lay.size.shape[1]:
            return state
        block_ids = lay.block.masked_fill(new, block)
        sizes, degrees = lay.size.clone(), lay.degree.clone()
        sizes[:, block] = size
        degrees[:, block] = torch.where(size > 0, degree, 0)
        layout = BlockLayout(block_ids, new, degrees, sizes)
        node_mask = state.graph.node_mask | new
        noise = self.process.process.prior(node_mask, generator)
        graph = merge_targets(DenseGraph(state.graph.X, state.graph.E, state.graph.y, node_mask), noise, layout)
        return PardState(graph, layout, state.count, state.limit, state.finished)

    @staticmethod
    def _write(state: PardState, part: DenseGraph, n: int) -> PardState:
        """Write the first ``n`` nodes in place (the state is the sampler's own; snapshots are masked copies)."""
        state.graph.X[:, :n] = part.X.to(state.graph.X.dtype)
        state.graph.E[:, :n, :n] = part.E.to(state.graph.E.dtype)
        return state


def _slice(graph: DenseGraph, n: int) -> DenseGraph:
    return DenseGraph(graph.X[:, :n], graph.E[:, :n, :n], graph.y, graph.node_mask[:, :n])


def _slice_layout(layout: BlockLayout, n: int) -> BlockLayout:
    return BlockLayout(layout.block[:, :n], layout.target[:, :n], layout.degree, layout.size)
