"""The `ali` command line's options: every subcommand, its typed and range-checked arguments.

ali.cli holds what each command does; this module only declares what it accepts.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping

from ali import rundir
from ali.data.specs import DATASETS as DATASET_SPECS
from ali.evaluation.classifier import DATASETS as CLASSIFIER_DATASETS
from ali.evaluation.evaluate import DEFAULT_METRICS, METRIC_GROUPS, SAMPLES
from ali.keys import DATA_DIR_ENV
from ali.methods import METHODS
from ali.presets import PRESETS

# Help text for --data-dir where no run fixes the folder (a trained run reads from its own data_dir).
DEFAULT_DATA_HELP = f"default: ${DATA_DIR_ENV} if set, else ./data"


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help line, where it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False) or action.default is argparse.SUPPRESS or "%(default)" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def label_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers such as 1000,4000; got {text!r}") from None
    return counts


def build_parser(commands: Mapping[str, Callable[[argparse.Namespace], int]]) -> argparse.ArgumentParser:
    """The `ali` parser; `commands` maps each handler's name (train, study, pictures, ...) to its function."""
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
        p.add_argument("--steps", type=positive_int, help="training length in steps, per phase (overrides the config)")
        p.add_argument("--data-dir", help=f"folder holding the datasets (the config's data_dir; {DEFAULT_DATA_HELP})")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, formatter_class=_Help)

    methods_help = "; ".join(f"{name}: {m.title}" for name, m in METHODS.items())
    train = add("train", "train one run into --out")
    config_options(train, config_required=False)
    train.add_argument("--method", choices=METHODS, help=f"the preset's method unless given ({methods_help})")
    train.add_argument("--seed", type=nonnegative_int, help="the config's seed unless given")
    train.add_argument("--out", required=True, help="run directory (must not hold a run unless --resume)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    train.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    train.add_argument(
        "--tensorboard", action="store_true", help="also write TensorBoard events (pip install 'ali[tensorboard]')"
    )
    train.set_defaults(func=commands["train"])

    anomaly = add("anomaly", "anomaly detection by a published protocol: one run, or one per class ('all')")
    config_options(anomaly, config_required=True)
    anomaly.add_argument("--method", choices=METHODS, help="the preset's method unless given")
    anomaly.add_argument("--seed", type=nonnegative_int, help="the config's seed unless given")
    which = anomaly.add_mutually_exclusive_group(required=True)
    which.add_argument("--normal-class", metavar="K|all", help="one-class protocol: train on class K alone")
    which.add_argument("--anomaly-class", metavar="K|all", help="EGBAD's protocol: class K is the anomaly")
    anomaly.add_argument("--out", required=True, help="run directory (one class) or study directory (all)")
    anomaly.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    anomaly.set_defaults(func=commands["anomaly"])

    study = add("study", "several methods x seeds; writes study.json, study.md, a figure")
    config_options(study, config_required=True)
    study.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated methods ({methods_help})")
    study.add_argument("--seeds", type=positive_int, default=10, help="number of seeds per method (0..N-1)")
    study.add_argument("--out", required=True, help="study directory (must not hold a study)")
    study.add_argument("--workers", type=positive_int, default=1, help="runs trained at once (CPU cores are split)")
    study.add_argument(
        "--svm", action="store_true", help="image data: add each run's L2-SVM test error with 100 labels (minutes a run)"
    )
    study.set_defaults(func=commands["study"])

    pictures = {
        "sample": "a grid of --n samples Gx(z), z ~ N(0, I)",
        "reconstruct": "held-out images and reconstructions Gx(Gz(x)) in alternating columns",
        "interpolate": "--pairs rows of --steps decodings between the codes of two held-out images",
    }
    for name, help_text in pictures.items():
        p = add(name, help_text)
        p.add_argument("--run", required=True, help="run directory of an image run (newest valid checkpoint)")
        p.add_argument("--out", required=True, help="PNG file to write")
        p.add_argument("--seed", type=nonnegative_int, default=0, help="noise and image choice")
        if name != "interpolate":
            p.add_argument("--n", type=positive_int, default=64, help="number of samples / images")
        if name != "sample":
            p.add_argument("--data-dir", help="folder holding the datasets (default: the run's data_dir)")
        if name == "interpolate":
            p.add_argument("--pairs", type=positive_int, default=10, help="pairs of held-out images (rows)")
            p.add_argument("--steps", type=positive_int, default=11, help="points per pair, ends included (columns)")
        p.set_defaults(func=commands["pictures"])

    gen = add("generate", "a conditional run's samples: rows of fixed z, columns of conditions (the paper's conditional figure)")
    gen.add_argument("--run", required=True, help="run directory of a conditional run (method ali-conditional)")
    gen.add_argument(
        "--conditions", required=True, help='classes "0-9" or "0,3,7"; attributes "Male,Young;-Male,Young|Black_Hair;Smiling"'
    )
    gen.add_argument("--z-seed", type=nonnegative_int, default=0, help="the fixed z of the grid")
    gen.add_argument("--rows", type=positive_int, help="class grids: rows of different z (default 8)")
    gen.add_argument("--out", required=True, help="PNG file to write")
    gen.set_defaults(func=commands["generate"])

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
    evaluate.add_argument("--samples", type=positive_int, default=SAMPLES, help="generated images to score")
    evaluate.add_argument(
        "--labels",
        type=label_counts,
        help="labelled-set sizes of the svm and probes groups, e.g. 1000,4000 (default: the dataset's, CIFAR-10 1000,2000,4000,8000)",
    )
    evaluate.add_argument("--test-images", type=positive_int, help="score on the first N held-out images (default: all)")
    evaluate.add_argument(
        "--weights",
        choices=rundir.WEIGHTS,
        help="generator weights to score: the run's weight average (ema_decay; the default where it keeps one) or the live weights",
    )
    evaluate.add_argument("--step", type=nonnegative_int, help="score checkpoint STEP (default: the newest valid one)")
    evaluate.add_argument(
        "--every-checkpoint",
        action="store_true",
        help="score every kept checkpoint: RUN/evaluation-curve.json (or --out) and the curves beside it (.png)",
    )
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bars")
    evaluate.set_defaults(func=commands["evaluate"])

    classifier = add("classifier", "domain classifiers for the sample-quality metrics")
    classifier_sub = classifier.add_subparsers(dest="classifier_command", required=True)
    p = classifier_sub.add_parser(
        "train",
        help="train and cache the classifier of a dataset",
        description="train and cache the classifier of a dataset",
        formatter_class=_Help,
    )
    p.add_argument("--dataset", required=True, choices=CLASSIFIER_DATASETS)
    p.add_argument("--seed", type=nonnegative_int, default=0, help="initialisation, order, augmentation and dropout")
    p.add_argument("--epochs", type=positive_int, help="training epochs (default: the dataset's recipe)")
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        help="the dataset's recipe unless given (CIFAR-10: auto, bf16 where the CPU has it natively; MNIST family: fp32)",
    )
    p.add_argument("--threads", type=nonnegative_int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", help="file to write (default: the cache evaluate looks in, $ALI_CACHE_DIR/classifiers)")
    p.add_argument("--data-dir", help=f"folder holding the datasets ({DEFAULT_DATA_HELP})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=commands["classifier"])

    report = add("report", "write report.html for a run or study directory (self-contained, opens from disk)")
    report.add_argument("dir", help="a run directory or a study directory")
    report.set_defaults(func=commands["report"])

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
        p.set_defaults(func=commands["data"])
    return parser
