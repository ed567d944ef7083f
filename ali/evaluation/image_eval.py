"""Evaluate a trained image model: cheap, meaningful numbers and the run's picture grids.

Metrics (on held-out images, evaluation mode: batch-norm running averages, no dropout):
- recon_mse: mean squared pixel error of Gx(z), z ~ q(z|x) (the paper's reconstructions);
  recon_mse_mu uses the encoder's mean instead of a sample.
- mean_image_mse: the error of answering every image with the training mean image. A model whose
  reconstructions ignore their input scores about this, so the ratio recon/mean_image says how
  much of each image the code carries (ALI's objective has no reconstruction term).
- pixel mean/std of samples Gx(z), z ~ N(0, I), against the data's: a coarse check for collapse.
- latent_mean / latent_std of the codes Gz(x): near 0 / 1 when q(z) matches the prior.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ali.data.dataset import Dataset, as_conditions, evaluation_conditions
from ali.errors import AliError
from ali.evaluation.grids import image_grid, interleave_columns, save_image
from ali.nets.model import Model

EVAL_SEED = 2017  # evaluation noise is fixed, and kept apart from the training RNG stream
GRID_SEED = 1234  # the fixed z of the training-time sample grids
BATCH = 500


def fixed_prior(model: Model, n: int, seed: int = GRID_SEED) -> torch.Tensor:
    """The same n prior draws every call, without touching the global RNG (exact resume)."""
    return torch.randn(n, model.arch.latent_dim, generator=torch.Generator().manual_seed(seed))


def _in_chunks(net, data: torch.Tensor, conditions: torch.Tensor | None) -> torch.Tensor:
    """net over data in chunks of BATCH, each chunk with its conditions when the model has them."""
    if conditions is None:
        return torch.cat([net(chunk) for chunk in data.split(BATCH)])
    return torch.cat([net(chunk, c) for chunk, c in zip(data.split(BATCH), conditions.split(BATCH))])


@torch.inference_mode()
def decode(model: Model, z: torch.Tensor, conditions: torch.Tensor | None = None) -> torch.Tensor:
    """Gx(z) (or Gx(z, y) for a conditional model) in evaluation mode."""
    model.eval()
    return _in_chunks(model["decoder"], z, conditions)


@torch.inference_mode()
def encode(model: Model, x: torch.Tensor, mean: bool = False, conditions: torch.Tensor | None = None) -> torch.Tensor:
    """Codes of float images x: the encoder's own output (z ~ q(z|x), or E(x) for a deterministic
    encoder), or with `mean` the mean mu(x)."""
    model.eval()
    encoder = model["encoder"]
    return _in_chunks((lambda *a: encoder.moments(*a)[0]) if mean else encoder, x, conditions)


def write_sample_grid(model: Model, path: Path, n: int = 64, conditions: torch.Tensor | None = None) -> None:
    """Samples Gx(z) from the fixed z: successive grids of one run show the same codes."""
    was_training = model.training
    c = None if conditions is None else conditions[:n]
    save_image(image_grid(decode(model, fixed_prior(model, n), c)), path)
    model.train(was_training)


def heldout_and_sample_conditions(
    dataset: Dataset, condition_dim: int, heldout: int, samples: int
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """A conditional model's conditions for the first `heldout` held-out images (their own) and
    for `samples` generated ones (ali.data.dataset.evaluation_conditions); None, None otherwise."""
    if not condition_dim:
        return None, None
    own = as_conditions(dataset.heldout_labels[:heldout], condition_dim, dataset.name)
    return own, evaluation_conditions(dataset, samples, condition_dim)


def evaluate_images(model: Model, dataset: Dataset, n: int, run_dir: Path, condition_dim: int = 0) -> dict[str, float]:
    """Metrics on up to n held-out images; writes samples.png and reconstructions.png. A
    conditional model (condition_dim > 0) encodes and decodes with the images' own conditions
    and samples every class in turn (or the held-out attribute vectors)."""
    x = dataset.to_float(dataset.heldout[:n])
    c_x, c_sample = heldout_and_sample_conditions(dataset, condition_dim, len(x), len(x))
    with torch.random.fork_rng():
        torch.manual_seed(EVAL_SEED)
        z_hat = encode(model, x, conditions=c_x)
        recon = decode(model, z_hat, c_x)
        recon_mu = decode(model, encode(model, x, mean=True, conditions=c_x), c_x)
        samples = decode(model, model.sample_prior(len(x)), c_sample)
    mean_image = dataset.to_float(dataset.train[: min(len(dataset.train), 10_000)]).mean(0)
    mse = lambda a, b: float((a - b).pow(2).mean())  # noqa: E731
    metrics = {
        "recon_mse": mse(recon, x),
        "recon_mse_mu": mse(recon_mu, x),
        "mean_image_mse": mse(mean_image.expand_as(x), x),
        "sample_pixel_mean": float(samples.mean()),
        "data_pixel_mean": float(x.mean()),
        "sample_pixel_std": float(samples.std()),
        "data_pixel_std": float(x.std()),
        "latent_mean": float(z_hat.mean()),
        "latent_std": float(z_hat.std()),
        "eval_images": len(x),
    }
    save_image(image_grid(samples[:100], ncol=10), run_dir / "samples.png")
    save_image(image_grid(interleave_columns(x[:50], recon[:50]), ncol=10), run_dir / "reconstructions.png")
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in metrics.items()}


def prepare_image_model(model: Model, dataset: Dataset, fresh: bool) -> None:
    """Check the data fits the architecture; on a fresh run set the decoder's untied output biases
    to the log-odds of the mean of the first 500 training images (NOTES §1)."""
    if not dataset.is_image:
        return
    shape = tuple(dataset.train.shape[1:])
    if shape != tuple(model.arch.x_shape):
        raise AliError(
            f"dataset {dataset.name!r} has images of shape {shape} but architecture {model.config.arch!r} expects "
            f"{tuple(model.arch.x_shape)}; choose a matching --set arch=..."
        )
    if fresh:  # a resumed run restores the biases from its checkpoint
        model.decoder.init_untied_bias(dataset.to_float(dataset.train[:500]))
