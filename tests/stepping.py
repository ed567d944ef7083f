"""Test helper: one training step of a built model, as the loop builds it (fp32 unless asked)."""

from __future__ import annotations

import torch

from ali.nets.model import Model
from ali.training.hardware import make_runtime
from ali.training.model import build_step


def train_step(model: Model, optimizers: dict, x: torch.Tensor, index: int, precision: str = "fp32") -> dict:
    step = build_step(model.config, model, optimizers, make_runtime(precision, torch.device("cpu")))
    return step(x, index)
