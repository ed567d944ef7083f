"""The 2-D toy data (docs/PAPER.md §4): equal-weight mixtures of isotropic Gaussians, drawn from fixed seeds.

Every run and every seed of a study sees the same 100,000 training points and the same 10,000
held-out points, so runs differ only by the model's own randomness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ali.data.dataset import Dataset

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
    return GaussianMixture(torch.cartesian_prod(axis, axis), 0.05)


def ring8() -> GaussianMixture:
    """8 Gaussians on a circle of radius 2, std 0.02."""
    angles = torch.arange(8) * (2 * math.pi / 8)
    return GaussianMixture(2.0 * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1), 0.02)


MIXTURES = {"toy25": grid25, "ring8": ring8}


def load_toy(name: str) -> Dataset:
    mixture = MIXTURES[name]()
    train, _ = mixture.sample(TOY_TRAIN_SIZE, torch.Generator().manual_seed(_TRAIN_SEED))
    heldout, _ = mixture.sample(TOY_HELDOUT_SIZE, torch.Generator().manual_seed(_HELDOUT_SEED))
    return Dataset(name, train, heldout, mixture=mixture)
