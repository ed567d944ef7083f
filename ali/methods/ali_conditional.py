"""Conditional ALI, the paper's attribute experiment (docs/PAPER.md §6): D(x, Gz(x, y), y) against
D(Gx(z, y), z, y), where y is the batch's condition vector (a one-hot class or binary attributes).

Real and fake pairs share the batch's y, so D can only tell them apart by how x and z go together
given y; the generators learn to use y because D sees it. Each network gets y through its own
trained linear embedding (condition_dim -> embed_dim channels; 40 CelebA attributes -> 256 in the
paper), concatenated channel-wise with its features at the 1x1 stage:

- `ConditionalEncoder`: the encoder table up to its last layer (which must leave a 1x1 map), the
  embedding beside those features, then the table's last 1x1 conv on the wider input.
- `ConditionalDecoder`: the decoder table on concat(z, embedding).
- `ConditionalJointDiscriminator`: D(x) and D(z) as in the joint D, the embedding beside them,
  then the joint layers; with `projection`, plus the inner product <P y, D(x)> of a second
  embedding with D(x)'s features (the projection discriminator, Miyato & Koyama 2018).

Why the projection: concatenation alone leaves D to discover the interaction of y with x
through its joint layers, and on the MNIST nets it did not: the decoder learned to ignore y
(docs/RESULTS.md, conditional MNIST). The inner product scores how well x's features match y
from the first step, so a sample that ignores its condition is caught at once.

`cycle_weight` adds the explicit x-cycle term of ALICE, cycle_weight * E||x - Gx(Gz(x, y), y)||^2,
to the generators' loss: the MNIST recipe's stabiliser (ali.presets), given y on both passes.

Separate embeddings keep the optimizers apart: D's embedding is trained on L_D, the generators'
on L_G, as for every other weight of those networks.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ali.errors import AliError
from ali.keys import Key, boolean, in_range
from ali.methods.adversarial import adversarial_update, update_mode
from ali.methods.base import ADVERSARIAL_KEYS, Batch, Losses, Method, StepFn, StepInputs, balance_score, reconstruction_error
from ali.nets.architectures import ARCHITECTURES, Architecture
from ali.nets.layers import Layer, build_stack, out_width
from ali.nets.networks import Decoder, JointDiscriminator, _as_latent_map

KEYS = {
    **ADVERSARIAL_KEYS,
    "condition_dim": Key(
        10,
        in_range(1),
        "size of the condition vector y: classes (one-hot; 10 for the MNIST family) or binary attributes (40 for CelebA)",
    ),
    "embed_dim": Key(
        64, in_range(1), "channels of each network's linear embedding of y (the paper: 256 for CelebA's attributes)"
    ),
    "projection": Key(
        True, boolean(), "add the projection term <P y, D(x)> to D's logit (false: concatenation only, the paper's)"
    ),
    "cycle_weight": Key(
        0.0, in_range(0), "weight of the x-cycle term ||x - Gx(Gz(x, y), y)||^2 in the generators' loss (0 = off)"
    ),
}


class _Embedding(nn.Module):
    """y (N, condition_dim) -> a trained linear map to (N, embed_dim, 1, 1), ready to concatenate
    channel-wise with a network's 1x1 features."""

    def __init__(self, condition_dim: int, embed_dim: int):
        super().__init__()
        self.linear = nn.Linear(condition_dim, embed_dim)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        e = self.linear(y)
        return e.view(*e.shape, 1, 1)


@torch.no_grad()
def _spatial_size(stack: nn.Sequential, x_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The (H, W) a freshly built stack leaves, from one zero image in evaluation mode (no batch
    statistics or dropout masks are touched), so build_stack stays the one place that knows how
    a table's layers change the size. Not the meta device: its first use costs seconds."""
    stack.eval()
    try:
        return tuple(stack(torch.zeros(1, *x_shape)).shape[2:])
    finally:
        stack.train()


class ConditionalEncoder(nn.Module):
    """q(z|x, y) = N(mu, exp(log_sigma)^2), sampled by reparametrisation like GaussianEncoder;
    y joins the features before the table's last (1x1) layer."""

    INPUTS = ("x", "y")

    def __init__(self, table: list[Layer], x_shape: tuple[int, ...], condition_dim: int, embed_dim: int):
        super().__init__()
        *body, last = table
        if not body or last.op != "conv" or last.k != 1:
            raise AliError(
                "conditional ALI needs an encoder table whose last layer is a 1x1 conv; choose an image architecture (--set arch=...)"
            )
        self.condition_dim = condition_dim
        self.net = build_stack(body, x_shape[0], x_shape[-1])
        size = _spatial_size(self.net, x_shape)
        if size != (1, 1):
            raise AliError(
                f"conditional ALI joins y to the encoder's 1x1 features, but this architecture's encoder layers before the last "
                f"leave a {size[0]}x{size[1]} map; choose an architecture whose encoder reaches 1x1 ({_image_architectures()})"
            )
        self.embed = _Embedding(condition_dim, embed_dim)
        self.head = build_stack([last], out_width(body[-1]) + embed_dim, 1)

    def moments(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.cat([self.net(x), self.embed(y)], dim=1)
        mu, log_sigma = self.head(h).flatten(1).chunk(2, dim=1)
        return mu, log_sigma

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mu, log_sigma = self.moments(x, y)
        return mu + torch.exp(log_sigma) * torch.randn_like(mu)


class ConditionalDecoder(Decoder):
    """Gx(z, y): the decoder table on concat(z, embedding of y); the untied output bias and its
    data-mean initialisation (init_untied_bias) are Decoder's."""

    INPUTS = ("z", "y")

    def __init__(
        self,
        table: list[Layer],
        latent_dim: int,
        condition_dim: int,
        embed_dim: int,
        untied_bias_shape: tuple[int, ...] | None = None,
    ):
        super().__init__(table, latent_dim + embed_dim, untied_bias_shape)
        self.condition_dim = condition_dim
        self.embed = _Embedding(condition_dim, embed_dim)

    def _joined(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([z.flatten(1), self.embed(y).flatten(1)], dim=1)

    def logits(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().logits(self._joined(z, y))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(self._joined(z, y))


class ConditionalJointDiscriminator(JointDiscriminator):
    """D(x, z, y) = joint(concat(Dx(x), Dz(z), embedding of y)) [+ <P y, Dx(x)>]: one logit per triple."""

    INPUTS = ("x", "z", "y")

    def __init__(
        self,
        x_table: list[Layer],
        z_table: list[Layer],
        joint_table: list[Layer],
        x_shape: tuple[int, ...],
        latent_dim: int,
        condition_dim: int,
        embed_dim: int,
        projection: bool = False,
    ):
        # JointDiscriminator builds Dx and Dz; its joint layers are rebuilt here on the wider input.
        super().__init__(x_table, z_table, [], x_shape, latent_dim)
        self.condition_dim = condition_dim
        self.embed = _Embedding(condition_dim, embed_dim)
        x_width = out_width(x_table[-1])
        self.build_joint(joint_table, x_width + out_width(z_table[-1]) + embed_dim)
        self.project = nn.Linear(condition_dim, x_width, bias=False) if projection else None

    def forward(self, x: torch.Tensor, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        hx, hz = self.dx(x), self.dz(_as_latent_map(z, self.conv))
        logit = self.joint(torch.cat([hx, hz, self.embed(y)], dim=1)).flatten()
        if self.project is not None:
            logit = logit + (self.project(y) * hx.flatten(1)).sum(1)
        return logit


def _image_architectures() -> str:
    return ", ".join(name for name, arch in ARCHITECTURES.items() if len(arch.x_shape) == 3)


def networks(arch: Architecture, settings: dict[str, Any]) -> dict[str, nn.Module]:
    if len(arch.x_shape) != 3 or arch.encoder_kind != "gaussian" or not (arch.d_x and arch.d_z):
        raise AliError(
            f"conditional ALI needs an image architecture (convolutional networks with 1x1 feature maps to join y to); "
            f"this one takes data of shape {arch.x_shape}; choose --set arch=<one of {_image_architectures()}>"
        )
    c, e = settings["condition_dim"], settings["embed_dim"]
    return {
        "encoder": ConditionalEncoder(arch.encoder, arch.x_shape, c, e),
        "decoder": ConditionalDecoder(arch.decoder, arch.latent_dim, c, e, arch.x_shape if arch.untied_output_bias else None),
        "discriminator": ConditionalJointDiscriminator(
            arch.d_x, arch.d_z, arch.d_joint, arch.x_shape, arch.latent_dim, c, e, settings["projection"]
        ),
    }


def make_step(inputs: StepInputs) -> StepFn:
    model, rt, prior = inputs.model, inputs.runtime, inputs.prior
    mode = update_mode(inputs.settings["update"], model["discriminator"], rt.precision)
    cycle_weight = inputs.settings["cycle_weight"]

    def step(batch: Batch, index: int) -> Losses:
        x, y = batch.x, batch.y
        if y is None:
            raise ValueError("ali-conditional's step needs the batch's condition vectors: step(Batch(x, y), index)")
        # y is data: nothing may flow back into it (a y that required grad would also be wrapped
        # by the fused update's gradient scaling, for nothing).
        y = y.detach().to(x.dtype)
        z = prior(x.shape[0], index, x.device)
        out: Losses = {}
        extra = None
        with rt.autocast():
            z_hat = model["encoder"](x, y)
            x_tilde = model["decoder"](z, y)
            if cycle_weight > 0:
                recon = reconstruction_error(x, model["decoder"](z_hat, y).float())
                extra, out["recon"] = cycle_weight * recon, recon.detach()
        # adversarial_update concatenates real and fake position by position: y is joined with
        # itself, so each real pair and its fake counterpart are judged under the same y.
        out.update(adversarial_update(model["discriminator"], (x, z_hat, y), (x_tilde, z, y), inputs.optimizers, mode, extra, rt))
        return out

    return step


METHOD = Method(
    name="ali-conditional",
    title="Conditional ALI",
    uses_labels=True,
    networks=networks,
    optimizers={"generator": ("encoder", "decoder"), "discriminator": ("discriminator",)},
    make_step=make_step,
    score=balance_score,
    keys=KEYS,
    conditional=True,
)
