"""``graphdiff fit|validate|test|predict``: a LightningCLI over graphdiff's models and data module.

With ``--ckpt_path``, the configuration stored in the checkpoint is the base and the command line (and any
``--config``) is applied on top, so every option given takes effect. Options that cannot take effect on that
checkpoint are refused with the reason: another model family, another network or noise process (the weights
would not fit), other data, or, when resuming ``fit``, optimiser settings the saved optimiser state depends on.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import yaml
from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning import Trainer
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.utilities.rank_zero import rank_zero_module

from graphdiff.checkpoints import (
    AtomicCheckpointIO,
    check_config_classes,
    checkpoint_model_class,
    model_class,
    read_checkpoint,
)
from graphdiff.configs import resolve_config
from graphdiff.datasets.datamodule import GraphDataModule
from graphdiff.errors import ConfigError, GraphdiffError
from graphdiff.lit import (
    GenerativeModel,
    GraphModel,
    ScoreSDEModel,  # noqa: F401  (registers the subclass for `--model ScoreSDEModel`)
)

#: ``--ckpt_path`` values Lightning resolves itself (no file to check).
SPECIAL_CKPT_PATHS = ("last", "best", "hpc", "registry")
#: What a checkpoint's dataset info must agree on with the data of a run that loads it.
_DATA_KEYS = ("kind", "node_types", "edge_types", "max_nodes", "node_marginals", "edge_marginals", "node_counts")


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
        if not isinstance(model, GenerativeModel):
            raise ConfigError(f"graphdiff predict generates graphs; a {type(model).__qualname__} does not (its test "
                              "error: graphdiff test)")
        from graphdiff.outputs import check_output_path, write_or_rescue
        from graphdiff.sample_files import SAMPLE_SUFFIXES, check_sample_suffix, write_samples
        from graphdiff.storage import GraphList

        if output is None:
            suffix = ".smi" if model.info.kind == "molecule" else ".json"
            output = str(Path(self.trainer.log_dir or ".") / f"predictions{suffix}")
        if self.trainer.world_size > 1:  # each rank writes its share
            path = Path(output)
            output = str(path.with_name(f"{path.stem}.rank{self.trainer.global_rank}{path.suffix}"))
        check_output_path(output, SAMPLE_SUFFIXES, inputs=(kwargs.get("ckpt_path"),))
        check_sample_suffix(output, model.info)
        batches = self.trainer.predict(model, datamodule=datamodule, **kwargs)
        graphs = GraphList.concat(batches or [])
        counts = write_or_rescue(lambda path: write_samples(path, graphs, model.info, model.molecule_decoding), output,
                                 f"the {len(graphs)} predictions")
        print(f"wrote {len(graphs)} generated graphs to {output} ({counts})")

    def _parse_ckpt_path(self) -> None:
        """Check the model options against the checkpoint (Lightning's version would overwrite them with the
        checkpoint's hyper-parameters, silently ignoring the command line)."""
        self._ckpt: dict[str, Any] | None = None
        sub = self.config.get("subcommand")
        ckpt_path = self.config[sub].get("ckpt_path") if sub else None
        if not ckpt_path or ckpt_path in SPECIAL_CKPT_PATHS:
            return
        ckpt = read_checkpoint(ckpt_path)
        stored = checkpoint_model_class(ckpt, ckpt_path)
        model = self.config[sub].get("model")
        chosen = model_class(str(model.class_path), "config") if model is not None else stored
        if chosen is not stored:
            raise ConfigError(f"{ckpt_path} holds a {stored.__qualname__} but the config trains a "
                              f"{chosen.__qualname__}; drop --ckpt_path to start a new run, or use that model class")
        given = _plain(model.init_args) if model is not None else {}
        saved = ckpt["hyper_parameters"]
        fixed = list(stored.structural_hparams) + (list(stored.optimizer_state_hparams) if sub == "fit" else [])
        changed = [key for key in fixed if key in saved and key in given
                   and _normal(given[key], stored) != _normal(saved[key], stored)]
        if changed:
            what = "; ".join(f"model.{k}: {_short(given[k])} here, {_short(saved[k])} in the checkpoint"
                             for k in changed)
            reason = ("the weights and the saved optimiser state depend on them" if sub == "fit"
                      else "the weights depend on them")
            raise ConfigError(f"{ckpt_path}: cannot change {what} ({reason}); drop these options, or train anew")
        self._ckpt = ckpt

    def instantiate_classes(self) -> None:
        """As Lightning, with invalid settings reported as one-line :class:`ConfigError` messages."""
        try:
            super().instantiate_classes()
        except GraphdiffError:
            raise
        except (MisconfigurationException, ValueError, TypeError) as err:
            cause = _graphdiff_cause(err)
            if cause is not None:
                raise cause from None
            if _raised_in_graphdiff(err):  # a bug, not a setting: keep the traceback
                raise
            hint = f"see `graphdiff {self.subcommand} --help`"
            raise ConfigError(f"invalid setting: {_first_line(err)}; {hint}") from None

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        """Every trainer writes checkpoints atomically and keeps a current ``last.ckpt`` (see docs/reliability.md)."""
        from lightning_fabric.plugins import CheckpointIO

        from graphdiff.callbacks import LastCheckpoint

        plugins = config.get("plugins")
        plugins = [] if plugins is None else list(plugins) if isinstance(plugins, list | tuple) else [plugins]
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            plugins.append(AtomicCheckpointIO())
        config["plugins"] = plugins
        given = config.get("callbacks") or []
        given = given if isinstance(given, list) else [given]
        if self.subcommand == "fit" and not any(isinstance(c, LastCheckpoint) for c in given + callbacks):
            callbacks = [*callbacks, LastCheckpoint()]
        return super()._instantiate_trainer(config, callbacks)

    def after_instantiate_classes(self) -> None:
        if self.subcommand is None:
            return
        if self._ckpt is not None:
            _check_same_data(self._ckpt, self.model, self.config[self.subcommand].get("ckpt_path"))
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
    """The configuration a graphdiff checkpoint was trained with (``None`` if it holds none), after checking that it
    names only graphdiff's and Lightning's classes."""
    config = read_checkpoint(ckpt_path).get("graphdiff", {}).get("config")
    if config is not None:
        check_config_classes(config, ckpt_path)
    return config


def _plain(value: Any) -> Any:
    """A jsonargparse Namespace (or anything inside one) as plain dicts and lists."""
    if hasattr(value, "as_dict"):
        return value.as_dict()
    return value


def _normal(value: Any, cls: type[GraphModel]) -> str:
    """A comparable text of a hyper-parameter value; network settings that leave the weights alone are ignored."""
    value = _plain(value)
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if k not in cls.runtime_network_keys}
    return json.dumps(value, sort_keys=True, default=str)


def _short(value: Any) -> str:
    text = json.dumps(_plain(value), sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_same_data(ckpt: dict[str, Any], model: GraphModel, ckpt_path: str) -> None:
    """Refuse data whose vocabulary or statistics differ from those the checkpoint was trained on (the process and
    the node-count distribution come from them)."""
    saved = ckpt["hyper_parameters"].get("dataset_info")
    if not isinstance(saved, dict):
        return
    here = model.info.to_dict()
    differ = [k for k in _DATA_KEYS if k in saved and json.dumps(saved[k]) != json.dumps(here.get(k))]
    if differ:
        raise ConfigError(
            f"{ckpt_path} was trained on {saved.get('name')!r} data; the data here ({here.get('name')!r}) differs in "
            f"{', '.join(differ)}; use the checkpoint's data, or score samples against other data with "
            "`graphdiff sample` and `graphdiff evaluate`"
        )


def _raised_in_graphdiff(err: BaseException) -> bool:
    """Whether the innermost frame of ``err`` (or of the error it wraps) is graphdiff's own code."""
    package = str(Path(__file__).resolve().parent)
    while err.__cause__ is not None:
        err = err.__cause__
    tb = err.__traceback__
    last = None
    while tb is not None:
        last, tb = tb, tb.tb_next
    return last is not None and str(Path(last.tb_frame.f_code.co_filename).resolve()).startswith(package)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _option(argv: list[str], name: str) -> str | None:
    for k, a in enumerate(argv):
        if a == name and k + 1 < len(argv):
            return argv[k + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def _resolve_configs(argv: list[str]) -> list[str]:
    """``argv`` with every ``--config`` value as a file: a path, or a shipped config's name (``qm9``, ``sde/qm9``)."""
    out = list(argv)
    for k, a in enumerate(out):
        if a == "--config" and k + 1 < len(out):
            out[k + 1] = str(resolve_config(out[k + 1]))
        elif a.startswith("--config="):
            out[k] = f"--config={resolve_config(a.split('=', 1)[1])}"
    return out


class _NoTips(logging.Filter):
    """Drops Lightning's advertisements ("💡 Tip: ... try installing litlogger / litmodels")."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("💡 Tip:")


def _drop_lightning_notices() -> None:
    """Keep out of the output what Lightning prints that is not about the run: its product tips (logged with
    ``rank_zero_info``) and the notice that ``tensorboardX`` is no longer a dependency (a warning); everything else
    Lightning prints stays."""
    log = rank_zero_module.log  # the logger rank_zero_info writes to
    if not any(isinstance(f, _NoTips) for f in log.filters):
        log.addFilter(_NoTips())
    warnings.filterwarnings("ignore", message="Starting from v1.9.0, `tensorboardX` has been removed")


def run_lightning(argv: list[str]) -> GraphDiffCLI:
    """Run LightningCLI on ``argv`` (its first item is the subcommand); returns the finished CLI object.

    A ``--config`` value that is not a file names a shipped config (:func:`graphdiff.configs.resolve_config`)."""
    argv = _resolve_configs(argv)
    ckpt = _option(argv, "--ckpt_path")
    tmp = None
    if ckpt and ckpt not in SPECIAL_CKPT_PATHS:
        # The checkpoint's own configuration goes first: a --config and the options given are applied on top.
        config = checkpoint_config(ckpt)
        if config is None and _option(argv, "--config") is None:
            raise ConfigError(f"{ckpt}: holds no graphdiff configuration; pass --config as well")
        if config is not None:
            fd, tmp = tempfile.mkstemp(suffix=".yaml", prefix="graphdiff-ckpt-config-")
            with os.fdopen(fd, "w") as f:
                yaml.safe_dump(config, f)
            argv = [argv[0], "--config", tmp, *argv[1:]]
    # `graphdiff fit ...` passes its own arguments as `args`; Lightning warns when sys.argv holds them too.
    # (sys.argv itself must stay: DDP re-launches the command from it.)
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    _drop_lightning_notices()
    try:
        return GraphDiffCLI(
            GraphModel,
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
    except MisconfigurationException as err:
        raise ConfigError(f"invalid setting: {_first_line(err)}") from None
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
