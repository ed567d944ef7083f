"""A run's model, optimizers and step, built from its config and its method (ali.methods), and
the model's set-up from the training data (the decoder's untied output biases). The networks
alone (`build_networks`, what a trained run is restored into) are ali.rundir's.

Callers resolve the run's method once (`get_method(config.method)`) and pass it on; each
function here resolves it itself where none is given."""

from __future__ import annotations

import torch

from ali.config import TrainConfig, settings
from ali.data.dataset import Dataset
from ali.data.prior import PriorSampler
from ali.errors import AliError
from ali.methods import get_method
from ali.methods.base import Batch, Method, Optimizers, StepFn, StepInputs, StepRuntime
from ali.nets.model import Model
from ali.rundir import build_networks


def set_learning_rates(optimizers: Optimizers, lr: float, d_lr_factor: float) -> None:
    """The generators' lr on every optimizer; the discriminators' (TTUR) scaled by d_lr_factor."""
    for name, optimizer in optimizers.items():
        for group in optimizer.param_groups:
            group["lr"] = lr * (d_lr_factor if name.startswith("discriminator") else 1.0)


def build_model(config: TrainConfig, method: Method | None = None) -> tuple[Model, Optimizers]:
    """The method's networks (build_networks) and one Adam(lr, (beta1, beta2)) per optimizer
    group of the method; discriminators at lr * d_lr_factor."""
    method = get_method(config.method) if method is None else method
    model = build_networks(config, method)
    # fused=True: one kernel for all tensors; the per-tensor loop was a third of a toy step's time.
    adam = dict(lr=config.lr, betas=(config.beta1, config.beta2), fused=True)
    groups = {name: model.parameters_of(nets) for name, nets in method.optimizers.items()}
    optimizers = {name: torch.optim.Adam(params, **adam) for name, params in groups.items() if params}
    set_learning_rates(optimizers, config.lr, config.d_lr_factor)
    return model, optimizers


def total_steps(config: TrainConfig, method: Method | None = None) -> int:
    """Steps of the whole run: `steps` for each of the method's phases."""
    return config.steps * (get_method(config.method) if method is None else method).phases


def build_step(
    config: TrainConfig,
    model: Model,
    optimizers: Optimizers,
    runtime: StepRuntime,
    data: Dataset | None = None,
    method: Method | None = None,
) -> StepFn:
    """The method's step with its inputs fixed: call it as step(batch, index) -> losses."""
    method = get_method(config.method) if method is None else method
    prior = PriorSampler(config.prior_sampling, model.arch.latent_dim, config.seed) if method.draws_prior else None
    inputs = StepInputs(model, optimizers, runtime, prior, settings(config, method), config.steps, data, config.seed)
    inner = method.make_step(inputs)

    def step(batch: Batch, index: int) -> dict[str, torch.Tensor]:
        model.train()
        losses = inner(batch, index)
        if runtime.scaler is not None:
            runtime.scaler.update()
        return losses

    return step


def condition_dim(config: TrainConfig, method: Method | None = None) -> int:
    """The size of a conditional run's condition vectors; 0 for an unconditional method."""
    conditional = (get_method(config.method) if method is None else method).conditional
    return int(getattr(config, "condition_dim", 0)) if conditional else 0


def fit_to_data(model: Model, dataset: Dataset, fresh: bool) -> None:
    """Check the data fits the architecture; on a fresh run set the decoder's untied output biases
    to the log-odds of the mean of the first 500 training images (docs/PAPER.md §2), then the
    method's own start from those images (Method.init_from_data)."""
    if not dataset.is_image:
        return
    shape = tuple(dataset.train.shape[1:])
    if shape != tuple(model.arch.x_shape):
        raise AliError(
            f"dataset {dataset.name!r} has images of shape {shape} but architecture {model.config.arch!r} expects "
            f"{tuple(model.arch.x_shape)}; choose a matching --set arch=..."
        )
    if fresh:  # a resumed run restores the biases from its checkpoint
        images = dataset.to_float(dataset.train[:500])
        model.decoder.init_untied_bias(images)
        start = get_method(model.method).init_from_data
        if start is not None:
            start(model, images)
        model.reset_averages()
