"""Study figures and a toy run's comparison.png, drawn with Pillow: one labelled row per method.

- `comparison_rows`, the paper's toy comparison: five scatter panels per method (docs/PAPER.md §4): held-out
  data x, their latent codes Gz(x), reconstructions Gx(Gz(x)), prior samples z, generated samples
  Gx(z). Points are coloured by mixture component: the component of the held-out point for the
  first three, of the generated sample for the last two.
- `picture_rows`, for image data: each method's picture grids (samples, reconstructions) side by side.
"""

from __future__ import annotations

import colorsys

import torch
from PIL import Image, ImageDraw

PANEL = 260
MARGIN = 24
TITLES = ("data x", "latent Gz(x)", "reconstruction Gx(Gz(x))", "prior z", "samples Gx(z)")


def _palette(k: int) -> list[tuple[int, int, int]]:
    return [tuple(int(255 * c) for c in colorsys.hsv_to_rgb((i * 0.618) % 1.0, 0.75, 0.85)) for i in range(k)]


def _scatter(
    draw: ImageDraw.ImageDraw, origin: tuple[int, int], points: torch.Tensor, colours: torch.Tensor, extent: float, palette
) -> None:
    ox, oy = origin
    draw.rectangle([ox, oy, ox + PANEL, oy + PANEL], outline=(160, 160, 160))
    scale = PANEL / (2 * extent)
    pts = points.double().clamp(-extent, extent)
    px = (ox + (pts[:, 0] + extent) * scale).round().int().tolist()
    py = (oy + (extent - pts[:, 1]) * scale).round().int().tolist()
    for x, y, c in zip(px, py, colours.tolist()):
        draw.point((x, y), fill=palette[c])


def comparison_rows(rows: list[tuple[str, dict[str, torch.Tensor]]], n_components: int, data_extent: float) -> Image.Image:
    """rows: (label, panels) where panels holds x, z_hat, x_recon, z, x_gen, comp_x, comp_gen."""
    width = 5 * (PANEL + MARGIN) + MARGIN
    height = len(rows) * (PANEL + 2 * MARGIN) + MARGIN
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    palette = _palette(n_components)
    for r, (label, p) in enumerate(rows):
        top = MARGIN + r * (PANEL + 2 * MARGIN)
        draw.text((MARGIN, top - 18), label, fill=(0, 0, 0))
        panels = [
            (p["x"], p["comp_x"], data_extent),
            (p["z_hat"], p["comp_x"], 3.5),
            (p["x_recon"], p["comp_x"], data_extent),
            (p["z"], p["comp_gen"], 3.5),
            (p["x_gen"], p["comp_gen"], data_extent),
        ]
        for c, ((points, colours, extent), title) in enumerate(zip(panels, TITLES)):
            left = MARGIN + c * (PANEL + MARGIN)
            draw.text((left, top + PANEL + 3), title, fill=(0, 0, 0))
            _scatter(draw, (left, top), points, colours, extent, palette)
    return image


def picture_rows(rows: list[tuple[str, list[Image.Image]]], titles: tuple[str, ...]) -> Image.Image:
    """rows: (label, pictures), one picture per title, laid out left to right under the label."""
    widths = [max(p[c].width for _, p in rows) for c in range(len(titles))]
    row_height = max(pic.height for _, pics in rows for pic in pics) + 2 * MARGIN
    image = Image.new("RGB", (sum(widths) + MARGIN * (len(titles) + 1), len(rows) * row_height + MARGIN), "white")
    draw = ImageDraw.Draw(image)
    for r, (label, pictures) in enumerate(rows):
        top = MARGIN + r * row_height
        draw.text((MARGIN, top - 18), label, fill=(0, 0, 0))
        left = MARGIN
        for picture, title, width in zip(pictures, titles, widths):
            image.paste(picture.convert("RGB"), (left, top))
            draw.text((left, top + picture.height + 3), title, fill=(0, 0, 0))
            left += width + MARGIN
    return image
