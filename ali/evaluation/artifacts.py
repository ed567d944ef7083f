"""Pixel statistics that show a decoder's structural artifacts, set beside the same figure of real images.

Transposed convolutions leave two marks on samples that a classifier may not see:
- a **checkerboard**: with a stride-2 kernel, even and odd output pixels are made by different
  kernel taps, so neighbouring pixels alternate; `checkerboard_power` is the share of each
  image's spectral power (mean removed) on the highest frequencies (the Nyquist row and column
  of its 2-D Fourier transform), where a pixel-period-2 pattern lives and natural images have
  almost none;
- a **frame**: without padding, border pixels sum fewer input positions than interior ones, so
  they vary less from sample to sample; `border_spread_ratio` is the per-pixel spread (the std
  across images at each position) on the outer `ring` pixels over that of the interior.
`pixel_spread` is the mean over positions of that std: how different the images are from each
other (samples that all look alike score low).
"""

from __future__ import annotations

import torch


def pixel_spread(images: torch.Tensor) -> float:
    """Mean over pixel positions (and channels) of the std across the images (N, C, H, W)."""
    return float(images.float().std(0).mean())


def border_spread_ratio(images: torch.Tensor, ring: int = 2) -> float:
    """Spread on the outer `ring` pixels of each side over the spread inside them."""
    spread = images.float().std(0).mean(0)  # (H, W)
    inner = torch.zeros_like(spread, dtype=torch.bool)
    inner[ring:-ring, ring:-ring] = True
    return float(spread[~inner].mean() / spread[inner].mean().clamp_min(1e-12))


def checkerboard_power(images: torch.Tensor) -> float:
    """Share of the spectral power (each image's mean removed) on its Nyquist row and column."""
    x = images.float()
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(x).abs().pow(2)
    h, w = x.shape[-2:]
    nyquist = torch.zeros(h, w, dtype=torch.bool, device=x.device)
    nyquist[h // 2, :] = True
    nyquist[:, w // 2] = True
    return float(power[..., nyquist].sum() / power.sum().clamp_min(1e-12))


def artifact_metrics(samples: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """The three figures for samples and for real images (keys `sample_*` and `data_*`)."""
    out = {}
    for prefix, images in (("sample", samples), ("data", real)):
        out[f"{prefix}_pixel_spread"] = round(pixel_spread(images), 5)
        out[f"{prefix}_border_spread_ratio"] = round(border_spread_ratio(images), 4)
        out[f"{prefix}_checkerboard_power"] = round(checkerboard_power(images), 5)
    return out
