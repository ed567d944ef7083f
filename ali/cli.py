"""`ali` command line. Bad input ends with one `error:` line and exit status 2."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ali import pictures, rundir
from ali.anomaly import class_config, parse_classes, run_anomaly
from ali.cli_options import build_parser
from ali.config import TrainConfig, for_method, load_config_source, make_config, parse_overrides, to_dict
from ali.data import load_image_dataset
from ali.data.dataset import Dataset
from ali.data.download import download_dataset
from ali.errors import AliError
from ali.evaluation.classifier import RECIPES, default_classifier_path, save_classifier, train_classifier
from ali.evaluation.evaluate import evaluate_model, parse_metrics
from ali.evaluation.grids import save_image
from ali.finish import train_and_finish
from ali.generate import conditional_grid
from ali.keys import default_data_dir
from ali.methods import METHODS
from ali.presets import PRESETS
from ali.report.curves import checkpoint_curves, headline_metrics
from ali.report.pages import write_report
from ali.rundir import METRICS_FILE, load_run_config, read_condition_names
from ali.study import run_study
from ali.training.build import build_model, condition_dim
from ali.training.hardware import resolve_device, resolve_precision
from ali.training.summary import describe, parameter_counts


def _command_line_values(args: argparse.Namespace) -> dict:
    """--seed, --steps, --data-dir, --tensorboard and the --set pairs (last wins)."""
    values = {key: getattr(args, key) for key in ("seed", "steps", "data_dir") if getattr(args, key, None) is not None}
    if getattr(args, "tensorboard", False):
        values["tensorboard"] = True
    values.update(parse_overrides(args.set or []))
    return values


def _resolve_config(args: argparse.Namespace) -> dict:
    """The preset or file for the chosen method (config.for_method), then the command line. The
    data folder is made absolute, as a run saves it: evaluate and --resume may run from elsewhere."""
    source = load_config_source(args.config, PRESETS)
    method = args.method or source.get("method", TrainConfig.method)
    values = {**for_method(source, method), **_command_line_values(args)}
    data_dir = make_config(values).data_dir  # the preset's, the environment's or the command line's
    return {**values, "data_dir": str(Path(data_dir).expanduser().resolve())}


def _print_dry_run(config: TrainConfig) -> None:
    """--dry-run: the config, each network's layers, then ONE JSON line of parameter counts."""
    print(json.dumps(to_dict(config), indent=2))
    print(f"precision: {config.precision} -> {resolve_precision(config.precision, resolve_device(config.device))}")
    model, _ = build_model(config)
    print(describe(model))
    print(json.dumps(parameter_counts(model)))


def cmd_train(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.resume:
        config = load_run_config(out, _command_line_values(args))
    else:
        if args.config is None:
            raise AliError("ali train needs --config NAME_OR_FILE (or --resume to continue the run in --out)")
        config = make_config(_resolve_config(args))
    if args.dry_run:
        _print_dry_run(config)
        return 0
    metrics = train_and_finish(config, out, resume=args.resume, progress=not args.no_progress)
    if metrics:  # torchrun: ranks other than 0 return {} and stay quiet
        print(json.dumps(metrics, indent=2))
        print(f"run directory: {out}")
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise AliError(f"--methods: unknown method(s) {', '.join(unknown) or '(none given)'}; allowed: {', '.join(METHODS)}")
    source = load_config_source(args.config, PRESETS)
    summary = run_study(
        source,
        _command_line_values(args),
        methods,
        args.seeds,
        Path(args.out),
        progress=not args.no_progress,
        workers=args.workers,
        svm=args.svm,
    )
    print(summary)
    return 0


def cmd_anomaly(args: argparse.Namespace) -> int:
    """`ali anomaly --normal-class K|all` (one-class) or `--anomaly-class K|all` (EGBAD's)."""
    protocol, text = ("one-class", args.normal_class) if args.normal_class is not None else ("one-anomalous", args.anomaly_class)
    values = _resolve_config(args)
    fixed = sorted({"anomaly_protocol", "anomaly_class"} & set(parse_overrides(args.set or [])))
    if fixed:
        raise AliError(f"--set {', '.join(fixed)}: ali anomaly sets these from --normal-class / --anomaly-class; drop them")
    classes = parse_classes(text)
    if args.dry_run:  # every class's config is checked; the first one's is shown
        configs = [class_config(values, protocol, c) for c in classes]
        _print_dry_run(configs[0])
        print(f"{len(configs)} run(s), {protocol} protocol, class(es) {', '.join(map(str, classes))}")
        return 0
    print(json.dumps(run_anomaly(values, protocol, classes, Path(args.out), progress=not args.no_progress), indent=2))
    return 0


def cmd_pictures(args: argparse.Namespace) -> int:
    """`ali sample | reconstruct | interpolate`: one PNG grid from a trained image run."""
    config, model, step = pictures.load_image_run(Path(args.run))
    if condition_dim(config):
        raise AliError(
            f"{args.run} is a conditional run: draw its samples with `ali generate --run {args.run} --conditions SPEC`"
        )
    if args.command == "sample":
        image = pictures.sample_image(model, args.n, args.seed)
    else:
        if args.data_dir is not None:
            config = dataclasses.replace(config, data_dir=args.data_dir)
        dataset = rundir.load_run_dataset(config)
        if args.command == "reconstruct":
            image = pictures.reconstruct_image(model, dataset, args.n, args.seed)
        else:
            image = pictures.interpolate_image(model, dataset, args.pairs, args.steps, args.seed)
    save_image(image, Path(args.out))
    print(f"{args.out}: {image.width}x{image.height} from checkpoint step {step} of {args.run}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """`ali generate`: a conditional run's samples, rows of fixed z by columns of conditions."""
    run = Path(args.run)
    config, model, step = pictures.load_image_run(run)
    image = conditional_grid(model, config, read_condition_names(run), args.z_seed, args.conditions, args.rows)
    save_image(image, Path(args.out))
    print(f"{args.out}: {image.width}x{image.height} from checkpoint step {step} of {args.run}")
    return 0


def _score_checkpoint(
    args: argparse.Namespace, run: Path, metrics: tuple[str, ...], step: int | None, dataset: Dataset | None
) -> tuple[dict[str, Any], str, Dataset]:
    """The metric groups `metrics` of checkpoint `step` of the run (None: the newest valid one):
    the point (its step and metrics), the weights scored, and the dataset (loaded once, passed back)."""
    config, model, step = pictures.load_image_run(run, f"its metrics are in {run / METRICS_FILE}", args.weights, step)
    data_dir = args.data_dir or config.data_dir
    if dataset is None:
        dataset = rundir.load_run_dataset(config, data_dir)
    scores = evaluate_model(
        model,
        dataset,
        data_dir,
        metrics,
        condition_dim(config),
        args.classifier,
        args.inception_weights,
        progress=not args.no_progress,
        samples=args.samples,
        test_images=args.test_images,
        svm_labels=args.labels,
    )
    point = {"checkpoint_step": step, **scores}
    print(json.dumps(point, indent=2))
    return point, args.weights or rundir.default_weights(config), dataset


def cmd_evaluate(args: argparse.Namespace) -> int:
    """`ali evaluate --run DIR`: the paper's metrics of a trained image run, as one JSON object;
    with --every-checkpoint, of every kept checkpoint, with their curves against the step."""
    run = Path(args.run)
    metrics = parse_metrics(args.metrics)  # a bad group is refused before any checkpoint is read
    if not args.every_checkpoint:
        out = Path(args.out) if args.out else run / "evaluation.json"
        point, weights, _ = _score_checkpoint(args, run, metrics, args.step, None)
        with rundir.run_dir_writes(out.parent, out.name):
            rundir.atomic_write_json(out, {"run": str(run), "weights": weights, **point})
        print(f"written: {out}")
        return 0
    if args.step is not None:
        raise AliError("--step scores one checkpoint and --every-checkpoint all of them: drop one of the two")
    out = Path(args.out) if args.out else run / "evaluation-curve.json"
    if out.suffix.lower() == ".png":
        raise AliError("--out names the curve's JSON file; its figure is written beside it as .png: give a .json name")
    steps = rundir.checkpoint_steps(run)
    if not steps:
        raise AliError(f"run {run} keeps no checkpoints; train it, or give the run directory that holds them")
    points, dataset = [], None
    for step in steps:
        point, weights, dataset = _score_checkpoint(args, run, metrics, step, dataset)
        points.append(point)
        with rundir.run_dir_writes(out.parent, out.name):  # after each: a stopped curve keeps its points
            rundir.atomic_write_json(out, {"run": str(run), "weights": weights, "points": points})
    figure, keys = out.with_suffix(".png"), headline_metrics(points)
    with rundir.run_dir_writes(out.parent, figure.name):
        if keys:
            rundir.atomic_write_bytes(figure, checkpoint_curves(points, keys))
            print(f"written: {figure}")
        else:  # a figure left from another call would not match the new points
            figure.unlink(missing_ok=True)
            print(f"no figure: none of the metrics asked for is a headline figure ({figure} not written)")
    print(f"written: {out}")
    return 0


def cmd_classifier(args: argparse.Namespace) -> int:
    """`ali classifier train --dataset NAME`: the domain classifier the sample metrics use."""
    if args.threads:
        torch.set_num_threads(args.threads)
    precision = resolve_precision(args.precision or RECIPES[args.dataset].precision, torch.device("cpu"))
    began = time.perf_counter()
    model, test_accuracy = train_classifier(
        args.dataset,
        args.data_dir or default_data_dir(),
        seed=args.seed,
        epochs=args.epochs,
        progress=not args.no_progress,
        precision=precision,
    )
    info = {
        "dataset": args.dataset,
        "seed": args.seed,
        "test_accuracy": test_accuracy,
        "precision": precision,
        "threads": torch.get_num_threads(),
        "train_seconds": round(time.perf_counter() - began, 1),
    }
    path = Path(args.out) if args.out else default_classifier_path(args.dataset)
    save_classifier(model, path, info)
    print(json.dumps({**info, "test_accuracy": round(test_accuracy, 5), "path": str(path)}))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    print(write_report(Path(args.dir)))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    """`ali data download|info NAME`: fetch + verify a dataset, or load it and print its shapes."""
    data_dir = Path(args.data_dir or default_data_dir()).expanduser().resolve()
    if args.data_command == "download":
        download_dataset(args.name, data_dir)
        return 0
    dataset = load_image_dataset(args.name, data_dir)
    info = {
        "name": dataset.name,
        "train": list(dataset.train.shape),
        "heldout": list(dataset.heldout.shape),
        "labels": None if dataset.labels is None else list(dataset.labels.shape),
        "label_names": len(dataset.label_names),
    }
    print(json.dumps(info))
    return 0


COMMANDS = {
    "train": cmd_train,
    "anomaly": cmd_anomaly,
    "study": cmd_study,
    "pictures": cmd_pictures,
    "generate": cmd_generate,
    "evaluate": cmd_evaluate,
    "classifier": cmd_classifier,
    "report": cmd_report,
    "data": cmd_data,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(COMMANDS)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except AliError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the newest checkpoint is intact: continue with --resume", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001  a combination of options no check caught: still one line
        if args.debug:
            raise
        print(
            f"error: {type(exc).__name__}: {exc} (unexpected: rerun with --debug for the traceback and "
            "report it; files already written are intact)",
            file=sys.stderr,
        )
        return 2
