"""`ali sample | reconstruct | interpolate` and the image branch of training, on a tiny run.

The run trains the `mnist` architecture for a few steps on a small synthetic image set (bright
squares at random places), so the test needs no dataset files and stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ali.training.loop as loop
from ali import pictures, rundir
from ali.cli import main
from ali.config import make_config
from ali.data.dataset import Dataset
from ali.finish import train_and_finish
from tests.shared_data import require_shared

H = W = 28
PAD = 2


def _squares(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, H, W, dtype=torch.uint8)
    corners = torch.randint(0, H - 8, (n, 2), generator=g)
    for img, (r, c) in zip(x, corners.tolist()):
        img[:, r : r + 8, c : c + 8] = 255
    return x


def _synthetic() -> Dataset:
    return Dataset(name="squares", train=_squares(300, 0), heldout=_squares(60, 1))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("image") / "run"
    config = make_config(
        {
            "arch": "mnist",
            "latent_dim": 32,
            "batch_size": 16,
            "steps": 6,
            "log_every": 2,
            "checkpoint_every": 3,
            "grid_every": 3,
            "eval_samples": 100,
            "init_std": 0.01,
        }
    )
    patch = pytest.MonkeyPatch()
    patch.setattr(rundir, "load_dataset", lambda *_args: _synthetic())
    try:
        train_and_finish(config, out, progress=False)
    finally:
        patch.undo()
    return out


def _size(cols: int, rows: int) -> tuple[int, int]:
    return cols * (W + PAD) + PAD, rows * (H + PAD) + PAD


def test_training_writes_grids_metrics_and_checkpoints(run_dir: Path) -> None:
    for name in ("samples-000000003.png", "samples-000000006.png", "samples.png", "reconstructions.png"):
        assert (run_dir / name).is_file(), name
    assert Image.open(run_dir / "samples-000000003.png").size == _size(8, 8)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("recon_mse", "recon_mse_mu", "mean_image_mse", "sample_pixel_mean", "latent_std"):
        assert 0 <= metrics[key] < 10, (key, metrics[key])
    # eval_samples (100) prior samples for the pixel checks; every held-out image (60) for the rest
    assert metrics["eval_images"] == 100 and metrics["heldout_images"] == 60 and metrics["steps"] == 6


def test_sample_command_writes_a_grid_of_the_right_size(run_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "s.png"
    assert main(["sample", "--run", str(run_dir), "--n", "64", "--out", str(out)]) == 0
    image = Image.open(out)
    assert image.size == _size(8, 8) and image.mode == "L"
    assert "checkpoint step 6" in capsys.readouterr().out
    # Same seed, same picture; another seed, another picture.
    again, other = tmp_path / "a.png", tmp_path / "o.png"
    main(["sample", "--run", str(run_dir), "--n", "64", "--out", str(again)])
    main(["sample", "--run", str(run_dir), "--n", "64", "--out", str(other), "--seed", "1"])
    assert out.read_bytes() == again.read_bytes() != other.read_bytes()


def test_reconstruct_alternates_inputs_and_reconstructions(run_dir: Path) -> None:
    _, model, _ = pictures.load_image_run(run_dir)
    data = _synthetic()
    image = pictures.reconstruct_image(model, data, 16, seed=0, pairs_per_row=8)
    assert image.size == _size(16, 2)
    pixels = torch.from_numpy(np.asarray(image).astype("float32"))
    # Odd tiles are held-out inputs: exactly black and white squares of 8 x 8 pixels.
    first = pixels[PAD : PAD + H, PAD : PAD + W]
    assert set(first.unique().tolist()) == {0.0, 255.0} and int((first == 255).sum()) == 64
    second = pixels[PAD : PAD + H, 2 * PAD + W : 2 * PAD + 2 * W]
    assert not torch.equal(first, second)  # the decoder's output, not a copy


def test_interpolate_rows_run_between_two_codes(run_dir: Path) -> None:
    _, model, _ = pictures.load_image_run(run_dir)
    image = pictures.interpolate_image(model, _synthetic(), pairs=3, steps=5)
    assert image.size == _size(5, 3)


def test_pictures_need_an_image_run(tmp_path: Path, capsys) -> None:
    toy = tmp_path / "toy"
    loop.train(
        make_config({"steps": 2, "batch_size": 8, "log_every": 1, "checkpoint_every": 2, "eval_samples": 100}),
        toy,
        progress=False,
    )
    assert main(["sample", "--run", str(toy), "--out", str(tmp_path / "x.png")]) == 2
    assert "pictures need an image run" in capsys.readouterr().err
    assert main(["sample", "--run", str(tmp_path / "none"), "--out", str(tmp_path / "x.png")]) == 2


def test_commands_end_to_end_on_real_mnist(tmp_path: Path) -> None:
    """`ali train --config mnist` for two steps, then reconstruct and interpolate through the CLI."""
    SHARED = require_shared("mnist")
    run = tmp_path / "mnist"
    sets = ["batch_size=8", "log_every=1", "checkpoint_every=2", "grid_every=0", "eval_samples=100", f"data_dir={SHARED}"]
    argv = ["train", "--config", "mnist", "--steps", "2", "--out", str(run), "--no-progress"]
    assert main(argv + [f"--set={s}" for s in sets]) == 0
    assert json.loads((run / "metrics.json").read_text())["eval_images"] == 100
    assert main(["reconstruct", "--run", str(run), "--n", "16", "--out", str(tmp_path / "r.png")]) == 0
    assert Image.open(tmp_path / "r.png").size == _size(16, 2)
    assert main(["interpolate", "--run", str(run), "--pairs", "2", "--steps", "4", "--out", str(tmp_path / "i.png")]) == 0
    assert Image.open(tmp_path / "i.png").size == _size(4, 2)
