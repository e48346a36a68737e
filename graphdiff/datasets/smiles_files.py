"""Reading SMILES files: one record per molecule, with the line it starts on.

Formats (chosen by the file name; each may be gzipped, ``.gz``):

* ``.smi`` / ``.smiles`` / ``.txt``: one SMILES per line, optionally followed by whitespace and a name; blank lines
  are ignored, a first line whose first word is ``smiles`` (any case) is a header.
* ``.csv``: a header row; the SMILES column is named by the caller, by default the one named ``smiles`` in any case.

Nothing here parses chemistry (that is :mod:`graphdiff.datasets.molecule_parsing`); problems with the file are
one-line :class:`~graphdiff.errors.DataError` naming it (and the line).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from graphdiff.errors import ConfigError, DataError
from graphdiff.io import read_file_text

SMILES_LINE_SUFFIXES = (".smi", ".smiles", ".txt")
SMILES_CSV_SUFFIXES = (".csv",)


@dataclass
class SmilesRecords:
    """The SMILES rows of one file.

    Attributes:
        path: the file.
        smiles: one string per data row (stripped; may be empty or invalid).
        lines: 1-based line number where each row starts.
        ids: values of ``id_column`` per row, when one was asked for.
        columns: CSV header (empty for line-based files).
        numbers: the CSV's other columns that hold numbers, per row (``NaN`` where a cell is empty or not a
            number): the graph-level properties a model can be conditioned on.
    """

    path: Path
    smiles: list[str]
    lines: list[int]
    ids: list[str] | None = None
    columns: list[str] = field(default_factory=list)
    numbers: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.smiles)


def is_smiles_file(path: str | os.PathLike) -> bool:
    """Whether the file name is one of a SMILES file (``.smi``, ``.smiles``, ``.txt``, ``.csv``, each maybe ``.gz``)."""
    lower = Path(path).name.lower()
    plain = lower[:-3] if lower.endswith(".gz") else lower
    return plain.endswith(SMILES_LINE_SUFFIXES + SMILES_CSV_SUFFIXES)


def smiles_stem(path: Path) -> str:
    """The file name without its SMILES suffixes (``mols.smi.gz`` -> ``mols``)."""
    name = path.name
    lower = name.lower()
    if lower.endswith(".gz"):
        name, lower = name[:-3], lower[:-3]
    for suffix in SMILES_LINE_SUFFIXES + SMILES_CSV_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)] or name
    return Path(name).stem


def read_smiles_records(
    path: str | os.PathLike,
    column: str | None = None,
    id_column: str | None = None,
    limit: int | None = None,
) -> SmilesRecords:
    """Read the SMILES of a file, one record per molecule (formats: see the module docstring).

    Args:
        path: the file.
        column: CSV column holding the SMILES.
        id_column: CSV column whose values are kept as :attr:`SmilesRecords.ids`.
        limit: keep only the first ``limit`` records.

    Raises:
        DataError: missing, empty, truncated or undecodable file; unknown file type; no SMILES
            column (the message lists the columns).
        ConfigError: ``limit`` below 1.
    """
    path = Path(path)
    if not is_smiles_file(path):
        endings = ", ".join(SMILES_LINE_SUFFIXES + SMILES_CSV_SUFFIXES)
        raise DataError(f"{path}: unknown SMILES file type; expected {endings} (optionally .gz)")
    is_csv = path.name.lower().removesuffix(".gz").endswith(SMILES_CSV_SUFFIXES)
    text = read_file_text(path)
    if limit is not None and limit < 1:
        raise ConfigError(f"limit={limit}: expected a positive number of rows")
    records = _read_csv(path, text, column, id_column, limit) if is_csv else _read_lines(path, text, limit)
    if len(records) == 0:
        raise DataError(f"{path}: no SMILES rows (only a header)")
    return records


def csv_header(path: Path) -> list[str]:
    """The first row of a (possibly gzipped) CSV file, without reading the rest.

    Raises:
        DataError: the file cannot be read or decompressed.
    """
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
            return [h.strip() for h in next(csv.reader(f), [])]
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: truncated or corrupt gzip file ({exc})") from None
    except (UnicodeDecodeError, csv.Error, OSError) as exc:
        raise DataError(f"{path}: cannot read the header ({exc})") from None


def _read_lines(path: Path, text: str, limit: int | None) -> SmilesRecords:
    smiles, lines = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        if not smiles and not lines and words[0].lower() == "smiles":
            continue  # header line
        smiles.append(words[0])
        lines.append(number)
        if limit is not None and len(smiles) >= limit:
            break
    return SmilesRecords(path, smiles, lines)


def _read_csv(path: Path, text: str, column: str | None, id_column: str | None, limit: int | None) -> SmilesRecords:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as exc:
        raise DataError(f"{path}: line 1: malformed CSV ({exc})") from None
    col = _find_column(path, header, column)
    id_col = _find_column(path, header, id_column) if id_column is not None else None
    smiles, lines, ids = [], [], []
    other = [i for i in range(len(header)) if i not in (col, id_col)]
    cells: list[list[str]] = [[] for _ in other]
    previous = reader.line_num
    try:
        for row in reader:
            start, previous = previous + 1, reader.line_num
            if not row or not any(cell.strip() for cell in row):
                continue
            smiles.append(row[col].strip() if col < len(row) else "")
            lines.append(start)
            if id_col is not None:
                ids.append(row[id_col].strip() if id_col < len(row) else "")
            for values, i in zip(cells, other, strict=True):
                values.append(row[i] if i < len(row) else "")
            if limit is not None and len(smiles) >= limit:
                break
    except csv.Error as exc:
        raise DataError(f"{path}: line {reader.line_num}: malformed CSV ({exc})") from None
    numbers = {}
    for values, i in zip(cells, other, strict=True):
        column_values = _numbers(values)
        if column_values is not None and header[i]:
            numbers[header[i]] = column_values
    return SmilesRecords(path, smiles, lines, ids if id_col is not None else None, header, numbers)


def _numbers(cells: list[str]) -> np.ndarray | None:
    """``[len(cells)]`` float64 values of a CSV column (``NaN`` for empty or non-numeric cells), or ``None`` when no
    cell holds a number (a text column)."""
    out = np.full(len(cells), np.nan)
    found = False
    for k, cell in enumerate(cells):
        try:
            out[k] = float(cell)
            found = True
        except ValueError:
            continue
    return out if found else None


def _find_column(path: Path, header: list[str], column: str | None) -> int:
    if column is not None:
        if column in header:
            return header.index(column)
        raise DataError(f"{path}: no column {column!r}; columns are {', '.join(header)}")
    for i, name in enumerate(header):
        if name.lower() == "smiles":
            return i
    raise DataError(f"{path}: no 'smiles' column; columns are {', '.join(header)} (pass column=...)")
