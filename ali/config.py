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
from typing import Any

from ali.data import DATASET_NAMES, is_known_dataset
from ali.data.anomaly import PROTOCOLS as ANOMALY_PROTOCOLS
from ali.data.specs import DATASETS as DATASET_SPECS
from ali.errors import AliError
from ali.keys import Rule, default_data_dir, in_range, one_of
from ali.methods import METHODS, foreign_keys, get_method, method_keys
from ali.methods.base import Method
from ali.nets.architectures import ARCHITECTURES

# The `precision` key's values; ali.training.hardware resolves "auto" and builds each.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class CommonConfig:
    """The keys every method reads. The methods' own keys (ali.methods, e.g. recon_weight for
    alice) are added to these to make TrainConfig."""

    dataset: str = "toy25"
    arch: str = "toy"
    method: str = "ali"
    latent_dim: int = 2
    batch_size: int = 100
    steps: int = 200_000
    lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    # Linear learning-rate decay: constant until `decay_start` (a fraction of training), then
    # linear down to lr * lr_final_fraction at the last step. 1.0 / 1.0 = the paper (constant).
    decay_start: float = 1.0
    lr_final_fraction: float = 1.0
    init_std: float = 0.02
    # Exponential moving average of the generators' weights (ali.nets.model): 0 = none; e.g.
    # 0.999 averages over about the last 1,000 steps. Samples, grids and every evaluation use it.
    ema_decay: float = 0.0
    # Anomaly detection (ali.data.anomaly): "one-class" trains on class anomaly_class alone,
    # "one-anomalous" on the other classes; "none" trains on the whole training split.
    anomaly_protocol: str = "none"
    anomaly_class: int = 0
    # "nearest": strided transposed convs start as nearest upsampling + conv (ali.nets.layers.init_weights)
    tconv_init: str = "normal"
    seed: int = 0
    log_every: int = 100
    checkpoint_every: int = 5_000
    keep_checkpoints: int = 3
    eval_samples: int = 10_000
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    # Execution (ali.training.hardware, ali.training.distributed; docs/BENCHMARKS.md). None of
    # these change a checkpoint's layout, so a run may resume with other values.
    device: str = "auto"  # "auto" = the GPU if CUDA is available, else the CPU
    # "auto": bf16 where the hardware has native bf16, else fp32 (ali.training.hardware); "bf16"
    # autocast (CPU or GPU) or "fp16" with loss scaling (GPU only).
    precision: str = "auto"
    compile: bool = False  # torch.compile the networks (docs/BENCHMARKS.md: no gain on small CPUs)
    sync_bn: bool = False  # multi-GPU runs: batch norm statistics over the global batch
    # $ALI_DATA_DIR, else data/ under the working directory (ali.keys.default_data_dir), read
    # when a config is built; the run saves the folder it resolved to.
    data_dir: str = dataclasses.field(default_factory=default_data_dir)
    # Image data: write samples-<step>.png from a fixed z every grid_every steps (0 = never).
    grid_every: int = 0
    tensorboard: bool = False  # also log scalars and sample grids for TensorBoard (extra ali[tensorboard])
    # Divergence guard (ali.training.guard, docs/RELIABILITY.md): on a non-finite loss or weight,
    # restore the last good state and multiply the learning rate by guard_lr_factor; stop after
    # guard_max_failures recoveries. (Methods with a D add the D-wins warning's keys.)
    guard_lr_factor: float = 0.5
    guard_max_failures: int = 3


# One flat record: the common keys, then every method's own keys with their defaults.
TrainConfig = dataclasses.make_dataclass(
    "TrainConfig",
    [(name, type(key.default), dataclasses.field(default=key.default)) for name, key in method_keys().items()],
    bases=(CommonConfig,),
    frozen=True,
)
TrainConfig.__doc__ = "A run's full config: CommonConfig's keys plus every method's own (ali.methods)."
TrainConfig.__module__ = __name__


RULES: dict[str, Rule] = {
    "method": one_of(*METHODS),
    "latent_dim": in_range(1),
    "batch_size": in_range(1),
    "steps": in_range(1),
    "lr": in_range(0, 1, lo_open=True),
    "beta1": in_range(0, 0.9999),
    "beta2": in_range(0, 0.99999),
    "decay_start": in_range(0, 1),
    "lr_final_fraction": in_range(0, 1),
    "init_std": in_range(0, lo_open=True),
    "ema_decay": in_range(0, 0.99999),
    "anomaly_protocol": one_of("none", *ANOMALY_PROTOCOLS),
    "anomaly_class": in_range(0, 9),  # every dataset with official train and test splits has 10 classes
    "tconv_init": one_of("normal", "nearest"),
    "seed": in_range(0),
    "log_every": in_range(1),
    "checkpoint_every": in_range(1),
    "keep_checkpoints": in_range(1),
    "eval_samples": in_range(100),
    "threads": in_range(0),
    "device": one_of("auto", "cpu", "cuda"),
    "precision": one_of(*PRECISIONS),
    "grid_every": in_range(0),
    "guard_lr_factor": in_range(0, 1, lo_open=True),
    "guard_max_failures": in_range(0),
    **{name: key.rule for name, key in method_keys().items()},
}

FIELD_TYPES: dict[str, type] = {
    f.name: type(f.default_factory() if f.default is dataclasses.MISSING else f.default) for f in dataclasses.fields(TrainConfig)
}


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
        raise AliError(
            f"config key 'latent_dim' = {config.latent_dim} does not match architecture '{config.arch}' (latent {arch_latent}); set latent_dim={arch_latent}"
        )
    if config.tconv_init != "normal" and not any(
        row.op == "convT" and row.s > 1 and row.k % row.s == 0 for row in ARCHITECTURES[config.arch].decoder
    ):
        raise AliError(
            f"tconv_init={config.tconv_init!r} changes strided transposed convolutions and architecture "
            f"'{config.arch}' has none; drop it"
        )
    if config.anomaly_protocol == "none" and config.anomaly_class != 0:
        raise AliError("config key 'anomaly_class' is read by an anomaly protocol only; set anomaly_protocol or drop it")
    method = METHODS[config.method]
    if "pack" in method.keys and config.batch_size % config.pack:
        raise AliError(f"config key 'pack' = {config.pack} must divide batch_size = {config.batch_size}: D judges whole groups")
    if config.anomaly_protocol != "none" and method.uses_labels:
        unsupervised = ", ".join(name for name, m in METHODS.items() if not m.uses_labels)
        raise AliError(
            f"anomaly_protocol trains an unsupervised detector; method {config.method!r} uses labels. Choose one of {unsupervised}"
        )
    spec = DATASET_SPECS.get(config.dataset)
    if config.anomaly_protocol != "none" and (spec is None or not {"train", "test"} <= set(spec.splits)):
        known = ", ".join(n for n, s in DATASET_SPECS.items() if {"train", "test"} <= set(s.splits))
        raise AliError(f"anomaly_protocol needs a dataset with official train and test splits ({known}); got {config.dataset!r}")
    own = set(METHODS[config.method].keys)
    METHODS[config.method].check_settings({k: getattr(config, k) for k in own})
    keys = method_keys()
    unused = sorted(k for k in foreign_keys(config.method) if getattr(config, k) != keys[k].default)
    if unused:
        users = {k: [m for m, spec in METHODS.items() if k in spec.keys] for k in unused}
        detail = "; ".join(f"'{k}' belongs to {', '.join(users[k])}" for k in unused)
        raise AliError(
            f"method '{config.method}' does not use config key(s) {', '.join(unused)} ({detail}); drop them or choose a method that uses them"
        )


def for_method(values: dict[str, Any], method: str) -> dict[str, Any]:
    """A preset's values for `method`: the keys another method owns are dropped, so one preset
    serves every method with the same data, schedule and budget."""
    foreign = foreign_keys(method)  # AliError for an unknown method
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
    """The run's config as saved and shown: every general key and its method's own, none of the
    keys another method owns (validate() holds those at their defaults, where they mean nothing)."""
    foreign = foreign_keys(config.method)
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in foreign}


def settings(config: TrainConfig, method: Method | None = None) -> dict[str, Any]:
    """The values of the config keys the run's method owns (the method of config.method unless given)."""
    return {k: getattr(config, k) for k in (get_method(config.method) if method is None else method).keys}
