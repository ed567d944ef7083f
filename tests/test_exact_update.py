"""Every optimizer step applies its gradients exactly as a plain Adam would.

The training optimizers are fused Adam, which reads a parameter and its gradient as flat arrays:
a gradient handed over in other strides than its parameter (an NCHW gradient for a channels_last
weight) updates the wrong elements. For each update mode and network family, a hook on every
optimizer step replays that step with `torch.optim.Adam(foreach=False, fused=False)` on copies
of the parameters and the same gradients, and the two results must agree.

The second half runs one step of every method under `torch.device("meta")` with the model and
batch on the CPU: a tensor made inside a step without an explicit device lands on `meta` and the
step fails, as it would fail on a GPU.
"""

from __future__ import annotations

import sys

import pytest
import torch

from ali import checkpoint as ckpt
from ali import rundir
from ali.config import make_config, to_dict
from ali.data.batches import to_model_layout
from ali.methods import METHODS
from ali.methods import adversarial as adv
from ali.methods.base import StepRuntime
from ali.training.build import build_model
from ali.training.guard import DivergenceGuard
from ali.training.hardware import prepare_model
from tests.stepping import built_step, train_step


def _plain_adam_check(optimizer: torch.optim.Optimizer, seen: list[str]):
    """Pre- and post-step hooks: the parameters after the step equal a reference Adam's."""
    before: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def pre(opt, args, kwargs):
        before.clear()
        # GradScaler hands a fused optimizer the still-scaled gradients and the scale to divide by
        scale = getattr(opt, "grad_scale", None)
        for group in opt.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    grad = p.grad.detach().clone()
                    before[id(p)] = (p.detach().clone(), grad if scale is None else grad / scale)

    def post(opt, args, kwargs):
        for group in opt.param_groups:
            hyper = {k: group[k] for k in ("lr", "betas", "eps", "weight_decay")}
            for p in group["params"]:
                if id(p) not in before:
                    continue
                start, grad = before[id(p)]
                ref = start.clone().requires_grad_(True)
                ref.grad = grad.contiguous()
                plain = torch.optim.Adam([ref], foreach=False, fused=False, **hyper)
                state = opt.state[p]
                if int(state["step"]) > 1:  # replay from the moments the real optimizer held
                    beta1, beta2 = hyper["betas"]
                    plain.state[ref] = {
                        "step": state["step"] - 1,
                        "exp_avg": ((state["exp_avg"] - (1 - beta1) * grad) / beta1).contiguous(),
                        "exp_avg_sq": ((state["exp_avg_sq"] - (1 - beta2) * grad * grad) / beta2).contiguous(),
                    }
                plain.step()
                err = (p.detach() - ref.detach()).abs().max().item()
                exact = err <= 1e-6 * max(1.0, start.abs().max().item())
                assert exact, f"{tuple(p.shape)}: off a plain Adam step by {err:.3g}"
                seen.append(str(tuple(p.shape)))

    optimizer.register_step_pre_hook(pre)
    optimizer.register_step_post_hook(post)


def _checked_model(overrides: dict, batch: int = 8):
    config = make_config({"batch_size": batch, "precision": "fp32", **overrides})
    torch.manual_seed(0)
    model, optimizers = build_model(config)
    prepare_model(model, torch.device("cpu"))
    seen: dict[str, list[str]] = {name: [] for name in optimizers}
    for name, opt in optimizers.items():
        _plain_adam_check(opt, seen[name])
    shape = model.arch.x_shape
    x = to_model_layout(torch.rand(batch, *shape)) if len(shape) == 3 else torch.randn(batch, *shape)
    return model, optimizers, seen, x


def _saturate(model) -> None:
    """D's last bias at 100: every logit far beyond SATURATED_LOGIT."""
    with torch.no_grad():
        model["discriminator"].joint[-1].bias.fill_(100.0)


UPDATE_CASES = {
    # (config overrides, update mode the step must take)
    "toy-fused": ({"arch": "toy", "latent_dim": 2}, "fused"),
    "toy-two-pass": ({"arch": "toy", "latent_dim": 2, "update": "two-pass"}, "two-pass"),
    "toy-alternating": ({"arch": "toy", "latent_dim": 2, "update": "alternating"}, "alternating"),
    "toy-saturated": ({"arch": "toy", "latent_dim": 2}, "saturated"),
    "mnist-fused": ({"dataset": "mnist", "arch": "mnist", "latent_dim": 32}, "fused"),
    "mnist-two-pass": ({"dataset": "mnist", "arch": "mnist", "latent_dim": 32, "update": "two-pass"}, "two-pass"),
    "mnist-alternating": ({"dataset": "mnist", "arch": "mnist", "latent_dim": 32, "update": "alternating"}, "alternating"),
    "mnist-saturated": ({"dataset": "mnist", "arch": "mnist", "latent_dim": 32}, "saturated"),
    "cifar10-fused": ({"dataset": "cifar10", "arch": "cifar10", "latent_dim": 64}, "fused"),
    # batch norm in D: the simultaneous update resolves to two-pass
    "celeba64-bn-d": ({"dataset": "celeba64", "arch": "celeba64", "latent_dim": 256}, "two-pass"),
    "celeba64-bn-d-alternating": (
        {"dataset": "celeba64", "arch": "celeba64", "latent_dim": 256, "update": "alternating"},
        "alternating",
    ),
    "mnist-alice-xx": (
        {"dataset": "mnist", "arch": "mnist", "latent_dim": 32, "method": "alice", "alice_form": "adversarial"},
        "fused",
    ),
    "mnist-alice-z": (
        {"dataset": "mnist", "arch": "mnist", "latent_dim": 32, "method": "alice", "z_adversarial_weight": 1.0},
        "fused",
    ),
    "mnist-kplus1": ({"dataset": "mnist", "arch": "mnist", "latent_dim": 32, "method": "ali-kplus1"}, "fused"),
    # weight-normalised D: the optimizer steps g and v, the parametrization's own parameters
    "mnist-kplus1-weight-norm": (
        {"dataset": "mnist", "arch": "mnist", "latent_dim": 32, "method": "ali-kplus1", "weight_norm": True},
        "fused",
    ),
    # spectrally normalised Ds: the optimizers step the parametrizations' original weights
    "mnist-alice-spectral-norm": (
        {
            "dataset": "mnist",
            "arch": "mnist",
            "latent_dim": 32,
            "method": "alice",
            "z_adversarial_weight": 1.0,
            "spectral_norm": True,
        },
        "fused",
    ),
    # a packed D: one logit per group of pairs, repeated for each pair
    "mnist-packed": ({"dataset": "mnist", "arch": "mnist", "latent_dim": 32, "pack": 2}, "fused"),
    "mnist-conditional": ({"dataset": "mnist", "arch": "mnist", "latent_dim": 32, "method": "ali-conditional"}, "fused"),
}


@pytest.mark.parametrize("case", list(UPDATE_CASES))
def test_optimizer_steps_match_plain_adam(case, monkeypatch):
    overrides, expected = UPDATE_CASES[case]
    taken: list[str] = []
    real_update = adv.adversarial_update

    def spy(*args, **kwargs):
        mode = args[4] if len(args) > 4 else kwargs["mode"]
        taken.append(mode)
        return real_update(*args, **kwargs)

    monkeypatch.setattr(adv, "adversarial_update", spy)
    for module in {m.make_step.__module__ for m in METHODS.values()}:
        if hasattr(sys.modules[module], "adversarial_update"):
            monkeypatch.setattr(sys.modules[module], "adversarial_update", spy)
    saturated: list[bool] = []
    real_backward = adv._backward_into
    monkeypatch.setattr(adv, "_backward_into", lambda *a, **k: (saturated.append(True), real_backward(*a, **k))[1])
    batch = 4 if case.startswith("celeba") else 8
    model, optimizers, seen, x = _checked_model(overrides, batch)
    if expected == "saturated":  # the fused step's fallback
        _saturate(model)
    for index in range(2):  # the second step replays from the moments of the first
        train_step(model, optimizers, x, index)
    assert taken and set(taken) == {"fused" if expected == "saturated" else expected}
    if expected == "saturated":
        assert saturated, "the saturated fallback did not run"
    elif expected == "fused":
        assert not saturated, "the fused backward fell back to two passes"
    for name, shapes in seen.items():
        assert shapes, f"optimizer {name!r} never stepped"
    # the conv nets have weights whose gradient strides differ from channels_last: they were checked
    if len(model.arch.x_shape) == 3:
        assert any(len(eval(s)) == 4 for s in seen["generator"])


FUSED_METHODS = [
    "toy-fused",
    "mnist-fused",
    "mnist-alice-xx",
    "mnist-alice-z",
    "mnist-kplus1",
    "mnist-kplus1-weight-norm",
    "mnist-alice-spectral-norm",
    "mnist-conditional",
    "mnist-packed",
]


@pytest.mark.parametrize("case", FUSED_METHODS)
def test_fused_step_lands_where_the_two_pass_step_does(case):
    """After two real optimizer steps, the fused update's parameters equal the two-pass update's."""
    overrides, _ = UPDATE_CASES[case]
    params = []
    for update in ("simultaneous", "two-pass"):
        model, optimizers, _, x = _checked_model({**overrides, "update": update})
        for opt in optimizers.values():  # Adam divides by |g| + eps: a gradient of about eps that
            for group in opt.param_groups:  # differs in its last bits would move by a tenth of lr
                group["eps"] = 1e-6
        step = built_step(model, optimizers, x)
        torch.manual_seed(1)  # the same z, eps and dropout masks for both
        for index in range(2):
            step(x, index)
        params.append({k: v.detach().clone() for k, v in model.named_parameters()})
    fused, two_pass = params
    for k in fused:
        torch.testing.assert_close(fused[k], two_pass[k], rtol=0, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_steps_with_default_device_meta(method):
    """A tensor made inside a step must take its device from the step's inputs."""
    arch = "toy" if method not in ("ali-conditional", "ali-kplus1") else "mnist"
    overrides = {"method": method, "arch": arch}
    if arch == "mnist":
        overrides.update(dataset="mnist", latent_dim=32)
    config_batch = 6
    model, optimizers, _, x = _checked_model(overrides, config_batch)
    if method in ("ali", "alice", "bigan"):  # also through the saturated fallback
        _saturate(model)
    step = built_step(model, optimizers, x)  # its labelled set or conditions made on the CPU
    with torch.device("meta"):
        losses = step(x, 0)
    assert all(v.device.type == "cpu" for v in losses.values())


def _mnist_after_one_step():
    model, optimizers, seen, x = _checked_model({"dataset": "mnist", "arch": "mnist", "latent_dim": 32, "update": "two-pass"})
    train_step(model, optimizers, x, 0)
    return model, optimizers, seen, x


def test_step_after_checkpoint_restore_matches_plain_adam(tmp_path):
    """Moments read back from a checkpoint are paired with the right weight elements."""
    model, optimizers, _, x = _mnist_after_one_step()
    rundir.save_checkpoint(tmp_path / "c.safetensors", model, optimizers, 1, to_dict(model.config))
    fresh, fresh_optimizers, seen, _ = _checked_model(
        {"dataset": "mnist", "arch": "mnist", "latent_dim": 32, "update": "two-pass"}
    )
    ckpt.restore(*ckpt.read_checkpoint(tmp_path / "c.safetensors"), fresh, fresh_optimizers)
    train_step(fresh, fresh_optimizers, x, 1)
    assert any(len(eval(s)) == 4 for s in seen["generator"])


def test_step_after_guard_rollback_matches_plain_adam(tmp_path):
    """The divergence guard's rollback restores moments in the weights' layout too."""
    model, optimizers, seen, x = _mnist_after_one_step()
    guard = DivergenceGuard(model.config, tmp_path / "stats.jsonl")
    guard.remember(1, model, optimizers, {}, 0)
    for opt in optimizers.values():  # what a rollback meets: moments in the default layout
        for state in opt.state.values():
            for key in ("exp_avg", "exp_avg_sq"):
                state[key] = state[key].contiguous()
    guard.good.optimizers = {
        name: {**sd, "state": {i: {k: v.contiguous() for k, v in st.items()} for i, st in sd["state"].items()}}
        for name, sd in guard.good.optimizers.items()
    }
    guard.recover(2, model, optimizers)
    seen["generator"].clear()
    train_step(model, optimizers, x, 1)
    assert any(len(eval(s)) == 4 for s in seen["generator"])


@pytest.mark.parametrize(
    "overrides",
    [
        {"method": "ali"},
        {"method": "alice", "alice_form": "adversarial"},
        {"method": "alice", "z_adversarial_weight": 1.0},
        {"method": "bigan"},
        {"method": "vae"},
        {"method": "ali-kplus1", "arch": "mnist", "dataset": "mnist", "latent_dim": 32},
        {"method": "ali-conditional", "arch": "mnist", "dataset": "mnist", "latent_dim": 32},
    ],
    ids=lambda o: "-".join(str(v) for v in o.values()),
)
def test_loss_scaling_leaves_every_update_unchanged(overrides):
    """fp16's GradScaler multiplies each loss by its scale and divides each gradient back: with the
    math in fp32, a scaled step must update every network exactly as an unscaled one."""
    results = []
    for scaler in (None, torch.amp.GradScaler("cpu", init_scale=2.0**16)):
        update = {} if overrides["method"] == "vae" else {"update": "two-pass"}
        model, optimizers, _, x = _checked_model({**update, **overrides}, batch=6)
        runtime = StepRuntime(scaler=scaler, precision="fp16" if scaler else "fp32")
        step = built_step(model, optimizers, x, runtime=runtime)
        torch.manual_seed(3)
        step(x, 0)
        results.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    plain, scaled = results
    moved = [k for k in plain if plain[k].is_floating_point() and "running" not in k]
    for k in moved:
        assert torch.allclose(plain[k], scaled[k], rtol=1e-4, atol=1e-6), f"{k} moved differently under loss scaling"
