"""`ali sample | reconstruct | interpolate`: picture grids from a trained image run.

Each loads the run's `training_options.json` and its newest valid checkpoint and evaluates the
networks in evaluation mode (batch-norm running averages, no dropout), on the model's device
(ali.evaluation.image_eval.decode and encode move the CPU inputs there and the results back).
Noise comes from `--seed`, so the same command on the same checkpoint draws the same picture.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from ali.config import TrainConfig
from ali.data.dataset import Dataset
from ali.errors import AliError
from ali.evaluation.grids import image_grid, interleave_columns
from ali.evaluation.image_eval import decode, encode, fixed_prior
from ali.nets.model import Model
from ali.rundir import load_trained


def load_image_run(
    run_dir: Path, refusal: str = "pictures need an image run", weights: str | None = None, step: int | None = None
) -> tuple[TrainConfig, Model, int]:
    """An image run's config, its model restored from the newest valid checkpoint or checkpoint
    `step` (generator `weights` as ali.rundir.restore_trained), and that step; a 2-D run is an
    AliError ending in `refusal`."""
    config, model, step = load_trained(Path(run_dir), weights, step)
    if len(model.arch.x_shape) != 3:
        raise AliError(f"run {run_dir} trained on 2-D data ({config.dataset}); {refusal}")
    return config, model, step


def _heldout(dataset: Dataset, n: int, seed: int) -> torch.Tensor:
    """n held-out images (float), chosen at random but reproducibly from `seed`."""
    if len(dataset.heldout) < n:
        raise AliError(f"dataset {dataset.name!r} has {len(dataset.heldout)} held-out images; asked for {n}")
    index = torch.randperm(len(dataset.heldout), generator=torch.Generator().manual_seed(seed), device="cpu")[:n]
    return dataset.to_float(dataset.heldout[index])


def sample_image(model: Model, n: int, seed: int = 0) -> Image.Image:
    """n samples Gx(z), z ~ N(0, I), in a square-ish grid."""
    return image_grid(decode(model, fixed_prior(model, n, seed)))


def reconstruct_image(model: Model, dataset: Dataset, n: int, seed: int = 0, pairs_per_row: int = 8) -> Image.Image:
    """n held-out images and their reconstructions Gx(z), z ~ q(z|x): alternating columns."""
    x = _heldout(dataset, n, seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        recon = decode(model, encode(model, x))
    return image_grid(interleave_columns(x, recon), ncol=2 * pairs_per_row)


def interpolate_image(model: Model, dataset: Dataset, pairs: int, steps: int, seed: int = 0) -> Image.Image:
    """One row per pair of held-out images: decodings of `steps` evenly spaced points between
    their codes z ~ q(z|x), ends included (first column = Gx(z_a), last = Gx(z_b))."""
    if steps < 2:
        raise AliError(f"--steps must be >= 2 to include both ends, got {steps}")
    x = _heldout(dataset, 2 * pairs, seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        z = encode(model, x)
    z_a, z_b = z[:pairs], z[pairs:]
    t = torch.linspace(0, 1, steps, device=z.device).view(1, steps, 1)
    path = (1 - t) * z_a.unsqueeze(1) + t * z_b.unsqueeze(1)  # pairs x steps x latent
    return image_grid(decode(model, path.flatten(0, 1)), ncol=steps)
