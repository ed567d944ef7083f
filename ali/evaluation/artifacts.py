"""Pixel statistics that show a decoder's structural artifacts, set beside the same figure of real images.

Transposed convolutions leave two marks on samples that a classifier may not see:
- a **checkerboard**: with a stride-2 kernel, even and odd output pixels are made by different
  kernel taps, so the four pixel parities (even/odd row x even/odd column) differ in level;
  `checkerboard_power` is the share of each image's power (its mean removed) that lies in that
  difference, i.e. on the three pure Nyquist frequencies of its 2-D Fourier transform (rows
  alternating, columns alternating, both), measured inside the border `ring` so that a frame's
  edges do not count. Natural images have almost none there;
- a **frame**: without padding, border pixels sum fewer input positions than interior ones, so
  they vary less from sample to sample; `border_spread_ratio` is the per-pixel spread (the std
  across images at each position) on the outer `ring` pixels over that of the interior, and
  `border_mean_offset` how far the ring's average level sits from the interior's (a light or
  dark frame), both set beside the real images' own.
`pixel_spread` is the mean over positions of that std: how different the images are from each
other (samples that all look alike score low).
"""

from __future__ import annotations

import torch


def pixel_spread(images: torch.Tensor) -> float:
    """Mean over pixel positions (and channels) of the std across the images (N, C, H, W)."""
    return float(images.float().std(0).mean())


def _interior(shape: torch.Size, ring: int, device: torch.device) -> torch.Tensor:
    inner = torch.zeros(shape, dtype=torch.bool, device=device)
    inner[ring:-ring, ring:-ring] = True
    return inner


def border_spread_ratio(images: torch.Tensor, ring: int = 2) -> float:
    """Spread on the outer `ring` pixels of each side over the spread inside them."""
    spread = images.float().std(0).mean(0)  # (H, W)
    inner = _interior(spread.shape, ring, spread.device)
    return float(spread[~inner].mean() / spread[inner].mean().clamp_min(1e-12))


def border_mean_offset(images: torch.Tensor, ring: int = 2) -> float:
    """Mean level of the outer `ring` pixels minus that of the interior (pixel values in [0, 1])."""
    level = images.float().mean(dim=(0, 1))  # (H, W)
    inner = _interior(level.shape, ring, level.device)
    return float(level[~inner].mean() - level[inner].mean())


def checkerboard_power(images: torch.Tensor, ring: int = 4) -> float:
    """Share of the power (each image's mean removed) inside the border `ring` that lies in the
    differences between the four pixel parities: the pure Nyquist frequencies (h/2, 0), (0, w/2)
    and (h/2, w/2) of that even-sized crop."""
    ring = min(ring, (min(images.shape[-2:]) - 2) // 2)  # keep at least a 2 x 2 crop of tiny images
    x = images.float()[..., ring : images.shape[-2] - ring, ring : images.shape[-1] - ring]
    x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(x).abs().pow(2)
    h, w = x.shape[-2:]
    nyquist = power[..., h // 2, 0] + power[..., 0, w // 2] + power[..., h // 2, w // 2]
    return float(nyquist.sum() / power.sum().clamp_min(1e-12))


def artifact_metrics(samples: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """The three figures for samples and for real images (keys `sample_*` and `data_*`)."""
    out = {}
    for prefix, images in (("sample", samples), ("data", real)):
        out[f"{prefix}_pixel_spread"] = round(pixel_spread(images), 5)
        out[f"{prefix}_border_spread_ratio"] = round(border_spread_ratio(images), 4)
        out[f"{prefix}_border_mean_offset"] = round(border_mean_offset(images), 4)
        out[f"{prefix}_checkerboard_power"] = round(checkerboard_power(images), 5)
    return out
