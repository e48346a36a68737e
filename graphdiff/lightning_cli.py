"""``graphdiff fit|validate|test|predict``: a LightningCLI over graphdiff's models and data module."""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import yaml
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

from graphdiff.datasets.datamodule import GraphDataModule
from graphdiff.errors import ConfigError, GraphdiffError
from graphdiff.lit import GenerativeModel
from graphdiff.lit_sde import ScoreSDEModel  # noqa: F401  (registers the subclass for `--model ScoreSDEModel`)


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
            blob["data"].update(self.datamodule.portable_source)
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
    # `graphdiff fit ...` passes its own arguments as `args`; Lightning warns when sys.argv holds them too.
    # (sys.argv itself must stay: DDP re-launches the command from it.)
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    try:
        return GraphDiffCLI(
            GenerativeModel,
            GraphDataModule,
            subclass_mode_model=True,
            save_config_kwargs={"overwrite": True},
            args=argv,
            parser_kwargs={"default_env": False, "exit_on_error": False},
        )
    except argparse.ArgumentError as err:
        raise ConfigError(summarize_parser_error(str(err), _option(argv, "--config"))) from None
    except ValueError as err:
        # jsonargparse wraps errors raised while instantiating the model; surface graphdiff's own message
        cause = _graphdiff_cause(err)
        if cause is None:
            raise
        raise cause from None
    finally:
        if tmp:
            os.unlink(tmp)


def _graphdiff_cause(err: BaseException) -> GraphdiffError | None:
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, GraphdiffError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


_NOISE = ("Does not validate against any of the Union subtypes", "Subtypes:", "Errors:", "Given value type:",
          "Given value:", "- Expected a <class 'NoneType'>")


def summarize_parser_error(message: str, config: str | None = None) -> str:
    """One line from jsonargparse's nested error report: the dotted key, the model class and the problem.

    E.g. ``model.lamda_edge (graphdiff.lit.DiscreteDiffusionModel): Option 'lamda_edge' is not accepted``.
    """
    keys, classes, problem = [], [], None
    for line in (part.strip() for part in message.splitlines()):
        if not line or line.startswith(_NOISE):
            continue
        key = re.fullmatch(r'Parser key "([^"]+)":', line)
        cls = re.fullmatch(r"- Problem with given class_path '([^']+)':", line)
        if key:
            keys.append(key.group(1))
        elif cls:
            classes.append(cls.group(1))
        elif problem is None:
            problem = line
    problem = problem or message.splitlines()[0]
    accepted = re.search(r"Option '([^']+)' is not accepted", problem)
    if accepted:
        keys.append(accepted.group(1))
    where = ".".join(keys)
    text = f"{where}: {problem}" if where else problem
    if classes:
        text = f"{where} ({classes[-1]}): {problem}"
    if config:
        text += f" (config {config})"
    return text + "; see `graphdiff <command> --help`"
