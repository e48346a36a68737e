"""``graphdiff search``: choose sampler settings for a trained checkpoint without retraining (DeFoG's search).

The sampler settings of every family are a dataclass (:class:`~graphdiff.generation.SamplerConfig`), so any of
their fields can be searched: for the flow family ``steps``, ``eta``, ``omega``, ``time_distortion``, ``x1``; for
the discrete one ``steps``; for the score SDE ``num_steps``, ``snr``, ``scale_eps``, ``predictor``, ...

* ``grid``: every combination of the values given.
* ``componentwise`` (DeFoG's ``search_hyperparameters``): for each number of steps, the parameters one after the
  other in the order given, each value tried with the others at the best found so far; the best (by ``target``)
  is kept before moving on.

Every setting samples ``num_samples`` graphs with the same seed and scores them against a split (validation by
default) with the dataset's metrics. The rows go to a CSV and a JSON file, and a plot shows the target metric
against each searched parameter.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from graphdiff.errors import ConfigError
from graphdiff.generation import SamplerConfig
from graphdiff.io import atomic_write, write_json
from graphdiff.lit import GenerativeModel
from graphdiff.log import get_logger, progress

log = get_logger(__name__)

#: Metrics where smaller is better (the MMDs, FCD, NSPDK); every other target is maximised.
MINIMISED = ("degree", "clustering", "orbit", "spectral", "wavelet", "fcd", "nspdk")


def default_target(model: GenerativeModel) -> str:
    """``validity`` for molecules, ``vun`` where the dataset defines graph validity, else ``degree``."""
    from graphdiff.evaluation import protocol_for

    if model.info.kind == "molecule":
        return "validity"
    return "vun" if protocol_for(model.info.name)[1] else "degree"


def parse_values(config: SamplerConfig, name: str, text: str) -> list[Any]:
    """The values of ``NAME=v1,v2,...`` typed like the field of ``config``.

    Raises:
        ConfigError: an unknown field or a value of the wrong type.
    """
    fields = {f.name: f for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    if name not in fields:
        raise ConfigError(f"--param {name}: the {config.family} sampler has no such setting; "
                          f"it has {', '.join(sorted(fields))}")
    current = getattr(config, name)
    values = []
    for item in (v.strip() for v in text.split(",")):
        if not item:
            continue
        try:
            if isinstance(current, bool):
                value: Any = {"true": True, "false": False}[item.lower()]
            elif isinstance(current, int) or name in ("steps", "num_steps", "n_steps"):
                value = int(item)
            elif isinstance(current, float):
                value = float(item)
            else:
                value = item
        except (KeyError, ValueError):
            raise ConfigError(f"--param {name}: {item!r} is not a value of type {type(current).__name__}") from None
        values.append(value)
    if not values:
        raise ConfigError(f"--param {name}: no values given")
    return values


def search(model: GenerativeModel, dataset, params: dict[str, list[Any]], mode: str = "grid",
           num_samples: int = 64, split: str = "val", target: str | None = None, seed: int = 0,
           batch_size: int | None = None) -> list[dict[str, Any]]:
    """Score sampler settings of ``model`` (see the module docstring).

    Args:
        model: a trained model of any family.
        dataset: its :class:`~graphdiff.datasets.GraphDataset` (the reference split and the training graphs).
        params: setting name -> values to try.
        mode: ``grid`` or ``componentwise``.
        num_samples: graphs per setting.
        split: reference split.
        target: metric deciding the best setting in ``componentwise`` mode (default :func:`default_target`).
        seed: sampling seed (the same for every setting).
        batch_size: graphs per sampling batch.

    Returns:
        One row per setting tried: the settings, the metrics and the sampling seconds.
    """
    from graphdiff.evaluation import FAST_MOLECULE_METRICS, evaluate_generated

    if mode not in ("grid", "componentwise"):
        raise ConfigError(f"mode must be grid or componentwise, got {mode!r}")
    base = model.sampler_config()
    target = target or default_target(model)
    metrics = FAST_MOLECULE_METRICS if model.info.kind == "molecule" else None
    rows: list[dict[str, Any]] = []

    def score(config: SamplerConfig) -> dict[str, Any]:
        start = time.perf_counter()
        graphs = model.generate(num_samples, seed=seed, sampler=config, batch_size=batch_size)
        seconds = time.perf_counter() - start
        result = evaluate_generated(graphs, model.info, dataset, reference_split=split, metrics=metrics)
        if target not in result:
            raise ConfigError(f"--target {target}: not a metric of these samples; they have "
                              f"{', '.join(k for k in result if k != 'not_computed')}")
        row = {**{k: v for k, v in config.to_dict().items() if k != "family"}, **result, "seconds": seconds}
        rows.append(row)
        log.info("%s -> %s = %s", {k: getattr(config, k) for k in params}, target, result[target])
        return row

    def better(a: dict[str, Any], b: dict[str, Any] | None) -> bool:
        if b is None or b[target] is None:
            return a[target] is not None
        if a[target] is None:
            return False
        return a[target] < b[target] if target in MINIMISED else a[target] > b[target]

    names = list(params)
    if mode == "grid":
        combos = list(itertools.product(*(params[n] for n in names)))
        for combo in progress(combos, desc="sampler search", unit="setting"):
            score(_replace(base, dict(zip(names, combo, strict=True))))
        return rows
    step_field = base.steps_field
    step_values = params.get(step_field, [base.steps])
    others = [n for n in names if n != step_field]
    for steps in step_values:
        best_settings: dict[str, Any] = {step_field: steps}
        best = score(_replace(base, best_settings))
        for name in others:
            for value in params[name]:
                row = score(_replace(base, {**best_settings, name: value}))
                if better(row, best):
                    best, best_settings = row, {**best_settings, name: value}
    return rows


def _replace(config: SamplerConfig, changes: dict[str, Any]) -> SamplerConfig:
    try:
        return dataclasses.replace(config, **changes)  # type: ignore[type-var]
    except TypeError as exc:
        raise ConfigError(f"sampler settings: {exc}") from None


def write_table(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """The rows as CSV (``.csv``) or JSON (any other name), atomically."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        write_json(path, list(rows))
        return path
    columns = list(dict.fromkeys(k for row in rows for k in row if k != "not_computed"))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        f.write(buffer.getvalue())
    return path


def plot(rows: Sequence[dict[str, Any]], params: dict[str, list[Any]], target: str, steps_field: str,
         path: str | os.PathLike) -> Path:
    """A PNG: ``target`` against each searched parameter (one line per number of steps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in params if n != steps_field] or [steps_field]
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        series: dict[Any, list[tuple[Any, float]]] = {}
        for row in rows:
            if row.get(target) is not None:
                series.setdefault(row.get(steps_field), []).append((row[name], row[target]))
        for steps, points in sorted(series.items(), key=lambda kv: str(kv[0])):
            xs = [str(x) if isinstance(x, str) else x for x, _ in points]
            ax.plot(xs, [y for _, y in points], marker="o", label=f"{steps_field}={steps}")
        ax.set_xlabel(name)
        ax.set_ylabel(target)
        ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    with atomic_write(path, "wb") as f:
        f.write(buffer.getvalue())
    return Path(path)
