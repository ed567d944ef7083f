"""The image architectures against the paper's Tables 3-6 (docs/PAPER.md §3): every layer's output size."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from ali.cli import main
from ali.config import make_config
from ali.methods import METHODS
from ali.nets.architectures import ARCHITECTURES
from ali.nets.layers import Dropout, Maxout
from ali.training.build import build_model
from ali.training.summary import parameter_counts
from tests.stepping import train_step

# (channels, spatial size) after every conv / transposed conv, in table order. Maxout layers of
# CIFAR's D are listed with the conv's own width (the table's); the width after maxout is half.
EXPECTED = {
    "cifar10": {
        "encoder": [(32, 28), (64, 13), (128, 10), (256, 4), (512, 1), (512, 1), (128, 1)],
        "decoder": [(256, 4), (128, 10), (64, 13), (32, 28), (32, 32), (32, 32), (3, 32)],
        "dx": [(32, 28), (64, 13), (128, 10), (256, 4), (512, 1)],
        "dz": [(512, 1), (512, 1)],
        "joint": [(1024, 1), (1024, 1), (1, 1)],
    },
    "svhn": {
        "encoder": [(32, 28), (64, 13), (128, 10), (256, 4), (512, 1), (512, 1), (512, 1)],
        "decoder": [(256, 4), (128, 10), (64, 13), (32, 28), (32, 32), (32, 32), (3, 32)],
        "dx": [(32, 28), (64, 13), (128, 10), (256, 4), (512, 1)],
        "dz": [(512, 1), (512, 1)],
        "joint": [(1024, 1), (1024, 1), (1, 1)],
    },
    "celeba64": {
        "encoder": [(64, 63), (128, 29), (256, 13), (256, 4), (512, 1), (512, 1)],
        "decoder": [(512, 4), (256, 13), (256, 29), (128, 63), (64, 64), (3, 64)],
        "dx": [(64, 63), (128, 29), (256, 13), (256, 4), (512, 1)],
        "dz": [(1024, 1), (1024, 1)],
        "joint": [(2048, 1), (2048, 1), (1, 1)],
    },
    "imagenet64": {
        "encoder": [(64, 31), (64, 28), (128, 13), (128, 10), (256, 4), (256, 1), (2048, 1), (2048, 1), (512, 1)],
        "decoder": [(2048, 1), (256, 1), (256, 4), (128, 10), (128, 13), (64, 28), (64, 31), (64, 64), (3, 64)],
        "dx": [(64, 31), (64, 28), (128, 13), (128, 10), (256, 4), (256, 1)],
        "dz": [(2048, 1), (2048, 1)],
        "joint": [(4096, 1), (4096, 1), (1, 1)],
    },
    "mnist": {
        "encoder": [(32, 13), (64, 5), (256, 1), (64, 1)],
        "decoder": [(64, 5), (32, 13), (1, 28)],
        "dx": [(32, 13), (64, 5), (256, 1)],
        "dz": [(256, 1), (256, 1)],
        "joint": [(512, 1), (512, 1), (1, 1)],
    },
}
# The joint D's input width: the code's, where maxout halves (docs/PAPER.md §3, the code's deviations).
JOINT_INPUT = {"cifar10": 512, "svhn": 1024, "celeba64": 1536, "imagenet64": 2304, "mnist": 512}


def _model(name: str, batch: int = 4, method: str = "ali"):
    arch = ARCHITECTURES[name]
    return build_model(make_config({"arch": name, "latent_dim": arch.latent_dim, "batch_size": batch, "method": method}))


def _conv_outputs(net: nn.Module, *inputs: torch.Tensor) -> list[tuple[int, int]]:
    shapes: list[tuple[int, int]] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: shapes.append((out.shape[1], out.shape[-1])))
        for m in net.modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    ]
    with torch.no_grad():
        net(*inputs)
    for h in hooks:
        h.remove()
    return shapes


@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_layer_matches_the_table(name: str) -> None:
    model, _ = _model(name)
    model.eval()
    arch = model.arch
    x = torch.rand(2, *arch.x_shape)
    z = torch.randn(2, arch.latent_dim)
    want = EXPECTED[name]
    assert _conv_outputs(model.encoder, x) == want["encoder"]
    assert _conv_outputs(model.decoder, z) == want["decoder"]
    d = model.discriminator
    assert _conv_outputs(d.dx, x) == want["dx"]
    assert _conv_outputs(d.dz, z.view(2, -1, 1, 1)) == want["dz"]
    assert d.joint[[isinstance(m, nn.Conv2d) for m in d.joint].index(True)].in_channels == JOINT_INPUT[name]
    assert model.encoder(x).shape == (2, arch.latent_dim)
    assert model.decoder(z).shape == (2, *arch.x_shape)
    out = model.decoder(z).detach()
    assert float(out.min()) >= 0 and float(out.max()) <= 1  # sigmoid output
    assert d(x, z).shape == (2,)


@pytest.mark.parametrize(
    "name,method",
    # every architecture once; every method on the small conv net; on CIFAR-10 (maxout) the
    # VAE, whose likelihood once failed on 3-channel images
    [(name, "ali") for name in EXPECTED if name != "mnist"] + [("mnist", m) for m in METHODS] + [("cifar10", "vae")],
)
def test_training_steps_change_every_network(name: str, method: str) -> None:
    torch.manual_seed(0)
    model, optimizers = _model(name, batch=4, method=method)
    before = {n: [p.detach().clone() for p in net.parameters()] for n, net in model.items()}
    x = torch.rand(4, *model.arch.x_shape)
    phases = METHODS[method].phases
    for step in [p * model.config.steps for p in range(phases)]:  # one step in each phase
        losses = train_step(model, optimizers, x, step)
        assert all(torch.isfinite(v).all() for v in losses.values()), losses
    for n, params in before.items():
        after = list(model[n].parameters())
        changed = sum(not torch.equal(a, b) for a, b in zip(after, params))
        assert changed == len(params), f"{name}/{method}: {len(params) - changed} of {n}'s tensors did not change"


def _signature(net: nn.Module) -> list[str]:
    """Per conv layer, in order: dropout before it, its bias, batch norm after it, activation."""
    rows, drop = [], 0.0
    modules = [m for m in net.modules() if not list(m.children())]
    for i, m in enumerate(modules):
        if isinstance(m, Dropout):
            drop = m.p
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            parts = [f"drop{drop:g}"] if drop else []
            parts.append("bias" if m.bias is not None else "nobias")
            act = "linear"
            for nxt in modules[i + 1 :]:
                if isinstance(nxt, (nn.Conv2d, nn.ConvTranspose2d, Dropout)):
                    break
                if isinstance(nxt, nn.BatchNorm2d):
                    parts.append("bn")
                elif isinstance(nxt, nn.LeakyReLU):
                    act = f"lrelu{nxt.negative_slope:g}"
                elif isinstance(nxt, Maxout):
                    act = f"maxout{nxt.pieces}"
                elif isinstance(nxt, nn.Sigmoid):
                    act = "sigmoid"
            rows.append(" ".join([*parts, act]))
            drop = 0.0
    return rows


def _g(n: int, slope: float) -> list[str]:
    return [f"nobias bn lrelu{slope:g}"] * n


# docs/PAPER.md §3 written out: dropout rates and positions, bias, batch norm, activation of every conv.
# (A bias before batch norm is cancelled by it, so such convs have none.) The decoders' last
# conv has no bias of its own: the untied per-pixel bias replaces it, before the sigmoid.
PINNED = {
    "cifar10": {
        "encoder": _g(6, 0.1) + ["bias linear"],
        "decoder": _g(6, 0.1) + ["nobias sigmoid"],
        "dx": ["drop0.2 bias maxout2", "drop0.5 bias maxout2", "bias maxout2", "drop0.5 bias maxout2", "drop0.5 bias maxout2"],
        "dz": ["drop0.2 nobias maxout2", "drop0.5 nobias maxout2"],
        "joint": ["drop0.5 bias maxout2", "drop0.5 bias maxout2", "drop0.5 bias linear"],
    },
    "svhn": {
        "encoder": _g(6, 0.01) + ["bias linear"],
        "decoder": _g(6, 0.01) + ["nobias sigmoid"],
        "dx": ["drop0.2 bias lrelu0.01"] + ["drop0.2 nobias bn lrelu0.01"] * 4,
        "dz": ["drop0.2 nobias lrelu0.01"] * 2,
        "joint": ["drop0.2 bias lrelu0.01"] * 2 + ["drop0.2 bias linear"],
    },
    "celeba64": {
        "encoder": _g(5, 0.02) + ["bias linear"],
        "decoder": _g(5, 0.02) + ["nobias sigmoid"],
        "dx": ["drop0.2 bias lrelu0.02"] + ["drop0.2 nobias bn lrelu0.02"] * 4,
        "dz": ["drop0.2 bias lrelu0.02"] * 2,
        "joint": ["drop0.2 bias lrelu0.02"] * 2 + ["drop0.2 bias linear"],
    },
    "imagenet64": {
        "encoder": _g(8, 0.01) + ["bias linear"],
        "decoder": _g(8, 0.01) + ["nobias sigmoid"],
        "dx": ["drop0.2 bias lrelu0.01"] + ["drop0.2 nobias bn lrelu0.01"] * 5,
        "dz": ["drop0.2 bias lrelu0.01"] * 2,
        "joint": ["drop0.2 bias lrelu0.01"] * 2 + ["drop0.2 bias linear"],
    },
}


@pytest.mark.parametrize("name", list(PINNED))
def test_dropout_batch_norm_activations_and_biases_match_the_paper(name: str) -> None:
    model, _ = _model(name)
    want, d = PINNED[name], model["discriminator"]
    assert _signature(model["encoder"]) == want["encoder"]
    assert _signature(model["decoder"]) == want["decoder"]
    assert _signature(d.dx) == want["dx"]
    assert _signature(d.dz) == want["dz"]
    assert _signature(d.joint) == want["joint"]


def test_toy_networks_match_the_paper() -> None:
    """docs/PAPER.md §4: encoder [x, eps] -> 2 x (400, BN, ReLU) -> 2; decoder 4 x (400, BN, ReLU) -> 2,
    linear; D: 3 maxout layers of 200 units with 5 pieces, no dropout, no batch norm."""
    model, _ = _model("toy")
    layers = lambda net: [
        type(m).__name__ + (f"{m.out_features}" if isinstance(m, nn.Linear) else "")
        for m in net.modules()
        if not list(m.children()) and not isinstance(m, nn.Sequential)
    ]  # noqa: E731
    assert layers(model["encoder"]) == ["Linear400", "BatchNorm1d", "ReLU", "Linear400", "BatchNorm1d", "ReLU", "Linear2"]
    assert layers(model["decoder"]) == ["Linear400", "BatchNorm1d", "ReLU"] * 4 + ["Linear2"]
    assert layers(model["discriminator"]) == ["Linear1000", "Maxout"] * 3 + ["Linear1"]
    assert all(m.pieces == 5 for m in model["discriminator"].modules() if isinstance(m, Maxout))
    assert model["encoder"].net[0].in_features == 4


def test_untied_bias_starts_the_decoder_at_the_data_mean() -> None:
    model, _ = _model("mnist")
    x = torch.zeros(500, 1, 28, 28)
    x[:, :, 8:20, 8:20] = torch.rand(500, 1, 12, 12)  # a blank border, as in MNIST
    model.decoder.init_untied_bias(x)
    model.eval()
    out = model.decoder(torch.randn(8, model.arch.latent_dim))
    # Weights ~ N(0, 0.01) leave the pre-bias output near 0, so Gx(z) ~ the clipped mean image.
    assert torch.allclose(out, x.mean(0).clamp(1e-3, 1 - 1e-3).expand_as(out), atol=0.05)
    assert torch.isfinite(model.decoder.untied.bias).all()


@pytest.mark.parametrize("name", ["cifar10", "mnist"])
def test_dry_run_prints_layers_and_ends_with_parameter_counts(name: str, tmp_path, capsys) -> None:
    arch = ARCHITECTURES[name]
    rc = main(
        [
            "train",
            "--config",
            "toy25",
            "--set",
            f"arch={name}",
            "--set",
            f"latent_dim={arch.latent_dim}",
            "--out",
            str(tmp_path / "r"),
            "--dry-run",
        ]
    )
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0
    counts = json.loads(out[-1])
    assert counts == parameter_counts(_model(name)[0])
    assert set(counts) == {"encoder", "decoder", "discriminator", "discriminators"}
    assert any("Conv2d" in line for line in out) and not (tmp_path / "r").exists()


def test_dry_run_feeds_alice_s_side_discriminators_their_own_inputs(tmp_path, capsys) -> None:
    """D_xx takes (x, x) pairs and D_z codes: the listing runs each on its own input shape."""
    argv = ["train", "--config", "mnist", "--method", "alice", "--set", "alice_form=adversarial"]
    assert main([*argv, "--out", str(tmp_path / "r"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "xx_discriminator: input [(2, 28, 28)]" in out and "z_discriminator: input [(32, 1, 1)]" in out
