"""``graphdiff quickstart``: train the small default model, sample, evaluate, draw — the README's main job."""

from __future__ import annotations

import time
from pathlib import Path

from graphdiff.errors import ConfigError
from graphdiff.io import write_json


def run_quickstart(config: str, output: str, num_samples: int = 40, steps: int | None = None,
                   max_epochs: int | None = None) -> dict:
    """Fit ``config``, then sample ``num_samples`` graphs and write, under ``output``:

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

    if not Path(config).is_file():
        raise ConfigError(f"{config}: no such config file (run from the repository root or pass --config)")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    argv = ["fit", "--config", config, "--trainer.default_root_dir", str(out)]
    if max_epochs is not None:
        argv += ["--trainer.max_epochs", str(max_epochs)]
    cli = run_lightning(argv)
    ckpt = cli.trainer.checkpoint_callback.best_model_path or cli.trainer.checkpoint_callback.last_model_path
    fit_seconds = time.time() - start

    model = load_model(ckpt)
    graphs = model.generate(num_samples, steps=steps, seed=0, progress=True)
    samples = out / ("samples.smi" if model.info.kind == "molecule" else "samples.json")
    write_samples(samples, graphs, model.info)
    metrics = evaluate_generated(graphs, model.info, cli.datamodule.data, reference_split="test")
    metrics = {k: float(v) for k, v in metrics.items()}
    write_json(out / "metrics.json", {"checkpoint": ckpt, "num_samples": num_samples, "fit_seconds": fit_seconds,
                                      "total_seconds": time.time() - start, "metrics": metrics})
    draw_samples(graphs, model.info, out / "samples.png")
    draw_chain(model, out / "chain.png", seed=0, steps=steps)
    return metrics
