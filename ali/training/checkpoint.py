"""Checkpoints: one safetensors file per snapshot, written atomically, never unpickled.

Tensors: every network's state (`net/...`), every optimizer's per-parameter state
(`opt/<name>/<index>/<key>`) and the RNG states (`rng/...`, uint8). The safetensors metadata holds
one JSON header: format version, step, config, optimizer hyperparameters, package versions.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

import ali
from ali.errors import AliError

FORMAT = "ali-checkpoint-1"
_NAME = re.compile(r"^checkpoint-(\d{9})\.safetensors$")


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / f"checkpoint-{step:09d}.safetensors"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints in the run directory, oldest first (temporary files are ignored)."""
    found = [(int(m.group(1)), p) for p in run_dir.glob("checkpoint-*.safetensors") if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


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


def _flatten_optimizer(name: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors = {}
    for index, per_param in state["state"].items():
        for key, value in per_param.items():
            tensors[f"opt/{name}/{index}/{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return tensors, {"param_groups": state["param_groups"]}


def _unflatten_optimizer(name: str, tensors: dict[str, torch.Tensor], header: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    prefix = f"opt/{name}/"
    for key, value in tensors.items():
        if key.startswith(prefix):
            index, field = key[len(prefix) :].split("/", 1)
            state.setdefault(int(index), {})[field] = value
    return {"state": state, "param_groups": header["optimizers"][name]["param_groups"]}


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    step: int,
    config: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> None:
    """Snapshot everything needed to continue exactly: nets, optimizers, RNG, step."""
    tensors = {f"net/{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt_headers = {}
    for name, optimizer in optimizers.items():
        flat, opt_headers[name] = _flatten_optimizer(name, optimizer)
        tensors.update({k: v.detach().cpu().contiguous() for k, v in flat.items()})
    tensors["rng/torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda{i}"] = state
    header = {
        "format": FORMAT,
        "step": step,
        "config": config,
        "optimizers": opt_headers,
        "versions": {"ali": ali.__version__, "torch": torch.__version__},
        "extra": extra or {},
    }
    for key, value in tensors.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise AliError(f"refusing to checkpoint step {step}: tensor '{key}' holds a non-finite value")
    data = safetensors.torch.save(tensors, metadata={"header": json.dumps(header)})
    atomic_write_bytes(path, data)


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and header of a checkpoint, or AliError if the file is not a valid one."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AliError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    try:
        header_len = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + header_len])["__metadata__"]
        header = json.loads(metadata["header"])
        tensors = safetensors.torch.load(data)
        if header.get("format") != FORMAT:
            raise ValueError("unknown format")
        int(header["step"]), dict(header["config"]), dict(header["optimizers"])
    except Exception as exc:  # any parse failure of a foreign or damaged file becomes one clear error
        raise AliError(f"{path} is not a valid ali checkpoint (corrupted or another format: {type(exc).__name__})") from None
    return tensors, header


def restore(
    tensors: dict[str, torch.Tensor],
    header: dict[str, Any],
    model: torch.nn.Module,
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    restore_rng: bool = True,
) -> int:
    """Load a checkpoint's state into model (and optimizers, RNG); returns its step."""
    net_state = {k[len("net/") :]: v for k, v in tensors.items() if k.startswith("net/")}
    expected = model.state_dict()
    mismatched = [k for k in expected if k not in net_state or net_state[k].shape != expected[k].shape]
    if mismatched or len(net_state) != len(expected):
        arch = header["config"].get("arch"), header["config"].get("method")
        raise AliError(
            f"checkpoint was made for architecture/method {arch}, which does not match this model "
            f"({len(mismatched)} tensors differ, e.g. '{(mismatched or list(net_state))[0]}')"
        )
    model.load_state_dict(net_state)
    for name, optimizer in (optimizers or {}).items():
        optimizer.load_state_dict(_unflatten_optimizer(name, tensors, header))
    if restore_rng:
        torch.set_rng_state(tensors["rng/torch"])
        if torch.cuda.is_available():
            cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng/cuda")]
            if len(cuda_states) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(cuda_states)
    return int(header["step"])


def newest_valid_checkpoint(run_dir: Path) -> tuple[Path, dict[str, torch.Tensor], dict[str, Any]]:
    """The newest checkpoint that reads cleanly; damaged newer ones are skipped."""
    errors = []
    for path in reversed(list_checkpoints(run_dir)):
        try:
            tensors, header = read_checkpoint(path)
            return path, tensors, header
        except AliError as exc:
            errors.append(str(exc))
    detail = f" ({'; '.join(errors)})" if errors else ""
    raise AliError(f"no valid checkpoint in {run_dir} to resume from{detail}")
