"""`ali evaluate`: the paper's claims, measured on a trained image run.

Metric groups (`--metrics`, comma-separated):
- "samples": classifier IS (10 splits), classifier FID (penultimate features of the domain
  classifier against the test set: not comparable with Inception FID), the per-class histogram
  of the samples and its KL to uniform. Needs a domain classifier (ali.evaluation.classifier).
- "recon": pixel MSE of reconstructions Gx(Gz(x)) of the test set, and the classifier's accuracy
  on them against the true labels (the protocol of MINE's table: ALI 45.95%, ALICE 98.17%), and
  per class the mean ||mu||^2 / d of the encoder's means (`code_norm_by_class`; the prior's codes
  average 1): a class whose codes sit far out in the prior's tails is one prior samples rarely
  decode to.
- "svm": the authors' semi-supervised L2-SVM protocol (ali.evaluation.semisupervised) with 10
  and 100 labels per class (svm_error_100, svm_error_1000: test error as a fraction).
- "kplus1": test error of a K+1 semi-supervised run's D classifier on (x, Gz(x)), named by its
  number of labels (kplus1_error_100 for 10 per class).
- "stacked": Stacked MNIST mode count and KL over 26,000 samples, each channel classified.
- "inception": standard Inception IS / FID through torch-fidelity and weights on disk.

DEFAULT_METRICS run at the end of training when their classifier exists; the rest on demand.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ali.data import load_split
from ali.data.dataset import Dataset
from ali.errors import AliError
from ali.evaluation import classifier as clf
from ali.evaluation.image_eval import EVAL_SEED, decode, encode, heldout_and_sample_conditions
from ali.evaluation.sample_quality import (
    class_histogram,
    frechet_distance,
    inception_metrics,
    inception_score,
    kl_to_uniform,
    stacked_mnist_modes,
)
from ali.evaluation.semisupervised import encoder_features, mnist_svm_splits, svm_protocol
from ali.methods.ali_kplus1 import class_predictions
from ali.nets.model import Model

METRIC_GROUPS = ("samples", "recon", "svm", "kplus1", "stacked", "inception")
DEFAULT_METRICS = ("samples", "recon")
SAMPLES = 10_000
STACKED_SAMPLES = 26_000
SVM_LABELS_PER_CLASS = (10, 100)


def parse_metrics(text: str) -> tuple[str, ...]:
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in names if m not in METRIC_GROUPS]
    if unknown or not names:
        raise AliError(f"--metrics: unknown metric group(s) {', '.join(unknown) or '(none)'}; known: {', '.join(METRIC_GROUPS)}")
    return names


def classifier_dataset(dataset: str) -> str:
    """The domain classifier a dataset's samples are scored with."""
    if dataset in clf.DATASETS:
        return dataset
    if dataset == "stacked-mnist":
        return "mnist"
    raise AliError(f"classifier metrics exist for {', '.join(clf.DATASETS)} and stacked-mnist; this run trained on {dataset!r}")


def evaluate_model(
    model: Model,
    dataset: Dataset,
    data_dir: Path | str,
    metrics: Sequence[str] = DEFAULT_METRICS,
    condition_dim: int = 0,
    classifier_path: Path | str | None = None,
    inception_weights: Path | str | None = None,
    progress: bool = True,
    samples: int = SAMPLES,
    test_images: int | None = None,
) -> dict[str, Any]:
    """The requested metric groups as one flat dict (accuracies and errors as fractions in [0, 1]),
    from `samples` generated images and the first `test_images` held-out images (all of them by
    default)."""
    model.eval()
    out: dict[str, Any] = {}
    needs_classifier = {"samples", "recon", "stacked"} & set(metrics)
    net = (
        clf.load_classifier(clf.find_classifier(classifier_dataset(dataset.name), classifier_path))[0]
        if needs_classifier
        else None
    )
    x_test = dataset.to_float(dataset.heldout[:test_images])
    y_test = None if dataset.heldout_labels is None else dataset.heldout_labels[:test_images]
    c_test, c_samples = heldout_and_sample_conditions(dataset, condition_dim, len(x_test), samples)
    real = clf.predict(net, x_test, progress=progress) if {"samples", "recon"} & set(metrics) else None
    with torch.random.fork_rng():
        torch.manual_seed(EVAL_SEED)
        if "samples" in metrics:
            generated = decode(model, model.sample_prior(samples), c_samples)
            probs, feats = clf.predict(net, generated, progress=progress)
            hist = class_histogram(probs, clf.NUM_CLASSES)
            is_mean, is_std = inception_score(probs.numpy())
            out.update(
                classifier_is=is_mean,
                classifier_is_std=is_std,
                classifier_is_real_test=inception_score(real[0].numpy())[0],
                classifier_fid=frechet_distance(feats.numpy(), real[1].numpy()),
                class_fractions=[round(float(h), 4) for h in hist / hist.sum()],
                class_kl_to_uniform=kl_to_uniform(hist),
            )
            if c_samples is not None and y_test is not None and y_test.dim() == 1:
                out["condition_accuracy"] = float((probs.argmax(1) == c_samples.argmax(1)).float().mean())
        if "recon" in metrics:
            recon = decode(model, encode(model, x_test, conditions=c_test), c_test)
            out["recon_mse"] = float((recon - x_test).pow(2).mean())
            if y_test is not None and y_test.dim() == 1:
                out["recon_class_accuracy"] = float(
                    (clf.predict(net, recon, progress=progress)[0].argmax(1) == y_test).float().mean()
                )
                out["test_class_accuracy"] = float((real[0].argmax(1) == y_test).float().mean())
                out["code_norm_by_class"] = code_norm_by_class(encode(model, x_test, mean=True, conditions=c_test), y_test)
        if "stacked" in metrics:
            generated = decode(model, model.sample_prior(STACKED_SAMPLES))
            channels = [clf.predict(net, generated[:, c : c + 1], progress=progress)[0].numpy() for c in range(3)]
            stacked = stacked_mnist_modes(channels)
            out.update(stacked_modes=stacked["modes_covered"], stacked_kl=stacked["kl_to_uniform"])
        if "inception" in metrics:
            generated = decode(model, model.sample_prior(samples), c_samples)
            as_uint8 = lambda t: (t.clamp(0, 1) * 255).round().to(torch.uint8)  # noqa: E731
            out.update(inception_metrics(as_uint8(generated), dataset.heldout[:test_images], inception_weights))
    if "kplus1" in metrics:
        if model.method != "ali-kplus1":
            raise AliError(f"the kplus1 metric is the classifier of an ali-kplus1 run; this run's method is {model.method!r}")
        labels = model.config.labels_per_class * model.config.num_classes if model.config is not None else 0
        out[f"kplus1_error_{labels}"] = float((class_predictions(model, x_test) != y_test).float().mean())
    if "svm" in metrics:
        out.update(svm_metrics(model, dataset.name, data_dir))
    return round_metrics(out)


def code_norm_by_class(codes: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """Per class (0..max label), the mean over its examples of ||z||^2 / d: 1 for prior samples."""
    norms = codes.flatten(1).float().pow(2).mean(1)
    return [round(float(norms[labels == c].mean()), 4) for c in range(int(labels.max()) + 1)]


def check_svm_dataset(dataset_name: str) -> None:
    """AliError unless the L2-SVM protocol can run on this dataset's splits here."""
    if dataset_name not in clf.DATASETS:
        raise AliError(
            f"the L2-SVM protocol is set up for {', '.join(clf.DATASETS)} here (SVHN needs its files); this run trained on {dataset_name!r}"
        )


def svm_metrics(
    model: Model, dataset_name: str, data_dir: Path | str, labels_per_class: Sequence[int] = SVM_LABELS_PER_CLASS
) -> dict[str, Any]:
    """L2-SVM test error (a fraction) with each number of labels per class, on encoder features."""
    check_svm_dataset(dataset_name)
    train_x, train_y = load_split(dataset_name, data_dir, "train")
    test_x, test_y = load_split(dataset_name, data_dir, "test")
    feats = encoder_features(model["encoder"], train_x), encoder_features(model["encoder"], test_x)
    splits = mnist_svm_splits(feats[0], train_y, feats[1], test_y)
    out: dict[str, Any] = {}
    for per_class in labels_per_class:
        result = svm_protocol(**splits, per_class=per_class)
        labels = result["n_labels"]
        out[f"svm_error_{labels}"] = result["test_error_mean"]
        out[f"svm_error_{labels}_std"] = result["test_error_std"]
        out[f"svm_best_C_{labels}"] = result["best_C"]
    return out


def round_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in metrics.items()}


def end_of_training_metrics(model: Model, dataset: Dataset, data_dir: Path | str, condition_dim: int = 0) -> dict[str, Any]:
    """DEFAULT_METRICS for a dataset with a domain classifier (without the classifier, a note that
    says how to make one: training never fails for want of it), and a K+1 run's test error."""
    out: dict[str, Any] = {}
    if model.method == "ali-kplus1":
        out.update(evaluate_model(model, dataset, data_dir, ("kplus1",), progress=False))
    if dataset.name in clf.DATASETS:
        try:
            out.update(evaluate_model(model, dataset, data_dir, DEFAULT_METRICS, condition_dim, progress=False))
        except AliError as exc:
            out["classifier_metrics"] = f"not computed: {exc}"
    return out
