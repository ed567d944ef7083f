"""What a method is: its networks, its optimizers, the config keys it reads, its step, its score.

A method module (ali/methods/<name>.py) builds one `Method`; ali/methods/__init__.py maps names
to them. Everything else (the model builder, the loop, checkpoints, the dry-run listing, data
parallelism) works from a `Method` and a `Model` mapping, so adding a method is one module and
one registry line.

A step is built once per run from explicit inputs (`StepInputs`): the model, its optimizers,
the runtime (autocast, loss scaler, all-reduce), the prior sampler, and the values of exactly
the config keys the method declares. It is then called as `step(batch, index) -> losses`, where
`batch` is a `Batch`: the images x and, for a conditional method, their condition vectors y.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ali.data.dataset import Dataset
from ali.data.prior import PriorSampler
from ali.keys import Key, boolean, in_range, one_of
from ali.nets.architectures import Architecture
from ali.nets.model import Model
from ali.nets.networks import (
    Decoder,
    GaussianEncoder,
    JointDiscriminator,
    MarginalDiscriminator,
    NoiseEncoder,
    PackedJointDiscriminator,
)

Losses = dict[str, torch.Tensor]
Optimizers = dict[str, torch.optim.Optimizer]
StepFn = Callable[["Batch", int], Losses]  # step(batch, index) -> losses
Score = Callable[[list[dict[str, float]]], tuple[float | None, str]]

# Keys every method with a discriminator reads.
ADVERSARIAL_KEYS: dict[str, Key] = {
    "d_lr_factor": Key(
        1.0,
        in_range(0, 100, lo_open=True),
        "two time-scale rule (Heusel et al. 2017): D's Adam runs at lr * d_lr_factor; 1 = the paper",
    ),
    "update": Key(
        "simultaneous",
        one_of("simultaneous", "two-pass", "alternating"),
        "simultaneous: the authors' one-forward update (fused or two-pass backward, whichever is exact and faster); two-pass forces the second; alternating: D then G",
    ),
    "prior_sampling": Key(
        "random",
        one_of("random", "sobol"),
        "each step's prior batch: i.i.d. normals (the paper) or scrambled Sobol points (a stratified sample of the prior; ali.data.prior)",
    ),
    "spectral_norm": Key(
        False,
        boolean(),
        "every discriminator's linear and conv layers spectrally normalised (Miyato et al. 2018), a Lipschitz bound on D; false = the paper",
    ),
    "guard_d_win_loss": Key(0.01, in_range(0, 1.386), "warn when loss_d stays below this (D wins completely) ..."),
    "guard_d_win_logs": Key(5, in_range(1), "... for this many consecutive log lines"),
}


@dataclass(frozen=True)
class Batch:
    """One training batch in the model's layout: x, and the condition vectors y of a conditional
    method's batch (None for every other method)."""

    x: torch.Tensor
    y: torch.Tensor | None = None


@dataclass
class StepRuntime:
    """Per-run execution state of the training step (not part of the model's math or checkpoint):
    an autocast context for forward passes, a GradScaler for fp16, and a gradient all-reduce for
    data-parallel runs. ali.training.hardware.make_runtime builds one for a resolved precision."""

    autocast: Callable[[], ContextManager] = contextlib.nullcontext
    scaler: torch.amp.GradScaler | None = None
    # Averages gradients over data-parallel ranks before each optimizer step; None = one process.
    all_reduce: Callable[[list[torch.Tensor]], None] | None = None
    precision: str = "fp32"


@dataclass(frozen=True)
class StepInputs:
    """Everything a step may use, fixed for the run."""

    model: Model
    optimizers: Optimizers
    runtime: StepRuntime
    prior: PriorSampler | None
    settings: dict[str, Any]  # the values of the config keys the method owns
    phase_steps: int  # the config's `steps`: the length of each of the method's phases
    data: Dataset | None = None  # the training set (on the device), for methods that draw their own batches
    seed: int = 0  # the run's seed, for what a method draws once per run (K+1's labelled set)


@dataclass(frozen=True)
class Method:
    """One training method. `optimizers` maps an optimizer name to the networks it updates (a
    group whose networks the settings leave out is dropped); optimizers whose name starts with
    "discriminator" run at lr * d_lr_factor."""

    name: str
    title: str  # how tables, figures and the CLI name it
    networks: Callable[[Architecture, dict[str, Any]], dict[str, nn.Module]]  # (arch, settings)
    optimizers: dict[str, tuple[str, ...]]
    make_step: Callable[[StepInputs], StepFn]
    score: Score
    keys: dict[str, Key] = field(default_factory=dict)  # the config keys the method owns (ali.keys)
    phases: int = 1  # consecutive phases of `steps` steps each, every one on the full schedule
    draws_prior: bool = True
    # Conditional methods (docs/PAPER.md §6) get each batch's condition vectors as its Batch's y:
    # one-hot class labels or binary attributes of size settings["condition_dim"].
    conditional: bool = False
    uses_labels: bool = False  # trains on class labels (conditional, semi-supervised): no unsupervised detector
    # What a method measures of its own trained model, at the end of training and as the metric
    # group `metrics_group` of `ali evaluate` (K+1: its classifier's error on the held-out split):
    # (model, dataset, first N held-out images or None for all) -> metrics. None: no such metric.
    metrics: Callable[[Model, Dataset, int | None], dict[str, float]] | None = None
    metrics_group: str = ""
    # Refuses (AliError) a combination of the method's settings in which a key would be ignored.
    check_settings: Callable[[dict[str, Any]], None] = lambda settings: None
    # The networks whose weight average (config key ema_decay) is what samples and is evaluated:
    # the generators, which make every sample, reconstruction and code (ali.nets.model).
    averaged: tuple[str, ...] = ("encoder", "decoder")
    # A fresh run's start from data, after the decoder's output biases: (model, the first 500
    # float training images) -> None (K+1's weight-normalised D). None: no such start.
    init_from_data: Callable[[Model, torch.Tensor], None] | None = None


# L_D at the game's equilibrium D = 1/2: -log(1/2) - log(1 - 1/2).
EQUILIBRIUM_LOSS_D = 2 * math.log(2)


def balance_score(rows: list[dict[str, float]]) -> tuple[float | None, str]:
    """Adversarial methods: mean |loss_d - 2 ln 2| over the log lines since the last checkpoint,
    how far the game is from balance (a D that wins or loses outright scores badly). A cheap
    proxy read from stats.jsonl, not a sample-quality metric; lower is better."""
    if not rows or not all("loss_d" in r for r in rows):
        return None, ""
    return sum(abs(r["loss_d"] - EQUILIBRIUM_LOSS_D) for r in rows) / len(rows), "mean |loss_d - 2 ln 2|"


def encoder(arch: Architecture) -> nn.Module:
    """The architecture's encoder: noise-input MLP for the toy data, Gaussian otherwise."""
    if arch.encoder_kind == "noise":
        return NoiseEncoder(arch.encoder, arch.x_shape)
    return GaussianEncoder(arch.encoder, arch.x_shape)


def decoder(arch: Architecture) -> Decoder:
    return Decoder(arch.decoder, arch.latent_dim, arch.x_shape if arch.untied_output_bias else None)


# PacGAN's packing (Lin et al. 2018) for the methods on ALI's joint game: their D judges groups.
PACK_KEY: dict[str, Key] = {
    "pack": Key(
        1,
        in_range(1, 16),
        "PacGAN packing: D judges groups of this many (x, z) pairs at once, each group all real or all fake; 1 = the paper",
    )
}


def joint_discriminator(arch: Architecture, pack: int = 1) -> JointDiscriminator:
    if pack > 1:
        return PackedJointDiscriminator(arch.d_x, arch.d_z, arch.d_joint, arch.x_shape, arch.latent_dim, pack)
    return JointDiscriminator(arch.d_x, arch.d_z, arch.d_joint, arch.x_shape, arch.latent_dim)


def marginal_discriminator(arch: Architecture) -> MarginalDiscriminator:
    return MarginalDiscriminator(arch.d_x, arch.d_joint, arch.x_shape)


# ALI's networks and optimizer groups, shared by the methods built on its joint game.
JOINT_OPTIMIZERS: dict[str, tuple[str, ...]] = {"generator": ("encoder", "decoder"), "discriminator": ("discriminator",)}


def joint_networks(arch: Architecture, settings: dict[str, Any] | None = None) -> dict[str, nn.Module]:
    """Encoder, decoder and joint discriminator D(x, z) of the architecture (packed where the
    settings' `pack` says)."""
    pack = (settings or {}).get("pack", 1)
    return {"encoder": encoder(arch), "decoder": decoder(arch), "discriminator": joint_discriminator(arch, pack)}


def reconstruction_error(target: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the squared error summed over each example's elements."""
    return (target - output).pow(2).flatten(1).sum(1).mean()
