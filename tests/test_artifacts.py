"""The artifact figures on images whose answer is known by construction."""

from __future__ import annotations

import torch

from ali.evaluation.artifacts import artifact_metrics, border_mean_offset, border_spread_ratio, checkerboard_power, pixel_spread


def test_a_checkerboard_puts_its_power_on_the_nyquist_frequencies():
    i, j = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    board = ((i + j) % 2).float().expand(8, 3, 16, 16)
    assert abs(checkerboard_power(board) - 1.0) < 1e-6
    stripes = (i % 2).float().expand(2, 1, 16, 16)  # alternating rows
    assert abs(checkerboard_power(stripes) - 1.0) < 1e-6
    parities = (0.3 * (i % 2) + 0.1 * (j % 2)).float().expand(2, 1, 16, 16)  # four parity levels
    assert abs(checkerboard_power(parities) - 1.0) < 1e-6
    y, x = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    blob = torch.exp(-((y - 15.5) ** 2 + (x - 15.5) ** 2) / 40).expand(8, 3, 32, 32)  # smooth content
    assert checkerboard_power(blob) < 1e-4


def test_a_frame_adds_no_checkerboard_power():
    torch.manual_seed(0)
    images = torch.rand(64, 3, 16, 16).cumsum(-1).cumsum(-2)  # smooth content
    framed = images.clone()
    framed[..., :3, :] = framed[..., -3:, :] = framed[..., :, :3] = framed[..., :, -3:] = 100.0
    assert checkerboard_power(framed) == checkerboard_power(images)


def test_a_frame_that_never_changes_has_no_spread_on_the_border():
    torch.manual_seed(0)
    images = torch.rand(64, 3, 12, 12)
    assert 0.9 < border_spread_ratio(images) < 1.1  # independent pixels: the same spread everywhere
    assert abs(border_mean_offset(images)) < 0.02
    images[..., :2, :] = images[..., -2:, :] = images[..., :, :2] = images[..., :, -2:] = 0.9
    assert border_spread_ratio(images) == 0.0
    assert abs(border_mean_offset(images) - (0.9 - images[..., 2:-2, 2:-2].mean())) < 1e-5
    assert abs(pixel_spread(torch.stack([torch.zeros(3, 4, 4), torch.ones(3, 4, 4)])) - 2**-0.5) < 1e-6


def test_artifact_metrics_name_samples_and_data_apart():
    torch.manual_seed(0)
    out = artifact_metrics(torch.rand(10, 1, 16, 16), torch.zeros(10, 1, 16, 16) + torch.rand(10, 1, 1, 1))
    assert out["data_pixel_spread"] > 0 and out["data_checkerboard_power"] == 0.0
    assert set(out) == {
        f"{p}_{k}"
        for p in ("sample", "data")
        for k in ("pixel_spread", "border_spread_ratio", "border_mean_offset", "checkerboard_power")
    }
