"""The networks and optimizers of one run, built from its config and architecture table."""

from __future__ import annotations

import torch
from torch import nn

from ali.config import TrainConfig
from ali.training.architectures import ARCHITECTURES, Architecture
from ali.training.networks import (
    Decoder,
    GaussianEncoder,
    JointDiscriminator,
    MarginalDiscriminator,
    NoiseEncoder,
    init_weights,
)


class GaussianLikelihood(nn.Module):
    """p(x|z) = N(Gx(z), diag(exp(log_sigma))^2) with a learned per-dimension scale (VAE baseline)."""

    def __init__(self, width: int):
        super().__init__()
        self.log_sigma = nn.Parameter(torch.full((width,), -1.0))

    def nll(self, x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) per example, summed over dimensions."""
        var = torch.exp(2 * self.log_sigma)
        return (0.5 * (x - mean) ** 2 / var + self.log_sigma + 0.5 * torch.log(torch.tensor(2 * torch.pi))).sum(1)


class Model(nn.Module):
    """All networks of a run. `generator` params = encoder + decoder (+ likelihood) for one Adam.

    ali:          encoder, decoder, discriminator (joint)
    gan-inverse:  encoder, decoder, x_discriminator
    gan-posthoc:  encoder, decoder, x_discriminator (GAN phase), discriminator (ALI phase)
    vae:          encoder (Gaussian), decoder, likelihood
    """

    def __init__(self, config: TrainConfig, arch: Architecture):
        super().__init__()
        self.config, self.arch = config, arch
        width = arch.x_width
        untied = arch.x_shape if arch.untied_output_bias else None
        if config.method == "vae":
            self.encoder = GaussianEncoder(arch.vae_encoder or arch.encoder, width)
            self.likelihood = GaussianLikelihood(width)
        elif arch.encoder_kind == "noise":
            self.encoder = NoiseEncoder(arch.encoder, width)
        else:
            self.encoder = GaussianEncoder(arch.encoder, width)
        self.decoder = Decoder(arch.decoder, arch.latent_dim, untied)
        if config.method in ("ali", "gan-posthoc"):
            self.discriminator = JointDiscriminator(arch.d_x, arch.d_z, arch.d_joint, width, arch.latent_dim)
        if config.method in ("gan-inverse", "gan-posthoc"):
            self.x_discriminator = MarginalDiscriminator(arch.d_x, arch.d_joint, width)
        init_weights(self, config.init_std)

    def generator_parameters(self) -> list[nn.Parameter]:
        nets = [self.encoder, self.decoder] + ([self.likelihood] if hasattr(self, "likelihood") else [])
        return [p for net in nets for p in net.parameters()]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        nets = [getattr(self, name) for name in ("discriminator", "x_discriminator") if hasattr(self, name)]
        return [p for net in nets for p in net.parameters()]

    def sample_prior(self, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.randn(n, self.arch.latent_dim, device=device)


def set_learning_rates(optimizers: dict[str, torch.optim.Optimizer], lr: float, d_lr_factor: float) -> None:
    """The generators' lr on every optimizer; the discriminators' (TTUR) scaled by d_lr_factor."""
    for name, optimizer in optimizers.items():
        for group in optimizer.param_groups:
            group["lr"] = lr * (d_lr_factor if name == "discriminator" else 1.0)


def build_model(config: TrainConfig) -> tuple[Model, dict[str, torch.optim.Optimizer]]:
    """The model and its optimizers: Adam(lr, (beta1, beta2)) for the generators, lr * d_lr_factor for D."""
    model = Model(config, ARCHITECTURES[config.arch])
    # fused=True: one kernel for all tensors; the per-tensor loop was a third of a toy step's time.
    adam = dict(lr=config.lr, betas=(config.beta1, config.beta2), fused=True)
    optimizers = {"generator": torch.optim.Adam(model.generator_parameters(), **adam)}
    if model.discriminator_parameters():
        optimizers["discriminator"] = torch.optim.Adam(model.discriminator_parameters(), **adam)
    set_learning_rates(optimizers, config.lr, config.d_lr_factor)
    return model, optimizers
