"""The processed-data cache: built once, reused, rebuilt when options or source change."""

from __future__ import annotations

import json

import pytest
import torch

from graphdiff.datasets.cache import build_or_load
from graphdiff.datasets.dataset import BuiltDataset
from graphdiff.datasets.sources import RawFile, resolve
from graphdiff.errors import DataError
from graphdiff.io import file_sha256
from graphdiff.storage import GraphList


def make_builder(calls: list, source_file=None):
    def builder(ctx):
        calls.append(dict(ctx.options))
        k = ctx.options.get("count", 4)
        graphs = GraphList.from_graphs(
            [(torch.zeros(i + 2), torch.tensor([[0], [1]]), torch.tensor([1])) for i in range(k)]
        )
        src = {"file": str(source_file), "sha256": file_sha256(source_file)} if source_file else {"generator": "t"}
        return BuiltDataset(graphs, {"train": torch.arange(k - 1), "test": torch.tensor([k - 1])}, "graph",
                            ["node"], ["none", "edge"], src)
    return builder


def test_cache_is_reused_and_options_rebuild(tmp_path):
    calls = []
    a = build_or_load("toy", "graph", make_builder(calls), tmp_path, {"count": 4})
    b = build_or_load("toy", "graph", make_builder(calls), tmp_path, {"count": 4})
    assert len(calls) == 1
    assert torch.equal(a.splits["train"], b.splits["train"]) and a.info == b.info
    c = build_or_load("toy", "graph", make_builder(calls), tmp_path, {"count": 6})
    assert len(calls) == 2 and len(c.graphs) == 6
    assert json.loads((tmp_path / "toy/processed/splits.json").read_text())["test"] == [5]
    assert c.info.split_sizes == {"train": 5, "test": 1}
    assert c.info.max_nodes == 7 and c.info.node_counts == [0, 0, 1, 1, 1, 1, 1, 0]


def test_damaged_cache_and_changed_source_rebuild(tmp_path):
    src = tmp_path / "src.txt"
    src.write_text("v1")
    calls = []
    build_or_load("toy", "graph", make_builder(calls, src), tmp_path, {})
    (tmp_path / "toy/processed/graphs.pt").write_bytes(b"garbage")
    build_or_load("toy", "graph", make_builder(calls, src), tmp_path, {})
    assert len(calls) == 2
    src.write_text("v2")
    build_or_load("toy", "graph", make_builder(calls, src), tmp_path, {})
    assert len(calls) == 3
    build_or_load("toy", "graph", make_builder(calls, src), tmp_path, {})
    assert len(calls) == 3


def test_empty_dataset_is_an_error(tmp_path):
    def builder(ctx):
        return BuiltDataset(GraphList.from_graphs([]), {"train": torch.zeros(0)}, "graph", ["node"],
                            ["none", "edge"], {}, skipped={"too_large": {"count": 3}})
    with pytest.raises(DataError, match="no graphs left.*too_large: 3"):
        build_or_load("empty", "graph", builder, tmp_path, {})


def test_resolve_order_and_offline_message(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror" / "sub"
    mirror.mkdir(parents=True)
    (mirror / "f.csv").write_text("x")
    monkeypatch.setenv("GRAPHDIFF_DATA_DIR", str(tmp_path / "mirror"))
    raw = RawFile("f.csv", url="https://example.invalid/f.csv", sha256="0" * 64, subdir="sub")
    assert resolve("ds", raw, tmp_path / "root") == mirror / "f.csv"
    local = tmp_path / "root/ds/raw/f.csv"
    local.parent.mkdir(parents=True)
    local.write_text("y")
    assert resolve("ds", raw, tmp_path / "root") == local

    import urllib.request

    def offline(*a, **k):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match=r"could not download https://example.invalid/g.csv .*place g.csv at"):
        resolve("ds", RawFile("g.csv", url="https://example.invalid/g.csv", sha256="0" * 64, subdir="sub"),
                tmp_path / "root")
    assert not any(p.name.endswith(".part") for p in (tmp_path / "root/ds/raw").iterdir())
