"""``graphdiff quickstart``: train the small default model, sample, evaluate, draw — the README's main job."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from graphdiff.configs import resolve_config
from graphdiff.errors import ConfigError
from graphdiff.io import write_json
from graphdiff.outputs import check_output_path


def run_quickstart(config: str, output: str, num_samples: int = 40, steps: int | None = None,
                   max_epochs: int | None = None) -> dict:
    """Fit ``config`` (a file or a shipped config's name, see :func:`graphdiff.configs.resolve_config`), then sample
    ``num_samples`` graphs and write, under ``output``:

    ``samples.json`` (or ``samples.smi`` for molecules), ``metrics.json`` (against the test split),
    ``samples.png`` and ``chain.png``; the checkpoints and CSV logs stay in ``output/lightning_logs``.

    Returns:
        The metrics.
    """
    from graphdiff.api import load_model
    from graphdiff.evaluation import evaluate_generated
    from graphdiff.lightning_cli import run_lightning
    from graphdiff.pictures import draw_chain, draw_samples
    from graphdiff.sample_files import write_samples

    config = str(resolve_config(config))
    if num_samples < 1:
        raise ConfigError(f"num_samples={num_samples}: must be >= 1")
    _check_steps(config, steps)
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output {out}: is a file; give a folder for the quickstart's results")
    for name in ("samples.json", "metrics.json", "samples.png", "chain.png"):  # before the training, not after
        check_output_path(out / name, option="--output")
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    argv = ["fit", "--config", config, "--trainer.default_root_dir", str(out)]
    if max_epochs is not None:
        argv += ["--trainer.max_epochs", str(max_epochs)]
    cli = run_lightning(argv)
    ckpt = _trained_checkpoint(cli.trainer)
    fit_seconds = time.time() - start

    model = load_model(ckpt)
    graphs = model.generate(num_samples, steps=steps, seed=0)  # a bar on a terminal, none after -q
    samples = out / ("samples.smi" if model.info.kind == "molecule" else "samples.json")
    write_samples(samples, graphs, model.info, model.molecule_decoding)
    metrics = evaluate_generated(graphs, model.info, cli.datamodule.data, reference_split="test")
    write_json(out / "metrics.json", {"checkpoint": ckpt, "num_samples": num_samples, "fit_seconds": fit_seconds,
                                      "total_seconds": time.time() - start, "metrics": metrics})
    draw_samples(graphs, model.info, out / "samples.png")
    draw_chain(model, out / "chain.png", seed=0, steps=steps)
    return metrics


def _check_steps(config: str, steps: int | None) -> None:
    """Refuse, before training, ``steps`` outside ``1..T`` of a discrete-diffusion config."""
    if steps is None:
        return
    if steps < 1:
        raise ConfigError(f"steps={steps}: must be >= 1")
    try:
        blob = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config}: not a readable YAML config ({str(exc).splitlines()[0]})") from None
    model = blob.get("model") if isinstance(blob, dict) else None
    args = model.get("init_args", {}) if isinstance(model, dict) else {}
    T = args.get("T") if isinstance(args, dict) else None
    if isinstance(T, int) and steps > T and str(model.get("class_path", "")).endswith("DiscreteDiffusionModel"):
        raise ConfigError(f"steps={steps} exceeds the config's T={T}; use 1..{T} reverse steps")


def _trained_checkpoint(trainer) -> str:
    """The best checkpoint by the monitored metric, else the ``last.ckpt`` every fit keeps (also written when the run
    ended before its first validation)."""
    from graphdiff.callbacks import LastCheckpoint

    best = getattr(trainer.checkpoint_callback, "best_model_path", "")
    if best and Path(best).is_file():
        return best
    last = next(c for c in trainer.callbacks if isinstance(c, LastCheckpoint))
    return str(last.path(trainer))
