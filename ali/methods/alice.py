"""ALICE (Li et al. 2017): ALI plus a conditional-entropy term, in either of its two forms.

- alice_form="explicit": L_G + recon_weight * E||x - Gx(Gz(x))||^2, and with z_cycle_weight > 0
  also z_cycle_weight * E||z - Gz(Gx(z))||^2.
- alice_form="adversarial": a second discriminator D_xx tells (x, x) from (x, Gx(Gz(x)));
  the generators add recon_weight times its non-saturating loss. D_xx has D(x)'s layers on the
  channel-wise concatenation of its two images.

z_adversarial_weight > 0 (either form) adds a discriminator, D_z, on the codes alone: prior
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
from typing import Any

import torch
from torch import nn

from ali.errors import AliError
from ali.keys import Key, in_range, one_of
from ali.methods.adversarial import add_grads, adversarial_update, optimizer_step, update_mode
from ali.methods.base import (
    ADVERSARIAL_KEYS,
    JOINT_OPTIMIZERS,
    PACK_KEY,
    Batch,
    Losses,
    Method,
    StepFn,
    StepInputs,
    balance_score,
    joint_networks,
    reconstruction_error,
)
from ali.methods.objective import ali_losses
from ali.nets.architectures import Architecture
from ali.nets.layers import running_stats_frozen
from ali.nets.networks import MarginalDiscriminator

KEYS = {
    **ADVERSARIAL_KEYS,
    **PACK_KEY,  # the joint D only; the side discriminators judge single examples
    "alice_form": Key(
        "explicit", one_of("explicit", "adversarial"), "ALICE's term: an explicit cycle loss, or a discriminator on (x, x) pairs"
    ),
    "recon_weight": Key(
        1.0, in_range(0, lo_open=True), "weight of the x-cycle term (explicit) or of D_xx's generator loss (adversarial)"
    ),
    "z_cycle_weight": Key(0.0, in_range(0), "explicit form: weight of the z-cycle term ||z - Gz(Gx(z))||^2 (0 = off)"),
    "z_adversarial_weight": Key(
        0.0, in_range(0), "weight of D_z's loss, a discriminator on the codes alone (prior z vs Gz(x); 0 = off), in either form"
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


def check_settings(settings: dict[str, Any]) -> None:
    """Refuse the explicit form's keys under the adversarial form, where nothing would read them."""
    if settings["alice_form"] != "adversarial":
        return
    ignored = [k for k, neutral in EXPLICIT_ONLY.items() if settings[k] != neutral]
    if ignored:
        raise AliError(
            f"{', '.join(f'{k}={settings[k]}' for k in ignored)} belong(s) to alice_form=explicit and would be ignored "
            f"under alice_form=adversarial; add {' '.join(f'--set {k}={EXPLICIT_ONLY[k]}' for k in ignored)}"
        )


# The explicit form's own keys and the values under which they change nothing.
EXPLICIT_ONLY = {"z_cycle_weight": 0.0, "recon_trains": "both"}


def networks(arch: Architecture, settings: dict) -> dict[str, nn.Module]:
    nets = joint_networks(arch, settings)
    if settings["alice_form"] == "adversarial":
        pair_shape = (2 * arch.x_shape[0], *arch.x_shape[1:])
        nets["xx_discriminator"] = MarginalDiscriminator(arch.d_x, arch.d_joint, pair_shape)
    if settings["z_adversarial_weight"] > 0:  # D(z)'s layers and the joint ones, on z alone
        latent_shape = (arch.latent_dim, 1, 1) if len(arch.x_shape) == 3 else (arch.latent_dim,)
        nets["z_discriminator"] = MarginalDiscriminator(arch.d_z, arch.d_joint, latent_shape)
    return nets


def make_step(inputs: StepInputs) -> StepFn:
    """The explicit form's step, or the adversarial form's; either may add D_z."""
    return (_adversarial_step if inputs.settings["alice_form"] == "adversarial" else _explicit_step)(inputs)


def _explicit_step(inputs: StepInputs) -> StepFn:
    model, rt, prior, cfg = inputs.model, inputs.runtime, inputs.prior, inputs.settings
    mode = update_mode(cfg["update"], model["discriminator"], rt.precision)
    weight, z_weight = cfg["recon_weight"], cfg["z_cycle_weight"]
    detach_code = cfg["recon_trains"] == "decoder"

    def step(batch: Batch, index: int) -> Losses:
        x = batch.x
        z = prior(x.shape[0], index, x.device)
        with rt.autocast():
            z_hat, x_tilde, x_cycle = _forward(model, x, z, detach_code, cfg)
            recon = reconstruction_error(x, x_cycle.float())
            extra, out = weight * recon, {"recon": recon.detach()}
            if z_weight > 0:
                z_cycle = reconstruction_error(z, model["encoder"](x_tilde).float())
                extra, out["z_cycle"] = extra + z_weight * z_cycle, z_cycle.detach()
            sides = _code_side(model, x, z, z_hat, cfg, out)
        extra = extra + sum(w * loss_g for _, _, loss_g, w in sides)
        return _update(inputs, mode, x, z, z_hat, x_tilde, extra, sides, out)

    return step


def _adversarial_step(inputs: StepInputs) -> StepFn:
    model, rt, prior, cfg = inputs.model, inputs.runtime, inputs.prior, inputs.settings
    mode = update_mode(cfg["update"], model["discriminator"], rt.precision)

    def step(batch: Batch, index: int) -> Losses:
        x = batch.x
        z = prior(x.shape[0], index, x.device)
        with rt.autocast():
            z_hat, x_tilde, x_cycle = _forward(model, x, z, False, cfg)
            pairs = torch.cat([torch.cat([x, x], 1), torch.cat([x, x_cycle], 1)])
            loss_dxx, loss_gxx = ali_losses(*model["xx_discriminator"](pairs).float().split(x.shape[0]))
            out = {"loss_dxx": loss_dxx.detach(), "loss_gxx": loss_gxx.detach()}
            sides = [("xx_discriminator", loss_dxx, loss_gxx, cfg["recon_weight"]), *_code_side(model, x, z, z_hat, cfg, out)]
        extra = sum(w * loss_g for _, _, loss_g, w in sides)
        return _update(inputs, mode, x, z, z_hat, x_tilde, extra, sides, out)

    return step


# A side discriminator's (network name, its L_D, the generators' L_G, the weight of that L_G).
Side = tuple[str, torch.Tensor, torch.Tensor, float]


def _forward(model, x: torch.Tensor, z: torch.Tensor, detach_code: bool, cfg: dict) -> tuple[torch.Tensor, ...]:
    """Gz(x), Gx(z) and the cycle Gx(Gz(x)) (its decoder pass outside the running averages on
    decoder_bn_stats=prior)."""
    z_hat = model["encoder"](x)
    x_tilde = model["decoder"](z)
    with running_stats_frozen(model["decoder"]) if cfg["decoder_bn_stats"] == "prior" else nullcontext():
        x_cycle = model["decoder"](z_hat.detach() if detach_code else z_hat)
    return z_hat, x_tilde, x_cycle


def _code_side(model, x: torch.Tensor, z: torch.Tensor, z_hat: torch.Tensor, cfg: dict, out: Losses) -> list[Side]:
    """D_z on prior z (real) against the encoder's codes (fake), where z_adversarial_weight > 0."""
    if cfg["z_adversarial_weight"] <= 0:
        return []
    codes = torch.cat([z, z_hat]).view(2 * z.shape[0], -1, *([1, 1] if x.dim() == 4 else []))
    loss_dz, loss_gz = ali_losses(*model["z_discriminator"](codes).float().split(z.shape[0]))
    out.update(loss_dz=loss_dz.detach(), loss_gz=loss_gz.detach())
    return [("z_discriminator", loss_dz, loss_gz, cfg["z_adversarial_weight"])]


def _update(inputs: StepInputs, mode: str, x, z, z_hat, x_tilde, extra, sides: list[Side], out: Losses) -> Losses:
    """The joint game's update with the side terms in L_G, then each side D on its own L_D."""
    model, rt = inputs.model, inputs.runtime
    # Each side D's own gradient, taken before the shared backward frees the graph; scaled like
    # every loss under fp16, since the scaler's step divides gradients by its scale.
    scale = rt.scaler.scale if rt.scaler is not None else (lambda loss: loss)
    side_grads = []
    for name, loss_d, _, _ in sides:
        params = list(model[name].parameters())
        side_grads.append((name, params, torch.autograd.grad(scale(loss_d), params, retain_graph=True)))
    out.update(adversarial_update(model["discriminator"], (x, z_hat), (x_tilde, z), inputs.optimizers, mode, extra, rt))
    for name, params, grads in side_grads:
        opt = inputs.optimizers[SIDE_OPTIMIZERS[name]]
        opt.zero_grad(set_to_none=True)  # drop what L_G's backward left in the side D
        add_grads(params, grads)
        optimizer_step([opt], rt)
    return out


SIDE_OPTIMIZERS = {"xx_discriminator": "discriminator_xx", "z_discriminator": "discriminator_z"}


METHOD = Method(
    name="alice",
    title="ALI + cycle (ALICE)",
    networks=networks,
    optimizers={**JOINT_OPTIMIZERS, **{opt: (net,) for net, opt in SIDE_OPTIMIZERS.items()}},
    make_step=make_step,
    score=balance_score,
    keys=KEYS,
    check_settings=check_settings,
)
