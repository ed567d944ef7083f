"""The fast step computes the reference step's math; mixed precision runs and stays finite.

Gradient comparison without reaching into the step: both sides use SGD, so a parameter's change
is exactly -lr * gradient. With lr_D = 0 the reference's generator pass sees the same D as ours
(its alternation is then a no-op), so the generators' gradients must agree; with lr_G = 0 the
discriminator's must. Losses must agree in both.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from ali.config import for_method, make_config
from ali.data.batches import to_model_layout
from ali.errors import AliError
from ali.methods.adversarial import update_mode
from ali.methods.base import Batch
from ali.nets import architectures
from ali.nets.architectures import Architecture
from ali.nets.layers import DenseConv2d, DenseConvTranspose2d, Layer
from ali.presets import PRESETS
from ali.training.build import build_model, build_step
from ali.training.hardware import make_runtime, prepare_model
from tests.stepping import train_step

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.reference_step import reference_step  # noqa: E402

# A small conv ALI without batch norm or dropout in D (both would make the two steps' math differ):
# every special case of the fast path appears (dense-equivalent convs, 1x1-input transposed conv).
CONV = Architecture(
    x_shape=(1, 8, 8),
    latent_dim=2,
    encoder=[Layer("conv", 8, 4, 2, bn=True, act="lrelu"), Layer("conv", 4, 3, 1)],  # 8 -> 3 -> 1 (dense)
    decoder=[Layer("convT", 8, 3, 1, bn=True, act="lrelu"), Layer("convT", 1, 4, 2, act="sigmoid")],  # 1 -> 3 -> 8
    d_x=[Layer("conv", 8, 4, 2, act="lrelu"), Layer("conv", 16, 3, 1, act="lrelu")],
    d_z=[Layer("conv", 16, 1, 1, act="lrelu")],
    d_joint=[Layer("conv", 16, 1, 1, act="maxout2"), Layer("conv", 1, 1, 1)],
)


@pytest.fixture(autouse=True)
def one_thread():
    # The machine's 2 cores are shared: one thread avoids oversubscription stalls in the suite.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def conv_arch(monkeypatch):
    monkeypatch.setitem(architectures.ARCHITECTURES, "test-conv", CONV)
    return "test-conv"


def _model(arch: str, **over):
    values = {**for_method(PRESETS["toy25"], "ali"), "arch": arch, "batch_size": 16, "prior_sampling": "random"}
    config = make_config({**values, "precision": "fp32", **over})
    torch.manual_seed(0)
    model, _ = build_model(config)
    return model


def _sgd(model, lr_d: float, lr_g: float):
    return {
        "generator": torch.optim.SGD(model.parameters_of(("encoder", "decoder")), lr=lr_g),
        "discriminator": torch.optim.SGD(model.parameters_of(("discriminator",)), lr=lr_d),
    }


def _batch(arch: str) -> torch.Tensor:
    shape = architectures.ARCHITECTURES[arch].x_shape
    return torch.rand(16, *shape, generator=torch.Generator().manual_seed(3))


def _changes(run, model, lr_d, lr_g):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(42)  # same z, eps (and batch-norm batch) on both sides
    losses = run(model, _sgd(model, lr_d, lr_g))
    return losses, {k: (v - before[k]) for k, v in model.state_dict().items() if v.is_floating_point()}


@pytest.mark.parametrize("arch_name, mode", [("toy", "fused"), ("conv", "fused"), ("conv", "two-pass")])
def test_fast_step_has_the_reference_steps_losses_and_gradients(arch_name, mode, conv_arch):
    arch = conv_arch if arch_name == "conv" else "toy"
    x = _batch(arch)
    for lr_d, lr_g in ((0.0, 1.0), (1.0, 0.0)):
        ref_model = _model(arch)
        ref_losses, ref_delta = _changes(lambda m, o: reference_step(m, o, x), ref_model, lr_d, lr_g)
        update = "two-pass" if mode == "two-pass" else "simultaneous"
        fast = prepare_model(_model(arch, update=update), torch.device("cpu"))  # channels_last, dense convs
        fast_losses, fast_delta = _changes(lambda m, o: train_step(m, o, to_model_layout(x), 0), fast, lr_d, lr_g)
        # The reference's L_G comes after its D update: comparable when that update is a no-op.
        for k in ("loss_d", "loss_g") if lr_d == 0 else ("loss_d",):
            torch.testing.assert_close(fast_losses[k], ref_losses[k], rtol=1e-5, atol=1e-6)
        moved = 0
        for key, delta in ref_delta.items():
            torch.testing.assert_close(fast_delta[key], delta, rtol=1e-4, atol=1e-6, msg=f"{key} (lr_d={lr_d})")
            moved += int(delta.abs().max() > 0)
        assert moved > 0


def test_the_conv_nets_build_dense_convs_where_the_kernel_covers_the_input(conv_arch):
    model = _model(conv_arch)
    assert type(model.encoder.net[0]) is torch.nn.Conv2d and type(model.encoder.net[-1]) is DenseConv2d
    assert type(model.decoder.net[0]) is DenseConvTranspose2d and type(model.decoder.net[-2]) is torch.nn.ConvTranspose2d
    assert type(model.discriminator.dx[-2]) is DenseConv2d and type(model.discriminator.dz[0]) is DenseConv2d
    prepare_model(model, torch.device("cpu"))
    assert model.discriminator.dx[0].weight.is_contiguous(memory_format=torch.channels_last)
    # the dense forms compute the ordinary convolution
    conv = model.encoder.net[-1]
    h = torch.randn(3, conv.in_channels, 3, 3)
    torch.testing.assert_close(conv(h), torch.nn.functional.conv2d(h, conv.weight, conv.bias), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch_name", ["toy", "conv"])
def test_bf16_steps_run_and_stay_finite(arch_name, conv_arch):
    arch = conv_arch if arch_name == "conv" else "toy"
    model = _model(arch, precision="bf16")
    opts = _sgd(model, 0.1, 0.1)
    prepare_model(model, torch.device("cpu"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = to_model_layout(_batch(arch))
    for step in range(3):
        losses = train_step(model, opts, x, step, precision="bf16")
        assert all(torch.isfinite(v) and v.dtype == torch.float32 for v in losses.values())
    assert all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_bf16_first_step_losses_are_close_to_fp32(conv_arch):
    out = {}
    for precision in ("fp32", "bf16"):
        model = _model(conv_arch, precision=precision)
        opts = _sgd(model, 0.1, 0.1)
        torch.manual_seed(1)
        out[precision] = train_step(model, opts, _batch(conv_arch), 0, precision=precision)
    for k in ("loss_d", "loss_g"):
        torch.testing.assert_close(out["bf16"][k], out["fp32"][k], rtol=0.03, atol=0.01)


def test_fp16_needs_a_gpu_and_never_uses_the_fused_trick():
    with pytest.raises(AliError, match="fp16 needs a CUDA device"):
        make_runtime("fp16", torch.device("cpu"))
    model = _model("toy")
    assert update_mode("simultaneous", model.discriminator, "fp32") == "fused"
    assert update_mode("simultaneous", model.discriminator, "fp16") == "two-pass"


def test_the_step_uses_the_runtime_it_was_built_with():
    model = _model("toy")
    calls = []
    rt = make_runtime("fp32", torch.device("cpu"), all_reduce=lambda grads: calls.append(len(grads)))
    build_step(model.config, model, _sgd(model, 0.1, 0.1), rt)(Batch(torch.randn(16, 2)), 0)
    assert calls == [sum(1 for _ in model.parameters())]
