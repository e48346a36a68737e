"""The denoiser interface: a noisy graph and a time in, logits for the clean graph out.

Every network that the diffusion processes can train is a :class:`Denoiser`. The process never looks inside
it; it only relies on the contract of :meth:`Denoiser.forward`:

* input: a noisy :class:`~graphdiff.types.DenseGraph` (``X [B, n, dx]``, ``E [B, n, n, de]``, ``y [B, dy]``,
  ``node_mask [B, n]``) and the normalised time ``t = step / T`` of shape ``[B]`` in ``[0, 1]``;
* output: a :class:`~graphdiff.types.DenseGraph` of **logits** over the clean classes, ``X [B, n, dx_out]``,
  ``E [B, n, n, de_out]``, ``y [B, dy_out]`` and the same ``node_mask``. ``E`` is symmetric in its two
  node axes. Logits of padded nodes, of pairs with a padded end and of the diagonal of ``E`` are exactly
  ``0`` (what :meth:`DenseGraph.mask` gives), so a loss only has to drop those entries with ``node_mask``;
  they never hold ``inf``/``NaN`` that could leak through a ``0 * x`` product.

Other networks plug in by subclassing :class:`Denoiser` and registering a builder name with
:func:`register_denoiser`; :func:`build_denoiser` then makes them from a configuration.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch import Tensor, nn

from graphdiff.errors import ConfigError
from graphdiff.types import DenseGraph

if TYPE_CHECKING:
    from graphdiff.datasets.info import DatasetInfo


@dataclass(frozen=True)
class GraphDims:
    """Feature widths of the three streams of a :class:`DenseGraph`.

    Attributes:
        X: node feature width (``dx``).
        E: edge feature width (``de``).
        y: global feature width (``dy``, may be 0).
    """

    X: int
    E: int
    y: int = 0

    def __post_init__(self) -> None:
        for name in ("X", "E", "y"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"graph dimension {name} must be a non-negative integer, got {value!r}")

    @classmethod
    def of(cls, dims: GraphDims | Mapping[str, int] | Sequence[int]) -> GraphDims:
        """Accept a :class:`GraphDims`, a mapping ``{"X": .., "E": .., "y": ..}`` or a ``(X, E, y)`` triple."""
        if isinstance(dims, GraphDims):
            return dims
        if isinstance(dims, Mapping):
            unknown = set(dims) - {"X", "E", "y"}
            if unknown or "X" not in dims or "E" not in dims:
                raise ConfigError(f"graph dimensions need keys X, E (and optionally y), got {sorted(dims)}")
            return cls(int(dims["X"]), int(dims["E"]), int(dims.get("y", 0)))
        values = tuple(dims)
        if len(values) not in (2, 3):
            raise ConfigError(f"graph dimensions need (X, E) or (X, E, y), got {values!r}")
        return cls(*(int(v) for v in values))

    @classmethod
    def of_graph(cls, graph: DenseGraph) -> GraphDims:
        """The widths of ``graph``'s tensors."""
        return cls(graph.X.shape[-1], graph.E.shape[-1], graph.y.shape[-1])

    def __add__(self, other: GraphDims) -> GraphDims:
        return GraphDims(self.X + other.X, self.E + other.E, self.y + other.y)

    def as_dict(self) -> dict[str, int]:
        return {"X": self.X, "E": self.E, "y": self.y}


class Denoiser(nn.Module):
    """Base class of the networks that predict the clean graph from a noisy one.

    Subclasses implement :meth:`forward` with the contract described in the module docstring.

    Args:
        input_dims: widths of the noisy graphs the network is given (the data's ``dx``, ``de``, ``dy``).
        output_dims: widths of the predicted logits (the clean data's ``dx``, ``de`` and ``dy_out``).
    """

    def __init__(
        self,
        input_dims: GraphDims | Mapping[str, int] | Sequence[int],
        output_dims: GraphDims | Mapping[str, int] | Sequence[int],
    ) -> None:
        super().__init__()
        self.input_dims = GraphDims.of(input_dims)
        self.output_dims = GraphDims.of(output_dims)

    def forward(self, noisy: DenseGraph, t: Tensor) -> DenseGraph:
        """Predict logits of the clean graph.

        Args:
            noisy: the noisy batch, widths ``input_dims``.
            t: ``[B]`` normalised time ``step / T`` in ``[0, 1]``.

        Returns:
            Logits, widths ``output_dims``; symmetric ``E``; zero at padding and on the diagonal of ``E``.
        """
        raise NotImplementedError

    def check_input(self, noisy: DenseGraph, t: Tensor) -> Tensor:
        """Validate shapes against ``input_dims`` and return ``t`` as a ``[B]`` float tensor.

        Raises:
            ValueError: a width or the batch size does not match (a programming error, not bad user input).
        """
        got = GraphDims.of_graph(noisy)
        if got != self.input_dims:
            raise ValueError(f"{type(self).__name__} was built for input dims {self.input_dims}, got {got}")
        B = noisy.batch_size
        if t.dim() == 2 and t.shape[1] == 1:
            t = t[:, 0]
        if t.dim() == 0:
            t = t.expand(B)
        if t.shape != (B,):
            raise ValueError(f"t must have shape [{B}] (one time per graph), got {tuple(t.shape)}")
        return t.to(noisy.X.dtype)


def sanitize_padding(graph: DenseGraph) -> DenseGraph:
    """Zero padding and the diagonal of ``E`` with ``torch.where``, so even non-finite padding is cleared."""
    mask = graph.node_mask
    n = mask.shape[1]
    pair = mask.unsqueeze(1) & mask.unsqueeze(2)
    pair = pair & ~torch.eye(n, dtype=torch.bool, device=mask.device)
    zero_x = torch.zeros((), dtype=graph.X.dtype, device=graph.X.device)
    zero_e = torch.zeros((), dtype=graph.E.dtype, device=graph.E.device)
    X = torch.where(mask.unsqueeze(-1), graph.X, zero_x)
    E = torch.where(pair.unsqueeze(-1), graph.E, zero_e)
    return DenseGraph(X, E, graph.y, mask)


D = TypeVar("D", bound=type[Denoiser])
_DENOISERS: dict[str, Callable[..., Denoiser]] = {}


def register_denoiser(name: str) -> Callable[[D], D]:
    """Class decorator: make a :class:`Denoiser` subclass buildable by ``name`` with :func:`build_denoiser`.

    The class is called as ``cls(input_dims, output_dims, **config)``.
    """

    def decorator(cls: D) -> D:
        if name in _DENOISERS and _DENOISERS[name] is not cls:
            raise ValueError(f"denoiser name {name!r} is already registered to {_DENOISERS[name]}")
        _DENOISERS[name] = cls
        return cls

    return decorator


def available_denoisers() -> list[str]:
    """Registered denoiser names, sorted."""
    return sorted(_DENOISERS)


def build_denoiser(
    name: str,
    input_dims: GraphDims | Mapping[str, int] | Sequence[int],
    output_dims: GraphDims | Mapping[str, int] | Sequence[int],
    **config: Any,
) -> Denoiser:
    """Build a registered denoiser, e.g. ``build_denoiser("graph_transformer", (4, 5, 0), (4, 5, 0), preset="qm9")``.

    Raises:
        ConfigError: ``name`` is not registered.
    """
    if name not in _DENOISERS:
        raise ConfigError(f"unknown denoiser {name!r}; available: {', '.join(available_denoisers())}")
    return _DENOISERS[name](input_dims, output_dims, **config)


def denoiser_for_dataset(info: DatasetInfo, denoiser: str = "graph_transformer", **config: Any) -> Denoiser:
    """The denoiser a training run uses: a registered name or an importable ``"package.module.Class"``.

    A class with a ``from_dataset_info(info, **config)`` constructor derives its widths itself (the graph
    transformer adds extra and molecular features); any other is built as ``cls(dims, dims, **config)`` with
    ``dims = (num_node_types, num_edge_types, 0)``.

    Raises:
        ConfigError: the name is neither registered nor importable.
    """
    if denoiser in _DENOISERS:
        cls = _DENOISERS[denoiser]
    elif "." in denoiser:
        module_name, _, cls_name = denoiser.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), cls_name)
        except (ImportError, AttributeError) as err:
            raise ConfigError(f"denoiser {denoiser!r} cannot be imported: {err}") from None
    else:
        raise ConfigError(f"unknown denoiser {denoiser!r}; available: {', '.join(available_denoisers())} "
                          "or an importable 'package.module.Class'")
    try:
        if hasattr(cls, "from_dataset_info"):
            return cls.from_dataset_info(info, **config)
        dims = GraphDims(info.num_node_types, info.num_edge_types, 0)
        return cls(dims, dims, **config)
    except TypeError as err:  # an unknown or missing setting
        raise ConfigError(f"model settings of denoiser {denoiser!r}: {err}") from None
