"""BiGAN (Donahue et al. 2017): ALI with a deterministic encoder, z = E(x).

The encoder keeps the architecture's layers; only its output differs: the mean mu(x) of the
Gaussian head (the log_sigma half of the last layer is computed and unused), or, for the toy
encoder that takes noise as an input, that input held at zero. Everything else is ALI's step.
"""

from __future__ import annotations

import torch
from torch import nn

from ali.methods import ali_joint
from ali.methods.base import (
    ADVERSARIAL_KEYS,
    JOINT_OPTIMIZERS,
    PACK_KEY,
    Method,
    balance_score,
    decoder,
    joint_discriminator,
)
from ali.nets.architectures import Architecture
from ali.nets.networks import GaussianEncoder, NoiseEncoder


class MeanEncoder(GaussianEncoder):
    """z = mu(x): the Gaussian encoder without its sampling step."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.moments(x)[0]


class NoiselessEncoder(NoiseEncoder):
    """z = MLP([x, 0]): the toy encoder with its noise input held at zero."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, torch.zeros_like(x)], dim=1))


def deterministic_encoder(arch: Architecture) -> nn.Module:
    if arch.encoder_kind == "noise":
        return NoiselessEncoder(arch.encoder, arch.x_shape)
    return MeanEncoder(arch.encoder, arch.x_shape)


METHOD = Method(
    name="bigan",
    title="BiGAN",
    networks=lambda arch, settings: {
        "encoder": deterministic_encoder(arch),
        "decoder": decoder(arch),
        "discriminator": joint_discriminator(arch, settings["pack"]),
    },
    optimizers=JOINT_OPTIMIZERS,
    make_step=ali_joint.make_step,
    score=balance_score,
    keys={**ADVERSARIAL_KEYS, **PACK_KEY},
)
