"""A domain classifier for MNIST and Fashion-MNIST, the measuring stick of classifier-based metrics.

Generated 28x28 digits have no standard Inception network, so ALICE and its successors score
them with a small MNIST classifier: its class probabilities give an "MNIST inception score" and
its penultimate features a "classifier FID" (ali.evaluation.sample_quality). The network follows
the one behind ALICE's MNIST scores (ChunyuanLI/MNIST_Inception_Score, the TensorFlow tutorial
net): conv 5x5x32 'same' + ReLU -> maxpool 2 -> conv 5x5x64 'same' + ReLU -> maxpool 2 ->
FC 1024 + ReLU -> dropout 0.5 -> FC 10, on pixels in [0, 1].

Training (`RECIPES`, measured settings per dataset) uses Adam with a cosine-decayed learning
rate and random shifts, plus small rotations for MNIST, so the classifier is not thrown by the
slight misalignments generated digits have. Fashion-MNIST gets shifts of one pixel and no
rotation: clothes are photographed upright, and rotating them cost accuracy for the same number
of epochs while the network was still underfitting. Every random draw (initialisation, order, augmentation, dropout)
comes from the seed, inside a forked RNG, so the same seed gives the same classifier on the same
machine and thread count, and training leaves the caller's global RNG untouched.

Classifiers are stored as safetensors with a JSON metadata header (never pickle: a downloaded
file cannot run code), by default under `$ALI_CACHE_DIR/classifiers/<dataset>.safetensors`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from ali.data import load_split
from ali.data.specs import DATASETS as DATASET_SPECS
from ali.errors import AliError
from ali.progress import progress_bar

# The datasets with a domain classifier of their own (DatasetSpec.classifier, ali.data.specs).
DATASETS: tuple[str, ...] = tuple(name for name, spec in DATASET_SPECS.items() if spec.has_own_classifier)
NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)
FEATURE_DIM = 1024
FORMAT = "ali-domain-classifier"
FORMAT_VERSION = "1"

BATCH_SIZE = 128
LEARNING_RATE = 2e-3
MAX_DEGREES = 10.0  # rotation range, each way
MAX_SHIFT = 2.0  # translation range in pixels, each way
PREDICT_BATCH = 500


@dataclass(frozen=True)
class Recipe:
    """How `train_classifier` trains for one dataset: the settings its measured accuracy came from."""

    epochs: int
    max_degrees: float
    max_shift: float
    batch_size: int = BATCH_SIZE
    lr: float = LEARNING_RATE


# Measured on one CPU thread (seed 0): MNIST 99.56% test accuracy in ~5 min, inception score of
# the real test images 9.82 (3 epochs: 99.45%, 9.75 — less confident, so a lower score than the
# ~9.88 published for the reference classifier); Fashion-MNIST 92.44% in ~10 min.
RECIPES: dict[str, Recipe] = {
    "mnist": Recipe(epochs=6, max_degrees=MAX_DEGREES, max_shift=MAX_SHIFT),
    "fashion-mnist": Recipe(epochs=10, max_degrees=0.0, max_shift=1.0, batch_size=64, lr=1e-3),
}


class DomainClassifier(nn.Module):
    """The MNIST-inception-score network; `features` is the 1024-d penultimate layer (post-ReLU)."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc1 = nn.Linear(64 * 7 * 7, FEATURE_DIM)
        self.dropout = nn.Dropout(0.5)
        self.fc2 = nn.Linear(FEATURE_DIM, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return F.relu(self.fc1(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(self.features(x)))


def random_affine(
    x: torch.Tensor, generator: torch.Generator, max_degrees: float = MAX_DEGREES, max_shift: float = MAX_SHIFT
) -> torch.Tensor:
    """x rotated by U(-max_degrees, max_degrees) and shifted by U(-max_shift, max_shift) pixels per
    axis, independently per image; the uncovered border is background (0)."""
    n, _, height, width = x.shape
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(max_degrees)
    # affine_grid works in [-1, 1] coordinates: one pixel is 2 / size of them.
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * max_shift
    tx, ty = shift[:, 0] * 2 / width, shift[:, 1] * 2 / height
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise AliError(f"no domain classifier for dataset {dataset!r}; classifiers exist for {', '.join(DATASETS)}")


def _as_float_images(x: torch.Tensor) -> torch.Tensor:
    """uint8 or float images (N, 1, 28, 28) as float32 in [0, 1]; AliError on anything else."""
    if x.dim() != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
        raise AliError(f"the domain classifier takes images of shape (N, 1, 28, 28); got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    if not x.is_floating_point():
        raise AliError(f"images must be uint8 or float in [0, 1]; got dtype {x.dtype}")
    x = x.float()
    if x.numel() and (not torch.isfinite(x).all() or x.min() < -1e-3 or x.max() > 1 + 1e-3):
        # Samples in [-1, 1] (tanh decoders) would be scored silently wrong; say so instead.
        raise AliError(
            f"float images must lie in [0, 1]; got values in [{x.min().item():.3g}, {x.max().item():.3g}] "
            "(rescale them, e.g. (x + 1) / 2 for tanh outputs)"
        )
    return x


def fit_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    seed: int = 0,
    epochs: int = 3,
    batch_size: int = BATCH_SIZE,
    lr: float = LEARNING_RATE,
    max_degrees: float = MAX_DEGREES,
    max_shift: float = MAX_SHIFT,
    progress: bool = True,
) -> DomainClassifier:
    """Train a DomainClassifier on uint8 (or [0, 1] float) images and int64 labels 0..9, with
    random rotations and shifts up to max_degrees and max_shift pixels (both 0: none)."""
    x = _as_float_images(images)
    y = labels.long()
    if len(x) != len(y) or len(x) == 0:
        raise AliError(f"{len(x)} images and {len(y)} labels; need the same, non-zero number")
    if epochs < 1:
        raise AliError(f"epochs must be at least 1; got {epochs}")
    augment = max_degrees > 0 or max_shift > 0
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # initialisation and dropout
        generator = torch.Generator().manual_seed(seed)  # order and augmentation
        model = DomainClassifier()
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        steps_per_epoch = math.ceil(len(x) / batch_size)
        # Cosine decay to zero: the few epochs end at a small step size without a tuned schedule.
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
        model.train()
        bar = progress_bar(epochs * steps_per_epoch, "classifier", enabled=progress, leave=False)
        for _ in range(epochs):
            for idx in torch.randperm(len(x), generator=generator).split(batch_size):
                batch = random_affine(x[idx], generator, max_degrees, max_shift) if augment else x[idx]
                loss = F.cross_entropy(model(batch), y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                bar.update()
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        bar.close()
    model.eval()
    return model


@torch.inference_mode()
def predict(
    model: DomainClassifier, x: torch.Tensor, batch: int = PREDICT_BATCH, progress: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities (N, 10) and penultimate features (N, 1024) of images (N, 1, 28, 28),
    uint8 or float in [0, 1], in evaluation mode (no dropout)."""
    x = _as_float_images(x)
    was_training = model.training
    model.eval()
    probs, feats = [], []
    chunks = x.split(batch)
    bar = progress_bar(len(chunks), "classify", enabled=progress, leave=False)
    try:
        for chunk in chunks:
            h = model.features(chunk)
            feats.append(h)
            probs.append(torch.softmax(model.fc2(h), dim=1))
            bar.update()
    finally:
        bar.close()
        model.train(was_training)
    if not probs:
        return torch.empty(0, NUM_CLASSES), torch.empty(0, FEATURE_DIM)
    return torch.cat(probs), torch.cat(feats)


def accuracy(model: DomainClassifier, images: torch.Tensor, labels: torch.Tensor, batch: int = PREDICT_BATCH) -> float:
    """Fraction of images whose most probable class is their label."""
    probs, _ = predict(model, images, batch)
    return (probs.argmax(1) == labels.long()).float().mean().item()


def train_classifier(
    dataset: str,
    data_dir: Path | str,
    seed: int = 0,
    epochs: int | None = None,
    progress: bool = True,
    n_train: int | None = None,
) -> tuple[DomainClassifier, float]:
    """Train with the dataset's recipe (RECIPES; `epochs` overrides its epochs) on the official
    training split (its first n_train images, if given) and return the classifier with its
    accuracy on the official test split."""
    _check_dataset(dataset)
    recipe = RECIPES[dataset]
    images, labels = load_split(dataset, data_dir, "train")
    if n_train is not None:
        images, labels = images[:n_train], labels[:n_train]
    model = fit_classifier(
        images,
        labels,
        seed=seed,
        epochs=recipe.epochs if epochs is None else epochs,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        max_degrees=recipe.max_degrees,
        max_shift=recipe.max_shift,
        progress=progress,
    )
    test_images, test_labels = load_split(dataset, data_dir, "test")
    return model, accuracy(model, test_images, test_labels)


def default_classifier_path(dataset: str) -> Path:
    """`$ALI_CACHE_DIR/classifiers/<dataset>.safetensors`, ALI_CACHE_DIR defaulting to ~/.cache/ali."""
    _check_dataset(dataset)
    cache = Path(os.environ.get("ALI_CACHE_DIR") or "~/.cache/ali").expanduser()
    return cache / "classifiers" / f"{dataset}.safetensors"


def find_classifier(dataset: str, path: Path | str | None = None) -> Path:
    """The classifier file to use: `path` if given, else the default cache path; AliError if absent."""
    _check_dataset(dataset)
    found = Path(path).expanduser() if path is not None else default_classifier_path(dataset)
    if not found.is_file():
        raise AliError(f"no classifier for {dataset} at {found}; make one with `ali classifier train --dataset {dataset}`")
    return found


def save_classifier(model: DomainClassifier, path: Path | str, info: dict[str, Any]) -> Path:
    """Write weights and a JSON `info` (dataset, accuracy, seed, ...) as one safetensors file.

    Written to a temporary name and renamed, so an interrupted save never leaves a half file
    where `find_classifier` looks.
    """
    path = Path(path).expanduser()
    try:
        info_json = json.dumps(info)
    except (TypeError, ValueError) as exc:
        raise AliError(f"classifier info must be JSON-serialisable: {exc}") from None
    metadata = {"format": FORMAT, "version": FORMAT_VERSION, "info": info_json}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)
    return path


def _read(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            names = f.keys()  # a safe_open handle is not iterable itself
            tensors = {k: f.get_tensor(k) for k in names}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        # A pickle, a truncated download or any other file: safetensors refuses the header.
        raise AliError(f"{path}: not a readable safetensors file ({exc}); retrain it with `ali classifier train`") from None
    return metadata, tensors


def load_classifier(path: Path | str, dataset: str | None = None) -> tuple[DomainClassifier, dict[str, Any]]:
    """The classifier stored at `path` (evaluation mode) and its info; AliError for a missing,
    foreign or corrupt file, or one trained on another dataset than `dataset` (when given)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise AliError(f"no classifier file at {path}")
    metadata, tensors = _read(path)
    if metadata.get("format") != FORMAT:
        raise AliError(f"{path}: not an ali domain classifier (metadata format {metadata.get('format')!r})")
    if metadata.get("version") != FORMAT_VERSION:
        raise AliError(
            f"{path}: classifier format version {metadata.get('version')!r}, this ali reads "
            f"{FORMAT_VERSION!r}; retrain it with `ali classifier train`"
        )
    try:
        info = json.loads(metadata.get("info", "{}"))
    except json.JSONDecodeError as exc:
        raise AliError(f"{path}: corrupt classifier info ({exc})") from None
    if not isinstance(info, dict):
        raise AliError(f"{path}: corrupt classifier info (not a JSON object)")
    if dataset is not None and info.get("dataset") != dataset:
        raise AliError(f"{path}: a classifier for {info.get('dataset')!r}, not {dataset!r}")
    model = DomainClassifier()
    expected = model.state_dict()
    wrong = sorted(set(expected) ^ set(tensors))
    wrong += [k for k in expected if k in tensors and tensors[k].shape != expected[k].shape]
    if wrong:
        raise AliError(f"{path}: weights do not fit the domain classifier (keys/shapes: {', '.join(wrong)})")
    if not all(torch.isfinite(t).all() for t in tensors.values()):
        raise AliError(f"{path}: weights contain NaN or infinity; retrain the classifier")
    model.load_state_dict({k: t.float() for k, t in tensors.items()})
    model.eval()
    return model, info
