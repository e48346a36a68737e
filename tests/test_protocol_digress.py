"""DiGress's reference behaviours as options: ``model.model.protocol: digress`` (the network input),
``model.nll: digress`` (the validation NLL) and ``data.node_counts_from`` (the node-count distribution).

Each expected value is computed here by hand or by brute force; where the DiGress mirror is present, the
reference's own feature functions (loaded from a temporary copy of the single file) are checked too.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
import types
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import torch
import yaml

from graphdiff.datasets.datamodule import GraphDataModule
from graphdiff.diffusion import DiscreteDiffusion, make_schedule, make_transition
from graphdiff.errors import ConfigError
from graphdiff.info import DatasetInfo
from graphdiff.lit import DiscreteDiffusionModel
from graphdiff.models.features import (
    DiGressMolecularFeatures,
    ExtraFeatures,
    MolecularFeatures,
    SpectralFeatures,
    adjacency,
    cycle_counts,
)
from graphdiff.models.transformer import GraphTransformerDenoiser, no_edge_diagonal
from graphdiff.types import DenseGraph, one_hot_graph

DIGRESS_MIRROR = Path("/work/.mirror/cvignac+DiGress/repo")
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = {"n_layers": 1, "hidden_mlp_dims": {"X": 8, "E": 8, "y": 8},
        "hidden_dims": {"dx": 8, "de": 8, "dy": 8, "n_head": 2, "dim_ffX": 8, "dim_ffE": 8, "dim_ffy": 8}}


def _graph_info(max_nodes: int = 6, kind: str = "graph", **extra) -> DatasetInfo:
    fields = {"name": "toy", "kind": kind, "node_types": ["node"], "edge_types": ["none", "edge"],
              "max_nodes": max_nodes, "split_sizes": {"train": 1}, "node_counts": [0] * max_nodes + [1],
              "node_marginals": [1.0], "edge_marginals": [0.5, 0.5]}
    fields.update(extra)
    return DatasetInfo(**fields)


def _edges(n: int, pairs: list[tuple[int, int]]) -> torch.Tensor:
    E = torch.zeros(n, n, dtype=torch.long)
    for i, j in pairs:
        E[i, j] = E[j, i] = 1
    return E


def _batch(graphs: list[tuple[int, list[tuple[int, int]]]], n: int, dtype=torch.float64) -> DenseGraph:
    """Unlabelled graphs ``(m, edges)`` as a one-hot batch padded to ``n`` slots."""
    E = torch.stack([_edges(n, pairs) for _, pairs in graphs])
    mask = torch.arange(n) < torch.tensor([m for m, _ in graphs]).unsqueeze(1)
    g = one_hot_graph(torch.zeros(len(graphs), n, dtype=torch.long), E, mask, 1, 2)
    return DenseGraph(g.X.to(dtype), g.E.to(dtype), g.y.to(dtype), mask)


def _digress_module(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The reference's ``src/diffusion/<name>.py``, loaded from a temporary copy; its ``from src import utils``
    gets an empty stand-in (the functions used here never touch it)."""
    if not DIGRESS_MIRROR.exists():
        pytest.skip(f"the DiGress mirror {DIGRESS_MIRROR} is absent (fetch cvignac/DiGress to run this check)")
    path = tmp_path / f"{name}.py"
    path.write_bytes(subprocess.run(["git", "-C", str(DIGRESS_MIRROR), "show", f"HEAD:src/diffusion/{name}.py"],
                                    check=True, capture_output=True).stdout)
    src = types.ModuleType("src")
    src.utils = types.ModuleType("src.utils")
    monkeypatch.setitem(sys.modules, "src", src)
    monkeypatch.setitem(sys.modules, "src.utils", src.utils)
    spec = importlib.util.spec_from_file_location(f"digress_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------- (a) 5-cycle counts
K5 = (5, [(i, j) for i in range(5) for j in range(i + 1, 5)])


def test_k5_five_cycles_digress_36_graphdiff_12() -> None:
    A = adjacency(_batch([K5], 5).E, torch.ones(1, 5, dtype=torch.bool))
    node, graph = cycle_counts(A)
    node_ref, graph_ref = cycle_counts(A, "digress")
    assert node[0, :, 2].tolist() == [12.0] * 5 and graph[0, 2].item() == 12.0
    assert node_ref[0, :, 2].tolist() == [36.0] * 5 and graph_ref[0, 2].item() == 36.0
    # 3-, 4- and 6-cycles are the same under both.
    assert torch.equal(node[..., :2], node_ref[..., :2]) and torch.equal(graph[:, [0, 1, 3]], graph_ref[:, [0, 1, 3]])


def test_protocol_reaches_the_features_of_a_denoiser() -> None:
    """A 5-cycle with one chord (one triangle, one 5-cycle): scaled C5 0.1 exact; DiGress's formula gives
    sum_i (a5 - 2 t d - A t + t)_i / 10 / 10, evaluated here with explicit matrix powers."""
    house = (5, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (0, 2)])
    g = _batch([house], 5, torch.float32)
    A = _edges(5, house[1]).double()
    P = [torch.linalg.matrix_power(A, k) for k in range(6)]
    d, t = A.sum(1), torch.diagonal(P[3])
    c5_ref = (torch.diagonal(P[5]) - 2 * t * d - A @ t + t).sum().item() / 10
    assert c5_ref != 1.0
    for protocol, expected in (("graphdiff", 1.0), ("digress", c5_ref)):
        net = GraphTransformerDenoiser.from_dataset_info(_graph_info(5), extra_features="cycles", protocol=protocol,
                                                         **TINY)
        y = net.extra_features(g).y  # [m / max_nodes, C3, C4, C5, C6]
        assert y[0, 3].item() == pytest.approx(min(expected / 10, 1.0))


def test_digress_cycles_match_the_reference_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = _digress_module(tmp_path, "extra_features", monkeypatch)
    g = _batch([K5, (5, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (0, 2)])], 5)
    A = adjacency(g.E, g.node_mask)
    node_ref, graph_ref = ref.KNodeCycles().k_cycles(A.float())
    node, graph = cycle_counts(A, "digress")
    torch.testing.assert_close(node.float(), node_ref)
    torch.testing.assert_close(graph.float(), graph_ref)


# --------------------------------------------------------------------------------------- (b) padded eigenvalues
# A path of 3 nodes padded to 6 slots: Laplacian spectrum 0, 1, 3 (one component); the same path and a disjoint
# edge (m = 5): 0, 0, 1, 2, 3 (two components). Padded nodes get L_ii = 2n = 12, so they sort last.
PADDED = [(3, [(0, 1), (1, 2)]), (5, [(0, 1), (1, 2), (3, 4)])]
# DiGress: slot index c + k, eigenvalue / m below index n (padded slots give 12 / m), 2 from index n on.
DIGRESS_EIGS = [[1 / 3, 3 / 3, 12 / 3, 12 / 3, 12 / 3], [1 / 5, 2 / 5, 3 / 5, 12 / 5, 2.0]]
GRAPHDIFF_EIGS = [[1 / 3, 1.0, 2.0, 2.0, 2.0], [1 / 5, 2 / 5, 3 / 5, 2.0, 2.0]]


@pytest.mark.parametrize(("protocol", "expected"), [("digress", DIGRESS_EIGS), ("graphdiff", GRAPHDIFF_EIGS)])
def test_padded_eigenvalues(protocol: str, expected: list[list[float]]) -> None:
    g = _batch(PADDED, 6)
    _, graph = SpectralFeatures(with_vectors=False, protocol=protocol)(adjacency(g.E, g.node_mask), g.node_mask)
    assert graph[:, 0].tolist() == [1.0, 2.0]
    torch.testing.assert_close(graph[:, 1:], torch.tensor(expected, dtype=torch.float64))


def test_padded_eigenvalues_match_the_reference_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = _digress_module(tmp_path, "extra_features", monkeypatch)
    g = no_edge_diagonal(_batch(PADDED, 6, torch.float32))  # the reference's E_t: class 0 on the diagonal
    n_comp, eigs, _, vectors = ref.EigenFeatures(mode="all")({"E_t": g.E, "node_mask": g.node_mask})
    features = ExtraFeatures("all", max_nodes=6, protocol="digress")(g)
    torch.testing.assert_close(features.y[:, 5:6], n_comp.float())
    torch.testing.assert_close(features.y[:, 6:], eigs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(features.y[:, 6:], torch.tensor(DIGRESS_EIGS))
    # Eigenvectors (simple eigenvalues here) agree up to sign: graphdiff fixes it, the reference leaves eigh's.
    torch.testing.assert_close(features.X[..., 4:].abs(), vectors.abs(), atol=1e-5, rtol=1e-5)


# -------------------------------------------------------------------------------------- (c) molecular features
MOLECULE_INFO = {"name": "qm9", "kind": "molecule", "node_types": ["C", "N", "O", "F"],
                 "edge_types": ["none", "single", "double", "triple", "aromatic"], "valencies": [4, 3, 2, 1],
                 "atom_weights": [12.0, 14.0, 16.0, 19.0], "node_marginals": [0.25] * 4,
                 "edge_marginals": [0.2] * 5}


def _molecule() -> DenseGraph:
    """C0-C1 single, C1=O2 double, C1~N3 aromatic, padded to 6 slots."""
    nodes = torch.tensor([[0, 0, 2, 1, 0, 0]])
    E = torch.zeros(1, 6, 6, dtype=torch.long)
    for i, j, c in ((0, 1, 1), (1, 2, 2), (1, 3, 4)):
        E[0, i, j] = E[0, j, i] = c
    mask = torch.arange(6).unsqueeze(0) < 4
    return one_hot_graph(nodes, E, mask, 4, 5)


def test_digress_molecular_features_by_hand() -> None:
    info = _graph_info(9, **MOLECULE_INFO)
    features = DiGressMolecularFeatures.from_dataset_info(info)
    assert features.max_weight == 150.0  # DiGress's QM9 constant
    g = _molecule()
    node, weight = features(g.X, g.E, g.node_mask)
    # valency = sum of bond class indices (aromatic 4); charge = atom class index (C 0, O 2, N 1) - valency.
    assert node[0, :, 1].tolist() == [1, 7, 2, 4, 0, 0]
    assert node[0, :, 0].tolist() == [-1, -7, 0, -3, 0, 0]
    # Every slot counts, the two padded ones as class 0 (C, 12).
    assert weight.item() == pytest.approx((12 + 12 + 16 + 14 + 2 * 12) / 150)
    exact_node, exact_weight = MolecularFeatures.from_dataset_info(info)(g.X, g.E, g.node_mask)
    assert exact_node[0, 1].tolist() == [0.0, 4.5] and not torch.equal(exact_weight, weight)


def test_denoiser_builds_the_protocol_molecular_features() -> None:
    info = _graph_info(9, **MOLECULE_INFO)
    for protocol, cls in (("graphdiff", MolecularFeatures), ("digress", DiGressMolecularFeatures)):
        net = GraphTransformerDenoiser.from_dataset_info(info, protocol=protocol, **TINY)
        assert type(net.extra_features.molecular) is cls


def test_molecular_features_match_the_reference_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = _digress_module(tmp_path, "extra_features_molecular", monkeypatch)
    g = no_edge_diagonal(_molecule())
    infos = SimpleNamespace(remove_h=True, valencies=[4, 3, 2, 1], max_weight=150,
                            atom_weights={0: 12, 1: 14, 2: 16, 3: 19})
    noisy = {"X_t": g.X, "E_t": g.E}
    expected_node = torch.stack((ref.ChargeFeature(True, infos.valencies)(noisy), ref.ValencyFeature()(noisy)), -1)
    expected_weight = ref.WeightFeature(infos.max_weight, infos.atom_weights)(noisy)
    node, weight = DiGressMolecularFeatures.from_dataset_info(_graph_info(9, **MOLECULE_INFO))(g.X, g.E, g.node_mask)
    torch.testing.assert_close(node, expected_node)
    torch.testing.assert_close(weight, expected_weight)


# ------------------------------------------------------------------------------------------------ (d) diagonal
def test_digress_protocol_puts_no_edge_on_the_diagonal() -> None:
    g = _batch(PADDED, 6, torch.float32)
    seen: dict[str, torch.Tensor] = {}
    outputs = {}
    for protocol in ("graphdiff", "digress"):
        torch.manual_seed(0)
        net = GraphTransformerDenoiser.from_dataset_info(_graph_info(6), extra_features="none", protocol=protocol,
                                                         **{**TINY, "n_layers": 2}).eval()
        net.network.register_forward_pre_hook(lambda _, args, p=protocol: seen.__setitem__(p, args[1]))
        outputs[protocol] = net(g, torch.full((2,), 0.5))
    diag = torch.diagonal(seen["digress"], dim1=1, dim2=2)  # [B, de, n]
    real = g.node_mask.unsqueeze(1).float()
    assert torch.equal(diag[:, 0], real[:, 0]) and torch.equal(diag[:, 1], torch.zeros_like(diag[:, 1]))
    assert torch.equal(torch.diagonal(seen["graphdiff"], dim1=1, dim2=2), torch.zeros_like(diag))
    off = ~torch.eye(6, dtype=torch.bool)
    assert torch.equal(seen["digress"][:, off], seen["graphdiff"][:, off])
    # The diagonal reaches the edge logits through the pooling of E into y and the y-FiLM of the next layer.
    assert not torch.allclose(outputs["digress"].E, outputs["graphdiff"].E)


def test_unknown_protocol_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="protocol"):
        GraphTransformerDenoiser.from_dataset_info(_graph_info(6), protocol="digres", **TINY)


# ----------------------------------------------------------------------------------------------- validation NLL
def _kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True) if a > 0)


def _brute_lt(process: DiscreteDiffusion, clean: DenseGraph, noisy: DenseGraph, probs: DenseGraph, t: torch.Tensor,
              plug_in: bool) -> torch.Tensor:
    """Per graph, sum over real nodes and ordered pairs of KL(q(x_s | x_t, x_0) || model), entry by entry."""
    out = []
    for b in range(clean.batch_size):
        tb = int(t[b])
        step, bar = process.Q_t(torch.tensor([tb]), torch.float64), process.Q_bar(torch.tensor([tb - 1]), torch.float64)
        total = 0.0
        m = int(clean.node_mask[b].sum())
        slots = [(clean.X[b, i], noisy.X[b, i], probs.X[b, i], step.X[0], bar.X[0]) for i in range(m)]
        slots += [(clean.E[b, i, j], noisy.E[b, i, j], probs.E[b, i, j], step.E[0], bar.E[0])
                  for i in range(m) for j in range(m) if i != j]
        for x0, xt, p, Qt, Qs in slots:
            d, c0, ct = len(x0), int(x0.argmax()), int(xt.argmax())
            like = [float(Qt[k, ct]) for k in range(d)]  # q(x_t | x_s = k)
            true = [like[k] * float(Qs[c0, k]) for k in range(d)]
            true = [v / sum(true) for v in true]
            if plug_in:  # x_0 := p in q(x_s | x_t, x_0)
                model = [like[k] * sum(float(p[c]) * float(Qs[c, k]) for c in range(d)) for k in range(d)]
            else:  # sum_c q(x_s | x_t, x_0 = c) p(c)
                model = [0.0] * d
                for c in range(d):
                    post = [like[k] * float(Qs[c, k]) for k in range(d)]
                    z = sum(post)
                    model = [v + float(p[c]) * w / z for v, w in zip(model, post, strict=True)]
            total += _kl(true, [v / sum(model) for v in model])
        out.append(total)
    return torch.tensor(out, dtype=torch.float64)


def test_digress_nll_plugs_the_prediction_into_the_posterior() -> None:
    T = 6
    process = DiscreteDiffusion(make_schedule("cosine", T), make_transition("marginal", 2, 3, [0.6, 0.4],
                                                                            [0.5, 0.3, 0.2]))
    gen = torch.Generator().manual_seed(3)
    nodes = torch.randint(0, 2, (2, 4), generator=gen)
    edges = torch.randint(0, 3, (2, 4, 4), generator=gen).triu(1)
    mask = torch.arange(4) < torch.tensor([[4], [3]])
    clean = one_hot_graph(nodes, edges + edges.transpose(1, 2), mask, 2, 3)
    clean = DenseGraph(clean.X.double(), clean.E.double(), clean.y.double(), mask)
    bias_X, bias_E = torch.randn(2, 4, 2, generator=gen, dtype=torch.float64), torch.randn(2, 4, 4, 3, generator=gen,
                                                                                            dtype=torch.float64)
    calls: list[tuple[DenseGraph, torch.Tensor, DenseGraph]] = []

    def predict(noisy: DenseGraph, t: torch.Tensor) -> DenseGraph:
        E = noisy.E + bias_E + bias_E.transpose(1, 2)
        logits = DenseGraph(noisy.X + bias_X, E, noisy.y, noisy.node_mask)
        calls.append((noisy, t, DenseGraph(logits.X.softmax(-1), E.softmax(-1), noisy.y, noisy.node_mask)))
        return logits

    results = {}
    for nll in ("digress", "graphdiff"):
        calls.clear()
        bound = process.variational_bound(predict, clean, generator=torch.Generator().manual_seed(5),
                                          both_edge_directions=True, nll=nll)
        noisy, t, probs = calls[0]
        plug_in = _brute_lt(process, clean, noisy, probs, t, plug_in=True)
        marginal = _brute_lt(process, clean, noisy, probs, t, plug_in=False)
        assert (plug_in - marginal).abs().max() > 1e-3  # the two definitions differ on this case
        weight = T if nll == "digress" else T - 1
        torch.testing.assert_close(bound["diffusion"], weight * (plug_in if nll == "digress" else marginal))
        results[nll] = (bound, calls[1])
    # DiGress's reconstruction term reads the prediction at the clean graph and time 0.
    bound, (seen, t0, probs0) = results["digress"]
    assert torch.equal(seen.E, clean.E) and t0.tolist() == [0, 0]
    real = mask.unsqueeze(-1).double()
    expected = -(clean.X * probs0.X.log() * real).sum((1, 2)) - sum(
        (clean.E[:, i, j] * probs0.E[:, i, j].log()).sum(-1) * (mask[:, i] & mask[:, j]) for i in range(4)
        for j in range(4) if i != j)
    torch.testing.assert_close(bound["reconstruction"], expected)
    assert results["graphdiff"][1][1].tolist() == [1, 1]


def test_model_nll_option(monkeypatch: pytest.MonkeyPatch) -> None:
    info = _graph_info(4).to_dict()
    with pytest.raises(ConfigError, match="nll"):
        DiscreteDiffusionModel(dataset_info=info, T=4, model=TINY, nll="elbo")
    seen: dict[str, object] = {}

    def bound(self, predict, clean, node_count_probs=None, generator=None, both_edge_directions=False,
              nll="graphdiff"):
        seen.update(both=both_edge_directions, nll=nll)
        zeros = torch.zeros(clean.batch_size)
        return dict.fromkeys(("nll", "kl_prior", "diffusion", "reconstruction", "log_pn"), zeros)

    monkeypatch.setattr(DiscreteDiffusion, "variational_bound", bound)
    batch = _batch([(3, [(0, 1)]), (4, [(2, 3)])], 4, torch.float32)
    for nll, both in (("graphdiff", False), ("digress", True)):
        model = DiscreteDiffusionModel(dataset_info=info, T=4, model=TINY, nll=nll)
        monkeypatch.setattr(model, "log", lambda *a, **k: None)
        model.validation_step(batch, 0)
        assert seen == {"both": both, "nll": nll}


# ------------------------------------------------------------------------------------------- node-count sources
def test_node_counts_from_train_and_val(data_root: Path) -> None:
    default = GraphDataModule(dataset="comm20", root=str(data_root))
    both = GraphDataModule(dataset="comm20", root=str(data_root), node_counts_from=["train", "val"])
    data = default.data
    sizes = {s: data.split(s).num_nodes.tolist() for s in ("train", "val")}

    def histogram(values: list[int]) -> torch.Tensor:
        counts = torch.zeros(data.info.max_nodes + 1)
        for v in values:
            counts[v] += 1
        return counts / counts.sum()

    torch.testing.assert_close(default.info.node_count_distribution(), histogram(sizes["train"]))
    torch.testing.assert_close(both.info.node_count_distribution(), histogram(sizes["train"] + sizes["val"]))
    assert not torch.equal(histogram(sizes["train"]), histogram(sizes["train"] + sizes["val"]))
    assert both.dataset_info["node_counts"] == both.info.node_counts  # what the model and checkpoints get
    with pytest.raises(ConfigError, match="no split 'valid'"):
        _ = GraphDataModule(dataset="comm20", root=str(data_root), node_counts_from=["train", "valid"]).info
    for bad in ("train", [], ["train", "train"]):
        with pytest.raises(ConfigError, match="node_counts_from"):
            GraphDataModule(dataset="comm20", node_counts_from=bad)


@pytest.mark.parametrize("config", [f"{family}/{name}.yaml" for family in ("discrete", "flow")
                                    for name in ("planar", "sbm", "comm20")])
def test_spectre_configs_use_train_and_val_node_counts(config: str) -> None:
    data = yaml.safe_load((CONFIGS / config).read_text())["data"]
    assert data["node_counts_from"] == ["train", "val"]
