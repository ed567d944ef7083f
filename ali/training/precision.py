"""How a step runs on the hardware: device, mixed precision, memory layout, compilation.

`StepRuntime` carries what `methods.train_step` needs besides the math: an autocast context for
forward passes, a GradScaler for fp16, and a gradient all-reduce for data-parallel runs
(ali.training.distributed). `prepare_model` moves a model to its device, puts conv nets in
channels_last and optionally compiles them; none of it changes a state_dict key, so checkpoints
stay interchangeable between fp32/bf16, CPU/GPU and any world size.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, ContextManager

import torch
import torch.nn.functional as F
from torch import nn

from ali.errors import AliError

PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class StepRuntime:
    """Per-run execution state of the training step (not part of the model's math or checkpoint)."""

    autocast: Callable[[], ContextManager] = contextlib.nullcontext
    scaler: torch.amp.GradScaler | None = None
    # Averages gradients over data-parallel ranks before each optimizer step; None = one process.
    all_reduce: Callable[[list[torch.Tensor]], None] | None = None
    cache: dict = field(default_factory=dict)


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


def make_runtime(precision: str, device: torch.device) -> StepRuntime:
    """Autocast (and, for fp16, a GradScaler) for `precision` on `device`."""
    if precision not in PRECISIONS:
        raise AliError(f"precision {precision!r} is unknown; use one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return StepRuntime()
    if precision == "fp16" and device.type != "cuda":
        # CPU fp16 kernels are slow and GradScaler's inf checks assume a GPU; bf16 is the CPU's format.
        raise AliError("precision=fp16 needs a CUDA device; on the CPU use precision=bf16")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    runtime = StepRuntime(autocast=lambda: torch.autocast(device.type, dtype=dtype))
    if precision == "fp16":
        runtime.scaler = torch.amp.GradScaler(device.type)
    return runtime


def _plain(m: nn.Module) -> bool:
    return m.padding == (0, 0) and m.dilation == (1, 1) and m.groups == 1 and m.padding_mode == "zeros"


class DenseConv2d(nn.Conv2d):
    """A convolution whose kernel covers its whole input runs as one matrix multiply.

    The paper's D(z), D(x, z) and last encoder layers are such convs (1x1 maps, or a 4x4 kernel
    on a 4x4 map): dense layers in disguise. oneDNN's convolution backward dominated the bf16
    channels_last step at these shapes on this CPU (torch.profiler), while F.linear on the same
    weight is a plain GEMM. Same parameters and state_dict keys as nn.Conv2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if tuple(x.shape[-2:]) != self.kernel_size:
            return super().forward(x)
        out = F.linear(x.reshape(x.shape[0], -1), self.weight.flatten(1), self.bias)  # (C, kh, kw) order
        return out.view(out.shape[0], out.shape[1], 1, 1)


class DenseConvTranspose2d(nn.ConvTranspose2d):
    """A transposed convolution of a 1x1 input (the decoders' first layer) as one matrix multiply."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:  # type: ignore[override]
        if tuple(x.shape[-2:]) != (1, 1) or output_size is not None:
            return super().forward(x, output_size)
        w = self.weight  # (in, out, kh, kw)
        out = F.linear(x.flatten(1), w.flatten(1).t()).view(x.shape[0], *w.shape[1:])
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out.contiguous(memory_format=torch.channels_last)


def _swap_dense_convs(model: nn.Module) -> None:
    for m in model.modules():
        if type(m) is nn.Conv2d and _plain(m):
            m.__class__ = DenseConv2d  # same fields and parameters, only forward differs
        elif type(m) is nn.ConvTranspose2d and _plain(m) and m.output_padding == (0, 0):
            m.__class__ = DenseConvTranspose2d


def uses_conv(model: nn.Module) -> bool:
    return any(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in model.modules())


def prepare_model(model: nn.Module, device: torch.device, compile_nets: bool = False) -> nn.Module:
    """Move to `device`; conv models: pointwise convs as GEMMs and channels_last; optional compile."""
    model.to(device)
    if uses_conv(model):
        _swap_dense_convs(model)
        model.to(memory_format=torch.channels_last)
    if compile_nets:
        for name in ("encoder", "decoder", "discriminator", "x_discriminator"):
            net = getattr(model, name, None)
            if net is not None:
                net.compile()  # in place: keeps state_dict keys (no `_orig_mod.` prefix)
    return model


def to_model_layout(x: torch.Tensor) -> torch.Tensor:
    """Image batches in channels_last to match the conv weights; other tensors unchanged."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def attach_runtime(model: nn.Module, precision: str, device: torch.device, all_reduce=None) -> StepRuntime:
    """Give the model the runtime `methods.train_step` will use (replaces any earlier one)."""
    runtime = make_runtime(precision, device)
    runtime.all_reduce = all_reduce
    model.__dict__["runtime"] = runtime
    return runtime


@contextlib.contextmanager
def on_cpu(model: nn.Module):
    """Run CPU-only helpers (toy evaluation, sample grids) on a GPU-trained model, then move it back."""
    device = next(model.parameters()).device
    if device.type == "cpu":
        yield model
        return
    model.to("cpu")
    try:
        yield model
    finally:
        model.to(device)
        if uses_conv(model):
            model.to(memory_format=torch.channels_last)
