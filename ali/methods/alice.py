"""ALICE's explicit cycle (Li et al. 2017) on top of ALI: L_G + recon_weight * E||x - Gx(Gz(x))||^2.

recon_trains="decoder" stops the cycle's gradient at the code: the decoder learns to map each
code back to its x, while the encoder's codes are shaped by the adversarial game alone (the
project's toy recipe, named "ALI + cycle" there; docs/RESULTS.md). "both" is ALICE's form.

decoder_bn_stats="prior" keeps the cycle's decoder pass out of the decoder's batch-norm running
averages: sampling decodes prior codes with those averages, so they should be the prior
batches' statistics, not a blend with the statistics of the encoder's codes.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from ali.methods.adversarial import adversarial_update, update_mode
from ali.methods.base import ADVERSARIAL_KEYS, Losses, Method, StepFn, StepInputs, balance_score
from ali.methods.base import decoder, encoder, joint_discriminator, reconstruction_error
from ali.nets.layers import running_stats_frozen


def make_step(inputs: StepInputs) -> StepFn:
    model, rt, prior, cfg = inputs.model, inputs.runtime, inputs.prior, inputs.settings
    mode = update_mode(cfg["update"], model["discriminator"], rt.precision)
    weight, detach_code = cfg["recon_weight"], cfg["recon_trains"] == "decoder"
    frozen = cfg["decoder_bn_stats"] == "prior"

    def step(x: torch.Tensor, index: int) -> Losses:
        z = prior(x.shape[0], index, x.device)
        with rt.autocast():
            z_hat = model["encoder"](x)
            x_tilde = model["decoder"](z)
            code = z_hat.detach() if detach_code else z_hat
            with running_stats_frozen(model["decoder"]) if frozen else nullcontext():
                x_cycle = model["decoder"](code)
            recon = reconstruction_error(x, x_cycle.float())
        out = adversarial_update(
            model["discriminator"], (x, z_hat), (x_tilde, z), inputs.optimizers, mode, weight * recon, rt
        )
        return {"recon": recon.detach(), **out}

    return step


METHOD = Method(
    name="alice",
    title="ALI + cycle (ALICE explicit)",
    networks=lambda arch: {"encoder": encoder(arch), "decoder": decoder(arch), "discriminator": joint_discriminator(arch)},
    optimizers={"generator": ("encoder", "decoder"), "discriminator": ("discriminator",)},
    make_step=make_step,
    score=balance_score,
    keys=(*ADVERSARIAL_KEYS, "recon_weight", "recon_trains", "decoder_bn_stats"),
)
