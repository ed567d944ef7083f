"""Datasets as preloaded tensors, and the epoch-ordered batch sampler the training loop uses.

Toy data (NOTES §3) is drawn from a fixed seed, so every run and every seed of a study sees the
same 100,000 training points and the same 10,000 held-out points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

TOY_TRAIN_SIZE = 100_000
TOY_HELDOUT_SIZE = 10_000
_TRAIN_SEED, _HELDOUT_SEED = 1234, 4321


@dataclass(frozen=True)
class GaussianMixture:
    """Equal-weight mixture of isotropic Gaussians in 2-D."""

    means: torch.Tensor  # (K, 2)
    std: float

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n points and the component each was drawn from."""
        comp = torch.randint(len(self.means), (n,), generator=generator)
        x = self.means[comp] + self.std * torch.randn(n, 2, generator=generator)
        return x, comp


def grid25() -> GaussianMixture:
    """25 Gaussians, means on {-4,-2,0,2,4}^2, std 0.05 (the paper's grid)."""
    axis = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
    means = torch.cartesian_prod(axis, axis)
    return GaussianMixture(means, 0.05)


def ring8() -> GaussianMixture:
    """8 Gaussians on a circle of radius 2, std 0.02."""
    angles = torch.arange(8) * (2 * math.pi / 8)
    means = 2.0 * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return GaussianMixture(means, 0.02)


MIXTURES = {"toy25": grid25, "ring8": ring8}


@dataclass
class Dataset:
    """Training and held-out examples, preloaded. Images are uint8 and scaled by `to_float`."""

    name: str
    train: torch.Tensor
    heldout: torch.Tensor
    mixture: GaussianMixture | None = None
    # Image datasets (ali.data): int64 class per example, or (N, 40) uint8 CelebA attributes;
    # None when the files carry no labels. label_names: class or attribute names, if known.
    labels: torch.Tensor | None = None
    heldout_labels: torch.Tensor | None = None
    label_names: tuple[str, ...] = ()

    def to_float(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.float() / 255.0 if batch.dtype == torch.uint8 else batch


def load_toy(name: str) -> Dataset:
    mixture = MIXTURES[name]()
    train, _ = mixture.sample(TOY_TRAIN_SIZE, torch.Generator().manual_seed(_TRAIN_SEED))
    heldout, _ = mixture.sample(TOY_HELDOUT_SIZE, torch.Generator().manual_seed(_HELDOUT_SEED))
    return Dataset(name, train, heldout, mixture)


class _DatasetNames(tuple):
    """Known names; `folder:PATH` is accepted too, as config validation checks `name in ...`."""

    def __contains__(self, name: object) -> bool:
        from ali.data import is_image_dataset

        return tuple.__contains__(self, name) or (isinstance(name, str) and is_image_dataset(name))


def _names() -> tuple[str, ...]:
    from ali.data import IMAGE_DATASETS

    return _DatasetNames((*MIXTURES, *IMAGE_DATASETS))


DATASET_NAMES = _names()


def load_dataset(config) -> Dataset:
    """The dataset a config names, preloaded (image datasets from config.data_dir)."""
    if config.dataset in MIXTURES:
        return load_toy(config.dataset)
    from pathlib import Path

    from ali.data import load_image_dataset

    return load_image_dataset(config.dataset, Path(config.data_dir))


class EpochSampler:
    """Shuffled passes over the training set, reproducible from (seed, step) alone.

    The permutation of each epoch comes from its own seed, so resuming at any step needs no saved
    sampler state: position = step * batch_size.
    """

    def __init__(self, size: int, batch_size: int, seed: int):
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.size, generator=gen)
        return self._perm

    def indices(self, step: int) -> torch.Tensor:
        """Indices of the batch for `step` (0-based); a batch may span two epochs."""
        start = step * self.batch_size
        parts = []
        while start < (step + 1) * self.batch_size:
            epoch, offset = divmod(start, self.size)
            take = min(self.size - offset, (step + 1) * self.batch_size - start)
            parts.append(self._permutation(epoch)[offset : offset + take])
            start += take
        return parts[0] if len(parts) == 1 else torch.cat(parts)
