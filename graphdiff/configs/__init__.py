"""The configs shipped with graphdiff, and what a ``--config`` value names.

``discrete/<dataset>.yaml`` (DiGress), ``sde/<dataset>.yaml`` (GDSS), ``flow/<dataset>.yaml`` (DeFoG),
``pard/<dataset>.yaml`` (PARD), ``recipes/*.yaml`` (sized for a CPU budget, not published settings) and
``quickstart.yaml`` are package data, so ``graphdiff fit --config qm9`` works from any directory of any install
(docs/training.md).
"""

from __future__ import annotations

from pathlib import Path

from graphdiff.errors import ConfigError

HERE = Path(__file__).resolve().parent
#: The family a bare dataset name (``qm9``) is looked up in.
DEFAULT_FAMILY = "discrete"


def shipped_configs() -> dict[str, Path]:
    """Every shipped config by name: ``quickstart``, ``discrete/qm9``, ``sde/qm9``, ... (sorted)."""
    return {p.relative_to(HERE).with_suffix("").as_posix(): p for p in sorted(HERE.rglob("*.yaml"))}


def resolve_config(name: str) -> Path:
    """The config file a ``--config`` value names: an existing file as it is, else a shipped config by name, with or
    without ``.yaml`` (``quickstart``, ``qm9`` = ``discrete/qm9``, ``sde/qm9``).

    Raises:
        ConfigError: neither a file nor a shipped config; the message lists the shipped names.
    """
    if Path(name).is_file():
        return Path(name)
    shipped = shipped_configs()
    key = name.removesuffix(".yaml")
    for candidate in (key, f"{DEFAULT_FAMILY}/{key}"):
        if candidate in shipped:
            return shipped[candidate]
    names = [n.removeprefix(f"{DEFAULT_FAMILY}/") for n in shipped]
    raise ConfigError(f"--config {name}: no such config file or shipped config; shipped: {', '.join(names)} "
                      f"(a bare dataset name is {DEFAULT_FAMILY}/NAME)")
