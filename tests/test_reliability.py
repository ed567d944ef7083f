"""Divergence guard (NaN injection, D-wins warning) and failed writes (full, read-only, EROFS/EACCES/ENOSPC)."""

from __future__ import annotations

import errno
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ali import checkpoint as ckpt
from ali import cli, rundir
from ali.config import make_config
from ali.errors import AliError
from ali.finish import train_and_finish
from ali.presets import PRESETS
from ali.training import loop

SMALL = {
    **PRESETS["toy25"],
    "steps": 40,
    "batch_size": 16,
    "log_every": 5,
    "checkpoint_every": 10,
    "eval_samples": 100,
    "threads": 1,
    "keep_checkpoints": 10,
}


@pytest.fixture(autouse=True)
def _keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]


def _assert_checkpoints_finite(run: Path) -> list[int]:
    steps = []
    for path in rundir.list_checkpoints(run):
        tensors, header = ckpt.read_checkpoint(path)
        assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point()), path
        steps.append(header["step"])
    return steps


def _wrap_step(monkeypatch, after) -> None:
    """Make the loop's step call after(model, step, losses) and return what that returns."""
    real = loop.build_step

    def build(config, model, optimizers, runtime, data=None, method=None):
        inner = real(config, model, optimizers, runtime, data, method)
        return lambda batch, step: after(model, step, inner(batch, step))

    monkeypatch.setattr(loop, "build_step", build)


def _inject(monkeypatch, at: int, kind: str, every_time: bool) -> list[int]:
    """Make the step poison the weights (or only the reported loss) at step `at`."""
    hits = []

    def poisoned(model, step, losses):
        if step == at and (every_time or not hits):
            hits.append(step)
            if kind == "weight":
                with torch.no_grad():
                    next(model.decoder.parameters()).fill_(float("nan"))
            else:
                losses = {**losses, "loss_d": torch.tensor(float("inf"))}
        return losses

    _wrap_step(monkeypatch, poisoned)
    return hits


@pytest.mark.parametrize("kind", ["weight", "loss"])
def test_nan_injection_recovers_with_lower_lr(tmp_path: Path, monkeypatch, capsys, kind: str) -> None:
    hits = _inject(monkeypatch, at=23, kind=kind, every_time=False)
    run = tmp_path / "run"
    train_and_finish(make_config(SMALL), run, progress=False)
    assert hits == [23]
    rows = _rows(run)
    events = [r for r in rows if r.get("event") == "divergence"]
    assert events == [{"step": 20, "event": "divergence", "detected_at": 25, "lr_scale": 0.5, "failures": 1}]
    losses = [r for r in rows if "event" not in r]
    assert [r["step"] for r in losses] == list(range(5, 41, 5)), "rolled-back steps are logged once"
    assert all(math.isfinite(v) for r in losses for k, v in r.items() if k != "step")
    first = make_config(SMALL).lr * loop.lr_factor(make_config(SMALL), 24)
    assert next(r for r in losses if r["step"] == 25)["lr"] == pytest.approx(0.5 * first)
    assert _assert_checkpoints_finite(run) == [10, 20, 30, 40]
    assert ckpt.read_checkpoint(rundir.checkpoint_path(run, 40))[1]["extra"]["lr_scale"] == 0.5
    assert "warning: non-finite loss or weights at step 25" in capsys.readouterr().err
    assert (run / "metrics.json").is_file()


def test_persistent_nan_stops_cleanly_after_max_failures(tmp_path: Path, monkeypatch, capsys) -> None:
    hits = _inject(monkeypatch, at=23, kind="weight", every_time=True)
    run = tmp_path / "run"
    with pytest.raises(AliError, match=r"training diverged: .* after 2 recoveries"):
        loop.train(make_config({**SMALL, "guard_max_failures": 2}), run, progress=False)
    assert hits == [23, 23, 23]
    assert _assert_checkpoints_finite(run) == [10, 20]
    assert capsys.readouterr().err.count("warning: non-finite") == 2
    events = [r for r in _rows(run) if r.get("event") == "divergence"]
    assert [e["lr_scale"] for e in events] == [0.5, 0.25]


def test_d_wins_warning_names_step_and_figures(tmp_path: Path, monkeypatch, capsys) -> None:
    def d_wins(model, step, losses):
        return {**losses, "loss_d": torch.tensor(0.002)} if step >= 10 else losses

    _wrap_step(monkeypatch, d_wins)
    loop.train(make_config({**SMALL, "guard_d_win_logs": 3}), tmp_path / "run", progress=False)
    events = [r for r in _rows(tmp_path / "run") if r.get("event") == "d_wins"]
    assert len(events) == 1 and events[0]["step"] == 25 and events[0]["since_step"] == 15
    assert events[0]["loss_d"] == pytest.approx(0.002)
    assert "D wins completely: loss_d = 0.002" in capsys.readouterr().err


def _finished_run(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    run = tmp_path / "run"
    train_and_finish(make_config({**SMALL, "steps": 20}), run, progress=False)
    return run, {p.name: p.read_bytes() for p in rundir.list_checkpoints(run)}


def _assert_intact(run: Path, before: dict[str, bytes]) -> None:
    assert {p.name: p.read_bytes() for p in rundir.list_checkpoints(run)} == before
    assert not list(run.glob(".*.tmp-*"))
    rundir.newest_valid_checkpoint(run)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_failed_checkpoint_write_is_one_error_line(tmp_path: Path, monkeypatch, capsys, code: int) -> None:
    run, before = _finished_run(tmp_path)
    real_replace = os.replace

    def failing(src, dst):
        if Path(src).name.startswith(".checkpoint-"):
            raise OSError(code, os.strerror(code))
        return real_replace(src, dst)

    monkeypatch.setattr(rundir.os, "replace", failing)
    assert cli.main(["train", "--out", str(run), "--resume", "--steps", "30", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write checkpoint checkpoint-000000030.safetensors") and os.strerror(code) in err
    assert err.count("\n") == 1 and "Traceback" not in err
    _assert_intact(run, before)


def test_full_disk_via_file_size_limit(tmp_path: Path) -> None:
    """A real process whose writes fail with EFBIG once a file passes 1 MB (a checkpoint is 12.7 MB)."""
    run, before = _finished_run(tmp_path)

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    proc = subprocess.run(
        [sys.executable, "-m", "ali", "train", "--out", str(run), "--resume", "--steps", "30", "--no-progress"],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: cannot write checkpoint") and "File too large" in proc.stderr
    assert "Traceback" not in proc.stderr
    _assert_intact(run, before)


def _read_only(path: Path):
    """Make `path` read-only for this process: chmod for a normal user, a read-only tmpfs for root."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        return lambda: path.chmod(0o755)
    if not shutil.which("mount"):
        pytest.skip("running as root without mount(8): cannot make a read-only directory")
    copy = {p.name: p.read_bytes() for p in path.iterdir()}
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("running as root and mounting a tmpfs is not permitted here")
    for name, data in copy.items():
        (path / name).write_bytes(data)
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
    return lambda: subprocess.run(["umount", str(path)], check=True)


def test_read_only_run_directory(tmp_path: Path, capsys) -> None:
    run, before = _finished_run(tmp_path)
    undo = _read_only(run)
    try:
        assert cli.main(["train", "--out", str(run), "--resume", "--steps", "30", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: cannot write") and ("Read-only" in err or "Permission denied" in err), err
        _assert_intact(run, before)
    finally:
        undo()
