"""The training loop: schedule, logging, checkpoints, exact resume; nothing else.

The run directory's files are named in ali.rundir. One pass of the loop: the learning rate for
the step, a batch from the sampler, the method's step (ali.methods, built once by
training.build.build_step), and, at log lines and checkpoints, the divergence guard. `train`
returns the trained model (a `TrainedRun`); its evaluation, pictures and report are
ali.finish.finish_run's, which `ali train`, the study and the benchmarks call after it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ali import checkpoint as ckpt
from ali import rundir
from ali.config import TrainConfig, to_dict
from ali.data.batches import to_model_layout
from ali.data.dataset import Dataset, as_conditions, evaluation_conditions
from ali.data.sampler import EpochSampler
from ali.errors import AliError
from ali.evaluation.image_eval import write_sample_grid
from ali.methods import get_method
from ali.methods.base import Batch, Method, Score
from ali.nets.model import Model
from ali.progress import progress_bar
from ali.rundir import STATS_FILE, prepare_run_dir, write_condition_names
from ali.training import distributed
from ali.training.build import build_model, build_step, condition_dim, fit_to_data, set_learning_rates, total_steps
from ali.training.guard import DivergenceGuard
from ali.training.hardware import make_runtime, prepare_model, resolve_precision
from ali.training.tensorboard import TensorBoardLog


def average_decay(config: TrainConfig, step: int) -> float:
    """ema_decay, warmed up as (1 + step) / (10 + step) so the first steps' average is not
    dominated by the initial weights."""
    return min(config.ema_decay, (1.0 + step) / (10.0 + step))


def lr_factor(config: TrainConfig, step: int) -> float:
    """Constant until decay_start, then linear to lr_final_fraction at the phase's last step.

    A method with several phases (gan-posthoc) runs this schedule once per phase."""
    t = (step % config.steps) / config.steps
    if t < config.decay_start or config.decay_start >= 1.0:
        return 1.0
    return 1.0 - (1.0 - config.lr_final_fraction) * (t - config.decay_start) / (1.0 - config.decay_start)


class StatsLog:
    """Sums losses on-device between log lines: no host sync per step."""

    def __init__(self, path: Path):
        self.path, self.sums, self.count = path, {}, 0
        self.last_time = time.perf_counter()
        self.recent: list[dict[str, float]] = []  # rows since the last checkpoint (its balance score)

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
        with rundir.run_dir_writes(self.path.parent, STATS_FILE), open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        self.sums, self.count, self.last_time = {}, 0, now
        self.recent.append(row)
        return row


def _resume_state(run_dir: Path, model: Model, optimizers: dict, stats: StatsLog, is_main: bool) -> tuple[int, dict[str, Any]]:
    """Restore the newest valid checkpoint; returns its step and the extra state it carries.

    A run killed before its first checkpoint has its options and nothing else worth keeping: it
    starts again from step 0 with its saved config (nothing was lost, nothing had been saved)."""
    start, extra = 0, {}
    if rundir.list_checkpoints(run_dir):
        _, tensors, header = rundir.newest_valid_checkpoint(run_dir)
        start = ckpt.restore(tensors, header, model, optimizers)
        extra = header.get("extra", {})
        stats.load_pending(ckpt.aux_tensors(tensors), int(extra.get("stats_count", 0)))
    elif is_main:
        print(f"{run_dir} has no checkpoint yet (stopped before the first): starting it from step 0 with its saved config")
    if is_main:  # other ranks only read the checkpoint
        with rundir.run_dir_writes(run_dir, STATS_FILE):
            rundir.remove_stale_temp_files(run_dir)
            balanced = rundir.read_balanced(run_dir)
            if balanced is not None and balanced.get("step", 0) > start:  # names a damaged, skipped checkpoint
                rundir.balanced_record(run_dir).unlink()
            rundir.truncate_stats(run_dir / STATS_FILE, start)
    return start, extra


@dataclass
class TrainedRun:
    """What `train` hands on for the run's evaluation (ali.finish): the trained model where it
    trained, the dataset (its training split back on the CPU), the config and its method, and
    the training time in seconds, resumed parts included."""

    model: Model
    dataset: Dataset
    config: TrainConfig
    method: Method
    train_seconds: float
    steps: int


def train(config: TrainConfig, run_dir: Path, resume: bool = False, progress: bool = True) -> TrainedRun | None:
    """Train (or continue) the run in run_dir, checkpointing as it goes. Returns the trained run;
    None on a data-parallel rank other than 0."""
    method = get_method(config.method)
    dist_ctx = distributed.start(config)
    pack = config.pack
    if (config.batch_size // dist_ctx.world) % pack:
        raise AliError(
            f"pack={pack} must divide each rank's batch ({config.batch_size} / {dist_ctx.world} ranks); choose batch_size accordingly"
        )
    precision = resolve_precision(config.precision, dist_ctx.device)
    if not resume and dist_ctx.is_main:
        prepare_run_dir(run_dir, config, {"precision": precision, "device": dist_ctx.device.type})
    dist_ctx.barrier()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    dataset = rundir.load_run_dataset(config)
    model, optimizers = build_model(config, method)
    # A run resumed before its first checkpoint starts again from step 0: a fresh start.
    fit_to_data(model, dataset, fresh=not (resume and rundir.list_checkpoints(run_dir)))
    prepare_model(model, dist_ctx.device, config.compile)
    dataset.train = dataset.train.to(dist_ctx.device)  # uint8 images: 4x less to hold and to index
    stats = StatsLog((run_dir if dist_ctx.is_main else _scratch_dir(dist_ctx)) / STATS_FILE)
    start, extra = _resume_state(run_dir, model, optimizers, stats, dist_ctx.is_main) if resume else (0, {})
    elapsed = float(extra.get("train_seconds", 0.0))
    distributed.reseed(dist_ctx, config.seed, start)
    distributed.prepare_replica(model, dist_ctx, config.sync_bn)
    runtime = make_runtime(precision, dist_ctx.device, dist_ctx.all_reduce_mean if dist_ctx.active else None)
    train_step = build_step(config, model, optimizers, runtime, dataset, method)
    score = method.score
    total = total_steps(config, method)
    # Reliability (docs/RELIABILITY.md): checks at log lines and before checkpoints, rollback.
    guard = DivergenceGuard(config, stats.path, float(extra.get("lr_scale", 1.0)), int(extra.get("guard_failures", 0)))
    guard.remember(start, model, optimizers, stats.sums, stats.count)
    board = TensorBoardLog(run_dir) if config.tensorboard and dist_ctx.is_main else None
    conditions, grid_conditions = _conditions(config, method, dataset, dist_ctx.device)
    if conditions is not None and dist_ctx.is_main and not resume:
        write_condition_names(run_dir, dataset.label_names)
    sampler = EpochSampler(len(dataset.train), config.batch_size, config.seed)
    bar = progress_bar(total, config.method, initial=start, enabled=progress and dist_ctx.is_main)
    began = time.perf_counter()
    step = start
    while step < total:
        lr = config.lr * lr_factor(config, step) * guard.lr_scale
        set_learning_rates(optimizers, lr, config.d_lr_factor)
        rows = dist_ctx.local_indices(sampler.indices(step))
        x = to_model_layout(dataset.to_float(dataset.train[rows]))
        stats.add(train_step(Batch(x, None if conditions is None else conditions[rows]), step))
        if model.averaged:
            model.update_averages(average_decay(config, step))
        done = step + 1
        at_log = done % config.log_every == 0 or done == total
        at_checkpoint = done % config.checkpoint_every == 0 or done == total
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
            if board is not None:
                board.scalars(row)
            bar.set_postfix({k: v for k, v in row.items() if k.startswith("loss") or k in ("recon", "nll")}, refresh=False)
        if at_checkpoint:
            seconds = elapsed + time.perf_counter() - began
            if dist_ctx.is_main:
                save_snapshot(run_dir, model, optimizers, done, config, seconds, stats, guard, score)
            guard.remember(done, model, optimizers, stats.sums, stats.count)
        if config.grid_every and done % config.grid_every == 0 and dataset.is_image and dist_ctx.is_main:
            grid = run_dir / f"samples-{done:09d}.png"
            with rundir.run_dir_writes(run_dir, "sample grid"), torch.inference_mode():
                write_sample_grid(model.with_averages(), grid, conditions=grid_conditions)
            if board is not None:
                board.image("samples", grid, done)
        bar.update(1)
        step = done
    bar.close()
    if board is not None:
        board.close()
    seconds = elapsed + time.perf_counter() - began
    distributed.finish(dist_ctx)
    if not dist_ctx.is_main:
        shutil.rmtree(stats.path.parent, ignore_errors=True)
        return None
    dataset.train = dataset.train.cpu()
    return TrainedRun(model.with_averages(), dataset, config, method, seconds, total)


def _conditions(
    config: TrainConfig, method: Method, dataset: Dataset, device: torch.device
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """A conditional run's condition vectors of the training set (on the device) and of its grids."""
    size = condition_dim(config, method)
    if not size:
        return None, None
    if dataset.labels is None or not dataset.is_image:
        raise AliError(
            f"method {config.method!r} conditions on labels, and dataset {dataset.name!r} has none; choose a labelled image dataset"
        )
    return as_conditions(dataset.labels, size, dataset.name).to(device), evaluation_conditions(dataset, 64, size)


def _scratch_dir(ctx: distributed.DistContext) -> Path:
    """Where a rank other than 0 keeps its (discarded) log lines: never the shared run directory."""
    return Path(tempfile.mkdtemp(prefix=f"ali-rank{ctx.rank}-"))


def save_snapshot(
    run_dir: Path,
    model: Model,
    optimizers: dict,
    step: int,
    config: TrainConfig,
    train_seconds: float,
    stats: StatsLog | None = None,
    guard: DivergenceGuard | None = None,
    score: Score | None = None,
) -> None:
    """Write checkpoint `step`; keep the newest `keep_checkpoints` and the one balanced.json names."""
    extra: dict[str, Any] = {"train_seconds": train_seconds, **(guard.state() if guard else {})}
    aux: dict[str, torch.Tensor] = {}
    if stats is not None:  # unlogged sums travel along, so a resumed run logs the same lines
        extra["stats_count"], aux = stats.count, dict(stats.sums)
    path = rundir.checkpoint_path(run_dir, step)
    with rundir.run_dir_writes(run_dir, f"checkpoint {path.name}"):
        rundir.save_checkpoint(path, model, optimizers, step, to_dict(config), extra, aux)
        if stats is not None:
            if score is not None:
                rundir.update_balanced(run_dir, path, step, *score(stats.recent))
            stats.recent = []
        rundir.prune_checkpoints(run_dir, config.keep_checkpoints)
