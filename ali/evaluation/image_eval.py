"""Evaluate a trained image model: cheap, meaningful numbers and the run's picture grids.

Evaluation runs where the model is: inputs (CPU tensors) go to the device of the model's
parameters BATCH rows at a time, and results come back to the device the inputs were on, so a
GPU run scores its full test set in seconds while numpy, sklearn and the PNG writer get CPU
tensors. Nothing here creates a tensor without saying on which device.

Metrics (evaluation mode: batch-norm running averages, no dropout), on every held-out image:
- recon_mse: mean squared pixel error of Gx(z), z ~ q(z|x) (the paper's reconstructions);
  recon_mse_mu uses the encoder's mean instead of a sample. A conditional model reconstructs
  with each image's own condition, Gx(Gz(x, y), y): its keys carry the `conditional_` prefix
  (`metric_name`), since a decoder that ignored z and drew y's class would still score well.
- mean_image_mse: the error of answering every image with the training mean image. A model whose
  reconstructions ignore their input scores about this, so the ratio recon/mean_image says how
  much of each image the code carries (ALI's objective has no reconstruction term).
- latent_mean / latent_std of the codes Gz(x): near 0 / 1 when q(z) matches the prior.
- swapped_y_recon_mse (conditional models): the error of Gx(Gz(x, y'), y') under a condition y'
  other than the image's own (`swapped_conditions`): close to conditional_recon_mse when x's
  content travels through z, far above it when the decoder draws y' instead.
On `eval_samples` prior samples: pixel mean/std against the data's, a coarse check for collapse
(`eval_images` records how many).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from itertools import repeat
from pathlib import Path

import torch
from torch import nn

from ali.data.dataset import Dataset, as_conditions, evaluation_conditions
from ali.evaluation.artifacts import artifact_metrics
from ali.evaluation.grids import image_grid, interleave_columns, save_image
from ali.nets.model import Model

EVAL_SEED = 2017  # evaluation noise is fixed, and kept apart from the training RNG stream
GRID_SEED = 1234  # the fixed z of the training-time sample grids
BATCH = 500
ARTIFACT_IMAGES = 1000  # samples and test images behind the artifact figures (ali.evaluation.artifacts)
CONDITIONAL_PREFIX = "conditional_"


def metric_name(key: str, conditional: bool) -> str:
    """The metrics.json key of a reconstruction or sample measure: prefixed for a conditional
    model, whose figure is not comparable with an unconditional model's (nor a published one)."""
    return CONDITIONAL_PREFIX + key if conditional else key


def model_device(model: nn.Module) -> torch.device:
    """Where a model's parameters are, and so where its evaluation runs."""
    return next(model.parameters()).device


@contextlib.contextmanager
def evaluation_rng(model: nn.Module) -> Iterator[None]:
    """Fixed evaluation noise (EVAL_SEED) on the CPU and the model's GPU; the caller's RNG state
    (the training stream) is restored afterwards."""
    device = model_device(model)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(EVAL_SEED)
        yield


def in_chunks(
    fn: Callable[..., torch.Tensor], device: torch.device, *inputs: torch.Tensor | None, batch: int = BATCH
) -> torch.Tensor:
    """fn over the inputs' rows, `batch` at a time on `device` (None inputs are passed as None);
    the results are concatenated on the device the first input is on."""
    home = inputs[0].device
    parts = [repeat(None) if t is None else t.split(max(batch, 1)) for t in inputs]
    return torch.cat([fn(*(None if c is None else c.to(device) for c in chunk)).to(home) for chunk in zip(*parts)])


def _call(net: Callable[..., torch.Tensor], *args: torch.Tensor | None) -> torch.Tensor:
    """net on its given arguments: an unconditional network takes no condition."""
    return net(*(a for a in args if a is not None))


@torch.inference_mode()
def decode(model: Model, z: torch.Tensor, conditions: torch.Tensor | None = None) -> torch.Tensor:
    """Gx(z) (or Gx(z, y) for a conditional model) in evaluation mode, on z's device."""
    model.eval()
    return in_chunks(lambda *a: _call(model["decoder"], *a), model_device(model), z, conditions)


@torch.inference_mode()
def encode(model: Model, x: torch.Tensor, mean: bool = False, conditions: torch.Tensor | None = None) -> torch.Tensor:
    """Codes of float images x, on x's device: the encoder's own output (z ~ q(z|x), or E(x) for
    a deterministic encoder), or with `mean` the mean mu(x)."""
    model.eval()
    encoder = model["encoder"]
    net = (lambda *a: _call(encoder.moments, *a)[0]) if mean else (lambda *a: _call(encoder, *a))
    return in_chunks(net, model_device(model), x, conditions)


def fixed_prior(model: Model, n: int, seed: int = GRID_SEED) -> torch.Tensor:
    """The same n prior draws every call, on the CPU whatever the model's device (so a GPU run's
    grids show the codes a CPU run's do), without touching the global RNG (exact resume)."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(n, model.arch.latent_dim, generator=generator, device="cpu")


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


def swapped_conditions(dataset: Dataset, condition_dim: int, heldout: int) -> torch.Tensor | None:
    """For each of the first `heldout` held-out images a condition other than its own: a class
    drawn uniformly from the other classes (fixed seed), or the next image's attribute vector.
    None for an unconditional model, or one with a single class."""
    if not condition_dim or (dataset.heldout_labels.dim() == 1 and condition_dim < 2):
        return None
    labels = dataset.heldout_labels[:heldout]
    if labels.dim() == 1:
        generator = torch.Generator(device="cpu").manual_seed(EVAL_SEED)
        shift = torch.randint(1, condition_dim, labels.shape, generator=generator, device="cpu").to(labels.device)
        labels = (labels.long() + shift) % condition_dim
    else:
        labels = labels.roll(1, 0)
    return as_conditions(labels, condition_dim, dataset.name)


def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image."""
    return (a - b).float().pow(2).flatten(1).mean(1)


@torch.inference_mode()
def reconstruction_stats(
    model: Model,
    images: torch.Tensor,
    conditions: torch.Tensor | None = None,
    swapped: torch.Tensor | None = None,
    classify: Callable[[torch.Tensor], torch.Tensor] | None = None,
    reference: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per image (N values each, on the CPU) of images (uint8 or float in [0, 1]), computed on the
    model's device with fixed noise (EVAL_SEED), so every call gives the same figures whatever ran
    before. Gz and Gx take the images' `conditions` when given.

    - mse, mse_mu: squared pixel error of Gx(z), z ~ q(z|x), and of Gx(mu(x))
    - code_mean, code_square: mean and mean square of z's entries; code_norm: mean square of mu's
    - pixel_mean, pixel_square: of the image itself
    - reference_mse (with `reference`, one image): the error of answering x with it
    - recon_class (with `classify`, images on the device -> class indices): the class of Gx(z)
    - with `swapped` conditions y': swapped_mse of Gx(Gz(x, y'), y'), and swapped_class
    """
    model.eval()
    device = model_device(model)
    encoder, decoder = model["encoder"], model["decoder"]
    ref = None if reference is None else reference.to(device).float()

    def per_image(x: torch.Tensor, c: torch.Tensor | None, s: torch.Tensor | None) -> torch.Tensor:
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        z = _call(encoder, x, c)
        mu = _call(encoder.moments, x, c)[0]
        recon = _call(decoder, z, c)
        cols = {
            "mse": _mse(recon, x),
            "mse_mu": _mse(_call(decoder, mu, c), x),
            "code_mean": z.flatten(1).float().mean(1),
            "code_square": z.flatten(1).float().pow(2).mean(1),
            "code_norm": mu.flatten(1).float().pow(2).mean(1),
            "pixel_mean": x.flatten(1).mean(1),
            "pixel_square": x.flatten(1).pow(2).mean(1),
        }
        if ref is not None:
            cols["reference_mse"] = _mse(ref.expand_as(x), x)
        if classify is not None:
            cols["recon_class"] = classify(recon).float()
        if s is not None:
            swapped_recon = _call(decoder, _call(encoder, x, s), s)
            cols["swapped_mse"] = _mse(swapped_recon, x)
            if classify is not None:
                cols["swapped_class"] = classify(swapped_recon).float()
        keys.extend(k for k in cols if k not in keys)
        return torch.stack(list(cols.values()), dim=1)

    keys: list[str] = []
    with evaluation_rng(model):
        table = in_chunks(per_image, device, images, conditions, swapped).cpu()
    return {k: table[:, i] for i, k in enumerate(keys)}


def _std(mean: torch.Tensor, square: torch.Tensor) -> float:
    """Standard deviation of all entries from per-image means and mean squares (equal sizes)."""
    return float((square.double().mean() - mean.double().mean() ** 2).clamp(min=0).sqrt())


def reconstruction_metrics(stats: dict[str, torch.Tensor], conditional: bool) -> dict[str, float]:
    """The held-out-set figures of `reconstruction_stats`' columns (keys in the module docstring)."""
    name = lambda key: metric_name(key, conditional)  # noqa: E731
    out = {
        name("recon_mse"): float(stats["mse"].double().mean()),
        name("recon_mse_mu"): float(stats["mse_mu"].double().mean()),
        "latent_mean": float(stats["code_mean"].double().mean()),
        "latent_std": _std(stats["code_mean"], stats["code_square"]),
    }
    if "reference_mse" in stats:
        out["mean_image_mse"] = float(stats["reference_mse"].double().mean())
    if "swapped_mse" in stats:
        out["swapped_y_recon_mse"] = float(stats["swapped_mse"].double().mean())
    return out


@torch.inference_mode()
def artifact_check(
    model: Model, dataset: Dataset, condition_dim: int = 0, n: int = ARTIFACT_IMAGES
) -> tuple[dict[str, float], torch.Tensor]:
    """The decoder's artifacts and spread (ali.evaluation.artifacts) on samples from a fixed z
    (seed 0), beside the first n held-out images (fewer where there are fewer), and their
    reconstruction error through the encoder's mean: the same figures at the end of training and
    for any checkpoint (`ali evaluate --metrics artifacts --step N`). Returns them and the samples."""
    n = min(n, len(dataset.heldout))
    images = dataset.to_float(dataset.heldout[:n])
    conditions, sample_conditions = heldout_and_sample_conditions(dataset, condition_dim, n, n)
    samples = decode(model, fixed_prior(model, n, 0), sample_conditions)
    recon = decode(model, encode(model, images, mean=True, conditions=conditions), conditions)
    metrics = {
        **artifact_metrics(samples, images),
        "artifact_recon_mse_mu": float((recon - images).float().pow(2).mean()),
        "artifact_images": n,
    }
    return metrics, samples


@torch.inference_mode()
def evaluate_images(model: Model, dataset: Dataset, n: int, run_dir: Path, condition_dim: int = 0) -> dict[str, float]:
    """Reconstruction metrics on every held-out image, pixel statistics of n prior samples;
    writes samples.png and reconstructions.png. A conditional model (condition_dim > 0) encodes
    and decodes with the images' own conditions and samples every class in turn (or the held-out
    attribute vectors)."""
    model.eval()
    heldout = len(dataset.heldout)
    c_heldout, c_sample = heldout_and_sample_conditions(dataset, condition_dim, heldout, n)
    mean_image = dataset.to_float(dataset.train[: min(len(dataset.train), 10_000)]).mean(0)
    stats = reconstruction_stats(
        model, dataset.heldout, c_heldout, swapped_conditions(dataset, condition_dim, heldout), reference=mean_image
    )
    pixel_moments = lambda x: torch.stack([x.flatten(1).mean(1), x.flatten(1).pow(2).mean(1)], dim=1)  # noqa: E731
    with evaluation_rng(model):
        z = model.sample_prior(n, device="cpu")
        samples = in_chunks(lambda *a: pixel_moments(_call(model["decoder"], *a).float()), model_device(model), z, c_sample)
        shown = min(heldout, 50)
        x = dataset.to_float(dataset.heldout[:shown])
        c_shown = None if c_heldout is None else c_heldout[:shown]
        recon = decode(model, encode(model, x, conditions=c_shown), c_shown)
    metrics = {
        **reconstruction_metrics(stats, condition_dim > 0),
        "sample_pixel_mean": float(samples[:, 0].double().mean()),
        "data_pixel_mean": float(stats["pixel_mean"].double().mean()),
        "sample_pixel_std": _std(samples[:, 0], samples[:, 1]),
        "data_pixel_std": _std(stats["pixel_mean"], stats["pixel_square"]),
        "eval_images": n,
        "heldout_images": heldout,
    }
    artifacts, shown_samples = artifact_check(model, dataset, condition_dim)
    metrics.update(artifacts)
    save_image(image_grid(shown_samples[:100], ncol=10), run_dir / "samples.png")
    save_image(image_grid(interleave_columns(x, recon), ncol=10), run_dir / "reconstructions.png")
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in metrics.items()}
