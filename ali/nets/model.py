"""A model: the named networks of one run, as a mapping every other part iterates over.

`Model` is an `nn.ModuleDict` ("encoder", "decoder", "discriminator", ...), so a checkpoint's
keys are `<network>.<parameter>`, device moves, layout changes, compilation and replica setup
walk `model.items()`, and no module writes the list of network names out again. Which networks
exist is the method's choice (ali.methods).
"""

from __future__ import annotations

import torch
from torch import nn

from ali.nets.architectures import Architecture


class Model(nn.ModuleDict):
    """The networks of a run, with the architecture they were built from.

    `config` is the run's TrainConfig when the model was built for training (checkpoint restore
    checks it against a checkpoint's); None for a model built by hand.
    """

    def __init__(self, nets: dict[str, nn.Module], arch: Architecture, method: str, config: object = None):
        super().__init__(nets)
        self.arch, self.method, self.config = arch, method, config

    def sample_prior(self, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.randn(n, self.arch.latent_dim, device=device)

    def parameters_of(self, names: tuple[str, ...]) -> list[nn.Parameter]:
        """The parameters of the named networks, in the order given (one optimizer's list)."""
        return [p for name in names if name in self for p in self[name].parameters()]
