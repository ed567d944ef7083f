"""Anomaly-detection splits of a labelled dataset: the two published protocols, never mixed.

- "one-class" (Deep SVDD, OCGAN): class K is normal, the other classes anomalous. Training
  images: the official training split's class K only. Test images: the whole official test
  split; an image is anomalous unless its class is K.
- "one-anomalous" (EGBAD, ALAD): class K is the anomaly, the other classes normal. Both
  official splits are pooled; 80% of the normal images (a draw from the split seed) train, and
  the test set is the other 20% plus every image of class K.

`anomaly_split` returns a Dataset whose `heldout_anomalous` marks each test image (True:
anomalous); its labels stay the original classes.
"""

from __future__ import annotations

import torch

from ali.data.dataset import Dataset
from ali.errors import AliError

PROTOCOLS = ("one-class", "one-anomalous")
NORMAL_TRAIN_FRACTION = 0.8  # one-anomalous: the share of the normal images that trains


def anomaly_split(
    name: str,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    protocol: str,
    anomaly_class: int,
    seed: int = 0,
    label_names: tuple[str, ...] = (),
) -> Dataset:
    """The protocol's training and test images from the official (images, labels) splits.
    `anomaly_class` is the normal class ("one-class") or the anomalous one ("one-anomalous")."""
    (train_x, train_y), (test_x, test_y) = train, test
    if train_y.dim() != 1 or test_y.dim() != 1:
        raise AliError(f"{name} has no class labels; anomaly protocols need a dataset with one class per image")
    classes = int(max(train_y.max(), test_y.max())) + 1
    if not 0 <= anomaly_class < classes:
        raise AliError(f"{name} has classes 0..{classes - 1}; anomaly_class {anomaly_class} is not one of them")
    if protocol == "one-class":
        keep = train_y == anomaly_class
        return Dataset(
            name,
            train_x[keep],
            test_x,
            labels=train_y[keep],
            heldout_labels=test_y,
            label_names=label_names,
            heldout_anomalous=test_y != anomaly_class,
        )
    if protocol != "one-anomalous":
        raise AliError(f"unknown anomaly protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    images, labels = torch.cat([train_x, test_x]), torch.cat([train_y, test_y])
    normal = torch.nonzero(labels != anomaly_class).flatten()
    anomalous = torch.nonzero(labels == anomaly_class).flatten()
    shuffled = normal[torch.randperm(len(normal), generator=torch.Generator().manual_seed(seed))]
    cut = round(NORMAL_TRAIN_FRACTION * len(normal))
    train_rows, test_rows = shuffled[:cut].sort().values, torch.cat([shuffled[cut:].sort().values, anomalous])
    return Dataset(
        name,
        images[train_rows],
        images[test_rows],
        labels=labels[train_rows],
        heldout_labels=labels[test_rows],
        label_names=label_names,
        heldout_anomalous=labels[test_rows] == anomaly_class,
    )
