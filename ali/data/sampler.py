"""The epoch-ordered batch sampler of the training loop, reproducible from (seed, step) alone."""

from __future__ import annotations

import torch


class EpochSampler:
    """Shuffled passes over the training set.

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
