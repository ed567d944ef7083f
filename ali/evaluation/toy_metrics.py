"""Mode-coverage and reconstruction metrics for 2-D Gaussian mixtures (docs/PAPER.md §4).

All functions take plain point sets, so each can be checked on hand-built points.
"""

from __future__ import annotations

import math

import torch

from ali.data.toy import GaussianMixture


def nearest_component(points: torch.Tensor, mixture: GaussianMixture) -> tuple[torch.Tensor, torch.Tensor]:
    """Most responsible component of each point and its distance to that mean.

    With equal weights and one shared isotropic std, the highest responsibility is the nearest mean.
    """
    dist = torch.cdist(points.double(), mixture.means.double())
    best, comp = dist.min(dim=1)
    return comp, best


def modes_covered(points: torch.Tensor, mixture: GaussianMixture) -> int:
    """The paper's count: components that are the most responsible one for at least one point."""
    comp, _ = nearest_component(points, mixture)
    return int(comp.unique().numel())


def high_quality_mask(points: torch.Tensor, mixture: GaussianMixture, n_std: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Which points lie within n_std standard deviations of their nearest mean, and that mean."""
    comp, dist = nearest_component(points, mixture)
    return dist <= n_std * mixture.std, comp


def mode_histogram(points: torch.Tensor, mixture: GaussianMixture) -> torch.Tensor:
    """Counts of high-quality points per component."""
    good, comp = high_quality_mask(points, mixture)
    return torch.bincount(comp[good], minlength=len(mixture.means))


def modes_covered_3sigma(points: torch.Tensor, mixture: GaussianMixture) -> int:
    """Components holding at least one high-quality point (PacGAN / VEEGAN protocol)."""
    return int((mode_histogram(points, mixture) > 0).sum())


def high_quality_fraction(points: torch.Tensor, mixture: GaussianMixture) -> float:
    good, _ = high_quality_mask(points, mixture)
    return float(good.double().mean())


def reverse_kl(points: torch.Tensor, mixture: GaussianMixture) -> float:
    """KL(model's mode histogram || uniform) over the high-quality points; inf if there are none.

    sum_k q_k log(q_k K): 0 when every mode gets the same share, log K when one mode gets all.
    """
    hist = mode_histogram(points, mixture).double()
    if hist.sum() == 0:
        return math.inf
    q = hist / hist.sum()
    q = q[q > 0]
    return float((q * torch.log(q * len(mixture.means))).sum())


def mode_offset(points: torch.Tensor, mixture: GaussianMixture) -> float:
    """Mean distance from each covered component's mean to the centroid of its high-quality points.

    0 for samples centred on the modes; a displaced mode loses samples past 3 std even when narrow.
    inf if no point is high quality (as reverse_kl).
    """
    good, comp = high_quality_mask(points, mixture)
    if not good.any():
        return math.inf
    counts = torch.bincount(comp[good], minlength=len(mixture.means)).double()
    sums = torch.zeros(len(mixture.means), points.shape[1], dtype=torch.float64).index_add_(0, comp[good], points[good].double())
    covered = counts > 0
    centroids = sums[covered] / counts[covered, None]
    return float((centroids - mixture.means[covered].double()).norm(dim=1).mean())


def recon_same_mode_fraction(x: torch.Tensor, x_recon: torch.Tensor, mixture: GaussianMixture) -> float:
    """Share of points whose reconstruction is high quality and belongs to the point's own component."""
    comp_x, _ = nearest_component(x, mixture)
    good, comp_r = high_quality_mask(x_recon, mixture)
    return float((good & (comp_r == comp_x)).double().mean())


def recon_mse(x: torch.Tensor, x_recon: torch.Tensor) -> float:
    """Mean squared error per coordinate."""
    return float((x.double() - x_recon.double()).pow(2).mean())


def mixture_metrics(samples: torch.Tensor, x: torch.Tensor, x_recon: torch.Tensor, mixture: GaussianMixture) -> dict[str, float]:
    """Every toy metric from generated samples and held-out points with their reconstructions."""
    return {
        "modes_covered": modes_covered(samples, mixture),
        "modes_covered_3sigma": modes_covered_3sigma(samples, mixture),
        "high_quality_fraction": high_quality_fraction(samples, mixture),
        "reverse_kl": reverse_kl(samples, mixture),
        "mode_offset": mode_offset(samples, mixture),
        "recon_same_mode_fraction": recon_same_mode_fraction(x, x_recon, mixture),
        "recon_mse": recon_mse(x, x_recon),
    }
