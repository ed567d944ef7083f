"""The adversarial update shared by every method with a discriminator (docs/PAPER.md §2).

As in the authors' code: the generators run forward once, real and fake D inputs go through D as
one concatenated batch, and D (on L_D) and the generators (on L_G) are updated simultaneously
from that single forward pass. Three ways to get the two sets of gradients:

- "fused": one backward of L_D. At D's inputs a per-pair factor (objective.
  generator_to_discriminator_grad_ratio) turns L_D's gradient into L_G's before it flows on into
  the generators. Exact when no layer of D mixes pairs (no batch norm in D), and while L_D's
  gradient is far from underflow: a step where D is saturated on some pair (|logit| beyond
  SATURATED_LOGIT on the side that matters) runs as "two-pass" instead, which is exact in every
  regime. Chosen automatically.
- "two-pass": backward L_D into D, then L_G into the generators (D with batch norm, or fp16,
  where the per-pair ratio would overflow fp16 gradients).
- "alternating": D step, then a second D pass with the updated D for the generator step; the way
  most public ports do it, kept as an option.

Forward passes run under the runtime's autocast (bf16/fp16) with losses computed in fp32; fp16
losses are scaled by its GradScaler; data-parallel runs average gradients through its
all_reduce right before each optimizer step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ali.methods.base import Losses, Optimizers, StepRuntime
from ali.methods.objective import ali_losses, generator_to_discriminator_grad_ratio
from ali.nets.layers import has_batch_coupling

# Beyond this exponent of the fused ratio (a for real pairs, -b for fake ones), L_D's gradient at
# the logit, sigmoid(-40) = 4e-18, still has full float32 precision through D's backward, but
# past about 87 it turns subnormal and then zero while L_G's stays near 1: the fused factor
# would multiply a gradient that has already lost its digits.
SATURATED_LOGIT = 40.0


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


def update_mode(config_update: str, discriminator: nn.Module, precision: str = "fp32") -> str:
    """config `update`: "alternating" and "two-pass" as named; "simultaneous", the fastest exact
    mode: fused unless a D layer mixes the pairs of a batch, or fp16."""
    if config_update in ("alternating", "two-pass"):
        return config_update
    return "two-pass" if precision == "fp16" or has_batch_coupling(discriminator) else "fused"


def adversarial_update(
    d_net: Callable[..., torch.Tensor],
    real: Sequence[torch.Tensor],
    fake: Sequence[torch.Tensor],
    optimizers: Optimizers,
    mode: str,
    extra_generator_loss: torch.Tensor | None = None,
    runtime: StepRuntime | None = None,
    extra_discriminator_loss: torch.Tensor | None = None,
) -> Losses:
    """Update D on L_D (+ extra_discriminator_loss, a term of D's parameters only) and the
    generators on L_G (+ extra_generator_loss) from real and fake D inputs.

    `real` and `fake` are the D inputs of each side: (x, Gz(x)) and (Gx(z), z) for ALI, (x,) and
    (Gx(z),) for a GAN. Whatever requires grad in them leads back to the generators.
    """
    rt = runtime or StepRuntime()
    batch = real[0].shape[0]
    joined = [torch.cat([r, f]) for r, f in zip(real, fake)]
    opt_d, opt_g = optimizers["discriminator"], optimizers["generator"]
    opt_d.zero_grad(set_to_none=True)
    opt_g.zero_grad(set_to_none=True)
    extra = extra_generator_loss if extra_generator_loss is not None else 0.0
    extra_d = extra_discriminator_loss if extra_discriminator_loss is not None else 0.0
    d_params, g_params = _params(opt_d), _params(opt_g)
    scale = rt.scaler.scale if rt.scaler is not None else (lambda loss: loss)

    def logits(*inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with rt.autocast():
            out = d_net(*inputs)
        return out.float().split(batch)  # losses and the fused ratio in fp32 under any autocast

    if mode == "alternating":
        loss_d, _ = ali_losses(*logits(*[j.detach() for j in joined]))
        _backward_into(scale(loss_d + extra_d), d_params)
        optimizer_step([opt_d], rt)
        _, loss_g = ali_losses(*logits(*joined))
        _backward_into(scale(loss_g + extra), g_params)
        optimizer_step([opt_g], rt)
    elif mode == "fused":
        if rt.scaler is not None:
            raise ValueError("the fused update is not safe with fp16 loss scaling; use two-pass")
        holder = _GradScaleHolder()
        joined = [_ScaleGrad.apply(j, holder) if j.requires_grad else j for j in joined]
        real_logits, fake_logits = logits(*joined)
        loss_d, loss_g = ali_losses(real_logits, fake_logits)
        # One host read per step (free on a CPU, where ops run synchronously anyway).
        if bool(torch.cat([real_logits, -fake_logits]).detach().max() > SATURATED_LOGIT):
            holder.scale = real_logits.new_ones(2 * batch)  # on the logits' device and dtype
            _backward_into(loss_d + extra_d, d_params, retain_graph=True)
            _backward_into(loss_g + extra, g_params)
        else:
            holder.scale = generator_to_discriminator_grad_ratio(real_logits, fake_logits)
            (loss_d + extra_d + extra).backward()
        optimizer_step([opt_d, opt_g], rt)
    elif mode == "two-pass":
        loss_d, loss_g = ali_losses(*logits(*joined))
        two_pass_step(optimizers, loss_d + extra_d, loss_g + extra, rt)
    else:
        raise ValueError(f"unknown update mode {mode!r}")
    return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}


def two_pass_step(optimizers: Optimizers, loss_d: torch.Tensor, loss_g: torch.Tensor, rt: StepRuntime) -> None:
    """D's gradients from loss_d, the generators' from loss_g (each for its own parameters only,
    from one shared graph), then both optimizers step. Gradients are expected zeroed."""
    scale = rt.scaler.scale if rt.scaler is not None else (lambda loss: loss)
    opt_d, opt_g = optimizers["discriminator"], optimizers["generator"]
    _backward_into(scale(loss_d), _params(opt_d), retain_graph=True)
    _backward_into(scale(loss_g), _params(opt_g))
    optimizer_step([opt_d, opt_g], rt)


def optimizer_step(optimizers: list[torch.optim.Optimizer], rt: StepRuntime) -> None:
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
    add_grads(live, torch.autograd.grad(loss, live, retain_graph=retain_graph, allow_unused=True))


def add_grads(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor | None]) -> None:
    """Add each gradient to its parameter's .grad, in the parameter's memory layout.

    The one place a step hands gradients over outside of `.backward()`. torch.autograd.grad
    returns a gradient in whatever strides its backward produced: NCHW for a channels_last conv
    weight whose kernel covers its whole input (a dense-equivalent layer). Fused Adam reads a
    parameter and its gradient as flat arrays, so a gradient in other strides updates the wrong
    elements on the CPU and is refused on CUDA. `.backward()` itself keeps the layout (autograd's
    gradient-layout contract); here it is restored by a copy into the parameter's strides."""
    for p, g in zip(params, grads):
        if g is None:
            continue
        if g.stride() != p.stride():
            g = torch.empty_like(p).copy_(g)  # empty_like keeps a dense tensor's strides
        p.grad = g if p.grad is None else p.grad + g
