"""K+1's Improved-GAN options (ali.methods.ali_kplus1): feature matching leaves D's objective
alone and trains the generators on the feature statistics, the noise options perturb D in
training only, and the averaged D is the evaluated classifier."""

from __future__ import annotations

import torch
from data_writers import bar_images
from torch.nn.utils import parametrize

from ali import checkpoint
from ali.config import make_config
from ali.data.dataset import Dataset
from ali.methods.ali_kplus1 import ClassDiscriminator, class_predictions
from ali.methods.base import Batch
from ali.nets.layers import Dropout
from ali.nets.model import AVERAGE_PREFIX
from ali.presets import PRESETS
from ali.training.build import build_model, build_step, fit_to_data
from ali.training.hardware import make_runtime


def _data() -> Dataset:
    labels = torch.arange(100) % 10
    images = torch.from_numpy(bar_images(labels.numpy(), (1, 28, 28), 0))
    return Dataset("bars", images, images[:20], labels=labels, heldout_labels=labels[:20])


def _start() -> dict[str, torch.Tensor]:
    config = make_config({**PRESETS["mnist-kplus1"], "batch_size": 16, "precision": "fp32", "update": "two-pass"})
    torch.manual_seed(0)
    return {k: v.detach().clone() for k, v in build_model(config)[0].state_dict().items()}


def _one_step(**values) -> tuple[dict, dict[str, torch.Tensor]]:
    """Losses of one step from the seed-0 start, and every weight after it."""
    config = make_config({**PRESETS["mnist-kplus1"], "batch_size": 16, "precision": "fp32", "update": "two-pass", **values})
    torch.manual_seed(0)
    model, optimizers = build_model(config)
    data = _data()
    step = build_step(config, model, optimizers, make_runtime("fp32", torch.device("cpu")), data)
    torch.manual_seed(1)
    losses = step(Batch(data.to_float(data.train[:16]).contiguous()), 0)
    return losses, {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_the_feature_matching_loss_is_the_squared_distance_of_the_feature_means(monkeypatch):
    seen = []
    features = ClassDiscriminator.features

    def spy(self, x, z):
        out = features(self, x, z)
        seen.append(out.detach().clone())
        return out

    monkeypatch.setattr(ClassDiscriminator, "features", spy)
    losses, _ = _one_step(feature_matching=True)
    joint = seen[-1].flatten(1)  # the real and fake pairs' pass: the last of the step
    real, fake = joint.split(joint.shape[0] // 2)
    expected = (real.mean(0) - fake.mean(0)).pow(2).mean()
    # Relative only: an untrained D's features are small and the loss is of order 1e-9, under
    # assert_close's default atol, where any small value (0, the logits' distance) would pass.
    assert float(expected) > 0
    torch.testing.assert_close(losses["feature_matching"], expected, rtol=1e-4, atol=0)


def test_feature_matching_moves_the_generators_only_and_logs_its_loss():
    plain_losses, plain = _one_step()
    matched_losses, matched = _one_step(feature_matching=True)
    start = _start()
    assert "feature_matching" in matched_losses and float(matched_losses["feature_matching"]) > 0
    # D trains on the same K+1 loss from the same draws: the same update.
    assert torch.allclose(plain_losses["loss_d"], matched_losses["loss_d"])
    for key in plain:
        if key.startswith("discriminator."):
            torch.testing.assert_close(matched[key], plain[key], rtol=0, atol=1e-6)
    moved = [k for k in plain if k.startswith(("encoder.", "decoder.")) and not torch.allclose(plain[k], matched[k])]
    assert moved  # the generators follow another loss
    # The encoder learns from the matching too (its codes enter the real pairs' features): its
    # only gradient here, as the labelled pass's codes are detached.
    assert any(not torch.equal(matched[k], start[k]) for k in start if k.startswith("encoder.") and "weight" in k)
    # The decoder's only gradient is the matching too (its pairs are the fake side of it).
    assert any(not torch.equal(matched[k], start[k]) for k in start if k.startswith("decoder.") and "weight" in k)


def _d(**noise) -> ClassDiscriminator:
    config = make_config({**PRESETS["cifar10-kplus1"], **noise})
    torch.manual_seed(0)
    d = build_model(config)[0]["discriminator"]
    for m in d.modules():
        if isinstance(m, Dropout):
            m.p = 0.0  # only the noise options are random now
    return d


def test_noise_options_perturb_d_in_training_only_after_every_hidden_row():
    x, z = torch.rand(4, 3, 32, 32), torch.randn(4, 64)
    quiet = _d()
    assert torch.equal(quiet.train()(x, z), quiet(x, z))
    for noise in ({"input_noise": 0.3}, {"hidden_noise": 0.5}):
        d = _d(**noise)
        d.train()
        assert not torch.equal(d(x, z), d(x, z)), noise
        d.eval()
        assert torch.equal(d(x, z), d(x, z)) and torch.allclose(d(x, z), quiet.eval()(x, z), atol=1e-6), noise
    hooked = [name for name, m in _d(hidden_noise=0.5).named_modules() if m._forward_hooks]
    # The CIFAR-10 D's rows: 5 in D(x), 2 in D(z), 2 hidden joint rows; none on the class layer.
    assert len(hooked) == 9 and not any(name.startswith("joint.6") or name.startswith("joint.7") for name in hooked)


def test_noise_options_add_noise_of_their_std_to_the_image_and_after_each_hidden_row():
    """input_noise perturbs D's image input (not its code) by N(0, 0.3^2); hidden_noise adds
    N(0, 0.5^2) to the output of every hooked row: the difference between what each row put out
    and what the rows after it received."""
    x, z = torch.rand(8, 3, 32, 32), torch.randn(8, 64)
    d = _d(input_noise=0.3).train()
    seen = {}
    for name in ("dx", "dz"):
        getattr(d, name).register_forward_pre_hook(lambda _m, args, name=name: seen.__setitem__(name, args[0].detach()))
    d(x, z)
    assert abs(float((seen["dx"] - x).std()) - 0.3) < 0.01
    assert torch.equal(seen["dz"].flatten(1), z)  # the code is not perturbed
    d = _d(hidden_noise=0.5).train()
    clean, noisy = {}, {}
    hooked = [(name, m) for name, m in d.named_modules() if m._forward_hooks]
    for name, m in hooked:  # one hook before the noise's, one after it
        m.register_forward_hook(lambda _m, _i, out, name=name: clean.__setitem__(name, out.detach()), prepend=True)
        m.register_forward_hook(lambda _m, _i, out, name=name: noisy.__setitem__(name, out.detach()))
    d(x, z)
    assert len(hooked) == 9
    for name, _ in hooked:
        assert abs(float((noisy[name] - clean[name]).std()) - 0.5) < 0.05, name


def test_the_weight_average_of_d_follows_the_live_d():
    """The evaluated D is the moving average of the trained D's weights: each update moves it
    (1 - decay) of the way to them."""
    model, _ = build_model(make_config({**PRESETS["mnist-kplus1"], "ema_decay": 0.9}))
    live, average = model["discriminator"], model[AVERAGE_PREFIX + "discriminator"]
    before = [p.detach().clone() for p in average.parameters()]
    with torch.no_grad():
        for p in live.parameters():
            p.add_(1.0)
    model.update_averages(0.9)
    for old, new, target in zip(before, average.parameters(), live.parameters()):
        torch.testing.assert_close(new, old + 0.1 * (target - old))


def test_the_averaged_discriminator_is_the_evaluated_classifier():
    config = make_config({**PRESETS["mnist-kplus1"], "ema_decay": 0.9})
    model, optimizers = build_model(config)
    assert model.averaged == ("encoder", "decoder", "discriminator")
    evaluated = model.with_averages()
    assert evaluated["discriminator"] is model[AVERAGE_PREFIX + "discriminator"]
    trained = {id(p) for opt in optimizers.values() for g in opt.param_groups for p in g["params"]}
    assert not trained & {id(p) for p in evaluated["discriminator"].parameters()}


def _weight_normalised(model) -> list[torch.nn.Module]:
    return [m for m in model["discriminator"].modules() if parametrize.is_parametrized(m, "weight")]


def test_weight_norm_starts_every_unit_of_d_standardised_on_the_pairs_a_step_shows_it(monkeypatch):
    """weight_norm=true: every linear and conv layer of D is weight-normalised, and a fresh run's
    start sets each unit's output to zero mean and unit variance, layer after layer, on real
    pairs (the first 500 training images, codes drawn from q(z|x)) and as many generated pairs;
    D's logits then start of order one on both kinds, and the weight average starts from that D."""
    config = make_config({**PRESETS["mnist-kplus1"], "weight_norm": True, "ema_decay": 0.999, "precision": "fp32"})
    torch.manual_seed(0)
    model, _ = build_model(config)
    d = model["discriminator"]
    layers = _weight_normalised(model)
    convs = [m for m in d.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    assert layers == convs and len(layers) >= 6
    v = layers[0].parametrizations.weight.original1
    assert abs(float(v.detach().std()) - config.init_std) < 0.2 * config.init_std  # N(0, init_std) through the parametrization
    shown = []
    start = ClassDiscriminator.init_from_data
    monkeypatch.setattr(ClassDiscriminator, "init_from_data", lambda net, x, z: shown.append((x, z)) or start(net, x, z))
    data = _data()
    fit_to_data(model, data, fresh=True)
    ((x, z),) = shown
    images = data.to_float(data.train[:500])
    assert torch.equal(x[:100], images) and len(x) == len(z) == 2 * len(images)
    assert 0.5 < float(z[100:].std()) < 1.5  # the generated pairs' codes come from the prior
    outputs = []
    handles = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach())) for m in layers]
    d.eval()
    with torch.no_grad():
        logits = d.class_logits(x, z)
    for h in handles:
        h.remove()
    for out, layer in zip(outputs, layers):
        dims = [0, *range(2, out.dim())]
        std = out.std(dims)
        live = std > 1e-3  # units a ReLU-like layer before left without signal stay silent
        torch.testing.assert_close(std[live], torch.ones_like(std[live]), atol=1e-3, rtol=1e-3)
        if layer.bias is not None:
            torch.testing.assert_close(out.mean(dims)[live], torch.zeros_like(std[live]), atol=1e-3, rtol=0)
    for part in logits.split(len(images)):  # real and generated pairs alike
        assert 0.2 < float(part.std()) < 5
    average = model[AVERAGE_PREFIX + "discriminator"].state_dict()
    assert all(torch.equal(t, average[k]) for k, t in d.state_dict().items())
    fit_to_data(model, data, fresh=False)  # a resumed run keeps what its checkpoint restored
    assert len(shown) == 1 and all(torch.equal(t, average[k]) for k, t in d.state_dict().items())


def test_weight_norm_trains_and_its_checkpoint_restores_the_same_classifier(tmp_path):
    values = {**PRESETS["mnist-kplus1"], "weight_norm": True, "feature_matching": True, "ema_decay": 0.999}
    config = make_config({**values, "batch_size": 16, "precision": "fp32", "steps": 3, "threads": 1, "data_dir": str(tmp_path)})
    torch.manual_seed(0)
    model, optimizers = build_model(config)
    data = _data()
    fit_to_data(model, data, fresh=True)
    step = build_step(config, model, optimizers, make_runtime("fp32", torch.device("cpu")), data)
    g = _weight_normalised(model)[0].parametrizations.weight.original0
    before = g.detach().clone()
    for index in range(2):
        losses = step(Batch(data.to_float(data.train[16 * index : 16 * index + 16]).contiguous()), index)
        assert all(torch.isfinite(v) for v in losses.values())
    assert not torch.equal(g, before)  # the scales train
    path = tmp_path / "ckpt.safetensors"
    path.write_bytes(checkpoint.checkpoint_bytes(model, optimizers, 2, {}))
    torch.manual_seed(5)
    restored, _ = build_model(config)
    checkpoint.restore(*checkpoint.read_checkpoint(path), restored, restore_rng=False)
    x = data.to_float(data.heldout)
    torch.testing.assert_close(class_predictions(restored, x), class_predictions(model, x), rtol=0, atol=0)
