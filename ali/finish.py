"""A trained run's finish, after `training.loop.train` returns: metrics.json, the evaluation
pictures (image grids, or the toy comparison figure) and report.html.

`ali train`, the study and the benchmarks call `train_and_finish` (or `finish_run` on what
`train` returned); the training loop itself neither evaluates nor draws.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ali import rundir
from ali.config import TrainConfig, to_dict
from ali.data.dataset import Dataset
from ali.errors import AliError
from ali.evaluation.anomaly import dataset_anomaly_metrics
from ali.evaluation.evaluate import end_of_training_metrics
from ali.evaluation.grids import save_image
from ali.evaluation.image_eval import evaluate_images
from ali.evaluation.toy_eval import data_extent, evaluate_toy
from ali.nets.model import Model
from ali.report import anomaly as anomaly_report
from ali.report.figures import comparison_rows
from ali.report.pages import write_report
from ali.rundir import ANOMALY_FIGURE_FILE, COMPARISON_FILE, METRICS_FILE, OPTIONS_FILE
from ali.training.build import condition_dim
from ali.training.loop import TrainedRun, train


def evaluate_run(run: TrainedRun, run_dir: Path) -> dict[str, Any]:
    """Final evaluation where the model is (its device): metrics.json, and the sample pictures
    (images) or comparison figure (toy). Image runs score reconstructions on every held-out image
    and samples by the fixed protocol of ali.evaluation.evaluate; `eval_samples` sets only the
    pixel checks and the pictures (eval_images)."""
    model, dataset, config = run.model, run.dataset, run.config
    with rundir.run_dir_writes(run_dir, "metrics.json and the evaluation pictures"):
        if dataset.is_image and dataset.heldout_anomalous is not None:
            metrics = {
                **evaluate_images(model, dataset, config.eval_samples, run_dir),
                **_anomaly(model, dataset, run_dir),
            }
        elif dataset.is_image:
            size = condition_dim(config, run.method)
            metrics = evaluate_images(model, dataset, config.eval_samples, run_dir, size)
            metrics = {**end_of_training_metrics(model, dataset, config.data_dir, run.method, size), **metrics}
        else:
            metrics, panels = evaluate_toy(model, dataset, config.eval_samples)
            image = comparison_rows([(run.method.title, panels)], len(dataset.mixture.means), data_extent(dataset))
            save_image(image, run_dir / COMPARISON_FILE)
        metrics = {**metrics, "train_seconds": round(run.train_seconds, 2), "steps": run.steps}
        rundir.atomic_write_json(run_dir / METRICS_FILE, metrics)
    return metrics


def _anomaly(model: Model, dataset: Dataset, run_dir: Path) -> dict[str, Any]:
    """An anomaly run's AUROC / AUPRC per score (ali.evaluation.anomaly) under its protocol and
    class, its scores of every test image (ANOMALY_SCORES_FILE, a plain .npz) and their figure."""
    metrics, scores = dataset_anomaly_metrics(model, dataset)
    flags = dataset.heldout_anomalous
    arrays = {name: values.cpu().numpy() for name, values in scores.items()}
    rundir.write_anomaly_scores(run_dir, arrays, flags.cpu().numpy(), dataset.heldout_labels.cpu().numpy())
    figure = anomaly_report.run_figure(arrays, flags.cpu().numpy(), f"{model.method}: {int(flags.sum())} anomalous test images")
    rundir.atomic_write_bytes(run_dir / ANOMALY_FIGURE_FILE, figure)
    return metrics


def finish_run(run: TrainedRun, run_dir: Path) -> dict[str, Any]:
    """Evaluate the trained run (evaluate_run) and write its report.html. Returns the metrics."""
    with torch.inference_mode():
        metrics = evaluate_run(run, run_dir)
    with rundir.run_dir_writes(run_dir, "report.html"):
        write_report(run_dir)
    return metrics


def train_and_finish(config: TrainConfig, run_dir: Path, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train (or continue) the run in run_dir, then evaluate it and write its report. Returns the
    metrics; {} on a data-parallel rank other than 0 (rank 0 evaluates)."""
    run = train(config, run_dir, resume=resume, progress=progress)
    return {} if run is None else finish_run(run, run_dir)


# What a reused or continued run may differ in: where and how it computes, not what it trains.
RUNTIME_KEYS = frozenset({"threads", "data_dir", "device", "tensorboard", "log_every", "compile"})


def train_or_reuse(config: TrainConfig, run_dir: Path, progress: bool = True) -> dict[str, Any]:
    """The metrics of the run in run_dir: read where it finished, after continuing it where it
    was cut off, after training it where there is none (the studies' one run each). A run_dir
    whose run has other settings than `config` is refused: a study never mixes experiments."""
    if not (run_dir / OPTIONS_FILE).is_file():
        return train_and_finish(config, run_dir, progress=progress)
    saved, _ = rundir.read_options(run_dir)
    wanted = json.loads(json.dumps(to_dict(config)))  # as the options file stores them
    differ = sorted(k for k, v in wanted.items() if k not in RUNTIME_KEYS and saved.get(k, v) != v)
    if differ:
        settings = ", ".join(f"{k}={saved[k]!r} (asked {wanted[k]!r})" for k in differ)
        raise AliError(f"{run_dir} holds a run with other settings: {settings}; give another --out, or the run's settings")
    if (run_dir / METRICS_FILE).is_file():
        return json.loads((run_dir / METRICS_FILE).read_text())
    return train_and_finish(config, run_dir, resume=True, progress=progress)
