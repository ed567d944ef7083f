"""Baseline (b) of docs/PAPER.md §4: a GAN (decoder against D(x)) plus an encoder that learns the inverse
mapping on the generator's own samples, minimising E||z - Gz(Gx(z))||^2."""

from __future__ import annotations

from ali.methods.adversarial import adversarial_update, update_mode
from ali.methods.base import (
    ADVERSARIAL_KEYS,
    Batch,
    Losses,
    Method,
    StepFn,
    StepInputs,
    balance_score,
    decoder,
    encoder,
    marginal_discriminator,
    reconstruction_error,
)


def make_gan_step(inputs: StepInputs, train_inverse: bool) -> StepFn:
    """The GAN step on the decoder with D(x); with `train_inverse`, the encoder's inverse loss too."""
    model, rt, prior = inputs.model, inputs.runtime, inputs.prior
    mode = update_mode(inputs.settings["update"], model["x_discriminator"], rt.precision)

    def step(batch: Batch, index: int) -> Losses:
        x = batch.x
        z = prior(x.shape[0], index, x.device)
        extra, out = None, {}
        with rt.autocast():
            x_tilde = model["decoder"](z)
            if train_inverse:
                inverse = reconstruction_error(z, model["encoder"](x_tilde.detach()).float())
                extra, out["inverse"] = inverse, inverse.detach()
        out.update(adversarial_update(model["x_discriminator"], (x,), (x_tilde,), inputs.optimizers, mode, extra, rt))
        return out

    return step


METHOD = Method(
    name="gan-inverse",
    title="GAN + inverse mapping",
    networks=lambda arch, settings: {
        "encoder": encoder(arch),
        "decoder": decoder(arch),
        "x_discriminator": marginal_discriminator(arch),
    },
    optimizers={"generator": ("encoder", "decoder"), "discriminator": ("x_discriminator",)},
    make_step=lambda inputs: make_gan_step(inputs, train_inverse=True),
    score=balance_score,
    keys=ADVERSARIAL_KEYS,
)
