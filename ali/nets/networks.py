"""The networks of a model, each a wrapper around layer-table stacks (ali.nets.layers).

- `GaussianEncoder`:  x -> stack -> (mu, log_sigma);  z = mu + exp(log_sigma) * eps
- `NoiseEncoder`:     [x, eps] -> stack -> z          (the paper's toy encoder)
- `Decoder`:          z -> stack -> x                 (sigmoid output for images, linear for 2-D)
- `JointDiscriminator`: D(x, z) = joint(concat(Dx(x), Dz(z))) -> one logit per pair
- `MarginalDiscriminator`: D(x), the joint D without its z branch (GAN baselines)

Each class names its inputs in `INPUTS`, so code that walks a model's networks (the dry-run
listing) needs no table of which network takes what. Both discriminators also give `features`,
the input of their last layer (feature matching, feature-distance anomaly scores), and `head`,
that last layer.
"""

from __future__ import annotations

import torch
from torch import nn

from ali.nets.layers import Layer, UntiedBias, build_stack, out_width


def _as_latent_map(z: torch.Tensor, conv: bool) -> torch.Tensor:
    """Conv nets see z as a d x 1 x 1 image; dense nets as a flat vector."""
    return z.view(z.shape[0], -1, 1, 1) if conv else z


def _size(x_shape: tuple[int, ...]) -> int | None:
    """Spatial size of a (C, H, W) image input; None for flat 2-D data."""
    return x_shape[-1] if len(x_shape) == 3 else None


class GaussianEncoder(nn.Module):
    """q(z|x) = N(mu(x), exp(log_sigma(x))^2), sampled by reparametrisation (no KL, no clipping)."""

    INPUTS = ("x",)

    def __init__(self, table: list[Layer], x_shape: tuple[int, ...]):
        super().__init__()
        self.net = build_stack(table, x_shape[0], _size(x_shape))

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net(x).flatten(1)
        mu, log_sigma = h.chunk(2, dim=1)
        return mu, log_sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, log_sigma = self.moments(x)
        return mu + torch.exp(log_sigma) * torch.randn_like(mu)


class NoiseEncoder(nn.Module):
    """The toy encoder: z = MLP([x, eps]), eps ~ N(0, I) of the data's width (docs/PAPER.md §4)."""

    INPUTS = ("x",)

    def __init__(self, table: list[Layer], x_shape: tuple[int, ...]):
        super().__init__()
        self.net = build_stack(table, 2 * x_shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eps = torch.randn_like(x)
        return self.net(torch.cat([x, eps], dim=1))


class Decoder(nn.Module):
    """Gx(z). With `untied_bias_shape`, the last layer's bias is one per output element."""

    INPUTS = ("z",)

    def __init__(self, table: list[Layer], latent_dim: int, untied_bias_shape: tuple[int, ...] | None = None):
        super().__init__()
        self.conv = table[0].op != "dense"
        self.net = build_stack(table, latent_dim, 1 if self.conv else None)
        self.untied = UntiedBias(untied_bias_shape) if untied_bias_shape else None
        if self.untied is not None:
            # The output activation must follow the untied bias: move it after.
            self.out_act = self.net[-1] if isinstance(self.net[-1], nn.Sigmoid) else None
            if self.out_act is not None:
                self.net = self.net[:-1]

    @torch.no_grad()
    def init_untied_bias(self, x: torch.Tensor, clip: float = 1e-3) -> None:
        """docs/PAPER.md §2: untied biases = log-odds of the mean of `x` (N x C x H x W in [0, 1]) per pixel.

        The mean is clipped to [clip, 1 - clip] because pixels that are always 0 (MNIST's border)
        would give -inf; with a sigmoid output the decoder then starts at the data's mean image.
        """
        if self.untied is None:
            return
        mean = x.float().mean(0).clamp(clip, 1 - clip)
        self.untied.bias.copy_(torch.log(mean) - torch.log1p(-mean))

    @property
    def sigmoid_output(self) -> bool:
        """True for image decoders, whose mean pixel is sigmoid(logits(z))."""
        return self.untied is not None and self.out_act is not None

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """The pre-sigmoid output of an image decoder (a Bernoulli likelihood's natural parameter)."""
        if not self.sigmoid_output:
            raise ValueError("logits() needs a decoder with an untied bias and a sigmoid output")
        return self.untied(self.net(_as_latent_map(z, self.conv)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.net(_as_latent_map(z, self.conv))
        if self.untied is not None:
            x = self.untied(x)
            if self.out_act is not None:
                x = self.out_act(x)
        return x


def _head_size(joint_table: list[Layer], in_width: int) -> int:
    """How many modules the table's last row builds into (its dropout and its layer). Built
    under a forked RNG: the throwaway modules' initialisation must not move the global stream,
    or a seed would no longer give the weights it gave before."""
    width = out_width(joint_table[-2]) if len(joint_table) > 1 else in_width
    with torch.random.fork_rng(devices=[]):
        return len(build_stack(joint_table[-1:], width, 1))


class JointDiscriminator(nn.Module):
    """D(x, z) = joint(concat(Dx(x), Dz(z))): one logit per pair. Empty Dx/Dz tables = identity."""

    INPUTS = ("x", "z")

    def __init__(
        self, x_table: list[Layer], z_table: list[Layer], joint_table: list[Layer], x_shape: tuple[int, ...], latent_dim: int
    ):
        super().__init__()
        self.conv = bool(x_table) and x_table[0].op != "dense"
        one = 1 if self.conv else None  # D(z) and the joint layers see 1x1 maps
        self.dx = build_stack(x_table, x_shape[0], _size(x_shape))
        self.dz = build_stack(z_table, latent_dim, one)
        dx_out = out_width(x_table[-1]) if x_table else x_shape[0]
        dz_out = out_width(z_table[-1]) if z_table else latent_dim
        self.build_joint(joint_table, dx_out + dz_out)

    def build_joint(self, joint_table: list[Layer], in_width: int) -> None:
        """The joint layers on `in_width` input channels, and where their last row begins."""
        self.joint = build_stack(joint_table, in_width, 1 if self.conv else None)
        self.head_size = _head_size(joint_table, in_width)

    def features(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        hx = self.dx(x)
        hz = self.dz(_as_latent_map(z, self.conv))
        return self.joint[: len(self.joint) - self.head_size](torch.cat([hx, hz], dim=1))

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.joint[len(self.joint) - self.head_size :](features)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        hx = self.dx(x)
        hz = self.dz(_as_latent_map(z, self.conv))
        return self.joint(torch.cat([hx, hz], dim=1)).flatten()


class PackedJointDiscriminator(JointDiscriminator):
    """PacGAN's packing (Lin et al. 2018) on the joint D: consecutive groups of `pack` pairs are
    judged together, their images stacked on the channels and their codes end to end, so D sees
    whether a group's samples are diverse as well as whether each is real. One logit per group,
    repeated for each of its pairs: the losses and the per-pair gradient ratio of the fused
    update (ali.methods.adversarial) stay those of the group. The caller keeps real and fake
    pairs in separate groups (a batch size divisible by `pack`)."""

    def __init__(
        self,
        x_table: list[Layer],
        z_table: list[Layer],
        joint_table: list[Layer],
        x_shape: tuple[int, ...],
        latent_dim: int,
        pack: int,
    ):
        super().__init__(x_table, z_table, joint_table, (pack * x_shape[0], *x_shape[1:]), pack * latent_dim)
        self.pack = pack

    def _groups(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        if n % self.pack:
            raise ValueError(f"a packed D takes batches divisible by pack={self.pack}; got {n} pairs")
        return x.reshape(n // self.pack, self.pack * x.shape[1], *x.shape[2:]), z.reshape(n // self.pack, -1)

    def features(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The features of each group (one row per group of `pack` pairs)."""
        return super().features(*self._groups(x, z))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return super().forward(*self._groups(x, z)).repeat_interleave(self.pack)


class MarginalDiscriminator(nn.Module):
    """D(x) for the GAN baselines: the joint D's layers with the z branch removed."""

    INPUTS = ("x",)

    def __init__(self, x_table: list[Layer], joint_table: list[Layer], x_shape: tuple[int, ...]):
        super().__init__()
        conv = bool(x_table) and x_table[0].op != "dense"
        self.x_shape = tuple(x_shape)  # its own input: images, (x, x) pairs or codes (ALICE's side Ds)
        self.dx = build_stack(x_table, x_shape[0], _size(x_shape))
        dx_out = out_width(x_table[-1]) if x_table else x_shape[0]
        self.joint = build_stack(joint_table, dx_out, 1 if conv else None)
        self.head_size = _head_size(joint_table, dx_out)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.joint[: len(self.joint) - self.head_size](self.dx(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.joint(self.dx(x)).flatten()
