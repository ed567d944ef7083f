import json
import subprocess
import sys

from ali.cli import main

TINY = ["--set", "batch_size=16", "--set", "eval_samples=200", "--set", "log_every=5", "--set", "threads=1", "--no-progress"]


def test_train_smoke_and_resume(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--config", "toy25", "--steps", "10", "--seed", "3", "--out", str(run), *TINY]) == 0
    out = capsys.readouterr().out
    assert '"modes_covered"' in out and (run / "metrics.json").exists()
    assert json.loads((run / "training_options.json").read_text())["seed"] == 3
    assert main(["train", "--out", str(run), "--resume", "--steps", "15", "--no-progress"]) == 0
    assert json.loads((run / "metrics.json").read_text())["steps"] == 15


def test_study_smoke(tmp_path, capsys):
    out = tmp_path / "study"
    args = [
        "study",
        "--config",
        "toy25",
        "--methods",
        "ali,gan-inverse,gan-posthoc,vae",
        "--seeds",
        "2",
        "--steps",
        "6",
        "--out",
        str(out),
        *TINY,
    ]
    assert main(args) == 0
    study = json.loads((out / "study.json").read_text())
    assert set(study["methods"]) == {"ali", "gan-inverse", "gan-posthoc", "vae"}
    summary = study["methods"]["ali"]["summary"]["modes_covered"]
    assert set(summary) == {"mean", "std", "min", "max"} and summary["min"] <= summary["mean"] <= summary["max"]
    assert len(study["methods"]["vae"]["runs"]) == 2
    assert "| GAN + post-hoc encoder (`gan-posthoc`) |" in (out / "study.md").read_text()
    assert (out / "study.png").stat().st_size > 1000
    assert main(args) == 2  # a second study into the same directory is refused
    assert "already holds a study" in capsys.readouterr().err


def test_bad_input_is_one_error_line_and_exit_2(tmp_path, capsys):
    cases = [
        ["train", "--config", "toy25", "--set", "lr_rate=1", "--out", str(tmp_path / "a")],
        ["train", "--config", "toy25", "--set", "lr=-1", "--out", str(tmp_path / "b")],
        ["train", "--config", "no-such-preset", "--out", str(tmp_path / "c")],
        ["study", "--config", "toy25", "--methods", "ali,gan", "--out", str(tmp_path / "d")],
        ["train", "--out", str(tmp_path / "never-ran"), "--resume"],
    ]
    for args in cases:
        assert main(args) == 2, args
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_installed_command_prints_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "ali", "train", "--config", "toy25", "--set", "lr_rate=1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: unknown config key 'lr_rate'") and "Traceback" not in proc.stderr


def test_latent_size_that_the_architecture_cannot_take_is_refused(tmp_path, capsys):
    assert main(["train", "--config", "toy25", "--set", "latent_dim=3", "--out", str(tmp_path / "r")]) == 2
    assert "does not match architecture 'toy'" in capsys.readouterr().err
