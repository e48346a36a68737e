"""The ``graphdiff`` command.

* ``graphdiff fit|validate|test|predict``: Lightning's CLI (YAML ``--config`` files, ``--print_config``,
  every ``--trainer.*``, ``--model.*``, ``--data.*`` override). With ``--ckpt_path`` and no ``--config``,
  the configuration stored in the checkpoint is used, so a checkpoint is all ``test`` needs.
* ``graphdiff sample``: generate graphs from a checkpoint and write them to a file.
* ``graphdiff evaluate``: metrics of a samples file against a dataset split or a reference file.
* ``graphdiff quickstart``: train the small default model, sample, evaluate and draw.
* ``graphdiff search``: score sampler settings of a checkpoint on the validation split.
* ``graphdiff data list|info``: inspect datasets.

``-v`` / ``-q`` before the subcommand (or after an argparse one) set how much graphdiff prints
(:func:`graphdiff.log.configure`). Errors in the user's input (a :class:`~graphdiff.errors.GraphdiffError`) are
printed as one line, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from graphdiff.errors import ConfigError, GraphdiffError
from graphdiff.runtime import keep_freed_memory


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (exit status 2) instead of a usage block."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _parse_option(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _data_parser(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="list and inspect datasets")
    dsub = data.add_subparsers(dest="data_command", required=True)
    dsub.add_parser("list", help="list the registered datasets")
    info = dsub.add_parser("info", help="counts per split, node-count range, marginals, skipped rows")
    info.add_argument("name", help="registry name (see `graphdiff data list`) or a path to a graph/SMILES file")
    info.add_argument("--root", default=None, help="dataset root (default $GRAPHDIFF_ROOT or ./data)")
    info.add_argument("--json", action="store_true", help="print the full dataset info as JSON")
    info.add_argument(
        "--option", "-o", action="append", type=_parse_option, default=[], metavar="KEY=VALUE",
        help="dataset option, e.g. -o max_nodes=40 -o column=smiles (repeatable)",
    )


def _run_data(args: argparse.Namespace) -> int:
    from graphdiff.datasets.datamodule import open_dataset
    from graphdiff.datasets.registry import available_datasets

    if args.data_command == "list":
        for name, spec in available_datasets().items():
            print(f"{name:<16} {spec.kind:<9} {spec.description}")
        return 0
    data = open_dataset(args.name, root=args.root, **dict(args.option))
    if args.json:
        print(json.dumps({**data.info.to_dict(), "node_count_range": _node_range(data)}, indent=2))
    else:
        print(format_info(data))
    return 0


def _node_range(data) -> list[int]:
    n = data.graphs.num_nodes
    return [int(n.min()), int(n.max())]


def format_info(data) -> str:
    """A human-readable summary of a processed dataset."""
    info = data.info
    lo, hi = _node_range(data)
    lines = [
        f"dataset       {info.name} ({info.kind})",
        f"graphs        {len(data.graphs)}  " + "  ".join(f"{k}={v}" for k, v in info.split_sizes.items()),
        f"nodes         {lo}-{hi} per graph, mean {float(data.graphs.num_nodes.float().mean()):.2f}",
        "node types    " + "  ".join(f"{t}:{p:.4f}" for t, p in zip(info.node_types, info.node_marginals)),
        "edge types    " + "  ".join(f"{t}:{p:.4f}" for t, p in zip(info.edge_types, info.edge_marginals)),
    ]
    src = info.source
    if "file" in src:
        lines.append(f"source        {src['file']} (sha256 {str(src.get('sha256'))[:12]}…)")
    elif "generator" in src:
        lines.append(f"source        generator {src['generator']} {json.dumps(src.get('settings', {}))}")
    if info.options:
        lines.append("options       " + json.dumps(info.options))
    if info.skipped:
        for reason, what in info.skipped.items():
            count = what.get("count", what) if isinstance(what, dict) else what
            where = what.get("lines") if isinstance(what, dict) else None
            lines.append(f"skipped       {reason}: {count}" + (f" (first lines {where})" if where else ""))
    else:
        lines.append("skipped       none")
    return "\n".join(lines)


LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def _sample_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="generate graphs from a checkpoint")
    p.add_argument("--ckpt_path", required=True, help="a checkpoint written by `graphdiff fit`")
    p.add_argument("--num_samples", type=_positive_int, default=None, help="graphs to generate (default 64)")
    p.add_argument("--output", required=True,
                   help="output file: .smi/.txt/.sdf (molecules), .npz, .json, .graphml")
    p.add_argument("--steps", type=_positive_int, default=None, help="reverse steps (default: the model's T)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num_nodes", type=_positive_int, default=None,
                   help="node count of every graph (default: drawn from the training distribution)")
    p.add_argument("--batch_size", type=_positive_int, default=None, help="graphs per sampling batch")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--image", default=None, help="also write a PNG grid of the first samples")
    p.add_argument("--chain", default=None, help="also write a PNG strip of one denoising chain")
    p.add_argument("--condition", default=None, metavar="NAME=VALUE,...",
                   help="targets of a conditional model for every graph, e.g. qed=0.9,logp=2.5")
    p.add_argument("--conditions", default=None, metavar="FILE",
                   help="a CSV of targets, one row per graph, a column per property (empty: no target); "
                        "--num_samples defaults to its row count")
    p.add_argument("--guidance", default=None, metavar="SCALE",
                   help="classifier-free guidance scale (0 unconditional, 1 conditional, >1 guided), or one per "
                        "property, e.g. qed=2,logp=1")
    p.add_argument("--regressor", default=None, metavar="CKPT",
                   help="a property regressor trained on noisy graphs (DiGress's regressor guidance of an "
                        "unconditional model): --condition then gives the regressor's targets")
    p.add_argument("--regressor_scale", type=float, default=100.0, metavar="LAMBDA",
                   help="strength of the regressor guidance (DiGress: 100 for QM9 mu, 300 for HOMO; default 100)")


def _evaluate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="metrics of generated graphs or molecules against a reference")
    p.add_argument("--samples", required=True,
                   help="generated samples: .smi/.txt (SMILES, or graphs in DiGress's N=/X:/E: format), .npz, "
                        ".json or .graphml")
    p.add_argument("--reference", required=True,
                   help="DATASET[:split] (default split: test), or a file of reference graphs / SMILES")
    p.add_argument("--train", default=None, help="training graphs / SMILES file for novelty (with a file reference)")
    p.add_argument("--protocol", choices=("spectre", "gdss"), default=None,
                   help="MMD protocol for graphs (default: the dataset's; spectre for files)")
    p.add_argument("--kind", choices=("planar", "sbm", "tree"), default=None, help="validity test for graphs")
    p.add_argument("--metrics", default=None, help="comma-separated subset of metrics")
    p.add_argument("--folds", type=_positive_int, default=1,
                   help="report mean and std over this many folds of the samples")
    p.add_argument("--root", default=None, help="dataset root (default $GRAPHDIFF_ROOT or ./data)")
    p.add_argument("--output", default=None, help="write the metrics as JSON here")
    p.add_argument("--condition", default=None, metavar="NAME=VALUE,...",
                   help="the targets the samples were generated for: adds the error of each computable property")
    p.add_argument("--conditions", default=None, metavar="FILE", help="the same, one target row per sample (CSV)")
    p.add_argument("--oracle", default=None, metavar="CKPT",
                   help="a property regressor trained on clean molecules: scores the targets no toolkit computes "
                        "(e.g. QM9's mu, homo)")


def _run_evaluate(args: argparse.Namespace) -> int:
    from graphdiff.evaluation import evaluate_files
    from graphdiff.io import write_json
    from graphdiff.outputs import check_output_path, write_or_rescue

    if args.output:
        check_output_path(args.output, (".json",), inputs=(args.samples, args.reference, args.train))
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    targets = _targets(args)
    oracle = None
    if args.oracle is not None:
        from graphdiff.api import load_regressor

        if targets is None:
            raise ConfigError("--oracle scores targets: give --condition or --conditions as well")
        oracle = load_regressor(args.oracle)
    result = evaluate_files(args.samples, args.reference, train=args.train, protocol=args.protocol,
                            kind=args.kind, metrics=metrics, folds=args.folds, root=args.root, targets=targets,
                            oracle=oracle)
    print(format_metrics(result))
    if args.output:
        write_or_rescue(lambda path: write_json(path, result), args.output, "the metrics")
        print(f"wrote {args.output}")
    return 0


def _targets(args: argparse.Namespace) -> list[dict[str, float]] | None:
    """The targets of ``--condition`` (one row) or ``--conditions FILE`` (a row per graph), or ``None``."""
    from graphdiff.conditioning import parse_condition, read_condition_file

    if args.condition is not None and args.conditions is not None:
        raise ConfigError("give --condition (one target for every graph) or --conditions FILE, not both")
    if args.condition is not None:
        return [parse_condition(args.condition)]
    return read_condition_file(args.conditions) if args.conditions is not None else None


def format_metrics(result: dict) -> str:
    """A two-column table of metric values (``mean ± std`` for fold results; ``n/a (why)`` where a metric could not
    be computed, see :func:`graphdiff.evaluation.explain_undefined`)."""
    from graphdiff.evaluation import UNDEFINED_KEY

    reasons = result.get(UNDEFINED_KEY, {})
    rows = []
    for key, value in result.items():
        if key == UNDEFINED_KEY:
            continue
        if key in reasons:
            text = f"n/a ({reasons[key]})"
        elif isinstance(value, dict) and "mean" in value:
            text = f"{value['mean']:.6g} ± {value['std']:.2g}"
        elif isinstance(value, float):
            text = f"{value:.6g}"
        else:
            text = str(value)
        rows.append(f"{key:<20} {text}")
    return "\n".join(rows)


def _quickstart_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quickstart", help="train the small default model, sample, evaluate and draw (a few minutes)")
    p.add_argument("--config", default="quickstart",
                   help="a config file or a shipped config's name (default: the shipped quickstart)")
    p.add_argument("--output", default="outputs/quickstart", help="folder for the samples, metrics and pictures")
    p.add_argument("--num_samples", type=_positive_int, default=40)
    p.add_argument("--steps", type=_positive_int, default=None, help="reverse steps for sampling (default: T)")
    p.add_argument("--max_epochs", type=_positive_int, default=None,
                   help="override the config's trainer.max_epochs")


def _run_quickstart(args: argparse.Namespace) -> int:
    from graphdiff.quickstart import run_quickstart

    metrics = run_quickstart(args.config, args.output, args.num_samples, args.steps, args.max_epochs)
    print(format_metrics(metrics))
    print(f"wrote samples, metrics.json, samples.png and chain.png to {args.output}")
    return 0


def _search_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="score sampler settings of a checkpoint on the validation split (no retraining)")
    p.add_argument("--ckpt_path", required=True, help="a checkpoint written by `graphdiff fit`")
    p.add_argument("--param", "-p", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="a sampler setting and the values to try, e.g. -p steps=50,500 -p eta=0,10,50 -p omega=0,0.05 "
                        "(repeatable; the settings' names depend on the model family)")
    p.add_argument("--mode", choices=("grid", "componentwise"), default="componentwise",
                   help="every combination, or DeFoG's one-setting-at-a-time search (default)")
    p.add_argument("--num_samples", type=_positive_int, default=64, help="graphs sampled per setting")
    p.add_argument("--split", default="val", help="reference split (default val)")
    p.add_argument("--target", default=None,
                   help="metric that picks the best setting (default: validity for molecules, vun for planar/sbm/tree, "
                        "else degree)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch_size", type=_positive_int, default=None, help="graphs per sampling batch")
    p.add_argument("--device", default="cpu")
    p.add_argument("--root", default=None, help="dataset root (default: the one stored in the checkpoint)")
    p.add_argument("--output", default="sampler_search.csv", help="table of results: .csv or .json")
    p.add_argument("--plot", default=None, help="also write a PNG of the target metric against each setting")


def _run_search(args: argparse.Namespace) -> int:
    from graphdiff.api import load_model
    from graphdiff.checkpoints import read_checkpoint
    from graphdiff.datasets import open_dataset
    from graphdiff.outputs import check_output_path, write_or_rescue
    from graphdiff.sampler_search import default_target, parse_values, plot, search, write_table

    check_output_path(args.output, (".csv", ".json"), inputs=(args.ckpt_path,))
    if args.plot:
        check_output_path(args.plot, (".png",), inputs=(args.ckpt_path,), option="--plot")
    if not args.param:
        raise ConfigError("give at least one --param NAME=V1,V2,... to search")
    model = load_model(args.ckpt_path, device=args.device)
    base = model.sampler_config()
    params: dict[str, list] = {}
    for text in args.param:
        name, sep, values = text.partition("=")
        if not sep:
            raise ConfigError(f"--param {text!r}: expected NAME=V1,V2,...")
        params[name.strip()] = parse_values(base, name.strip(), values)
    data = (read_checkpoint(args.ckpt_path).get("graphdiff", {}).get("config") or {}).get("data") or {}
    source = data.get("path") or data.get("dataset") or model.info.name
    dataset = open_dataset(source, root=args.root or data.get("root"), **(data.get("options") or {}))
    target = args.target or default_target(model)
    rows = search(model, dataset, params, mode=args.mode, num_samples=args.num_samples, split=args.split,
                  target=target, seed=args.seed, batch_size=args.batch_size)
    write_or_rescue(lambda path: write_table(rows, path), args.output, "the search results")
    print(f"wrote {len(rows)} settings to {args.output}")
    if args.plot:
        plot(rows, params, target, base.steps_field, args.plot)
        print(f"wrote {args.plot}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="graphdiff", description="Graph generation with diffusion models.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in LIGHTNING_COMMANDS:
        sub.add_parser(name, help=f"Lightning {name} (see `graphdiff {name} --help`)", add_help=False)
    _sample_parser(sub)
    _evaluate_parser(sub)
    _quickstart_parser(sub)
    _search_parser(sub)
    _data_parser(sub)
    _verbosity_options(parser, default=0)
    return parser


def _verbosity_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """``-v`` / ``-q`` on ``parser`` and, so they may follow the subcommand, on its argparse subcommands (whose
    defaults are suppressed, not to overwrite the values given before the subcommand)."""
    parser.add_argument("-v", "--verbose", action="count", default=default,
                        help="graphdiff prints details (repeatable)")
    parser.add_argument("-q", "--quiet", action="count", default=default,
                        help="graphdiff prints errors only, and no progress bars of its own")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                if name not in LIGHTNING_COMMANDS:  # Lightning's commands parse their own arguments
                    _verbosity_options(child, default=argparse.SUPPRESS)


def _run_sample(args: argparse.Namespace) -> int:
    from graphdiff.api import load_model
    from graphdiff.conditioning import parse_guidance
    from graphdiff.outputs import check_output_path, same_file, write_or_rescue
    from graphdiff.pictures import IMAGE_SUFFIXES
    from graphdiff.sample_files import SAMPLE_SUFFIXES, check_sample_suffix, write_samples

    check_output_path(args.output, SAMPLE_SUFFIXES, inputs=(args.ckpt_path,))
    for option in ("image", "chain"):
        path = getattr(args, option)
        if path is not None:
            check_output_path(path, IMAGE_SUFFIXES, inputs=(args.ckpt_path,), option=f"--{option}")
            if same_file(path, args.output):
                raise ConfigError(f"--{option} {path}: is also the --output file; give another name")
    if args.image and args.chain and same_file(args.image, args.chain):
        raise ConfigError(f"--image and --chain are the same file {args.image}; give two names")
    targets = _targets(args)
    condition = targets[0] if targets is not None and args.condition is not None else targets
    if args.conditions is not None and args.num_samples is None:
        args.num_samples = len(targets)
    if args.num_samples is None:
        args.num_samples = 64
    guidance = parse_guidance(args.guidance) if args.guidance is not None else None
    model = load_model(args.ckpt_path, device=args.device)
    check_sample_suffix(args.output, model.info)
    model.sampling_plan(args.num_samples, args.steps, args.seed, args.num_nodes, args.batch_size)  # before any work
    steer = {}
    if args.regressor is not None:
        from graphdiff.api import load_regressor

        steer = {"regressor": load_regressor(args.regressor, device=args.device),
                 "regressor_scale": args.regressor_scale}
        model.regressor_guidance(steer["regressor"], condition, args.num_samples, args.regressor_scale)
    else:
        model.encode_targets(condition, args.num_samples)
    model.guided_network(guidance)
    graphs = model.generate(args.num_samples, steps=args.steps, seed=args.seed, num_nodes=args.num_nodes,
                            batch_size=args.batch_size, progress=sys.stderr.isatty(), condition=condition,
                            guidance=guidance, **steer)
    counts = write_or_rescue(lambda path: write_samples(path, graphs, model.info, model.molecule_decoding), args.output,
                             f"the {len(graphs)} samples")
    msg = f"wrote {counts['written']} graphs to {args.output}"
    if counts["invalid"]:
        msg += f" ({counts['invalid']} invalid molecules written as empty records)"
    print(msg)
    if args.image:
        from graphdiff.pictures import draw_samples

        draw_samples(graphs, model.info, args.image)
        print(f"wrote {args.image}")
    if args.chain:
        from graphdiff.pictures import draw_chain

        first = condition[0] if isinstance(condition, list) else condition  # the chain of the first graph's target
        draw_chain(model, args.chain, seed=args.seed, steps=args.steps, num_nodes=args.num_nodes, condition=first,
                   guidance=guidance, **steer)
        print(f"wrote {args.chain}")
    return 0


def _configure_logging(args: argparse.Namespace) -> None:
    from graphdiff.log import configure

    configure(args.verbose - args.quiet)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    keep_freed_memory()  # the command owns its process: reuse freed tensor memory (graphdiff.runtime)
    try:
        # The options before the subcommand are graphdiff's (-v, -q); a Lightning command gets the rest as it is.
        k = next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))
        if k < len(argv) and argv[k] in LIGHTNING_COMMANDS:
            from graphdiff.lightning_cli import run_lightning

            _configure_logging(build_parser().parse_args(argv[:k + 1]))
            run_lightning(argv[k:])
            return 0
        args = build_parser().parse_args(argv)
        _configure_logging(args)
        if args.command == "data":
            return _run_data(args)
        if args.command == "sample":
            return _run_sample(args)
        if args.command == "evaluate":
            return _run_evaluate(args)
        if args.command == "quickstart":
            return _run_quickstart(args)
        if args.command == "search":
            return _run_search(args)
    except GraphdiffError as exc:
        print(f"graphdiff: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("graphdiff: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
