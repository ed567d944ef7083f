"""ALICE (Li et al. 2017): ALI plus a conditional-entropy term, in either of its two forms.

- alice_form="explicit": L_G + recon_weight * E||x - Gx(Gz(x))||^2, and with z_cycle_weight > 0
  also z_cycle_weight * E||z - Gz(Gx(z))||^2.
- alice_form="adversarial": a second discriminator D_xx tells (x, x) from (x, Gx(Gz(x)));
  the generators add recon_weight times its non-saturating loss. D_xx has D(x)'s layers on the
  channel-wise concatenation of its two images.

z_adversarial_weight > 0 (explicit form) adds a third discriminator, D_z, on the codes alone: prior
z against Gz(x), the encoder adding z_adversarial_weight times its non-saturating loss (the
adversarial autoencoder's prior term, Makhzani et al. 2016). Why: the cycle term rewards codes that
tell images apart and the joint D judges a code only together with its image, so a class the
decoder rarely draws is recognised as real by its x alone and its codes drift into the prior's
tails, where prior samples seldom reach (docs/RESULTS.md: MNIST's ones at ||mu||^2/d = 3).
D_z sees only z, so codes off the prior are penalised whatever their image.

recon_trains="decoder" (explicit form) stops the cycle's gradient at the code: the decoder
learns to map each code back to its x, while the encoder's codes are shaped by the adversarial
game alone (the project's toy recipe, "ALI + cycle"; docs/RESULTS.md). "both" is ALICE's form.

decoder_bn_stats="prior" keeps the cycle's decoder pass out of the decoder's batch-norm running
averages: sampling decodes prior codes with those averages, so they should be the prior
batches' statistics, not a blend with the statistics of the encoder's codes.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from ali.errors import AliError
from ali.keys import Key, in_range, one_of
from ali.methods.adversarial import adversarial_update, optimizer_step, update_mode
from ali.methods.base import (
    ADVERSARIAL_KEYS,
    JOINT_OPTIMIZERS,
    Losses,
    Method,
    StepFn,
    StepInputs,
    balance_score,
    joint_networks,
    reconstruction_error,
)
from ali.nets.architectures import Architecture
from ali.nets.layers import running_stats_frozen
from ali.nets.networks import MarginalDiscriminator
from ali.training.objective import ali_losses

KEYS = {
    **ADVERSARIAL_KEYS,
    "alice_form": Key(
        "explicit", one_of("explicit", "adversarial"), "ALICE's term: an explicit cycle loss, or a discriminator on (x, x) pairs"
    ),
    "recon_weight": Key(
        1.0, in_range(0, lo_open=True), "weight of the x-cycle term (explicit) or of D_xx's generator loss (adversarial)"
    ),
    "z_cycle_weight": Key(0.0, in_range(0), "explicit form: weight of the z-cycle term ||z - Gz(Gx(z))||^2 (0 = off)"),
    "z_adversarial_weight": Key(
        0.0, in_range(0), "explicit form: weight of D_z's loss, a discriminator on the codes alone (prior z vs Gz(x); 0 = off)"
    ),
    "recon_trains": Key(
        "both", one_of("both", "decoder"), "explicit form: which nets the x-cycle trains, both (ALICE) or the decoder only"
    ),
    "decoder_bn_stats": Key(
        "prior",
        one_of("prior", "all"),
        "which decoder passes update its batch-norm running averages: the prior batch's only, or the cycle pass's too (torch's default)",
    ),
}


def networks(arch: Architecture, settings: dict) -> dict[str, nn.Module]:
    if settings["alice_form"] == "adversarial" and settings["z_adversarial_weight"] > 0:
        raise AliError("z_adversarial_weight belongs to alice_form=explicit; drop it or set alice_form=explicit")
    nets = joint_networks(arch)
    if settings["alice_form"] == "adversarial":
        pair_shape = (2 * arch.x_shape[0], *arch.x_shape[1:])
        nets["xx_discriminator"] = MarginalDiscriminator(arch.d_x, arch.d_joint, pair_shape)
    elif settings["z_adversarial_weight"] > 0:  # D(z)'s layers and the joint ones, on z alone
        latent_shape = (arch.latent_dim, 1, 1) if len(arch.x_shape) == 3 else (arch.latent_dim,)
        nets["z_discriminator"] = MarginalDiscriminator(arch.d_z, arch.d_joint, latent_shape)
    return nets


def make_step(inputs: StepInputs) -> StepFn:
    model, rt, prior, cfg = inputs.model, inputs.runtime, inputs.prior, inputs.settings
    mode = update_mode(cfg["update"], model["discriminator"], rt.precision)
    weight, z_weight = cfg["recon_weight"], cfg["z_cycle_weight"]
    adversarial = cfg["alice_form"] == "adversarial"
    side = "xx_discriminator" if adversarial else "z_discriminator" if cfg["z_adversarial_weight"] > 0 else None
    detach_code = cfg["recon_trains"] == "decoder" and not adversarial
    frozen = cfg["decoder_bn_stats"] == "prior"

    def step(x: torch.Tensor, index: int) -> Losses:
        z = prior(x.shape[0], index, x.device)
        out: Losses = {}
        with rt.autocast():
            z_hat = model["encoder"](x)
            x_tilde = model["decoder"](z)
            code = z_hat.detach() if detach_code else z_hat
            with running_stats_frozen(model["decoder"]) if frozen else nullcontext():
                x_cycle = model["decoder"](code)
            if adversarial:
                d_xx = model["xx_discriminator"]
                pairs = torch.cat([torch.cat([x, x], 1), torch.cat([x, x_cycle], 1)])
                real, fake = d_xx(pairs).float().split(x.shape[0])
                loss_dxx, loss_gxx = ali_losses(real, fake)
                extra = weight * loss_gxx
                out.update(loss_dxx=loss_dxx.detach(), loss_gxx=loss_gxx.detach())
            else:
                recon = reconstruction_error(x, x_cycle.float())
                extra = weight * recon
                out["recon"] = recon.detach()
            if z_weight > 0 and not adversarial:
                z_cycle = reconstruction_error(z, model["encoder"](x_tilde).float())
                extra = extra + z_weight * z_cycle
                out["z_cycle"] = z_cycle.detach()
            if side == "z_discriminator":
                codes = torch.cat([z, z_hat]).view(2 * x.shape[0], -1, *([1, 1] if x.dim() == 4 else []))
                real, fake = model[side](codes).float().split(x.shape[0])
                loss_side, loss_gz = ali_losses(real, fake)
                extra = extra + cfg["z_adversarial_weight"] * loss_gz
                out.update(loss_dz=loss_side.detach(), loss_gz=loss_gz.detach())
            elif side:
                loss_side = loss_dxx
        if side:  # the side D's own gradient (L_D), taken before the shared backward frees the graph
            side_params = list(model[side].parameters())
            side_grads = torch.autograd.grad(loss_side, side_params, retain_graph=True)
        out.update(adversarial_update(model["discriminator"], (x, z_hat), (x_tilde, z), inputs.optimizers, mode, extra, rt))
        if side:
            opt = inputs.optimizers[SIDE_OPTIMIZERS[side]]
            opt.zero_grad(set_to_none=True)  # drop what L_G's backward left in the side D
            backward_into_grads(side_params, side_grads)
            optimizer_step([opt], rt)
        return out

    return step


SIDE_OPTIMIZERS = {"xx_discriminator": "discriminator_xx", "z_discriminator": "discriminator_z"}


def backward_into_grads(params: list[torch.Tensor], grads: tuple[torch.Tensor, ...]) -> None:
    for p, g in zip(params, grads):
        p.grad = g


METHOD = Method(
    name="alice",
    title="ALI + cycle (ALICE)",
    networks=networks,
    optimizers={**JOINT_OPTIMIZERS, **{opt: (net,) for net, opt in SIDE_OPTIMIZERS.items()}},
    make_step=make_step,
    score=balance_score,
    keys=KEYS,
)
