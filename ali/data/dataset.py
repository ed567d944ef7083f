"""A dataset as preloaded tensors: training and held-out examples, labels where the files have them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ali.errors import AliError


@dataclass
class Dataset:
    """Training and held-out examples, preloaded. Images are uint8 and scaled by `to_float`."""

    name: str
    train: torch.Tensor
    heldout: torch.Tensor
    # 2-D toy data: the GaussianMixture it was drawn from (ali.data.toy); None for images.
    mixture: Any = None
    # Image datasets: int64 class per example, or (N, 40) uint8 CelebA attributes; None when the
    # files carry no labels. label_names: class or attribute names, if known.
    labels: torch.Tensor | None = None
    heldout_labels: torch.Tensor | None = None
    label_names: tuple[str, ...] = ()
    # (images, class labels) semi-supervised methods draw their labelled examples from when
    # that is not `train`: SVHN trains on `extra` but its published protocols label `train`.
    labelled_pool: tuple[torch.Tensor, torch.Tensor] | None = None
    # Anomaly-detection splits (ali.data.anomaly): True for each anomalous held-out example.
    heldout_anomalous: torch.Tensor | None = None

    @property
    def is_image(self) -> bool:
        return self.mixture is None

    def to_float(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.float() / 255.0 if batch.dtype == torch.uint8 else batch


def as_conditions(labels: torch.Tensor, size: int, name: str = "the dataset") -> torch.Tensor:
    """What a conditional model is fed: class indices (N,) as one-hot rows (N, size), binary
    attribute vectors (N, size) as floats. A size the labels do not have is an AliError."""
    if labels.dim() == 1:
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= size):
            raise AliError(
                f"{name} has class labels up to {int(labels.max())}, but the run conditions on {size} classes; set condition_dim={int(labels.max()) + 1}"
            )
        return torch.nn.functional.one_hot(labels.long(), size).float()
    if labels.dim() != 2 or labels.shape[1] != size:
        raise AliError(
            f"{name} has condition vectors of size {labels.shape[-1]}, but the run conditions on {size}; set condition_dim={labels.shape[-1]}"
        )
    return labels.float()


def evaluation_conditions(dataset: Dataset, n: int, size: int) -> torch.Tensor:
    """Conditions for n evaluation samples: every class in turn, or the held-out attribute vectors."""
    if dataset.heldout_labels is None:
        raise AliError(f"dataset {dataset.name!r} has no labels to condition on")
    if dataset.heldout_labels.dim() == 1:
        return as_conditions(torch.arange(n, device=dataset.heldout_labels.device) % size, size, dataset.name)
    reps = -(-n // len(dataset.heldout_labels))
    return as_conditions(dataset.heldout_labels.repeat(reps, 1)[:n], size, dataset.name)
