"""A run's model, optimizers and step, built from its config and its method (ali.methods), and a
trained run's model, built from its directory (ali.rundir) and restored from its newest checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ali import checkpoint as ckpt
from ali.config import TrainConfig
from ali.data.dataset import Dataset
from ali.data.prior import PriorSampler
from ali.methods import get_method
from ali.methods.base import Optimizers, StepFn, StepInputs, StepRuntime
from ali.nets.architectures import ARCHITECTURES
from ali.nets.layers import init_weights
from ali.nets.model import Model
from ali.rundir import load_run_config


def set_learning_rates(optimizers: Optimizers, lr: float, d_lr_factor: float) -> None:
    """The generators' lr on every optimizer; the discriminators' (TTUR) scaled by d_lr_factor."""
    for name, optimizer in optimizers.items():
        for group in optimizer.param_groups:
            group["lr"] = lr * (d_lr_factor if name.startswith("discriminator") else 1.0)


def build_model(config: TrainConfig) -> tuple[Model, Optimizers]:
    """The method's networks (weights ~ N(0, init_std)) and one Adam(lr, (beta1, beta2)) per
    optimizer group of the method; discriminators at lr * d_lr_factor."""
    method = get_method(config.method)
    arch = ARCHITECTURES[config.arch]
    model = Model(method.networks(arch, settings(config)), arch, method.name, config)
    init_weights(model, config.init_std, config.tconv_init)
    # fused=True: one kernel for all tensors; the per-tensor loop was a third of a toy step's time.
    adam = dict(lr=config.lr, betas=(config.beta1, config.beta2), fused=True)
    groups = {name: model.parameters_of(nets) for name, nets in method.optimizers.items()}
    optimizers = {name: torch.optim.Adam(params, **adam) for name, params in groups.items() if params}
    set_learning_rates(optimizers, config.lr, config.d_lr_factor)
    return model, optimizers


def settings(config: TrainConfig) -> dict[str, Any]:
    """The values of the config keys the run's method owns."""
    return {k: getattr(config, k) for k in get_method(config.method).keys}


def total_steps(config: TrainConfig) -> int:
    """Steps of the whole run: `steps` for each of the method's phases."""
    return config.steps * get_method(config.method).phases


def build_step(
    config: TrainConfig, model: Model, optimizers: Optimizers, runtime: StepRuntime, data: Dataset | None = None
) -> StepFn:
    """The method's step with its inputs fixed: call it as step(x, index[, y]) -> losses."""
    method = get_method(config.method)
    prior = PriorSampler(config.prior_sampling, model.arch.latent_dim, config.seed) if method.draws_prior else None
    inputs = StepInputs(model, optimizers, runtime, prior, settings(config), config.steps, data, config.seed)
    inner = method.make_step(inputs)

    def step(x: torch.Tensor, index: int, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        model.train()
        losses = inner(x, index, y) if method.conditional else inner(x, index)
        if runtime.scaler is not None:
            runtime.scaler.update()
        return losses

    return step


def condition_dim(config: TrainConfig) -> int:
    """The size of a conditional run's condition vectors; 0 for an unconditional method."""
    return int(getattr(config, "condition_dim", 0)) if get_method(config.method).conditional else 0


def restore_trained(run_dir: Path, config: TrainConfig) -> tuple[Model, int]:
    """The run's model in evaluation mode, restored from its newest valid checkpoint, and that step."""
    model, _ = build_model(config)
    _, tensors, header = ckpt.newest_valid_checkpoint(run_dir)
    step = ckpt.restore(tensors, header, model, restore_rng=False)
    model.eval()
    return model, step


def load_trained(run_dir: Path | str) -> tuple[TrainConfig, Model, int]:
    """A finished or interrupted run's config, its model from the newest valid checkpoint, that step."""
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    model, step = restore_trained(run_dir, config)
    return config, model, step
