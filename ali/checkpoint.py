"""The checkpoint format: one safetensors file per snapshot, never unpickled.

This module is the tensor format only: a snapshot's bytes (`checkpoint_bytes`), reading and
parsing them, and restoring nets, optimizer state and RNG from them. Where checkpoints live in a
run directory, their names, atomic writes, the balanced.json record and pruning are ali.rundir's.

Tensors: every network's state (`net/...`), every optimizer's per-parameter state
(`opt/<name>/<index>/<key>`) and the RNG states (`rng/...`, uint8). The safetensors metadata holds
one JSON header: format version, step, config, optimizer hyperparameters, package versions.
Anything else a caller must carry over exactly (the stats log's pending sums) goes in `aux/...`.

Pickle-based PyTorch files are never given to pickle: `read_checkpoint` refuses them by their
magic bytes, and `import_torch_checkpoint` loads plain weights with torch's weights_only loader.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from ali.errors import AliError
from ali.version import __version__

FORMAT = "ali-checkpoint-1"
# torch.save's zip container and the legacy pickle protocols 2-5: never parsed, only recognised.
_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


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


def checkpoint_bytes(
    model: torch.nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    step: int,
    config: dict[str, Any],
    extra: dict[str, Any] | None = None,
    aux: dict[str, torch.Tensor] | None = None,
) -> bytes:
    """The checkpoint file's bytes: everything needed to continue exactly (nets, optimizers, RNG,
    step, aux tensors). ali.rundir.save_checkpoint writes them atomically into a run directory."""
    tensors = {f"net/{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"aux/{k}": v.detach().cpu().contiguous() for k, v in (aux or {}).items()})
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
        "versions": {"ali": __version__, "torch": torch.__version__},
        "extra": extra or {},
    }
    for key, value in tensors.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise AliError(f"refusing to checkpoint step {step}: tensor '{key}' holds a non-finite value")
    return safetensors.torch.save(tensors, metadata={"header": json.dumps(header)})


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and header of a checkpoint, or AliError if the file is not a valid one."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AliError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    return parse_checkpoint(data, str(path))


def parse_checkpoint(data: bytes, name: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Parse checkpoint bytes; any damage or foreign format is an AliError, never a crash."""
    if data.startswith(_PICKLE_MAGIC):
        raise AliError(
            f"{name} is a pickle-based PyTorch file; ali never unpickles checkpoints. Convert plain weights with "
            "ali.checkpoint.import_torch_checkpoint (torch.load weights_only=True), or use an ali checkpoint"
        )
    try:
        header_len = int.from_bytes(data[:8], "little")
        if len(data) < 8 or header_len > len(data) - 8:
            raise ValueError("truncated")
        metadata = json.loads(data[8 : 8 + header_len])["__metadata__"]
        header = json.loads(metadata["header"])
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError("unknown format")
        _check_header(header)
        tensors = safetensors.torch.load(data)
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except BaseException as exc:  # noqa: BLE001  the Rust parser's panics derive from BaseException
        raise AliError(f"{name} is not a valid ali checkpoint (corrupted or another format: {type(exc).__name__})") from None
    return tensors, header


def _check_header(header: dict[str, Any]) -> None:
    """Types a restore relies on, so a forged header fails here and not deep inside torch."""
    step = header["step"]
    if type(step) is not int or step < 0:
        raise ValueError("bad step")
    if not isinstance(header["config"], dict) or not isinstance(header["optimizers"], dict):
        raise ValueError("bad config or optimizers")
    for opt in header["optimizers"].values():
        if not isinstance(opt, dict) or not isinstance(opt.get("param_groups"), list):
            raise ValueError("bad optimizer header")
    if not isinstance(header.get("extra", {}), dict):
        raise ValueError("bad extra")


# Keys that decide which networks a model has and their shapes (ema_decay: whether weight
# averages are kept; pack: the packed D's input width): a checkpoint made with other values cannot
# be restored.
_SHAPE_KEYS = ("arch", "method", "latent_dim", "dataset", "ema_decay", "pack")


def _shape_value(key: str, value: Any) -> Any:
    """What of a key's value decides the networks: for ema_decay only whether it is on."""
    return value is not None and value > 0 if key == "ema_decay" else value


def restore(
    tensors: dict[str, torch.Tensor],
    header: dict[str, Any],
    model: torch.nn.Module,
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    restore_rng: bool = True,
) -> int:
    """Load a checkpoint's state into model (and optimizers, RNG); returns its step."""
    config = getattr(model, "config", None)
    if config is not None:
        differ = [
            k
            for k in _SHAPE_KEYS
            if k in header["config"] and _shape_value(k, header["config"][k]) != _shape_value(k, getattr(config, k, None))
        ]
        if differ:
            theirs = ", ".join(f"{k}={header['config'][k]!r}" for k in differ)
            ours = ", ".join(f"{k}={getattr(config, k)!r}" for k in differ)
            raise AliError(f"checkpoint was made for {theirs}, this run uses {ours}; resume it with its own config")
    net_state = {k[len("net/") :]: v for k, v in tensors.items() if k.startswith("net/")}
    expected = model.state_dict()
    mismatched = [k for k in expected if k not in net_state or net_state[k].shape != expected[k].shape]
    if mismatched or len(net_state) != len(expected):
        arch = header["config"].get("arch"), header["config"].get("method")
        raise AliError(
            f"checkpoint was made for architecture/method {arch}, which does not match this model "
            f"({len(mismatched)} tensors differ, e.g. '{(mismatched or list(net_state))[0]}')"
        )
    try:
        model.load_state_dict(net_state)
        for name, optimizer in (optimizers or {}).items():
            load_optimizer_state(optimizer, _unflatten_optimizer(name, tensors, header))
        if restore_rng:
            torch.set_rng_state(tensors["rng/torch"])
            if torch.cuda.is_available():
                cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng/cuda")]
                if len(cuda_states) == torch.cuda.device_count():
                    torch.cuda.set_rng_state_all(cuda_states)
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as exc:
        raise AliError(f"checkpoint optimizer or RNG state does not fit this run ({type(exc).__name__}: {exc})") from None
    return int(header["step"])


def load_optimizer_state(optimizer: torch.optim.Optimizer, state_dict: dict[str, Any]) -> None:
    """optimizer.load_state_dict, then each per-parameter state tensor in its parameter's layout.

    load_state_dict keeps the strides of the tensors it is given (contiguous ones from a
    checkpoint file) while conv weights are channels_last, and fused Adam reads the moments and
    the weight as flat arrays: the wrong elements would be paired. Same values, the parameter's
    strides."""
    optimizer.load_state_dict(state_dict)
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            for key, value in state.items():
                if torch.is_tensor(value) and value.shape == p.shape and value.stride() != p.stride():
                    state[key] = torch.empty_like(p).copy_(value)


def aux_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The `aux` tensors a caller stored with save_checkpoint."""
    return {k[len("aux/") :]: v for k, v in tensors.items() if k.startswith("aux/")}


def import_torch_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Plain tensors from a torch.save file, loaded with weights_only=True: no code in it runs."""
    try:
        obj = torch.load(Path(path), map_location="cpu", weights_only=True)
    except OSError as exc:
        raise AliError(f"cannot read {path}: {exc.strerror}") from None
    except Exception as exc:  # noqa: BLE001  weights_only rejects any pickle global it does not allow
        raise AliError(f"{path} was refused by torch's weights_only loader ({type(exc).__name__}); it may hold code") from None
    if not isinstance(obj, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items()):
        raise AliError(f"{path} does not hold a flat dict of named tensors (a state_dict)")
    return obj
