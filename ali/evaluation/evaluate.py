"""`ali evaluate`: the paper's claims, measured on a trained image run.

Metric groups (`--metrics`, comma-separated):
- "samples": classifier IS, classifier FID (penultimate features of the domain classifier
  against the test set: not comparable with Inception FID), the per-class histogram of the
  samples and its KL to uniform, and the samples' mean classifier entropy (`class_entropy`, nats;
  with the KL it splits the IS, approximately, into imbalance and ambiguity). Needs a domain
  classifier (ali.evaluation.classifier). The protocol of the published MNIST IS figures:
  SAMPLES = 10,000 samples in IS_SPLITS = 10 splits of 1,000, from the model as it is (at the
  end of training; never a best-of-checkpoints pick). `samples_scored`, `is_splits` and
  `fid_real_images` record it, so a figure from another count (`ali evaluate --samples N`) says so.
- "recon": pixel MSE of reconstructions Gx(Gz(x)) of the test set, and the classifier's accuracy
  on them against the true labels (the protocol of MINE's table: ALI 45.95%, ALICE 98.17%), and
  per class the mean ||mu||^2 / d of the encoder's means (`code_norm_by_class`; the prior's codes
  average 1): a class whose codes sit far out in the prior's tails is one prior samples rarely
  decode to.
- A conditional model samples with every class in turn and reconstructs with each image's own
  condition, so those figures are named `conditional_*` (image_eval.metric_name): they are not
  comparable with an unconditional model's. What tests its inference is a condition y' other
  than the image's own (image_eval.swapped_conditions): swapped_y_recon_as_y and
  swapped_y_recon_as_true_class are the fractions of Gx(Gz(x, y'), y') classified as y' and as
  x's own class, swapped_y_recon_mse its pixel error beside conditional_recon_mse.
- "artifacts": the decoder's artifacts and spread (ali.evaluation.artifacts) on 1,000 samples
  from a fixed z beside the first 1,000 test images, and those images' reconstruction error
  through mu(x): no classifier needed, to follow over a run's checkpoints (`--step`).
- "svm": the authors' semi-supervised L2-SVM protocol (ali.evaluation.semisupervised) with each
  dataset's label counts (DatasetSpec.svm_labels_per_class; MNIST 10 and 100 per class:
  svm_error_100, svm_error_1000, errors as fractions on the official test split; labelled pool
  and validation from the official train split: MNIST and Fashion-MNIST train[0:50000] /
  [50000:60000], SVHN train[0:63257] / [63257:73257], CIFAR-10 [0:45000] / [45000:50000]).
- "probes": SVM, logistic-regression and 1-nearest-neighbour probes on the same features,
  standardised, over 10 labelled draws (ali.evaluation.probes).
- "kplus1": error of a K+1 semi-supervised run's D classifier on (x, mu(x)) over the held-out
  split, which is the official test split (MNIST 10,000, SVHN 26,032, CIFAR-10 test_batch; see
  ali.data), named by its number of labels (kplus1_error_100 for 10 per class).
- "anomaly": AUROC / AUPRC of every anomaly score (ali.evaluation.anomaly) on the held-out
  split of a run trained by `ali anomaly`, so any checkpoint of it can be scored (`--step`).
- "stacked": Stacked MNIST mode count and KL over 26,000 samples, each channel classified.
- "inception": standard Inception IS / FID through torch-fidelity and weights on disk.

DEFAULT_METRICS run at the end of training when their classifier exists; the rest on demand.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ali.data import load_split
from ali.data.dataset import Dataset
from ali.data.specs import DATASETS as DATASET_SPECS
from ali.errors import AliError
from ali.evaluation import classifier as clf
from ali.evaluation.anomaly import dataset_anomaly_metrics, require_anomaly_split
from ali.evaluation.image_eval import (
    ARTIFACT_IMAGES,
    artifact_check,
    decode,
    evaluation_rng,
    heldout_and_sample_conditions,
    metric_name,
    model_device,
    reconstruction_metrics,
    reconstruction_stats,
    swapped_conditions,
)
from ali.evaluation.probes import probe_errors
from ali.evaluation.sample_quality import (
    class_histogram,
    frechet_distance,
    inception_metrics,
    inception_score,
    kl_to_uniform,
    mean_class_entropy,
    stacked_mnist_modes,
)
from ali.evaluation.semisupervised import DEFAULT_CS, encoder_features, feature_blocks, svm_protocol, svm_splits
from ali.methods import METHODS, get_method
from ali.methods.base import Method
from ali.nets.model import Model

# A method's own metric group (Method.metrics_group, e.g. K+1's "kplus1") -> that method.
METHOD_METRICS: dict[str, Method] = {m.metrics_group: m for m in METHODS.values() if m.metrics is not None}
METRIC_GROUPS = ("samples", "recon", "artifacts", "svm", "probes", *METHOD_METRICS, "anomaly", "stacked", "inception")
DEFAULT_METRICS = ("samples", "recon")
SAMPLES = 10_000  # generated images the sample metrics score ...
IS_SPLITS = 10  # ... in splits of 1,000: the published MNIST inception scores' protocol
STACKED_SAMPLES = 26_000


def parse_metrics(text: str) -> tuple[str, ...]:
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in names if m not in METRIC_GROUPS]
    if unknown or not names:
        raise AliError(f"--metrics: unknown metric group(s) {', '.join(unknown) or '(none)'}; known: {', '.join(METRIC_GROUPS)}")
    return names


def classifier_dataset(dataset: str) -> str:
    """The domain classifier a dataset's samples are scored with (DatasetSpec.classifier)."""
    spec = DATASET_SPECS.get(dataset)
    if spec is not None and spec.classifier is not None:
        return spec.classifier
    borrowed = [n for n, s in DATASET_SPECS.items() if s.classifier is not None and not s.has_own_classifier]
    raise AliError(
        f"classifier metrics exist for {', '.join(clf.DATASETS)} and {', '.join(borrowed)}; this run trained on {dataset!r}"
    )


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
    svm_labels: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The requested metric groups as one flat dict (accuracies and errors as fractions in [0, 1]),
    from `samples` generated images and the first `test_images` held-out images (all of them by
    default); `svm_labels`: the numbers of labelled examples of the svm and probes groups (default:
    the dataset's)."""
    if svm_labels is not None and not {"svm", "probes"} & set(metrics):
        raise AliError("labelled-set sizes apply to the svm and probes metric groups: add one to --metrics or drop --labels")
    if "anomaly" in metrics:
        require_anomaly_split(dataset)  # before anything is computed
    model.eval()
    device = model_device(model)
    out: dict[str, Any] = {}
    needs_classifier = {"samples", "recon", "stacked"} & set(metrics)
    net = (
        clf.load_classifier(clf.find_classifier(classifier_dataset(dataset.name), classifier_path))[0].to(device)
        if needs_classifier
        else None
    )
    x_test = dataset.to_float(dataset.heldout[:test_images])
    y_test = None if dataset.heldout_labels is None else dataset.heldout_labels[:test_images]
    classes = y_test if y_test is not None and y_test.dim() == 1 else None
    c_test, c_samples = heldout_and_sample_conditions(dataset, condition_dim, len(x_test), samples)
    real = _classify(net, x_test, device, progress) if {"samples", "recon"} & set(metrics) else None
    if "samples" in metrics:
        out.update(_sample_metrics(model, net, samples, c_samples, real, classes is not None, progress))
    if "recon" in metrics:
        swapped = swapped_conditions(dataset, condition_dim, len(x_test))
        out.update(_recon_metrics(model, net, dataset.heldout[: len(x_test)], classes, c_test, swapped, real))
    if "artifacts" in metrics:
        out.update(artifact_check(model, dataset, condition_dim, min(ARTIFACT_IMAGES, len(x_test)))[0])
    if "anomaly" in metrics:
        out.update(dataset_anomaly_metrics(model, dataset, test_images)[0])
    if "stacked" in metrics:
        with evaluation_rng(model):
            generated = decode(model, model.sample_prior(STACKED_SAMPLES, device="cpu"))
        out.update(stacked_metrics([_classify(net, generated[:, c : c + 1], device, progress)[0].numpy() for c in range(3)]))
    if "inception" in metrics:
        with evaluation_rng(model):
            generated = decode(model, model.sample_prior(samples, device="cpu"), c_samples)
        as_uint8 = lambda t: (t.clamp(0, 1) * 255).round().to(torch.uint8)  # noqa: E731
        out.update(inception_metrics(as_uint8(generated), dataset.heldout[:test_images], inception_weights))
    for group, owner in METHOD_METRICS.items():
        if group in metrics:
            if model.method != owner.name:
                raise AliError(f"the {group} metric is measured on {owner.name} runs; this run's method is {model.method!r}")
            out.update(owner.metrics(model, dataset, test_images))
    if "svm" in metrics or "probes" in metrics:
        per_class = None if svm_labels is None else per_class_counts(svm_labels, dataset.name)
        seed = model.config.seed if model.config is not None else 0
        out.update(
            svm_metrics(model, dataset.name, data_dir, per_class, svm="svm" in metrics, probes="probes" in metrics, seed=seed)
        )
    return round_metrics(out)


def per_class_counts(labels: Sequence[int], dataset_name: str, classes: int = 10) -> tuple[int, ...]:
    """Labelled-set sizes (every dataset with an L2-SVM split has 10 classes) as examples per class."""
    bad = [n for n in labels if n < classes or n % classes]
    if bad or not labels:
        raise AliError(
            f"{dataset_name}: labelled-set sizes must be positive multiples of its {classes} classes "
            f"(a class-balanced draw); got {', '.join(map(str, bad)) or '(none)'}"
        )
    return tuple(n // classes for n in labels)


def _classify(
    net: torch.nn.Module, images: torch.Tensor, device: torch.device, progress: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The domain classifier's probabilities and features of CPU images (28 x 28: they fit on
    any device at once), computed on `device` where the classifier is, returned on the CPU."""
    probs, feats = clf.predict(net, images.to(device), progress=progress)
    return probs.cpu(), feats.cpu()


def _sample_metrics(
    model: Model,
    net: torch.nn.Module,
    n: int,
    conditions: torch.Tensor | None,
    real: tuple[torch.Tensor, torch.Tensor],
    classes: bool,
    progress: bool,
) -> dict[str, Any]:
    """Classifier IS / FID / class histogram of n samples (module docstring: the protocol), and
    a class-conditional model's condition accuracy."""
    with evaluation_rng(model):
        generated = decode(model, model.sample_prior(n, device="cpu"), conditions)
    probs, feats = _classify(net, generated, model_device(model), progress)
    hist = class_histogram(probs, clf.NUM_CLASSES)
    is_mean, is_std = inception_score(probs.numpy(), IS_SPLITS)
    name = lambda key: metric_name(key, conditions is not None)  # noqa: E731
    out = {
        name("classifier_is"): is_mean,
        name("classifier_is_std"): is_std,
        "classifier_is_real_test": inception_score(real[0].numpy(), IS_SPLITS)[0],
        name("classifier_fid"): frechet_distance(feats.numpy(), real[1].numpy()),
        name("class_fractions"): [round(float(h), 4) for h in hist / hist.sum()],
        name("class_kl_to_uniform"): kl_to_uniform(hist),
        name("class_entropy"): mean_class_entropy(probs),
        "class_entropy_real_test": mean_class_entropy(real[0]),
        "samples_scored": n,
        "is_splits": IS_SPLITS,
        "fid_real_images": len(real[1]),
    }
    if conditions is not None and classes:
        out["condition_accuracy"] = float((probs.argmax(1) == conditions.argmax(1)).float().mean())
    return out


def _recon_metrics(
    model: Model,
    net: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    conditions: torch.Tensor | None,
    swapped: torch.Tensor | None,
    real: tuple[torch.Tensor, torch.Tensor],
) -> dict[str, Any]:
    """Reconstruction error of the held-out images (image_eval.reconstruction_metrics) and, with
    class labels, the classifier's verdict on the reconstructions (module docstring)."""
    classify = None if labels is None else (lambda recon: clf.predict(net, recon)[0].argmax(1))
    stats = reconstruction_stats(model, images, conditions, swapped, classify)
    out: dict[str, Any] = {**reconstruction_metrics(stats, conditions is not None), "heldout_images": len(images)}
    if labels is None:
        return out
    fraction = lambda hits: float(hits.float().mean())  # noqa: E731
    out[metric_name("recon_class_accuracy", conditions is not None)] = fraction(stats["recon_class"].long() == labels)
    out["test_class_accuracy"] = fraction(real[0].argmax(1) == labels)
    out["code_norm_by_class"] = code_norm_by_class(stats["code_norm"], labels)
    if swapped is not None:
        out["swapped_y_recon_as_y"] = fraction(stats["swapped_class"].long() == swapped.argmax(1))
        out["swapped_y_recon_as_true_class"] = fraction(stats["swapped_class"].long() == labels)
    return out


def stacked_metrics(channel_probs: list) -> dict[str, float]:
    """Stacked MNIST's figures under the names metrics.json carries, from the classifier's
    probabilities for each of the three channels."""
    stacked = stacked_mnist_modes(channel_probs)
    return {
        "stacked_modes": stacked["modes_covered"],
        "stacked_kl": stacked["kl_to_uniform"],
        "stacked_kl_channels": stacked["kl_channels"],
        "stacked_kl_dependence": stacked["kl_dependence"],
    }


def code_norm_by_class(norms: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """Per class (0..max label), the mean over its examples of their ||mu||^2 / d (`norms`, one
    per example; reconstruction_stats' code_norm): 1 for prior samples."""
    return [round(float(norms[labels == c].double().mean()), 4) for c in range(int(labels.max()) + 1)]


def check_svm_dataset(dataset_name: str) -> None:
    """AliError unless the L2-SVM protocol has splits for this dataset (DatasetSpec.svm_split)."""
    spec = DATASET_SPECS.get(dataset_name)
    if spec is None or spec.svm_split is None:
        known = ", ".join(n for n, s in DATASET_SPECS.items() if s.svm_split is not None)
        raise AliError(f"the L2-SVM protocol is set up for {known} here; this run trained on {dataset_name!r}")


def svm_metrics(
    model: Model,
    dataset_name: str,
    data_dir: Path | str,
    labels_per_class: Sequence[int] | None = None,
    svm: bool = True,
    probes: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """L2-SVM error (a fraction) on the official test split with each number of labels per class
    (default: the dataset's DatasetSpec.svm_labels_per_class, with its svm_draws and svm_cs), on
    encoder features; labelled pool and validation set are the dataset's ranges of the official train
    split (DatasetSpec.svm_split). `probes` adds ali.evaluation.probes' three probes on the same features
    and splits (10 labelled draws each), on all of them and on each encoder layer's part alone
    (feature_blocks); `svm=False` leaves out the authors' protocol. `seed` is the run's: the
    labelled draws follow it, so the runs of a study each have their own."""
    check_svm_dataset(dataset_name)
    spec = DATASET_SPECS[dataset_name]
    labels_per_class = spec.svm_labels_per_class if labels_per_class is None else labels_per_class
    train_x, train_y = load_split(dataset_name, data_dir, "train")
    test_x, test_y = load_split(dataset_name, data_dir, "test")
    pool_end = spec.svm_split[0]
    rarest = int(torch.bincount(torch.as_tensor(train_y[:pool_end]).long().flatten()).min())
    if max(labels_per_class) > rarest:  # before minutes of feature extraction
        raise AliError(
            f"{dataset_name}: {max(labels_per_class)} labelled examples per class asked, but the labelled pool "
            f"(train[0:{pool_end}]) holds {rarest} of its rarest class"
        )
    feats = encoder_features(model["encoder"], train_x), encoder_features(model["encoder"], test_x)
    blocks = feature_blocks(model["encoder"], test_x) if probes else None
    splits = svm_splits(feats[0], train_y, feats[1], test_y, spec.svm_split, dataset_name)
    out: dict[str, Any] = {}
    n_val, n_test = spec.svm_draws
    grid = np.array(spec.svm_cs) if spec.svm_cs else DEFAULT_CS
    for per_class in labels_per_class:
        if probes:
            out.update(probe_errors(splits, per_class, blocks=blocks, seed=seed))
        if not svm:
            continue
        result = svm_protocol(
            **splits,
            per_class=per_class,
            n_val_svms=n_val,
            n_test_svms=n_test,
            Cs=grid,
            seed=seed,
        )
        labels = result["n_labels"]
        out[f"svm_error_{labels}"] = result["test_error_mean"]
        out[f"svm_error_{labels}_std"] = result["test_error_std"]
        out[f"svm_best_C_{labels}"] = result["best_C"]
    return out


def round_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in metrics.items()}


def end_of_training_metrics(
    model: Model, dataset: Dataset, data_dir: Path | str, method: Method | None = None, condition_dim: int = 0
) -> dict[str, Any]:
    """The method's own metric group (Method.metrics: a K+1 run's test error), then DEFAULT_METRICS
    for a dataset with a domain classifier (without the classifier, a note that says how to make
    one: training never fails for want of it)."""
    method = get_method(model.method) if method is None else method
    out: dict[str, Any] = {}
    if method.metrics is not None:
        out.update(evaluate_model(model, dataset, data_dir, (method.metrics_group,), progress=False))
    if dataset.name in clf.DATASETS:
        try:
            out.update(evaluate_model(model, dataset, data_dir, DEFAULT_METRICS, condition_dim, progress=False))
        except AliError as exc:
            out["classifier_metrics"] = f"not computed: {exc}"
    return out
