import pytest
import torch

from ali.config import for_method, make_config
from ali.errors import AliError
from ali.methods import METHODS
from ali.methods.adversarial import update_mode
from ali.nets.layers import Layer
from ali.nets.networks import GaussianEncoder
from ali.presets import PRESETS
from ali.training.build import build_model
from tests.stepping import train_step

IMAGE_ONLY = ("ali-conditional", "ali-kplus1")  # tested on image nets: tests/test_architectures.py, test_conditional.py


def _toy(method="alice", **over):
    config = make_config({**for_method(PRESETS["toy25"], method), "batch_size": 16, "precision": "fp32", **over})
    torch.manual_seed(0)
    return build_model(config)


def _snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_reparametrised_sample_has_the_right_moments_and_passes_gradients():
    enc = GaussianEncoder([Layer("dense", 4)], (2,))
    with torch.no_grad():
        enc.net[0].weight.zero_()
        enc.net[0].bias.copy_(torch.tensor([1.0, -2.0, 0.0, 0.5]))  # mu = (1, -2), sigma = (1, e^0.5)
    torch.manual_seed(0)
    z = enc(torch.zeros(200_000, 2))
    torch.testing.assert_close(z.mean(0), torch.tensor([1.0, -2.0]), atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 1.6487]), atol=0.02, rtol=0)
    z.sum().backward()
    assert enc.net[0].bias.grad.abs().sum() > 0


@pytest.mark.parametrize("update", ["simultaneous", "alternating"])
def test_one_ali_step_changes_all_three_networks(update):
    model, opts = _toy(update=update)
    before = {name: _snapshot(getattr(model, name)) for name in ("encoder", "decoder", "discriminator")}
    losses = train_step(model, opts, torch.randn(16, 2), 0)
    assert all(torch.isfinite(v) for v in losses.values())
    for name, state in before.items():
        after = getattr(model, name).state_dict()
        assert any(not torch.equal(state[k], after[k]) for k in state), f"{name} did not change"


VARIANTS = {
    "alice-adversarial": {"alice_form": "adversarial", "recon_trains": "both"},
    "alice-z-adversarial": {"z_adversarial_weight": 0.5},
}


@pytest.mark.parametrize("method", [*[m for m in METHODS if m not in IMAGE_ONLY], *VARIANTS])
def test_every_method_trains_its_networks(method):
    model, opts = _toy("alice", **VARIANTS[method]) if method in VARIANTS else _toy(method)
    before = _snapshot(model)
    steps = model.config.steps + 1 if method == "gan-posthoc" else 1
    for step in [0, steps - 1] if method == "gan-posthoc" else [0]:  # gan-posthoc: one step of each phase
        losses = train_step(model, opts, torch.randn(16, 2), step)
    assert all(torch.isfinite(v) for v in losses.values())
    after = model.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    expected = {
        "ali": {"encoder", "decoder", "discriminator"},
        "alice": {"encoder", "decoder", "discriminator"},
        "alice-adversarial": {"encoder", "decoder", "discriminator", "xx_discriminator"},
        "alice-z-adversarial": {"encoder", "decoder", "discriminator", "z_discriminator"},
        "bigan": {"encoder", "decoder", "discriminator"},
        "gan-inverse": {"encoder", "decoder", "x_discriminator"},
        "gan-posthoc": {"encoder", "decoder", "x_discriminator", "discriminator"},
        "vae": {"encoder", "decoder", "likelihood"},
    }
    assert changed == expected[method], (changed, expected[method])


def _after_one_ali_step(mode, recon, recon_trains="both", decoder_bn_stats="prior"):
    """A fresh toy model after one ALI (recon 0) or ALICE step on fixed data, i.i.d. prior codes."""
    over = {"recon_weight": recon, "recon_trains": recon_trains, "decoder_bn_stats": decoder_bn_stats} if recon else {}
    update = {"fused": "simultaneous"}.get(mode, mode)
    model, opts = _toy("alice" if recon else "ali", update=update, prior_sampling="random", **over)
    x = torch.linspace(-3, 3, 32).view(16, 2)
    torch.manual_seed(1)
    train_step(model, opts, x, 0)
    return model


def _grads_after_one_ali_step(mode, recon, recon_trains="both"):
    model = _after_one_ali_step(mode, recon, recon_trains)
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("recon", [0.0, 1.0])
def test_fused_step_gives_the_two_pass_gradients(recon):
    fused = _grads_after_one_ali_step("fused", recon)
    two_pass = _grads_after_one_ali_step("two-pass", recon)
    assert fused.keys() == two_pass.keys() and len(fused) == len(list(_toy()[0].parameters()))
    for k in fused:
        torch.testing.assert_close(fused[k], two_pass[k], rtol=1e-4, atol=1e-6, msg=k)


def test_decoder_only_cycle_leaves_the_encoder_to_the_adversarial_game():
    pure = _grads_after_one_ali_step("fused", 0.0)
    both = _grads_after_one_ali_step("fused", 1.0, "both")
    decoder_only = _grads_after_one_ali_step("fused", 1.0, "decoder")
    for k in pure:
        if k.startswith("encoder."):
            torch.testing.assert_close(decoder_only[k], pure[k], rtol=1e-5, atol=1e-7, msg=k)
        if k.startswith("decoder."):
            torch.testing.assert_close(decoder_only[k], both[k], rtol=1e-5, atol=1e-7, msg=k)
    assert any(not torch.allclose(both[k], pure[k]) for k in pure if k.startswith("encoder."))


def test_toy_discriminator_is_eligible_for_the_fused_step_and_batch_norm_is_not():
    model, _ = _toy()
    assert update_mode("simultaneous", model.discriminator) == "fused"
    assert update_mode("simultaneous", model.decoder) == "two-pass"  # has batch norm
    assert update_mode("alternating", model.discriminator) == "alternating"
    assert update_mode("two-pass", model.discriminator) == "two-pass"


def _decoder_running_stats_after_one_step(recon, decoder_bn_stats):
    model = _after_one_ali_step("fused", recon, "decoder", decoder_bn_stats)
    return {k: v for k, v in model.decoder.state_dict().items() if "running" in k}


def test_cycle_pass_leaves_the_decoders_running_statistics_to_the_prior_batch():
    prior_only = _decoder_running_stats_after_one_step(0.0, "prior")
    assert prior_only and all(v.abs().sum() > 0 for k, v in prior_only.items() if "mean" in k)
    for k, v in _decoder_running_stats_after_one_step(1.0, "prior").items():
        torch.testing.assert_close(v, prior_only[k], rtol=0, atol=0, msg=k)
    blended = _decoder_running_stats_after_one_step(1.0, "all")
    assert any(not torch.equal(v, prior_only[k]) for k, v in blended.items())


def test_decoder_bn_stats_changes_the_running_averages_and_not_the_training():
    trained = {}
    for setting in ("prior", "all"):
        model, opts = _toy(recon_weight=3.0, recon_trains="decoder", decoder_bn_stats=setting)
        torch.manual_seed(0)
        for step in range(3):
            train_step(model, opts, torch.randn(16, 2), step)
        trained[setting] = model.state_dict()
    for k, v in trained["prior"].items():
        if "running" not in k and "num_batches" not in k:
            assert torch.equal(v, trained["all"][k]), k  # running averages never feed training
    assert any(not torch.equal(v, trained["all"][k]) for k, v in trained["prior"].items() if "running" in k)


def test_vae_on_images_is_a_per_example_elbo_with_a_bernoulli_likelihood():
    from ali.methods.vae import bernoulli_nll

    config = make_config({"arch": "mnist", "latent_dim": 32, "method": "vae", "batch_size": 8, "precision": "fp32"})
    torch.manual_seed(0)
    model, opts = build_model(config)
    x = torch.rand(8, 1, 28, 28)
    assert "likelihood" not in model  # the Bernoulli has no parameters
    losses = train_step(model, opts, x, 0)
    # Summed over the 784 pixels: hundreds of nats per image, not a per-pixel average below 1.
    assert float(losses["nll"]) > 100
    logits = torch.randn(8, 1, 28, 28)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum") / 8
    torch.testing.assert_close(bernoulli_nll(x, logits).mean(), expected)


def test_posthoc_decoder_stays_frozen_in_its_second_phase():
    model, opts = _toy("gan-posthoc")
    phase = model.config.steps
    train_step(model, opts, torch.randn(16, 2), 0)  # GAN phase: the decoder learns
    frozen = _snapshot(model["decoder"])  # weights and batch-norm running averages
    for index in (phase, phase + 1):
        train_step(model, opts, torch.randn(16, 2), index)
        for k, v in model["decoder"].state_dict().items():
            assert torch.equal(v, frozen[k]), f"decoder {k} changed in the post-hoc phase"


def test_alice_explicit_term_is_zero_for_a_perfect_autoencoder_and_positive_otherwise():
    model, opts = _toy("alice", recon_trains="both", z_cycle_weight=1.0)
    x = torch.randn(16, 2)
    losses = train_step(model, opts, x, 0)
    assert float(losses["recon"]) > 0 and float(losses["z_cycle"]) > 0
    model["encoder"], model["decoder"] = torch.nn.Identity(), torch.nn.Identity()  # Gx(Gz(x)) = x, Gz(Gx(z)) = z
    losses = train_step(model, opts, x, 1)
    assert float(losses["recon"]) == 0.0 and float(losses["z_cycle"]) == 0.0


def test_alice_adversarial_discriminator_sees_x_x_against_x_and_its_reconstruction():
    model, opts = _toy("alice", alice_form="adversarial", recon_trains="both")
    seen = []
    model["xx_discriminator"].register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0].detach().clone()))
    x = torch.randn(16, 2)
    torch.manual_seed(3)
    losses = train_step(model, opts, x, 0)
    pairs = seen[0]
    assert pairs.shape == (32, 4) and {"loss_dxx", "loss_gxx"} <= set(losses)
    torch.testing.assert_close(pairs[:16], torch.cat([x, x], 1))  # real pairs (x, x)
    torch.testing.assert_close(pairs[16:, :2], x)  # fake pairs (x, Gx(Gz(x)))
    assert not torch.allclose(pairs[16:, 2:], x)


@pytest.mark.parametrize("arch", ["toy", "mnist"])
def test_alice_z_discriminator_tells_prior_codes_from_the_encoder_s(arch):
    over = {"arch": "mnist", "latent_dim": 32, "dataset": "mnist"} if arch == "mnist" else {}
    model, opts = _toy("alice", z_adversarial_weight=1.0, update="two-pass", **over)
    seen_z, seen_joint = [], []
    model["z_discriminator"].register_forward_hook(lambda _m, inputs, _out: seen_z.append(inputs[0].detach().clone()))
    model["discriminator"].register_forward_hook(lambda _m, inputs, _out: seen_joint.append(inputs[1].detach().clone()))
    x = torch.rand(16, 1, 28, 28) if arch == "mnist" else torch.randn(16, 2)
    for net in ("discriminator", "decoder"):  # silence every term but D_z's in the encoder's gradient
        for p in model[net].parameters():
            p.data.zero_()
    losses = train_step(model, opts, x, 0)
    assert {"loss_dz", "loss_gz"} <= set(losses)
    codes, joint = seen_z[0].flatten(1), seen_joint[0].flatten(1)  # joint D: (x, Gz(x)) then (Gx(z), z)
    latent = 32 if arch == "mnist" else 2
    assert codes.shape == (32, latent)
    torch.testing.assert_close(codes[:16], joint[16:])  # real for D_z: the prior's z
    torch.testing.assert_close(codes[16:], joint[:16])  # fake: the encoder's codes
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model["encoder"].parameters())


def _grads_after_one_alice_step(zeroed: tuple[str, ...] = (), **over) -> dict[str, torch.Tensor]:
    """Every parameter's gradient after one ALICE step (two-pass) on fixed data, with the
    networks named in `zeroed` set to zero first."""
    model, opts = _toy("alice", update="two-pass", **over)
    for net in zeroed:
        for p in model[net].parameters():
            p.data.zero_()
    torch.manual_seed(1)
    train_step(model, opts, torch.linspace(-3, 3, 32).view(16, 2), 0)
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def test_the_code_discriminators_weight_scales_its_pull_on_the_encoder():
    """With the joint D and the decoder zeroed, only the code D's term reaches the encoder."""
    silenced = ("discriminator", "decoder")
    once = _grads_after_one_alice_step(silenced, z_adversarial_weight=1.0)
    thrice = _grads_after_one_alice_step(silenced, z_adversarial_weight=3.0)
    encoder = [k for k in once if k.startswith("encoder.")]
    assert encoder and any(once[k].abs().sum() > 0 for k in encoder)
    for k in encoder:
        torch.testing.assert_close(thrice[k], 3 * once[k], rtol=1e-4, atol=1e-7, msg=k)


def test_the_z_cycle_trains_both_networks():
    """||z - Gz(Gx(z))||^2 with recon_trains=both: its gradient reaches the decoder through Gx(z)
    and the encoder through Gz (one step with and without it, everything else equal)."""
    with_cycle, without = _grads_after_one_alice_step(z_cycle_weight=1.0), _grads_after_one_alice_step()
    for net in ("encoder.", "decoder."):
        assert any(not torch.allclose(with_cycle[k], without[k]) for k in without if k.startswith(net)), net


@pytest.mark.parametrize("key, value", [("recon_trains", "decoder"), ("z_cycle_weight", 0.5)])
def test_alice_explicit_keys_are_refused_with_the_adversarial_form(key, value):
    with pytest.raises(AliError, match=f"{key}=.* belong.* to alice_form=explicit and would be ignored"):
        make_config({"method": "alice", "alice_form": "adversarial", key: value})


def test_alice_adversarial_form_runs_on_the_mnist_preset_with_its_code_discriminator():
    """The documented variant on its own dataset's preset: D_xx and D_z both train."""
    config = make_config({**PRESETS["mnist"], "alice_form": "adversarial", "batch_size": 8, "precision": "fp32"})
    model, opts = build_model(config)
    assert {"xx_discriminator", "z_discriminator"} <= set(model)
    before = {n: [p.detach().clone() for p in model[n].parameters()] for n in ("xx_discriminator", "z_discriminator")}
    losses = train_step(model, opts, torch.rand(8, 1, 28, 28), 0)
    assert {"loss_dxx", "loss_gxx", "loss_dz", "loss_gz"} <= set(losses)
    for name, old in before.items():
        assert any(not torch.equal(a, b) for a, b in zip(old, model[name].parameters())), f"{name} did not step"


def test_alice_code_discriminator_learns_to_call_prior_codes_real():
    """Known answer: with encoder codes far from the prior (all at 4), a few D_z steps raise its
    belief that prior codes are real and lower it for the encoder's."""
    model, opts = _toy("alice", z_adversarial_weight=1.0, update="two-pass")
    model["encoder"] = _ConstantCodes(4.0)
    for group in opts["discriminator_z"].param_groups:
        group["lr"] = 1e-3
    x = torch.randn(64, 2)
    for index in range(30):
        train_step(model, opts, x, index)
    model.eval()
    with torch.no_grad():
        prior = torch.sigmoid(model["z_discriminator"](torch.randn(512, 2))).mean()
        codes = torch.sigmoid(model["z_discriminator"](torch.full((512, 2), 4.0))).mean()
    assert prior > 0.6 and codes < 0.4, (float(prior), float(codes))


class _ConstantCodes(torch.nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.value = value
        self.bias = torch.nn.Parameter(torch.zeros(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias * 0 + torch.full((x.shape[0], 2), self.value)


def test_bigan_encoder_is_deterministic():
    model, _ = _toy("bigan")
    model.train()
    x = torch.randn(16, 2)
    assert torch.equal(model["encoder"](x), model["encoder"](x))
    image, _ = build_model(make_config({"method": "bigan", "arch": "mnist", "latent_dim": 32, "precision": "fp32"}))
    image.eval()
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(image["encoder"](x), image["encoder"].moments(x)[0])
