"""Baseline (c) of docs/PAPER.md §4: a GAN first, then post-hoc inference with the ALI procedure.

Two phases of `steps` steps each, each on the full learning-rate schedule, so the GAN gets the
same training as every other method's generator: (1) the decoder against D(x); (2) the decoder
frozen (evaluation mode, no gradient), the encoder and a joint D(x, z) trained with ALI.
"""

from __future__ import annotations

import torch

from ali.methods.adversarial import adversarial_update, update_mode
from ali.methods.base import (
    ADVERSARIAL_KEYS,
    Batch,
    Losses,
    Method,
    StepFn,
    StepInputs,
    balance_score,
    joint_networks,
    marginal_discriminator,
)
from ali.methods.gan_inverse import make_gan_step


def make_step(inputs: StepInputs) -> StepFn:
    model, rt, prior = inputs.model, inputs.runtime, inputs.prior
    gan_step = make_gan_step(inputs, train_inverse=False)
    mode = update_mode(inputs.settings["update"], model["discriminator"], rt.precision)

    def step(batch: Batch, index: int) -> Losses:
        x = batch.x
        if index < inputs.phase_steps:
            return gan_step(batch, index)
        z = prior(x.shape[0], index, x.device)
        model["decoder"].eval()  # frozen: its batch-norm averages stay as the GAN phase left them
        with rt.autocast():
            with torch.no_grad():
                x_tilde = model["decoder"](z)
            z_hat = model["encoder"](x)
        return adversarial_update(model["discriminator"], (x, z_hat), (x_tilde, z), inputs.optimizers, mode, runtime=rt)

    return step


METHOD = Method(
    name="gan-posthoc",
    title="GAN + post-hoc encoder",
    networks=lambda arch, settings: {**joint_networks(arch), "x_discriminator": marginal_discriminator(arch)},
    optimizers={"generator": ("encoder", "decoder"), "discriminator": ("discriminator", "x_discriminator")},
    make_step=make_step,
    score=balance_score,
    keys=ADVERSARIAL_KEYS,
    phases=2,
)
