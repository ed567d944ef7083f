"""Evaluate a trained toy model: metrics over fresh samples and held-out points, and its figure row."""

from __future__ import annotations

import torch

from ali.data.dataset import Dataset
from ali.evaluation.toy_metrics import mixture_metrics, nearest_component
from ali.nets.model import Model

EVAL_SEED = 2017  # evaluation noise is fixed, and kept apart from the training RNG stream


@torch.inference_mode()
def toy_panels(model: Model, dataset: Dataset, n: int) -> dict[str, torch.Tensor]:
    """x, Gz(x), Gx(Gz(x)) on n held-out points; z, Gx(z) on n prior samples; component labels."""
    assert dataset.mixture is not None
    model.eval()
    with torch.random.fork_rng():
        torch.manual_seed(EVAL_SEED)
        x = dataset.heldout[:n]
        z_hat = model.encoder(x)
        x_recon = model.decoder(z_hat)
        z = model.sample_prior(n)
        x_gen = model.decoder(z)
    comp_x, _ = nearest_component(x, dataset.mixture)
    comp_gen, _ = nearest_component(x_gen, dataset.mixture)
    return {"x": x, "z_hat": z_hat, "x_recon": x_recon, "z": z, "x_gen": x_gen, "comp_x": comp_x, "comp_gen": comp_gen}


def evaluate_toy(model: Model, dataset: Dataset, n: int) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    panels = toy_panels(model, dataset, n)
    metrics = mixture_metrics(panels["x_gen"], panels["x"], panels["x_recon"], dataset.mixture)
    return metrics, panels


def data_extent(dataset: Dataset) -> float:
    """Half-width of the square that shows the whole mixture with a margin."""
    return float(dataset.mixture.means.abs().max()) * 1.25 + 0.5
