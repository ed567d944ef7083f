"""Training configuration: one flat, typed, range-checked record, named presets, `--set` parsing.

A run's configuration is fully resolved before training starts and saved beside it, so a run
directory alone says how it was made.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ali.data import DATASET_NAMES, is_known_dataset
from ali.errors import AliError
from ali.methods import METHODS, method_keys
from ali.nets.architectures import ARCHITECTURES
from ali.training.hardware import PRECISIONS


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "toy25"
    arch: str = "toy"
    method: str = "ali"
    latent_dim: int = 2
    batch_size: int = 100
    steps: int = 200_000
    lr: float = 1e-4
    # Two time-scale update rule (Heusel et al. 2017): the discriminators' Adam runs at
    # lr * d_lr_factor. 1.0 = the paper (one learning rate for every net).
    d_lr_factor: float = 1.0
    beta1: float = 0.5
    beta2: float = 0.999
    # Linear learning-rate decay: constant until `decay_start` (a fraction of training), then
    # linear down to lr * lr_final_fraction at the last step. 1.0 / 1.0 = the paper (constant).
    decay_start: float = 1.0
    lr_final_fraction: float = 1.0
    # "simultaneous": the authors' one-forward update (fused or two-pass backward, whichever is
    # exact and faster; ali.methods.adversarial); "two-pass" forces the second; "alternating": D then G.
    update: str = "simultaneous"
    # alice: the explicit cycle term (Li et al. 2017) added to the generators' loss,
    # recon_weight * mean ||x - Gx(Gz(x))||^2.
    recon_weight: float = 1.0
    # alice: which nets that term trains: "both" (ALICE) or "decoder" (the code Gz(x) is held
    # fixed, so the encoder learns only from the adversarial game; docs/RESULTS.md, toy recipe).
    recon_trains: str = "both"
    # alice: which training passes update the decoder's batch-norm running averages (what
    # sampling and reconstruction use): "prior", only the pass on the prior batch; "all", the
    # cycle term's pass on the encoder's codes too (torch's own behaviour).
    decoder_bn_stats: str = "prior"
    # Where each training step's prior batch z ~ N(0, I) comes from: "random" (i.i.d. draws, the
    # paper) or "sobol" (scrambled Sobol points: every batch a stratified sample of the prior, so
    # batch-norm statistics inside the decoder vary less between steps; ali.training.prior).
    prior_sampling: str = "random"
    init_std: float = 0.02
    seed: int = 0
    log_every: int = 100
    checkpoint_every: int = 5_000
    keep_checkpoints: int = 3
    eval_samples: int = 10_000
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    # Execution (ali.training.precision, ali.training.distributed; docs/BENCHMARKS.md). None of
    # these change a checkpoint's layout, so a run may resume with other values.
    device: str = "auto"  # "auto" = the GPU if CUDA is available, else the CPU
    # "auto": bf16 where the hardware has native bf16, else fp32 (ali.training.hardware); "bf16"
    # autocast (CPU or GPU) or "fp16" with loss scaling (GPU only).
    precision: str = "auto"
    compile: bool = False  # torch.compile the networks (gave nothing on the 2-core CPU)
    sync_bn: bool = False  # multi-GPU runs: batch norm statistics over the global batch
    data_dir: str = "../shared/data"
    # Image data: write samples-<step>.png from a fixed z every grid_every steps (0 = never).
    grid_every: int = 0
    # Divergence guard (ali.training.guard, docs/RELIABILITY.md): on a non-finite loss or weight,
    # restore the last good state and multiply the learning rate by guard_lr_factor; stop after
    # guard_max_failures recoveries. Warn when loss_d stays below guard_d_win_loss for
    # guard_d_win_logs consecutive log lines (D wins completely; 0 disables the warning).
    guard_lr_factor: float = 0.5
    guard_max_failures: int = 3
    guard_d_win_loss: float = 0.01
    guard_d_win_logs: int = 5


def _in(*choices: str) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v in choices), "one of " + ", ".join(choices)


def _range(lo: float, hi: float | None = None, lo_open: bool = False) -> tuple[Callable[[Any], bool], str]:
    def check(v: float) -> bool:
        above = v > lo if lo_open else v >= lo
        return above and (hi is None or v <= hi)

    desc = f"{'>' if lo_open else '>='} {lo}" + (f" and <= {hi}" if hi is not None else "")
    return check, desc


RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "method": _in(*METHODS),
    "latent_dim": _range(1),
    "batch_size": _range(1),
    "steps": _range(1),
    "lr": _range(0, 1, lo_open=True),
    "d_lr_factor": _range(0, 100, lo_open=True),
    "beta1": _range(0, 0.9999),
    "beta2": _range(0, 0.99999),
    "decay_start": _range(0, 1),
    "lr_final_fraction": _range(0, 1),
    "update": _in("simultaneous", "two-pass", "alternating"),
    "recon_weight": _range(0, lo_open=True),
    "recon_trains": _in("both", "decoder"),
    "decoder_bn_stats": _in("prior", "all"),
    "prior_sampling": _in("random", "sobol"),
    "init_std": _range(0, lo_open=True),
    "seed": _range(0),
    "log_every": _range(1),
    "checkpoint_every": _range(1),
    "keep_checkpoints": _range(1),
    "eval_samples": _range(100),
    "threads": _range(0),
    "device": _in("auto", "cpu", "cuda"),
    "precision": _in(*PRECISIONS),
    "grid_every": _range(0),
    "guard_lr_factor": _range(0, 1, lo_open=True),
    "guard_max_failures": _range(0),
    "guard_d_win_loss": _range(0, 1.386),
    "guard_d_win_logs": _range(1),
}

FIELD_TYPES: dict[str, type] = {f.name: type(f.default) for f in dataclasses.fields(TrainConfig)}
DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def _coerce(key: str, value: Any) -> Any:
    """Turn a JSON or command-line value into the field's type, or say what was expected."""
    want = FIELD_TYPES[key]
    if isinstance(value, str) and want is not str:
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise AliError(f"config key '{key}' = {value!r} is not a {want.__name__}") from None
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if want is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if type(value) is not want:
        raise AliError(f"config key '{key}' = {value!r} is not a {want.__name__}")
    if want is float and not math.isfinite(value):  # JSON accepts NaN/Infinity; no key means them
        raise AliError(f"config key '{key}' = {value!r} is not a finite number")
    return value


def _check_key(key: str) -> None:
    if key not in FIELD_TYPES:
        close = difflib.get_close_matches(key, FIELD_TYPES, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise AliError(f"unknown config key '{key}'{hint}; allowed: {', '.join(FIELD_TYPES)}")


def make_config(values: dict[str, Any]) -> TrainConfig:
    """Build and validate a config from a dict of overrides on the defaults."""
    if not isinstance(values, dict):
        raise AliError("a config must be a JSON object of key: value pairs")
    typed = {}
    for key, value in values.items():
        _check_key(key)
        typed[key] = _coerce(key, value)
    config = TrainConfig(**typed)
    validate(config)
    return config


def validate(config: TrainConfig) -> None:
    for key, (check, desc) in RULES.items():
        value = getattr(config, key)
        if not check(value):
            raise AliError(f"config key '{key}' = {value!r} is out of range: must be {desc}")
    if not is_known_dataset(config.dataset):
        raise AliError(f"config key 'dataset' = {config.dataset!r} is unknown; known: {', '.join(DATASET_NAMES)}, folder:PATH")
    if config.arch not in ARCHITECTURES:
        raise AliError(f"config key 'arch' = {config.arch!r} is unknown; known: {', '.join(sorted(ARCHITECTURES))}")
    arch_latent = ARCHITECTURES[config.arch].latent_dim  # the layer tables fix the latent size
    if config.latent_dim != arch_latent:
        raise AliError(f"config key 'latent_dim' = {config.latent_dim} does not match architecture '{config.arch}' (latent {arch_latent}); set latent_dim={arch_latent}")
    own = set(METHODS[config.method].keys)
    unused = sorted(k for k in method_keys() - own if getattr(config, k) != DEFAULTS[k])
    if unused:
        users = {k: [m for m, spec in METHODS.items() if k in spec.keys] for k in unused}
        detail = "; ".join(f"'{k}' belongs to {', '.join(users[k])}" for k in unused)
        raise AliError(f"method '{config.method}' does not use config key(s) {', '.join(unused)} ({detail}); drop them or choose a method that uses them")


def for_method(values: dict[str, Any], method: str) -> dict[str, Any]:
    """A preset's values for `method`: the keys another method owns are dropped, so one preset
    serves every method with the same data, schedule and budget."""
    if method not in METHODS:
        raise AliError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    foreign = method_keys() - set(METHODS[method].keys)
    return {k: v for k, v in values.items() if k not in foreign} | {"method": method}


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`["lr=3e-4", "update=alternating"]` -> {"lr": "3e-4", ...}; values are typed by make_config."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise AliError(f"--set expects key=value, got {pair!r}")
        _check_key(key.strip())
        out[key.strip()] = value.strip()
    return out


def load_config_source(name_or_file: str, presets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A preset name, or a JSON file holding a dict of config keys."""
    if name_or_file in presets:
        return dict(presets[name_or_file])
    path = Path(name_or_file)
    if not path.is_file():
        raise AliError(f"config {name_or_file!r} is neither a preset ({', '.join(presets)}) nor a JSON file")
    try:
        values = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AliError(f"config file {path} is not valid JSON: {exc}") from None
    if not isinstance(values, dict):
        raise AliError(f"config file {path} must hold a JSON object of key: value pairs")
    return values


def to_dict(config: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)
