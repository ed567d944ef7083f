"""Evaluate a trained toy model: metrics over fresh samples and held-out points, and its figure row.

The networks run on the model's device (ali.evaluation.image_eval.in_chunks) in one batch: 2-D
points are small, and one draw of the encoder's noise keeps the figures those of a single pass.
The panels come back on the CPU, where the metrics and the figure use them.
"""

from __future__ import annotations

import torch

from ali.data.dataset import Dataset
from ali.evaluation.image_eval import evaluation_rng, in_chunks, model_device
from ali.evaluation.toy_metrics import mixture_metrics, nearest_component
from ali.nets.model import Model


@torch.inference_mode()
def toy_panels(model: Model, dataset: Dataset, n: int) -> dict[str, torch.Tensor]:
    """x, Gz(x), Gx(Gz(x)) on n held-out points; z, Gx(z) on n prior samples; component labels."""
    assert dataset.mixture is not None
    model.eval()
    device = model_device(model)
    with evaluation_rng(model):
        x = dataset.heldout[:n].cpu()
        whole = len(x)
        z_hat = in_chunks(model.encoder, device, x, batch=whole)
        x_recon = in_chunks(model.decoder, device, z_hat, batch=whole)
        z = model.sample_prior(n, device="cpu")
        x_gen = in_chunks(model.decoder, device, z, batch=whole)
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
