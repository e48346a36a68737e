"""The discrete diffusion process against brute force: Bayes over every graph state, sampling frequencies,
hand-computed losses and an exact expectation of the variational bound."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from graphdiff.diffusion.process import (
    DiscreteDiffusion,
    cross_entropy_loss,
    marginalised_posterior_probs,
    posterior_per_clean_class,
)
from graphdiff.diffusion.schedules import CosineSchedule, CustomSchedule, NoiseSchedule
from graphdiff.diffusion.transitions import AbsorbingTransition, MarginalTransition, UniformTransition
from graphdiff.generation import sample_categorical
from graphdiff.types import DenseGraph, one_hot_graph

F64 = torch.float64
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
KINDS = ["uniform", "marginal", "absorbing"]


def assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-6, atol: float = 1e-7) -> None:
    """``numpy.testing.assert_allclose`` on tensors (``torch.testing`` imports slowly on first use)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_allclose(
        actual.detach().cpu().double().numpy(), expected.detach().cpu().double().numpy(), rtol=rtol, atol=atol
    )


def make_diffusion(kind: str, dx: int, de: int, schedule: NoiseSchedule | int = 12) -> DiscreteDiffusion:
    if isinstance(schedule, int):
        schedule = CosineSchedule(schedule)
    if kind == "uniform":
        transition = UniformTransition(dx, de)
    elif kind == "marginal":
        transition = MarginalTransition(torch.arange(1.0, dx + 1), torch.arange(float(de), 0, -1))
    else:
        transition = AbsorbingTransition(dx, de, x_state=dx - 1, e_state=0)
    return DiscreteDiffusion(schedule, transition)


# ---------------------------------------------------------------------------------------------------------------
# Brute force: whole-graph states and explicit matrix products.
# ---------------------------------------------------------------------------------------------------------------


def upper_pairs(n: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def all_states(n: int, dx: int, de: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every graph on ``n`` labelled nodes: ``X [S, n]`` node classes, ``E [S, P]`` classes of the pairs i < j."""
    P = len(upper_pairs(n))
    states = list(itertools.product(itertools.product(range(dx), repeat=n), itertools.product(range(de), repeat=P)))
    X = torch.tensor([x for x, _ in states]).reshape(len(states), n)
    E = torch.tensor([e for _, e in states]).reshape(len(states), P)
    return X, E


def dense_graphs(X: torch.Tensor, E: torch.Tensor, n_pad: int, dx: int, de: int) -> DenseGraph:
    """One-hot float64 graphs from state rows, padded with ``n_pad - n`` fake nodes."""
    B, n = X.shape
    node_classes = torch.zeros(B, n_pad, dtype=torch.long)
    node_classes[:, :n] = X
    edge_classes = torch.zeros(B, n_pad, n_pad, dtype=torch.long)
    for p, (i, j) in enumerate(upper_pairs(n)):
        edge_classes[:, i, j] = edge_classes[:, j, i] = E[:, p]
    node_mask = torch.arange(n_pad).expand(B, -1) < n
    g = one_hot_graph(node_classes, edge_classes, node_mask, dx, de)
    return DenseGraph(g.X.double(), g.E.double(), g.y.double(), g.node_mask)


def step_matrix(schedule: NoiseSchedule, m: torch.Tensor, k: int) -> torch.Tensor:
    beta = schedule.betas[k].item()
    return (1 - beta) * torch.eye(m.numel(), dtype=F64) + beta * m.unsqueeze(0).expand(m.numel(), -1)


def explicit(diffusion: DiscreteDiffusion, s: int, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``Q_{s+1} ... Q_t`` for nodes and edges by explicit multiplication."""
    out = []
    for m in (diffusion.limit_dist().X, diffusion.limit_dist().E):
        Q = torch.eye(m.numel(), dtype=F64)
        for k in range(s + 1, t + 1):
            Q = Q @ step_matrix(diffusion.schedule, m, k)
        out.append(Q)
    return out[0], out[1]


def state_transitions(X: torch.Tensor, E: torch.Tensor, QX: torch.Tensor, QE: torch.Tensor) -> torch.Tensor:
    """``[S, S]``: probability that graph state ``a`` becomes state ``b`` (independent nodes and pairs)."""
    node = QX[X.unsqueeze(1), X.unsqueeze(0)].prod(-1)
    pair = QE[E.unsqueeze(1), E.unsqueeze(0)].prod(-1)
    return node * pair


def state_probs(graph: DenseGraph, b: int, X: torch.Tensor, E: torch.Tensor) -> torch.Tensor:
    """``[S]``: probability of each state under the factorised per-position distributions of graph ``b``."""
    n = X.shape[1]
    p = graph.X[b, torch.arange(n), X].prod(-1)
    for q, (i, j) in enumerate(upper_pairs(n)):
        p = p * graph.E[b, i, j, E[:, q]]
    return p


def bayes_table(diffusion: DiscreteDiffusion, X, E, s: int, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``post[c, k] = q(G_s = k | G_t, G_0 = c)`` for one ``G_t``, given as a function, and ``q(G_t | c)``."""
    A = state_transitions(X, E, *explicit(diffusion, 0, s))  # q(G_s = k | G_0 = c)
    B = state_transitions(X, E, *explicit(diffusion, s, t))  # q(G_t = j | G_s = k)

    def table(j: int) -> tuple[torch.Tensor, torch.Tensor]:
        joint = A * B[:, j].unsqueeze(0)
        evidence = joint.sum(1, keepdim=True)
        return torch.where(evidence > 0, joint / evidence, 0.0), evidence.squeeze(1)

    return table  # type: ignore[return-value]


STRIDES = [(0, 1), (0, 5), (3, 4), (2, 9), (5, 12), (11, 12), (0, 12)]


def batch_of_pairs(diffusion, X, E, n_pad, seed=0):
    """Random ``(G_0, G_t)`` pairs with ``G_t ~ q(G_t | G_0)``, two for each stride of ``STRIDES``."""
    g = torch.Generator().manual_seed(seed)
    dx, de = diffusion.dx, diffusion.de
    rows = []
    for s, t in STRIDES:
        Q_t = state_transitions(X, E, *explicit(diffusion, 0, t))
        for _ in range(2):
            c = int(torch.randint(len(X), (1,), generator=g))
            j = int(torch.multinomial(Q_t[c], 1, generator=g))
            rows.append((s, t, c, j))
    s, t, c, j = (torch.tensor(col) for col in zip(*rows, strict=True))
    return s, t, c, j, dense_graphs(X[c], E[c], n_pad, dx, de), dense_graphs(X[j], E[j], n_pad, dx, de)


@pytest.mark.parametrize("n, dx, de", [(3, 2, 2), (2, 3, 3)])
@pytest.mark.parametrize("kind", KINDS)
def test_posterior_is_bayes_rule_over_whole_graphs(kind: str, n: int, dx: int, de: int) -> None:
    diffusion = make_diffusion(kind, dx, de)
    X, E = all_states(n, dx, de)
    s, t, c, j, clean, noisy = batch_of_pairs(diffusion, X, E, n_pad=n + 1)
    post = diffusion.posterior(noisy, clean, s, t)  # one call, a different (s, t) per graph
    for b in range(len(s)):
        expected, _ = bayes_table(diffusion, X, E, int(s[b]), int(t[b]))(int(j[b]))
        assert_close(state_probs(post, b, X, E), expected[c[b]], atol=1e-10)
    # Real rows are distributions; padding rows and the diagonal are empty.
    assert_close(post.X[:, :n].sum(-1), torch.ones(len(s), n))
    assert post.X[:, n:].abs().sum() == 0 and post.E[:, n:].abs().sum() == 0 and post.E[:, :, n:].abs().sum() == 0
    assert torch.diagonal(post.E, dim1=1, dim2=2).abs().sum() == 0


@pytest.mark.parametrize("n, dx, de", [(3, 2, 2), (2, 3, 3)])
@pytest.mark.parametrize("kind", KINDS)
def test_marginalised_reverse_step_is_explicit_sum_over_clean_graphs(kind: str, n: int, dx: int, de: int) -> None:
    diffusion = make_diffusion(kind, dx, de)
    X, E = all_states(n, dx, de)
    s, t, _, j, _, noisy = batch_of_pairs(diffusion, X, E, n_pad=n + 1, seed=1)
    g = torch.Generator().manual_seed(2)
    B, n_pad = noisy.X.shape[:2]
    pred_E = torch.distributions.Dirichlet(torch.ones(de, dtype=F64)).sample((B, n_pad, n_pad))
    pred_E = torch.triu(pred_E.permute(0, 3, 1, 2), 1).permute(0, 2, 3, 1)
    pred_E = pred_E + pred_E.transpose(1, 2)
    pred_X = torch.rand(B, n_pad, dx, generator=g, dtype=F64) + 0.05
    pred = DenseGraph(pred_X / pred_X.sum(-1, keepdim=True), pred_E, noisy.y, noisy.node_mask)

    model = diffusion.posterior_marginalised(noisy, pred, s, t)
    for b in range(B):
        table, evidence = bayes_table(diffusion, X, E, int(s[b]), int(t[b]))(int(j[b]))
        weight = state_probs(pred, b, X, E) * (evidence > 0)  # clean graphs that cannot give G_t are ruled out
        expected = (weight.unsqueeze(1) * table).sum(0)
        assert_close(state_probs(model, b, X, E), expected / expected.sum(), atol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_batched_over_clean_posterior_and_its_matrix_form_agree(kind: str) -> None:
    diffusion = make_diffusion(kind, dx=4, de=3, schedule=50)
    g = torch.Generator().manual_seed(3)
    B, N, d = 5, 7, 4
    M_t = torch.nn.functional.one_hot(torch.randint(d, (B, N), generator=g), d).double()
    pred = torch.rand(B, N, d, generator=g, dtype=F64)
    pred = pred / pred.sum(-1, keepdim=True)
    t = torch.randint(1, 51, (B,), generator=g)
    s = (torch.rand(B, generator=g) * t).long()
    Q_ts, Q_bar_s = diffusion.Q_ts(t, s, F64).X, diffusion.Q_bar(s, F64).X
    per_class = posterior_per_clean_class(M_t, Q_ts, Q_bar_s)  # [B, N, d0, ds]
    explicit_sum = (pred.unsqueeze(-1) * per_class).sum(-2)
    assert_close(marginalised_posterior_probs(M_t, pred, Q_ts, Q_bar_s), explicit_sum / explicit_sum.sum(-1, True))


# ---------------------------------------------------------------------------------------------------------------
# Sampling.
# ---------------------------------------------------------------------------------------------------------------


def random_graphs(B: int, n: int, dx: int, de: int, seed: int = 0, device: str = "cpu") -> DenseGraph:
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(1, n + 1, (B,), generator=g)
    counts[0] = n
    node_mask = torch.arange(n).expand(B, -1) < counts.unsqueeze(1)
    E = torch.randint(de, (B, n, n), generator=g).triu(1)
    graph = one_hot_graph(torch.randint(dx, (B, n), generator=g), E + E.transpose(1, 2), node_mask, dx, de)
    return graph.to(device)


def check_invariants(graph: DenseGraph) -> None:
    """One-hot real rows, symmetric E, empty diagonal and padding."""
    mask = graph.node_mask
    pairs = mask.unsqueeze(1) & mask.unsqueeze(2) & ~torch.eye(mask.shape[1], dtype=torch.bool, device=mask.device)
    assert bool((graph.X.sum(-1) == mask.to(graph.X.dtype)).all())
    assert bool((graph.E.sum(-1) == pairs.to(graph.E.dtype)).all())
    assert bool(((graph.X == 0) | (graph.X == 1)).all()) and bool(((graph.E == 0) | (graph.E == 1)).all())
    assert bool((graph.E == graph.E.transpose(1, 2)).all())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", KINDS)
def test_add_noise_invariants_and_seeding(kind: str, device: str) -> None:
    diffusion = make_diffusion(kind, dx=4, de=3, schedule=100)
    clean = random_graphs(16, 9, 4, 3, device=device)
    t = torch.randint(0, 101, (16,), device=device)
    noisy = diffusion.add_noise(clean, t, torch.Generator(device).manual_seed(5))
    check_invariants(noisy)
    assert noisy.X.device.type == device and noisy.X.dtype == clean.X.dtype
    again = diffusion.add_noise(clean, t, torch.Generator(device).manual_seed(5))
    other = diffusion.add_noise(clean, t, torch.Generator(device).manual_seed(6))
    assert torch.equal(noisy.X, again.X) and torch.equal(noisy.E, again.E)
    assert not torch.equal(noisy.E, other.E)
    # t = 0 is the data itself.
    unchanged = diffusion.add_noise(clean, 0)
    assert torch.equal(unchanged.X, clean.X) and torch.equal(unchanged.E, clean.E)


def chi_square_p(observed: torch.Tensor, expected_probs: torch.Tensor) -> float:
    """p-value of a chi-square goodness-of-fit test; classes of zero probability must never occur."""
    observed, expected_probs = observed.double(), expected_probs.double()
    impossible = expected_probs == 0
    assert observed[impossible].sum() == 0
    expected = expected_probs[~impossible] * observed.sum()
    if expected.numel() < 2:
        return 1.0
    return float(stats.chisquare(observed[~impossible].numpy(), expected.numpy()).pvalue)


@pytest.mark.parametrize("kind", KINDS)
def test_add_noise_frequencies_match_x_q_bar(kind: str) -> None:
    diffusion = make_diffusion(kind, dx=3, de=3, schedule=20)
    dx, de, n, B = 3, 3, 6, 2000
    clean = random_graphs(1, n, dx, de, seed=4)
    clean = DenseGraph(
        clean.X.expand(B, -1, -1), clean.E.expand(B, -1, -1, -1), clean.y.expand(B, 0), clean.node_mask.expand(B, -1)
    )
    t = torch.where(torch.arange(B) < B // 2, 3, 11)
    noisy = diffusion.add_noise(clean, t, torch.Generator().manual_seed(0))
    iu = torch.triu_indices(n, n, 1)
    for t_value in (3, 11):
        QX, QE = explicit(diffusion, 0, t_value)
        rows = t == t_value
        for M, M_t, Q in (
            (clean.X[rows], noisy.X[rows], QX),
            (clean.E[rows][:, iu[0], iu[1]], noisy.E[rows][:, iu[0], iu[1]], QE),
        ):
            for c in range(Q.shape[0]):
                at_c = M.argmax(-1) == c
                if at_c.any():
                    observed = M_t[at_c].sum(0)
                    assert chi_square_p(observed, Q[c]) > 1e-4, (t_value, c, observed, Q[c])


@pytest.mark.parametrize("kind", KINDS)
def test_prior_samples_the_limit_distribution(kind: str) -> None:
    diffusion = make_diffusion(kind, dx=3, de=4)
    node_mask = torch.arange(8).expand(500, -1) < torch.arange(500).remainder(8).add(1).unsqueeze(1)
    prior = diffusion.prior(node_mask, torch.Generator().manual_seed(0))
    check_invariants(prior)
    assert prior.y.shape == (500, 0)
    iu = torch.triu_indices(8, 8, 1)
    limit = diffusion.limit_dist()
    assert chi_square_p(prior.X.sum((0, 1)), limit.X) > 1e-4
    assert chi_square_p(prior.E[:, iu[0], iu[1]].sum((0, 1)), limit.E) > 1e-4


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", KINDS)
def test_step_invariants_and_seeding(kind: str, device: str) -> None:
    diffusion = make_diffusion(kind, dx=4, de=3, schedule=100)
    clean = random_graphs(16, 9, 4, 3, device=device)
    t = torch.randint(1, 101, (16,), device=device)
    s = t - torch.randint(1, 10, (16,), device=device).clamp(max=t)  # strides of 1 to 9 steps, s >= 0
    noisy = diffusion.add_noise(clean, t)
    g = torch.Generator(device).manual_seed(0)
    pred = DenseGraph(
        torch.rand(16, 9, 4, device=device, generator=g),
        torch.rand(16, 9, 9, 3, device=device, generator=g),
        clean.y,
        clean.node_mask,
    )
    out = diffusion.step(pred, noisy, s, t, torch.Generator(device).manual_seed(1))
    check_invariants(out)
    again = diffusion.step(pred, noisy, s, t, torch.Generator(device).manual_seed(1))
    assert torch.equal(out.X, again.X) and torch.equal(out.E, again.E)


@pytest.mark.parametrize("kind", ["uniform", "marginal"])
def test_step_to_zero_with_a_perfect_prediction_returns_the_data(kind: str) -> None:
    diffusion = make_diffusion(kind, dx=4, de=3, schedule=50)
    clean = random_graphs(8, 7, 4, 3)
    t = torch.tensor([1, 2, 5, 10, 20, 30, 49, 50])
    noisy = diffusion.add_noise(clean, t, torch.Generator().manual_seed(0))
    pred = DenseGraph(clean.X.clone(), clean.E.clone(), clean.y, clean.node_mask)
    out = diffusion.step(pred, noisy, 0, t, torch.Generator().manual_seed(1))
    assert torch.equal(out.X, clean.X) and torch.equal(out.E, clean.E)


def test_step_frequencies_match_the_reverse_distribution() -> None:
    diffusion = make_diffusion("marginal", dx=3, de=3, schedule=30)
    B, n = 3000, 4
    clean = random_graphs(1, n, 3, 3, seed=2)
    noisy = diffusion.add_noise(clean, 20, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    pred = DenseGraph(torch.rand(1, n, 3, generator=g), torch.rand(1, n, n, 3, generator=g), clean.y, clean.node_mask)
    s, t = torch.tensor([8]), torch.tensor([20])
    probs = diffusion.posterior_marginalised(noisy, pred, s, t)
    many = DenseGraph(
        noisy.X.expand(B, -1, -1), noisy.E.expand(B, -1, -1, -1), noisy.y.expand(B, 0), noisy.node_mask.expand(B, -1)
    )
    many_pred = DenseGraph(
        pred.X.expand(B, -1, -1), pred.E.expand(B, -1, -1, -1), pred.y.expand(B, 0), pred.node_mask.expand(B, -1)
    )
    out = diffusion.step(many_pred, many, s.expand(B), t.expand(B), torch.Generator().manual_seed(2))
    statistic, dof = 0.0, 0
    positions = [(out.X[:, i], probs.X[0, i]) for i in range(n)]
    positions += [(out.E[:, i, j], probs.E[0, i, j]) for i, j in upper_pairs(n)]
    for samples, p in positions:
        observed, expected = samples.sum(0).double(), p.double() * B
        statistic += float(((observed - expected) ** 2 / expected).sum())
        dof += p.numel() - 1
    assert stats.chi2.sf(statistic, dof) > 1e-4


def test_sample_categorical_never_draws_impossible_classes() -> None:
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.5], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]).expand(5000, -1, -1)
    draws = sample_categorical(probs, torch.Generator().manual_seed(0))
    assert set(draws[:, 0].tolist()) == {1, 3} and set(draws[:, 1].tolist()) == {2}
    assert set(draws[:, 2].tolist()) == {0}


def test_sample_timesteps() -> None:
    diffusion = make_diffusion("uniform", 2, 2, schedule=5)
    train = diffusion.sample_timesteps(4000, torch.Generator().manual_seed(0))
    val = diffusion.sample_timesteps(4000, torch.Generator().manual_seed(0), training=False)
    assert set(train.tolist()) == set(range(6)) and set(val.tolist()) == set(range(1, 6))
    assert train.dtype == torch.long and train.shape == (4000,)
    assert torch.equal(train, diffusion.sample_timesteps(4000, torch.Generator().manual_seed(0)))


def test_timestep_shapes_and_errors() -> None:
    diffusion = make_diffusion("uniform", 2, 2, schedule=5)
    assert diffusion.timesteps(torch.tensor([[1], [2]]), 2).shape == (2,)
    assert torch.equal(diffusion.timesteps(3, 4), torch.tensor([3, 3, 3, 3]))
    with pytest.raises(ValueError, match="B=3"):
        diffusion.timesteps(torch.tensor([1, 2]), 3)
    with pytest.raises(TypeError, match="integers"):
        diffusion.timesteps(torch.tensor([0.5, 0.2]), 2)
    clean = random_graphs(2, 3, 2, 2)
    with pytest.raises(ValueError, match="s < t"):
        diffusion.posterior(clean, clean, torch.tensor([2, 3]), torch.tensor([2, 4]))


# ---------------------------------------------------------------------------------------------------------------
# Training loss.
# ---------------------------------------------------------------------------------------------------------------


def log_softmax_row(row: list[float], k: int) -> float:
    return row[k] - math.log(sum(math.exp(v) for v in row))


@pytest.mark.parametrize("device", DEVICES)
def test_cross_entropy_loss_by_hand(device: str) -> None:
    dx, de, n = 3, 2, 3
    clean = one_hot_graph(
        torch.tensor([[0, 2, 1], [1, 1, 0]]),
        torch.tensor([[[0, 1, 0], [1, 0, 1], [0, 1, 0]], [[0, 1, 0], [1, 0, 0], [0, 0, 0]]]),
        torch.tensor([[True, True, True], [True, True, False]]),
        dx,
        de,
        y=torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
    ).to(device)
    g = torch.Generator().manual_seed(0)
    logits = DenseGraph(
        torch.randn(2, n, dx, generator=g),
        torch.randn(2, n, n, de, generator=g),
        torch.randn(2, 2, generator=g),
        clean.node_mask.cpu(),
    )
    # Garbage on padding and diagonal must not matter.
    logits.X[1, 2] = float("inf")
    logits.E[:, 0, 0] = 1e4
    logits.E[1, 2, 0] = float("nan")
    node_terms, edge_terms = [], []
    X_cls, E_cls = clean.X.argmax(-1).cpu(), clean.E.argmax(-1).cpu()
    for b, count in ((0, 3), (1, 2)):
        for i in range(count):
            node_terms.append(-log_softmax_row(logits.X[b, i].tolist(), int(X_cls[b, i])))
            for j in range(count):
                if i != j:
                    edge_terms.append(-log_softmax_row(logits.E[b, i, j].tolist(), int(E_cls[b, i, j])))
    y_terms = [-log_softmax_row(logits.y[b].tolist(), b) for b in range(2)]
    loss_X, loss_E, loss_y = np.mean(node_terms), np.mean(edge_terms), np.mean(y_terms)
    assert len(node_terms) == 5 and len(edge_terms) == 8

    out = cross_entropy_loss(logits.to(device), clean, lambda_E=5.0)
    assert out["X"].item() == pytest.approx(loss_X, rel=1e-5)
    assert out["E"].item() == pytest.approx(loss_E, rel=1e-5)
    assert out["loss"].item() == pytest.approx(loss_X + 5 * loss_E, rel=1e-5)
    out = cross_entropy_loss(logits.to(device), clean, lambda_E=2.0, lambda_y=0.5)
    assert out["y"].item() == pytest.approx(loss_y, rel=1e-5)
    assert out["loss"].item() == pytest.approx(loss_X + 2 * loss_E + 0.5 * loss_y, rel=1e-5)


def test_cross_entropy_loss_gradients_and_y_errors() -> None:
    clean = random_graphs(4, 5, 3, 2)
    X = torch.zeros(4, 5, 3, requires_grad=True)
    E = torch.zeros(4, 5, 5, 2, requires_grad=True)
    out = cross_entropy_loss(DenseGraph(X, E, torch.zeros(4, 0), clean.node_mask), clean)
    assert out["X"].item() == pytest.approx(math.log(3)) and out["E"].item() == pytest.approx(math.log(2))
    out["loss"].backward()
    assert X.grad is not None and E.grad is not None and E.grad[~clean.node_mask].abs().sum() == 0
    assert bool(torch.isfinite(X.grad).all()) and X.grad[clean.node_mask].abs().sum() > 0
    # A batch of single-node graphs has no pairs: the edge term is 0, not NaN.
    single = random_graphs(3, 1, 3, 2)
    out = cross_entropy_loss(
        DenseGraph(torch.zeros(3, 1, 3), torch.zeros(3, 1, 1, 2), torch.zeros(3, 0), single.node_mask), single
    )
    assert out["E"].item() == 0.0 and out["X"].item() == pytest.approx(math.log(3))
    with pytest.raises(ValueError, match="lambda_y"):
        cross_entropy_loss(DenseGraph(X, E, torch.zeros(4, 0), clean.node_mask), clean, lambda_y=1.0)


# ---------------------------------------------------------------------------------------------------------------
# Variational bound.
# ---------------------------------------------------------------------------------------------------------------


def perfect_predictor(clean: DenseGraph):
    def predict(noisy: DenseGraph, t: torch.Tensor) -> DenseGraph:
        return DenseGraph(40.0 * clean.X, 40.0 * clean.E, noisy.y, noisy.node_mask)

    return predict


def uniform_predictor(noisy: DenseGraph, t: torch.Tensor) -> DenseGraph:
    return DenseGraph(torch.zeros_like(noisy.X), torch.zeros_like(noisy.E), noisy.y, noisy.node_mask)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", KINDS)
def test_vlb_terms_finite_and_perfect_predictor_wins(kind: str, device: str) -> None:
    diffusion = make_diffusion(kind, dx=4, de=3, schedule=100)
    clean = random_graphs(12, 8, 4, 3, device=device)
    node_counts = torch.tensor([0, 1, 1, 1, 1, 2, 2, 2, 3.0]) / 13
    perfect = diffusion.variational_bound(
        perfect_predictor(clean), clean, node_counts, torch.Generator(device).manual_seed(0)
    )
    uniform = diffusion.variational_bound(uniform_predictor, clean, node_counts, torch.Generator(device).manual_seed(0))
    for terms in (perfect, uniform):
        for name, value in terms.items():
            assert value.shape == (12,) and bool(torch.isfinite(value).all()), name
        assert_close(terms["nll"], -terms["log_pn"] + terms["kl_prior"] + terms["diffusion"] + terms["reconstruction"])
        assert bool((terms["diffusion"] >= 0).all()) and bool((terms["kl_prior"] >= 0).all())
    # Never worse on any graph (with absorbing noise, a lightly noised graph can be decoded without any help),
    # clearly better on the batch.
    assert bool((perfect["nll"] <= uniform["nll"] + 1e-4).all())
    assert float(perfect["nll"].sum()) < float(uniform["nll"].sum()) - 1.0
    assert float(perfect["diffusion"].abs().max()) < 1e-3 and float(perfect["reconstruction"].abs().max()) < 1e-3
    assert_close(perfect["log_pn"], node_counts.to(device)[clean.num_nodes].log())


@pytest.mark.parametrize("kind", ["uniform", "marginal"])
@pytest.mark.parametrize("T", [500, 1000])
def test_kl_prior_vanishes_at_large_T(kind: str, T: int) -> None:
    diffusion = make_diffusion(kind, dx=4, de=3, schedule=T)
    assert float(diffusion.kl_prior(random_graphs(8, 9, 4, 3)).abs().max()) < 1e-5


def test_kl_prior_by_hand_at_small_T() -> None:
    diffusion = make_diffusion("marginal", dx=3, de=2, schedule=CustomSchedule([0.3, 0.2]))
    clean = random_graphs(3, 4, 3, 2, seed=7)
    QX, QE = explicit(diffusion, 0, 2)
    limit = diffusion.limit_dist()

    def kl(p, q):
        return sum(pi * math.log(pi / qi) for pi, qi in zip(p.tolist(), q.tolist(), strict=True) if pi > 0)

    node_part, edge_part = [], []
    for b in range(3):
        count = int(clean.num_nodes[b])
        node_part.append(sum(kl(QX[int(clean.X[b, i].argmax())], limit.X) for i in range(count)))
        edge_part.append(sum(kl(QE[int(clean.E[b, i, j].argmax())], limit.E) for i, j in upper_pairs(count)))
    node_part, edge_part = torch.tensor(node_part), torch.tensor(edge_part)
    assert_close(diffusion.kl_prior(clean), node_part + edge_part, rtol=1e-5)
    assert_close(diffusion.kl_prior(clean, both_edge_directions=True), node_part + 2 * edge_part, rtol=1e-5)


def test_both_edge_directions_doubles_edge_terms() -> None:
    diffusion = make_diffusion("marginal", dx=3, de=3, schedule=20)
    clean = random_graphs(6, 5, 3, 3)
    one = diffusion.variational_bound(uniform_predictor, clean, None, torch.Generator().manual_seed(0))
    two = diffusion.variational_bound(uniform_predictor, clean, None, torch.Generator().manual_seed(0), True)
    assert_close(two["diffusion_E"], 2 * one["diffusion_E"], rtol=1e-5)
    assert_close(two["reconstruction_E"], 2 * one["reconstruction_E"], rtol=1e-5)
    assert_close(two["diffusion_X"], one["diffusion_X"])
    assert bool((one["log_pn"] == 0).all())


@pytest.mark.parametrize("kind", KINDS)
def test_vlb_estimator_is_unbiased(kind: str) -> None:
    """Monte Carlo mean of the diffusion and reconstruction terms vs their exact expectation.

    The exact value enumerates t and every noisy class of each position, with posteriors from explicit
    matrix products; the predictor looks at each position's own noisy class only, so positions decouple.
    """
    dx = de = 3
    T = 6
    diffusion = make_diffusion(kind, dx, de, schedule=T)
    W_X = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.0, 0.0], [0.0, -1.0, 1.5]])
    W_E = torch.tensor([[1.0, 0.2, 0.0], [0.0, 0.3, 1.0], [-1.0, 0.5, 0.0]])

    def predict(noisy: DenseGraph, t: torch.Tensor) -> DenseGraph:
        return DenseGraph(noisy.X @ W_X.to(noisy.X), noisy.E @ W_E.to(noisy.E), noisy.y, noisy.node_mask)

    matrices = {(a, b): explicit(diffusion, a, b) for b in range(1, T + 1) for a in (0, b - 1)}
    matrices.update({(0, 0): explicit(diffusion, 0, 0)})

    def exact_terms(c: int, Q: str, W: torch.Tensor) -> tuple[float, float]:
        """Expected sum_{t=2}^T KL_t and expected -log p(x_0 | x_1) for one position of clean class c."""
        index = 0 if Q == "X" else 1
        pred = torch.softmax(W.double(), -1)  # row j: p(x_0 | x_t = j)
        diffusion_total, reconstruction = 0.0, 0.0
        for t in range(1, T + 1):
            Q_s0, Q_ts, Q_t0 = (matrices[(a, b)][index] for a, b in ((0, t - 1), (t - 1, t), (0, t)))
            for j in range(3):
                if Q_t0[c, j] == 0:
                    continue
                joint = Q_s0 * Q_ts[:, j].unsqueeze(0)  # [c', k] = q(x_s = k, x_t = j | c')
                evidence = joint.sum(1, keepdim=True)
                post = torch.where(evidence > 0, joint / evidence, 0.0)
                model = (pred[j].unsqueeze(1) * (evidence > 0) * post).sum(0)
                model = model / model.sum()
                if t == 1:
                    reconstruction += float(Q_t0[c, j] * -torch.log(model[c]))
                else:
                    true = post[c]
                    kl = sum(float(p * torch.log(p / q)) for p, q in zip(true, model, strict=True) if p > 0)
                    diffusion_total += float(Q_t0[c, j]) * kl
        return diffusion_total, reconstruction

    one = one_hot_graph(
        torch.tensor([[0, 2]]), torch.tensor([[[0, 1], [1, 0]]]), torch.ones(1, 2, dtype=torch.bool), dx, de
    )
    positions = [exact_terms(0, "X", W_X), exact_terms(2, "X", W_X), exact_terms(1, "E", W_E)]
    exact_diffusion = sum(p[0] for p in positions)
    exact_reconstruction = sum(p[1] for p in positions)

    B = 2000
    many = DenseGraph(
        one.X.expand(B, -1, -1).double(),
        one.E.expand(B, -1, -1, -1).double(),
        torch.zeros(B, 0),
        one.node_mask.expand(B, -1),
    )
    terms = diffusion.variational_bound(predict, many, generator=torch.Generator().manual_seed(0))
    for name, exact in (("diffusion", exact_diffusion), ("reconstruction", exact_reconstruction)):
        values = terms[name]
        stderr = float(values.std()) / math.sqrt(B)
        assert abs(float(values.mean()) - exact) < 5 * stderr + 1e-9, (name, float(values.mean()), exact, stderr)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_probability_algebra_ignores_tf32() -> None:
    diffusion = make_diffusion("marginal", dx=4, de=3, schedule=500)
    clean = random_graphs(8, 9, 4, 3, device="cuda")
    t = torch.tensor([1, 2, 3, 10, 100, 250, 400, 500], device="cuda")
    noisy = diffusion.add_noise(clean, t)
    previous = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")  # TF32 matmuls: ~1e-3 relative error
        fast = diffusion.posterior_marginalised(noisy, diffusion.forward_probs(clean, 0), t - 1, t)
    finally:
        torch.set_float32_matmul_precision(previous)
    exact = diffusion.posterior_marginalised(
        DenseGraph(noisy.X.double(), noisy.E.double(), noisy.y, noisy.node_mask),
        DenseGraph(clean.X.double(), clean.E.double(), clean.y, clean.node_mask),
        t - 1,
        t,
    )
    assert_close(fast.X, exact.X, rtol=1e-5, atol=1e-7)
    assert_close(fast.E, exact.E, rtol=1e-5, atol=1e-7)
