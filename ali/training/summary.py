"""`ali train --dry-run`: each network's layers, output shapes and parameter counts."""

from __future__ import annotations

import torch
from torch import nn

from ali.nets.layers import count_parameters
from ali.nets.model import Model


def _layer_rows(net: nn.Module, *inputs: torch.Tensor) -> list[str]:
    """One line per leaf module: name, module, output shape (batch dim dropped), parameters."""
    rows: list[str] = []
    hooks = []
    for name, module in net.named_modules():
        if len(list(module.children())) == 0:

            def hook(mod, _inp, out, name=name):  # bind the name now, not at call time
                text = f"{type(mod).__name__}({mod.extra_repr()})"[:64]
                rows.append(f"  {name:<10} {text:<64} -> {str(tuple(out.shape[1:])):<16} {count_parameters(mod):>10,}")

            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            net(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return rows


def parameter_counts(model: Model) -> dict[str, int]:
    """Parameters of each network, and of all discriminators together."""
    counts = {name: count_parameters(net) for name, net in model.trained_networks()}
    counts["discriminators"] = sum(n for name, n in counts.items() if "discriminator" in name)
    return counts


def describe(model: Model) -> str:
    """A readable listing of every network, run on a dummy batch of 2 in evaluation mode."""
    model.eval()
    conditions = getattr(model.config, "condition_dim", 1)
    lines = []
    for name, net in model.trained_networks():
        n = 2 * getattr(net, "pack", 1)  # a packed D takes whole groups
        dummy = {
            "x": torch.zeros(n, *model.arch.x_shape),
            "z": torch.zeros(n, model.arch.latent_dim),
            "y": torch.zeros(n, conditions),
        }
        own_x = getattr(net, "x_shape", None)  # a marginal D on (x, x) pairs or on codes
        inputs = [torch.zeros(n, *own_x) if key == "x" and own_x else dummy[key] for key in getattr(net, "INPUTS", ())]
        lines.append(f"{name}: input {[tuple(i.shape[1:]) for i in inputs]}, {count_parameters(net):,} parameters")
        if inputs:
            lines.extend(_layer_rows(net, *inputs))
    return "\n".join(lines)
