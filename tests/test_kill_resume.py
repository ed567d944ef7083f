"""Kill test: `ali train` processes SIGKILLed 20 times: the first two in their first moments,
before any checkpoint exists, then half of the rest inside a checkpoint write.

After every kill each checkpoint on disk must load, the next `--resume` must continue, and every
stats line on disk must equal the uninterrupted run's line for that step; at the end the whole log,
the final weights and the metrics must equal the uninterrupted run's (CPU, one thread: bit-exact).

Importing torch costs seconds per process on a loaded machine, so the killed runs are forks of one
server process that imported `ali.cli` once; each fork runs `ali.cli.main(["train", ...])`, the
code behind the `ali` command, and dies by SIGKILL like any process. The last resume is a fresh
`python -m ali train --resume`, the real entry point.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from ali import checkpoint as ckpt
from ali import rundir
from ali.config import make_config
from ali.finish import train_and_finish
from ali.presets import PRESETS

KILLS = 20
EARLY_KILLS = 2  # right after the run directory holds its options, before the first checkpoint
SETTINGS = {
    "steps": 80,
    "batch_size": 16,
    "log_every": 1,
    "checkpoint_every": 2,
    "keep_checkpoints": 2,
    "eval_samples": 100,
    "threads": 1,
}
# SIGKILL keeps the page cache, so what a kill can break is the rename protocol, not fsync; a
# memory-backed directory keeps the 12.7 MB fsync per checkpoint from dominating the runtime.
SHM = Path("/dev/shm")

SERVER = r"""
import json, os, sys
import ali.cli  # torch and ali imported once; every run is a fork of this process
for line in sys.stdin:
    kind, arg = json.loads(line)
    if kind == "run":
        argv, log = arg
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(fd, 1); os.dup2(fd, 2)
                code = ali.cli.main(argv)
            finally:
                os._exit(code)
        print(pid, flush=True)
    else:
        _, status = os.waitpid(arg, 0)
        print(status, flush=True)
"""


class ForkServer:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, kind: str, arg) -> int:
        self.proc.stdin.write(json.dumps([kind, arg]) + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _alive(pid: int) -> bool:
    """Running (not a zombie waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _rows(path: Path) -> dict[int, dict]:
    """Stats lines by step, without the timing field; a torn last line (killed mid-append) is ignored."""
    rows = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        row.pop("steps_per_s", None)
        rows[row["step"]] = row
    return rows


def _kill_early(pid: int, run_dir: Path) -> bool:
    """SIGKILL as soon as the run directory holds its options file (the first thing a run writes)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _alive(pid) and not (run_dir / "training_options.json").exists():
        time.sleep(0.001)
    if not _alive(pid):
        return False
    os.kill(pid, signal.SIGKILL)
    return True


def _kill_when(pid: int, run_dir: Path, after_step: int, in_write: bool, rng: random.Random) -> bool:
    """SIGKILL once training passed `after_step` and a checkpoint exists (with in_write: during a write)."""
    stats, deadline = run_dir / "stats.jsonl", time.monotonic() + 60
    while time.monotonic() < deadline and _alive(pid):
        rows = _rows(stats)
        if rows and max(rows) > after_step and rundir.list_checkpoints(run_dir):
            break
        time.sleep(0.005)
    if in_write:
        while time.monotonic() < deadline and _alive(pid) and not list(run_dir.glob(".checkpoint-*.tmp-*")):
            time.sleep(0.001)
    else:
        time.sleep(rng.uniform(0.0, 0.05))
    if not _alive(pid):
        return False
    os.kill(pid, signal.SIGKILL)
    return True


@pytest.fixture
def fast_dir(tmp_path: Path):
    if not (SHM.is_dir() and os.access(SHM, os.W_OK)):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(dir=SHM, prefix="ali-kill-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_sigkill_at_random_moments_then_resume_matches_uninterrupted(fast_dir: Path) -> None:
    rng = random.Random(7)
    values = {**PRESETS["toy25"], **SETTINGS}
    reference = fast_dir / "reference"
    threads = torch.get_num_threads()
    server = ForkServer()  # starts importing while the reference trains
    try:
        ref_metrics = train_and_finish(make_config(values), reference, progress=False)
    finally:
        torch.set_num_threads(threads)
    ref_rows = _rows(reference / "stats.jsonl")

    run_dir, log = fast_dir / "killed", str(fast_dir / "child.log")
    fresh = ["train", "--no-progress", "--out", str(run_dir), "--config", "toy25", *[f"--set={k}={v}" for k, v in values.items()]]
    kills = in_write = lost = before_first = 0
    resume_from = 0
    try:
        while kills < KILLS:
            argv = ["train", "--no-progress", "--out", str(run_dir), "--resume"] if run_dir.exists() else fresh
            pid = server.ask("run", [argv, log])
            early = kills < EARLY_KILLS
            killed = _kill_early(pid, run_dir) if early else _kill_when(pid, run_dir, resume_from, kills % 2 == 1, rng)
            status = server.ask("wait", pid)
            if not killed:
                lost += status != 0
                break  # the run ended before this kill: an error (counted as lost) or finished early
            kills += 1
            in_write += bool(list(run_dir.glob(".checkpoint-*.tmp-*")))  # the kill left a half-written file
            found = rundir.list_checkpoints(run_dir)
            for path in found:  # every checkpoint on disk loads, holds its own step and finite values
                tensors, header = ckpt.read_checkpoint(path)
                assert header["step"] == int(path.stem.split("-")[1])
                assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())
            resume_from = max((int(p.stem.split("-")[1]) for p in found), default=0)
            for step, row in _rows(run_dir / "stats.jsonl").items():
                assert row == ref_rows[step], f"kill {kills}: step {step} differs from the uninterrupted run"
            before_first += early and not found
            assert found or early, f"kill {kills}: no checkpoint left on disk"
    finally:
        server.close()

    final = subprocess.run(
        [sys.executable, "-m", "ali", "train", "--no-progress", "--out", str(run_dir), "--resume"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert final.returncode == 0, final.stderr + Path(log).read_text()
    assert lost == 0, Path(log).read_text()
    assert kills == KILLS, f"only {kills} kills happened before the run finished"
    assert in_write >= KILLS // 4, f"only {in_write} kills hit a checkpoint write"
    assert before_first >= 1, "no kill landed before the first checkpoint"
    assert _rows(run_dir / "stats.jsonl") == ref_rows
    ours, _ = ckpt.read_checkpoint(rundir.checkpoint_path(run_dir, SETTINGS["steps"]))
    theirs, _ = ckpt.read_checkpoint(rundir.checkpoint_path(reference, SETTINGS["steps"]))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    drop = {"train_seconds"}
    assert {k: v for k, v in metrics.items() if k not in drop} == {k: v for k, v in ref_metrics.items() if k not in drop}
    assert not list(run_dir.glob(".*.tmp-*")), "a resumed run leaves no stale temporary files"
    print(
        f"\nkill test: {kills} SIGKILLs survived ({before_first} before the first checkpoint, {in_write} inside a "
        f"checkpoint write), {lost} runs lost"
    )
