"""Datasets the PyG way: GraphList <-> Data conversions, GraphDataset items, subsets, transforms and batching."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader
from torch_geometric.utils import to_dense_adj, to_dense_batch

from graphdiff.datasets import GraphDataset, graph_list_to_pyg, load_dataset, pyg_to_graph_list
from graphdiff.datasets.user_files import load_smiles_file
from graphdiff.errors import DataError
from graphdiff.graph import data_to_triple, triple_to_data
from graphdiff.storage import GraphList

DX, DE = 4, 5


def random_graphs(count: int, seed: int, edge_free_every: int = 3) -> GraphList:
    """Graphs of 1-9 nodes with node classes 0..DX-1 and edge classes 1..DE-1; every third one has no edge."""
    g = torch.Generator().manual_seed(seed)
    triples = []
    for k in range(count):
        n = int(torch.randint(1, 10, (1,), generator=g))
        x = torch.randint(0, DX, (n,), generator=g)
        i, j = torch.triu_indices(n, n, 1)
        keep = torch.rand(i.numel(), generator=g) < (0.0 if k % edge_free_every == 0 else 0.5)
        triples.append((x, torch.stack([i[keep], j[keep]]), torch.randint(1, DE, (int(keep.sum()),), generator=g)))
    return GraphList.from_graphs(triples)


def assert_same_graph_lists(a: GraphList, b: GraphList) -> None:
    for key, value in a.state_dict().items():
        other = b.state_dict()[key]
        assert value.dtype == other.dtype and torch.equal(value, other), key


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_graph_list_to_data_and_back_is_exact(seed):
    graphs = random_graphs(40, seed)
    assert int(graphs.edge_types.max()) == DE - 1 and int(graphs.node_types.max()) == DX - 1
    assert (graphs.num_edges == 0).sum() >= 13
    data = graph_list_to_pyg(graphs, DX, DE)
    back = pyg_to_graph_list(data)
    assert_same_graph_lists(graphs, back.graphs)
    assert (back.num_node_types, back.num_edge_types, back.self_loops) == (DX, DE, 0)


def test_data_items_have_the_pyg_layout_of_each_graph():
    graphs = random_graphs(25, 3)
    for k, data in enumerate(graph_list_to_pyg(graphs, DX, DE)):
        x, ei, et = graphs.graph(k)
        n, m = x.numel(), et.numel()
        assert data.num_nodes == n and data.y.shape == (1, 0)
        assert data.x.dtype == torch.float32 and torch.equal(data.x, F.one_hot(x, DX).float())
        assert data.edge_index.dtype == torch.long and data.edge_index.shape == (2, 2 * m)
        assert data.edge_attr.shape == (2 * m, DE) and not data.edge_attr[:, 0].any()
        reference = triple_to_data(x, ei, et)  # graphdiff.graph's per-graph conversion: coalesced, both directions
        assert torch.equal(data.edge_index, reference.edge_index)
        assert torch.equal(data.edge_attr.argmax(-1), reference.edge_attr)


def test_empty_edge_graphs_and_an_empty_list():
    graphs = GraphList.from_graphs([(torch.tensor([2, 0, 1]), torch.zeros(2, 0), torch.zeros(0)),
                                    (torch.tensor([3]), torch.zeros(2, 0), torch.zeros(0))])
    data = graph_list_to_pyg(graphs, DX, DE)
    assert [d.edge_index.shape for d in data] == [(2, 0), (2, 0)] and data[1].edge_attr.shape == (0, DE)
    assert_same_graph_lists(graphs, pyg_to_graph_list(data).graphs)
    assert graph_list_to_pyg(graphs.subset([]), DX, DE) == [] and len(pyg_to_graph_list([]).graphs) == 0


def test_mixed_pyg_layouts_read_as_graphdiff_graph_reads_each_graph():
    """Integer classes, one-hot rows (with and without the no-edge column), one or both directions, missing
    attributes: the vectorised reader gives, graph by graph, what graph.data_to_triple gives."""
    g = torch.Generator().manual_seed(7)
    graphs = []
    for k in range(30):
        n = int(torch.randint(2, 8, (1,), generator=g))
        i = torch.arange(n - 1)
        t = torch.randint(1, DE, (n - 1,), generator=g)
        both = k % 2 == 0
        ei = torch.stack([torch.cat([i, i + 1]), torch.cat([i + 1, i])]) if both else torch.stack([i + 1, i])
        t = torch.cat([t, t]) if both else t
        x = torch.randint(0, DX, (n,), generator=g)
        x = [x, x.unsqueeze(1), F.one_hot(x, DX).float(), None][k % 4]
        edge_attr = [t, F.one_hot(t, DE).float(), F.one_hot(t - 1, DE - 1).float(), None][(k // 4) % 4]
        graphs.append(Data(x=x, edge_index=ei, edge_attr=edge_attr, num_nodes=n))
    read = pyg_to_graph_list(graphs, DX, DE)
    for k, data in enumerate(graphs):
        for got, want in zip(read.graphs.graph(k), data_to_triple(data, DX, DE), strict=True):
            assert torch.equal(got, want), k
    assert read.labelled_nodes and read.self_loops == 0


def test_pyg_errors_name_the_graph_and_self_loops_are_counted():
    def chain(n: int, **kwargs) -> Data:
        i = torch.arange(n - 1)
        return Data(edge_index=torch.stack([i, i + 1]), num_nodes=n, **kwargs)

    ok = [chain(3), chain(4)]
    outside = Data(edge_index=torch.tensor([[0], [5]]), num_nodes=3)
    with pytest.raises(DataError, match=r"^graph 2: an edge names node 5, outside 0\.\.2$"):
        pyg_to_graph_list([*ok, outside])
    clash = Data(edge_index=torch.tensor([[0, 2], [2, 0]]), edge_attr=torch.tensor([1, 2]), num_nodes=3)
    with pytest.raises(DataError, match=r"^graph 2: edge \(0, 2\) is listed twice with different classes 1 and 2$"):
        pyg_to_graph_list([*ok, clash])
    with pytest.raises(DataError, match=r"^graph 1: x row 1 is \[0\.5, 0\.5\]"):
        pyg_to_graph_list([chain(2, x=torch.eye(2)), chain(2, x=torch.tensor([[1.0, 0.0], [0.5, 0.5]]))])
    with pytest.raises(DataError, match="^graph 1: node class 4 outside 0..3$"):
        pyg_to_graph_list([chain(2, x=torch.tensor([0, 1])), chain(2, x=torch.tensor([4, 1]))], num_node_types=4)
    looped = Data(edge_index=torch.tensor([[0, 1, 1], [1, 1, 2]]), num_nodes=3)
    read = pyg_to_graph_list([*ok, looped])
    assert read.self_loops == 1 and read.graphs.graph(2)[1].tolist() == [[0, 1], [1, 2]]


# ---------------------------------------------------------------------------------------------- datasets
@pytest.fixture(scope="module")
def comm20(tmp_path_factory) -> GraphDataset:
    return load_dataset("comm20", root=tmp_path_factory.mktemp("root"))


def test_dataset_items_are_pyg_graphs_of_its_graphs(comm20):
    assert isinstance(comm20, torch.utils.data.Dataset) and len(comm20) == len(comm20.graphs) == 100
    dx, de = comm20.info.num_node_types, comm20.info.num_edge_types
    for k in (0, 57, -1):
        item = comm20[k]
        (expected,) = graph_list_to_pyg(comm20.graphs.subset([k % 100]), dx, de)
        for key in ("x", "edge_index", "edge_attr", "y"):
            assert torch.equal(item[key], expected[key]), key
        assert item.num_nodes == int(comm20.graphs.num_nodes[k])
    with pytest.raises(IndexError):
        comm20[100]


def test_a_pyg_data_loader_batches_a_split(comm20):
    train = comm20.subset("train")
    assert len(train) == 64 and list(train.splits) == ["train"] and train.info is comm20.info
    split = comm20.split("train")
    seen = 0
    for batch in DataLoader(train, batch_size=24, shuffle=False):
        counts = split.num_nodes[seen : seen + batch.num_graphs]
        assert torch.equal(torch.bincount(batch.batch, minlength=batch.num_graphs), counts)
        assert batch.x.shape == (int(counts.sum()), comm20.info.num_node_types)
        assert batch.y.shape == (batch.num_graphs, 0)
        assert batch.edge_index.shape[1] == 2 * int(split.num_edges[seen : seen + batch.num_graphs].sum())
        seen += batch.num_graphs
    assert seen == 64


def test_a_transform_is_applied_on_access(tmp_path):
    calls = []

    def degree(data: Data) -> Data:
        calls.append(data.num_nodes)
        data.degree = torch.bincount(data.edge_index[0], minlength=data.num_nodes)
        return data

    ds = load_dataset("comm20", root=tmp_path, transform=degree)
    first = ds[3]
    assert torch.equal(first.degree, torch.bincount(first.edge_index[0], minlength=first.num_nodes))
    train = ds.subset("train")
    assert train.transform is degree and hasattr(train[0], "degree") and len(calls) == 2
    ds.transform = None
    assert not hasattr(ds[3], "degree") and len(calls) == 2


def test_dense_batches_of_pyg_items_equal_graph_list_to_dense():
    graphs = random_graphs(12, 5)
    batch = Batch.from_data_list(graph_list_to_pyg(graphs, DX, DE))
    X, node_mask = to_dense_batch(batch.x, batch.batch)
    E = to_dense_adj(batch.edge_index, batch.batch, edge_attr=batch.edge_attr)
    dense = graphs.to_dense(torch.arange(len(graphs)), DX, DE)
    assert torch.equal(X, dense.X) and torch.equal(node_mask, dense.node_mask)
    assert not E[..., 0].any()
    pairs = node_mask.unsqueeze(1) & node_mask.unsqueeze(2) & ~torch.eye(X.shape[1], dtype=torch.bool)
    E[..., 0] = (pairs & (E.sum(-1) == 0)).float()  # PyG leaves "no edge" implicit; graphdiff one-hot encodes it
    assert torch.equal(E, dense.E)


def test_a_molecule_subset_keeps_its_smiles(tmp_path):
    path = tmp_path / "mols.smi"
    path.write_text("\n".join(["CCO", "CCN", "c1ccccc1", "CC(=O)O", "CCCl", "OCCO", "CC#N", "C1CC1", "CCOC", "CN"]))
    ds = load_smiles_file(path, root=tmp_path / "root")
    test = ds.subset("test")
    assert test.smiles == ds.split_smiles("test") and len(test) == ds.info.split_sizes["test"]
    assert test[0].x.shape == (ds.split("test").num_nodes[0], ds.info.num_node_types)
