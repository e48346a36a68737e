"""Graph-level conditions: which properties a model is conditioned on, and how their values reach the network.

A conditional model is trained on ``(graph, property values)`` pairs. Values travel through the data path raw, as
the ``y [B, P]`` of the dense batch (one column per property, ``NaN`` where a value is missing); the model encodes
them with the :class:`Conditioning` stored in its dataset info (and so in its checkpoint):

* a **numeric** property ``v`` becomes two columns ``((v - mean) / std, 1)``, normalised with the training split's
  statistics; a missing value becomes ``(0, 0)``;
* a **categorical** property becomes the one-hot of its category among the training split's categories; a missing
  value becomes all zeros.

An all-zero encoding therefore means "no condition". Networks embed the encoding with a linear map *without bias*,
so an all-zero encoding adds exactly nothing: condition dropout (classifier-free guidance training) replaces a
graph's encoding by zeros, and the unconditional prediction of a conditional model is the same network with the
condition zeroed. See ``docs/conditioning.md``.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from graphdiff.errors import ConfigError, DataError
from graphdiff.types import DenseGraph

PropertyKind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class ConditionProperty:
    """One graph-level property a model is conditioned on, with the training statistics that encode it.

    Attributes:
        name: the property's name (``qed``, ``mu``, ``num_blocks``, a column of the user's file, ...).
        kind: ``"numeric"`` (normalised value) or ``"categorical"`` (one-hot of a training category).
        mean, std: training mean and standard deviation (numeric; ``std`` 1 when the values are constant).
        low, high: smallest and largest training value (numeric): targets outside are refused.
        categories: the sorted training categories (categorical).
        missing: training graphs without a value.
    """

    name: str
    kind: PropertyKind = "numeric"
    mean: float = 0.0
    std: float = 1.0
    low: float = -math.inf
    high: float = math.inf
    categories: tuple[float, ...] = ()
    missing: int = 0

    @property
    def width(self) -> int:
        """Columns of the encoding."""
        return 2 if self.kind == "numeric" else len(self.categories)

    @classmethod
    def from_values(cls, name: str, values: Tensor, kind: PropertyKind = "numeric") -> ConditionProperty:
        """Statistics of ``values [G]`` (training split; ``NaN`` = missing)."""
        if kind not in ("numeric", "categorical"):
            raise ConfigError(f"condition {name}: kind must be 'numeric' or 'categorical', got {kind!r}")
        values = values.double()
        present = values[~torch.isnan(values)]
        if present.numel() == 0:
            raise ConfigError(f"condition {name}: no training graph has a value")
        missing = int(values.numel() - present.numel())
        if kind == "categorical":
            cats = torch.unique(present)
            if cats.numel() > 256:
                raise ConfigError(f"condition {name}: {cats.numel()} distinct values is too many categories; "
                                  f"use it as numeric ({name}:numeric)")
            return cls(name, kind, low=float(cats.min()), high=float(cats.max()),
                       categories=tuple(float(c) for c in cats.tolist()), missing=missing)
        std = float(present.std(unbiased=False)) if present.numel() > 1 else 0.0
        return cls(name, kind, mean=float(present.mean()), std=std if std > 0 else 1.0,
                   low=float(present.min()), high=float(present.max()), missing=missing)

    def encode(self, values: Tensor) -> Tensor:
        """``values [B]`` (``NaN`` = missing) -> ``[B, width]``."""
        present = ~torch.isnan(values)
        if self.kind == "numeric":
            normalised = torch.where(present, (values - self.mean) / self.std, torch.zeros_like(values))
            return torch.stack([normalised, present.to(values.dtype)], dim=-1)
        cats = torch.tensor(self.categories, dtype=values.dtype, device=values.device)
        return ((values.unsqueeze(-1) == cats) & present.unsqueeze(-1)).to(values.dtype)

    def check_target(self, value: float, where: str = "") -> float:
        """``value`` as a float if it is a target this property accepts; else a one-line :class:`ConfigError`."""
        at = f" ({where})" if where else ""
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"condition {self.name}={value!r}{at}: expected a number") from None
        if math.isnan(value):
            return value  # no target for this property: unconditional in it
        if self.kind == "categorical":
            if value not in self.categories:
                cats = ", ".join(f"{c:g}" for c in self.categories)
                raise ConfigError(f"condition {self.name}={value:g}{at} is not a training category ({cats})")
        elif not self.low <= value <= self.high:
            raise ConfigError(f"condition {self.name}={value:g}{at} is outside the training range "
                              f"[{self.low:.4g}, {self.high:.4g}]")
        return value


@dataclass
class Conditioning:
    """The properties a model is conditioned on, in column order.

    Attributes:
        properties: one :class:`ConditionProperty` per column of the raw values ``y [B, P]``.
    """

    properties: list[ConditionProperty] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.properties)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.properties]

    @property
    def width(self) -> int:
        """Columns of the encoding (what a network's condition input takes)."""
        return sum(p.width for p in self.properties)

    def columns(self, name: str) -> slice:
        """The encoding's columns of property ``name``."""
        start = 0
        for p in self.properties:
            if p.name == name:
                return slice(start, start + p.width)
            start += p.width
        raise ConfigError(f"unknown condition {name!r}; the model is conditioned on {', '.join(self.names)}")

    @classmethod
    def from_values(cls, names: Sequence[str], values: Tensor,
                    kinds: Mapping[str, PropertyKind] | None = None) -> Conditioning:
        """Statistics of the training values ``values [G, P]`` of ``names``."""
        kinds = kinds or {}
        return cls([ConditionProperty.from_values(n, values[:, i], kinds.get(n, "numeric"))
                    for i, n in enumerate(names)])

    def to_list(self) -> list[dict[str, Any]]:
        return [{**asdict(p), "categories": list(p.categories)} for p in self.properties]

    @classmethod
    def from_list(cls, items: Sequence[Mapping[str, Any]] | None) -> Conditioning:
        out = []
        for item in items or []:
            item = dict(item)
            item["categories"] = tuple(item.get("categories", ()))
            out.append(ConditionProperty(**item))
        return cls(out)

    def encode(self, values: Tensor) -> Tensor:
        """Raw values ``[B, P]`` (``NaN`` = missing) -> encoding ``[B, width]`` (float32 or ``values``' float)."""
        if values.shape[-1] != len(self.properties):
            raise ConfigError(f"condition values have {values.shape[-1]} columns; the model is conditioned on "
                              f"{len(self.properties)} properties ({', '.join(self.names)})")
        values = values if values.is_floating_point() else values.float()
        if not self.properties:
            return values.new_zeros(values.shape[0], 0)
        return torch.cat([p.encode(values[:, i]) for i, p in enumerate(self.properties)], dim=-1)

    def targets(self, condition: Mapping[str, float] | Sequence[Mapping[str, float]] | Tensor,
                num_samples: int) -> Tensor:
        """Raw target values ``[num_samples, P]`` (``NaN`` where a property has no target).

        Args:
            condition: one ``{name: value}`` for every graph, ``num_samples`` of them (one per graph), or a
                ``[num_samples, P]`` / ``[P]`` tensor in column order.

        Raises:
            ConfigError: an unknown property, a value outside the training range or categories, a wrong count.
        """
        if not self.properties:
            raise ConfigError("the model is not conditional: it was trained without conditions (data.conditions)")
        if isinstance(condition, Tensor):
            rows = condition.double().reshape(-1, len(self.properties)) if condition.dim() <= 2 else None
            if rows is None or condition.shape[-1] != len(self.properties):
                raise ConfigError(f"condition tensor of shape {tuple(condition.shape)}: expected "
                                  f"[{num_samples}, {len(self.properties)}] ({', '.join(self.names)})")
            dicts: Sequence[Mapping[str, float]] = [dict(zip(self.names, r.tolist(), strict=True)) for r in rows]
        elif isinstance(condition, Mapping):
            dicts = [condition]
        else:
            dicts = list(condition)
        per_graph = len(dicts) > 1
        if not per_graph:
            dicts = list(dicts) * num_samples
        if len(dicts) != num_samples:
            raise ConfigError(f"{len(dicts)} condition rows for {num_samples} samples: give one row, or one per "
                              "sample")
        out = torch.full((num_samples, len(self.properties)), math.nan, dtype=torch.float64)
        index = {p.name: i for i, p in enumerate(self.properties)}
        checked: dict[tuple[str, Any], float] = {}
        for r, row in enumerate(dicts):
            if not isinstance(row, Mapping):
                raise ConfigError(f"condition row {r + 1}: expected a mapping of property names to values")
            for name, value in row.items():
                if name not in index:
                    raise ConfigError(f"unknown condition {name!r}; the model is conditioned on "
                                      f"{', '.join(self.names)}")
                key = (name, value)
                if key not in checked:
                    where = f"row {r + 1}" if per_graph else ""
                    checked[key] = self.properties[index[name]].check_target(value, where)
                out[r, index[name]] = checked[key]
        return out.float()


def drop_conditions(encoded: Tensor, probability: float, generator: torch.Generator | None = None) -> Tensor:
    """Zero each row of ``encoded [B, C]`` with ``probability`` (classifier-free guidance training).

    ``probability`` 0 and 1 draw no random numbers, so a run with full dropout consumes the same random stream as
    an unconditional run.
    """
    if probability <= 0.0 or encoded.shape[-1] == 0:
        return encoded
    if probability >= 1.0:
        return torch.zeros_like(encoded)
    keep = torch.rand(encoded.shape[0], 1, device=encoded.device, generator=generator) >= probability
    return encoded * keep.to(encoded.dtype)


def parse_condition(text: str) -> dict[str, float]:
    """``"qed=0.9,logp=2.5"`` -> ``{"qed": 0.9, "logp": 2.5}`` (the CLI's ``--condition``)."""
    out: dict[str, float] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--condition {text!r}: expected name=value pairs separated by commas, e.g. qed=0.9")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--condition {text!r}: {value.strip()!r} is not a number") from None
    if not out:
        raise ConfigError("--condition: no name=value pair given")
    return out


def parse_guidance(text: str) -> float | dict[str, float]:
    """``"2"`` -> ``2.0``; ``"qed=2,logp=1"`` -> ``{"qed": 2.0, "logp": 1.0}`` (the CLI's ``--guidance``)."""
    if "=" in text:
        return parse_condition(text)
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"--guidance {text!r}: expected a number or name=scale pairs, e.g. 2 or qed=2,logp=1"
                          ) from None


def read_condition_file(path: str | os.PathLike) -> list[dict[str, float]]:
    """Targets from a CSV file: a header of property names, one row per graph; an empty cell is no target.

    Raises:
        DataError: a missing or empty file, a row of the wrong length or a cell that is not a number (one line
            naming the file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = [h.strip() for h in next(reader, [])]
        if not header or not all(header):
            raise DataError(f"{path}: expected a header row of property names")
        rows = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DataError(f"{path}: line {reader.line_num}: {len(row)} cells for {len(header)} columns")
            targets = {}
            for name, cell in zip(header, row, strict=True):
                if cell.strip():
                    try:
                        targets[name] = float(cell)
                    except ValueError:
                        raise DataError(f"{path}: line {reader.line_num}: {name}={cell.strip()!r} is not a number"
                                        ) from None
            rows.append(targets)
    if not rows:
        raise DataError(f"{path}: no target rows (only a header)")
    return rows


class WithCondition(nn.Module):
    """``network`` with ``condition [B, C]`` appended to the ``y`` of every graph batch it is given.

    Args:
        network: ``(graph, t) -> graph``, reading its condition from the trailing columns of ``graph.y``.
        condition: ``[B, C]`` encoded condition, one row per graph of the batches to come.
    """

    def __init__(self, network: nn.Module, condition: Tensor) -> None:
        super().__init__()
        self.network = network
        self.condition = condition

    def forward(self, graph: DenseGraph, t: Tensor) -> DenseGraph:
        y = torch.cat((graph.y, self.condition.to(device=graph.y.device, dtype=graph.y.dtype)), dim=-1)
        return self.network(DenseGraph(graph.X, graph.E, y, graph.node_mask), t)
