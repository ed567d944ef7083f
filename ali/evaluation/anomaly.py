"""Anomaly scores of a trained run and how well they separate the anomalies (ali.data.anomaly
gives the protocols and the test sets).

Every score is computed in evaluation mode from the encoder's mean code mu(x), so an image
always gets the same score:
- "recon": ||x - Gx(mu(x))||^2, summed over pixels (every method).
- "complexity": the reconstruction's Gaussian negative log-likelihood in bits less the image's
  own complexity, ||x - Gx(mu(x))||^2 / (2 sigma^2 ln 2) - L(x), where L(x) is the length in bits
  of the 8-bit image compressed by zlib and sigma^2 the mean squared error per pixel of the
  training images' reconstructions (the decoder's noise variance, by maximum likelihood): the
  input-complexity correction of Serra et al. (ICLR 2020). Plain pixel error ranks images with
  little ink, such as ones, as normal whatever the normal class; L(x) takes that out.
- "egbad": (1 - w) * ||x - Gx(mu(x))||_1 + w * ||f(x, mu(x)) - f(Gx(mu(x)), mu(x))||_1, f the
  features the joint D's last layer reads, w = EGBAD_WEIGHT: EGBAD's score (Zenati et al. 2018,
  its "feature matching" form, with its L1 reconstruction term). Methods with an unpacked joint D.
- "alad": ||f(x, x) - f(x, Gx(mu(x)))||_1 in the discriminator on (x, x) pairs (Zenati et al.
  2018b, ALAD): ALICE's adversarial form (`xx_discriminator`).
Higher means more anomalous. `separation` gives AUROC and AUPRC (scikit-learn) with the
anomalies as the positive class.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from ali.data.dataset import Dataset
from ali.errors import AliError
from ali.evaluation.image_eval import in_chunks, model_device
from ali.nets.model import Model
from ali.nets.networks import JointDiscriminator, MarginalDiscriminator

EGBAD_WEIGHT = 0.1
SCORES = ("recon", "complexity", "egbad", "alad")
REFERENCE_IMAGES = 10_000  # training images that measure the noise variance sigma^2


def table_order(keys: list[str]) -> list[str]:
    """auroc_<score> / auprc_<score> keys as tables show them: AUROCs first, each in SCORES order."""
    rank = {name: i for i, name in enumerate(SCORES)}  # a score this version does not know goes last
    return sorted(keys, key=lambda k: (not k.startswith("auroc_"), rank.get(k.split("_", 1)[-1], len(SCORES))))


def available_scores(model: Model) -> tuple[str, ...]:
    """The scores this model's networks can give (module docstring)."""
    names = ["recon", "complexity"]
    joint = model["discriminator"] if "discriminator" in model else None
    if isinstance(joint, JointDiscriminator) and getattr(joint, "pack", 1) == 1:  # a packed D scores groups
        names.append("egbad")
    if isinstance(model["xx_discriminator"] if "xx_discriminator" in model else None, MarginalDiscriminator):
        names.append("alad")
    return tuple(names)


def compressed_bits(x: torch.Tensor) -> torch.Tensor:
    """L(x): each float image in [0, 1], quantised to 8 bits, compressed by zlib (level 9), in
    bits, as (N,) float on x's device."""
    quantised = (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return torch.tensor([8.0 * len(zlib.compress(image.tobytes(), 9)) for image in quantised], device=x.device)


@torch.inference_mode()
def noise_variance(model: Model, x: torch.Tensor) -> float:
    """sigma^2: the mean squared error per pixel of the reconstructions Gx(mu(x)) of float
    images x (the normal training images), the complexity score's Gaussian noise variance."""
    squared = anomaly_scores(model, x[:REFERENCE_IMAGES], ("recon",))["recon"]
    return float(squared.double().mean()) / x[0].numel()


@torch.inference_mode()
def anomaly_scores(
    model: Model, x: torch.Tensor, names: str | tuple[str, ...] | None = None, sigma2: float | None = None
) -> dict[str, torch.Tensor]:
    """Each named score (default: every available one; complexity where `sigma2` is given) of
    float images x (N, C, H, W) in [0, 1], as (N,) float tensors on x's device. The complexity
    score needs `sigma2` (noise_variance of the training images)."""
    if names is None:
        names = tuple(n for n in available_scores(model) if n != "complexity" or sigma2 is not None)
    names = (names,) if isinstance(names, str) else tuple(names)
    unknown = [n for n in names if n not in SCORES]
    if unknown:
        raise AliError(f"unknown anomaly score(s) {', '.join(map(repr, unknown))}; the scores are {', '.join(SCORES)}")
    missing = [n for n in names if n not in available_scores(model)]
    if missing:
        raise AliError(
            f"score(s) {', '.join(missing)} need networks this {model.method} run lacks; it gives {', '.join(available_scores(model))}"
        )
    if "complexity" in names and not (sigma2 is not None and sigma2 > 0):
        raise AliError("the complexity score needs the noise variance sigma^2 > 0 of the training images' reconstructions")
    model.eval()

    def scores(chunk: torch.Tensor) -> torch.Tensor:
        mu = model["encoder"].moments(chunk)[0]
        recon_x = model["decoder"](mu)
        recon = (chunk - recon_x).float().pow(2).flatten(1).sum(1)
        out = {"recon": recon, "complexity": recon}  # complexity: scaled and corrected below
        if "egbad" in names:
            d = model["discriminator"]
            distance = (d.features(chunk, mu) - d.features(recon_x, mu)).float().abs().flatten(1).sum(1)
            absolute = (chunk - recon_x).float().abs().flatten(1).sum(1)
            out["egbad"] = (1 - EGBAD_WEIGHT) * absolute + EGBAD_WEIGHT * distance
        if "alad" in names:
            d = model["xx_discriminator"]
            pairs = d.features(torch.cat([torch.cat([chunk, chunk], 1), torch.cat([chunk, recon_x], 1)]))
            same, rebuilt = pairs.float().flatten(1).split(len(chunk))
            out["alad"] = (same - rebuilt).abs().sum(1)
        return torch.stack([out[n] for n in names], 1)

    table = in_chunks(scores, model_device(model), x)
    out = {name: table[:, i] for i, name in enumerate(names)}
    if "complexity" in out:
        out["complexity"] = out["complexity"] / (2 * sigma2 * math.log(2)) - compressed_bits(x)
    return out


def separation(scores: torch.Tensor | np.ndarray, anomalous: torch.Tensor | np.ndarray) -> dict[str, float]:
    """AUROC and AUPRC of `scores` (higher = more anomalous) against the anomaly flags."""
    s = np.asarray(scores.cpu() if isinstance(scores, torch.Tensor) else scores, dtype=np.float64)
    y = np.asarray(anomalous.cpu() if isinstance(anomalous, torch.Tensor) else anomalous, dtype=bool)
    if len(s) != len(y) or y.all() or not y.any():
        raise AliError(f"AUROC needs normal and anomalous examples alike; got {int(y.sum())} of {len(y)} anomalous")
    if not np.isfinite(s).all():
        raise AliError("anomaly scores hold NaN or infinity; the model diverged")
    return {"auroc": float(roc_auc_score(y, s)), "auprc": float(average_precision_score(y, s))}


def auroc_by_anomalous_class(scores: np.ndarray, anomalous: np.ndarray, labels: np.ndarray) -> dict[int, float]:
    """AUROC of the normal images against each anomalous class alone: which anomalies a score
    misses (one-class MNIST: thin ones, whose few inked pixels any decoder redraws closely)."""
    scores, anomalous, labels = np.asarray(scores), np.asarray(anomalous, dtype=bool), np.asarray(labels)
    normal = ~anomalous
    return {
        int(k): separation(
            np.concatenate([scores[normal], scores[anomalous & (labels == k)]]),
            np.r_[np.zeros(normal.sum(), bool), np.ones((anomalous & (labels == k)).sum(), bool)],
        )["auroc"]
        for k in np.unique(labels[anomalous])
    }


def anomaly_metrics(
    model: Model, x: torch.Tensor, anomalous: torch.Tensor, train_x: torch.Tensor
) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """`auroc_<score>` and `auprc_<score>` of every available score on held-out float images x
    (with the counts of normal and anomalous images and the noise variance measured on the
    float training images train_x), and the scores themselves."""
    sigma2 = noise_variance(model, train_x)
    scores = anomaly_scores(model, x, sigma2=sigma2)
    out: dict[str, float] = {
        "anomaly_test_images": len(x),
        "anomaly_test_anomalous": int(anomalous.sum()),
        "anomaly_noise_variance": sigma2,
    }
    for name, values in scores.items():
        result = separation(values, anomalous)
        out[f"auroc_{name}"], out[f"auprc_{name}"] = result["auroc"], result["auprc"]
    return out, scores


def require_anomaly_split(dataset: Dataset) -> None:
    """AliError unless the dataset is split for anomaly detection (a run of `ali anomaly`)."""
    if dataset.heldout_anomalous is None:
        raise AliError(
            "the anomaly metric scores runs trained by `ali anomaly`; this run trained on the whole dataset: drop 'anomaly' from --metrics"
        )


def dataset_anomaly_metrics(
    model: Model, dataset: Dataset, test_images: int | None = None
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """anomaly_metrics of a run trained by `ali anomaly`: the first `test_images` held-out images
    (all by default) against their anomaly flags, sigma^2 from the first REFERENCE_IMAGES normal
    training images, with the run's protocol and class."""
    require_anomaly_split(dataset)
    x = dataset.to_float(dataset.heldout[:test_images])
    reference = dataset.to_float(dataset.train[:REFERENCE_IMAGES])
    metrics, scores = anomaly_metrics(model, x, dataset.heldout_anomalous[: len(x)], reference)
    protocol = {"anomaly_protocol": model.config.anomaly_protocol, "anomaly_class": model.config.anomaly_class}
    return {**metrics, **protocol}, scores
