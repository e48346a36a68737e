"""``graphdiff fit|validate|test|predict``: a LightningCLI over graphdiff's models and data module."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

from graphdiff.datasets.datamodule import GraphDataModule
from graphdiff.errors import ConfigError
from graphdiff.lit import GenerativeModel


class GraphDiffCLI(LightningCLI):
    """Links the data module's dataset info into the model and records the config in checkpoints."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.dataset_info", "model.init_args.dataset_info", apply_on="instantiate")

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> LightningArgumentParser:
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand == "predict":
            parser.add_argument("--output", type=str | None, default=None,
                                help="file for the generated graphs (.smi/.sdf/.npz/.json/.graphml); default: "
                                     "predictions.smi (molecules) or predictions.json in the trainer's log dir")
            self._subcommand_method_arguments[subcommand].append("output")
        return parser

    def predict(self, model: GenerativeModel, datamodule: GraphDataModule, output: str | None = None,
                **kwargs: Any) -> None:
        """Generate one graph per test graph (same node count) and write them to ``output``."""
        from graphdiff.datasets.storage import GraphList
        from graphdiff.sample_files import write_samples

        batches = self.trainer.predict(model, datamodule=datamodule, **kwargs)
        graphs = GraphList.concat(batches or [])
        if output is None:
            suffix = ".smi" if model.info.kind == "molecule" else ".json"
            output = str(Path(self.trainer.log_dir or ".") / f"predictions{suffix}")
        if self.trainer.world_size > 1:  # each rank writes its share
            path = Path(output)
            output = str(path.with_name(f"{path.stem}.rank{self.trainer.global_rank}{path.suffix}"))
        counts = write_samples(output, graphs, model.info)
        print(f"wrote {len(graphs)} generated graphs to {output} ({counts})")

    def after_instantiate_classes(self) -> None:
        if self.subcommand is None:
            return
        config = self.parser.dump(self.config, skip_link_targets=True, format="yaml")
        blob = yaml.safe_load(config)
        blob = blob.get(self.subcommand, blob)
        blob.pop("ckpt_path", None)
        blob.pop("config", None)
        blob.pop("output", None)
        if isinstance(blob.get("data"), dict):
            # so `graphdiff test --ckpt_path` finds the processed data from any directory
            blob["data"]["root"] = str(self.datamodule.root_path)
        self.model.cli_config = blob


def checkpoint_config(ckpt_path: str) -> dict[str, Any] | None:
    """The configuration a graphdiff checkpoint was trained with, or ``None`` if it holds none."""
    from graphdiff.api import read_checkpoint

    return read_checkpoint(ckpt_path).get("graphdiff", {}).get("config")


def _option(argv: list[str], name: str) -> str | None:
    for k, a in enumerate(argv):
        if a == name and k + 1 < len(argv):
            return argv[k + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def run_lightning(argv: list[str]) -> GraphDiffCLI:
    """Run LightningCLI on ``argv`` (its first item is the subcommand); returns the finished CLI object."""
    ckpt = _option(argv, "--ckpt_path")
    tmp = None
    if ckpt and _option(argv, "--config") is None and "--print_config" not in argv:
        if not Path(ckpt).is_file():
            raise ConfigError(f"--ckpt_path {ckpt}: no such file")
        config = checkpoint_config(ckpt)
        if config is None:
            raise ConfigError(f"{ckpt}: holds no graphdiff configuration; pass --config as well")
        fd, tmp = tempfile.mkstemp(suffix=".yaml", prefix="graphdiff-ckpt-config-")
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(config, f)
        argv = [argv[0], "--config", tmp, *argv[1:]]
    try:
        return GraphDiffCLI(
            GenerativeModel,
            GraphDataModule,
            subclass_mode_model=True,
            save_config_kwargs={"overwrite": True},
            args=argv,
            parser_kwargs={"default_env": False},
        )
    finally:
        if tmp:
            os.unlink(tmp)
