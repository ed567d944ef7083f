"""Wall time of one default `toy25` run (`make demo`'s job), and whether it reaches its targets.

    .venv/bin/python benchmarks/toy_time_to_target.py [--seed N] [--config toy25] [--json]

Prints the run's metrics, its wall time (process start of the run to metrics.json, evaluation
included) and the ratio to the 60 s budget, and each target met or missed. Then, after the
timed part, the machine's fp32 matrix-multiply speed (benchmarks/throughput.py's probe, same
thread count): this shared CPU's speed drifts between days, and that figure says how fast it was
during the run, with the rest of the machine line (CPU, torch's kernel capability, native bf16
or not, the precision "auto" resolved to).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {  # per run: the demo's quality bar
    "modes_covered_3sigma": (">=", 25),
    "high_quality_fraction": (">=", 0.88),
    "reverse_kl": ("<=", 0.03),
    "recon_same_mode_fraction": (">=", 0.95),
}
BUDGET_SECONDS = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="toy25")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args()

    began = time.perf_counter()
    import torch

    from ali.config import make_config  # imports count towards the wall time, as for `ali train`
    from ali.presets import PRESETS
    from ali.training.loop import train

    config = make_config({**PRESETS[args.config], "seed": args.seed})
    with tempfile.TemporaryDirectory() as tmp:
        metrics = train(config, Path(tmp) / "run", progress=False)
    wall = time.perf_counter() - began
    # Imported only now: at the top, throughput.py's torch import would leave the timed part.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
    from ali.training.hardware import machine_line, resolve_precision
    from benchmarks.throughput import sgemm_gflops

    sgemm = sgemm_gflops()  # with the thread count the run used (train sets it)
    machine = {
        **machine_line(),
        "precision_asked": config.precision,
        "precision": resolve_precision(config.precision, torch.device("cpu")),
    }

    met = {}
    for key, (op, bound) in TARGETS.items():
        value = metrics[key]
        met[key] = value >= bound if op == ">=" else value <= bound
        print(f"{key:26s} {value:10.4f}  target {op} {bound}: {'met' if met[key] else 'MISSED'}")
    print(
        f"{'wall seconds':26s} {wall:10.1f}  budget {BUDGET_SECONDS:.0f} s: ratio {wall / BUDGET_SECONDS:.2f} ({'met' if wall <= BUDGET_SECONDS else 'MISSED'})"
    )
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end, fp32 matmul {sgemm:.0f} GFLOP/s, "
        + ", ".join(f"{k} {v}" for k, v in machine.items())
    )
    if args.json:
        print(
            json.dumps(
                {
                    "config": args.config,
                    "seed": args.seed,
                    "wall_seconds": round(wall, 2),
                    "budget_ratio": round(wall / BUDGET_SECONDS, 3),
                    "sgemm_gflops": round(sgemm, 1),
                    **machine,
                    "targets_met": all(met.values()),
                    **metrics,
                }
            )
        )


if __name__ == "__main__":
    main()
