"""Each architecture as data: layer tables to hold against the paper's appendix tables.

`Layer(op, out, k, s, bn, act, drop)`: see ali.nets.layers. Row comments give the paper's
notation (k/s, C) and the spatial size after the layer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ali.nets.layers import Layer


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


# docs/PAPER.md §4: toy networks for 2-D data, latent 2, weights N(0, 0.02).
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


def _conv(out: int, k: int, s: int = 1, **kw) -> Layer:
    return Layer("conv", out, k, s, **kw)


def _convT(out: int, k: int, s: int = 1, **kw) -> Layer:
    return Layer("convT", out, k, s, **kw)


def _g(slope: float) -> dict:
    """Hidden layer of a generator (Gz or Gx): batch norm + LeakyReLU(slope)."""
    return {"bn": True, "act": "lrelu", "slope": slope}


def _sigmoid_out(channels: int) -> Layer:
    # No tied bias: the untied (per-pixel) bias of Decoder replaces it, as in the authors' code.
    return _conv(channels, 1, bias=False, act="sigmoid")


# CIFAR-10, Table 3: latent 64, LReLU 0.1 in Gz/Gx, maxout (2 pieces) in D.
_C = _g(0.1)
CIFAR10 = Architecture(
    x_shape=(3, 32, 32),
    latent_dim=64,
    encoder=[
        _conv(32, 5, 1, **_C),  # 5/1,32 -> 28
        _conv(64, 4, 2, **_C),  # 4/2,64 -> 13
        _conv(128, 4, 1, **_C),  # 4/1,128 -> 10
        _conv(256, 4, 2, **_C),  # 4/2,256 -> 4
        _conv(512, 4, 1, **_C),  # 4/1,512 -> 1
        _conv(512, 1, 1, **_C),  # 1/1,512
        _conv(128, 1, 1),  # 1/1,128 = (mu, log_sigma), 2 x 64, linear
    ],
    decoder=[
        _convT(256, 4, 1, **_C),  # T4/1,256 -> 4
        _convT(128, 4, 2, **_C),  # T4/2,128 -> 10
        _convT(64, 4, 1, **_C),  # T4/1,64 -> 13
        _convT(32, 4, 2, **_C),  # T4/2,32 -> 28
        _convT(32, 5, 1, **_C),  # T5/1,32 -> 32
        _conv(32, 1, 1, **_C),  # 1/1,32
        _sigmoid_out(3),  # 1/1,3 sigmoid
    ],
    # Authors' code: maxout halves the channels (32 -> 16, ..., 512 -> 256); dropout 0.5 only
    # before the 64 and 512 convs and on the 128 conv's output (= before the 256 conv).
    d_x=[
        _conv(32, 5, 1, drop=0.2, act="maxout2"),  # 5/1,32 -> 28 (16 ch)
        _conv(64, 4, 2, drop=0.5, act="maxout2"),  # 4/2,64 -> 13 (32 ch)
        _conv(128, 4, 1, act="maxout2"),  # 4/1,128 -> 10 (64 ch)
        _conv(256, 4, 2, drop=0.5, act="maxout2"),  # 4/2,256 -> 4 (128 ch)
        _conv(512, 4, 1, drop=0.5, act="maxout2"),  # 4/1,512 -> 1 (256 ch)
    ],
    d_z=[
        _conv(512, 1, 1, drop=0.2, act="maxout2", bias=False),  # 1/1,512 (256 ch)
        _conv(512, 1, 1, drop=0.5, act="maxout2", bias=False),  # 1/1,512 (256 ch)
    ],
    d_joint=[  # input 256 + 256 = 512 (the table's 1024 counts channels before maxout)
        _conv(1024, 1, 1, drop=0.5, act="maxout2"),  # 1/1,1024 (512 ch)
        _conv(1024, 1, 1, drop=0.5, act="maxout2"),  # 1/1,1024 (512 ch)
        _conv(1, 1, 1, drop=0.5),  # 1/1,1 logit
    ],
    untied_output_bias=True,
)


def _lrelu(slope: float, bn: bool = False, drop: float = 0.0, bias: bool = True) -> dict:
    return {"bn": bn, "act": "lrelu", "slope": slope, "drop": drop, "bias": bias}


# SVHN, Table 4: latent 256, LReLU 0.01; D with batch norm and dropout 0.2, no maxout.
SVHN = Architecture(
    x_shape=(3, 32, 32),
    latent_dim=256,
    encoder=[*(dataclasses.replace(layer, slope=0.01) for layer in CIFAR10.encoder[:-1]), _conv(512, 1, 1)],  # last: 2 x 256
    decoder=[dataclasses.replace(layer, slope=0.01) for layer in CIFAR10.decoder],  # input 256, else as CIFAR
    d_x=[
        _conv(32, 5, 1, **_lrelu(0.01, drop=0.2)),  # 5/1,32 -> 28, no BN
        _conv(64, 4, 2, **_lrelu(0.01, bn=True, drop=0.2)),  # 4/2,64 -> 13
        _conv(128, 4, 1, **_lrelu(0.01, bn=True, drop=0.2)),  # 4/1,128 -> 10
        _conv(256, 4, 2, **_lrelu(0.01, bn=True, drop=0.2)),  # 4/2,256 -> 4
        _conv(512, 4, 1, **_lrelu(0.01, bn=True, drop=0.2)),  # 4/1,512 -> 1
    ],
    d_z=[_conv(512, 1, 1, **_lrelu(0.01, drop=0.2, bias=False))] * 2,  # 1/1,512 twice
    d_joint=[  # input 512 + 512 = 1024
        _conv(1024, 1, 1, **_lrelu(0.01, drop=0.2)),
        _conv(1024, 1, 1, **_lrelu(0.01, drop=0.2)),
        _conv(1, 1, 1, drop=0.2),
    ],
    untied_output_bias=True,
)

# CelebA 64x64, Table 5: latent 256, LReLU 0.02. The printed Gx input 512 and D(x,z) input 1024
# are typos (the authors' code: 256 and 1536).
_A = _g(0.02)
CELEBA64 = Architecture(
    x_shape=(3, 64, 64),
    latent_dim=256,
    encoder=[
        _conv(64, 2, 1, **_A),  # 2/1,64 -> 63
        _conv(128, 7, 2, **_A),  # 7/2,128 -> 29
        _conv(256, 5, 2, **_A),  # 5/2,256 -> 13
        _conv(256, 7, 2, **_A),  # 7/2,256 -> 4
        _conv(512, 4, 1, **_A),  # 4/1,512 -> 1
        _conv(512, 1, 1),  # 1/1,512 = 2 x 256, linear
    ],
    decoder=[
        _convT(512, 4, 1, **_A),  # T4/1,512 -> 4
        _convT(256, 7, 2, **_A),  # T7/2,256 -> 13
        _convT(256, 5, 2, **_A),  # T5/2,256 -> 29
        _convT(128, 7, 2, **_A),  # T7/2,128 -> 63
        _convT(64, 2, 1, **_A),  # T2/1,64 -> 64
        _sigmoid_out(3),  # 1/1,3 sigmoid
    ],
    d_x=[  # Gz's kernels; code: no BN on the first layer, dropout 0.2 before every conv
        _conv(64, 2, 1, **_lrelu(0.02, drop=0.2)),  # -> 63
        _conv(128, 7, 2, **_lrelu(0.02, bn=True, drop=0.2)),  # -> 29
        _conv(256, 5, 2, **_lrelu(0.02, bn=True, drop=0.2)),  # -> 13
        _conv(256, 7, 2, **_lrelu(0.02, bn=True, drop=0.2)),  # -> 4
        _conv(512, 4, 1, **_lrelu(0.02, bn=True, drop=0.2)),  # -> 1
    ],
    d_z=[_conv(1024, 1, 1, **_lrelu(0.02, drop=0.2))] * 2,  # 1/1,1024 twice
    d_joint=[  # input 512 + 1024 = 1536
        _conv(2048, 1, 1, **_lrelu(0.02, drop=0.2)),
        _conv(2048, 1, 1, **_lrelu(0.02, drop=0.2)),
        _conv(1, 1, 1, drop=0.2),
    ],
    untied_output_bias=True,
)

# ImageNet 64x64, Table 6: latent 256, LReLU 0.01.
_I = _g(0.01)
IMAGENET64 = Architecture(
    x_shape=(3, 64, 64),
    latent_dim=256,
    encoder=[
        _conv(64, 4, 2, **_I),  # 4/2,64 -> 31
        _conv(64, 4, 1, **_I),  # 4/1,64 -> 28
        _conv(128, 4, 2, **_I),  # 4/2,128 -> 13
        _conv(128, 4, 1, **_I),  # 4/1,128 -> 10
        _conv(256, 4, 2, **_I),  # 4/2,256 -> 4
        _conv(256, 4, 1, **_I),  # 4/1,256 -> 1
        _conv(2048, 1, 1, **_I),  # 1/1,2048
        _conv(2048, 1, 1, **_I),  # 1/1,2048
        _conv(512, 1, 1),  # 1/1,512 = 2 x 256, linear
    ],
    decoder=[
        _conv(2048, 1, 1, **_I),  # 1/1,2048
        _conv(256, 1, 1, **_I),  # 1/1,256
        _convT(256, 4, 1, **_I),  # T4/1,256 -> 4
        _convT(128, 4, 2, **_I),  # T4/2,128 -> 10
        _convT(128, 4, 1, **_I),  # T4/1,128 -> 13
        _convT(64, 4, 2, **_I),  # T4/2,64 -> 28
        _convT(64, 4, 1, **_I),  # T4/1,64 -> 31
        _convT(64, 4, 2, **_I),  # T4/2,64 -> 64
        _sigmoid_out(3),  # 1/1,3 sigmoid
    ],
    d_x=[  # Gz's first six convs, no BN on the first, dropout 0.2 everywhere
        _conv(64, 4, 2, **_lrelu(0.01, drop=0.2)),  # -> 31
        _conv(64, 4, 1, **_lrelu(0.01, bn=True, drop=0.2)),  # -> 28
        _conv(128, 4, 2, **_lrelu(0.01, bn=True, drop=0.2)),  # -> 13
        _conv(128, 4, 1, **_lrelu(0.01, bn=True, drop=0.2)),  # -> 10
        _conv(256, 4, 2, **_lrelu(0.01, bn=True, drop=0.2)),  # -> 4
        _conv(256, 4, 1, **_lrelu(0.01, bn=True, drop=0.2)),  # -> 1
    ],
    d_z=[_conv(2048, 1, 1, **_lrelu(0.01, drop=0.2))] * 2,  # 1/1,2048 twice
    d_joint=[  # input 256 + 2048 = 2304
        _conv(4096, 1, 1, **_lrelu(0.01, drop=0.2)),
        _conv(4096, 1, 1, **_lrelu(0.01, drop=0.2)),
        _conv(1, 1, 1, drop=0.2),
    ],
    untied_output_bias=True,
)

# MNIST / Fashion-MNIST 28x28x1: not in the paper. Same style (valid convolutions, BN + LReLU 0.1
# in Gz/Gx, dropout 0.2 in D), but three strided layers, so a step costs ~1/10 of a CIFAR-style
# net on a 2-core CPU; D has no batch norm or maxout (no batch norm also lets the fused update run).
_M = _g(0.1)
MNIST = Architecture(
    x_shape=(1, 28, 28),
    latent_dim=32,
    encoder=[
        _conv(32, 4, 2, **_M),  # 4/2,32 -> 13
        _conv(64, 5, 2, **_M),  # 5/2,64 -> 5
        _conv(256, 5, 1, **_M),  # 5/1,256 -> 1
        _conv(64, 1, 1),  # 1/1,64 = 2 x 32, linear
    ],
    decoder=[
        _convT(64, 5, 1, **_M),  # T5/1,64 -> 5
        _convT(32, 5, 2, **_M),  # T5/2,32 -> 13
        _convT(1, 4, 2, bias=False, act="sigmoid"),  # T4/2,1 -> 28, untied bias, sigmoid
    ],
    d_x=[
        _conv(32, 4, 2, **_lrelu(0.1, drop=0.2)),  # -> 13
        _conv(64, 5, 2, **_lrelu(0.1, drop=0.2)),  # -> 5
        _conv(256, 5, 1, **_lrelu(0.1, drop=0.2)),  # -> 1
    ],
    d_z=[_conv(256, 1, 1, **_lrelu(0.1, drop=0.2))] * 2,  # 1/1,256 twice
    d_joint=[  # input 256 + 256 = 512
        _conv(512, 1, 1, **_lrelu(0.1, drop=0.2)),
        _conv(512, 1, 1, **_lrelu(0.1, drop=0.2)),
        _conv(1, 1, 1, drop=0.2),
    ],
    untied_output_bias=True,
)

# Stacked MNIST (three digits as the RGB channels): the MNIST nets on 3-channel images.
STACKED_MNIST = dataclasses.replace(
    MNIST,
    x_shape=(3, 28, 28),
    decoder=[*MNIST.decoder[:-1], dataclasses.replace(MNIST.decoder[-1], out=3)],  # T4/2,3 -> 28
)

ARCHITECTURES: dict[str, Architecture] = {
    "toy": TOY,
    "cifar10": CIFAR10,
    "svhn": SVHN,
    "celeba64": CELEBA64,
    "imagenet64": IMAGENET64,
    "mnist": MNIST,
    "stacked-mnist": STACKED_MNIST,
}
