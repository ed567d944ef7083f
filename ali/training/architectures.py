"""Each architecture as data: layer tables to hold against the paper's appendix tables.

`Layer(op, out, k, s, bn, act, drop)`: see ali.training.networks. Row comments give the paper's
notation (k/s, C) and the spatial size after the layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ali.training.networks import Layer


@dataclass(frozen=True)
class Architecture:
    x_shape: tuple[int, ...]  # (2,) for 2-D data, (C, H, W) for images
    latent_dim: int
    encoder: list[Layer]  # output: 2 * latent (mu, log_sigma) for "gaussian", latent for "noise"
    decoder: list[Layer]
    d_x: list[Layer]
    d_z: list[Layer]
    d_joint: list[Layer]
    encoder_kind: str = "gaussian"  # or "noise": z = MLP([x, eps])
    vae_encoder: list[Layer] = field(default_factory=list)  # Gaussian head for the VAE baseline
    untied_output_bias: bool = False

    @property
    def x_width(self) -> int:
        return self.x_shape[0]


def _mlp(widths: list[int], out: int, **hidden) -> list[Layer]:
    return [Layer("dense", w, **hidden) for w in widths] + [Layer("dense", out)]


# NOTES §3: toy networks for 2-D data, latent 2, weights N(0, 0.02).
TOY = Architecture(
    x_shape=(2,),
    latent_dim=2,
    encoder_kind="noise",
    encoder=_mlp([400, 400], 2, bn=True, act="relu"),  # [x, eps] (4) -> 400 -> 400 -> z (2)
    vae_encoder=_mlp([400, 400], 4, bn=True, act="relu"),  # x (2) -> 400 -> 400 -> (mu, log_sigma)
    decoder=_mlp([400, 400, 400, 400], 2, bn=True, act="relu"),  # z (2) -> 4 x 400 -> x (2), linear
    d_x=[],  # D sees concat(x, z) directly
    d_z=[],
    d_joint=[Layer("dense", 1000, act="maxout5")] * 3 + [Layer("dense", 1)],  # 3 x maxout(200 units, 5 pieces) -> 1
)

ARCHITECTURES: dict[str, Architecture] = {"toy": TOY}
