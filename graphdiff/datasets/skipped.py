"""Rows and graphs dropped while processing a dataset: the record kept in ``info.skipped`` and its reports.

Nothing is dropped silently. Each reason gets one entry in ``info.skipped`` (the record) and one warning line through
the ``graphdiff`` logger (the report), the same way for molecules and graphs:

* rows of a SMILES file: ``{"invalid_smiles": {"count": 3, "lines": [2, 4, 9]}}`` (first 1-based line numbers),
  reported as ``mols.smi: skipped 3 row(s) with invalid SMILES (first at line(s) 2, 4, 9)``;
* graphs of a graph file: ``{"too_many_nodes": {"count": 2, "graphs": [1, 3]}}`` (first 0-based graph indices),
  reported as ``g.json: skipped 2 graph(s) with more nodes than max_nodes (first at graph(s) 1, 3)``.

Datasets built from several files keep each file's entry under ``by_file`` (:func:`merge_skipped`).
"""

from __future__ import annotations

from typing import Any

from graphdiff.log import get_logger

log = get_logger(__name__)

#: How many line numbers per reason a SMILES file's entry keeps.
MAX_REPORTED_LINES = 5
#: How many graph indices per reason a graph file's entry keeps.
MAX_REPORTED_GRAPHS = 20

#: What each reason means, as the reports say it.
REASONS = {
    "invalid_smiles": "invalid SMILES",
    "too_many_atoms": "more atoms than max_nodes",
    "radical": "radicals (not representable without explicit hydrogens)",
    "unsupported_bond": "bonds other than single/double/triple/aromatic",
    "unknown_atom": "atom types outside the vocabulary",
    "hydrogen_only": "no heavy atom (H2, H+)",
    "uncharacterized": "QM9 molecules listed as uncharacterized",
    "no_nodes": "no nodes",
    "too_many_nodes": "more nodes than max_nodes",
}


def skipped_graphs(graphs_by_reason: dict[str, list[int]]) -> dict[str, dict[str, Any]]:
    """The ``info.skipped`` entries of graphs dropped from a graph file.

    Args:
        graphs_by_reason: reason -> 0-based indices of the dropped graphs, in file order.

    Returns:
        reason -> ``{"count": n, "graphs": [first indices]}``, for the reasons with at least one graph.
    """
    return {
        reason: {"count": len(graphs), "graphs": graphs[:MAX_REPORTED_GRAPHS]}
        for reason, graphs in graphs_by_reason.items()
        if graphs
    }


def report_skipped(where: str, skipped: dict[str, dict[str, Any]]) -> None:
    """Log one warning line per reason: the count and the first line numbers (or graph indices).

    Args:
        where: the file (or dataset) the entries are about.
        skipped: reason -> an entry with ``count`` and ``lines`` or ``graphs``.
    """
    for reason, entry in skipped.items():
        unit, positions = ("row(s)", "line(s)") if "lines" in entry else ("graph(s)", "graph(s)")
        first = entry.get("lines", entry.get("graphs", []))
        log.warning(
            "%s: skipped %d %s with %s (first at %s %s)",
            where, entry["count"], unit, REASONS.get(reason, reason), positions, ", ".join(map(str, first)),
        )


def merge_skipped(per_file: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Skip counts of several files: totals, with each file's entry under ``by_file``.

    Args:
        per_file: file name -> that file's ``skipped`` entries.

    Returns:
        reason -> ``{"count": total, "by_file": {file name: entry}}``.
    """
    merged: dict[str, Any] = {}
    for name, skipped in per_file.items():
        for reason, entry in skipped.items():
            total = merged.setdefault(reason, {"count": 0, "by_file": {}})
            total["count"] += entry["count"]
            total["by_file"][name] = entry
    return merged


def skipped_summary(skipped: dict[str, Any]) -> str:
    """``"invalid_smiles: 2, too_many_atoms: 1"``, or ``"nothing was skipped"``, for one-line errors."""
    if not skipped:
        return "nothing was skipped"
    return ", ".join(f"{k}: {v['count'] if isinstance(v, dict) else v}" for k, v in skipped.items())
