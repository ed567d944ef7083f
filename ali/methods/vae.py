"""Baseline (d) of docs/PAPER.md §4: a VAE with the same encoder (with a Gaussian head) and decoder.

The loss is the negative ELBO per example, -log p(x|z) summed over every data dimension plus
KL(q(z|x) || N(0, I)), averaged over the batch. The likelihood suits the data:
- 2-D toy data: a Gaussian with a learned scale per dimension (the data are real-valued).
- Images (pixels in [0, 1], sigmoid decoder): a Bernoulli on the decoder's logits, i.e. binary
  cross-entropy summed over pixels, as in Kingma & Welling's MNIST experiments. For grey levels
  it is not a normalised density (a continuous Bernoulli would be), but it has the right scale
  against the KL term and needs no variance to learn, which a Gaussian on [0, 1] pixels does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ali.methods.adversarial import optimizer_step
from ali.methods.base import Batch, Losses, Method, StepFn, StepInputs, decoder
from ali.nets.architectures import Architecture
from ali.nets.networks import GaussianEncoder


class GaussianLikelihood(nn.Module):
    """p(x|z) = N(Gx(z), diag(exp(log_sigma))^2) with a learned per-dimension scale (flat data)."""

    def __init__(self, width: int):
        super().__init__()
        self.log_sigma = nn.Parameter(torch.full((width,), -1.0))

    def nll(self, x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) per example, summed over dimensions."""
        var = torch.exp(2 * self.log_sigma)
        return (0.5 * (x - mean) ** 2 / var + self.log_sigma + 0.5 * math.log(2 * math.pi)).sum(1)


def bernoulli_nll(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) per example for pixels in [0, 1]: binary cross-entropy summed over all pixels."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def gaussian_kl(mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per example."""
    return 0.5 * (mu**2 + torch.exp(2 * log_sigma) - 1 - 2 * log_sigma).sum(1)


def networks(arch: Architecture, settings: dict) -> dict[str, nn.Module]:
    nets: dict[str, nn.Module] = {"encoder": GaussianEncoder(arch.vae_encoder or arch.encoder, arch.x_shape)}
    nets["decoder"] = decoder(arch)
    if len(arch.x_shape) == 1:
        nets["likelihood"] = GaussianLikelihood(arch.x_shape[0])
    return nets


def make_step(inputs: StepInputs) -> StepFn:
    model, rt = inputs.model, inputs.runtime
    opt = inputs.optimizers["generator"]
    images = "likelihood" not in model

    def step(batch: Batch, index: int) -> Losses:
        x = batch.x
        with rt.autocast():
            mu, log_sigma = model["encoder"].moments(x)
            mu, log_sigma = mu.float(), log_sigma.float()
            z = mu + torch.exp(log_sigma) * torch.randn_like(mu)
            out = (model["decoder"].logits(z) if images else model["decoder"](z)).float()
        nll = (bernoulli_nll(x, out) if images else model["likelihood"].nll(x, out)).mean()
        kl = gaussian_kl(mu, log_sigma).mean()
        opt.zero_grad(set_to_none=True)
        loss = nll + kl
        (rt.scaler.scale(loss) if rt.scaler is not None else loss).backward()
        optimizer_step([opt], rt)
        return {"nll": nll.detach(), "kl": kl.detach()}

    return step


def elbo_score(rows: list[dict[str, float]]) -> tuple[float | None, str]:
    """Mean negative ELBO (nll + kl) over the log lines since the last checkpoint; lower is better."""
    if not rows or not all("nll" in r and "kl" in r for r in rows):
        return None, ""
    return sum(r["nll"] + r["kl"] for r in rows) / len(rows), "mean nll + kl"


METHOD = Method(
    name="vae",
    title="VAE",
    networks=networks,
    optimizers={"generator": ("encoder", "decoder", "likelihood")},
    make_step=make_step,
    score=elbo_score,
    draws_prior=False,
)
