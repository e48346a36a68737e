"""Opt-in ``torch.compile`` (graphdiff/compile.py, ``model.compile``): no graph break in the denoiser, the same
results as eager, the eager fallback with one warning, unchanged ``state_dict`` keys, the option through the CLI
and a checkpoint.

Only ``test_compiled_matches_eager`` compiles for real (inductor: minutes on a busy 2-core machine, so ``slow``);
the others trace with dynamo alone or replace ``torch.compile`` by a stand-in.
"""

from __future__ import annotations

import copy
import logging

import pytest
import torch
import yaml

import graphdiff.api as gd
from graphdiff.cli import main
from graphdiff.compile import compile_network, compiled_call
from graphdiff.errors import ConfigError
from graphdiff.lit import DiscreteDiffusionModel
from graphdiff.models import GraphTransformerDenoiser
from tests.models.test_features import random_graphs
from tests.models.test_transformer import SMALL, labelled_batch, small_denoiser
from tests.test_cli import TINY_MODEL

_LOGGER = "graphdiff.compile"


# Batched LAPACK and small matmuls are much slower with 2 threads on a loaded 2-core machine.
pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(padded: bool, seed: int = 3):
    graphs = random_graphs(3, 5 if padded else 7, 7, seed=seed)
    return labelled_batch(graphs, n=7, dtype=torch.float32, seed=seed)


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == _LOGGER and r.levelno >= logging.WARNING]


class _Recorder:
    """A stand-in for ``torch.compile``: records its calls and returns the function (so it runs eagerly)."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, fn, **kwargs):
        self.calls.append(kwargs)
        return fn


# ---------------------------------------------------------------------------------------------------------------
# The graph transformer under dynamo


@pytest.mark.parametrize("training", [True, False])
def test_denoiser_traces_without_graph_breaks(training: bool) -> None:
    import torch._dynamo

    model = small_denoiser(extra_features="all").train(training)
    noisy = _batch(padded=True)
    torch._dynamo.reset()
    try:
        with torch.set_grad_enabled(training):
            explained = torch._dynamo.explain(model)(noisy, torch.rand(3))
    finally:
        torch._dynamo.reset()
    reasons = [str(r.reason).splitlines()[0] for r in explained.break_reasons]
    assert explained.graph_break_count == 0, reasons
    assert explained.graph_count == 1


def test_always_masking_keys_gives_the_same_values(monkeypatch) -> None:
    """A compiled forward masks the keys even without padding (no data-dependent branch); eager skips the mask
    then. Both give bit-identical outputs and gradients."""
    model = small_denoiser(extra_features="none", dropout=0.0)
    noisy = _batch(padded=False)
    assert bool(noisy.node_mask.all())
    t = torch.rand(3)

    def run():
        model.zero_grad()
        out = model(noisy, t)
        (out.X.square().sum() + out.E.square().sum()).backward()
        return out, [p.grad.clone() for p in model.parameters()]

    fast, fast_grads = run()
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    masked, masked_grads = run()
    assert torch.equal(fast.X, masked.X) and torch.equal(fast.E, masked.E)
    assert all(torch.equal(a, b) for a, b in zip(fast_grads, masked_grads, strict=True))


@pytest.mark.slow
def test_compiled_matches_eager() -> None:
    """Inductor on a one-layer transformer: forward and backward as eager, then a second shape (recompiled)."""
    import torch._dynamo
    import torch._inductor.config

    torch.manual_seed(0)
    config = {**SMALL, "n_layers": 1}
    eager = GraphTransformerDenoiser((3, 3, 0), (3, 3, 0), **config, extra_features="none", max_nodes=12,
                                     dropout=0.0)
    compiled = compile_network(copy.deepcopy(eager))
    torch._dynamo.reset()
    try:
        with torch._inductor.config.patch(compile_threads=1):
            for noisy in (_batch(padded=True), labelled_batch(random_graphs(2, 4, 9, seed=5), n=9,
                                                              dtype=torch.float32)):
                t = torch.rand(noisy.batch_size)
                outs = []
                for model in (eager, compiled):
                    model.zero_grad()
                    out = model(noisy, t)
                    (out.X.square().sum() + out.E.square().sum()).backward()
                    outs.append(out)
                torch.testing.assert_close(outs[1].X, outs[0].X, rtol=1e-5, atol=1e-5)
                torch.testing.assert_close(outs[1].E, outs[0].E, rtol=1e-5, atol=1e-5)
                for p, q in zip(compiled.parameters(), eager.parameters(), strict=True):
                    torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-4)
    finally:
        torch._dynamo.reset()
    assert not compiled_call(compiled).failed


# ---------------------------------------------------------------------------------------------------------------
# compile_network


def test_disabled_leaves_the_module_alone() -> None:
    model = small_denoiser(extra_features="none")
    assert compile_network(model, enabled=False) is model
    assert compiled_call(model) is None


def test_fallback_to_eager_with_one_warning(monkeypatch, caplog) -> None:
    calls = []

    def broken_compile(fn, **kwargs):
        def call(*args, **kw):
            calls.append(1)
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore detail")
        return call

    model = small_denoiser(extra_features="none").eval()
    noisy, t = _batch(padded=True), torch.rand(3)
    expected = model(noisy, t)
    monkeypatch.setattr(torch, "compile", broken_compile)
    assert compile_network(model) is model
    with caplog.at_level(logging.WARNING, logger=_LOGGER):
        first = model(noisy, t)
        second = model(noisy, t)
    assert torch.equal(first.X, expected.X) and torch.equal(first.E, expected.E)
    assert torch.equal(second.E, expected.E)
    assert len(calls) == 1  # the compiled call is not tried again
    assert compiled_call(model).failed
    (message,) = _warnings(caplog)
    assert "GraphTransformerDenoiser" in message
    assert "No working C++ compiler" in message and "eagerly" in message and "\n" not in message


def test_the_callers_errors_propagate_without_fallback(monkeypatch, caplog) -> None:
    """An error the eager module raises as well (here a wrong input width) is not a compiler failure."""

    def compile_(fn, **kwargs):
        return fn  # "compiled" = eager: raises what eager raises

    monkeypatch.setattr(torch, "compile", compile_)
    model = compile_network(small_denoiser(extra_features="none"))
    wrong = labelled_batch(random_graphs(2, 4, 6, seed=1), n=6, dx=4, dtype=torch.float32)
    with caplog.at_level(logging.WARNING, logger=_LOGGER), pytest.raises(ValueError, match="input dims"):
        model(wrong, torch.rand(2))
    assert not compiled_call(model).failed and not _warnings(caplog)


def test_unavailable_compiler_warns_once(monkeypatch, caplog) -> None:
    def unavailable(fn, **kwargs):
        raise RuntimeError("torch.compile is not supported on this platform")

    monkeypatch.setattr(torch, "compile", unavailable)
    model = small_denoiser(extra_features="none")
    with caplog.at_level(logging.WARNING, logger=_LOGGER):
        assert compile_network(model) is model
    assert compiled_call(model) is None
    assert len(_warnings(caplog)) == 1 and "not supported on this platform" in _warnings(caplog)[0]


def test_state_dict_keys_unchanged_and_copies_are_eager(monkeypatch) -> None:
    recorder = _Recorder()
    monkeypatch.setattr(torch, "compile", recorder)
    model = small_denoiser(extra_features="none")
    keys = list(model.state_dict())
    compile_network(model)
    compile_network(model)  # once only
    assert len(recorder.calls) == 1 and recorder.calls[0]["dynamic"] is None
    assert list(model.state_dict()) == keys and not any("_orig_mod" in k for k in keys)
    plain = small_denoiser(extra_features="none", max_nodes=12)
    plain.load_state_dict(model.state_dict(), strict=True)
    model.load_state_dict(plain.state_dict(), strict=True)
    assert compiled_call(copy.deepcopy(model)) is None  # nn.Module drops the compiled call when copied


# ---------------------------------------------------------------------------------------------------------------
# The model option


def test_model_option_compiles_the_network_only(monkeypatch, tiny_info) -> None:
    recorder = _Recorder()
    monkeypatch.setattr(torch, "compile", recorder)
    off = DiscreteDiffusionModel(tiny_info, T=5, model=TINY_MODEL["init_args"]["model"])
    off.setup("fit")
    assert compiled_call(off.denoiser) is None and not recorder.calls
    on = DiscreteDiffusionModel(tiny_info, T=5, model=TINY_MODEL["init_args"]["model"], compile=True)
    on.generate(2, steps=2, seed=0)  # sampling outside a trainer compiles too
    on.setup("fit")
    assert compiled_call(on.denoiser) is not None and compiled_call(on.process) is None
    assert len(recorder.calls) == 1
    assert list(on.state_dict()) == list(off.state_dict())
    with pytest.raises(ConfigError, match="model.compile"):
        DiscreteDiffusionModel(tiny_info, T=5, model=TINY_MODEL["init_args"]["model"], compile="yes")


def test_cli_option_round_trips_through_a_checkpoint(monkeypatch, tmp_path) -> None:
    recorder = _Recorder()
    monkeypatch.setattr(torch, "compile", recorder)
    config = {
        "seed_everything": 0,
        "model": TINY_MODEL,
        "data": {"dataset": "comm20", "batch_size": 8, "root": str(tmp_path / "data")},
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_steps": 2, "logger": False, "enable_progress_bar": False,
            "enable_model_summary": False, "default_root_dir": str(tmp_path / "run"), "limit_val_batches": 1,
            "num_sanity_val_steps": 0,
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(path), "--model.compile", "true"]) == 0
    assert len(recorder.calls) == 1
    last = next((tmp_path / "run").rglob("last.ckpt"))
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["hyper_parameters"]["compile"] is True
    assert not any("_orig_mod" in k for k in ckpt["state_dict"])

    model = gd.load_model(last)  # compile=True comes back, and compiles at sampling
    assert model.hparams.compile is True
    model.generate(2, steps=2, seed=0)
    assert compiled_call(model.denoiser) is not None and len(recorder.calls) == 2

    hparams = {k: v for k, v in ckpt["hyper_parameters"].items() if not k.startswith("_")}
    plain = DiscreteDiffusionModel(**{**hparams, "compile": False})  # loadable without compilation
    plain.load_state_dict(ckpt["state_dict"], strict=True)
    plain.generate(2, steps=2, seed=0)
    assert compiled_call(plain.denoiser) is None and len(recorder.calls) == 2


@pytest.fixture
def tiny_info():
    from graphdiff.info import DatasetInfo

    return DatasetInfo(
        name="toy", kind="graph", node_types=["node"], edge_types=["none", "edge"], max_nodes=6,
        split_sizes={"train": 1}, node_counts=[0, 0, 0, 1, 1, 1, 1], node_marginals=[1.0],
        edge_marginals=[0.7, 0.3],
    ).to_dict()
