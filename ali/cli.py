"""`ali` command line. Bad input ends with one `error:` line and exit status 2."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from ali import pictures, rundir
from ali.anomaly import class_config, parse_classes, run_anomaly
from ali.config import TrainConfig, for_method, load_config_source, make_config, parse_overrides, to_dict
from ali.data import load_image_dataset
from ali.data.download import download_dataset
from ali.data.specs import DATASETS as DATASET_SPECS
from ali.errors import AliError
from ali.evaluation.classifier import DATASETS as CLASSIFIER_DATASETS
from ali.evaluation.classifier import RECIPES, default_classifier_path, save_classifier, train_classifier
from ali.evaluation.evaluate import DEFAULT_METRICS, METRIC_GROUPS, SAMPLES, evaluate_model, parse_metrics
from ali.evaluation.grids import save_image
from ali.finish import train_and_finish
from ali.generate import conditional_grid
from ali.keys import DATA_DIR_ENV, default_data_dir
from ali.methods import METHODS
from ali.presets import PRESETS
from ali.report.pages import write_report
from ali.rundir import METRICS_FILE, load_run_config, read_condition_names
from ali.study import run_study
from ali.training.build import build_model, condition_dim
from ali.training.hardware import resolve_device, resolve_precision
from ali.training.summary import describe, parameter_counts

# Help text for --data-dir where no run fixes the folder (a trained run reads from its own data_dir).
DEFAULT_DATA_HELP = f"default: ${DATA_DIR_ENV} if set, else ./data"


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help line, where it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False) or action.default is argparse.SUPPRESS or "%(default)" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def _nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


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


def cmd_evaluate(args: argparse.Namespace) -> int:
    """`ali evaluate --run DIR`: the paper's metrics of a trained image run, as one JSON object."""
    run = Path(args.run)
    config, model, step = pictures.load_image_run(run, f"its metrics are in {run / METRICS_FILE}", args.weights, args.step)
    data_dir = args.data_dir or config.data_dir
    dataset = rundir.load_run_dataset(config, data_dir)
    metrics = evaluate_model(
        model,
        dataset,
        data_dir,
        parse_metrics(args.metrics),
        condition_dim(config),
        args.classifier,
        args.inception_weights,
        progress=not args.no_progress,
        samples=args.samples,
        test_images=args.test_images,
    )
    out = Path(args.out) if args.out else run / "evaluation.json"
    with rundir.run_dir_writes(out.parent, out.name):
        weights = args.weights or ("average" if config.ema_decay > 0 else "live")
        rundir.atomic_write_json(out, {"run": str(run), "checkpoint_step": step, "weights": weights, **metrics})
    print(json.dumps(metrics, indent=2))
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ali",
        description="Adversarially Learned Inference (Dumoulin et al. 2017)",
        formatter_class=_Help,
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    def config_options(p: argparse.ArgumentParser, config_required: bool) -> None:
        p.add_argument("--config", required=config_required, help=f"preset ({', '.join(PRESETS)}) or JSON file")
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
        p.add_argument("--steps", type=_positive_int, help="training length in steps, per phase (overrides the config)")
        p.add_argument("--data-dir", help=f"folder holding the datasets (the config's data_dir; {DEFAULT_DATA_HELP})")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, formatter_class=_Help)

    methods_help = "; ".join(f"{name}: {m.title}" for name, m in METHODS.items())
    train = add("train", "train one run into --out")
    config_options(train, config_required=False)
    train.add_argument("--method", choices=METHODS, help=f"the preset's method unless given ({methods_help})")
    train.add_argument("--seed", type=_nonnegative_int, help="the config's seed unless given")
    train.add_argument("--out", required=True, help="run directory (must not hold a run unless --resume)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    train.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    train.add_argument(
        "--tensorboard", action="store_true", help="also write TensorBoard events (pip install 'ali[tensorboard]')"
    )
    train.set_defaults(func=cmd_train)

    anomaly = add("anomaly", "anomaly detection by a published protocol: one run, or one per class ('all')")
    config_options(anomaly, config_required=True)
    anomaly.add_argument("--method", choices=METHODS, help="the preset's method unless given")
    anomaly.add_argument("--seed", type=_nonnegative_int, help="the config's seed unless given")
    which = anomaly.add_mutually_exclusive_group(required=True)
    which.add_argument("--normal-class", metavar="K|all", help="one-class protocol: train on class K alone")
    which.add_argument("--anomaly-class", metavar="K|all", help="EGBAD's protocol: class K is the anomaly")
    anomaly.add_argument("--out", required=True, help="run directory (one class) or study directory (all)")
    anomaly.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    anomaly.set_defaults(func=cmd_anomaly)

    study = add("study", "several methods x seeds; writes study.json, study.md, a figure")
    config_options(study, config_required=True)
    study.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated methods ({methods_help})")
    study.add_argument("--seeds", type=_positive_int, default=10, help="number of seeds per method (0..N-1)")
    study.add_argument("--out", required=True, help="study directory (must not hold a study)")
    study.add_argument("--workers", type=_positive_int, default=1, help="runs trained at once (CPU cores are split)")
    study.add_argument(
        "--svm", action="store_true", help="image data: add each run's L2-SVM test error with 100 labels (minutes a run)"
    )
    study.set_defaults(func=cmd_study)

    pictures = {
        "sample": "a grid of --n samples Gx(z), z ~ N(0, I)",
        "reconstruct": "held-out images and reconstructions Gx(Gz(x)) in alternating columns",
        "interpolate": "--pairs rows of --steps decodings between the codes of two held-out images",
    }
    for name, help_text in pictures.items():
        p = add(name, help_text)
        p.add_argument("--run", required=True, help="run directory of an image run (newest valid checkpoint)")
        p.add_argument("--out", required=True, help="PNG file to write")
        p.add_argument("--seed", type=_nonnegative_int, default=0, help="noise and image choice")
        if name != "interpolate":
            p.add_argument("--n", type=_positive_int, default=64, help="number of samples / images")
        if name != "sample":
            p.add_argument("--data-dir", help="folder holding the datasets (default: the run's data_dir)")
        if name == "interpolate":
            p.add_argument("--pairs", type=_positive_int, default=10, help="pairs of held-out images (rows)")
            p.add_argument("--steps", type=_positive_int, default=11, help="points per pair, ends included (columns)")
        p.set_defaults(func=cmd_pictures)

    gen = add("generate", "a conditional run's samples: rows of fixed z, columns of conditions (the paper's conditional figure)")
    gen.add_argument("--run", required=True, help="run directory of a conditional run (method ali-conditional)")
    gen.add_argument(
        "--conditions", required=True, help='classes "0-9" or "0,3,7"; attributes "Male,Young;-Male,Young|Black_Hair;Smiling"'
    )
    gen.add_argument("--z-seed", type=_nonnegative_int, default=0, help="the fixed z of the grid")
    gen.add_argument("--rows", type=_positive_int, help="class grids: rows of different z (default 8)")
    gen.add_argument("--out", required=True, help="PNG file to write")
    gen.set_defaults(func=cmd_generate)

    evaluate = add(
        "evaluate", "the paper's metrics of a trained image run (classifier IS / FID, reconstruction accuracy, L2-SVM, ...)"
    )
    evaluate.add_argument("--run", required=True, help="run directory of an image run (newest valid checkpoint)")
    evaluate.add_argument(
        "--metrics", default=",".join(DEFAULT_METRICS), help=f"comma-separated groups of {', '.join(METRIC_GROUPS)}"
    )
    evaluate.add_argument("--out", help="JSON file to write (default RUN/evaluation.json)")
    evaluate.add_argument("--classifier", help="domain classifier file (default: the cache of `ali classifier train`)")
    evaluate.add_argument(
        "--inception-weights", help="Inception weights file for the 'inception' group (torch-fidelity's pt_inception)"
    )
    evaluate.add_argument("--data-dir", help="folder holding the datasets (default: the run's data_dir)")
    evaluate.add_argument("--samples", type=_positive_int, default=SAMPLES, help="generated images to score")
    evaluate.add_argument("--test-images", type=_positive_int, help="score on the first N held-out images (default: all)")
    evaluate.add_argument(
        "--weights",
        choices=rundir.WEIGHTS,
        help="generator weights to score: the run's weight average (ema_decay; the default where it keeps one) or the live weights",
    )
    evaluate.add_argument("--step", type=_nonnegative_int, help="score checkpoint STEP (default: the newest valid one)")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bars")
    evaluate.set_defaults(func=cmd_evaluate)

    classifier = add("classifier", "domain classifiers for the sample-quality metrics")
    classifier_sub = classifier.add_subparsers(dest="classifier_command", required=True)
    p = classifier_sub.add_parser(
        "train",
        help="train and cache the classifier of a dataset",
        description="train and cache the classifier of a dataset",
        formatter_class=_Help,
    )
    p.add_argument("--dataset", required=True, choices=CLASSIFIER_DATASETS)
    p.add_argument("--seed", type=_nonnegative_int, default=0, help="initialisation, order, augmentation and dropout")
    p.add_argument("--epochs", type=_positive_int, help="training epochs (default: the dataset's recipe)")
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        help="the dataset's recipe unless given (CIFAR-10: auto, bf16 where the CPU has it natively; MNIST family: fp32)",
    )
    p.add_argument("--threads", type=_nonnegative_int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", help="file to write (default: the cache evaluate looks in, $ALI_CACHE_DIR/classifiers)")
    p.add_argument("--data-dir", help=f"folder holding the datasets ({DEFAULT_DATA_HELP})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_classifier)

    report = add("report", "write report.html for a run or study directory (self-contained, opens from disk)")
    report.add_argument("dir", help="a run directory or a study directory")
    report.set_defaults(func=cmd_report)

    data = add("data", "image datasets: download and verify, or load and show shapes")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    for name, help_text in (
        ("download", "fetch the official files, verify checksums, extract safely"),
        ("info", "load a dataset and print its split shapes as JSON"),
    ):
        p = data_sub.add_parser(name, help=help_text, description=help_text, formatter_class=_Help)
        p.add_argument(
            "name",
            help=", ".join(n for n, s in DATASET_SPECS.items() if s.download) + ("" if name == "download" else ", folder:PATH"),
        )
        p.add_argument("--data-dir", help=f"folder holding each dataset's folder ({DEFAULT_DATA_HELP})")
        p.set_defaults(func=cmd_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
