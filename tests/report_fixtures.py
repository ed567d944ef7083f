"""Hand-written run and study directories for the report tests: the files `ali train` and
`ali study` write, small and made in milliseconds, so the report is tested without training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

TOY_METRICS = {
    "modes_covered": 23,
    "modes_covered_3sigma": 21,
    "high_quality_fraction": 0.81,
    "reverse_kl": "inf",  # a string, as some writers spell it
    "mode_offset": 0.037,
    "recon_same_mode_fraction": None,
    "recon_mse": 0.0161,
    "train_seconds": 12.5,
    "steps": 300,
}
IMAGE_METRICS = {
    "recon_mse": 0.031,
    "recon_mse_mu": 0.027,
    "mean_image_mse": 0.067,
    "sample_pixel_mean": 0.13,
    "recon_class_accuracy": 0.62,
    "eval_images": 1000,
}


def write_png(path: Path, size: tuple[int, int] = (96, 64), colour: tuple[int, int, int] = (40, 120, 200)) -> Path:
    image = Image.new("RGB", size, (255, 255, 255))
    ImageDraw.Draw(image).ellipse([4, 4, size[0] - 4, size[1] - 4], fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2))


def options(dataset: str, arch: str, method: str = "ali", seed: int = 0, steps: int = 300) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "arch": arch,
        "method": method,
        "latent_dim": 2 if arch == "toy" else 64,
        "steps": steps,
        "batch_size": 100,
        "lr": 0.0015,
        "seed": seed,
        "device": "auto",
        "precision": "auto",
        "resolved": {"precision": "bf16", "device": "cpu"},
    }


def write_stats(path: Path, keys: tuple[str, ...], steps: int = 300, every: int = 20, torn: bool = False) -> None:
    """Log lines every `every` steps, one divergence and one d_wins event, optionally a torn last line."""
    lines = []
    for step in range(every, steps + 1, every):
        row = {"step": step, **{k: round(1.0 + 0.5 / (1 + step / 50) + 0.1 * i, 5) for i, k in enumerate(keys)}}
        row.update({"lr": 0.0015 * (1 - step / (steps + 1)), "steps_per_s": 40.0 + step % 7})
        lines.append(json.dumps(row))
        if step == 120:
            lines.append(json.dumps({"step": 100, "event": "divergence", "detected_at": 120, "lr_scale": 0.5, "failures": 1}))
        if step == 240:
            lines.append(json.dumps({"step": 240, "event": "d_wins", "since_step": 160, "loss_d": 0.004, "loss_g": 7.1}))
    text = "\n".join(lines) + "\n"
    path.write_text(text + ('{"step": 32' if torn else ""))


def write_checkpoints(run_dir: Path, steps: tuple[int, ...]) -> None:
    for step in steps:  # the report only lists them: name and size, never reads the tensors
        (run_dir / f"checkpoint-{step:09d}.safetensors").write_bytes(b"\0" * 2048)
    balanced = f"checkpoint-{steps[0]:09d}.safetensors"
    record = {"file": balanced, "step": steps[0], "score": 0.0755, "criterion": "mean |loss_d - 2 ln 2|"}
    write_json(run_dir / "balanced.json", record)


def toy_run(run_dir: Path, method: str = "ali", seed: int = 0, stats: bool = True) -> Path:
    write_json(run_dir / "training_options.json", options("toy25", "toy", method, seed))
    write_json(run_dir / "metrics.json", {**TOY_METRICS, "modes_covered": 20 + seed})
    write_png(run_dir / "comparison.png", size=(600, 130))
    if stats:
        write_stats(run_dir / "stats.jsonl", ("loss_d", "loss_g", "recon"), torn=True)
        write_checkpoints(run_dir, (100, 200, 300))
    return run_dir


def image_run(run_dir: Path) -> Path:
    write_json(run_dir / "training_options.json", options("mnist", "mnist", "alice", steps=5000))
    write_json(run_dir / "metrics.json", IMAGE_METRICS)
    write_stats(run_dir / "stats.jsonl", ("loss_d", "loss_g", "nll", "kl"), steps=5000, every=250)
    write_checkpoints(run_dir, (2500, 5000))
    for name in ("samples.png", "reconstructions.png", "interpolations.png"):
        write_png(run_dir / name, size=(302, 302), colour=(90, 90, 90))
    for step in (5000, 500, 2500):  # written out of order: the report must sort by step
        write_png(run_dir / f"samples-{step:09d}.png", size=(122, 122), colour=(step % 255, 80, 160))
    return run_dir


def study(study_dir: Path, methods: tuple[str, ...] = ("ali", "alice"), seeds: int = 2) -> Path:
    results = {}
    for method in methods:
        runs = [
            json.loads((toy_run(study_dir / method / f"seed-{s}", method, s, stats=False) / "metrics.json").read_text())
            for s in range(seeds)
        ]
        results[method] = {"title": method.upper(), "runs": runs, "summary": _summary(runs)}
    configs = {m: options("toy25", "toy", m) for m in methods}
    write_json(study_dir / "study.json", {"configs": configs, "seeds": seeds, "methods": results})
    (study_dir / "study.md").write_text("# Study: toy25\n\n| method | modes_covered |\n|---|---|\n")
    write_png(study_dir / "study.png", size=(600, 260))
    return study_dir


def _summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """A plausible study.json summary (ali.study computes the real one; this only feeds the page)."""
    out = {}
    for key in ("modes_covered", "high_quality_fraction", "recon_mse"):
        values = [float(r[key]) for r in runs]
        out[key] = {"mean": sum(values) / len(values), "std": 0.5, "min": min(values), "max": max(values)}
    return out
