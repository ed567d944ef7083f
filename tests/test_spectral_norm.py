"""spectral_norm (every adversarial method): each discriminator's linear and conv layers are
spectrally normalised, the generators are not, and a checkpoint restores the estimate."""

from __future__ import annotations

import torch
from torch.nn.utils import parametrize

from ali import checkpoint
from ali.config import make_config
from ali.presets import PRESETS
from ali.training.build import build_model


def _layers(net: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in net.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d))]


def test_every_discriminator_layer_and_no_generator_layer_is_spectrally_normalised():
    values = {**PRESETS["mnist"], "alice_form": "adversarial", "spectral_norm": True, "precision": "fp32"}
    torch.manual_seed(0)
    model, _ = build_model(make_config(values))
    discriminators = [name for name in model if name.endswith("discriminator")]
    assert set(discriminators) == {"discriminator", "xx_discriminator", "z_discriminator"}
    for name, net in model.items():
        normalised = [parametrize.is_parametrized(m, "weight") for m in _layers(net)]
        assert all(normalised) if name in discriminators else not any(normalised), name

    def largest_singular_values(net: torch.nn.Module) -> list[float]:
        return [float(torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)) for m in _layers(net)]

    d = model["discriminator"].eval()  # a fresh D: its estimate is of the weights it starts with
    assert all(abs(s - 1.0) < 0.1 for s in largest_singular_values(d))
    d.train()
    x, z = torch.rand(8, 1, 28, 28), torch.randn(8, 32)
    for _ in range(30):  # the power iteration refines its estimate on each training pass
        d(x, z)
    assert all(abs(s - 1.0) < 0.05 for s in largest_singular_values(d))
    plain, _ = build_model(make_config({**values, "spectral_norm": False}))
    assert not any(parametrize.is_parametrized(m, "weight") for m in plain.modules())


def test_a_checkpoint_restores_the_spectral_estimate():
    config = make_config({**PRESETS["mnist"], "spectral_norm": True, "precision": "fp32"})
    torch.manual_seed(0)
    model, optimizers = build_model(config)
    d = model["discriminator"].train()
    x, z = torch.rand(8, 1, 28, 28), torch.randn(8, 32)
    for _ in range(3):
        d(x, z)
    tensors, header = checkpoint.parse_checkpoint(checkpoint.checkpoint_bytes(model, optimizers, 3, {}))
    torch.manual_seed(1)
    restored, _ = build_model(config)
    checkpoint.restore(tensors, header, restored, restore_rng=False)
    d.eval(), restored["discriminator"].eval()
    torch.testing.assert_close(restored["discriminator"](x, z), d(x, z), rtol=0, atol=0)
