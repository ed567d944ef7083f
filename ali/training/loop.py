"""The training loop: run directory, schedule, logging, checkpoints, exact resume, final evaluation.

A run directory holds:
  training_options.json   the resolved config
  stats.jsonl             one line per `log_every` steps: step, losses, lr, rate
  checkpoint-*.safetensors the last `keep_checkpoints` snapshots (ali.training.checkpoint)
  metrics.json            the final evaluation
  comparison.png          (toy data) the paper's five-panel figure for this run's method
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ali.config import TrainConfig, make_config, to_dict
from ali.errors import AliError
from ali.evaluation.figures import comparison_rows, save_png
from ali.evaluation.image_eval import evaluate_images, prepare_image_model, write_sample_grid
from ali.evaluation.toy_eval import data_extent, evaluate_toy
from ali.training import checkpoint as ckpt
from ali.training import distributed
from ali.training.dataset import Dataset, EpochSampler, load_dataset
from ali.training.guard import DivergenceGuard, checkpoint_score
from ali.training.methods import train_step
from ali.training.model import Model, build_model, set_learning_rates
from ali.training.precision import attach_runtime, on_cpu, prepare_model, to_model_layout

OPTIONS_FILE = "training_options.json"


def lr_factor(config: TrainConfig, step: int) -> float:
    """Constant until decay_start, then linear to lr_final_fraction at the last step."""
    t = step / config.steps
    if t < config.decay_start or config.decay_start >= 1.0:
        return 1.0
    return 1.0 - (1.0 - config.lr_final_fraction) * (t - config.decay_start) / (1.0 - config.decay_start)


def prepare_run_dir(run_dir: Path, config: TrainConfig) -> None:
    """Create a fresh run directory; refuse one that already holds a run."""
    if run_dir.is_dir() and ((run_dir / OPTIONS_FILE).exists() or ckpt.list_checkpoints(run_dir)):
        raise AliError(f"{run_dir} already holds a run; continue it with --resume or choose another --out")
    if run_dir.exists() and not run_dir.is_dir():
        raise AliError(f"--out {run_dir} exists and is not a directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt.atomic_write_json(run_dir / OPTIONS_FILE, to_dict(config))
    except OSError as exc:
        raise AliError(f"cannot write to run directory {run_dir}: {exc.strerror}; choose a writable --out") from None


def load_run_config(run_dir: Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    path = run_dir / OPTIONS_FILE
    if not path.is_file():
        raise AliError(f"{run_dir} holds no run ({OPTIONS_FILE} missing); start one without --resume")
    try:
        values = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AliError(f"{path} is not valid JSON; the run's config is damaged") from None
    return make_config({**values, **(overrides or {})})


class StatsLog:
    """Sums losses on-device between log lines: no host sync per step."""

    def __init__(self, path: Path):
        self.path, self.sums, self.count = path, {}, 0
        self.last_time = time.perf_counter()
        self.recent: list[dict[str, float]] = []  # rows since the last checkpoint (its "best" score)

    def load_pending(self, sums: dict[str, torch.Tensor], count: int) -> None:
        """Sums of steps not yet logged, e.g. from a checkpoint taken between two log lines."""
        self.sums = {k: v.clone() for k, v in sums.items()}
        self.count, self.recent = count, []

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        for k, v in losses.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.count += 1

    def flush(self, step: int, lr: float) -> dict[str, float]:
        now = time.perf_counter()
        row: dict[str, float] = {"step": step}
        row.update({k: round(float(v) / self.count, 6) for k, v in self.sums.items()})
        row["lr"] = lr
        row["steps_per_s"] = round(self.count / max(now - self.last_time, 1e-9), 2)
        with ckpt.run_dir_writes(self.path.parent, "stats.jsonl"), open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        self.sums, self.count, self.last_time = {}, 0, now
        self.recent.append(row)
        return row


def evaluate_run(model, dataset: Dataset, config: TrainConfig, run_dir: Path, train_seconds: float) -> dict[str, Any]:
    """Final evaluation: metrics.json, and the sample pictures (images) or comparison figure (toy)."""
    with ckpt.run_dir_writes(run_dir, "metrics.json and the evaluation pictures"):
        if dataset.mixture is None:  # image data (issue 3): ali.evaluation.image_eval writes its PNGs
            metrics = evaluate_images(model, dataset, config.eval_samples, run_dir)
        else:
            metrics, panels = evaluate_toy(model, dataset, config.eval_samples)
            image = comparison_rows([(config.method, panels)], len(dataset.mixture.means), data_extent(dataset))
            save_png(image, run_dir / "comparison.png")
        metrics = {**metrics, "train_seconds": round(train_seconds, 2), "steps": config.steps}
        ckpt.atomic_write_json(run_dir / "metrics.json", metrics)
    return metrics


def train(config: TrainConfig, run_dir: Path, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train (or continue) the run in run_dir and evaluate it. Returns the metrics."""
    # Speed/scale hook (docs/BENCHMARKS.md): device, precision, torchrun ranks; only rank 0 writes.
    dist_ctx = distributed.start(config)
    if not resume and dist_ctx.is_main:
        prepare_run_dir(run_dir, config)
    dist_ctx.barrier()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    dataset = load_dataset(config)
    model, optimizers = build_model(config)
    prepare_image_model(model, dataset, fresh=not resume)
    prepare_model(model, dist_ctx.device, config.compile)
    dataset.train = dataset.train.to(dist_ctx.device)  # uint8 images: 4x less to hold and to index
    start, elapsed, extra = 0, 0.0, {}
    stats = StatsLog((run_dir if dist_ctx.is_main else _scratch_dir(dist_ctx)) / "stats.jsonl")
    if resume:
        path, tensors, header = ckpt.newest_valid_checkpoint(run_dir)
        start = ckpt.restore(tensors, header, model, optimizers)
        extra = header.get("extra", {})
        elapsed = float(extra.get("train_seconds", 0.0))
        stats.load_pending(ckpt.aux_tensors(tensors), int(extra.get("stats_count", 0)))
        if dist_ctx.is_main:  # other ranks only read the checkpoint
            with ckpt.run_dir_writes(run_dir, "stats.jsonl"):
                ckpt.remove_stale_temp_files(run_dir)
                best = ckpt.read_best(run_dir)
                if best is not None and best.get("step", 0) > start:  # names a damaged, skipped checkpoint
                    (run_dir / ckpt.BEST_FILE).unlink()
                ckpt.truncate_stats(run_dir / "stats.jsonl", start)
    distributed.reseed(dist_ctx, config.seed, start)
    distributed.prepare_replica(model, dist_ctx, config.sync_bn)
    attach_runtime(model, config.precision, dist_ctx.device, dist_ctx.all_reduce_mean if dist_ctx.active else None)
    # Reliability hook (docs/RELIABILITY.md): checks at log lines and before checkpoints, rollback.
    guard = DivergenceGuard(config, stats.path, float(extra.get("lr_scale", 1.0)), int(extra.get("guard_failures", 0)))
    guard.remember(start, model, optimizers, stats.sums, stats.count)
    sampler = EpochSampler(len(dataset.train), config.batch_size, config.seed)
    bar = tqdm(total=config.steps, initial=start, disable=not progress or not dist_ctx.is_main, dynamic_ncols=True, desc=config.method)
    began = time.perf_counter()
    step = start
    while step < config.steps:
        lr = config.lr * lr_factor(config, step) * guard.lr_scale
        set_learning_rates(optimizers, lr, config.d_lr_factor)
        x = to_model_layout(dataset.to_float(dataset.train[dist_ctx.local_indices(sampler.indices(step))]))
        stats.add(train_step(model, optimizers, x, step, config.steps))
        done = step + 1
        at_log = done % config.log_every == 0 or done == config.steps
        at_checkpoint = done % config.checkpoint_every == 0 or done == config.steps
        if at_log or at_checkpoint:  # losses logged (and judged by the guard) over the global batch
            dist_ctx.all_reduce_mean(list(stats.sums.values()))
        if (at_log or at_checkpoint) and not guard.is_healthy(model, optimizers, stats.sums, full=at_checkpoint):
            good = guard.recover(done, model, optimizers)  # raises AliError once recoveries are used up
            stats.load_pending(good.pending, good.pending_count)
            step = bar.n = good.step
            continue
        if at_log:
            row = stats.flush(done, lr)
            guard.watch(row)
            bar.set_postfix({k: v for k, v in row.items() if k.startswith("loss") or k in ("recon", "nll")}, refresh=False)
        if at_checkpoint:
            seconds = elapsed + time.perf_counter() - began
            if dist_ctx.is_main:
                save_snapshot(run_dir, model, optimizers, done, config, seconds, stats, guard)
            guard.remember(done, model, optimizers, stats.sums, stats.count)
        if config.grid_every and done % config.grid_every == 0 and dataset.mixture is None and dist_ctx.is_main:
            with ckpt.run_dir_writes(run_dir, "sample grid"), on_cpu(model), torch.inference_mode():
                write_sample_grid(model, run_dir / f"samples-{done:09d}.png")
        bar.update(1)
        step = done
    bar.close()
    seconds = elapsed + time.perf_counter() - began
    distributed.finish(dist_ctx)
    if not dist_ctx.is_main:
        shutil.rmtree(stats.path.parent, ignore_errors=True)
        return {}
    dataset.train = dataset.train.cpu()
    with on_cpu(model), torch.inference_mode():
        return evaluate_run(model, dataset, config, run_dir, seconds)


def _scratch_dir(ctx: distributed.DistContext) -> Path:
    """Where a rank other than 0 keeps its (discarded) log lines: never the shared run directory."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix=f"ali-rank{ctx.rank}-"))


def load_trained(run_dir: Path) -> tuple[TrainConfig, Model]:
    """A finished or interrupted run's config and model, from its newest valid checkpoint."""
    config = load_run_config(run_dir)
    return config, restore_trained(run_dir, config)[0]


def restore_trained(run_dir: Path, config: TrainConfig) -> tuple[Model, int]:
    """The run's model in evaluation mode, restored from its newest valid checkpoint, and that step."""
    model, _ = build_model(config)
    _, tensors, header = ckpt.newest_valid_checkpoint(run_dir)
    step = ckpt.restore(tensors, header, model, restore_rng=False)
    model.eval()
    return model, step


def save_snapshot(
    run_dir: Path,
    model,
    optimizers,
    step: int,
    config: TrainConfig,
    train_seconds: float,
    stats: StatsLog | None = None,
    guard: DivergenceGuard | None = None,
) -> None:
    """Write checkpoint `step`; keep the newest `keep_checkpoints` and the one best.json names."""
    extra: dict[str, Any] = {"train_seconds": train_seconds, **(guard.state() if guard else {})}
    aux: dict[str, torch.Tensor] = {}
    if stats is not None:  # unlogged sums travel along, so a resumed run logs the same lines
        extra["stats_count"], aux = stats.count, dict(stats.sums)
    path = ckpt.checkpoint_path(run_dir, step)
    with ckpt.run_dir_writes(run_dir, f"checkpoint {path.name}"):
        ckpt.save_checkpoint(path, model, optimizers, step, to_dict(config), extra, aux)
        if stats is not None:
            ckpt.update_best(run_dir, path, step, *checkpoint_score(stats.recent))
            stats.recent = []
        ckpt.prune_checkpoints(run_dir, config.keep_checkpoints)
