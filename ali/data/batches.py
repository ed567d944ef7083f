"""What a step takes from a dataset: batches in the model's memory layout, class-balanced draws.

`to_model_layout` puts an image batch in channels_last, the layout ali.training.hardware gives
conv weights. `balanced_subset` draws the same number of examples of every class, seeded: the
K+1 method's labelled set (ali.methods.ali_kplus1) and the L2-SVM protocol's labelled samples
(ali.evaluation.semisupervised).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ali.errors import AliError


def to_model_layout(x: torch.Tensor) -> torch.Tensor:
    """Image batches in channels_last to match the conv weights; other tensors unchanged."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def _numpy(a: torch.Tensor | np.ndarray) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def balanced_subset(
    labels: torch.Tensor | np.ndarray,
    per_class: int,
    generator: np.random.Generator | int,
    exclude: torch.Tensor | np.ndarray | Sequence[int] | None = None,
) -> np.ndarray:
    """Sorted indices of `per_class` examples of every class in `labels`, drawn without
    replacement and never from `exclude`; the same generator state gives the same subset."""
    y = _numpy(labels).ravel()
    rng = np.random.default_rng(generator) if isinstance(generator, (int, np.integer)) else generator
    if per_class < 1:
        raise AliError(f"labelled examples per class must be at least 1; got {per_class}")
    allowed = np.ones(len(y), dtype=bool)
    if exclude is not None:
        allowed[_numpy(exclude).astype(np.int64).ravel()] = False
    chosen = []
    for c in np.unique(y):
        candidates = np.flatnonzero((y == c) & allowed)
        if len(candidates) < per_class:
            raise AliError(f"class {c} has {len(candidates)} usable examples, fewer than the {per_class} per class asked for")
        chosen.append(rng.choice(candidates, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))
