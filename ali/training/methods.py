"""One training step per method: ALI and the paper's three baselines (NOTES §3).

The adversarial update follows the authors' code: encoder and decoder run forward once, real and
fake pairs go through D as one concatenated batch, and D (on L_D) and the generators (on L_G) are
updated simultaneously from that single forward pass. Three ways to get the two sets of gradients:

- "fused": one backward of L_D. At D's inputs a per-pair factor (objective.
  generator_to_discriminator_grad_ratio) turns L_D's gradient into L_G's before it flows on into
  the generators. Exact when no layer of D mixes pairs (no batch norm in D); chosen automatically.
- "two-pass": backward L_D into D, then L_G into the generators (D with batch norm, or fp16,
  where the per-pair ratio exp(|logit|) would overflow fp16 gradients).
- "alternating": D step, then a second D pass with the updated D for the generator step; the way
  most public ports do it, kept as an option (benchmarks/reference_step.py is the plain version).

Execution details live in a `StepRuntime` (ali.training.precision) attached to the model:
forward passes run under its autocast (bf16/fp16) with losses computed in fp32, fp16 losses are
scaled by its GradScaler, and data-parallel runs average gradients through its all_reduce right
before each optimizer step. Nothing here reads a value back to the host.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, Sequence

import torch
from torch import nn

from ali.training.model import Model
from ali.training.networks import has_batch_coupling, running_stats_frozen
from ali.training.objective import ali_losses, generator_to_discriminator_grad_ratio
from ali.training.precision import StepRuntime, make_runtime
from ali.training.prior import draw_prior

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
    runtime: StepRuntime | None = None,
) -> Losses:
    """Update D on L_D and the generators on L_G (+ extra) from real and fake D inputs.

    `real` and `fake` are the D inputs of each side: (x, Gz(x)) and (Gx(z), z) for ALI, (x,) and
    (Gx(z),) for a GAN. Whatever requires grad in them leads back to the generators.
    """
    rt = runtime or _FP32
    batch = real[0].shape[0]
    joined = [torch.cat([r, f]) for r, f in zip(real, fake)]
    opt_d, opt_g = optimizers["discriminator"], optimizers["generator"]
    opt_d.zero_grad(set_to_none=True)
    opt_g.zero_grad(set_to_none=True)
    extra = extra_generator_loss if extra_generator_loss is not None else 0.0
    d_params = _params(opt_d)
    scale = rt.scaler.scale if rt.scaler is not None else (lambda loss: loss)

    def logits(*inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with rt.autocast():
            out = d_net(*inputs)
        return out.float().split(batch)  # losses and the fused ratio in fp32 under any autocast

    if mode == "alternating":
        loss_d, _ = ali_losses(*logits(*[j.detach() for j in joined]))
        _backward_into(scale(loss_d), d_params)
        _optimizer_step([opt_d], rt)
        _, loss_g = ali_losses(*logits(*joined))
        _backward_into(scale(loss_g + extra), _params(opt_g))
        _optimizer_step([opt_g], rt)
    elif mode == "fused":
        if rt.scaler is not None:
            raise ValueError("the fused update is not safe with fp16 loss scaling; use two-pass")
        holder = _GradScaleHolder()
        joined = [_ScaleGrad.apply(j, holder) if j.requires_grad else j for j in joined]
        real_logits, fake_logits = logits(*joined)
        loss_d, loss_g = ali_losses(real_logits, fake_logits)
        holder.scale = generator_to_discriminator_grad_ratio(real_logits, fake_logits)
        (loss_d + extra).backward()
        _optimizer_step([opt_d, opt_g], rt)
    elif mode == "two-pass":
        loss_d, loss_g = ali_losses(*logits(*joined))
        _backward_into(scale(loss_d), d_params, retain_graph=True)
        _backward_into(scale(loss_g + extra), _params(opt_g))
        _optimizer_step([opt_d, opt_g], rt)
    else:
        raise ValueError(f"unknown update mode {mode!r}")
    return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}


_FP32 = StepRuntime()


def _optimizer_step(optimizers: list[torch.optim.Optimizer], rt: StepRuntime) -> None:
    """Average gradients over ranks (one collective for all of them), then step (via the scaler in fp16)."""
    if rt.all_reduce is not None:
        rt.all_reduce([p.grad for opt in optimizers for p in _params(opt) if p.grad is not None])
    for opt in optimizers:
        if rt.scaler is not None:
            rt.scaler.step(opt)
        else:
            opt.step()


def _params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def _backward_into(loss: torch.Tensor, params: list[torch.Tensor], retain_graph: bool = False) -> None:
    """Gradients of `loss` for `params` only (D's weight gradients are skipped on the G pass)."""
    live = [p for p in params if p.requires_grad]
    grads = torch.autograd.grad(loss, live, retain_graph=retain_graph, allow_unused=True)
    for p, g in zip(live, grads):
        if g is not None:
            p.grad = g if p.grad is None else p.grad + g


def update_mode(config_update: str, discriminator: nn.Module, precision: str = "fp32") -> str:
    """The fastest exact mode: fused unless a D layer mixes the pairs of a batch, or fp16."""
    if config_update == "alternating":
        return "alternating"
    return "two-pass" if precision == "fp16" or has_batch_coupling(discriminator) else "fused"


def ali_step(
    model: Model,
    optimizers: Optimizers,
    x: torch.Tensor,
    z: torch.Tensor,
    recon_weight: float,
    mode: str,
    runtime: StepRuntime | None = None,
    recon_trains: str = "both",
    decoder_bn_stats: str = "prior",
) -> Losses:
    """ALI: real pairs (x, Gz(x)) against fake pairs (Gx(z), z); optional ALICE x-cycle term.

    recon_trains="decoder" stops the cycle's gradient at the code: the decoder learns to map each
    code back to its x, while the encoder's codes are shaped by the adversarial game alone.
    decoder_bn_stats="prior" keeps the cycle's decoder pass out of the decoder's batch-norm
    running averages. Why: sampling decodes prior codes with those averages, so they should be the
    prior batches' statistics, not a blend with the statistics of the encoder's codes.
    """
    rt = runtime or _FP32
    extra, out = None, {}
    with rt.autocast():
        z_hat = model.encoder(x)
        x_tilde = model.decoder(z)
        if recon_weight > 0:
            code = z_hat.detach() if recon_trains == "decoder" else z_hat
            with running_stats_frozen(model.decoder) if decoder_bn_stats == "prior" else nullcontext():
                x_cycle = model.decoder(code)
            recon = reconstruction_error(x, x_cycle.float())
            extra, out["recon"] = recon_weight * recon, recon.detach()
    out.update(adversarial_update(model.discriminator, (x, z_hat), (x_tilde, z), optimizers, mode, extra, rt))
    return out


def gan_step(
    model: Model,
    optimizers: Optimizers,
    x: torch.Tensor,
    z: torch.Tensor,
    mode: str,
    train_inverse: bool,
    runtime: StepRuntime | None = None,
) -> Losses:
    """GAN on the decoder with D(x); with `train_inverse`, the encoder learns z ~ Gz(Gx(z))."""
    rt = runtime or _FP32
    extra, out = None, {}
    with rt.autocast():
        x_tilde = model.decoder(z)
        if train_inverse:
            # Encoder trained on the generator's own samples: E||z - Gz(Gx(z))||^2 (NOTES §3 (b)).
            inverse = reconstruction_error(z, model.encoder(x_tilde.detach()).float())
            extra, out["inverse"] = inverse, inverse.detach()
    out.update(adversarial_update(model.x_discriminator, (x,), (x_tilde,), optimizers, mode, extra, rt))
    return out


def posthoc_step(
    model: Model, optimizers: Optimizers, x: torch.Tensor, z: torch.Tensor, mode: str, runtime: StepRuntime | None = None
) -> Losses:
    """ALI procedure with the GAN decoder frozen: only the encoder and the joint D learn."""
    rt = runtime or _FP32
    model.decoder.eval()
    with rt.autocast():
        with torch.no_grad():
            x_tilde = model.decoder(z)
        z_hat = model.encoder(x)
    return adversarial_update(model.discriminator, (x, z_hat), (x_tilde, z), optimizers, mode, runtime=rt)


def vae_step(model: Model, optimizers: Optimizers, x: torch.Tensor, runtime: StepRuntime | None = None) -> Losses:
    """Negative ELBO: -log p(x|z) + KL(q(z|x) || N(0, I)), reparametrised."""
    rt = runtime or _FP32
    with rt.autocast():
        mu, log_sigma = model.encoder.moments(x)
        mu, log_sigma = mu.float(), log_sigma.float()
        z = mu + torch.exp(log_sigma) * torch.randn_like(mu)
        mean = model.decoder(z).float()
    nll = model.likelihood.nll(x, mean).mean()
    kl = 0.5 * (mu**2 + torch.exp(2 * log_sigma) - 1 - 2 * log_sigma).sum(1).mean()
    optimizers["generator"].zero_grad(set_to_none=True)
    loss = nll + kl
    (rt.scaler.scale(loss) if rt.scaler is not None else loss).backward()
    _optimizer_step([optimizers["generator"]], rt)
    return {"nll": nll.detach(), "kl": kl.detach()}


def reconstruction_error(target: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the squared error summed over each example's elements."""
    return (target - output).pow(2).flatten(1).sum(1).mean()


def step_runtime(model: Model, device: torch.device) -> StepRuntime:
    """The runtime attached by the trainer (precision.attach_runtime), or one built from the config."""
    rt = model.__dict__.get("runtime")
    if rt is None:
        rt = model.__dict__["runtime"] = make_runtime(model.config.precision, device)
    return rt


def train_step(model: Model, optimizers: Optimizers, x: torch.Tensor, step: int, total_steps: int) -> Losses:
    """Dispatch on the run's method; gan-posthoc switches from GAN to ALI after its GAN phase."""
    cfg = model.config
    rt = step_runtime(model, x.device)
    model.train()
    modes = rt.cache.get("modes")
    if modes is None:  # module walks cost more than a toy step's math: decide once per run
        prec = cfg.precision
        modes = rt.cache["modes"] = {
            name: update_mode(cfg.update, getattr(model, name), prec)
            for name in ("discriminator", "x_discriminator")
            if hasattr(model, name)
        }
    z = draw_prior(model, rt.cache, x.shape[0], step, x.device) if cfg.method != "vae" else None
    if cfg.method == "ali":
        out = ali_step(
            model, optimizers, x, z, cfg.recon_weight, modes["discriminator"], rt, cfg.recon_trains, cfg.decoder_bn_stats
        )
    elif cfg.method == "gan-inverse":
        out = gan_step(model, optimizers, x, z, modes["x_discriminator"], True, rt)
    elif cfg.method == "gan-posthoc":
        if step < round(cfg.posthoc_fraction * total_steps):
            out = gan_step(model, optimizers, x, z, modes["x_discriminator"], False, rt)
        else:
            out = posthoc_step(model, optimizers, x, z, modes["discriminator"], rt)
    elif cfg.method == "vae":
        out = vae_step(model, optimizers, x, rt)
    else:
        raise ValueError(f"unknown method {cfg.method!r}")
    if rt.scaler is not None:
        rt.scaler.update()
    return out
