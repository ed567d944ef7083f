"""The ALI objective exactly as the authors computed it, on D's logits (docs/PAPER.md §1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ali_losses(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Discriminator and generator losses from logits a = D(x, Gz(x)) and b = D(Gx(z), z).

        L_D = E[softplus(-a)] + E[softplus(b)]     = -E[log sigma(a)] - E[log(1 - sigma(b))]
        L_G = E[softplus(a)]  + E[softplus(-b)]    (paper eq. 4: labels swapped, non-saturating)

    The same pair serves the GAN baselines, with a = D(x) and b = D(Gx(z)).
    """
    loss_d = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    loss_g = F.softplus(real_logits).mean() + F.softplus(-fake_logits).mean()
    return loss_d, loss_g


def generator_to_discriminator_grad_ratio(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Per pair, (dL_G/dlogit) / (dL_D/dlogit): -exp(a) for real pairs, -exp(-b) for fake pairs.

    The fused step backpropagates L_D once and multiplies the gradient reaching D's inputs by
    this ratio, which turns it into L_G's gradient, exact when no D layer mixes samples. The
    caller keeps the exponent small (ali.methods.adversarial.SATURATED_LOGIT), where L_D's
    gradient still has full precision; the cap only keeps the ratio finite.
    """
    logits = torch.cat([real_logits, -fake_logits]).detach().float()
    return -torch.exp(logits.clamp(max=80.0))
