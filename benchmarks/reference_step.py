"""The straightforward ALI step public ports use: the benchmark's reference and the tests' oracle.

Alternating updates with separate D passes, NCHW, fp32: encoder and decoder run once; D runs on the
real pairs and on the fake pairs separately for D's update, then again (with the updated D) for the
generators' update, whose backward also fills D's gradients (thrown away at the next zero_grad).
This is the same math as `ali.methods.adversarial.adversarial_update(..., mode="alternating")` when D
has no batch norm (batch norm would see real and fake halves separately here, jointly there).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ali.nets.model import Model


def reference_step(model: Model, optimizers: dict[str, torch.optim.Optimizer], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """One ALI training step, D then G; returns L_D (before D's update) and L_G (after it)."""
    model.train()
    d_net, opt_d, opt_g = model.discriminator, optimizers["discriminator"], optimizers["generator"]
    z = model.sample_prior(x.shape[0], x.device)
    z_hat = model.encoder(x)
    x_tilde = model.decoder(z)

    opt_d.zero_grad()
    real, fake = d_net(x, z_hat.detach()), d_net(x_tilde.detach(), z)
    loss_d = F.softplus(-real).mean() + F.softplus(fake).mean()
    loss_d.backward()
    opt_d.step()

    opt_g.zero_grad()
    real, fake = d_net(x, z_hat), d_net(x_tilde, z)
    loss_g = F.softplus(real).mean() + F.softplus(-fake).mean()
    loss_g.backward()
    opt_g.step()
    return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}


@torch.no_grad()
def reference_reconstruct(model: Model, x: torch.Tensor) -> torch.Tensor:
    """Inference the plain way: eval mode, no_grad, x -> z -> x in fp32."""
    model.eval()
    return model.decoder(model.encoder(x))
