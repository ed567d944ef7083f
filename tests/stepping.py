"""Test helper: one training step of a built model, as the loop builds it (fp32 unless asked)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ali.data.dataset import Dataset
from ali.methods.base import Batch, StepRuntime
from ali.nets.model import Model
from ali.training.build import build_step, condition_dim
from ali.training.hardware import make_runtime


def built_step(
    model: Model, optimizers: dict, x: torch.Tensor, precision: str = "fp32", runtime: StepRuntime | None = None
) -> Callable[[torch.Tensor, int], dict]:
    """The step with its extra inputs made now: a conditional model gets every class in turn
    for a batch like x; a K+1 model a small labelled set of random images. `runtime` replaces
    the one `precision` makes."""
    data = None
    if model.method == "ali-kplus1":
        data = Dataset(
            "random", torch.randint(0, 256, (100, *x.shape[1:]), dtype=torch.uint8), x[:2], labels=torch.arange(100) % 10
        )
    step = build_step(model.config, model, optimizers, runtime or make_runtime(precision, torch.device("cpu")), data)
    size = condition_dim(model.config)
    y = torch.nn.functional.one_hot(torch.arange(len(x)) % size, size).float() if size else None
    return lambda images, index: step(Batch(images, y), index)


def train_step(model: Model, optimizers: dict, x: torch.Tensor, index: int, precision: str = "fp32") -> dict:
    return built_step(model, optimizers, x, precision)(x, index)
