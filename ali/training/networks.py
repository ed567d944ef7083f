"""Networks built from layer tables, so each architecture reads like the paper's appendix tables.

A table is a list of `Layer`s. `build_stack` turns one into an `nn.Sequential`; the three ALI
networks wrap stacks:

- `GaussianEncoder`:  x -> stack -> (mu, log_sigma);  z = mu + exp(log_sigma) * eps
- `NoiseEncoder`:     [x, eps] -> stack -> z          (the paper's toy encoder)
- `Decoder`:          z -> stack -> x                 (sigmoid output for images, linear for 2-D)
- `JointDiscriminator`: D(x, z) = joint(concat(Dx(x), Dz(z))) -> one logit per pair
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

BN_MOMENTUM = 0.05  # NOTES §1: running averages with momentum 0.05 for evaluation


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
    """nn.Dropout's semantics, with the mask drawn from torch.rand: on this CPU `bernoulli_` (which
    nn.Dropout uses) took a fifth of a CIFAR-10 training step; uniform draws cost half of that."""

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
        return layer.out // int(layer.act[len("maxout"):])
    return layer.out


def _activation(layer: Layer) -> nn.Module | None:
    if layer.act == "relu":
        return nn.ReLU()
    if layer.act == "lrelu":
        return nn.LeakyReLU(layer.slope)
    if layer.act == "sigmoid":
        return nn.Sigmoid()
    if layer.act.startswith("maxout"):
        return Maxout(int(layer.act[len("maxout"):]))
    if layer.act == "linear":
        return None
    raise ValueError(f"unknown activation {layer.act!r}")


def build_stack(table: list[Layer], in_width: int) -> nn.Sequential:
    """Dropout (on the input) -> dense/conv -> batch norm -> activation, per table row."""
    modules: list[nn.Module] = []
    width = in_width
    for layer in table:
        if layer.drop > 0:
            modules.append(Dropout(layer.drop))
        bias = layer.bias and not layer.bn  # a bias before batch norm is cancelled by it
        if layer.op == "dense":
            modules.append(nn.Linear(width, layer.out, bias=bias))
        elif layer.op == "conv":
            modules.append(nn.Conv2d(width, layer.out, layer.k, layer.s, bias=bias))
        elif layer.op == "convT":
            modules.append(nn.ConvTranspose2d(width, layer.out, layer.k, layer.s, bias=bias))
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


def init_weights(module: nn.Module, std: float) -> None:
    """NOTES §1: weights ~ N(0, std), biases 0; batch-norm scales 1, shifts 0."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _as_latent_map(z: torch.Tensor, conv: bool) -> torch.Tensor:
    """Conv nets see z as a d x 1 x 1 image; dense nets as a flat vector."""
    return z.view(z.shape[0], -1, 1, 1) if conv else z


class GaussianEncoder(nn.Module):
    """q(z|x) = N(mu(x), exp(log_sigma(x))^2), sampled by reparametrisation (no KL, no clipping)."""

    def __init__(self, table: list[Layer], x_channels: int):
        super().__init__()
        self.net = build_stack(table, x_channels)

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net(x).flatten(1)
        mu, log_sigma = h.chunk(2, dim=1)
        return mu, log_sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, log_sigma = self.moments(x)
        return mu + torch.exp(log_sigma) * torch.randn_like(mu)


class NoiseEncoder(nn.Module):
    """The toy encoder: z = MLP([x, eps]), eps ~ N(0, I) of the data's width (NOTES §3)."""

    def __init__(self, table: list[Layer], x_width: int):
        super().__init__()
        self.x_width = x_width
        self.net = build_stack(table, 2 * x_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eps = torch.randn_like(x)
        return self.net(torch.cat([x, eps], dim=1))


class Decoder(nn.Module):
    """Gx(z). With `untied_bias_shape`, the last layer's bias is one per output element."""

    def __init__(self, table: list[Layer], latent_dim: int, untied_bias_shape: tuple[int, ...] | None = None):
        super().__init__()
        self.conv = table[0].op != "dense"
        self.net = build_stack(table, latent_dim)
        self.untied = UntiedBias(untied_bias_shape) if untied_bias_shape else None
        if self.untied is not None:
            # The output activation must follow the untied bias: move it after.
            self.out_act = self.net[-1] if isinstance(self.net[-1], nn.Sigmoid) else None
            if self.out_act is not None:
                self.net = self.net[:-1]

    @torch.no_grad()
    def init_untied_bias(self, x: torch.Tensor, clip: float = 1e-3) -> None:
        """NOTES §1: untied biases = log-odds of the mean of `x` (N x C x H x W in [0, 1]) per pixel.

        The mean is clipped to [clip, 1 - clip] because pixels that are always 0 (MNIST's border)
        would give -inf; with a sigmoid output the decoder then starts at the data's mean image.
        """
        if self.untied is None:
            return
        mean = x.float().mean(0).clamp(clip, 1 - clip)
        self.untied.bias.copy_(torch.log(mean) - torch.log1p(-mean))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.net(_as_latent_map(z, self.conv))
        if self.untied is not None:
            x = self.untied(x)
            if self.out_act is not None:
                x = self.out_act(x)
        return x


class JointDiscriminator(nn.Module):
    """D(x, z) = joint(concat(Dx(x), Dz(z))): one logit per pair. Empty Dx/Dz tables = identity."""

    def __init__(self, x_table: list[Layer], z_table: list[Layer], joint_table: list[Layer], x_width: int, latent_dim: int):
        super().__init__()
        self.conv = bool(x_table) and x_table[0].op != "dense"
        self.dx = build_stack(x_table, x_width)
        self.dz = build_stack(z_table, latent_dim)
        dx_out = out_width(x_table[-1]) if x_table else x_width
        dz_out = out_width(z_table[-1]) if z_table else latent_dim
        self.joint = build_stack(joint_table, dx_out + dz_out)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        hx = self.dx(x)
        hz = self.dz(_as_latent_map(z, self.conv))
        return self.joint(torch.cat([hx, hz], dim=1)).flatten()


class MarginalDiscriminator(nn.Module):
    """D(x) for the GAN baselines: the joint D's layers with the z branch removed."""

    def __init__(self, x_table: list[Layer], joint_table: list[Layer], x_width: int):
        super().__init__()
        self.dx = build_stack(x_table, x_width)
        dx_out = out_width(x_table[-1]) if x_table else x_width
        self.joint = build_stack(joint_table, dx_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.joint(self.dx(x)).flatten()


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
