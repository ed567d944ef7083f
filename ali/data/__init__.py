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

Each dataset is declared once in ali.data.specs (its splits, loader, download, default
architecture and classifier). SVHN's official train split (73,257) is the Dataset's `labelled_pool`: the semi-supervised
protocols draw their labelled examples from it. CIFAR-10's [45000:50000] (the authors'
validation split) and the other official splits are available from `load_split`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ali.data.anomaly import anomaly_split
from ali.data.dataset import Dataset
from ali.data.folder import load_folder
from ali.data.specs import DATASETS, DatasetSpec
from ali.data.toy import MIXTURES, load_toy
from ali.errors import AliError

IMAGE_DATASETS: tuple[str, ...] = tuple(DATASETS)  # every declared dataset (ali.data.specs) holds images
FOLDER_PREFIX = "folder:"


def is_image_dataset(name: str) -> bool:
    return name in IMAGE_DATASETS or (name.startswith(FOLDER_PREFIX) and len(name) > len(FOLDER_PREFIX))


def _tensor(array: np.ndarray) -> torch.Tensor:
    # IDX arrays are views of the read-only file bytes; torch wants writable memory.
    return torch.from_numpy(np.ascontiguousarray(array) if array.flags.writeable else array.copy())


def load_split(name: str, data_dir: Path | str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, C, H, W) uint8 and labels (N,) int64 of one official split, e.g.
    SVHN's or CIFAR-10's test split, for evaluation code that needs the test sets (the splits
    each dataset serves: DatasetSpec.splits)."""
    data_dir = Path(data_dir).expanduser().resolve()
    spec = DATASETS.get(name)
    if spec is None or split not in spec.splits:
        known = ", ".join(f"{n}: {'/'.join(s.splits)}" for n, s in DATASETS.items() if s.splits)
        raise AliError(f"no split {split!r} for dataset {name!r}; known: {known}")
    images, labels = spec.load_split(data_dir, split)
    return _tensor(images), _tensor(labels)


def _parts(name: str, data_dir: Path) -> dict:
    spec = DATASETS.get(name)
    if spec is None:
        return load_folder(Path(name[len(FOLDER_PREFIX) :]).expanduser())
    if spec.load is not None:
        return spec.load(data_dir)
    return _split_parts(spec, data_dir)


def _split_parts(spec: DatasetSpec, data_dir: Path) -> dict:
    """A dataset with official splits: train (its first `train_rows`), held out, labelled pool."""
    train, labels = load_split(spec.name, data_dir, spec.train_split)
    heldout, heldout_labels = load_split(spec.name, data_dir, spec.heldout_split)
    if spec.train_rows is not None:
        train, labels = train[: spec.train_rows], labels[: spec.train_rows]
    parts = {"train": train, "labels": labels, "heldout": heldout, "heldout_labels": heldout_labels}
    if spec.labelled_pool_split is not None:
        parts["labelled_pool"] = load_split(spec.name, data_dir, spec.labelled_pool_split)
    return parts


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


def load_anomaly_dataset(name: str, data_dir: Path | str, protocol: str, anomaly_class: int, seed: int = 0) -> Dataset:
    """The named dataset split for anomaly detection (ali.data.anomaly) from its full official
    train and test splits."""
    spec = DATASETS.get(name)
    if spec is None or not {"train", "test"} <= set(spec.splits):
        known = ", ".join(n for n, s in DATASETS.items() if {"train", "test"} <= set(s.splits))
        raise AliError(f"anomaly protocols need a dataset with official train and test splits ({known}); got {name!r}")
    return anomaly_split(
        name, load_split(name, data_dir, "train"), load_split(name, data_dir, "test"), protocol, anomaly_class, seed
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
