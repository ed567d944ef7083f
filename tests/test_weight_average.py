"""The generators' weight average (config key ema_decay): the update rule, exact resume, and
that sampling and evaluation use the average while no optimizer ever sees it."""

import json
import shutil

import numpy as np
import pytest
import torch
from data_writers import bar_images, write_bar_mnist

from ali import checkpoint as ckpt
from ali import rundir
from ali.cli import main
from ali.config import make_config
from ali.data import load_dataset
from ali.errors import AliError
from ali.evaluation.artifacts import artifact_metrics
from ali.evaluation.classifier import fit_classifier, save_classifier
from ali.evaluation.image_eval import artifact_check, evaluate_images
from ali.finish import train_and_finish
from ali.nets.model import AVERAGE_PREFIX, Model
from ali.presets import PRESETS
from ali.rundir import load_trained
from ali.training import loop
from ali.training.build import build_model
from ali.training.loop import average_decay, train

TINY = {
    **PRESETS["toy25"],
    "batch_size": 32,
    "steps": 24,
    "log_every": 4,
    "checkpoint_every": 8,
    "keep_checkpoints": 5,
    "eval_samples": 200,
    "threads": 1,
    "ema_decay": 0.9,  # still warming up over these 24 steps: every step's weight differs
}


def _params(net):
    return [p.detach().clone() for p in net.parameters()]


def test_the_average_is_the_warmed_up_exponential_moving_average_of_each_step(tmp_path, monkeypatch):
    seen = []  # (decay, live decoder and encoder weights after the step)
    start = {}
    update = Model.update_averages

    def spy(self, decay):
        if not seen:  # the average before its first update: the initial weights
            start.update({name: _params(self[AVERAGE_PREFIX + name]) for name in ("encoder", "decoder")})
        seen.append((decay, {name: _params(self[name]) for name in ("encoder", "decoder")}))
        update(self, decay)

    monkeypatch.setattr(Model, "update_averages", spy)
    trained = train(make_config(TINY), tmp_path / "run", progress=False)
    assert len(seen) == TINY["steps"]
    assert [d for d, _ in seen] == pytest.approx([(1 + s) / (10 + s) for s in range(TINY["steps"])])
    assert average_decay(make_config(TINY), 1_000) == 0.9
    torch.manual_seed(0)
    fresh = build_model(make_config(TINY))[0]
    for name in ("encoder", "decoder"):
        for got, want in zip(start[name], fresh[name].parameters()):
            torch.testing.assert_close(got, want.detach())  # it starts from the initial weights
        expected = start[name]
        for decay, live in seen:
            expected = [decay * a + (1 - decay) * w for a, w in zip(expected, live[name])]
        for got, want, last in zip(trained.model[name].parameters(), expected, seen[-1][1][name]):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
            assert not torch.equal(got, last)  # the evaluated network is not the live one


def test_no_optimizer_trains_the_average_and_a_run_without_it_keeps_none():
    model, optimizers = build_model(make_config(TINY))
    averaged = {id(p) for name in model.averaged for p in model[AVERAGE_PREFIX + name].parameters()}
    assert model.averaged == ("encoder", "decoder") and averaged
    trained = {id(p) for opt in optimizers.values() for group in opt.param_groups for p in group["params"]}
    assert not averaged & trained
    assert all(not p.requires_grad for name in model.averaged for p in model[AVERAGE_PREFIX + name].parameters())
    plain, _ = build_model(make_config({**TINY, "ema_decay": 0.0}))
    assert plain.averaged == () and plain.with_averages() is plain
    assert not any(k.startswith(AVERAGE_PREFIX) for k in plain.state_dict())


def test_a_resumed_run_ends_with_the_same_average_and_is_evaluated_with_it(tmp_path):
    config = make_config(TINY)
    full, cut = tmp_path / "full", tmp_path / "cut"
    metrics = train_and_finish(config, full, progress=False)
    shutil.copytree(full, cut)
    for path in rundir.list_checkpoints(cut)[1:]:
        path.unlink()
    (cut / "metrics.json").unlink()
    resumed = train_and_finish(config, cut, resume=True, progress=False)
    a, _ = ckpt.read_checkpoint(rundir.list_checkpoints(full)[-1])
    b, _ = ckpt.read_checkpoint(rundir.list_checkpoints(cut)[-1])
    assert {k for k in a if k.startswith(f"net/{AVERAGE_PREFIX}")}
    for key in a:
        if key.startswith("net/"):
            assert torch.equal(a[key], b[key]), key
    assert {k: v for k, v in resumed.items() if k != "train_seconds"} == {
        k: v for k, v in metrics.items() if k != "train_seconds"
    }
    # The loaded model is the averaged one, under the usual network names.
    _, model, _ = load_trained(full)
    assert not model.averaged
    for name in ("encoder", "decoder"):
        for key, value in model[name].state_dict().items():
            assert torch.equal(value, a[f"net/{AVERAGE_PREFIX}{name}.{key}"]), (name, key)


def test_the_live_weights_can_be_loaded_and_a_run_without_an_average_refuses_to_fake_one(tmp_path):
    run = tmp_path / "run"
    train_and_finish(make_config(TINY), run, progress=False)
    tensors, _ = ckpt.read_checkpoint(rundir.list_checkpoints(run)[-1])
    _, live, _ = load_trained(run, "live")
    for key, value in live["decoder"].state_dict().items():
        assert torch.equal(value, tensors[f"net/decoder.{key}"])
    plain = tmp_path / "plain"
    train_and_finish(make_config({**TINY, "ema_decay": 0.0}), plain, progress=False)
    with pytest.raises(AliError, match="kept no weight average"):
        load_trained(plain, "average")


def test_an_earlier_checkpoint_can_be_scored_and_a_missing_one_is_named(tmp_path):
    run = tmp_path / "run"
    train_and_finish(make_config(TINY), run, progress=False)
    tensors, _ = ckpt.read_checkpoint(rundir.checkpoint_path(run, 8))
    _, model, step = load_trained(run, "live", step=8)
    assert step == 8
    for key, value in model["decoder"].state_dict().items():
        assert torch.equal(value, tensors[f"net/decoder.{key}"])
    with pytest.raises(AliError, match="no checkpoint of step 9; it keeps steps 8, 16, 24"):
        load_trained(run, step=9)


def test_a_run_cannot_resume_with_another_weight_average_setting(tmp_path):
    run = tmp_path / "run"
    train_and_finish(make_config(TINY), run, progress=False)
    tensors, header = ckpt.read_checkpoint(rundir.list_checkpoints(run)[-1])
    model, _ = build_model(make_config({**TINY, "ema_decay": 0.0}))
    with pytest.raises(AliError, match="ema_decay=0.9"):
        ckpt.restore(tensors, header, model)


@pytest.fixture
def bar_digits(tmp_path):
    """Format-exact MNIST files of bars whose place is their class."""
    return write_bar_mnist(tmp_path / "data", 64, 40)


def test_image_runs_copy_running_statistics_and_draw_grids_with_the_average(bar_digits, tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(loop, "write_sample_grid", lambda model, path, conditions=None: drawn.append(model))
    values = {**PRESETS["mnist"], "steps": 4, "batch_size": 16, "grid_every": 2, "checkpoint_every": 2, "threads": 1}
    config = make_config({**values, "ema_decay": 0.9, "data_dir": str(bar_digits)})
    trained = train(config, tmp_path / "run", progress=False)
    live = trained.model  # the evaluated model: the averages under the usual names
    assert len(drawn) == 2 and all(m["decoder"] is live["decoder"] for m in drawn)
    tensors, _ = ckpt.read_checkpoint(rundir.list_checkpoints(tmp_path / "run")[-1])
    buffers = [k for k in tensors if k.startswith("net/decoder.") and "running_mean" in k]
    assert buffers
    for key in buffers:  # the averaged decoder's batch-norm statistics are the live ones
        assert torch.equal(tensors[key.replace("net/decoder.", f"net/{AVERAGE_PREFIX}decoder.")], tensors[key])


def test_ali_evaluate_scores_the_weights_and_checkpoint_asked_for(bar_digits, tmp_path):
    run = tmp_path / "run"
    sets = ["batch_size=16", "checkpoint_every=2", "eval_samples=100", "threads=1", "ema_decay=0.9", "lr=0.005"]
    sets.append(f"data_dir={bar_digits}")
    assert (
        main(["train", "--config", "mnist", "--steps", "4", "--out", str(run), "--no-progress", *[f"--set={s}" for s in sets]])
        == 0
    )
    out, classifier = tmp_path / "eval.json", tmp_path / "mnist.safetensors"
    images = torch.from_numpy(bar_images(np.arange(64) % 10, (1, 28, 28), 0))
    save_classifier(fit_classifier(images, torch.arange(64) % 10, epochs=1, progress=False), classifier, {"dataset": "mnist"})
    args = [
        "evaluate",
        "--run",
        str(run),
        "--metrics",
        "recon",
        "--no-progress",
        "--out",
        str(out),
        "--classifier",
        str(classifier),
    ]
    scored = {}
    for extra in (["--weights", "live"], [], ["--weights", "live", "--step", "2"]):
        assert main([*args, *extra]) == 0
        record = json.loads(out.read_text())
        scored[(record["weights"], record["checkpoint_step"])] = (record["latent_mean"], record["latent_std"])
    assert set(scored) == {("live", 4), ("average", 4), ("live", 2)}
    assert len(set(scored.values())) == 3  # three different encoders
    # Every kept checkpoint in one call: the same figures as one call per step, and their curves.
    curve = tmp_path / "curve.json"
    curve_args = ["evaluate", "--run", str(run), "--metrics", "recon", "--no-progress", "--classifier", str(classifier)]
    assert main([*curve_args, "--out", str(curve), "--every-checkpoint", "--weights", "live"]) == 0
    record = json.loads(curve.read_text())
    assert record["weights"] == "live" and [p["checkpoint_step"] for p in record["points"]] == [2, 4]
    for point in record["points"]:
        assert (point["latent_mean"], point["latent_std"]) == scored[("live", point["checkpoint_step"])]
    assert curve.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main([*args, "--every-checkpoint", "--step", "2"]) == 2  # one or the other, never one ignored
    assert main([*curve_args, "--every-checkpoint", "--out", str(tmp_path / "c.png")]) == 2  # the JSON's name
    assert not (tmp_path / "c.png").exists()
    # The artifact group needs no classifier: spread, frame, grid and reconstruction error.
    assert main(["evaluate", "--run", str(run), "--metrics", "artifacts", "--no-progress", "--out", str(out)]) == 0
    artifacts = json.loads(out.read_text())
    assert artifacts["artifact_images"] == 40 and 0 <= artifacts["sample_checkerboard_power"] <= 1
    assert artifacts["artifact_recon_mse_mu"] > 0 and "recon_class_accuracy" not in artifacts
    # the end of training measured them the same way: the same fixed z, images and weights
    finished = json.loads((run / "metrics.json").read_text())
    for key in ("sample_pixel_spread", "sample_checkerboard_power", "sample_border_spread_ratio", "artifact_recon_mse_mu"):
        assert artifacts[key] == pytest.approx(finished[key], rel=1e-4, abs=1e-6), key


def test_a_run_resumed_before_its_first_checkpoint_gets_the_data_dependent_start(bar_digits, tmp_path):
    values = {**PRESETS["mnist"], "steps": 4, "batch_size": 16, "threads": 1, "data_dir": str(bar_digits)}
    config = make_config(values)
    rundir.prepare_run_dir(tmp_path / "run", config, {"precision": "fp32", "device": "cpu"})  # killed before step 1
    fresh = train(config, tmp_path / "fresh", progress=False)
    resumed = train(config, tmp_path / "run", resume=True, progress=False)
    for key, value in fresh.model["decoder"].state_dict().items():
        assert torch.equal(resumed.model["decoder"].state_dict()[key], value), key


def test_a_conditional_run_with_fewer_evaluation_samples_than_artifact_images_is_evaluated(tmp_path):
    """The artifact figures draw their own conditions for their own count (1,000 samples here),
    whatever eval_samples is: 700 samples once crashed the end of a conditional run."""
    data_dir = write_bar_mnist(tmp_path / "data", 100, 1100)
    dataset = load_dataset("mnist", data_dir)
    model, _ = build_model(make_config({**PRESETS["mnist-conditional"], "data_dir": str(data_dir)}))
    with torch.inference_mode():  # as the end of training runs it
        metrics = evaluate_images(model, dataset, 700, tmp_path, condition_dim=10)
        again, samples = artifact_check(model, dataset, 10)
    assert metrics["artifact_images"] == 1000 and metrics["eval_images"] == 700
    assert len(samples) == 1000 and again["sample_pixel_spread"] == pytest.approx(metrics["sample_pixel_spread"], rel=1e-4)


def test_the_artifact_figures_set_samples_beside_the_first_held_out_images(tmp_path):
    """data_* are the figures of the first 1,000 held-out images (not of the samples, not of
    training images), the reference every sample_* figure is read against."""
    data_dir = write_bar_mnist(tmp_path / "data", 100, 1100)
    dataset = load_dataset("mnist", data_dir)
    model, _ = build_model(make_config({**PRESETS["mnist"], "data_dir": str(data_dir)}))
    model.eval()
    figures, samples = artifact_check(model, dataset)
    expected = artifact_metrics(samples, dataset.to_float(dataset.heldout[:1000]))
    assert figures["artifact_images"] == 1000
    for key, value in expected.items():
        assert figures[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    training_images = artifact_metrics(samples, dataset.to_float(dataset.train[:1000]))
    assert figures["data_pixel_spread"] != pytest.approx(training_images["data_pixel_spread"], rel=1e-3)
