"""Reading the sample files that the reference repositories publish (DiGress's ``generated_samples/``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from graphdiff.errors import DataError
from graphdiff.evaluation import read_samples

DIGRESS_MIRROR = Path("/work/.mirror/cvignac+DiGress/repo")


def _digress_block(x: list[int], E: np.ndarray) -> str:
    rows = "\n".join(" ".join(str(int(v)) for v in row) + " " for row in E)
    return f"N={len(x)}\nX: \n{' '.join(map(str, x))} \nE: \n{rows}\n\n"


def test_digress_text_format_reads_graphs(tmp_path: Path) -> None:
    triangle = np.array([[0, 1, 1], [1, 0, 2], [1, 2, 0]])
    path4 = np.zeros((4, 4), dtype=int)
    for i in range(3):
        path4[i, i + 1] = path4[i + 1, i] = 1
    f = tmp_path / "samples.txt"
    f.write_text(_digress_block([0, 1, 0], triangle) + _digress_block([1, 1, 1, 0], path4))
    kind, graphs = read_samples(f)
    assert kind == "graph"
    assert [g.number_of_nodes() for g in graphs] == [3, 4]
    assert nx.is_isomorphic(graphs[0], nx.complete_graph(3))
    assert nx.is_isomorphic(graphs[1], nx.path_graph(4))
    # edge classes survive: the triangle's (1, 2) edge is of the second class, the others of the first
    types = nx.get_edge_attributes(graphs[0], "label")
    assert len(set(types.values())) == 2
    assert types[(1, 2)] != types[(0, 1)] == types[(0, 2)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("N=3\nX: \n0 0 0\nE: \n0 1 0\n1 0 0\n", "line 1: graph 0"),  # E has 2 rows for N=3
        ("N=2\nX: \n0 0\nE: \n0 1\n1 0\n\nN=x\n", "line 8: graph 1"),
        ("N=2\nY: \n0 0\nE: \n0 1\n1 0\n", "'X:' and 'E:'"),
    ],
)
def test_digress_text_format_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.txt"
    f.write_text(text)
    with pytest.raises(DataError, match=message):
        read_samples(f)


def test_none_lines_are_failed_molecules(tmp_path: Path) -> None:
    f = tmp_path / "mols.txt"
    f.write_text("CCO\nNone\n\nc1ccccc1\n")
    kind, smiles = read_samples(f)
    assert kind == "molecule"
    assert smiles == ["CCO", None, None, "c1ccccc1"]


def _mirror_file(tmp_path: Path, name: str) -> Path:
    if not DIGRESS_MIRROR.exists():
        pytest.skip(f"the DiGress mirror {DIGRESS_MIRROR} is absent (fetch cvignac/DiGress to run this check)")
    out = tmp_path / Path(name).name
    out.write_bytes(subprocess.run(["git", "-C", str(DIGRESS_MIRROR), "show", f"HEAD:{name}"],
                                   check=True, capture_output=True).stdout)
    return out


def test_digress_published_sbm_and_planar_samples(tmp_path: Path) -> None:
    kind, sbm = read_samples(_mirror_file(tmp_path, "generated_samples/generated_samples_sbm.txt"))
    assert kind == "graph" and len(sbm) == 40
    assert all(44 <= g.number_of_nodes() <= 187 for g in sbm)  # 2-5 blocks of 20-40 nodes (DiGress's SBM)
    kind, planar = read_samples(_mirror_file(tmp_path, "generated_samples/generated_planar_adj_matrices.npz"))
    assert kind == "graph" and len(planar) == 40
    assert all(g.number_of_nodes() == 64 for g in planar)
    assert sum(nx.check_planarity(g)[0] for g in planar) >= 30  # DiGress reports ~75-85 % V.U.N.
