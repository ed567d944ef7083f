"""A model: the named networks of one run, as a mapping every other part iterates over.

`Model` is an `nn.ModuleDict` ("encoder", "decoder", "discriminator", ...), so a checkpoint's
keys are `<network>.<parameter>`, device moves, layout changes, compilation and replica setup
walk `model.items()`, and no module writes the list of network names out again. Which networks
exist is the method's choice (ali.methods).

A run may also keep exponential moving averages of some networks' weights (`average_encoder`,
`average_decoder`, ...: the method's `averaged`; config key `ema_decay`): no optimizer sees
them, checkpoints carry them like any network, and `with_averages()` gives the model that
samples and is evaluated with them.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ali.nets.architectures import Architecture

AVERAGE_PREFIX = "average_"


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

    def trained_networks(self) -> list[tuple[str, nn.Module]]:
        """The networks an optimizer trains: every one but the weight averages."""
        return [(name, net) for name, net in self.items() if not name.startswith(AVERAGE_PREFIX)]

    @property
    def averaged(self) -> tuple[str, ...]:
        """The networks with a weight average kept beside them."""
        return tuple(name[len(AVERAGE_PREFIX) :] for name in self if name.startswith(AVERAGE_PREFIX))

    def add_averages(self, names: tuple[str, ...]) -> None:
        """Keep a moving average of the named networks' weights, starting from their current weights."""
        for name in names:
            if name in self:
                self[AVERAGE_PREFIX + name] = copy.deepcopy(self[name]).requires_grad_(False)

    @torch.no_grad()
    def reset_averages(self) -> None:
        """Set every average to its network's current weights (after a data-dependent init)."""
        for name in self.averaged:
            self[AVERAGE_PREFIX + name].load_state_dict(self[name].state_dict())

    @torch.no_grad()
    def update_averages(self, decay: float) -> None:
        """average <- decay * average + (1 - decay) * weights for every parameter; buffers (batch
        norm's running statistics) are copied, since they already are running averages. So the
        averaged weights are evaluated with the live weights' statistics, as most weight-average
        implementations do (a pass over data with the averaged weights would recompute them)."""
        for name in self.averaged:
            live, average = self[name], self[AVERAGE_PREFIX + name]
            torch._foreach_lerp_(list(average.parameters()), list(live.parameters()), 1.0 - decay)
            for kept, current in zip(average.buffers(), live.buffers()):
                kept.copy_(current)

    def with_averages(self) -> Model:
        """The model that samples and is evaluated: each averaged network replaced by its
        average (the same module objects, nothing copied); the model itself when none is kept."""
        if not self.averaged:
            return self
        nets = {name: net for name, net in self.trained_networks()}
        for name in self.averaged:
            nets[name] = self[AVERAGE_PREFIX + name]
        evaluated = Model(nets, self.arch, self.method, self.config)
        evaluated.train(self.training)
        return evaluated
