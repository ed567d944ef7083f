"""A dataset as preloaded tensors: training and held-out examples, labels where the files have them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


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

    @property
    def is_image(self) -> bool:
        return self.mixture is None

    def to_float(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.float() / 255.0 if batch.dtype == torch.uint8 else batch
