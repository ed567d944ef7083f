"""How a step runs on the hardware: device, precision, memory layout, compilation.

Precision "auto" (the default) picks bf16 only where the hardware computes it natively: a CUDA
GPU with bf16 support, or a CPU with AMX or AVX-512-BF16 instructions. Elsewhere (an AVX2 or a
plain AVX-512 CPU) torch emulates bf16 and runs several times slower than fp32, so "auto" is
fp32 there. fp16 is an explicit GPU choice (GradScaler, two-pass update).

`make_runtime` builds the `StepRuntime` (ali.methods.base) a method's step runs with: an
autocast context for forward passes, a GradScaler for fp16, and a gradient all-reduce for
data-parallel runs (ali.training.distributed). `prepare_model` moves a model to its device, puts
conv nets in channels_last and optionally compiles them; none of it changes a state_dict key, so
checkpoints stay interchangeable between fp32/bf16, CPU/GPU and any world size. Batches follow
the model's layout through ali.data.batches.to_model_layout.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import torch
from torch import nn

from ali.config import PRECISIONS
from ali.errors import AliError
from ali.methods.base import StepRuntime
from ali.nets.model import Model

DEVICES = ("auto", "cpu", "cuda")
# CPU feature flags (Linux /proc/cpuinfo names) under which oneDNN runs bf16 matmuls natively.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' -> the local rank's GPU if CUDA is available, else the CPU."""
    if name not in DEVICES:
        raise AliError(f"device {name!r} is unknown; use one of {', '.join(DEVICES)}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise AliError("device=cuda but this torch build sees no CUDA GPU; use device=cpu or device=auto")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def _cpuinfo_lines() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them; empty where /proc/cpuinfo is absent."""
    for line in _cpuinfo_lines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def cpu_native_bf16() -> bool:
    """True when this CPU computes bf16 matmuls in hardware (AMX or AVX-512-BF16) and oneDNN may
    use those instructions (ONEDNN_MAX_CPU_ISA, when set, caps the instruction sets it uses)."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if cap and cap not in ("ALL", "DEFAULT") and "BF16" not in cap and "AMX" not in cap:
        return False
    return bool(cpu_flags() & set(NATIVE_BF16_FLAGS))


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_native_bf16()


def machine_line() -> dict[str, object]:
    """What a speed figure must name: CPU model, torch's kernel capability, native bf16 or not."""
    model = platform.processor() or platform.machine()
    for line in _cpuinfo_lines():
        if line.startswith("model name"):
            model = line.partition(":")[2].strip()
            break
    return {
        "cpu": model,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": cpu_native_bf16(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


_warned: set[str] = set()


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> bf16 where it is native, else fp32. An explicit bf16 without native support
    runs, with one warning per process naming the capability and the expected slowdown."""
    if precision not in PRECISIONS:
        raise AliError(f"precision {precision!r} is unknown; use one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision == "bf16" and not native_bf16(device) and "bf16" not in _warned:
        _warned.add("bf16")
        where = f"CPU capability {torch.backends.cpu.get_cpu_capability()}" if device.type == "cpu" else "this GPU"
        print(
            f"warning: precision=bf16 on {where} without native bf16 instructions (AMX or AVX-512-BF16): "
            "torch emulates it, typically 5-10x slower than fp32; precision=auto picks fp32 here",
            file=sys.stderr,
        )
    return precision


def make_runtime(precision: str, device: torch.device, all_reduce=None) -> StepRuntime:
    """Autocast (and, for fp16, a GradScaler) for a resolved `precision` on `device`."""
    if precision not in PRECISIONS or precision == "auto":
        raise AliError(f"precision {precision!r} must be resolved to one of fp32, bf16, fp16 first")
    if precision == "fp32":
        return StepRuntime(all_reduce=all_reduce)
    if precision == "fp16" and device.type != "cuda":
        # CPU fp16 kernels are slow and GradScaler's inf checks assume a GPU; bf16 is the CPU's format.
        raise AliError("precision=fp16 needs a CUDA device; on the CPU use precision=bf16 or auto")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    runtime = StepRuntime(autocast=lambda: torch.autocast(device.type, dtype=dtype), all_reduce=all_reduce, precision=precision)
    if precision == "fp16":
        runtime.scaler = torch.amp.GradScaler(device.type)
    return runtime


def uses_conv(model: nn.Module) -> bool:
    return any(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in model.modules())


def prepare_model(model: Model, device: torch.device, compile_nets: bool = False) -> Model:
    """Move to `device`; conv models in channels_last; optionally compile each network."""
    model.to(device)
    if uses_conv(model):
        model.to(memory_format=torch.channels_last)
    if compile_nets:
        for _, net in model.trained_networks():
            net.compile()  # in place: keeps state_dict keys (no `_orig_mod.` prefix)
    return model
