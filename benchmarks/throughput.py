"""Training and inference throughput of the project's step against the plain reference step.

    .venv/bin/python benchmarks/throughput.py --arch cifar10 [--batch 100] [--precision auto] [--json]

Both steps train the same architecture from the same initial weights in the same process, timed
in interleaved rounds (ours, reference, ours, ...) so that load from other processes on a shared
machine hits both alike; each side's figure is its median round. Reported per side: training
images/s, FLOPs per step (torch.utils.flop_counter, counted once outside the timing) and the
achieved GFLOP/s, beside the fp32 matrix-multiply GFLOP/s measured here, and the machine (CPU,
torch's kernel capability, native bf16 or not). "Ours" is the ALI method's step as the trainer
builds it (training.build.build_step on a model prepared by training.hardware: channels_last,
dense-equivalent convs as GEMMs, autocast at the precision "auto" resolves to, unless
--precision says otherwise); the reference is benchmarks/reference_step.py (alternating D then
G, separate D passes, NCHW, fp32). With --json the last line printed is one JSON object (keys
in the module's JSON_KEYS).

--device cuda times both steps on the GPU (synchronised before and after every timed round) and
sets the achieved TFLOP/s beside the bf16 matrix-multiply TFLOP/s measured on that GPU in the
same run (`matmul_tflops_bf16`), instead of the CPU's sgemm.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from ali.config import make_config  # noqa: E402
from ali.data.batches import to_model_layout  # noqa: E402
from ali.methods.base import Batch  # noqa: E402
from ali.nets.architectures import ARCHITECTURES  # noqa: E402
from ali.training.build import build_model, build_step  # noqa: E402
from ali.training.hardware import machine_line, make_runtime, prepare_model, resolve_precision  # noqa: E402
from benchmarks.reference_step import reference_reconstruct, reference_step  # noqa: E402

JSON_KEYS = (
    "arch",
    "batch",
    "ours_train_img_s",
    "reference_train_img_s",
    "ratio",
    "ours_gflops",
    "reference_gflops",
    "sgemm_gflops",
    "ours_infer_img_s",
    "peak_rss_mb",
    "cpu",
    "cpu_capability",
    "native_bf16",
    "precision_asked",
    "precision",
)
ARCHS = ("toy", "mnist", "cifar10", "svhn", "celeba64", "imagenet64")


def sgemm_gflops(n: int = 1024, repeats: int = 10) -> float:
    """Best-of fp32 matrix-multiply throughput on this machine with the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def count_flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def synchronize(device: torch.device | None) -> None:
    """Wait for the GPU's queued work, so that a timer read after it counts that work."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_tflops(device: torch.device, dtype: torch.dtype = torch.bfloat16, n: int = 0, repeats: int = 10) -> float:
    """Best-of matrix-multiply TFLOP/s in `dtype` (n x n, default 8192 on a GPU, 1024 on a CPU):
    the peak a step's achieved throughput is set beside."""
    n = n or (8192 if device.type == "cuda" else 1024)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    a @ b
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        t = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e12


def interleaved_seconds(
    fns: dict[str, Callable[[], object]], steps: int, rounds: int, device: torch.device | None = None
) -> dict[str, float]:
    """Median seconds per call of each fn, timed in alternating rounds of `steps` calls."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            synchronize(device)
            t = time.perf_counter()
            for _ in range(steps):
                fn()
            synchronize(device)
            times[name].append((time.perf_counter() - t) / steps)
    return {name: statistics.median(v) for name, v in times.items()}


def run(arch: str, batch: int, asked: str, steps: int, rounds: int, threads: int, device_name: str = "cpu") -> dict[str, object]:
    if threads:
        torch.set_num_threads(threads)
    spec = ARCHITECTURES[arch]
    device = torch.device(device_name)
    precision = resolve_precision(asked, device)
    config = make_config(
        {"arch": arch, "latent_dim": spec.latent_dim, "batch_size": batch, "precision": precision, "device": device_name}
    )
    torch.manual_seed(0)
    ours, ours_opt = build_model(config)
    torch.manual_seed(0)
    ref, ref_opt = build_model(make_config({**config.__dict__, "precision": "fp32"}))
    prepare_model(ours, device)
    ref.to(device)
    runtime = make_runtime(precision, device)
    step = build_step(config, ours, ours_opt, runtime)
    gen = torch.Generator().manual_seed(0)
    if len(spec.x_shape) == 3:  # images: uint8 batch converted per step, as the trainer does
        data = torch.randint(0, 256, (batch, *spec.x_shape), dtype=torch.uint8, generator=gen).to(device)
        as_input = lambda: data.float() / 255.0  # noqa: E731
    else:
        data = torch.randn(batch, *spec.x_shape, generator=gen).to(device)
        as_input = lambda: data  # noqa: E731
    x_ref = as_input()

    def ours_step():
        step(Batch(to_model_layout(as_input())), 0)

    def ref_step():
        reference_step(ref, ref_opt, x_ref)

    def ours_infer():
        ours.eval()
        with torch.inference_mode(), runtime.autocast():
            ours.decoder(ours.encoder(to_model_layout(as_input())))

    for fn in (ours_step, ref_step, ours_infer):  # warm-up: oneDNN picks and caches its kernels
        fn()
    flops = {"ours": count_flops(ours_step), "reference": count_flops(ref_step)}
    train = interleaved_seconds({"ours": ours_step, "reference": ref_step}, steps, rounds, device)
    infer = interleaved_seconds(
        {"ours": ours_infer, "reference": lambda: reference_reconstruct(ref, x_ref)}, steps, rounds, device
    )
    result = {
        "arch": arch,
        "batch": batch,
        **machine_line(),
        "precision_asked": asked,
        "precision": precision,
        "ours_train_img_s": round(batch / train["ours"], 2),
        "reference_train_img_s": round(batch / train["reference"], 2),
        "ratio": round(train["reference"] / train["ours"], 3),
        "ours_steps_s": round(1 / train["ours"], 2),
        "ours_gflop_per_step": round(flops["ours"] / 1e9, 3),
        "reference_gflop_per_step": round(flops["reference"] / 1e9, 3),
        "ours_gflops": round(flops["ours"] / train["ours"] / 1e9, 2),
        "reference_gflops": round(flops["reference"] / train["reference"] / 1e9, 2),
        "sgemm_gflops": round(sgemm_gflops(), 2),  # the CPU's, on either device
        "ours_infer_img_s": round(batch / infer["ours"], 2),
        "reference_infer_img_s": round(batch / infer["reference"], 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if device.type == "cpu":
        result["ours_fraction_of_sgemm"] = round(result["ours_gflops"] / result["sgemm_gflops"], 3)
    else:
        peak = matmul_tflops(device, torch.bfloat16)
        result.update(
            device=torch.cuda.get_device_name(device),
            ours_tflops=round(result["ours_gflops"] / 1e3, 3),
            matmul_tflops_bf16=round(peak, 1),
            ours_fraction_of_matmul_peak=round(result["ours_gflops"] / 1e3 / peak, 5),
            peak_gpu_mb=round(torch.cuda.max_memory_allocated(device) / 2**20, 1),
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=ARCHS, required=True)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="ours: auto = what a user gets (bf16 where the CPU has native bf16, else fp32)",
    )
    parser.add_argument("--steps", type=int, default=0, help="steps per timed round (default: about 2 s per round)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where both steps run")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: this torch sees no CUDA GPU")
    if args.batch < 2:
        parser.error("--batch must be >= 2 (batch norm needs two examples)")
    steps = args.steps or (100 if args.arch == "toy" or args.device == "cuda" else 3)
    result = run(args.arch, args.batch, args.precision, steps, args.rounds, args.threads, args.device)
    for key, value in result.items():
        print(f"{key:>26}: {value}")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
