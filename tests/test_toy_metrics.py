import math

import torch

from ali.data.toy import grid25, ring8
from ali.evaluation import toy_metrics as tm


def _on_modes(mixture, modes, per_mode=40, spread=0.5):
    """Points around the given modes, within `spread` std of the mean."""
    g = torch.Generator().manual_seed(0)
    pts = [mixture.means[m] + spread * mixture.std * torch.rand(per_mode, 2, generator=g) for m in modes]
    return torch.cat(pts)


def test_samples_on_20_of_25_modes_give_20():
    mix = grid25()
    pts = _on_modes(mix, range(20))
    assert tm.modes_covered(pts, mix) == 20
    assert tm.modes_covered_3sigma(pts, mix) == 20
    assert tm.high_quality_fraction(pts, mix) == 1.0


def test_uniform_histogram_has_zero_reverse_kl_and_one_mode_has_log_k():
    mix = grid25()
    assert abs(tm.reverse_kl(_on_modes(mix, range(25)), mix)) < 1e-12
    assert math.isclose(tm.reverse_kl(_on_modes(mix, [3]), mix), math.log(25))
    assert tm.reverse_kl(torch.full((10, 2), 1.0), mix) == math.inf  # no high-quality point at all


def test_off_mode_points_count_for_responsibility_but_not_quality():
    mix = grid25()
    # Halfway between means (1, 0) is 1.0 away: nearest mean gets it, but it is far beyond 3 std.
    pts = torch.tensor([[1.01, 0.0], [0.1, 0.0], [4.0, 4.0]])
    assert tm.modes_covered(pts, mix) == 3
    assert tm.modes_covered_3sigma(pts, mix) == 2  # 0.1 from (0, 0) = 2 std: high quality
    assert math.isclose(tm.high_quality_fraction(pts, mix), 2 / 3)


def test_reconstruction_metrics():
    mix = ring8()
    x = _on_modes(mix, range(8), per_mode=10, spread=1.0)
    assert tm.recon_same_mode_fraction(x, x, mix) == 1.0
    assert tm.recon_mse(x, x) == 0.0
    rolled = x.roll(10, dims=0)  # every reconstruction lands on the neighbouring mode
    assert tm.recon_same_mode_fraction(x, rolled, mix) == 0.0
    assert tm.recon_mse(x, x + 0.1) > 0.0099


def test_mode_offset_is_the_mean_displacement_of_the_covered_modes():
    mix = grid25()
    centred = torch.cat([mix.means[m] + torch.tensor([[0.04, 0.0], [-0.04, 0.0]]) for m in range(25)])
    assert tm.mode_offset(centred, mix) < 1e-12
    shifted = torch.cat([mix.means[:10] + torch.tensor([0.03, -0.04]), torch.tensor([[1.0, 1.0]])])
    assert math.isclose(
        tm.mode_offset(shifted, mix), 0.05, rel_tol=1e-6
    )  # 10 modes moved by (0.03, -0.04); the far point ignored
    assert tm.mode_offset(torch.full((3, 2), 1.0), mix) == math.inf


def test_the_three_sigma_boundary():
    mixture = grid25()
    std, mean = mixture.std, mixture.means[0]
    inside = mean + torch.tensor([[2.99 * std, 0.0], [0.0, -2.99 * std]])
    outside = mean + torch.tensor([[3.01 * std, 0.0], [0.0, -3.01 * std]])
    assert tm.high_quality_fraction(inside, mixture) == 1.0
    assert tm.high_quality_fraction(outside, mixture) == 0.0
    assert tm.modes_covered_3sigma(outside, mixture) == 0 and tm.modes_covered(outside, mixture) == 1
