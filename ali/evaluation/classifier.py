"""Domain classifiers: the measuring stick of the classifier-based sample metrics.

Generated 28x28 digits and 32x32 CIFAR-10 images have no Inception network trained on their
domain, so, as ALICE and its successors do for MNIST, each dataset gets a small classifier of
its own: its class probabilities give a "classifier inception score" and its penultimate
features a "classifier FID" (ali.evaluation.sample_quality). The networks are
ali.evaluation.classifier_nets'; `RECIPES` holds the measured training settings per dataset.

MNIST and Fashion-MNIST train with Adam, a cosine-decayed learning rate and random shifts (plus
small rotations for MNIST, so the classifier is not thrown by the slight misalignments generated
digits have; Fashion-MNIST gets shifts of one pixel and no rotation: clothes are photographed
upright, and rotating them cost accuracy for the same number of epochs). CIFAR-10 trains as the
fast CIFAR-10 trainers do: SGD with Nesterov momentum, a linear warm-up and decay of the learning
rate, weight decay, random flips and crops, under bf16 autocast where the CPU has native bf16
(each recipe names its precision; the MNIST family's figures were measured in fp32). Every random draw (initialisation,
order, augmentation, dropout) comes from the seed, inside a forked RNG, so the same seed gives
the same classifier on the same machine, thread count and precision, and training leaves the
caller's global RNG untouched.

Classifiers are stored as safetensors with a JSON metadata header (never pickle: a downloaded
file cannot run code), by default under `$ALI_CACHE_DIR/classifiers/<dataset>.safetensors`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from contextlib import nullcontext
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
from ali.evaluation.classifier_nets import NUM_CLASSES, CifarClassifier, DigitClassifier, flip_and_crop, random_affine
from ali.progress import progress_bar

# The datasets with a domain classifier of their own (DatasetSpec.classifier, ali.data.specs).
DATASETS: tuple[str, ...] = tuple(name for name, spec in DATASET_SPECS.items() if spec.has_own_classifier)
# Each dataset's network (ali.evaluation.classifier_nets).
NETWORKS: dict[str, type[nn.Module]] = {"mnist": DigitClassifier, "fashion-mnist": DigitClassifier, "cifar10": CifarClassifier}
FORMAT = "ali-domain-classifier"
FORMAT_VERSION = "1"
PREDICT_BATCH = 500


@dataclass(frozen=True)
class Recipe:
    """How `fit_classifier` trains for one dataset: the settings its measured accuracy came from.

    augment "affine": random rotations up to max_degrees and shifts up to max_shift pixels;
    "flip-crop": horizontal flips and crops of the image reflect-padded by max_shift pixels.
    optimizer "adam" decays the learning rate on a cosine; "sgd" (Nesterov momentum 0.9)
    rises linearly over the first `warmup` of training and falls linearly to zero."""

    epochs: int
    augment: str = "affine"
    max_degrees: float = 10.0
    max_shift: float = 2.0
    batch_size: int = 128
    lr: float = 2e-3
    optimizer: str = "adam"
    warmup: float = 0.0
    weight_decay: float = 0.0  # on weights of convolutions and linear layers, not on biases or norms
    label_smoothing: float = 0.0
    precision: str = "fp32"  # "auto": bf16 autocast where the hardware has native bf16


# Measured on one CPU thread (seed 0): MNIST 99.56% test accuracy in ~5 min, inception score of
# the real test images 9.82 (3 epochs: 99.45%, 9.75 — less confident, so a lower score than the
# ~9.88 published for the reference classifier); Fashion-MNIST 92.44% in ~10 min. CIFAR-10:
# docs/RESULTS.md (its classifier section) gives accuracy and time.
RECIPES: dict[str, Recipe] = {
    "mnist": Recipe(epochs=6),
    "fashion-mnist": Recipe(epochs=10, max_degrees=0.0, max_shift=1.0, batch_size=64, lr=1e-3),
    # No label smoothing: it caps every probability near 1 - smoothing, and the inception score
    # lives on the classifier's confidence (real test images scored 3.49 with smoothing 0.2).
    "cifar10": Recipe(
        epochs=12,
        augment="flip-crop",
        max_degrees=0.0,
        max_shift=2,
        batch_size=256,
        lr=0.2,
        optimizer="sgd",
        warmup=0.2,
        weight_decay=5e-4,
        precision="auto",
    ),
}


def _check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise AliError(f"no domain classifier for dataset {dataset!r}; classifiers exist for {', '.join(DATASETS)}")


def _as_float_images(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """uint8 or float images (N, *shape) as float32 in [0, 1]; AliError on anything else."""
    if x.dim() != 4 or tuple(x.shape[1:]) != tuple(shape):
        raise AliError(f"the domain classifier takes images of shape (N, {', '.join(map(str, shape))}); got {tuple(x.shape)}")
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


def _augment(x: torch.Tensor, recipe: Recipe, generator: torch.Generator) -> torch.Tensor:
    if recipe.augment == "flip-crop":
        return flip_and_crop(x, generator, int(recipe.max_shift))
    if recipe.max_degrees > 0 or recipe.max_shift > 0:
        return random_affine(x, generator, recipe.max_degrees, recipe.max_shift)
    return x


def _optimizer(model: nn.Module, recipe: Recipe, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
    """The recipe's optimizer and its per-step learning-rate schedule."""
    if recipe.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
        # Cosine decay to zero: the few epochs end at a small step size without a tuned schedule.
        return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    weights = [p for p in model.parameters() if p.dim() > 1]
    others = [p for p in model.parameters() if p.dim() <= 1]
    groups = [{"params": weights, "weight_decay": recipe.weight_decay}, {"params": others, "weight_decay": 0.0}]
    optimizer = torch.optim.SGD(groups, lr=recipe.lr, momentum=0.9, nesterov=True)
    rise = max(1, round(recipe.warmup * total_steps))

    def factor(step: int) -> float:  # of the step about to be taken: 1/rise .. 1, then down to 0
        if step < rise:
            return (step + 1) / rise
        return max(0.0, (total_steps - step) / max(1, total_steps - rise))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def fit_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    seed: int = 0,
    recipe: Recipe | None = None,
    network: type[nn.Module] = DigitClassifier,
    progress: bool = True,
    precision: str = "fp32",
    **changes: Any,
) -> nn.Module:
    """Train `network` on uint8 (or [0, 1] float) images and int64 labels 0..9 with `recipe`
    (default: MNIST's), any of its fields replaced by `changes` (e.g. epochs=1). precision
    "bf16" trains under bf16 autocast (where the hardware has it natively: the caller decides)."""
    recipe = dataclasses.replace(recipe or RECIPES["mnist"], **changes)
    x = _as_float_images(images, network.image_shape)
    y = labels.long()
    if len(x) != len(y) or len(x) == 0:
        raise AliError(f"{len(x)} images and {len(y)} labels; need the same, non-zero number")
    if recipe.epochs < 1:
        raise AliError(f"epochs must be at least 1; got {recipe.epochs}")
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    channels_last = len(network.image_shape) == 3 and network.image_shape[0] > 1
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # initialisation and dropout
        generator = torch.Generator().manual_seed(seed)  # order and augmentation
        model = network()
        if channels_last:  # the layout the CPU's convolution kernels run fastest in
            model = model.to(memory_format=torch.channels_last)
        steps_per_epoch = math.ceil(len(x) / recipe.batch_size)
        optimizer, schedule = _optimizer(model, recipe, recipe.epochs * steps_per_epoch)
        model.train()
        bar = progress_bar(recipe.epochs * steps_per_epoch, "classifier", enabled=progress, leave=False)
        for _ in range(recipe.epochs):
            for idx in torch.randperm(len(x), generator=generator).split(recipe.batch_size):
                batch = _augment(x[idx], recipe, generator)
                if channels_last:
                    batch = batch.contiguous(memory_format=torch.channels_last)
                with autocast:
                    logits = model(batch)
                loss = F.cross_entropy(logits.float(), y[idx], label_smoothing=recipe.label_smoothing)
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
    model: nn.Module, x: torch.Tensor, batch: int = PREDICT_BATCH, progress: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities (N, 10) and penultimate features (N, feature_dim) of images
    (N, *model.image_shape), uint8 or float in [0, 1], in evaluation mode (no dropout), fp32."""
    x = _as_float_images(x, model.image_shape)
    was_training = model.training
    model.eval()
    probs, feats = [], []
    chunks = x.split(batch)
    bar = progress_bar(len(chunks), "classify", enabled=progress, leave=False)
    try:
        for chunk in chunks:
            h = model.features(chunk)
            feats.append(h)
            probs.append(torch.softmax(model.classify(h), dim=1))
            bar.update()
    finally:
        bar.close()
        model.train(was_training)
    if not probs:
        return torch.empty(0, NUM_CLASSES), torch.empty(0, model.feature_dim)
    return torch.cat(probs), torch.cat(feats)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = PREDICT_BATCH) -> float:
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
    precision: str = "fp32",
) -> tuple[nn.Module, float]:
    """Train with the dataset's recipe (RECIPES; `epochs` overrides its epochs) on the official
    training split (its first n_train images, if given) and return the classifier with its
    accuracy on the official test split."""
    _check_dataset(dataset)
    recipe = RECIPES[dataset] if epochs is None else dataclasses.replace(RECIPES[dataset], epochs=epochs)
    images, labels = load_split(dataset, data_dir, "train")
    if n_train is not None:
        images, labels = images[:n_train], labels[:n_train]
    model = fit_classifier(images, labels, seed, recipe, NETWORKS[dataset], progress, precision)
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


def save_classifier(model: nn.Module, path: Path | str, info: dict[str, Any]) -> Path:
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


def load_classifier(path: Path | str, dataset: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
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
    network = NETWORKS.get(info.get("dataset"))
    if network is None:
        raise AliError(f"{path}: made for dataset {info.get('dataset')!r}, which has no classifier network here")
    model = network()
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
