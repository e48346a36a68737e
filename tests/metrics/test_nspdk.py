"""NSPDK features: normalisation, invariances, independence of PYTHONHASHSEED, MMD basics."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest
from rdkit import Chem

from graphdiff.metrics.molecules import mol_to_nx
from graphdiff.metrics.nspdk import nspdk_features, nspdk_matrix, nspdk_mmd

REPO = Path(__file__).resolve().parents[2]
SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "C#N", "OC(=O)C(N)Cc1ccccc1"]


def _graphs() -> list[nx.Graph]:
    return [mol_to_nx(Chem.MolFromSmiles(s)) for s in SMILES]


def test_features_have_unit_norm_and_ids_in_range() -> None:
    for g in _graphs():
        features = nspdk_features(g)
        assert math.sqrt(sum(v * v for v in features.values())) == pytest.approx(1.0, rel=1e-12)
        assert all(1 <= k <= 2**16 for k in features)


def test_single_atom_by_hand() -> None:
    # One node: only the pair (v, v) at distance 0 and radius 0; the full and the half feature each count 1
    # in the single block, so after normalisation both are 1/√2 (or one feature of value 1 if they collide).
    g = nx.Graph()
    g.add_node(0, label="C")
    values = sorted(nspdk_features(g).values())
    assert values == pytest.approx([1 / math.sqrt(2)] * 2) or values == pytest.approx([1.0])


def test_invariant_to_node_relabelling() -> None:
    g = _graphs()[2]
    h = nx.relabel_nodes(g, {n: 40 - n for n in g.nodes()})
    assert nspdk_features(g) == pytest.approx(nspdk_features(h))


def test_mmd_zero_for_same_set_positive_for_different() -> None:
    graphs = _graphs()
    assert nspdk_mmd(graphs, graphs) == pytest.approx(0.0, abs=1e-12)
    other = [mol_to_nx(Chem.MolFromSmiles(s)) for s in ["CCCCCC", "CCCCN", "FC(F)(F)Cl"]]
    assert nspdk_mmd(graphs, other) > 0.05
    x = nspdk_matrix(graphs)
    assert nspdk_mmd(x, other) == pytest.approx(nspdk_mmd(graphs, other), rel=1e-12)


# Builds labelled graphs without RDKit and imports graphdiff.metrics without the top-level package (which
# loads torch), so that the two interpreters start in about a second.
_SCRIPT = """
import json, sys, types
package = types.ModuleType("graphdiff")
package.__path__ = [{package_dir!r}]
sys.modules["graphdiff"] = package
import networkx as nx
from graphdiff.metrics.nspdk import nspdk_features, nspdk_mmd
graphs = []
for k in range(5):
    g = nx.gnp_random_graph(8 + k, 0.3, seed=k)
    nx.set_node_attributes(g, {{n: "CNO"[n % 3] for n in g}}, "label")
    nx.set_edge_attributes(g, {{e: 1 + (e[0] + e[1]) % 2 for e in g.edges}}, "label")
    graphs.append(g)
feats = [sorted(nspdk_features(g).items()) for g in graphs]
print(json.dumps({{"features": feats, "mmd": nspdk_mmd(graphs[:3], graphs[2:])}}))
"""


def test_identical_under_different_python_hash_seeds() -> None:
    outputs = []
    for seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        script = _SCRIPT.format(package_dir=str(REPO / "graphdiff"))
        result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        outputs.append(json.loads(result.stdout))
    assert outputs[0] == outputs[1]
    # The hash of a string label does depend on the seed, so the test would notice Python's hash being used.
    probes = [
        subprocess.run(
            [sys.executable, "-c", "print(hash('C'))"],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "12345")
    ]
    assert probes[0] != probes[1]


def test_matches_eden_for_integer_labels_when_installed() -> None:
    eden_graph = pytest.importorskip("eden.graph")
    graphs = []
    for g in _graphs():
        h = nx.Graph()
        for n, d in g.nodes(data=True):
            h.add_node(n, label=Chem.GetPeriodicTable().GetAtomicNumber(d["label"]))
        for u, v, d in g.edges(data=True):
            h.add_edge(u, v, label=d["label"])
        graphs.append(h)
    ref = eden_graph.vectorize(graphs, complexity=4, discrete=True)
    assert abs(ref - nspdk_matrix(graphs)).max() == 0.0
