"""Image datasets read from their official file formats and preloaded as uint8 tensors.

Entry points: `load_dataset(name, data_dir)` for any dataset a config names (the 2-D toy
mixtures of ali.data.toy, or images), and `load_image_dataset(name, data_dir) -> Dataset`, where
`data_dir` holds each dataset's folder under its usual name (`mnist/`, `fashion-mnist/`,
`cifar-10-batches-py/`, `svhn/`, `celeba/`, `tiny-imagenet-200/`, ...), as `ali data download`
lays it out. Train and held-out splits; where a dataset has an official test split, the
held-out split IS that test split, so every published-comparable figure (K+1 error,
reconstructions, sample statistics against real images) is scored on the images the papers
scored:

| name | train | heldout |
|---|---|---|
| mnist, fashion-mnist | official train (60,000) | official test (10,000) |
| stacked-mnist | 128,000 stacks of 3 train digits | 10,000 stacks of 3 test digits |
| cifar10 | data_batch_1..5 [0:45000] (the authors' training split) | test_batch (10,000) |
| svhn | extra (531,131), as the authors trained | test (26,032) |
| celeba64 | partition 0 | partition 1 (valid); without the file every 10th image |
| imagenet64 | npz train batches, or class tree | npz val, else every 10th image |
| folder:PATH | every image under PATH, 64x64 RGB | every 10th image |

SVHN's official train split (73,257) is the Dataset's `labelled_pool`: the semi-supervised
protocols draw their labelled examples from it. CIFAR-10's [45000:50000] (the authors'
validation split) and the other official splits are available from `load_split`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ali.data.celeba import load_celeba
from ali.data.cifar import load_cifar10_split
from ali.data.dataset import Dataset
from ali.data.folder import load_folder
from ali.data.idx import load_idx_split
from ali.data.imagenet import load_imagenet64
from ali.data.stacked_mnist import load_stacked_mnist
from ali.data.svhn import load_svhn_split
from ali.data.toy import MIXTURES, load_toy
from ali.errors import AliError

IMAGE_DATASETS: tuple[str, ...] = ("mnist", "fashion-mnist", "stacked-mnist", "cifar10", "svhn", "celeba64", "imagenet64")
FOLDER_PREFIX = "folder:"
# Splits `load_split` serves, per dataset (CelebA and ImageNet go through load_image_dataset).
SPLITS = {
    "mnist": ("train", "test"),
    "fashion-mnist": ("train", "test"),
    "cifar10": ("train", "test"),
    "svhn": ("train", "test", "extra"),
}
CIFAR10_TRAIN = 45_000


def is_image_dataset(name: str) -> bool:
    return name in IMAGE_DATASETS or (name.startswith(FOLDER_PREFIX) and len(name) > len(FOLDER_PREFIX))


def _tensor(array: np.ndarray) -> torch.Tensor:
    # IDX arrays are views of the read-only file bytes; torch wants writable memory.
    return torch.from_numpy(np.ascontiguousarray(array) if array.flags.writeable else array.copy())


def load_split(name: str, data_dir: Path | str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, C, H, W) uint8 and labels (N,) int64 of one official split, e.g.
    ("svhn", "test") or ("cifar10", "test"), for evaluation code that needs the test sets."""
    data_dir = Path(data_dir).expanduser().resolve()
    if split not in SPLITS.get(name, ()):
        known = ", ".join(f"{n}: {'/'.join(s)}" for n, s in SPLITS.items())
        raise AliError(f"no split {split!r} for dataset {name!r}; known: {known}")
    if name in ("mnist", "fashion-mnist"):
        images, labels = load_idx_split(name, data_dir, split)
    elif name == "cifar10":
        images, labels = load_cifar10_split(data_dir, split)
    else:
        images, labels = load_svhn_split(data_dir, split)
    return _tensor(images), _tensor(labels)


def _parts(name: str, data_dir: Path) -> dict:
    if name == "stacked-mnist":
        return load_stacked_mnist(data_dir)
    if name in ("mnist", "fashion-mnist", "svhn"):
        train_split = "extra" if name == "svhn" else "train"
        train, labels = load_split(name, data_dir, train_split)
        heldout, heldout_labels = load_split(name, data_dir, "test")
        parts = {"train": train, "labels": labels, "heldout": heldout, "heldout_labels": heldout_labels}
        if name == "svhn":
            parts["labelled_pool"] = load_split(name, data_dir, "train")
        return parts
    if name == "cifar10":
        images, labels = load_split(name, data_dir, "train")
        heldout, heldout_labels = load_split(name, data_dir, "test")
        return {
            "train": images[:CIFAR10_TRAIN],
            "labels": labels[:CIFAR10_TRAIN],
            "heldout": heldout,
            "heldout_labels": heldout_labels,
        }
    if name == "celeba64":
        return load_celeba(data_dir)
    if name == "imagenet64":
        return load_imagenet64(data_dir)
    return load_folder(Path(name[len(FOLDER_PREFIX) :]).expanduser())


def load_image_dataset(name: str, data_dir: Path | str) -> Dataset:
    """The named dataset, preloaded: `train`/`heldout` uint8 (N, C, H, W); `labels`/
    `heldout_labels` int64 (N,) class indices, (N, 40) uint8 CelebA attributes, or None;
    `labelled_pool` (images, labels) where labelled examples come from another split (SVHN)."""
    if not is_image_dataset(name):
        raise AliError(f"unknown image dataset {name!r}; known: {', '.join(IMAGE_DATASETS)}, {FOLDER_PREFIX}PATH")
    parts = _parts(name, Path(data_dir).expanduser().resolve())
    if len(parts["train"]) == 0 or len(parts["heldout"]) == 0:
        raise AliError(
            f"{name}: {len(parts['train'])} training and {len(parts['heldout'])} held-out images; both must be non-empty (10 images at least)"
        )
    conv = {k: _tensor(v) if isinstance(v, np.ndarray) else v for k, v in parts.items()}
    return Dataset(
        name,
        conv["train"],
        conv["heldout"],
        labels=conv.get("labels"),
        heldout_labels=conv.get("heldout_labels"),
        label_names=tuple(conv.get("label_names", ())),
        labelled_pool=conv.get("labelled_pool"),
    )


def is_known_dataset(name: str) -> bool:
    """A toy mixture, an image dataset, or `folder:PATH`."""
    return name in MIXTURES or is_image_dataset(name)


DATASET_NAMES: tuple[str, ...] = (*MIXTURES, *IMAGE_DATASETS)


def load_dataset(name: str, data_dir: Path | str) -> Dataset:
    """The dataset a config names, preloaded (image datasets from data_dir)."""
    if name in MIXTURES:
        return load_toy(name)
    return load_image_dataset(name, data_dir)
