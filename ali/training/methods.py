"""One training step per method: ALI and the paper's three baselines (NOTES §3).

The adversarial update follows the authors' code: encoder and decoder run forward once, real and
fake pairs go through D as one concatenated batch, and D (on L_D) and the generators (on L_G) are
updated simultaneously from that single forward pass. Three ways to get the two sets of gradients:

- "fused": one backward of L_D. At D's inputs a per-pair factor (objective.
  generator_to_discriminator_grad_ratio) turns L_D's gradient into L_G's before it flows on into
  the generators. Exact when no layer of D mixes pairs (no batch norm in D); chosen automatically.
- "two-pass": backward L_D into D, then L_G into the generators (D with batch norm, or fp16).
- "alternating": D step, then a second D pass with the updated D for the generator step; the way
  most public ports do it, kept as an option and as the benchmark's reference.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from ali.training.model import Model
from ali.training.networks import has_batch_coupling
from ali.training.objective import ali_losses, generator_to_discriminator_grad_ratio

Losses = dict[str, torch.Tensor]
Optimizers = dict[str, torch.optim.Optimizer]


class _GradScaleHolder:
    scale: torch.Tensor | None = None


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; backward multiplies each pair's gradient by holder.scale (set after D ran)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, holder: _GradScaleHolder) -> torch.Tensor:  # type: ignore[override]
        ctx.holder = holder
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        scale = ctx.holder.scale.to(grad.dtype).view(-1, *([1] * (grad.dim() - 1)))
        return grad * scale, None


def adversarial_update(
    d_net: Callable[..., torch.Tensor],
    real: Sequence[torch.Tensor],
    fake: Sequence[torch.Tensor],
    optimizers: Optimizers,
    mode: str,
    extra_generator_loss: torch.Tensor | None = None,
) -> Losses:
    """Update D on L_D and the generators on L_G (+ extra) from real and fake D inputs.

    `real` and `fake` are the D inputs of each side: (x, Gz(x)) and (Gx(z), z) for ALI, (x,) and
    (Gx(z),) for a GAN. Whatever requires grad in them leads back to the generators.
    """
    batch = real[0].shape[0]
    joined = [torch.cat([r, f]) for r, f in zip(real, fake)]
    opt_d, opt_g = optimizers["discriminator"], optimizers["generator"]
    opt_d.zero_grad(set_to_none=True)
    opt_g.zero_grad(set_to_none=True)
    extra = extra_generator_loss if extra_generator_loss is not None else 0.0
    d_params = _params(opt_d)

    if mode == "alternating":
        loss_d, _ = ali_losses(*d_net(*[j.detach() for j in joined]).split(batch))
        _backward_into(loss_d, d_params)
        opt_d.step()
        _, loss_g = ali_losses(*d_net(*joined).split(batch))
        _backward_into(loss_g + extra, _params(opt_g))
    elif mode == "fused":
        holder = _GradScaleHolder()
        joined = [_ScaleGrad.apply(j, holder) if j.requires_grad else j for j in joined]
        real_logits, fake_logits = d_net(*joined).split(batch)
        loss_d, loss_g = ali_losses(real_logits, fake_logits)
        holder.scale = generator_to_discriminator_grad_ratio(real_logits, fake_logits)
        (loss_d + extra).backward()
        opt_d.step()
    elif mode == "two-pass":
        loss_d, loss_g = ali_losses(*d_net(*joined).split(batch))
        _backward_into(loss_d, d_params, retain_graph=True)
        _backward_into(loss_g + extra, _params(opt_g))
        opt_d.step()
    else:
        raise ValueError(f"unknown update mode {mode!r}")
    opt_g.step()
    return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}


def _params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def _backward_into(loss: torch.Tensor, params: list[torch.Tensor], retain_graph: bool = False) -> None:
    """Gradients of `loss` for `params` only (D's weight gradients are skipped on the G pass)."""
    live = [p for p in params if p.requires_grad]
    grads = torch.autograd.grad(loss, live, retain_graph=retain_graph, allow_unused=True)
    for p, g in zip(live, grads):
        if g is not None:
            p.grad = g if p.grad is None else p.grad + g


def update_mode(config_update: str, discriminator: nn.Module) -> str:
    """The fastest exact mode: fused unless a D layer mixes the pairs of a batch."""
    if config_update == "alternating":
        return "alternating"
    return "two-pass" if has_batch_coupling(discriminator) else "fused"


def ali_step(model: Model, optimizers: Optimizers, x: torch.Tensor, recon_weight: float, mode: str) -> Losses:
    """ALI: real pairs (x, Gz(x)) against fake pairs (Gx(z), z); optional ALICE x-cycle term."""
    z = model.sample_prior(x.shape[0], x.device)
    z_hat = model.encoder(x)
    x_tilde = model.decoder(z)
    extra, out = None, {}
    if recon_weight > 0:
        recon = reconstruction_error(x, model.decoder(z_hat))
        extra, out["recon"] = recon_weight * recon, recon.detach()
    out.update(adversarial_update(model.discriminator, (x, z_hat), (x_tilde, z), optimizers, mode, extra))
    return out


def gan_step(model: Model, optimizers: Optimizers, x: torch.Tensor, mode: str, train_inverse: bool) -> Losses:
    """GAN on the decoder with D(x); with `train_inverse`, the encoder learns z ~ Gz(Gx(z))."""
    z = model.sample_prior(x.shape[0], x.device)
    x_tilde = model.decoder(z)
    extra, out = None, {}
    if train_inverse:
        # Encoder trained on the generator's own samples: E||z - Gz(Gx(z))||^2 (NOTES §3 (b)).
        inverse = reconstruction_error(z, model.encoder(x_tilde.detach()))
        extra, out["inverse"] = inverse, inverse.detach()
    out.update(adversarial_update(model.x_discriminator, (x,), (x_tilde,), optimizers, mode, extra))
    return out


def posthoc_step(model: Model, optimizers: Optimizers, x: torch.Tensor, mode: str) -> Losses:
    """ALI procedure with the GAN decoder frozen: only the encoder and the joint D learn."""
    z = model.sample_prior(x.shape[0], x.device)
    model.decoder.eval()
    with torch.no_grad():
        x_tilde = model.decoder(z)
    return adversarial_update(model.discriminator, (x, model.encoder(x)), (x_tilde, z), optimizers, mode)


def vae_step(model: Model, optimizers: Optimizers, x: torch.Tensor) -> Losses:
    """Negative ELBO: -log p(x|z) + KL(q(z|x) || N(0, I)), reparametrised."""
    mu, log_sigma = model.encoder.moments(x)
    z = mu + torch.exp(log_sigma) * torch.randn_like(mu)
    nll = model.likelihood.nll(x, model.decoder(z)).mean()
    kl = 0.5 * (mu**2 + torch.exp(2 * log_sigma) - 1 - 2 * log_sigma).sum(1).mean()
    optimizers["generator"].zero_grad(set_to_none=True)
    (nll + kl).backward()
    optimizers["generator"].step()
    return {"nll": nll.detach(), "kl": kl.detach()}


def reconstruction_error(target: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the squared error summed over each example's elements."""
    return (target - output).pow(2).flatten(1).sum(1).mean()


def train_step(model: Model, optimizers: Optimizers, x: torch.Tensor, step: int, total_steps: int) -> Losses:
    """Dispatch on the run's method; gan-posthoc switches from GAN to ALI after its GAN phase."""
    cfg = model.config
    model.train()
    if cfg.method == "ali":
        return ali_step(model, optimizers, x, cfg.recon_weight, update_mode(cfg.update, model.discriminator))
    if cfg.method == "gan-inverse":
        return gan_step(model, optimizers, x, update_mode(cfg.update, model.x_discriminator), train_inverse=True)
    if cfg.method == "gan-posthoc":
        if step < round(cfg.posthoc_fraction * total_steps):
            return gan_step(model, optimizers, x, update_mode(cfg.update, model.x_discriminator), train_inverse=False)
        return posthoc_step(model, optimizers, x, update_mode(cfg.update, model.discriminator))
    if cfg.method == "vae":
        return vae_step(model, optimizers, x)
    raise ValueError(f"unknown method {cfg.method!r}")
