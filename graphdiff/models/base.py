"""The network contract, and the denoiser interface: a noisy graph and a time in, logits for the clean graph out.

Every network of every model family is a :data:`GraphNetwork`: ``network(graph: DenseGraph, t: Tensor [B]) ->
DenseGraph``. What the output means is the family's: logits of the clean graph for discrete diffusion (a
:class:`Denoiser`), score-network outputs for the score SDE (``graph.X`` the node state, ``graph.E`` the
adjacency as one channel, see :mod:`graphdiff.sde.losses`).

Every network that the discrete processes can train is a :class:`Denoiser`. The process never looks inside
it; it only relies on the contract of :meth:`Denoiser.forward`:

* input: a noisy :class:`~graphdiff.types.DenseGraph` (``X [B, n, dx]``, ``E [B, n, n, de]``, ``y [B, dy]``,
  ``node_mask [B, n]``) and the normalised time ``t = step / T`` of shape ``[B]`` in ``[0, 1]``;
* output: a :class:`~graphdiff.types.DenseGraph` of **logits** over the clean classes, ``X [B, n, dx_out]``,
  ``E [B, n, n, de_out]``, ``y [B, dy_out]`` and the same ``node_mask``. ``E`` is symmetric in its two
  node axes. Logits of padded nodes, of pairs with a padded end and of the diagonal of ``E`` are exactly
  ``0`` (what :meth:`DenseGraph.mask` gives), so a loss only has to drop those entries with ``node_mask``;
  they never hold ``inf``/``NaN`` that could leak through a ``0 * x`` product.

Other networks plug in by subclassing :class:`Denoiser` and registering a name with :func:`register_denoiser`
(in Python, or from an installed package's entry point group ``graphdiff.denoisers``); :func:`build_denoiser`
and :func:`denoiser_for_dataset` then make them from a configuration. A configuration or checkpoint can only
name registered classes: graphdiff never imports a module it names.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch import Tensor, nn

from graphdiff.errors import ConfigError
from graphdiff.types import DenseGraph

if TYPE_CHECKING:
    from graphdiff.info import DatasetInfo


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


class ConditionEmbedding(nn.Module):
    """Linear map of an encoded condition ``[B, C]`` to ``[B, out]``, without bias and initialised to zero.

    No bias: an all-zero condition (none, or dropped for classifier-free guidance) adds exactly nothing. Zero
    initial weights drawn from no random generator: a conditional network starts as the unconditional one with the
    same seed, and training it with every condition dropped is training the unconditional one.
    """

    def __init__(self, condition_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(out_dim, condition_dim))

    def forward(self, condition: Tensor) -> Tensor:
        return torch.nn.functional.linear(condition.to(self.weight.dtype), self.weight)


def split_condition(y: Tensor, condition_dim: int) -> tuple[Tensor, Tensor | None]:
    """A conditional network's global input ``y [B, dy + condition_dim]`` -> ``(y_t [B, dy], condition)``, the
    encoded condition (:mod:`graphdiff.conditioning`) being the trailing ``[B, condition_dim]`` (``None`` if 0)."""
    if condition_dim == 0:
        return y, None
    return y[:, : y.shape[1] - condition_dim], y[:, y.shape[1] - condition_dim:]


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


#: graphdiff's one network contract: ``(graph [B, n, ...], t [B]) -> graph`` (see the module docstring).
GraphNetwork = Callable[[DenseGraph, Tensor], DenseGraph]

D = TypeVar("D", bound=type[Denoiser])
_DENOISERS: dict[str, type[Denoiser]] = {}
#: Entry point group through which an installed package registers denoisers: ``name = "package.module:Class"``.
ENTRY_POINT_GROUP = "graphdiff.denoisers"


def register_denoiser(name: str) -> Callable[[D], D]:
    """Class decorator: make a :class:`Denoiser` subclass buildable by ``name`` with :func:`build_denoiser`.

    The class is called as ``cls(input_dims, output_dims, **config)``. Configurations and checkpoints may then
    name it by ``name`` or by its class path ``"package.module.Class"``.
    """

    def decorator(cls: D) -> D:
        if name in _DENOISERS and _DENOISERS[name] is not cls:
            raise ValueError(f"denoiser name {name!r} is already registered to {_DENOISERS[name]}")
        _DENOISERS[name] = cls
        return cls

    return decorator


def available_denoisers() -> list[str]:
    """Denoiser names a configuration may use, sorted: the registered ones and those installed packages declare
    in the entry point group :data:`ENTRY_POINT_GROUP` (loaded when first named)."""
    return sorted(set(_DENOISERS) | {ep.name for ep in _entry_points()})


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    """The entry points of group :data:`ENTRY_POINT_GROUP` of the installed packages (not loaded)."""
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _from_entry_point(name: str) -> type[Denoiser] | None:
    """Load, register under its entry point name and return the denoiser an installed package declares as ``name``
    (or whose ``package.module.Class`` path is ``name``); ``None`` when no package declares it.

    Raises:
        ConfigError: the entry point cannot be loaded or is not a :class:`Denoiser` subclass.
    """
    for ep in _entry_points():
        if name not in (ep.name, ep.value.replace(":", ".")):
            continue
        where = f"entry point {ep.name} = {ep.value!r} (group {ENTRY_POINT_GROUP})"
        try:
            cls = ep.load()
        except (ImportError, AttributeError) as err:
            raise ConfigError(f"denoiser {name!r}: {where} cannot be loaded: {err}") from None
        if not (isinstance(cls, type) and issubclass(cls, Denoiser)):
            raise ConfigError(f"denoiser {name!r}: {where} is {cls!r}, not a Denoiser subclass")
        return register_denoiser(ep.name)(cls)
    return None


def denoiser_class(name: str) -> type[Denoiser]:
    """The denoiser class a configuration or checkpoint names.

    ``name`` is a registered name, the class path ``"package.module.Class"`` of a registered class (what older
    checkpoints store), or a name an installed package declares in the entry point group
    :data:`ENTRY_POINT_GROUP` (loaded and registered on first use). No module named by ``name`` is ever imported.

    Raises:
        ConfigError: none of these, in one line listing the available names and how to register one.
    """
    if not isinstance(name, str):
        raise ConfigError(f"denoiser must be a registered name, got {name!r}")
    if name in _DENOISERS:
        return _DENOISERS[name]
    for cls in _DENOISERS.values():
        if f"{cls.__module__}.{cls.__qualname__}" == name:
            return cls
    cls = _from_entry_point(name)
    if cls is not None:
        return cls
    why = " (a class path is accepted only for a registered class: graphdiff imports no module a configuration names)"
    raise ConfigError(
        f"unknown denoiser {name!r}{why if '.' in name else ''}; available: {', '.join(available_denoisers())}; "
        f"register yours with @graphdiff.models.register_denoiser(\"{name.rpartition('.')[2]}\") before the model "
        f"is built, or as an entry point of group {ENTRY_POINT_GROUP!r} of an installed package"
    )


def build_denoiser(
    name: str,
    input_dims: GraphDims | Mapping[str, int] | Sequence[int],
    output_dims: GraphDims | Mapping[str, int] | Sequence[int],
    **config: Any,
) -> Denoiser:
    """Build a registered denoiser, e.g. ``build_denoiser("graph_transformer", (4, 5, 0), (4, 5, 0), preset="qm9")``.

    Raises:
        ConfigError: ``name`` is not registered (see :func:`denoiser_class`).
    """
    return denoiser_class(name)(input_dims, output_dims, **config)


def denoiser_for_dataset(info: DatasetInfo, denoiser: str = "graph_transformer", **config: Any) -> Denoiser:
    """The denoiser a training run uses, named as :func:`denoiser_class` accepts (registered classes only).

    A class with a ``from_dataset_info(info, **config)`` constructor derives its widths itself (the graph
    transformer adds extra and molecular features); any other is built as ``cls(dims, dims, **config)`` with
    ``dims = (num_node_types, num_edge_types, 0)``.

    Raises:
        ConfigError: the name is not registered, or the settings do not fit the class.
    """
    cls = denoiser_class(denoiser)
    try:
        if hasattr(cls, "from_dataset_info"):
            return cls.from_dataset_info(info, **config)
        if info.conditioning.width:
            raise ConfigError(f"denoiser {denoiser!r} cannot take conditions (data.conditions); it needs a "
                              "from_dataset_info constructor that reads info.conditioning")
        dims = GraphDims(info.num_node_types, info.num_edge_types, 0)
        return cls(dims, dims, **config)
    except TypeError as err:  # an unknown or missing setting
        raise ConfigError(f"model settings of denoiser {denoiser!r}: {err}") from None
