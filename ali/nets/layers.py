"""Layer tables and the building blocks they turn into, so each architecture reads like the
paper's appendix tables (ali.nets.architectures).

A table is a list of `Layer`s; `build_stack` turns one into an `nn.Sequential` of exactly the
modules that run, dense-equivalent convolutions included (so `ali train --dry-run` lists them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

BN_MOMENTUM = 0.05  # docs/PAPER.md §2: running averages with momentum 0.05 for evaluation


@dataclass(frozen=True)
class Layer:
    """One row of an architecture table.

    op: "dense", "conv" or "convT". `out` is the layer's own output width (for maxout, before the
    pieces are reduced: conv 64 + maxout2 -> 32 channels, as in the authors' code).
    drop: dropout on the layer's *input*. act: "relu", "lrelu", "sigmoid", "linear" or "maxoutN".
    """

    op: str
    out: int
    k: int = 1
    s: int = 1
    bn: bool = False
    act: str = "linear"
    drop: float = 0.0
    bias: bool = True
    slope: float = 0.2  # LeakyReLU slope; each dataset sets its own


class _MaxOverPieces(torch.autograd.Function):
    """amax over dim 1 with amax's gradient (split evenly on ties), from a float mask of winners.

    Autograd's own amax backward on this layout costs ~4x the forward matmul at toy sizes; a
    winners mask built with float ops (not bool compares, which are slow on CPU) costs ~1/4 of it.
    """

    @staticmethod
    def forward(ctx, pieces: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        best = pieces.amax(1, keepdim=True)
        winners = (pieces - best).sign_().add_(1)  # 1 where a piece equals the max, else 0
        ctx.save_for_backward(winners.div_(winners.sum(1, keepdim=True)))
        return best.squeeze(1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (share,) = ctx.saved_tensors
        return share * grad.unsqueeze(1)


class Maxout(nn.Module):
    """Max over `pieces` blocks of channels (dim 1): unit u takes channels u, u + U, u + 2U, ...

    Block-strided rather than consecutive grouping: the same function class (weights are i.i.d. at
    init), but every op then runs on contiguous memory.
    """

    def __init__(self, pieces: int):
        super().__init__()
        self.pieces = pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return _MaxOverPieces.apply(x.view(shape[0], self.pieces, shape[1] // self.pieces, *shape[2:]))


class _DropWithMask(torch.autograd.Function):
    """x * keep / (1 - p), keep ~ Bernoulli(1 - p) drawn as uniform >= p, the same mask reused backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:  # type: ignore[override]
        scale = torch.rand_like(x, dtype=torch.float32).ge_(p).to(x.dtype).mul_(1 / (1 - p))
        ctx.save_for_backward(scale)
        return x * scale

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (scale,) = ctx.saved_tensors
        return grad * scale, None


class Dropout(nn.Module):
    """nn.Dropout's semantics, with the mask drawn from torch.rand: on CPUs `bernoulli_` (which
    nn.Dropout uses) can take a fifth of a CIFAR-10 training step; uniform draws cost half of that."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _DropWithMask.apply(x, self.p) if self.training and self.p > 0 else x

    def extra_repr(self) -> str:
        return f"p={self.p}"


class UntiedBias(nn.Module):
    """A bias per output element (per pixel and channel), as in the authors' decoder output."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias


def out_width(layer: Layer) -> int:
    """Channels leaving the layer after its activation (maxout divides by its pieces)."""
    if layer.act.startswith("maxout"):
        return layer.out // int(layer.act[len("maxout") :])
    return layer.out


def _activation(layer: Layer) -> nn.Module | None:
    if layer.act == "relu":
        return nn.ReLU()
    if layer.act == "lrelu":
        return nn.LeakyReLU(layer.slope)
    if layer.act == "sigmoid":
        return nn.Sigmoid()
    if layer.act.startswith("maxout"):
        return Maxout(int(layer.act[len("maxout") :]))
    if layer.act == "linear":
        return None
    raise ValueError(f"unknown activation {layer.act!r}")


def build_stack(table: list[Layer], in_width: int, in_size: int | None = None) -> nn.Sequential:
    """Dropout (on the input) -> dense/conv -> batch norm -> activation, per table row.

    `in_size` is the spatial size of a conv stack's square input. With it, a conv whose kernel
    covers its whole input, and a transposed conv of a 1x1 input, are built as their
    matrix-multiply forms (DenseConv2d, DenseConvTranspose2d): same parameters, same function.
    """
    modules: list[nn.Module] = []
    width, size = in_width, in_size
    for layer in table:
        if layer.drop > 0:
            modules.append(Dropout(layer.drop))
        bias = layer.bias and not layer.bn  # a bias before batch norm is cancelled by it
        if layer.op == "dense":
            modules.append(nn.Linear(width, layer.out, bias=bias))
        elif layer.op == "conv":
            conv = DenseConv2d if size == layer.k else nn.Conv2d
            modules.append(conv(width, layer.out, layer.k, layer.s, bias=bias))
            size = None if size is None else (size - layer.k) // layer.s + 1
        elif layer.op == "convT":
            conv_t = DenseConvTranspose2d if size == 1 else nn.ConvTranspose2d
            modules.append(conv_t(width, layer.out, layer.k, layer.s, bias=bias))
            size = None if size is None else layer.s * (size - 1) + layer.k
        else:
            raise ValueError(f"unknown layer op {layer.op!r}")
        if layer.bn:
            norm = nn.BatchNorm1d if layer.op == "dense" else nn.BatchNorm2d
            modules.append(norm(layer.out, momentum=BN_MOMENTUM))
        act = _activation(layer)
        if act is not None:
            modules.append(act)
        width = out_width(layer)
    return nn.Sequential(*modules)


def init_weights(module: nn.Module, std: float, tconv_init: str = "normal") -> None:
    """docs/PAPER.md §2: weights ~ N(0, std), biases 0; batch-norm scales 1, shifts 0.

    tconv_init="nearest": each strided transposed convolution whose kernel the stride divides
    starts as nearest-neighbour upsampling followed by a convolution (Aitken et al. 2017): its
    N(0, std) taps are drawn once per stride x stride block and repeated across the block, so the
    even and odd output pixels, made by different taps, start equal instead of alternating (the
    checkerboard of ali.evaluation.artifacts). The same layers and parameters; only the start."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            if parametrize.is_parametrized(m, "weight"):
                with torch.no_grad():  # weight norm: g and v from the drawn weight (its right inverse)
                    m.weight = torch.randn_like(m.weight) * std
            else:
                nn.init.normal_(m.weight, 0.0, std)
            if tconv_init == "nearest" and nearest_init_applies(m):
                s = m.stride[0]
                block = torch.randn(*m.weight.shape[:2], m.kernel_size[0] // s, m.kernel_size[1] // s) * std
                with torch.no_grad():
                    m.weight.copy_(block.repeat_interleave(s, 2).repeat_interleave(s, 3))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def reparametrise_layers(module: nn.Module, parametrization: Callable[[nn.Module], nn.Module]) -> None:
    """Apply `parametrization` to every linear and convolutional layer's weight in `module`:
    nn.utils.parametrizations.spectral_norm (Miyato et al. 2018: the weight divided by an
    estimate of its largest singular value, refined by one power iteration per training pass)
    or weight_norm (Salimans and Kingma 2016: w = g v / ||v||)."""
    for m in list(module.modules()):
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            parametrization(m)


def nearest_init_applies(m: nn.Module) -> bool:
    """A transposed convolution with a stride above 1 that divides its kernel in both directions."""
    return (
        isinstance(m, nn.ConvTranspose2d)
        and m.stride[0] == m.stride[1] > 1
        and all(k % s == 0 for k, s in zip(m.kernel_size, m.stride))
    )


class DenseConv2d(nn.Conv2d):
    """A convolution whose kernel covers its whole input runs as one matrix multiply.

    The paper's D(z), D(x, z) and last encoder layers are such convs (1x1 maps, or a 4x4 kernel
    on a 4x4 map): dense layers in disguise. oneDNN's convolution backward dominated the bf16
    channels_last step at these shapes (torch.profiler), while F.linear on the same weight is a
    plain GEMM. Same parameters and state_dict keys as nn.Conv2d; any other input size runs the
    ordinary convolution.
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


def has_batch_coupling(module: nn.Module) -> bool:
    """True if one sample's output depends on others in the batch (batch norm in training)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


@contextmanager
def running_stats_frozen(net: nn.Module) -> Iterator[None]:
    """Batch norm in `net` still normalises with each batch's statistics but leaves its running
    averages (what evaluation mode uses) as they are: momentum 0 makes torch's update a no-op."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
