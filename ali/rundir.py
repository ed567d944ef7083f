"""A run directory: its file names, how one is created, its saved config and condition names.

training_options.json    the resolved config, plus what "auto" resolved to ("resolved")
stats.jsonl              one line per `log_every` steps: step, losses, lr, rate; guard events
checkpoint-*.safetensors the newest `keep_checkpoints` snapshots (format: ali.checkpoint)
balanced.json            the checkpoint closest to the game's balance by the method's score (the
                         VAE's: lowest nll + kl), kept too (best.json in runs of
                         earlier versions, still read)
metrics.json             the final evaluation
comparison.png           (toy data) the paper's five-panel figure for this run's method
samples.png, reconstructions.png, samples-<step>.png   (images) picture grids
conditions.json          (conditional runs) what each entry of a condition vector means
report.html              the run's report (ali.report.pages)

Everything about these files lives here: their names, atomic writes (write, fsync, rename) and
the cleanup of a killed writer's temporary files, the stats log's truncation on resume, the
balanced.json record, checkpoint pruning, and the one loader of a trained run (`load_trained`,
networks only, no optimizers). The checkpoint file's tensor format is ali.checkpoint's.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ali import checkpoint as ckpt
from ali.config import TrainConfig, make_config, settings, to_dict
from ali.data import load_anomaly_dataset, load_dataset
from ali.data.dataset import Dataset
from ali.errors import AliError
from ali.methods import get_method
from ali.methods.base import Method
from ali.nets.architectures import ARCHITECTURES
from ali.nets.layers import init_weights, reparametrise_layers
from ali.nets.model import Model

OPTIONS_FILE = "training_options.json"
STATS_FILE = "stats.jsonl"
METRICS_FILE = "metrics.json"
COMPARISON_FILE = "comparison.png"
REPORT_FILE = "report.html"
CONDITIONS_FILE = "conditions.json"
ANOMALY_SCORES_FILE = "anomaly-scores.npz"  # an anomaly run's score of every test image
ANOMALY_FIGURE_FILE = "anomaly.png"
# an anomaly study (`ali anomaly ... all`): its summary, table and ROC figure beside class-<K>/ runs
ANOMALY_STUDY_FILE = "anomaly-study.json"
ANOMALY_TABLE_FILE = "anomaly-study.md"
ANOMALY_STUDY_FIGURE = "anomaly-study.png"
RESOLVED_KEY = "resolved"  # in OPTIONS_FILE: what "auto" values became on the machine that started the run
_NAME = re.compile(r"^checkpoint-(\d{9})\.safetensors$")
# The checkpoint closest to the game's balance: the one whose method score (ali.methods.base.
# Method.score; for an adversarial method mean |loss_d - 2 ln 2|) was lowest when it was written.
# Kept beside the newest ones. Not a "best model": the score is a cheap proxy from the log lines.
BALANCED_FILE = "balanced.json"
LEGACY_BALANCED_FILE = "best.json"  # its name in earlier versions: still read, so older runs resume and report


def holds_run(run_dir: Path) -> bool:
    return run_dir.is_dir() and ((run_dir / OPTIONS_FILE).exists() or bool(list_checkpoints(run_dir)))


def prepare_run_dir(run_dir: Path, config: TrainConfig, resolved: dict[str, Any]) -> None:
    """Create a fresh run directory holding the config; refuse one that already holds a run."""
    if holds_run(run_dir):
        raise AliError(f"{run_dir} already holds a run; continue it with --resume or choose another --out")
    if run_dir.exists() and not run_dir.is_dir():
        raise AliError(f"--out {run_dir} exists and is not a directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / OPTIONS_FILE, {**to_dict(config), RESOLVED_KEY: resolved})
    except OSError as exc:
        raise AliError(f"cannot write to run directory {run_dir}: {exc.strerror}; choose a writable --out") from None


def read_options(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The saved config values and the resolved values, as stored."""
    path = run_dir / OPTIONS_FILE
    if not path.is_file():
        raise AliError(f"{run_dir} holds no run ({OPTIONS_FILE} missing); start one without --resume")
    try:
        values = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AliError(f"{path} is not valid JSON; the run's config is damaged") from None
    if not isinstance(values, dict):
        raise AliError(f"{path} does not hold a JSON object; the run's config is damaged")
    resolved = values.pop(RESOLVED_KEY, {})
    return values, resolved if isinstance(resolved, dict) else {}


def load_run_config(run_dir: Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The run's config. A precision the run resolved from "auto" is kept (a resumed run computes
    as it started, on any machine) unless `overrides` set it."""
    values, resolved = read_options(run_dir)
    if values.get("precision") == "auto" and resolved.get("precision"):
        values["precision"] = resolved["precision"]
    return make_config({**values, **(overrides or {})})


def write_condition_names(run_dir: Path, names: tuple[str, ...]) -> None:
    """What a conditional run's condition vector means, so `ali generate` needs no dataset load."""
    with run_dir_writes(run_dir, CONDITIONS_FILE):
        atomic_write_json(run_dir / CONDITIONS_FILE, {"label_names": list(names)})


def read_condition_names(run_dir: Path) -> tuple[str, ...]:
    try:
        names = json.loads((run_dir / CONDITIONS_FILE).read_text()).get("label_names", [])
    except (OSError, ValueError, AttributeError):
        return ()
    return tuple(str(n) for n in names) if isinstance(names, list) else ()


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / f"checkpoint-{step:09d}.safetensors"


def _numbered_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of the checkpoints in the run directory, oldest first (temporary files are ignored)."""
    return sorted((int(m.group(1)), p) for p in run_dir.glob("checkpoint-*.safetensors") if (m := _NAME.match(p.name)))


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints in the run directory, oldest first (temporary files are ignored)."""
    return [p for _, p in _numbered_checkpoints(run_dir)]


def checkpoint_steps(run_dir: Path) -> list[int]:
    """The steps of the checkpoints in the run directory, oldest first."""
    return [step for step, _ in _numbered_checkpoints(run_dir)]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file, fsync, then rename: a reader sees the old file or the new, never half."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2) + "\n").encode())


def write_anomaly_scores(run_dir: Path, scores: dict[str, np.ndarray], anomalous: np.ndarray, labels: np.ndarray) -> None:
    """ANOMALY_SCORES_FILE: one array per score, `anomalous` (bool) and `labels` (each test
    image's class), row for row; plain arrays, readable with numpy.load(allow_pickle=False)."""
    with io.BytesIO() as buf:
        np.savez(buf, anomalous=anomalous.astype(bool), labels=labels, **{f"score_{k}": v for k, v in scores.items()})
        atomic_write_bytes(run_dir / ANOMALY_SCORES_FILE, buf.getvalue())


def read_anomaly_scores(run_dir: Path) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(scores, anomalous, labels) as write_anomaly_scores stored them."""
    with np.load(run_dir / ANOMALY_SCORES_FILE, allow_pickle=False) as f:
        scores = {k[len("score_") :]: f[k] for k in f.files if k.startswith("score_")}
        return scores, f["anomalous"], f["labels"]


@contextmanager
def run_dir_writes(run_dir: Path, what: str) -> Iterator[None]:
    """Turn a failed write (ENOSPC, EACCES, EROFS, EFBIG, ...) into one clear AliError."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise AliError(
            f"cannot write {what} in {run_dir}: {reason}; free space or choose a writable --out "
            "(earlier checkpoints are intact: continue with --resume)"
        ) from None


def remove_stale_temp_files(run_dir: Path) -> None:
    """Temporary files a killed process left behind (never valid checkpoints: they lack the rename)."""
    for tmp in run_dir.glob(".*.tmp-*"):
        tmp.unlink(missing_ok=True)


def truncate_stats(path: Path, step: int) -> None:
    """Drop stats.jsonl lines after `step` (resume, rollback), so no step is logged twice."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            break  # a torn last line from a crash
    atomic_write_bytes(path, "".join(f"{line}\n" for line in keep).encode())


def balanced_record(run_dir: Path) -> Path:
    """The file naming the balanced checkpoint: balanced.json, or an older run's best.json where
    only that one exists."""
    path, legacy = run_dir / BALANCED_FILE, run_dir / LEGACY_BALANCED_FILE
    return legacy if not path.exists() and legacy.exists() else path


def read_balanced(run_dir: Path) -> dict[str, Any] | None:
    """The balanced.json pointer, or None when absent or damaged (it is advisory only)."""
    try:
        record = json.loads(balanced_record(run_dir).read_text())
        return record if isinstance(record, dict) and isinstance(record.get("score"), (int, float)) else None
    except (OSError, ValueError):
        return None


def update_balanced(run_dir: Path, path: Path, step: int, score: float | None, criterion: str) -> None:
    """Point balanced.json at `path` when its score (lower: closer to balance) beats the recorded one."""
    if score is None:
        return
    record = read_balanced(run_dir)
    if record is not None and (run_dir / str(record.get("file"))).is_file() and record["score"] <= score:
        return
    payload = {"file": path.name, "step": step, "score": round(score, 6), "criterion": criterion}
    atomic_write_json(run_dir / BALANCED_FILE, payload)
    (run_dir / LEGACY_BALANCED_FILE).unlink(missing_ok=True)  # an older run's record, now superseded


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Keep the newest `keep` checkpoints and the one balanced.json names."""
    record = read_balanced(run_dir)
    protected = record.get("file") if record else None
    for old in list_checkpoints(run_dir)[:-keep]:
        if old.name != protected:
            old.unlink(missing_ok=True)


def newest_valid_checkpoint(run_dir: Path) -> tuple[Path, dict[str, torch.Tensor], dict[str, Any]]:
    """The newest checkpoint that reads cleanly; damaged newer ones are skipped."""
    errors = []
    for path in reversed(list_checkpoints(run_dir)):
        try:
            tensors, header = ckpt.read_checkpoint(path)
            return path, tensors, header
        except AliError as exc:
            errors.append(str(exc))
    detail = f" ({'; '.join(errors)})" if errors else ""
    raise AliError(f"no valid checkpoint in {run_dir} to resume from{detail}")


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    step: int,
    config: dict[str, Any],
    extra: dict[str, Any] | None = None,
    aux: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write checkpoint `path` (ali.checkpoint.checkpoint_bytes) atomically."""
    atomic_write_bytes(path, ckpt.checkpoint_bytes(model, optimizers, step, config, extra, aux))


def build_networks(config: TrainConfig, method: Method | None = None) -> Model:
    """The method's networks, weights ~ N(0, init_std): what training starts from
    (training.build.build_model adds the optimizers) and what a trained run's checkpoint is
    restored into."""
    method = get_method(config.method) if method is None else method
    arch = ARCHITECTURES[config.arch]
    values = settings(config, method)
    model = Model(method.networks(arch, values), arch, method.name, config)
    init_weights(model, config.init_std, config.tconv_init)
    if values.get("spectral_norm"):  # an adversarial method's key: each of its discriminators
        for name, net in model.items():  # after the init: the estimate starts from these weights
            if name.endswith("discriminator"):
                reparametrise_layers(net, nn.utils.parametrizations.spectral_norm)
    if config.ema_decay > 0:
        model.add_averages(method.averaged)
    return model


WEIGHTS = ("average", "live")  # which generator weights a loaded run samples with


def default_weights(config: TrainConfig) -> str:
    """The generator weights a run is sampled and evaluated with unless asked otherwise: its
    weight average where it keeps one (ema_decay), else the live weights."""
    return "average" if config.ema_decay > 0 else "live"


def load_run_dataset(config: TrainConfig, data_dir: Path | str | None = None) -> Dataset:
    """The data a run trains and is evaluated on: its dataset, split for anomaly detection where
    its config says so (ali.data.anomaly), from `data_dir` (default: the run's)."""
    folder = config.data_dir if data_dir is None else data_dir
    if config.anomaly_protocol == "none":
        return load_dataset(config.dataset, folder)
    return load_anomaly_dataset(config.dataset, folder, config.anomaly_protocol, config.anomaly_class, config.seed)


def restore_trained(run_dir: Path, config: TrainConfig, weights: str | None = None, step: int | None = None) -> tuple[Model, int]:
    """The run's model in evaluation mode, restored from its newest valid checkpoint (or from
    checkpoint `step`), and that step. Networks only: a trained run is loaded without optimizers.

    `weights`: "average" (the generators' weight average, ema_decay), "live" (the weights the
    optimizers left), or None: the average where the run keeps one, else the live weights."""
    if weights is not None and weights not in WEIGHTS:
        raise AliError(f"weights {weights!r} is unknown; use one of {', '.join(WEIGHTS)}")
    if weights == "average" and config.ema_decay <= 0:
        raise AliError(f"run {run_dir} kept no weight average (ema_decay=0); load its live weights (weights='live')")
    model = build_networks(config)
    if step is None:
        _, tensors, header = newest_valid_checkpoint(run_dir)
    else:
        path = checkpoint_path(run_dir, step)
        if not path.is_file():
            kept = ", ".join(map(str, checkpoint_steps(run_dir))) or "none"
            raise AliError(f"run {run_dir} has no checkpoint of step {step}; it keeps steps {kept}")
        tensors, header = ckpt.read_checkpoint(path)
    step = ckpt.restore(tensors, header, model, restore_rng=False)
    if (weights or default_weights(config)) == "live":
        model = Model(dict(model.trained_networks()), model.arch, model.method, config)
    else:
        model = model.with_averages()
    model.eval()
    return model, step


def load_trained(run_dir: Path | str, weights: str | None = None, step: int | None = None) -> tuple[TrainConfig, Model, int]:
    """The one loader of a trained run: a finished or interrupted run's config, its model from
    the newest valid checkpoint or checkpoint `step` (with the generator `weights`
    restore_trained says), that step."""
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    model, step = restore_trained(run_dir, config, weights, step)
    return config, model, step
