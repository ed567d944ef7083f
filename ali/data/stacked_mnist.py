"""Stacked MNIST: three random MNIST digits as the R, G and B channels of one 28x28 image.

The 1,000 combinations of digits are 1,000 known, equally likely modes, so a generator's mode
coverage can be counted (ali.evaluation.sample_quality.stacked_mnist_modes), as VEEGAN and PacGAN
do for ALI. The label of an image is its mode, 100 * d0 + 10 * d1 + d2 for channel digits d0, d1,
d2. Training images are stacked from the MNIST training split, held-out ones from the test split,
each from its own seeded stream, so the same seed always gives the same dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ali.data.idx import load_idx_split
from ali.errors import AliError

CHANNELS = 3
NUM_MODES = 10**CHANNELS
# Papers differ in size (25,600 to 240,000 training images); set n_train to match the one followed.
N_TRAIN = 128_000
N_HELDOUT = 10_000


def stack_mnist(images: torch.Tensor, labels: torch.Tensor, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n images (n, 3, 28, 28) uint8 whose channels are MNIST digits drawn uniformly with
    replacement from `images` (N, 1, 28, 28), and their modes (n,) int64 in 0..999."""
    if images.dim() != 4 or images.shape[1] != 1 or len(images) != len(labels) or len(images) == 0:
        raise AliError(
            f"Stacked MNIST is built from one-channel images (N, 1, H, W) with one label each; "
            f"got images {tuple(images.shape)} and {len(labels)} labels"
        )
    if n < 0:
        raise AliError(f"the number of stacked images must be >= 0; got {n}")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise AliError("Stacked MNIST needs digit labels 0..9")
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(images), (n, CHANNELS), generator=generator)
    stacked = images[picks.flatten(), 0].view(n, CHANNELS, *images.shape[2:])
    digits = labels.long()[picks]
    modes = digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]
    return stacked.contiguous(), modes


def decode_modes(modes: torch.Tensor) -> torch.Tensor:
    """The channel digits (n, 3) of modes (n,) in 0..999: mode 472 -> (4, 7, 2)."""
    modes = modes.long()
    return torch.stack([modes // 100, modes // 10 % 10, modes % 10], dim=1)


def _mnist(data_dir: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    # Straight from the IDX reader rather than ali.data.load_split, so ali.data can list this
    # loader without a circular import. The arrays view read-only file bytes; torch wants a copy.
    images, labels = load_idx_split("mnist", data_dir, split)
    return torch.from_numpy(np.array(images)), torch.from_numpy(np.array(labels))


def load_stacked_mnist(
    data_dir: Path | str, n_train: int = N_TRAIN, n_heldout: int = N_HELDOUT, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Stacked MNIST from the MNIST files under data_dir: the dict of `train`, `labels`,
    `heldout`, `heldout_labels` the other image loaders return (labels are modes 0..999)."""
    data_dir = Path(data_dir).expanduser().resolve()
    # Two seeds from one: the held-out set does not change with n_train.
    train_seed, heldout_seed = torch.randint(2**62, (2,), generator=torch.Generator().manual_seed(seed)).tolist()
    train, labels = stack_mnist(*_mnist(data_dir, "train"), n_train, train_seed)
    heldout, heldout_labels = stack_mnist(*_mnist(data_dir, "test"), n_heldout, heldout_seed)
    return {"train": train, "labels": labels, "heldout": heldout, "heldout_labels": heldout_labels}
