"""A run directory: its file names, how one is created, its saved config and condition names.

training_options.json    the resolved config, plus what "auto" resolved to ("resolved")
stats.jsonl              one line per `log_every` steps: step, losses, lr, rate; guard events
checkpoint-*.safetensors the newest `keep_checkpoints` snapshots (ali.checkpoint)
balanced.json            the checkpoint closest to the game's balance by the method's score (the
                         VAE's: lowest nll + kl), kept too (ali.checkpoint; best.json in runs of
                         earlier versions, still read)
metrics.json             the final evaluation
comparison.png           (toy data) the paper's five-panel figure for this run's method
samples.png, reconstructions.png, samples-<step>.png   (images) picture grids
conditions.json          (conditional runs) what each entry of a condition vector means
report.html              the run's report (ali.report.pages)

The one loader of a trained run, which builds its model, is ali.training.build.load_trained.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ali import checkpoint as ckpt
from ali.config import TrainConfig, make_config, to_dict
from ali.errors import AliError

OPTIONS_FILE = "training_options.json"
STATS_FILE = "stats.jsonl"
METRICS_FILE = "metrics.json"
COMPARISON_FILE = "comparison.png"
REPORT_FILE = "report.html"
CONDITIONS_FILE = "conditions.json"
RESOLVED_KEY = "resolved"  # in OPTIONS_FILE: what "auto" values became on the machine that started the run


def holds_run(run_dir: Path) -> bool:
    return run_dir.is_dir() and ((run_dir / OPTIONS_FILE).exists() or bool(ckpt.list_checkpoints(run_dir)))


def prepare_run_dir(run_dir: Path, config: TrainConfig, resolved: dict[str, Any]) -> None:
    """Create a fresh run directory holding the config; refuse one that already holds a run."""
    if holds_run(run_dir):
        raise AliError(f"{run_dir} already holds a run; continue it with --resume or choose another --out")
    if run_dir.exists() and not run_dir.is_dir():
        raise AliError(f"--out {run_dir} exists and is not a directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt.atomic_write_json(run_dir / OPTIONS_FILE, {**to_dict(config), RESOLVED_KEY: resolved})
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
    with ckpt.run_dir_writes(run_dir, CONDITIONS_FILE):
        ckpt.atomic_write_json(run_dir / CONDITIONS_FILE, {"label_names": list(names)})


def read_condition_names(run_dir: Path) -> tuple[str, ...]:
    try:
        names = json.loads((run_dir / CONDITIONS_FILE).read_text()).get("label_names", [])
    except (OSError, ValueError, AttributeError):
        return ()
    return tuple(str(n) for n in names) if isinstance(names, list) else ()
