"""The fused update gives the two-pass gradients in every regime of D's confidence, with dropout
in D, in fp32 and bf16: logits 0 and 20 take the fused path, 85, 100 and 500 the saturated one."""

from __future__ import annotations

import pytest
import torch

from ali.config import make_config
from ali.nets import architectures
from ali.nets.architectures import TOY, Architecture
from ali.nets.layers import Layer
from ali.training.build import build_model
from tests.stepping import train_step

# The toy nets with a small D that has dropout on every layer's input.
DROPOUT_D = Architecture(
    x_shape=(2,),
    latent_dim=2,
    encoder_kind="noise",
    encoder=TOY.encoder,
    decoder=TOY.decoder,
    d_x=[],
    d_z=[],
    d_joint=[Layer("dense", 32, act="lrelu", drop=0.2), Layer("dense", 32, act="maxout2", drop=0.2), Layer("dense", 1, drop=0.2)],
)


def _grads(update: str, logit: float, precision: str) -> dict[str, torch.Tensor]:
    config = make_config({"arch": "toy-dropout-d", "batch_size": 32, "precision": precision, "update": update})
    torch.manual_seed(0)
    model, _ = build_model(config)
    with torch.no_grad():  # D's output is its last bias plus a small term: every logit near `logit`
        model["discriminator"].joint[-1].bias.fill_(logit)
    sgd = {
        "generator": torch.optim.SGD(model.parameters_of(("encoder", "decoder")), lr=0.0),
        "discriminator": torch.optim.SGD(model.parameters_of(("discriminator",)), lr=0.0),
    }
    torch.manual_seed(1)  # same data, z, eps and dropout masks on both sides
    train_step(model, sgd, torch.randn(32, 2), 0, precision=precision)
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("logit", [0.0, 20.0, 85.0, 100.0, 500.0, -20.0, -100.0, -500.0])
def test_fused_matches_two_pass(monkeypatch, logit, precision):
    monkeypatch.setitem(architectures.ARCHITECTURES, "toy-dropout-d", DROPOUT_D)
    fused, two_pass = _grads("simultaneous", logit, precision), _grads("two-pass", logit, precision)
    assert fused.keys() == two_pass.keys()
    generators = [k for k in fused if not k.startswith("discriminator")]
    assert generators and any(two_pass[k].abs().max() > 0 for k in generators)  # L_G's gradient is alive
    rtol = 1e-4 if precision == "fp32" else 3e-2
    for k in fused:
        err = (fused[k] - two_pass[k]).norm()
        assert err <= rtol * two_pass[k].norm() + 1e-12, (
            f"{k}: |fused - two-pass| = {err:.3g}, |two-pass| = {two_pass[k].norm():.3g}"
        )
