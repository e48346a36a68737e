"""One generation contract for every model family, and the one loop that runs it.

A model family is a *process* (its noise and reverse step), a *network* and a *decoder* to graphs. For sampling,
a family hands :func:`generate` a :class:`GraphSampler`: the reverse process with the network bound, stepped one
step at a time so that any family's chain can be recorded and pictured:

.. code-block:: text

    state = sampler.prior(node_mask)                 # noise, for the node counts asked for
    for k in range(sampler.num_steps):
        state = sampler.step(state, k)               # one reverse step (one or a few network calls)
    graph = sampler.decode(state, final=True)        # a one-hot DenseGraph

:func:`generate` does everything around that, the same for every family: node counts sorted into batches of
similar sizes (less padding), a progress bar, seeds, snapshots of the chain, decoding into a compact
:class:`~graphdiff.storage.GraphList` in the order asked for. Its settings are a :class:`SamplerConfig`, a
serialisable dataclass per family that a pipeline can swap (as a diffusers scheduler is swapped on a pipeline).
"""

from __future__ import annotations

import abc
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from graphdiff.errors import ConfigError
from graphdiff.log import progress as progress_bar
from graphdiff.storage import GraphList
from graphdiff.types import DenseGraph, mask_features, symmetrize_upper


class GraphSampler(abc.ABC):
    """A family's reverse process with its network bound, for one batch of graphs at a time."""

    @property
    @abc.abstractmethod
    def num_steps(self) -> int:
        """Reverse steps from the prior to the sample."""

    @abc.abstractmethod
    def prior(self, node_mask: Tensor, generator: torch.Generator | None = None,
              condition: Tensor | None = None) -> Any:
        """The initial state for ``node_mask [B, n]`` (bool): noise drawn from the family's prior; a conditional
        model's encoded condition ``[B, C]`` (:mod:`graphdiff.conditioning`) stays with the state for every step."""

    @abc.abstractmethod
    def step(self, state: Any, k: int, generator: torch.Generator | None = None) -> Any:
        """The state after reverse step ``k`` (``0 <= k < num_steps``)."""

    @abc.abstractmethod
    def decode(self, state: Any, final: bool = False) -> DenseGraph:
        """A one-hot :class:`DenseGraph` of the state: the sample when ``final``, else a snapshot of the chain
        (without the family's post-processing)."""

    def label(self, k: int) -> str:
        """A caption of the state after ``k`` steps (``k = 0``: the prior), for pictures of the chain."""
        return f"step {k}"

    def frame_steps(self, frames: int) -> list[int]:
        """The step counts at which a chain of ``frames`` pictures is recorded (default: evenly spaced)."""
        return snapshot_steps(self.num_steps, frames)


class SamplerConfig:
    """Base of the sampler settings of each family: dataclasses that serialise to and from plain dicts.

    Subclasses are ``@dataclass`` es with a ``family`` name and the field holding the number of reverse steps named
    by ``steps_field``; :meth:`from_dict` rebuilds any registered subclass from its dict.
    """

    family: ClassVar[str] = ""
    steps_field: ClassVar[str] = "steps"
    _by_family: ClassVar[dict[str, type[SamplerConfig]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.family:
            SamplerConfig._by_family[cls.family] = cls

    @property
    def steps(self) -> int | None:
        """Reverse steps (``None``: the family's default)."""
        return getattr(self, self.steps_field)

    def with_steps(self, steps: int | None) -> SamplerConfig:
        """A copy with ``steps`` reverse steps (``None`` keeps the current number)."""
        if steps is None:
            return self
        return dataclasses.replace(self, **{self.steps_field: steps})  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        """``{"family": ..., <fields>}``: JSON-ready."""
        return {"family": self.family, **dataclasses.asdict(self)}  # type: ignore[call-overload]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> SamplerConfig:
        """The settings a :meth:`to_dict` produced.

        Raises:
            ConfigError: an unknown family or setting.
        """
        if not isinstance(data, dict) or "family" not in data:
            raise ConfigError("sampler settings: expected a dict with a 'family' key")
        family = data["family"]
        cls = SamplerConfig._by_family.get(family)
        if cls is None:
            raise ConfigError(f"sampler settings: unknown family {family!r}; known: {sorted(SamplerConfig._by_family)}")
        values = {k: v for k, v in data.items() if k != "family"}
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"sampler settings of the {family} family: unknown {', '.join(unknown)}; "
                              f"valid: {', '.join(sorted(names))}")
        return cls(**values)


@dataclass
class Generation:
    """What :func:`generate` returns.

    Attributes:
        graphs: the samples, in the order of the node counts asked for.
        chain: snapshots ``[(caption, GraphList of all samples at that point)]`` from the prior to the samples
            (empty unless frames were asked for).
    """

    graphs: GraphList
    chain: list[tuple[str, GraphList]] = field(default_factory=list)


def sample_num_nodes(distribution: Tensor, count: int, generator: torch.Generator | None = None) -> Tensor:
    """Draw ``count`` node counts from ``distribution`` ``[max_n + 1]`` (probability of each size)."""
    return torch.multinomial(distribution.float(), count, replacement=True, generator=generator)


def node_mask_from_counts(num_nodes: Tensor, device: torch.device | str | None = None) -> Tensor:
    """``[B, max(num_nodes)]`` bool mask of real nodes."""
    n = int(num_nodes.max())
    return torch.arange(n, device=device).unsqueeze(0) < num_nodes.to(device).unsqueeze(1)


def snapshot_steps(num_steps: int, frames: int) -> list[int]:
    """``frames`` evenly spaced step counts in ``0..num_steps`` (0: the prior; ``num_steps``: the sample)."""
    if frames <= 0:
        return []
    picks = torch.linspace(0, num_steps, min(frames, num_steps + 1)).round().long().tolist()
    return sorted(set(picks))


def sample_categorical(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draw one class per row of ``probs`` by inverting the CDF (one uniform number per row).

    Rows need not be normalised; a zero-probability class is never drawn. All-zero rows give class 0.

    Args:
        probs: ``[..., d]`` non-negative weights.
        generator: optional random generator (on the device of ``probs``).

    Returns:
        ``[...]`` long class indices.
    """
    if not probs.dtype.is_floating_point:
        probs = probs.float()
    probs = probs.to(torch.promote_types(probs.dtype, torch.float32))  # half precision loses small weights
    # A scan along a small innermost axis is ~100x slower on CUDA than along the outermost one.
    cdf = probs.movedim(-1, 0).cumsum(0).movedim(0, -1)
    u = torch.rand(cdf.shape[:-1] + (1,), generator=generator, device=cdf.device, dtype=cdf.dtype)
    # (1 - u) lies in (0, 1], so the threshold is > 0 and a class with zero width cannot be hit.
    threshold = (1 - u) * cdf[..., -1:]
    return (cdf < threshold).sum(-1).clamp(max=probs.shape[-1] - 1)


def sample_graph(
    probs_X: Tensor,
    probs_E: Tensor,
    node_mask: Tensor,
    y: Tensor,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> DenseGraph:
    """Sample one-hot node classes and symmetric edge classes from per-position probabilities.

    Edges are drawn for every ordered pair, then the strict upper triangle is mirrored, so each undirected
    pair is drawn once from ``probs_E[:, i, j]`` with ``i < j``.

    Args:
        probs_X: ``[B, n, dx]``.
        probs_E: ``[B, n, n, de]``.
        node_mask: ``[B, n]`` bool.
        y: ``[B, dy]`` global features, copied to the result.
        generator: optional random generator.
        dtype: floating dtype of the returned one-hots.

    Returns:
        A masked one-hot :class:`DenseGraph`.
    """
    X = F.one_hot(sample_categorical(probs_X, generator), probs_X.shape[-1]).to(dtype)
    E = symmetrize_upper(sample_categorical(probs_E, generator))
    E = F.one_hot(E, probs_E.shape[-1]).to(dtype)
    X, E = mask_features(X, E, node_mask)
    return DenseGraph(X, E, y, node_mask)


def run_sampler(sampler: GraphSampler, node_mask: Tensor, generator: torch.Generator | None = None,
                frames: int = 0, condition: Tensor | None = None) -> tuple[DenseGraph, list[tuple[str, DenseGraph]]]:
    """Run one batch from the prior to the decoded sample (``condition [B, C]``: a conditional model's encoded
    condition).

    Returns:
        ``(one-hot DenseGraph [B, n, ...], [(caption, snapshot)] at the steps of :func:`snapshot_steps`)``.
    """
    keep = set(sampler.frame_steps(frames))
    chain: list[tuple[str, DenseGraph]] = []
    with torch.no_grad():
        state = sampler.prior(node_mask, generator) if condition is None else sampler.prior(node_mask, generator,
                                                                                            condition)
        for k in range(sampler.num_steps + 1):
            if k in keep and k < sampler.num_steps:
                chain.append((sampler.label(k), sampler.decode(state)))
            if k < sampler.num_steps:
                state = sampler.step(state, k, generator)
        graph = sampler.decode(state, final=True)
    if sampler.num_steps in keep:
        chain.append((sampler.label(sampler.num_steps), graph))
    return graph, chain


def generate(sampler: GraphSampler, num_nodes: Tensor, batch_size: int,
             device: torch.device | str = "cpu", seed: int | None = None, progress: bool | None = None,
             frames: int = 0, conditions: Tensor | None = None) -> Generation:
    """Sample one graph per entry of ``num_nodes``, in batches of at most ``batch_size`` graphs of similar sizes.

    Args:
        sampler: the family's :class:`GraphSampler`.
        num_nodes: ``[N]`` node count of each graph.
        batch_size: graphs per batch.
        device: where the chains run.
        seed: makes the draw reproducible (for a given batch size).
        progress: show a progress bar over batches (``None``: when stderr is a terminal, see
            :func:`graphdiff.log.progress_enabled`).
        frames: record this many snapshots of every chain (see :class:`Generation`).
        conditions: ``[N, C]`` encoded condition of each graph, for a conditional model.
    """
    generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    order = torch.argsort(num_nodes, descending=True, stable=True)
    chunks = list(order.split(batch_size))
    parts: list[GraphList] = []
    frame_parts: list[list[tuple[str, GraphList]]] = []
    for chunk in progress_bar(chunks, desc="sampling", unit="batch", enabled=progress):
        node_mask = node_mask_from_counts(num_nodes[chunk], device)
        condition = None if conditions is None else conditions[chunk].to(device)
        graph, chain = run_sampler(sampler, node_mask, generator, frames, condition)
        parts.append(GraphList.from_dense(graph.to("cpu")))
        frame_parts.append([(label, GraphList.from_dense(g.to("cpu"))) for label, g in chain])
    back = torch.argsort(order)
    graphs = GraphList.concat(parts).subset(back)
    frames_out: list[tuple[str, GraphList]] = []
    for i, (label, _) in enumerate(frame_parts[0] if frame_parts else []):
        frames_out.append((label, GraphList.concat([frames_of[i][1] for frames_of in frame_parts]).subset(back)))
    return Generation(graphs, frames_out)
