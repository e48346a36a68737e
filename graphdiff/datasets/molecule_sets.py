"""The registered molecule datasets: QM9 (``qm9``, ``qm9_h``), MOSES, ZINC250k and GuacaMol.

Each builder finds its raw files (:mod:`graphdiff.datasets.sources`: local copies, ``$GRAPHDIFF_DATA_DIR``, or a
pinned download), reads them (:mod:`graphdiff.datasets.smiles_files`), parses every row the same way
(:mod:`graphdiff.datasets.molecule_parsing`) and splits the molecules as the papers do
(:mod:`graphdiff.datasets.splits`). Details, sources and measured counts: ``docs/datasets.md``.

* ``qm9`` / ``qm9_h``: 130,831 QM9 molecules, heavy atoms / explicit hydrogens; DiGress split. ``qm9`` also takes
  ``protocol="gdss"`` (GDSS's table, test rows and four neutral atom types) and ``protocol="digress"`` (DiGress's
  four neutral atom types and five bond classes).
* ``moses``: the MOSES benchmark files; ``val`` and ``test`` are both MOSES ``test``,
  ``test_scaffolds`` is an extra split.
* ``zinc250k``: the chemical VAE ZINC250k file with the GDSS/MoFlow test indices.
* ``guacamol``: the GuacaMol v1 train / valid / test files.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from graphdiff.chem import (
    AtomType,
    AtomVocabulary,
    BondVocabulary,
    atom_key,
    canonical_smiles,
    mols_with_inferred_charges,
)
from graphdiff.datasets.dataset import BuildContext, BuiltDataset
from graphdiff.datasets.molecule_parsing import ParsedMolecules, parse_smiles, require_molecules
from graphdiff.datasets.registry import register
from graphdiff.datasets.skipped import MAX_REPORTED_LINES, merge_skipped, report_skipped
from graphdiff.datasets.smiles_files import csv_header, read_smiles_records
from graphdiff.datasets.sources import GDSS_DATA_URL, ContentPin, RawFile, file_source, multi_file_source, resolve
from graphdiff.datasets.splits import qm9_split
from graphdiff.errors import ConfigError, DataError
from graphdiff.io import read_file_text

# ---------------------------------------------------------------------------------------------- QM9
#: Atom types of QM9's 130,831 molecules (heavy atoms): the four elements and the charged states
#: that occur in the SMILES (N+ 582 atoms, O- 411, C- 97, N- 74).
QM9_ATOMS = ["C", "C-", "N", "N+", "N-", "O", "O-", "F"]
QM9_PACK = RawFile("qm9.csv.gz", url=None, sha256=None, subdir="qm9")
#: QM9 as ``qm9.csv``, in one of two layouts told apart by the header. MoleculeNet / DeepChem's table
#: (``mol_id,smiles,...``) has no published checksum, so graphdiff never downloads it: it is read when placed
#: locally. The download is MoFlow's table as the GDSS repository holds it (``,SMILES1,SMILES2,A,B,...``: an
#: unnamed first column with the 0-based row number = GDB index - 1; ``SMILES1`` is the column GDSS reads),
#: at the pinned GDSS commit and checked against its git blob id.
QM9_CSV = RawFile(
    "qm9.csv", GDSS_DATA_URL + "qm9.csv", subdir="qm9", git_blob="98f5b0dc8a21e938977fe5dbe829986c17c2c09f"
)
#: The 3,054 molecules that failed the QM9 consistency check (Ramakrishnan et al.), as DiGress uses it. No
#: checksum of the file is published, so its download is pinned by what it parses to: the SHA-256 of its sorted
#: GDB indices (:func:`graphdiff.datasets.sources.content_sha256`), which are the 3,054 of 1..133,885 missing
#: from the 130,831-molecule ``qm9pack`` table.
QM9_UNCHARACTERIZED = RawFile(
    "uncharacterized.txt", url="https://ndownloader.figshare.com/files/3195404", subdir="qm9",
    content=ContentPin(lambda path: sorted(_read_uncharacterized(path)),
                       "ba70374c21dbc8a32e19ef74a9882ba5dc16c9d3eec3c8aa93631a90221e9777", "sorted GDB indices"),
)


#: The QM9 data conventions ``qm9`` reproduces (option ``protocol``): graphdiff's own, GDSS's and DiGress's.
QM9_PROTOCOLS = ("graphdiff", "gdss", "digress")
#: The node types of GDSS's and DiGress's QM9: elements only, the formal charges of the molecules dropped.
QM9_NEUTRAL_ATOMS = ["C", "N", "O", "F"]
#: GDSS's QM9 test rows (``{"valid_idxs": ["007278", ...]}``: 13,082 0-based row numbers of MoFlow's ``qm9.csv``),
#: from the GDSS repository at the pinned commit.
QM9_GDSS_TEST_INDEX = RawFile(
    "valid_idx_qm9.json", GDSS_DATA_URL + "valid_idx_qm9.json",
    "889fd232a33d8a2c00f057c807b119e72abd5baa48f6fab93e8d8b7a79340f4d", "qm9",
    git_blob="7823322e4c6fa9b1d7fda3e113801dc31def921f",
)


def _resolve_qm9(ctx: BuildContext) -> Path:
    """The QM9 table to read: a local ``qm9.csv.gz`` (``Index,SMILES,...``), else ``qm9.csv`` (see :data:`QM9_CSV`)."""
    try:
        return resolve(ctx.name, QM9_PACK, ctx.root, download=False)
    except DataError:
        pass
    try:
        return resolve(ctx.name, QM9_CSV, ctx.root)
    except DataError as exc:
        raise DataError(f"{exc} (or a qm9.csv.gz with columns Index,SMILES)") from None


def _build_qm9(ctx: BuildContext, explicit_h: bool) -> BuiltDataset:
    opts = ctx.options
    path = _resolve_qm9(ctx)
    header = csv_header(path)
    extra: list[Path] = []
    skipped: dict[str, Any] = {}
    if "mol_id" in header or "SMILES1" in header:  # DeepChem / MoFlow: drop the uncharacterized as DiGress does
        row_numbers = "mol_id" not in header  # MoFlow: the first column is the row number, GDB index - 1
        column, id_column = ("SMILES1", header[0]) if row_numbers else ("smiles", "mol_id")
        records = read_smiles_records(path, column=column, id_column=id_column, limit=opts["limit"])
        unc_path = resolve(ctx.name, QM9_UNCHARACTERIZED, ctx.root)
        extra.append(unc_path)
        uncharacterized = _read_uncharacterized(unc_path)
        pairs = zip(records.ids, records.lines, strict=True)
        ids = np.array([_gdb_index(path, value, line, row_numbers) for value, line in pairs], dtype=np.int64)
        drop = np.isin(ids, np.fromiter(uncharacterized, dtype=np.int64))
        if drop.any():
            lines = np.asarray(records.lines)[drop]
            skipped["uncharacterized"] = {"count": int(drop.sum()), "lines": lines[:MAX_REPORTED_LINES].tolist()}
            report_skipped(str(path), skipped)
        keep = ~drop
    elif "SMILES" in header:
        records = read_smiles_records(path, column="SMILES", limit=opts["limit"])
        keep = None
    else:
        raise DataError(
            f"{path}: not a QM9 table; expected columns Index,SMILES or mol_id,smiles or ,SMILES1,SMILES2, "
            f"found {', '.join(header)}"
        )

    parsed = parse_smiles(records, explicit_h=explicit_h, kekulize=opts["kekulize"], keep=keep)
    source = multi_file_source([path, *extra]) if extra else file_source(path)
    properties = qm9_properties(records.numbers)
    if opts.get("protocol") == "digress":
        return _digress_qm9(parsed, path, source, {**skipped, **parsed.skipped}, properties)
    atoms = AtomVocabulary.from_names(QM9_ATOMS + (["H"] if explicit_h else []))
    parsed, classes = parsed.apply_vocabulary(atoms, str(path))
    bonds = BondVocabulary(aromatic=not opts["kekulize"])
    splits = qm9_split(len(parsed))
    return parsed.to_built(classes, atoms, bonds, splits, source, {**skipped, **parsed.skipped}, properties)


def _neutral(parsed: ParsedMolecules) -> ParsedMolecules:
    """``parsed`` with every atom's formal charge dropped (its atom key made that of the neutral element)."""
    stride = atom_key(1, 0) - atom_key(0, 0)  # keys are atomic number * stride + charge + atom_key(0, 0)
    return replace(parsed, atom_keys=atom_key(0, 0) + stride * (parsed.atom_keys // stride))


def _digress_qm9(parsed: ParsedMolecules, path: Path, source: dict[str, Any], skipped: dict[str, Any],
                 properties: dict[str, np.ndarray]) -> BuiltDataset:
    """QM9 as DiGress holds it: atoms C, N, O, F without charges, bond classes none, single, double, triple,
    aromatic (DiGress reads the Kekule SDF unsanitised, so the last class stays unused unless ``kekulize=False``);
    graphdiff's split, which is DiGress's. The stored SMILES are those of DiGress's decoding of each graph (its
    training SMILES: :func:`graphdiff.chem.mols_with_inferred_charges`), which differ from the source's for the
    molecules with charged atoms."""
    neutral = _neutral(parsed)
    graph_of_atom = np.repeat(np.arange(len(parsed)), parsed.num_atoms)
    charged = np.unique(graph_of_atom[neutral.atom_keys != parsed.atom_keys]).tolist()
    atoms = AtomVocabulary.from_names(QM9_NEUTRAL_ATOMS)
    parsed, classes = neutral.apply_vocabulary(atoms, str(path))
    bonds = BondVocabulary(aromatic=True)
    graphs = parsed.to_graph_list(classes)
    decoded = mols_with_inferred_charges(graphs.subset(charged), atoms, bonds, "upper")
    smiles = list(parsed.smiles)
    for k, mol in zip(charged, decoded, strict=True):
        smiles[k] = canonical_smiles(mol) or ""
    parsed = replace(parsed, smiles=smiles)
    return parsed.to_built(classes, atoms, bonds, qm9_split(len(parsed)), source, skipped, properties)


#: QM9's DFT properties as graphdiff names them, from the columns of the qm9pack table (and DeepChem's, whose
#: names are these already), with the factor to graphdiff's units: energies in eV as PyTorch Geometric's QM9 (and
#: so DiGress's conditional QM9), the dipole moment in debye, the polarizability in bohr^3, ``r2`` in bohr^2,
#: ``cv`` in cal/(mol K).
_HARTREE_EV = 27.211386246
QM9_PROPERTY_COLUMNS: dict[str, tuple[str, float]] = {
    "Dipole_debye": ("mu", 1.0), "mu": ("mu", 1.0),
    "Polarizability_bohr3": ("alpha", 1.0), "alpha": ("alpha", 1.0),
    "HOMO_au": ("homo", _HARTREE_EV), "homo": ("homo", _HARTREE_EV),
    "LUMO_au": ("lumo", _HARTREE_EV), "lumo": ("lumo", _HARTREE_EV),
    "HOMO_LUMO_gap_au": ("gap", _HARTREE_EV), "gap": ("gap", _HARTREE_EV),
    "R2_bohr2": ("r2", 1.0), "r2": ("r2", 1.0),
    "ZPVE_au": ("zpve", _HARTREE_EV), "zpve": ("zpve", _HARTREE_EV),
    "InternalEnergy_0K_au": ("u0", _HARTREE_EV), "u0": ("u0", _HARTREE_EV),
    "Heatcapacity_Cv_cal_mol_K": ("cv", 1.0), "cv": ("cv", 1.0),
}


def qm9_properties(numbers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The QM9 property columns of a table (see :data:`QM9_PROPERTY_COLUMNS`), renamed and in graphdiff's units."""
    return {QM9_PROPERTY_COLUMNS[c][0]: v * QM9_PROPERTY_COLUMNS[c][1]
            for c, v in numbers.items() if c in QM9_PROPERTY_COLUMNS}


def _gdb_index(path: Path, value: str, line: int, row_number: bool) -> int:
    """The GDB index of a QM9 row, from DeepChem's ``mol_id`` (``gdb_<n>``) or MoFlow's 0-based row number.

    Raises:
        DataError: ``value`` is neither, naming the file and line.
    """
    try:
        return int(value) + 1 if row_number else int(value.rsplit("_", 1)[-1])
    except ValueError:
        what = "row number" if row_number else "mol_id"
        form = "an integer" if row_number else "of the form gdb_<number>"
        raise DataError(f"{path}: line {line}: {what} {value!r} is not {form}") from None


def _read_uncharacterized(path: Path) -> set[int]:
    """GDB indices from ``uncharacterized.txt``: rows whose first field is an index (header skipped)."""
    indices = set()
    for line in read_file_text(path).splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].isdigit():
            indices.add(int(words[0]))
    if not indices:
        raise DataError(f"{path}: no molecule indices found; expected QM9's uncharacterized.txt")
    return indices


# QM9 is kekulized by default: DiGress reads it from the SDF file, whose bonds are Kekule (its aromatic
# class is never used), and heavy-atom *aromatic* graphs do not say which ring nitrogens carry a hydrogen
# -- 3,245 of the 130,831 molecules (2.5%) do not come back from them, against 0 from Kekule graphs.
@register(
    "qm9",
    "molecule",
    "QM9: 130,831 small molecules (<= 9 heavy atoms C, N, O, F), hydrogens implicit, Kekule bonds; DiGress split",
    kekulize=True,
    limit=None,
    protocol="graphdiff",
)
def build_qm9(ctx: BuildContext) -> BuiltDataset:
    protocol = ctx.options["protocol"]
    if protocol not in QM9_PROTOCOLS:
        raise ConfigError(f"dataset qm9: option protocol={protocol!r}: expected one of {', '.join(QM9_PROTOCOLS)}")
    if protocol == "gdss":
        return _gdss_qm9(ctx)
    return _build_qm9(ctx, explicit_h=False)


def _gdss_qm9(ctx: BuildContext) -> BuiltDataset:
    """QM9 as GDSS holds it: every row of MoFlow's ``qm9.csv`` (column ``SMILES1``; the uncharacterized molecules are
    kept), the rows of ``valid_idx_qm9.json`` as the test set and ``val`` (GDSS has no validation set), the others
    as the training set; atoms C, N, O, F by element, the formal charges dropped as GDSS's atomic-number tensors drop
    them; Kekule bonds. The stored SMILES are the source's (with charges), as GDSS's reference SMILES for novelty,
    FCD and NSPDK."""
    opts = ctx.options
    try:
        path = resolve(ctx.name, QM9_CSV, ctx.root)
    except DataError as exc:
        raise DataError(f"{exc} (protocol gdss reads MoFlow's qm9.csv, not qm9.csv.gz)") from None
    header = csv_header(path)
    if "SMILES1" not in header:
        raise DataError(f"{path}: protocol gdss needs MoFlow's qm9.csv (columns ,SMILES1,SMILES2,...), "
                        f"found columns {', '.join(header)}")
    index_path = resolve(ctx.name, QM9_GDSS_TEST_INDEX, ctx.root)
    records = read_smiles_records(path, column="SMILES1", limit=opts["limit"])
    test_rows = _read_index_file(index_path, len(records), opts["limit"] is not None)
    parsed = require_molecules(parse_smiles(records, kekulize=opts["kekulize"]), records)
    atoms = AtomVocabulary.from_names(QM9_NEUTRAL_ATOMS)
    parsed, classes = _neutral(parsed).apply_vocabulary(atoms, str(path))
    test = np.flatnonzero(np.isin(parsed.rows, test_rows))
    splits = {"train": np.flatnonzero(~np.isin(parsed.rows, test_rows)), "val": test, "test": test}
    return parsed.to_built(classes, atoms, BondVocabulary(aromatic=not opts["kekulize"]), splits,
                           multi_file_source([path, index_path]), parsed.skipped, qm9_properties(records.numbers))


@register(
    "qm9_h",
    "molecule",
    "QM9 with explicit hydrogens (<= 29 atoms H, C, N, O, F), Kekule bonds; DiGress split",
    kekulize=True,
    limit=None,
)
def build_qm9_h(ctx: BuildContext) -> BuiltDataset:
    return _build_qm9(ctx, explicit_h=True)


# ---------------------------------------------------------------------------------------------- MOSES
#: Atom types of the MOSES files (no charged atoms occur: MOSES filtered them out).
MOSES_ATOMS = ["C", "N", "O", "F", "S", "Cl", "Br"]
_MOSES_URL = (
    "https://media.githubusercontent.com/media/molecularsets/moses/dd7ed6ab38e23afd3ef5371d67939a1760bd8599/"
    "moses/dataset/data/"
)
#: The files of the ``molsets`` package (Git LFS objects of molecularsets/moses at a fixed commit; the SHA-256
#: values are the LFS object ids).
MOSES_FILES = {
    "train": RawFile(
        "train.csv.gz", _MOSES_URL + "train.csv.gz",
        "786f0313aa6b9ba5514df685f885742a70ea8d86f1a4fa48115f7f80a634265c", "moses",
    ),
    "test": RawFile(
        "test.csv.gz", _MOSES_URL + "test.csv.gz",
        "f896fbf3764f88d94670b9959e5872c600c12152a18233823e820761b7a791b2", "moses",
    ),
    "test_scaffolds": RawFile(
        "test_scaffolds.csv.gz", _MOSES_URL + "test_scaffolds.csv.gz",
        "adffb2192c1bfe31ab0e13154d4af19a37dc18bdbf3cd7b4491e04405128adde", "moses",
    ),
}


@register(
    "moses",
    "molecule",
    "MOSES benchmark (ZINC Clean Leads; C, N, O, F, S, Cl, Br): train / test (= val) / test_scaffolds",
    kekulize=False,
    limit=None,
    max_nodes=None,
)
def build_moses(ctx: BuildContext) -> BuiltDataset:
    opts = ctx.options
    atoms = AtomVocabulary.from_names(MOSES_ATOMS)
    parts, paths, skipped, classes = [], [], {}, []
    for raw in MOSES_FILES.values():
        path = resolve(ctx.name, raw, ctx.root)
        records = read_smiles_records(path, column="SMILES", limit=opts["limit"])
        parsed = parse_smiles(records, kekulize=opts["kekulize"], max_nodes=opts["max_nodes"])
        parsed, cls = parsed.apply_vocabulary(atoms, str(path))
        parts.append(parsed)
        classes.append(cls)
        paths.append(path)
        skipped[raw.name] = parsed.skipped
    ends = np.cumsum([0] + [len(p) for p in parts])
    ranges = {name: np.arange(ends[k], ends[k + 1]) for k, name in enumerate(MOSES_FILES)}
    # MOSES has no validation set: like DiGress, validate on MOSES test, which is also the test set.
    splits = {"train": ranges["train"], "val": ranges["test"], "test": ranges["test"],
              "test_scaffolds": ranges["test_scaffolds"]}
    bonds = BondVocabulary(not opts["kekulize"])
    return ParsedMolecules.concat(parts).to_built(np.concatenate(classes), atoms, bonds, splits,
                                                  multi_file_source(paths), merge_skipped(skipped))


# ---------------------------------------------------------------------------------------------- ZINC250k
#: The chemical VAE repository's file at a fixed commit, pinned by the git blob id its tree records.
ZINC250K_CSV = RawFile(
    "250k_rndm_zinc_drugs_clean_3.csv",
    "https://raw.githubusercontent.com/aspuru-guzik-group/chemical_vae/a509dc613c4c9be54d448a34829bab25bcf09a79/"
    "models/zinc_properties/250k_rndm_zinc_drugs_clean_3.csv",
    subdir="zinc250k",
    git_blob="d31726bf929d35cb52fa109db90411c90a000dfe",
)
#: The test rows of GDSS / MoFlow / GraphAF (a JSON list of 24,887 0-based row numbers of the CSV), from the
#: GDSS repository at the pinned commit.
ZINC250K_TEST_INDEX = RawFile(
    "valid_idx_zinc250k.json",
    GDSS_DATA_URL + "valid_idx_zinc250k.json",
    "cf1af3a8588c947493ff0a2b60178db6726e9a4dbb445235b149cd3bbe6831df",
    "zinc250k",
)


@register(
    "zinc250k",
    "molecule",
    "ZINC250k (chemical VAE file) with the GDSS/MoFlow test rows; kekulized like GDSS",
    kekulize=True,
    limit=None,
    max_nodes=None,
)
def build_zinc250k(ctx: BuildContext) -> BuiltDataset:
    opts = ctx.options
    path = resolve(ctx.name, ZINC250K_CSV, ctx.root)
    index_path = resolve(ctx.name, ZINC250K_TEST_INDEX, ctx.root)
    records = read_smiles_records(path, column="smiles", limit=opts["limit"])
    test_rows = _read_index_file(index_path, len(records), opts["limit"] is not None)
    parsed = require_molecules(parse_smiles(records, kekulize=opts["kekulize"], max_nodes=opts["max_nodes"]), records)
    atoms = AtomVocabulary(sorted(parsed.atom_types(), key=AtomType.sort_key))
    parsed, classes = parsed.apply_vocabulary(atoms, str(path))
    is_test = np.isin(parsed.rows, test_rows)
    test = np.flatnonzero(is_test)
    # GDSS has no validation set and evaluates on the test rows; val is the test set here too.
    splits = {"train": np.flatnonzero(~is_test), "val": test, "test": test}
    # The file's property columns under graphdiff's names (logP and QED by RDKit, the SA score of Ertl et al.).
    columns = {{"logP": "logp", "qed": "qed", "SAS": "sa"}.get(k, k): v for k, v in records.numbers.items()}
    return parsed.to_built(classes, atoms, BondVocabulary(not opts["kekulize"]), splits,
                           multi_file_source([path, index_path]), parsed.skipped, columns)


def _read_index_file(path: Path, num_rows: int, truncated: bool) -> np.ndarray:
    """Row numbers from a JSON list (or ``{"valid_idxs": [...]}``), checked against the row count."""
    try:
        data = json.loads(read_file_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if isinstance(data, dict) and "valid_idxs" in data:
        data = data["valid_idxs"]
    try:
        rows = np.asarray([int(v) for v in data], dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: expected a JSON list of row numbers") from None
    if rows.size and (rows.min() < 0 or (not truncated and rows.max() >= num_rows)):
        raise DataError(f"{path}: row numbers must lie in 0..{num_rows - 1}, found {rows.min()}..{rows.max()}")
    return rows


# ---------------------------------------------------------------------------------------------- GuacaMol
_FIGSHARE = "https://ndownloader.figshare.com/files/"
#: GuacaMol v1 files, pinned by the MD5 sums the GuacaMol README publishes (no SHA-256 is published).
GUACAMOL_FILES = {
    "train": RawFile("guacamol_v1_train.smiles", _FIGSHARE + "13612760", subdir="guacamol",
                     md5="05ad85d871958a05c02ab51a4fde8530"),
    "val": RawFile("guacamol_v1_valid.smiles", _FIGSHARE + "13612766", subdir="guacamol",
                   md5="e53db4bff7dc4784123ae6df72e3b1f0"),
    "test": RawFile("guacamol_v1_test.smiles", _FIGSHARE + "13612757", subdir="guacamol",
                    md5="677b757ccec4809febd83850b43e1616"),
}


@register(
    "guacamol",
    "molecule",
    "GuacaMol v1 (ChEMBL 24 subset): train / valid / test files",
    kekulize=False,
    limit=None,
    max_nodes=None,
)
def build_guacamol(ctx: BuildContext) -> BuiltDataset:
    opts = ctx.options
    parts, paths, skipped = [], [], {}
    for raw in GUACAMOL_FILES.values():
        path = resolve(ctx.name, raw, ctx.root)
        records = read_smiles_records(path, limit=opts["limit"])
        parsed = require_molecules(
            parse_smiles(records, kekulize=opts["kekulize"], max_nodes=opts["max_nodes"]), records
        )
        parts.append(parsed)
        paths.append(path)
        skipped[raw.name] = parsed.skipped
    # The vocabulary is read from the data (all three files), in the fixed element / charge order.
    types = {t for p in parts for t in p.atom_types()}
    atoms = AtomVocabulary(sorted(types, key=AtomType.sort_key))
    classes = [p.apply_vocabulary(atoms, str(path))[1] for p, path in zip(parts, paths, strict=True)]
    ends = np.cumsum([0] + [len(p) for p in parts])
    splits = {name: np.arange(ends[k], ends[k + 1]) for k, name in enumerate(GUACAMOL_FILES)}
    bonds = BondVocabulary(not opts["kekulize"])
    return ParsedMolecules.concat(parts).to_built(np.concatenate(classes), atoms, bonds, splits,
                                                  multi_file_source(paths), merge_skipped(skipped))
