"""The dataset cache under stress: file modes, killed writers, shared folders, concurrent builders, damaged
files, terminated parses, and bad roots or options."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from graphdiff.cli import main as cli_main
from graphdiff.datasets import molecule_parsing, user_files
from graphdiff.datasets.cache import build_or_load
from graphdiff.datasets.datamodule import GraphDataModule, open_dataset
from graphdiff.datasets.dataset import BuiltDataset
from graphdiff.datasets.registry import load_dataset
from graphdiff.datasets.smiles_files import SmilesRecords
from graphdiff.datasets.user_files import from_pyg, load_graph_file, load_smiles_file
from graphdiff.errors import GraphdiffError
from graphdiff.io import (
    UNOWNED_TEMP_AGE_S,
    _host_tag,
    atomic_write,
    current_umask,
    remove_stale_temp_files,
    torch_save,
    write_json,
)
from graphdiff.storage import GraphList

REPO = Path(__file__).resolve().parents[2]
LINUX = sys.platform.startswith("linux")


def toy_builder(calls: list | None = None, counter: Path | None = None, delay: float = 0.0, kind: str = "graph"):
    """A builder of 6 small graphs that counts its calls in ``calls`` and/or a file."""

    def builder(ctx):
        if calls is not None:
            calls.append(1)
        if counter is not None:
            with open(counter, "a") as f:
                f.write(f"{os.getpid()}\n")
        time.sleep(delay)
        graphs = GraphList.from_graphs(
            [(torch.tensor([0] * (i + 2)), torch.tensor([[0], [1]]), torch.tensor([1 + i % 2])) for i in range(6)]
        )
        splits = {"train": torch.tensor([0, 2, 3, 5]), "val": torch.tensor([1]), "test": torch.tensor([4])}
        smiles = [f"C{'C' * i}" for i in range(6)] if kind == "molecule" else None
        return BuiltDataset(graphs, splits, kind, ["C"], ["none", "single", "double"], {"generator": "toy"},
                            smiles=smiles)

    return builder


def one_line_error(call: Callable[[], object]) -> str:
    with pytest.raises(GraphdiffError) as info:
        call()
    message = str(info.value)
    assert message and "\n" not in message, message
    return message


# ---------------------------------------------------------------------------------------------- 1. file modes
@pytest.fixture
def umask():
    """Set the process umask for one test."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_mode_open_would_give(tmp_path, umask, mask, expected):
    umask(mask)
    assert current_umask() == mask
    write_json(tmp_path / "a.json", {"x": 1})
    torch_save({"x": torch.zeros(2)}, tmp_path / "b.pt")
    with atomic_write(tmp_path / "c.txt") as f:
        f.write("c")
    with open(tmp_path / "plain.txt", "w") as f:
        f.write("p")
    for name in ("a.json", "b.pt", "c.txt", "plain.txt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == expected, name
    build_or_load("toy", "graph", toy_builder(), tmp_path / "root", {})
    for name in ("graphs.pt", "splits.json", "info.json"):
        assert (tmp_path / "root/toy/processed" / name).stat().st_mode & 0o777 == expected, name


# ---------------------------------------------------------------------------------------------- 2. stale temp files
WRITER = textwrap.dedent("""
    import sys, time
    from graphdiff.io import atomic_write
    with atomic_write(sys.argv[1], "wb") as f:
        f.write(b"partial")
        f.flush()
        print("writing", flush=True)
        time.sleep(120)
""")


def start_writer(target: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    return proc


def temp_files(target: Path) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.*.tmp"))


def test_killed_writer_leaves_a_temp_file_that_is_removed_but_a_live_one_is_kept(tmp_path):
    target = tmp_path / "graphs.pt"
    killed, live = start_writer(target), None
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        (stale,) = temp_files(target)
        assert f".{_host_tag()}-{killed.pid}." in stale.name
        live = start_writer(target)
        assert len(temp_files(target)) == 2
        assert remove_stale_temp_files(target) == 1
        (kept,) = temp_files(target)
        assert f"-{live.pid}." in kept.name and not stale.exists()
    finally:
        for proc in (killed, live):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_temp_files_of_other_hosts_or_without_writer_go_only_when_old(tmp_path):
    target = tmp_path / "info.json"
    foreign = tmp_path / f".info.json.0000abcd-{os.getpid()}.k2j4h5g6.tmp"
    legacy = tmp_path / ".info.json.abc_1234.tmp"
    unrelated = [tmp_path / ".info.json.tmp", tmp_path / ".info.json.x.abcdefgh.tmp",
                 tmp_path / ".other.json.abcdefgh.tmp", tmp_path / "info.json.abcdefgh.tmp"]
    for path in (foreign, legacy, *unrelated):
        path.write_text("x")
    assert foreign.name != f".info.json.{_host_tag()}-{os.getpid()}.k2j4h5g6.tmp"
    assert remove_stale_temp_files(target) == 0
    old = time.time() - UNOWNED_TEMP_AGE_S - 60
    for path in (foreign, legacy, *unrelated):
        os.utime(path, (old, old))
    assert remove_stale_temp_files(target) == 2
    assert not foreign.exists() and not legacy.exists() and all(p.exists() for p in unrelated)


def test_cache_writes_remove_stale_temp_files(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    processed = tmp_path / "toy" / "processed"
    processed.mkdir(parents=True)
    owner = f"{_host_tag()}-{int(dead.stdout)}"
    stale = [processed / f".{name}.{owner}.abcdefgh.tmp" for name in ("graphs.pt", "info.json")]
    for path in stale:
        path.write_bytes(b"left by a killed build")
    build_or_load("toy", "graph", toy_builder(), tmp_path, {})
    assert not any(path.exists() for path in stale)
    assert sorted(p.name for p in processed.iterdir()) == [".lock", "graphs.pt", "info.json", "splits.json"]


# ---------------------------------------------------------------------------------------------- 3. user-file caches
def write_graphs(path: Path, sizes: list[int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{"num_nodes": n, "edges": [[i, i + 1] for i in range(n - 1)]} for n in sizes]))
    return path


def test_user_files_never_share_a_cache_with_a_registered_dataset_or_each_other(tmp_path, monkeypatch):
    reads = []
    real_read = user_files.read_graph_file
    monkeypatch.setattr(user_files, "read_graph_file", lambda path, *a: reads.append(path) or real_read(path, *a))
    root = tmp_path / "root"
    planar = load_graph_file(write_graphs(tmp_path / "planar.json", [3, 4, 5, 6, 7]), root=root)
    assert planar.info.name == "planar_file" and not (root / "planar").exists()
    a = load_graph_file(write_graphs(tmp_path / "a" / "g.json", [3] * 10), root=root)
    b = load_graph_file(write_graphs(tmp_path / "b" / "g.json", [5] * 10), root=root)
    again = load_graph_file(tmp_path / "a" / "g.json", root=root)
    assert len(reads) == 3  # the third load of a/g.json came from its own cache, untouched by b/g.json
    assert a.info.name == b.info.name == "g" and again.info.max_nodes == 3 and b.info.max_nodes == 5
    caches = sorted(p.parent.parent.name for p in (root / "files").glob("*/processed/info.json"))
    assert len(caches) == 3 and all(c.startswith(("planar-", "g-")) for c in caches)

    named = load_graph_file(tmp_path / "a" / "g.json", root=root, name="mine")
    assert named.info.name == "mine" and (root / "mine" / "processed" / "info.json").is_file()
    for bad in ("qm9", "planar", "files", "../up", ""):
        one_line_error(lambda bad=bad: load_graph_file(tmp_path / "a" / "g.json", root=root, name=bad))
    assert "registered dataset" in one_line_error(lambda: from_pyg([], "sbm", root=root))


def test_smiles_files_with_one_stem_in_two_folders_keep_two_caches(tmp_path):
    root = tmp_path / "root"
    for folder, text in (("x", "CCO\nCCN\nCCC\n"), ("y", "c1ccccc1\nCC(=O)O\nCCCl\nCO\n")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "mols.smi").write_text(text)
    x = load_smiles_file(tmp_path / "x" / "mols.smi", root=root)
    y = load_smiles_file(tmp_path / "y" / "mols.smi", root=root)
    assert len(x.graphs) == 3 and len(y.graphs) == 4
    assert len(list((root / "files").glob("mols-*/processed/info.json"))) == 2
    named = open_dataset(str(tmp_path / "x" / "mols.smi"), root=root, name="xmols")
    assert named.info.name == "xmols" and (root / "xmols" / "processed" / "smiles.json").is_file()
    assert "registered dataset" in one_line_error(lambda: load_smiles_file(tmp_path / "x" / "mols.smi",
                                                                            root=root, name="moses"))


# ---------------------------------------------------------------------------------------------- 4. build lock
BUILDER = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    import torch
    from graphdiff.datasets.cache import build_or_load
    from graphdiff.datasets.dataset import BuiltDataset
    from graphdiff.storage import GraphList
    root, counter, out, release = sys.argv[1:5]

    def builder(ctx):
        with open(counter, "a") as f:
            f.write(f"{os.getpid()}\\n")
        deadline = time.time() + 120
        while not os.path.exists(release) and time.time() < deadline:
            time.sleep(0.05)  # holds the lock until the test has seen the other process wait
        edge = (torch.tensor([[0], [1]]), torch.tensor([1]))
        graphs = GraphList.from_graphs([(torch.zeros(n), *edge) for n in (2, 3, 4)])
        return BuiltDataset(graphs, {"train": torch.tensor([0, 2]), "test": torch.tensor([1])}, "graph", ["node"],
                            ["none", "edge"], {"generator": "toy"})

    ds = build_or_load("toy", "graph", builder, Path(root), {})
    Path(out).write_text(json.dumps({k: v.tolist() for k, v in ds.splits.items()}))
""")


@pytest.mark.skipif(not LINUX, reason="flock")
def test_two_processes_build_one_cache_once(tmp_path):
    counter, release = tmp_path / "calls.txt", tmp_path / "release"
    outs = [tmp_path / "a.json", tmp_path / "b.json"]
    logs = [tmp_path / "a.log", tmp_path / "b.log"]

    def start(i: int) -> subprocess.Popen:
        with logs[i].open("w") as err:
            return subprocess.Popen([sys.executable, "-c", BUILDER, str(tmp_path / "root"), str(counter),
                                     str(outs[i]), str(release)], cwd=REPO, stderr=err, text=True)

    def wait_for(done: Callable[[], bool], proc: subprocess.Popen) -> None:
        deadline = time.time() + 120
        while not done() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)

    first = start(0)
    wait_for(counter.exists, first)  # the first is building: the second must then wait for it
    second = start(1)
    wait_for(lambda: "waiting for another process" in logs[1].read_text(), second)
    release.touch()
    for proc in (first, second):
        proc.wait(timeout=120)
    errors = [log.read_text() for log in logs]
    assert first.returncode == second.returncode == 0, errors
    assert len(counter.read_text().split()) == 1
    assert "waiting for another process" in errors[1] and errors[1].count("\n") == 1
    assert json.loads(outs[0].read_text()) == json.loads(outs[1].read_text()) == {"train": [0, 2], "test": [1]}


@pytest.mark.skipif(not LINUX, reason="flock")
def test_a_waiting_builder_says_so_and_reuses_the_cache(tmp_path, caplog):
    import fcntl

    calls = []
    processed = tmp_path / "toy" / "processed"
    processed.mkdir(parents=True)
    fd = os.open(processed / ".lock", os.O_RDONLY | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another "process" is building
    result = {}
    caplog.set_level(logging.WARNING, logger="graphdiff.datasets.cache")
    thread = threading.Thread(target=lambda: result.setdefault("ds", build_or_load(
        "toy", "graph", toy_builder(calls), tmp_path, {})))
    thread.start()
    deadline = time.time() + 30
    while "waiting for another process" not in caplog.text and time.time() < deadline:
        time.sleep(0.02)
    assert "waiting for another process" in caplog.text and thread.is_alive() and not calls
    build_or_load("toy", "graph", toy_builder(), tmp_path, {}, directory=tmp_path / "elsewhere")
    # "the other process" finishes its cache in the locked folder, then lets go
    os.replace(tmp_path / "elsewhere" / "processed" / "graphs.pt", processed / "graphs.pt")
    os.replace(tmp_path / "elsewhere" / "processed" / "splits.json", processed / "splits.json")
    os.replace(tmp_path / "elsewhere" / "processed" / "info.json", processed / "info.json")
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    thread.join(timeout=30)
    assert not calls and len(result["ds"].graphs) == 6
    waiting = [r.getMessage() for r in caplog.records if "waiting" in r.getMessage()]
    assert len(waiting) == 1 and "\n" not in waiting[0]


# ---------------------------------------------------------------------------------------------- 5. damaged caches
def edit_json(name: str, change: Callable) -> Callable[[Path], None]:
    def corrupt(processed: Path) -> None:
        path = processed / name
        path.write_text(json.dumps(change(json.loads(path.read_text()))))

    return corrupt


def edit_graphs(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def corrupt(processed: Path) -> None:
        blob = torch.load(processed / "graphs.pt", weights_only=True)
        change(blob["graphs"])
        torch.save(blob, processed / "graphs.pt")

    return corrupt


def truncate(name: str) -> Callable[[Path], None]:
    def corrupt(processed: Path) -> None:
        data = (processed / name).read_bytes()
        (processed / name).write_bytes(data[: len(data) // 2])

    return corrupt


def garbage(name: str) -> Callable[[Path], None]:
    return lambda processed: (processed / name).write_bytes(b"\x00\xffnot what graphdiff wrote")


def set_key(d: dict, key: str, value) -> dict:
    d[key] = value
    return d


DAMAGE = {
    "graphs.pt truncated": (truncate("graphs.pt"), "graphs.pt: unreadable"),
    "graphs.pt garbage": (garbage("graphs.pt"), "graphs.pt: unreadable"),
    "graphs.pt missing": (lambda p: (p / "graphs.pt").unlink(), "graphs.pt: missing"),
    "graphs.pt missing tensor": (edit_graphs(lambda g: g.pop("edge_ptr")), "expected the tensors"),
    "graphs.pt float tensor": (edit_graphs(lambda g: g.update(node_types=g["node_types"].float())), "integer"),
    "graphs.pt fewer graphs": (edit_graphs(lambda g: g.update(node_ptr=g["node_ptr"][:3])), "node_ptr"),
    "graphs.pt node class": (edit_graphs(lambda g: g["node_types"].fill_(5)), "node classes"),
    "graphs.pt edge class": (edit_graphs(lambda g: g["edge_types"].fill_(0)), "edge classes"),
    "graphs.pt edge end": (edit_graphs(lambda g: g["edge_index"][1].fill_(9)), "edge ends"),
    "graphs.pt shuffled ptr": (edit_graphs(lambda g: g["edge_ptr"][2:4].copy_(torch.tensor([3, 1]))), "edge_ptr"),
    "splits.json truncated": (truncate("splits.json"), "splits.json:"),
    "splits.json garbage": (garbage("splits.json"), "splits.json:"),
    "splits.json out of range": (edit_json("splits.json", lambda s: set_key(s, "test", [99])), "outside 0..5"),
    "splits.json negative": (edit_json("splits.json", lambda s: set_key(s, "val", [-1])), "outside 0..5"),
    "splits.json huge": (edit_json("splits.json", lambda s: set_key(s, "val", [2**70])), "outside 0..5"),
    "splits.json floats": (edit_json("splits.json", lambda s: set_key(s, "val", [1.0])), "not a list of integers"),
    "splits.json strings": (edit_json("splits.json", lambda s: set_key(s, "val", ["1"])), "not a list of integers"),
    "splits.json bools": (edit_json("splits.json", lambda s: set_key(s, "val", [True])), "not a list of integers"),
    "splits.json nested": (edit_json("splits.json", lambda s: set_key(s, "val", [[1]])), "not a list of integers"),
    "splits.json not a list": (edit_json("splits.json", lambda s: set_key(s, "val", 1)), "not a list of integers"),
    "splits.json a list": (edit_json("splits.json", lambda s: [0, 1]), "expected an object"),
    "splits.json sizes": (edit_json("splits.json", lambda s: set_key(s, "train", [0, 2])), "split sizes"),
    "info.json truncated": (truncate("info.json"), "info.json:"),
    "info.json a list": (edit_json("info.json", lambda i: [i]), "info.json: not a JSON object"),
    "info.json unknown field": (edit_json("info.json", lambda i: set_key(i, "colour", 1)), "info.json:"),
    "info.json node types": (edit_json("info.json", lambda i: set_key(i, "node_types", "C")), "node_types"),
    "info.json max_nodes": (edit_json("info.json", lambda i: set_key(i, "max_nodes", "7")), "max_nodes"),
    "info.json largest graph": (
        edit_json("info.json", lambda i: set_key(set_key(i, "max_nodes", 9), "node_counts", [0] * 10)),
        "largest graph",
    ),
    "info.json source": (edit_json("info.json", lambda i: set_key(i, "source", "x")), "source"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_cache_is_rebuilt_with_a_one_line_warning(tmp_path, caplog, case):
    corrupt, reason = DAMAGE[case]
    calls = []
    first = build_or_load("toy", "graph", toy_builder(calls), tmp_path, {})
    corrupt(tmp_path / "toy" / "processed")
    with caplog.at_level(logging.WARNING, logger="graphdiff.datasets.cache"):
        again = build_or_load("toy", "graph", toy_builder(calls), tmp_path, {})
    assert len(calls) == 2
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "damaged" in warning and reason in warning and "\n" not in warning
    assert again.info == first.info
    assert all(torch.equal(again.splits[k], first.splits[k]) for k in first.splits)
    assert all(torch.equal(a, b) for a, b in zip(again.graphs.state_dict().values(),
                                                  first.graphs.state_dict().values()))
    caplog.clear()
    build_or_load("toy", "graph", toy_builder(calls), tmp_path, {})
    assert len(calls) == 2 and not caplog.records


@pytest.mark.parametrize("change, reason", [
    (lambda s: s[:-1], "expected a list of 6 SMILES"),
    (lambda s: [*s[:-1], 5], "expected a list of 6 SMILES"),
    (lambda s: {"smiles": s}, "expected a list of 6 SMILES"),
    (None, "smiles.json: missing"),
])
def test_damaged_smiles_are_rebuilt(tmp_path, caplog, change, reason):
    calls = []
    first = build_or_load("mols", "molecule", toy_builder(calls, kind="molecule"), tmp_path, {})
    processed = tmp_path / "mols" / "processed"
    if change is None:
        (processed / "smiles.json").unlink()
    else:
        edit_json("smiles.json", change)(processed)
    with caplog.at_level(logging.WARNING, logger="graphdiff.datasets.cache"):
        again = build_or_load("mols", "molecule", toy_builder(calls, kind="molecule"), tmp_path, {})
    assert len(calls) == 2 and again.smiles == first.smiles and reason in caplog.text


def test_a_graph_cache_does_not_pick_up_old_smiles(tmp_path):
    build_or_load("x", "molecule", toy_builder(kind="molecule"), tmp_path, {"v": 1})
    ds = build_or_load("x", "graph", toy_builder(), tmp_path, {"v": 2})
    assert ds.smiles is None and not (tmp_path / "x" / "processed" / "smiles.json").exists()
    assert build_or_load("x", "graph", toy_builder(), tmp_path, {"v": 2}).smiles is None


# ---------------------------------------------------------------------------------------------- 6. terminated parses
PARSER = textwrap.dedent("""
    import sys
    from graphdiff.datasets import molecule_parsing
    from graphdiff.datasets.smiles_files import read_smiles_records
    molecule_parsing._CHUNK_ROWS = 1000
    records = read_smiles_records(sys.argv[1])
    print("parsing", flush=True)
    molecule_parsing.parse_smiles(records)
    print("finished", flush=True)
""")


def children(pid: int) -> dict[int, str]:
    """``{pid: start time}`` of the live (not zombie) child processes of ``pid``, from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(entry.name)] = fields[19]
    return found


def alive(pid: int, start: str) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and fields[19] == start


@pytest.mark.skipif(not LINUX, reason="fork workers and /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_no_parse_worker_outlives_its_parent(tmp_path, sig):
    path = tmp_path / "many.smi"
    path.write_text("\n".join(["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C"] * 50_000))
    env = {**os.environ, "GRAPHDIFF_NUM_WORKERS": "2"}
    stderr = tmp_path / "stderr.txt"
    with open(stderr, "w") as err:  # a file, not a pipe: orphans holding a pipe would block reading it
        proc = subprocess.Popen([sys.executable, "-c", PARSER, str(path)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=err, text=True)
    workers: dict[int, str] = {}
    try:
        assert proc.stdout.readline().strip() == "parsing"
        deadline = time.time() + 60
        while len(workers) < 2 and time.time() < deadline:
            workers = children(proc.pid)
            time.sleep(0.05)
        assert len(workers) == 2, "the parse did not start two workers"
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == -sig
        assert "Traceback" not in stderr.read_text(), stderr.read_text()
        deadline = time.time() + 20
        while any(alive(p, s) for p, s in workers.items()) and time.time() < deadline:
            time.sleep(0.05)
        assert not any(alive(p, s) for p, s in workers.items()), "orphaned parse workers"
    finally:
        proc.stdout.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid, start in workers.items():
            if alive(pid, start):
                os.kill(pid, signal.SIGKILL)


def test_a_parallel_parse_still_parses_and_leaves_sigterm_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(molecule_parsing, "_CHUNK_ROWS", 3)
    records = SmilesRecords(tmp_path / "x.smi", ["CCO", "CCN", "C1CC", "c1ccccc1", "CC#N", "O"] * 2,
                                      list(range(1, 13)))
    parsed = molecule_parsing.parse_smiles(records, num_workers=2)
    assert len(parsed) == 10 and parsed.skipped["invalid_smiles"]["count"] == 2
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


# ---------------------------------------------------------------------------------------------- 7. bad roots, options
@pytest.fixture
def files(tmp_path):
    """A graph file, a SMILES file and a plain file to misuse as a root."""
    (tmp_path / "mols.smi").write_text("CCO\nCCN\nCCC\nCCCC\n")
    (tmp_path / "not_a_dir").write_text("x")
    return {"graphs": write_graphs(tmp_path / "g.json", [3, 4, 5, 6]), "smiles": tmp_path / "mols.smi",
            "file": tmp_path / "not_a_dir", "root": tmp_path / "root"}


BAD = {
    "registered, root is a file": (lambda f: load_dataset("planar", root=f["file"]), "is a file"),
    "graph file, root is a file": (lambda f: open_dataset(str(f["graphs"]), root=f["file"]), "is a file"),
    "smiles file, root is a file": (lambda f: load_smiles_file(f["smiles"], root=f["file"]), "is a file"),
    "root below a file": (lambda f: load_dataset("planar", root=f["file"] / "sub"), "cannot write"),
    "root not a path": (lambda f: load_dataset("planar", root=123), "not a path"),
    "unknown graph option": (lambda f: open_dataset(str(f["graphs"]), root=f["root"], foo=1), "valid: edge_attr"),
    "unknown smiles option": (lambda f: open_dataset(str(f["smiles"]), root=f["root"], node_attr="x"), "valid: atom"),
    "unknown registry option": (lambda f: open_dataset("planar", root=f["root"], foo=1), "valid: num_graphs"),
    "dataset not a string": (lambda f: open_dataset(5), "expected a registered name"),
    "graph max_nodes 0": (lambda f: load_graph_file(f["graphs"], root=f["root"], max_nodes=0), "max_nodes=0"),
    "graph max_nodes -3": (lambda f: load_graph_file(f["graphs"], root=f["root"], max_nodes=-3), "max_nodes=-3"),
    "graph max_nodes text": (lambda f: load_graph_file(f["graphs"], root=f["root"], max_nodes="9"), "max_nodes='9'"),
    "graph split_seed text": (lambda f: load_graph_file(f["graphs"], root=f["root"], split_seed="a"), "split_seed"),
    "graph split_seed float": (lambda f: load_graph_file(f["graphs"], root=f["root"], split_seed=1.5), "split_seed"),
    "graph rebuild text": (lambda f: load_graph_file(f["graphs"], root=f["root"], rebuild="yes"), "rebuild"),
    "graph node_attr number": (lambda f: load_graph_file(f["graphs"], root=f["root"], node_attr=3), "node_attr"),
    "smiles max_nodes 0": (lambda f: load_smiles_file(f["smiles"], root=f["root"], max_nodes=0), "max_nodes=0"),
    "smiles kekulize text": (lambda f: load_smiles_file(f["smiles"], root=f["root"], kekulize="no"), "kekulize"),
    "smiles column number": (lambda f: load_smiles_file(f["smiles"], root=f["root"], column=2), "column"),
    "smiles split_seed text": (lambda f: open_dataset(str(f["smiles"]), root=f["root"], split_seed="x"), "split_seed"),
    "registry split_seed text": (lambda f: load_dataset("planar", root=f["root"], split_seed="x"), "split_seed"),
    "registry limit 0": (lambda f: load_dataset("moses", root=f["root"], limit=0), "limit=0"),
    "registry kekulize text": (lambda f: load_dataset("qm9", root=f["root"], kekulize="yes"), "kekulize"),
    "registry max_nodes -1": (lambda f: load_dataset("zinc250k", root=f["root"], max_nodes=-1), "max_nodes=-1"),
    "module batch_size 0": (lambda f: GraphDataModule("planar", batch_size=0), "batch_size=0"),
    "module batch_size float": (lambda f: GraphDataModule("planar", batch_size=2.5), "batch_size=2.5"),
    "module eval_batch_size 0": (lambda f: GraphDataModule("planar", eval_batch_size=0), "eval_batch_size=0"),
    "module num_workers -1": (lambda f: GraphDataModule("planar", num_workers=-1), "num_workers=-1"),
    "module options list": (lambda f: GraphDataModule("planar", options=[1]), "data.options"),
    "module dataset number": (lambda f: GraphDataModule(dataset=5), "data.dataset"),
    "module root is a file": (lambda f: GraphDataModule("planar", root=str(f["file"])), "is a file"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_roots_and_options_are_one_line_errors(files, case):
    call, needle = BAD[case]
    assert needle in one_line_error(lambda: call(files))


def test_unwritable_root_is_an_error_to_build_in_but_fine_to_read(tmp_path, monkeypatch):
    root = tmp_path / "root"
    build_or_load("toy", "graph", toy_builder(), root, {})
    root.chmod(0o555)
    (root / "toy").chmod(0o555)
    (root / "toy" / "processed").chmod(0o555)
    try:
        if os.geteuid() == 0:  # permissions do not stop root: fake them
            monkeypatch.setattr(os, "access", lambda path, mode, **kw: mode != os.W_OK)
        assert len(build_or_load("toy", "graph", toy_builder(), root, {}).graphs) == 6
        message = one_line_error(lambda: build_or_load("toy", "graph", toy_builder(), root, {}, rebuild=True))
        assert "cannot write" in message and "root=" in message
        assert "cannot write" in one_line_error(lambda: load_dataset("planar", root=root))
    finally:
        for path in (root, root / "toy", root / "toy" / "processed"):
            path.chmod(0o755)


def test_cli_prints_a_bad_root_on_one_line(files, capsys):
    assert cli_main(["data", "info", "planar", "--root", str(files["file"])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file" in err
