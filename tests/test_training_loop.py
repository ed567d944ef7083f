import json
import shutil

import pytest
import torch

from ali import checkpoint as ckpt
from ali import rundir
from ali.config import for_method, make_config
from ali.errors import AliError
from ali.finish import train_and_finish
from ali.presets import PRESETS
from ali.rundir import load_trained
from ali.training.build import total_steps
from ali.training.loop import lr_factor, train

TINY = {
    **PRESETS["toy25"],
    "batch_size": 32,
    "steps": 24,
    "log_every": 1,
    "checkpoint_every": 8,
    "keep_checkpoints": 5,
    "eval_samples": 200,
    "threads": 1,
}


def _stats(run_dir):
    return [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]


def _losses(rows):
    return [{k: v for k, v in r.items() if k not in ("steps_per_s",)} for r in rows]


def test_the_loop_only_trains_and_checkpoints(tmp_path):
    """train() hands back the trained model; metrics, pictures and the report are ali.finish's."""
    run = tmp_path / "run"
    trained = train(make_config(TINY), run, progress=False)
    assert trained is not None and trained.steps == 24 and trained.method.name == TINY["method"]
    written = {p.name for p in run.iterdir()}
    assert {"metrics.json", "comparison.png", "report.html"}.isdisjoint(written)
    assert "training_options.json" in written and rundir.list_checkpoints(run)


def test_run_directory_contents(tmp_path):
    run = tmp_path / "run"
    metrics = train_and_finish(make_config(TINY), run, progress=False)
    assert json.loads((run / "training_options.json").read_text())["steps"] == 24
    assert [r["step"] for r in _stats(run)] == list(range(1, 25))
    assert [p.name for p in rundir.list_checkpoints(run)] == [f"checkpoint-{s:09d}.safetensors" for s in (8, 16, 24)]
    assert json.loads((run / "metrics.json").read_text()) == metrics
    assert (run / "comparison.png").stat().st_size > 1000
    for key in (
        "modes_covered",
        "modes_covered_3sigma",
        "high_quality_fraction",
        "reverse_kl",
        "mode_offset",
        "recon_same_mode_fraction",
        "recon_mse",
        "train_seconds",
    ):
        assert key in metrics


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"prior_sampling": "random"},
        {"method": "gan-posthoc"},
        {"method": "vae"},
        {"method": "bigan"},
        {"method": "alice", "alice_form": "adversarial", "recon_trains": "both"},  # the second D's state and optimizer too
        {"method": "alice", "z_adversarial_weight": 1.0},
    ],
)
def test_resumed_run_continues_exactly_like_an_uninterrupted_one(tmp_path, overrides):
    config = make_config({**for_method(TINY, overrides.get("method", TINY["method"])), **overrides})
    full, cut = tmp_path / "full", tmp_path / "cut"
    train_and_finish(config, full, progress=False)
    # A run killed after its step-8 checkpoint: the same directory minus everything written later.
    shutil.copytree(full, cut)
    for path in rundir.list_checkpoints(cut)[1:]:
        path.unlink()
    (cut / "metrics.json").unlink()
    train_and_finish(config, cut, resume=True, progress=False)
    assert _losses(_stats(cut)) == _losses(_stats(full))
    assert len(_stats(cut)) == total_steps(config)


def test_a_run_directory_that_holds_a_run_is_never_overwritten(tmp_path):
    run = tmp_path / "run"
    train_and_finish(make_config(TINY), run, progress=False)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(AliError, match="already holds a run"):
        train_and_finish(make_config(TINY), run, progress=False)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_checkpoint_round_trip_restores_every_tensor(tmp_path, monkeypatch):
    run = tmp_path / "run"
    train_and_finish(make_config(TINY), run, progress=False)

    def no_optimizer(*_args, **_kwargs):
        raise AssertionError("loading a trained run builds networks only, no optimizers")

    monkeypatch.setattr(torch.optim, "Adam", no_optimizer)
    _, model, _ = load_trained(run)
    tensors, header = ckpt.read_checkpoint(rundir.list_checkpoints(run)[-1])
    assert header["step"] == 24 and header["config"]["steps"] == 24
    for key, value in model.state_dict().items():
        assert torch.equal(tensors[f"net/{key}"], value)
    assert any(k.startswith("opt/generator/") for k in tensors) and any(k.startswith("opt/discriminator/") for k in tensors)


def test_lr_schedule_is_constant_then_linear():
    config = make_config({**TINY, "steps": 100, "decay_start": 0.5, "lr_final_fraction": 0.0})
    assert lr_factor(config, 0) == 1.0 and lr_factor(config, 49) == 1.0
    assert lr_factor(config, 75) == pytest.approx(0.5)
    config = make_config({**TINY, "steps": 24, "decay_start": 0.25, "lr_final_fraction": 0.1})
    assert lr_factor(config, 23) == pytest.approx(1 - 0.9 * (23 / 24 - 0.25) / 0.75)


def test_discriminator_learning_rate_is_scaled_by_d_lr_factor(tmp_path):
    """Every discriminator's rate, the code D's too, follows d_lr_factor; the generators' does not."""
    over = {"steps": 8, "checkpoint_every": 8, "decay_start": 0.5, "lr_final_fraction": 0.5, "d_lr_factor": 3.0}
    config = make_config({**TINY, **over, "z_adversarial_weight": 1.0})
    train_and_finish(config, tmp_path / "run", progress=False)
    _, header = ckpt.read_checkpoint(rundir.list_checkpoints(tmp_path / "run")[-1])
    lr_g = [g["lr"] for g in header["optimizers"]["generator"]["param_groups"]]
    lr_d = [g["lr"] for g in header["optimizers"]["discriminator"]["param_groups"]]
    expected = config.lr * lr_factor(config, 7)  # the lr of the last step taken
    lr_dz = [g["lr"] for g in header["optimizers"]["discriminator_z"]["param_groups"]]
    assert lr_g == [pytest.approx(expected)] and lr_d == lr_dz == [pytest.approx(3.0 * expected)]


def test_tensorboard_logs_the_stats_lines_or_says_how_to_install_it(tmp_path, monkeypatch):
    from ali.training import loop, tensorboard

    events = []

    class FakeWriter:
        def add_scalar(self, tag, value, step):
            events.append((tag, step))

        def add_image(self, *args, **kwargs):
            events.append(("image", args[2]))

        def flush(self):
            pass

        def close(self):
            events.append(("closed", None))

    monkeypatch.setattr(loop, "TensorBoardLog", lambda run_dir: tensorboard.TensorBoardLog(run_dir, FakeWriter()))
    train_and_finish(make_config({**TINY, "steps": 4, "log_every": 2, "tensorboard": True}), tmp_path / "run", progress=False)
    assert ("train/loss_d", 2) in events and ("train/lr", 4) in events and events[-1] == ("closed", None)
    monkeypatch.setattr(tensorboard, "_summary_writer", tensorboard._summary_writer)
    monkeypatch.setitem(__import__("sys").modules, "torch.utils.tensorboard", None)  # as if not installed
    with pytest.raises(AliError, match=r"pip install 'ali\[tensorboard\]'"):
        tensorboard.TensorBoardLog(tmp_path)


def test_a_run_logging_to_a_file_writes_plain_progress_lines(tmp_path, capsys, monkeypatch):
    """stderr under capsys is not a terminal, as under CI, nohup or a job scheduler: no bar
    redraws (carriage returns), a bounded number of whole lines, the losses in them."""
    from ali import progress

    monkeypatch.setattr(progress, "INTERVAL_S", 3600.0)  # no line falls due before the run ends
    train_and_finish(make_config({**TINY, "steps": 12, "log_every": 4}), tmp_path / "run", progress=True)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if " steps/s" in line]
    assert "\r" not in err
    assert len(lines) == 1 and lines[0].startswith("alice: step 12/12 (100%)") and " loss_d=" in lines[0]
    monkeypatch.setattr(progress, "INTERVAL_S", 0.0)  # a line after every step
    train_and_finish(make_config({**TINY, "steps": 12, "log_every": 4}), tmp_path / "run2", progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err and len([line for line in err.splitlines() if " steps/s" in line]) == 12


@pytest.mark.report
def test_a_finished_run_has_its_report(tmp_path):
    run = tmp_path / "run"
    train_and_finish(make_config({**TINY, "steps": 4, "log_every": 2}), run, progress=False)
    page = (run / "report.html").read_text()
    assert "<img" in page and "Training curves" in page and "http://" not in page
