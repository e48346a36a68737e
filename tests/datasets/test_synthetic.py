"""Generated benchmark graphs: structure of every graph, seeding, the DiGress split and SBM blocks."""

from __future__ import annotations

import gzip
import json
import math

import networkx as nx
import numpy as np
import pytest
import torch
from scipy.spatial import ConvexHull

from graphdiff.datasets.registry import load_dataset
from graphdiff.datasets.splits import spectre_split
from graphdiff.datasets.synthetic import sbm_blocks
from graphdiff.errors import ConfigError, DataError
from graphdiff.io import text_sha256
from tests.conftest import data_file


def to_networkx(dataset, i: int) -> nx.Graph:
    x, ei, _ = dataset.graphs.graph(i)
    G = nx.Graph()
    G.add_nodes_from(range(x.numel()))
    G.add_edges_from(ei.T.tolist())
    return G


def all_graphs(dataset) -> list[nx.Graph]:
    return [to_networkx(dataset, i) for i in range(len(dataset.graphs))]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic")


def test_planar_graphs_are_delaunay_triangulations(root):
    ds = load_dataset("planar", root=root)
    assert ds.info.split_sizes == {"train": 128, "val": 32, "test": 40}
    assert ds.info.node_types == ["node"] and ds.info.edge_types == ["none", "edge"]
    for i, G in enumerate(all_graphs(ds)):
        assert G.number_of_nodes() == 64
        assert nx.check_planarity(G)[0] and nx.is_connected(G)
        # Euler: a triangulation of n points with h of them on the convex hull has 3n - 3 - h edges.
        points = np.random.default_rng([0, i]).random((64, 2))
        h = len(ConvexHull(points).vertices)
        assert G.number_of_edges() == 3 * 64 - 3 - h


def test_sbm_blocks_and_edge_densities(root):
    ds = load_dataset("sbm", root=root)
    assert ds.info.split_sizes == {"train": 128, "val": 32, "test": 40}
    blocks = sbm_blocks(ds)
    intra = [0, 0]  # [edges, pairs]
    inter = [0, 0]
    for i, sizes in enumerate(blocks):
        assert 2 <= len(sizes) <= 5 and all(20 <= s <= 40 for s in sizes)
        x, ei, _ = ds.graphs.graph(i)
        assert x.numel() == sum(sizes)
        label = np.repeat(np.arange(len(sizes)), sizes)
        same = label[ei[0].numpy()] == label[ei[1].numpy()]
        intra[0] += int(same.sum())
        inter[0] += int((~same).sum())
        within = sum(s * (s - 1) // 2 for s in sizes)
        intra[1] += within
        inter[1] += x.numel() * (x.numel() - 1) // 2 - within
    # Binomial proportions: 0.3 over ~2e5 pairs, 0.005 over ~2e6 pairs; 6 standard deviations.
    for (edges, pairs), p in ((intra, 0.3), (inter, 0.005)):
        assert abs(edges / pairs - p) < 6 * math.sqrt(p * (1 - p) / pairs)
    test_blocks = sbm_blocks(ds, split="test")
    assert test_blocks == [blocks[i] for i in ds.splits["test"].tolist()]


def test_sbm_blocks_refuses_other_datasets_and_mismatched_graphs(root):
    with pytest.raises(DataError, match="not a generated sbm dataset"):
        sbm_blocks(load_dataset("tree", root=root, num_graphs=3))
    ds = load_dataset("sbm", root=root, num_graphs=3)
    ds.info.options["seed"] = 1  # graphs of seed 0, settings claiming seed 1
    with pytest.raises(DataError, match="rebuild"):
        sbm_blocks(ds)


def test_trees_are_uniform_labelled_trees(root):
    ds = load_dataset("tree", root=root)
    graphs = all_graphs(ds)
    assert all(G.number_of_nodes() == 64 and nx.is_tree(G) for G in graphs)
    # In a uniform labelled tree a node is a leaf with probability (1 - 1/n)^(n-2) (Prüfer code).
    leaves = sum(sum(1 for _, d in G.degree() if d == 1) for G in graphs) / (64 * len(graphs))
    assert abs(leaves - (63 / 64) ** 62) < 0.02


def test_comm20_communities_match_the_reference_generator(root):
    ds = load_dataset("comm20", root=root)
    assert ds.info.split_sizes == {"train": 64, "val": 16, "test": 20}
    bridges = []
    for G in all_graphs(ds):
        n = G.number_of_nodes()
        assert n % 2 == 0 and 12 <= n <= 20
        half = n // 2
        edges = {tuple(sorted(e)) for e in G.edges()}
        for c in range(2):  # each community is networkx's G(n/2, 0.7) with seed = community index
            community = {(u + c * half, v + c * half) for u, v in nx.gnp_random_graph(half, 0.7, seed=c).edges()}
            assert community <= edges
            edges -= community
        assert edges and all(u < half <= v for u, v in edges)  # what is left are bridges
        bridges.append(len(edges))
    assert 1 <= np.mean(bridges) < 2  # expected 0.1 * n/2 drawn bridges, plus one when none is drawn


def test_comm20_reproduces_the_gdss_community_small_communities():
    reference = json.loads(gzip.open(data_file("graphs", "community_small.json.gz")).read())
    for g in reference:
        half = g["num_nodes"] // 2
        edges = {tuple(sorted(e)) for e in g["edges"]}
        for c in range(2):
            community = {(u + c * half, v + c * half) for u, v in nx.gnp_random_graph(half, 0.7, seed=c).edges()}
            assert community <= edges


def test_comm20_random_communities_option(root):
    ds = load_dataset("comm20", root=root, num_graphs=20, fixed_communities=False, p_intra=0.5)
    fixed = {n: set(nx.gnp_random_graph(n // 2, 0.5, seed=0).edges()) for n in range(12, 21, 2)}
    differing = 0
    for G in all_graphs(ds):
        half = G.number_of_nodes() // 2
        differing += {e for e in G.edges() if max(e) < half} != fixed[2 * half]
    assert differing >= 18


def test_generation_is_seeded_and_per_graph(root):
    a = load_dataset("tree", root=root / "a", num_graphs=12, seed=5)
    b = load_dataset("tree", root=root / "b", num_graphs=12, seed=5)
    c = load_dataset("tree", root=root / "c", num_graphs=12, seed=6)
    d = load_dataset("tree", root=root / "d", num_graphs=4, seed=5)
    assert torch.equal(a.graphs.edge_index, b.graphs.edge_index)
    assert not torch.equal(a.graphs.edge_index, c.graphs.edge_index)
    for i in range(4):  # graph i does not depend on how many graphs are drawn
        assert torch.equal(a.graphs.graph(i)[1], d.graphs.graph(i)[1])
    src = a.info.source
    assert src["generator"] == "tree" and src["settings"]["seed"] == 5
    assert src["sha256"] == text_sha256(json.dumps(src["settings"], sort_keys=True))
    planar = load_dataset("planar", root=root / "e", num_graphs=12, seed=5, num_nodes=64)
    assert planar.info.options == a.info.options  # same settings, other generator
    assert planar.info.source["sha256"] != src["sha256"]


@pytest.mark.parametrize("num_graphs, sizes", [(200, (128, 32, 40)), (100, (64, 16, 20)), (10, (6, 2, 2))])
def test_spectre_split_sizes_are_disjoint_and_cover(num_graphs, sizes):
    splits = spectre_split(num_graphs, 0)
    assert tuple(splits[k].numel() for k in ("train", "val", "test")) == sizes
    every = torch.cat(list(splits.values()))
    assert torch.equal(torch.sort(every).values, torch.arange(num_graphs))
    assert all(torch.equal(v, torch.sort(v).values) for v in splits.values())
    assert not torch.equal(spectre_split(num_graphs, 1)["test"], splits["test"])


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("planar", {"num_graphs": 0}, "num_graphs"),
        ("sbm", {"p_intra": 1.5}, "p_intra"),
        ("sbm", {"min_communities": 4, "max_communities": 3}, "min_communities"),
        ("tree", {"num_nodes": "64"}, "num_nodes"),
    ],
)
def test_bad_options_are_config_errors(root, name, options, message):
    with pytest.raises(ConfigError, match=message):
        load_dataset(name, root=root / "bad", **options)
