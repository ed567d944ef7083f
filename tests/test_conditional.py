"""Conditional ALI (ali.methods.ali_conditional) and its grids (ali.generate).

Everything runs the small `mnist` architecture at batch 4-8 on synthetic labelled images (bright
squares at random places, random classes or random binary attributes), so no dataset files are
needed and the whole module stays fast on a 2-core CPU.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

import ali
from ali import generate, rundir
from ali.cli import main
from ali.config import make_config
from ali.data.dataset import Dataset, as_conditions
from ali.errors import AliError
from ali.finish import train_and_finish
from ali.generate import conditional_grid
from ali.methods import ali_conditional
from ali.methods.base import Batch
from ali.nets.architectures import ARCHITECTURES
from ali.presets import PRESETS
from ali.rundir import load_trained
from ali.training.build import build_model, build_step
from ali.training.hardware import make_runtime

H = W = 28
PAD = 2
CLASSES = 10
ATTRIBUTES = ("Male", "Young", "Black_Hair", "Smiling", *(f"Attr_{i}" for i in range(36)))  # 40, as CelebA
EMBEDDINGS = ("encoder.embed", "decoder.embed", "discriminator.embed", "discriminator.project")

RUN = {
    **PRESETS["mnist-conditional"],
    "batch_size": 8,
    "steps": 4,
    "log_every": 1,
    "checkpoint_every": 2,
    "grid_every": 0,
    "eval_samples": 100,
    "threads": 1,
    "precision": "fp32",
}


def _squares(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, H, W, dtype=torch.uint8)
    for img, (r, c) in zip(x, torch.randint(0, H - 8, (n, 2), generator=g).tolist()):
        img[:, r : r + 8, c : c + 8] = 255
    return x


def _labelled(attributes: bool = False) -> Dataset:
    g = torch.Generator().manual_seed(2)
    if attributes:
        labels = lambda n: torch.randint(0, 2, (n, len(ATTRIBUTES)), generator=g, dtype=torch.uint8)
    else:
        labels = lambda n: torch.randint(0, CLASSES, (n,), generator=g)
    return Dataset(
        name="squares",
        train=_squares(64, 0),
        heldout=_squares(20, 1),
        labels=labels(64),
        heldout_labels=labels(20),
        label_names=ATTRIBUTES if attributes else (),
    )


def _train(monkeypatch, out: Path, data: Dataset, resume: bool = False, **over) -> None:
    monkeypatch.setattr(rundir, "load_dataset", lambda *_args: data)
    train_and_finish(make_config({**RUN, **over}), out, resume=resume, progress=False)


@pytest.fixture(scope="module")
def class_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("conditional") / "classes"
    with pytest.MonkeyPatch.context() as patch:
        _train(patch, out, _labelled(), grid_every=2)
    return out


@pytest.fixture(scope="module")
def attribute_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("conditional") / "attributes"
    with pytest.MonkeyPatch.context() as patch:
        _train(patch, out, _labelled(attributes=True), condition_dim=len(ATTRIBUTES), steps=2)
    return out


def _model(**over):
    torch.manual_seed(0)
    config = make_config({**RUN, "batch_size": 4, **over})
    model, optimizers = build_model(config)
    step = build_step(config, model, optimizers, make_runtime("fp32", torch.device("cpu")))
    return model, step


def _batch(n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(n, 1, H, W), as_conditions(torch.arange(n) % CLASSES, CLASSES)


def _stats(run: Path) -> list[dict]:
    """The run's log lines without their timings."""
    lines = (run / "stats.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "steps_per_s"} for line in lines]


def _size(cols: int, rows: int) -> tuple[int, int]:
    return cols * (W + PAD) + PAD, rows * (H + PAD) + PAD


def test_the_condition_changes_every_network_s_output() -> None:
    model, _ = _model()
    model.eval()
    x, z = torch.rand(2, 1, H, W), torch.randn(2, 32)
    y0, y1 = as_conditions(torch.tensor([0, 0]), CLASSES), as_conditions(torch.tensor([3, 7]), CLASSES)
    with torch.no_grad():
        assert not torch.allclose(model.decoder(z, y0), model.decoder(z, y1))
        assert not torch.allclose(model.encoder.moments(x, y0)[0], model.encoder.moments(x, y1)[0])
        assert not torch.allclose(model.discriminator(x, z, y0), model.discriminator(x, z, y1))


@pytest.mark.parametrize("update", ["simultaneous", "two-pass", "alternating"])
def test_one_step_sends_gradients_into_every_embedding(update: str) -> None:
    model, step = _model(update=update)
    x, y = _batch()
    losses = step(Batch(x, y), 0)
    assert all(torch.isfinite(v) for v in losses.values())
    for name in EMBEDDINGS:
        grads = [p.grad for p in model.get_submodule(name).parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads), name


def test_a_few_steps_change_every_tensor_of_every_network() -> None:
    model, step = _model()
    before = {k: v.clone() for k, v in model.named_parameters()}
    for index in range(3):
        x, y = _batch()
        step(Batch(x, y), index)
    unchanged = [k for k, v in model.named_parameters() if torch.equal(v, before[k])]
    assert not unchanged
    assert {k.split(".")[0] for k in before} == {"encoder", "decoder", "discriminator"}
    assert all(any(k.startswith(name) for k in before) for name in EMBEDDINGS)


def test_celeba_nets_join_a_256_channel_embedding_where_the_paper_does() -> None:
    config = make_config(PRESETS["celeba64-conditional"])
    nets = ali_conditional.networks(ARCHITECTURES["celeba64"], {"condition_dim": 40, "embed_dim": 256, "projection": True})
    assert nets["encoder"].head[0].in_channels == 512 + 256  # before the last 1x1 conv
    assert nets["decoder"].net[0].in_channels == config.latent_dim + 256  # concat(z, embedding)
    assert nets["discriminator"].joint[1].in_channels == 512 + 1024 + 256  # D(x), D(z), embedding
    assert {net.embed.linear.in_features for net in nets.values()} == {40}
    assert nets["discriminator"].project.weight.shape == (512, 40)  # <P y, D(x)>: one weight per D(x) channel


def test_the_projection_adds_the_inner_product_of_y_s_embedding_with_d_x() -> None:
    model, _ = _model()
    d = model.discriminator.eval()
    x, z = torch.rand(3, 1, H, W), torch.randn(3, 32)
    y = as_conditions(torch.tensor([1, 4, 9]), CLASSES)
    with torch.no_grad():
        with_projection = d(x, z, y)
        inner = (d.project(y) * d.dx(x).flatten(1)).sum(1)
        d.project.weight.zero_()
        assert torch.allclose(with_projection, d(x, z, y) + inner, atol=1e-5)
        assert inner.abs().min() > 0
    concat_only, _ = _model(projection=False)
    assert concat_only.discriminator.project is None
    assert not any("project" in name for name, _ in concat_only.named_parameters())


@pytest.mark.parametrize("update", ["simultaneous", "two-pass", "alternating"])
def test_real_and_fake_pairs_are_judged_under_the_batch_s_own_y(update: str) -> None:
    """D's logit is made a known function of (z, y), (v . y) * sum(z): one step's losses must be
    the hand computation with the batch's y on both sides, the encoder's codes on the real side
    and the prior's draws on the fake side."""
    model, step = _model(update=update)
    v = torch.linspace(-1.0, 1.0, CLASSES)
    seen: dict[str, torch.Tensor] = {}

    def known_logit(_module, args, out):
        _, z, y = args
        keep("y", y)
        return (y @ v) * z.flatten(1).sum(1) + 0 * out  # D's own weights still get (zero) gradients

    def keep(name: str, value: torch.Tensor) -> None:  # a hook that returns None leaves the call as it was
        seen.setdefault(name, value.detach().clone())

    model.encoder.register_forward_hook(lambda _m, _args, out: keep("z_hat", out))
    model.decoder.register_forward_pre_hook(lambda _m, args: keep("z", args[0]))  # the first call decodes the prior's z
    model.discriminator.register_forward_hook(known_logit)
    x, y = _batch()
    losses = step(Batch(x, y), 0)
    real_y, fake_y = seen["y"].chunk(2)
    assert torch.equal(real_y, y) and torch.equal(fake_y, y)
    a, b = (y @ v) * seen["z_hat"].sum(1), (y @ v) * seen["z"].sum(1)
    softplus = torch.nn.functional.softplus
    torch.testing.assert_close(losses["loss_d"], softplus(-a).mean() + softplus(b).mean())
    torch.testing.assert_close(losses["loss_g"], softplus(a).mean() + softplus(-b).mean())


def test_the_cycle_term_trains_both_generators_and_is_off_at_zero() -> None:
    x, y = _batch()
    model, step = _model(cycle_weight=0.0)
    assert "recon" not in step(Batch(x, y), 0)
    model, step = _model(cycle_weight=0.3, update="two-pass")
    # A D without weights leaves the cycle as the generators' only gradient.
    for p in model.discriminator.parameters():
        p.data.zero_()
    losses = step(Batch(x, y), 0)
    assert losses["recon"] > 0
    for net in ("encoder", "decoder"):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.get_submodule(net).parameters()), net


def test_the_conditional_mnist_recipes_keep_the_recipe_s_cycle_weight() -> None:
    for name in ("mnist", "fashion-mnist"):
        assert PRESETS[f"{name}-conditional"]["cycle_weight"] == PRESETS[name]["recon_weight"]
        assert make_config(PRESETS[f"{name}-conditional"]).projection


def test_a_conditional_run_writes_its_grids_and_metrics(class_run: Path) -> None:
    for name in ("samples-000000002.png", "samples.png", "reconstructions.png", "metrics.json"):
        assert (class_run / name).is_file(), name
    metrics = json.loads((class_run / "metrics.json").read_text())
    # reconstructed with each image's own y, and under another y': named so, never as recon_mse
    assert {"conditional_recon_mse", "conditional_recon_mse_mu", "swapped_y_recon_mse"} <= set(metrics)
    assert "recon_mse" not in metrics and metrics["heldout_images"] == 20


def test_the_toy_architecture_is_refused() -> None:
    with pytest.raises(AliError, match="needs an image architecture.*arch="):
        build_model(make_config({"method": "ali-conditional"}))


def test_condition_vectors_of_the_wrong_size_are_refused() -> None:
    with pytest.raises(AliError, match="set condition_dim=10"):
        as_conditions(torch.tensor([0, 9]), 5)
    with pytest.raises(AliError, match="set condition_dim=40"):
        as_conditions(torch.zeros(3, 40), 10)


def test_a_run_on_more_classes_than_its_condition_dim_is_refused(monkeypatch, tmp_path: Path) -> None:
    with pytest.raises(AliError, match="conditions on 5 classes; set condition_dim=10"):
        _train(monkeypatch, tmp_path / "run", _labelled(), condition_dim=5)


def _decoded(monkeypatch) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Record what conditional_grid decodes (z, y), tile by tile."""
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    real = generate.decode

    def spy(model, z, conditions):
        calls.append((z.clone(), conditions.clone()))
        return real(model, z, conditions)

    monkeypatch.setattr(generate, "decode", spy)
    return calls


def test_class_grid_has_one_column_per_class_and_a_z_per_row(class_run: Path, monkeypatch) -> None:
    config, model, _ = load_trained(class_run)
    calls = _decoded(monkeypatch)
    assert conditional_grid(model, config, (), 0, "0-9", rows=3).size == _size(10, 3)
    assert conditional_grid(model, config, (), 0, "0,3,7").size == _size(3, 8)
    z, y = (t.view(3, 10, -1) for t in calls[0])
    assert torch.equal(y.argmax(-1), torch.arange(10).expand(3, 10))  # column c: class c
    assert torch.equal(z, z[:, :1].expand_as(z)) and not torch.equal(z[0], z[1])  # row r: its own z
    assert torch.equal(calls[1][1].argmax(-1), torch.tensor([0, 3, 7] * 8))
    again = conditional_grid(model, config, (), 0, "0-9", rows=3)  # the same z seed, the same picture
    assert torch.equal(calls[2][0], calls[0][0]) and again.size == _size(10, 3)


def test_attribute_grid_has_a_row_per_base_and_a_column_per_addition(attribute_run: Path, monkeypatch) -> None:
    config, model, _ = load_trained(attribute_run)
    calls = _decoded(monkeypatch)
    spec = "Male,Young;Male,-Young;Young;-Male|Black_Hair;Smiling;-Black_Hair,Attr_3"
    assert conditional_grid(model, config, ATTRIBUTES, 0, spec).size == _size(4, 4)
    z, y = calls[0]
    assert torch.equal(z, z[:1].expand_as(z))  # one z for the whole grid
    on = lambda *names: torch.tensor([float(n in names) for n in ATTRIBUTES])
    first_row = [
        on("Male", "Young"),
        on("Male", "Young", "Black_Hair"),
        on("Male", "Young", "Black_Hair", "Smiling"),
        on("Male", "Young", "Smiling", "Attr_3"),
    ]
    assert torch.equal(y[:4], torch.stack(first_row))  # the additions are cumulative
    assert torch.equal(y[4], on("Male")) and torch.equal(y[8], on("Young")) and torch.equal(y[12], on())
    assert conditional_grid(model, config, ATTRIBUTES, 0, "Male|").size == _size(1, 1)


def test_a_condition_the_run_was_not_trained_with_is_one_clear_error(class_run: Path, attribute_run: Path) -> None:
    config, model, _ = load_trained(class_run)
    with pytest.raises(AliError, match="class.*10.*unknown to this run.*classes 0-9"):
        conditional_grid(model, config, (), 0, "0-10")
    with pytest.raises(AliError, match="not a class or a range"):
        conditional_grid(model, config, (), 0, "zero")
    with pytest.raises(AliError, match="names attributes.*celeba64"):
        conditional_grid(model, config, (), 0, "Male|Smiling")
    config, model, _ = load_trained(attribute_run)
    with pytest.raises(AliError, match="unknown attribute 'Blond_Hiar'.*knows: Male, Young, Black_Hair"):
        conditional_grid(model, config, ATTRIBUTES, 0, "Male|Blond_Hiar")
    with pytest.raises(AliError, match="one row per BASE"):
        conditional_grid(model, config, ATTRIBUTES, 0, "Male;Young|Smiling", rows=3)


# Also the check on checkpoint.restore giving restored Adam moments their parameters' memory
# layout (channels_last conv weights): without it fused Adam pairs the wrong elements.
def test_a_resumed_conditional_run_continues_exactly(monkeypatch, tmp_path: Path) -> None:
    full, cut = tmp_path / "full", tmp_path / "cut"
    over = {"steps": 8, "checkpoint_every": 4, "keep_checkpoints": 5}
    _train(monkeypatch, full, _labelled(), **over)
    # A run killed after its step-4 checkpoint: the same directory minus everything written later.
    shutil.copytree(full, cut)
    for path in rundir.list_checkpoints(cut)[1:]:
        path.unlink()
    (cut / "metrics.json").unlink()
    _train(monkeypatch, cut, _labelled(), resume=True, **over)
    assert _stats(cut) == _stats(full) and len(_stats(full)) == 8
    weights = [load_trained(run)[1].state_dict() for run in (full, cut)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_generate_command_and_api_on_a_class_conditional_run(class_run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "g.png"
    assert main(["generate", "--run", str(class_run), "--conditions", "0-4", "--rows", "3", "--out", str(out)]) == 0
    assert Image.open(out).size == (5 * 30 + 2, 3 * 30 + 2)
    assert main(["generate", "--run", str(class_run), "--conditions", "0-99", "--out", str(out)]) == 2
    assert main(["sample", "--run", str(class_run), "--out", str(out)]) == 2
    assert "ali generate" in capsys.readouterr().err
    model = ali.load(class_run)
    threes, fours = model.sample(4, seed=1, condition=3), model.sample(4, seed=1, condition=4)
    assert threes.shape == (4, 1, 28, 28) and not torch.equal(threes, fours)
    assert model.reconstruct(threes, condition=[3, 3, 3, 3]).shape == (4, 1, 28, 28)
    with pytest.raises(AliError, match="pass condition="):
        model.sample(2)
