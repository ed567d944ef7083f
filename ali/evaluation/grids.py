"""Image grids with Pillow (no torchvision): samples, reconstructions, interpolations."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ali.errors import AliError
from ali.rundir import atomic_write_bytes

PAD = 2  # pixels between tiles
PAD_VALUE = 0.5  # grey: visible against both MNIST's black and CelebA's light backgrounds


def image_grid(images: torch.Tensor, ncol: int | None = None, pad: int = PAD) -> Image.Image:
    """Tile N x C x H x W images with values in [0, 1] into one picture, row by row.

    C is 1 (greyscale) or 3 (RGB). `ncol` defaults to ceil(sqrt(N)); missing tiles stay grey.
    """
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected N x (1|3) x H x W images, got shape {tuple(images.shape)}")
    n, c, h, w = images.shape
    ncol = ncol or max(1, math.ceil(math.sqrt(n)))
    nrow = math.ceil(n / ncol)
    canvas = torch.full((c, nrow * (h + pad) + pad, ncol * (w + pad) + pad), PAD_VALUE, device="cpu")  # Pillow reads host memory
    for i, img in enumerate(images.detach().float().cpu().clamp(0, 1)):
        r, q = divmod(i, ncol)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        canvas[:, top : top + h, left : left + w] = img
    array = (canvas * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(array[:, :, 0] if c == 1 else array), mode="L" if c == 1 else "RGB")


def save_image(image: Image.Image, path: Path) -> None:
    """Write a PNG atomically (ali.rundir.atomic_write_bytes: temporary file, then rename)."""
    path = Path(path)
    png = io.BytesIO()
    image.save(png, format="PNG")
    try:
        atomic_write_bytes(path, png.getvalue())
    except OSError as exc:
        raise AliError(f"cannot write image {path}: {exc.strerror or exc}; choose a writable --out") from None


def interleave_columns(inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """[x0, r0, x1, r1, ...]: tiled with an even ncol this gives alternating columns input / output."""
    return torch.stack([inputs, outputs], dim=1).flatten(0, 1)
