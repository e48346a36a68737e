"""Pinned downloads: graphdiff downloads a raw file only when its content is pinned (SHA-256, MD5, git blob id or
parsed content), deletes and refuses a download whose digest differs, and reads QM9 in its three layouts.

No test touches the network: ``urllib.request.urlopen`` is replaced by a function that serves bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import networkx as nx
import pytest

from graphdiff.datasets import gdss_sets, molecule_sets
from graphdiff.datasets.gdss_sets import GDSS_SETS
from graphdiff.datasets.graph_formats import read_graph_file
from graphdiff.datasets.molecule_sets import QM9_CSV, QM9_UNCHARACTERIZED, ZINC250K_TEST_INDEX, _read_index_file
from graphdiff.datasets.registry import load_dataset
from graphdiff.datasets.sources import GDSS_DATA_URL, ContentPin, RawFile, content_sha256, file_digest, resolve
from graphdiff.errors import DataError
from tests.conftest import data_file

URL = "https://example.org/files/f.txt"
MIRRORS = Path("/work/.mirror")


def serve(monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes]) -> list[str]:
    """Replace ``urlopen`` by one serving ``files`` (URL -> bytes); returns the list of requested URLs."""
    requested: list[str] = []

    def urlopen(url: str, timeout: float | None = None) -> io.BytesIO:
        requested.append(url)
        if url not in files:
            raise urllib.error.URLError("not served in this test")
        return io.BytesIO(files[url])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return requested


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def one_line(excinfo: pytest.ExceptionInfo, *needles: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message


# ---------------------------------------------------------------------------------------------- digests
def test_git_blob_ids_are_what_git_computes(tmp_path):
    # Hand-checked ids: the empty blob and "hello\n" (`printf 'hello\n' | git hash-object --stdin`).
    for data, blob in ((b"", "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"),
                       (b"hello\n", "ce013625030ba8dba906f756967f9e9ca394464a")):
        path = tmp_path / "f"
        path.write_bytes(data)
        assert file_digest(path, "git_blob") == blob
        assert file_digest(path, "sha256") == hashlib.sha256(data).hexdigest()
        assert file_digest(path, "md5") == hashlib.md5(data).hexdigest()
    path.write_bytes(os.urandom(3 << 20))  # several read blocks
    if shutil.which("git"):
        git = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True)
        assert file_digest(path, "git_blob") == git.stdout.strip()


def test_a_download_url_without_a_pin_is_a_programming_error():
    with pytest.raises(ValueError, match="needs a pin"):
        RawFile("f.txt", URL)
    assert RawFile("f.txt").url is None  # local-only files need none


DATA = b"hello\nworld\n"
GOOD_PINS = {
    "sha256": {"sha256": hashlib.sha256(DATA).hexdigest()},
    "md5": {"md5": hashlib.md5(DATA).hexdigest()},
    "git_blob": {"git_blob": "94954abda49de8615a048f8d2e64b5de848e27a1"},  # git hash-object of DATA
    "content": {"content": ContentPin(lambda p: p.read_text().split(), content_sha256(["hello", "world"]), "words")},
}


@pytest.mark.parametrize("kind", list(GOOD_PINS))
def test_a_download_matching_its_pin_is_kept(tmp_path, monkeypatch, kind):
    requested = serve(monkeypatch, {URL: DATA})
    path = resolve("ds", RawFile("f.txt", URL, **GOOD_PINS[kind]), tmp_path)
    assert path == tmp_path / "ds" / "raw" / "f.txt" and path.read_bytes() == DATA
    assert requested == [URL] and sorted(p.name for p in path.parent.iterdir()) == ["f.txt"]


@pytest.mark.parametrize(
    "pin, needle",
    [({"sha256": "ab" * 32}, f"SHA-256 {hashlib.sha256(DATA).hexdigest()}, expected {'ab' * 32}"),
     ({"md5": "cd" * 16}, f"MD5 {hashlib.md5(DATA).hexdigest()}, expected {'cd' * 16}"),
     ({"git_blob": "ef" * 20}, f"git blob id {GOOD_PINS['git_blob']['git_blob']}, expected {'ef' * 20}"),
     ({"content": ContentPin(lambda p: p.read_text().split(), "12" * 32, "words")},
      f"words with SHA-256 {content_sha256(['hello', 'world'])}, expected {'12' * 32}"),
     ({"sha256": hashlib.sha256(DATA).hexdigest(), "md5": "cd" * 16}, f"expected {'cd' * 16}")],
    ids=["sha256", "md5", "git_blob", "content", "one_of_two"],
)
def test_a_download_with_a_wrong_digest_is_deleted_and_refused(tmp_path, monkeypatch, pin, needle):
    serve(monkeypatch, {URL: DATA})
    with pytest.raises(DataError) as excinfo:
        resolve("ds", RawFile("f.txt", URL, **pin), tmp_path)
    one_line(excinfo, "ds: ", URL, needle, "deleted", str(tmp_path / "ds" / "raw" / "f.txt"))
    assert list((tmp_path / "ds" / "raw").iterdir()) == []


def test_a_download_that_cannot_be_parsed_for_its_content_pin_is_deleted(tmp_path, monkeypatch):
    def parse(path: Path) -> list[int]:
        raise DataError(f"{path}: no numbers")

    serve(monkeypatch, {URL: DATA})
    with pytest.raises(DataError) as excinfo:
        resolve("ds", RawFile("f.txt", URL, content=ContentPin(parse, "12" * 32, "numbers")), tmp_path)
    one_line(excinfo, URL, "cannot be read as numbers", "no numbers", "deleted")
    assert list((tmp_path / "ds" / "raw").iterdir()) == []


def test_a_download_shows_a_progress_bar_in_mib(tmp_path, monkeypatch, capsys):
    data = os.urandom((3 << 20) + 5)
    serve(monkeypatch, {URL: data})
    monkeypatch.setenv("GRAPHDIFF_PROGRESS", "1")
    path = resolve("ds", RawFile("f.txt", URL, sha256=hashlib.sha256(data).hexdigest()), tmp_path)
    assert path.read_bytes() == data
    err = capsys.readouterr().err
    assert "downloading f.txt" in err and "MiB" in err
    monkeypatch.setenv("GRAPHDIFF_PROGRESS", "0")
    path.unlink()
    resolve("ds", RawFile("f.txt", URL, sha256=hashlib.sha256(data).hexdigest()), tmp_path)
    assert capsys.readouterr().err == ""


def test_local_files_are_the_users_and_are_not_checked(tmp_path, monkeypatch):
    requested = serve(monkeypatch, {})
    write(tmp_path / "ds" / "raw" / "f.txt", "anything")
    assert resolve("ds", RawFile("f.txt", URL, sha256="ab" * 32), tmp_path).read_text() == "anything"
    assert requested == []


# ---------------------------------------------------------------------------------------------- graphdiff's files
def _raw_files() -> list[RawFile]:
    found: list[RawFile] = []
    for module in (molecule_sets, gdss_sets):
        for value in vars(module).values():
            values = value.values() if isinstance(value, dict) else [value]
            found += [v for v in values if isinstance(v, RawFile)]
    found += [RawFile(s.pickle_name, GDSS_DATA_URL + s.pickle_name, s.pickle_sha256) for s in GDSS_SETS.values()]
    return found


def test_every_download_is_pinned_and_git_hosted_ones_name_a_commit():
    downloads = [raw for raw in _raw_files() if raw.url]
    assert len(downloads) >= 14  # MOSES 3, GuacaMol 3, ZINC250k 2, QM9 2, GDSS 4
    for raw in downloads:
        assert raw.digests() or raw.content, raw
        if "github" in raw.url:
            assert re.search(r"/[0-9a-f]{40}/", raw.url), f"{raw.url} does not name a commit"
    assert QM9_CSV.url.startswith(GDSS_DATA_URL) and "deepchem" not in " ".join(r.url for r in downloads).lower()


def _git(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True).stdout


@pytest.mark.parametrize("raw", [r for r in _raw_files() if r.url and "github" in r.url], ids=lambda r: r.name)
def test_pins_match_the_repository_at_the_pinned_commit(raw):
    pattern = r"https://[^/]+/(?:media/)?([^/]+)/([^/]+)/([0-9a-f]{40})/(.+)"
    owner, repo, commit, path = re.match(pattern, raw.url).groups()
    mirror = MIRRORS / f"{owner}+{repo}" / "repo"
    if not (mirror / "HEAD").exists():
        pytest.skip(f"{owner}/{repo} is not mirrored here")
    blob = _git(mirror, "ls-tree", commit, path).decode().split()[2]  # "<mode> blob <id>\t<path>"
    if raw.git_blob:
        assert blob == raw.git_blob
    if raw.sha256:
        content = _git(mirror, "cat-file", "blob", blob)
        if raw.url.startswith("https://media.githubusercontent.com/media/"):  # Git LFS: the tree holds a pointer
            assert f"oid sha256:{raw.sha256}".encode() in content
        else:
            assert hashlib.sha256(content).hexdigest() == raw.sha256


def test_the_uncharacterized_pin_is_the_set_missing_from_qm9pack(tmp_path):
    path = data_file("qm9", "qm9.csv.gz")
    with gzip.open(path, "rt") as f:
        present = {int(line.split(",", 1)[0]) for line in list(f)[1:]}
    missing = sorted(set(range(1, 133_886)) - present)
    assert len(present) == 130_831 and len(missing) == 3_054
    assert content_sha256(missing) == QM9_UNCHARACTERIZED.content.sha256
    unc = write(tmp_path / "uncharacterized.txt", _uncharacterized_text(missing))
    assert content_sha256(QM9_UNCHARACTERIZED.content.parse(unc)) == QM9_UNCHARACTERIZED.content.sha256


def test_the_gdss_zinc250k_test_index_reads_as_row_numbers(tmp_path):
    mirror = MIRRORS / "harryjo97+GDSS" / "repo"
    if not (mirror / "HEAD").exists():
        pytest.skip("the GDSS repository is not mirrored here")
    commit = ZINC250K_TEST_INDEX.url.split("/")[-3]
    path = tmp_path / "valid_idx_zinc250k.json"
    path.write_bytes(_git(mirror, "show", f"{commit}:data/valid_idx_zinc250k.json"))
    rows = _read_index_file(path, 249_455, truncated=False)
    assert rows.tolist() == json.loads(path.read_text()) and len(rows) == 24_887 and rows.max() < 249_455


# ---------------------------------------------------------------------------------------------- GDSS download
def test_gdss_pickle_downloads_are_checked(data_root, monkeypatch):
    reference = data_file("graphs", "ego_small.json.gz")
    monkeypatch.setenv("GRAPHDIFF_DATA_DIR", str(data_root / "nothing"))
    url = GDSS_DATA_URL + "ego_small.pkl"
    serve(monkeypatch, {url: pickle.dumps([nx.path_graph(3)])})
    with pytest.raises(DataError) as excinfo:
        load_dataset("ego_small")
    one_line(excinfo, url, f"expected {GDSS_SETS['ego_small'].pickle_sha256}", "deleted")
    assert list((data_root / "ego_small" / "raw").iterdir()) == []

    mirror = MIRRORS / "harryjo97+GDSS" / "repo"
    if not (mirror / "HEAD").exists():
        pytest.skip("the GDSS repository is not mirrored here")
    real = _git(mirror, "show", f"{url.split('/')[-3]}:data/ego_small.pkl")
    serve(monkeypatch, {url: real})
    ds = load_dataset("ego_small")
    assert ds.info.source["format"] == "pickle" and ds.info.source["sha256"] == GDSS_SETS["ego_small"].pickle_sha256
    expected = read_graph_file(reference)
    assert ds.graphs.num_nodes.tolist() == [t[0].numel() for t in expected.triples]
    assert ds.graphs.num_edges.tolist() == [t[2].numel() for t in expected.triples]


# ---------------------------------------------------------------------------------------------- QM9 layouts
SMILES = ["C", "N", "O", "C#C", "C#N"]  # GDB indices 1..5
TABLES = {
    "deepchem": "mol_id,smiles,A\n" + "".join(f"gdb_{k + 1},{s},1\n" for k, s in enumerate(SMILES)),
    "moflow": ",SMILES1,SMILES2,A,B\n" + "".join(f"{k},{s},{s},1,2\n" for k, s in enumerate(SMILES)),
}


def _uncharacterized_text(indices: list[int]) -> str:
    """The layout of QM9's ``uncharacterized.txt``: a header, one row per molecule, a blank line at the end."""
    rows = "".join(f"{i:7d}   C   C   0.1\n" for i in indices)
    return f"Uncharacterized molecules\n  Index  GDB17 SMILES  B3LYP SMILES  delta\n{rows}\n"


@pytest.mark.parametrize("layout", list(TABLES))
def test_qm9_tables_drop_the_uncharacterized_by_gdb_index(data_root, tmp_path, monkeypatch, layout):
    monkeypatch.setenv("GRAPHDIFF_DATA_DIR", str(tmp_path / "nothing"))
    serve(monkeypatch, {})  # nothing may be downloaded: both files are placed
    raw = data_root / "qm9" / "raw"
    write(raw / "qm9.csv", TABLES[layout])
    write(raw / "uncharacterized.txt", _uncharacterized_text([2, 5]))
    ds = load_dataset("qm9")
    assert ds.smiles == ["C", "O", "C#C"]
    assert ds.info.skipped["uncharacterized"] == {"count": 2, "lines": [3, 6]}
    assert [Path(f["file"]).name for f in ds.info.source["files"]] == ["qm9.csv", "uncharacterized.txt"]


def test_qm9pack_table_needs_no_uncharacterized_list(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHDIFF_DATA_DIR", str(tmp_path / "nothing"))
    serve(monkeypatch, {})
    (data_root / "qm9" / "raw").mkdir(parents=True)
    with gzip.open(data_root / "qm9" / "raw" / "qm9.csv.gz", "wt") as f:
        f.write("Index,SMILES\n1,C\n3,O\n4,C#C\n")
    ds = load_dataset("qm9")
    assert ds.smiles == ["C", "O", "C#C"] and "uncharacterized" not in ds.info.skipped


def test_moflow_row_numbers_must_be_integers(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHDIFF_DATA_DIR", str(tmp_path / "nothing"))
    raw = data_root / "qm9" / "raw"
    write(raw / "qm9.csv", ",SMILES1,SMILES2\n0,C,C\nx,N,N\n")
    write(raw / "uncharacterized.txt", _uncharacterized_text([2]))
    with pytest.raises(DataError) as excinfo:
        load_dataset("qm9")
    one_line(excinfo, "qm9.csv: line 3: row number 'x' is not an integer")


def test_qm9_downloads_gdss_table_and_checks_both_files(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHDIFF_DATA_DIR", str(tmp_path / "nothing"))
    raw = data_root / "qm9" / "raw"
    requested = serve(monkeypatch, {QM9_CSV.url: TABLES["moflow"].encode()})
    with pytest.raises(DataError) as excinfo:  # not GDSS's bytes
        load_dataset("qm9")
    one_line(excinfo, QM9_CSV.url, "git blob id", f"expected {QM9_CSV.git_blob}", "deleted")
    assert requested == [QM9_CSV.url] and list(raw.iterdir()) == []

    write(raw / "qm9.csv", TABLES["moflow"])
    serve(monkeypatch, {QM9_UNCHARACTERIZED.url: _uncharacterized_text([2, 5]).encode()})
    with pytest.raises(DataError) as excinfo:  # a list other than QM9's 3,054 molecules
        load_dataset("qm9")
    one_line(excinfo, QM9_UNCHARACTERIZED.url, "sorted GDB indices with SHA-256",
             f"expected {QM9_UNCHARACTERIZED.content.sha256}", "deleted")
    assert sorted(p.name for p in raw.iterdir()) == ["qm9.csv"]
