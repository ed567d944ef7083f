"""Does every path run on this device, how fast, in how much memory: one command for a GPU machine.

    .venv/bin/python benchmarks/gpu_check.py --out gpu-check          (or: make gpu-check)
    .venv/bin/python benchmarks/gpu_check.py --out gpu-check --device cpu --cases method-ali-fp32,resume

Cases (`--list` prints them):
- method-<method>-<precision>: `ali train` for --steps steps of every method on the MNIST nets at
  bf16, fp16 and fp32 (fp16 needs CUDA), on MNIST-format files of random digits written here
  (or the real MNIST with --data-dir), ending with the run's own evaluation.
- arch-<arch>: one bf16 (CUDA) or "auto" (CPU) ALI training step of each paper architecture at
  batch 100 (ImageNet-64: 128) after a warm-up, and its images/s.
- resume: a run resumed from its first checkpoint ends with the same weights as the run that went
  through; on CUDA within float tolerance (kernels may differ run to run), on the CPU bit for bit.
- torchrun: `torchrun --nproc-per-node N` over NCCL with sync_bn=true, N = the GPUs here
  (skipped below 2); on the CPU two gloo ranks without sync_bn (torch has no CPU SyncBatchNorm).
- compile: compile=true for --steps steps.

Each case runs in its own process, so a crash (or a sticky CUDA error) fails that case alone; its
result goes to OUT/cases/NAME.json and its output to OUT/logs/NAME.log as it finishes, so a check
cut short still says what it saw. At the end the table (pass/fail, steps/s, peak memory) is
printed and written to OUT/gpu_check.json with the machine's description.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from ali import checkpoint as ckpt  # noqa: E402
from ali import rundir  # noqa: E402
from ali.config import for_method, make_config  # noqa: E402
from ali.data.batches import to_model_layout  # noqa: E402
from ali.finish import train_and_finish  # noqa: E402
from ali.methods import METHODS  # noqa: E402
from ali.methods.base import Batch  # noqa: E402
from ali.nets.architectures import ARCHITECTURES  # noqa: E402
from ali.presets import PRESETS  # noqa: E402
from ali.training.build import build_model, build_step  # noqa: E402
from ali.training.hardware import machine_line, make_runtime, prepare_model, resolve_precision  # noqa: E402
from benchmarks.throughput import matmul_tflops, synchronize  # noqa: E402

PRECISIONS = ("bf16", "fp16", "fp32")
PAPER_ARCHS = ("mnist", "cifar10", "svhn", "celeba64", "imagenet64")


def case_names(device: str) -> list[str]:
    names = [f"method-{m}-{p}" for m in sorted(METHODS) for p in PRECISIONS if device == "cuda" or p != "fp16"]
    return [*names, *(f"arch-{a}" for a in PAPER_ARCHS), "resume", "torchrun", "compile"]


def write_random_mnist(folder: Path, n_train: int = 2_000, n_test: int = 500) -> None:
    """MNIST-format IDX files of random 28x28 images and labels: every loader path, no download."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        for kind, array in (
            ("images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)),
            ("labels-idx1-ubyte", rng.integers(0, 10, n, dtype=np.uint8)),
        ):
            header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
            (folder / f"{prefix}-{kind}.gz").write_bytes(gzip.compress(header + array.tobytes(), mtime=0))


def train_config(method: str, precision: str, args: argparse.Namespace, **extra) -> dict:
    """The MNIST recipe for `method`, shortened to args.steps with a checkpoint half-way."""
    own_preset = f"mnist-{method.removeprefix('ali-')}"  # mnist-conditional, mnist-kplus1
    return {
        **(PRESETS[own_preset] if own_preset in PRESETS else for_method(PRESETS["mnist"], method)),
        "steps": args.steps,
        "log_every": max(1, args.steps // 4),
        "checkpoint_every": max(1, args.steps // 2),
        "keep_checkpoints": 3,
        "grid_every": 0,
        "eval_samples": 500,
        "device": args.device,
        "precision": precision,
        "data_dir": args.data_dir,
        **extra,
    }


def steps_per_s(run_dir: Path) -> float | None:
    """The median over the log lines after the first (which holds the warm-up)."""
    rows = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines() if line.strip()]
    rates = sorted(r["steps_per_s"] for r in rows[1:] if "steps_per_s" in r)
    return rates[len(rates) // 2] if rates else None


def run_method(method: str, precision: str, args: argparse.Namespace, work: Path) -> dict:
    run_dir = work / "run"
    metrics = train_and_finish(make_config(train_config(method, precision, args)), run_dir, progress=False)
    return {"steps_per_s": steps_per_s(run_dir), "metrics": sorted(metrics)}


def run_arch(arch: str, args: argparse.Namespace) -> dict:
    """One ALI step of the paper's architecture at its paper batch size, timed after a warm-up."""
    device = torch.device(args.device)
    precision = resolve_precision("bf16" if device.type == "cuda" else "auto", device)
    batch = 128 if arch == "imagenet64" else 100
    spec = ARCHITECTURES[arch]
    config = make_config({"arch": arch, "latent_dim": spec.latent_dim, "batch_size": batch, "precision": precision})
    model, optimizers = build_model(config)
    prepare_model(model, device)
    step = build_step(config, model, optimizers, make_runtime(precision, device))
    x = Batch(to_model_layout(torch.rand(batch, *spec.x_shape, device=device)))
    for index in range(2):
        step(x, index)
    steps = 3 if device.type == "cpu" else 20
    synchronize(device)
    began = time.perf_counter()
    for index in range(steps):
        step(x, index)
    synchronize(device)
    seconds = (time.perf_counter() - began) / steps
    return {"steps_per_s": round(1 / seconds, 2), "img_per_s": round(batch / seconds, 1), "precision": precision}


def run_resume(args: argparse.Namespace, work: Path) -> dict:
    """Through vs stopped at the half-way checkpoint and resumed: the same final weights."""
    config = make_config(train_config("alice", "bf16" if args.device == "cuda" else "auto", args))
    through, resumed = work / "through", work / "resumed"
    train_and_finish(config, through, progress=False)
    train_and_finish(config, resumed, progress=False)
    # Make `resumed` a run stopped right after its first checkpoint: drop what came after it.
    first, *later = rundir.list_checkpoints(resumed)
    for path in later:
        path.unlink()
    for name in ("metrics.json", "balanced.json"):
        (resumed / name).unlink(missing_ok=True)
    train_and_finish(config, resumed, resume=True, progress=False)
    a = ckpt.read_checkpoint(rundir.list_checkpoints(through)[-1])[0]
    b = ckpt.read_checkpoint(rundir.list_checkpoints(resumed)[-1])[0]
    nets = [k for k in a if k.startswith("net/") and a[k].is_floating_point()]
    worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in nets)
    tolerance = 0.0 if args.device == "cpu" else 1e-3
    if worst > tolerance:
        raise AssertionError(f"resumed weights differ from the uninterrupted run's by {worst:.3g} (allowed {tolerance})")
    return {"max_weight_difference": worst, "resumed_from_step": int(first.stem.split("-")[-1])}


def run_torchrun(args: argparse.Namespace, work: Path, log) -> dict:
    ranks = torch.cuda.device_count() if args.device == "cuda" else 2
    if ranks < 2:
        return {"skipped": f"{ranks} GPU here; torchrun needs 2 or more"}
    config = work / "config.json"
    config.write_text(
        json.dumps(train_config("alice", "bf16" if args.device == "cuda" else "auto", args, sync_bn=args.device == "cuda"))
    )
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={ranks}", "-m", "ali", "train"]
    cmd += ["--config", str(config), "--out", str(work / "run"), "--no-progress"]
    subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, timeout=args.timeout)
    return {"ranks": ranks, "steps_per_s": steps_per_s(work / "run")}


def peak_memory_mb(device: str) -> dict:
    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device == "cuda":
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def run_case(name: str, args: argparse.Namespace) -> dict:
    """Run one case in this process; returns its result row (raises on failure)."""
    work = Path(tempfile.mkdtemp(prefix=f"gpu-check-{name}-"))
    try:
        if name.startswith("method-"):
            method, precision = name[len("method-") :].rsplit("-", 1)
            return run_method(method, precision, args, work)
        if name.startswith("arch-"):
            return run_arch(name[len("arch-") :], args)
        if name == "resume":
            return run_resume(args, work)
        if name == "torchrun":
            with open(Path(args.out) / "logs" / "torchrun-ranks.log", "w") as log:
                return run_torchrun(args, work, log)
        if name == "compile":
            run_dir = work / "run"
            train_and_finish(make_config(train_config("alice", "auto", args, compile=True)), run_dir, progress=False)
            return {"steps_per_s": steps_per_s(run_dir)}
        raise ValueError(f"unknown case {name!r}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def child(name: str, args: argparse.Namespace) -> int:
    """`--case NAME`: run it and write OUT/cases/NAME.json, whatever happens."""
    began = time.perf_counter()
    try:
        row = {"case": name, "status": "pass", **run_case(name, args)}
        if "skipped" in row:
            row["status"] = "skip"
    except Exception as exc:  # noqa: BLE001  every failure becomes the case's row
        traceback.print_exc()
        row = {"case": name, "status": "fail", "error": f"{type(exc).__name__}: {exc}"[:500]}
    row["seconds"] = round(time.perf_counter() - began, 1)
    if name != "torchrun":  # the ranks are other processes: this one's peak would mislead
        row.update(peak_memory_mb(args.device))
    (Path(args.out) / "cases" / f"{name}.json").write_text(json.dumps(row))
    return 0 if row["status"] != "fail" else 1


def table(rows: list[dict]) -> str:
    lines = [f"{'case':<34} {'status':<6} {'steps/s':>9} {'img/s':>9} {'peak GPU MB':>11} {'peak RSS MB':>11}  note"]
    for r in rows:
        note = r.get("error") or r.get("skipped") or ""
        lines.append(
            f"{r['case']:<34} {r['status']:<6} {r.get('steps_per_s') or '':>9} {r.get('img_per_s') or '':>9} "
            f"{r.get('peak_gpu_mb', ''):>11} {r.get('peak_rss_mb', ''):>11}  {note[:120]}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the table, each case's JSON and log")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=40, help="training steps per method case")
    parser.add_argument("--cases", help="comma-separated case names (default: all; --list shows them)")
    parser.add_argument("--data-dir", help="a folder with mnist/ (default: random MNIST-format digits written here)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds one case may take")
    parser.add_argument("--list", action="store_true", help="print the case names and stop")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # the child process's one case
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: this torch sees no CUDA GPU; use --device cpu")
    names = case_names(args.device)
    if args.list:
        print("\n".join(names))
        return 0
    if args.case:
        return child(args.case, args)
    chosen = names if not args.cases else [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)} for --device {args.device}; --list shows them")
    # absolute: the torchrun case starts its ranks in the repository root, not the caller's folder
    out = Path(args.out).expanduser().resolve()
    args.out = str(out)
    if args.data_dir:
        args.data_dir = str(Path(args.data_dir).expanduser().resolve())
    for sub in ("cases", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    if not args.data_dir:
        args.data_dir = str(out / "data")
        write_random_mnist(out / "data" / "mnist")
    device = torch.device(args.device)
    machine = {**machine_line(), "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu"}
    machine["matmul_tflops_bf16"] = round(matmul_tflops(device, torch.bfloat16), 3)
    machine["matmul_tflops_fp32"] = round(matmul_tflops(device, torch.float32), 3)
    rows = []
    for name in chosen:
        cmd = [sys.executable, __file__, "--case", name, "--out", str(out), "--device", args.device]
        cmd += ["--steps", str(args.steps), "--data-dir", args.data_dir, "--timeout", str(args.timeout)]
        with open(out / "logs" / f"{name}.log", "w") as log:
            # a session of its own, so a timeout ends the case's whole process group (torchrun's ranks too)
            child_process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                child_process.wait(timeout=args.timeout)
            except subprocess.TimeoutExpired:
                os.killpg(child_process.pid, signal.SIGKILL)
                child_process.wait()
        path = out / "cases" / f"{name}.json"
        row = (
            json.loads(path.read_text())
            if path.exists()
            else {"case": name, "status": "fail", "error": "no result (crash or timeout)"}
        )
        rows.append(row)
        print(f"{name}: {row['status']}", flush=True)
    summary = {"machine": machine, "steps": args.steps, "cases": rows}
    (out / "gpu_check.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(machine))
    print(table(rows))
    return 0 if all(r["status"] != "fail" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
