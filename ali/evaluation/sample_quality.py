"""Sample-quality numbers from a classifier's outputs: inception score, Frechet distance, mode counts.

Everything here is a pure function of probabilities, labels or features, so each can be checked
on hand-built inputs with known answers; producing those inputs (ali.evaluation.classifier, or
an Inception network) is the caller's business.

- `inception_score`: exp(E_x KL(p(y|x) || p(y))) per split, mean and std over splits, as in
  OpenAI's improved-GAN code and ChunyuanLI/MNIST_Inception_Score (ALICE's MNIST figure).
- `mean_class_entropy`: E_x H(p(y|x)), the samples' ambiguity. With KL(p(y) || uniform), p(y)
  the mean of the rows, it splits the score exactly over one split: ln IS = ln K - KL - E_x H,
  so a low score says whether the classes are unbalanced or the samples ambiguous (with the
  KL of the argmax histogram and the IS over 10 splits, as `ali evaluate` stores them, the
  split holds approximately).
- `frechet_distance`: the Frechet distance between Gaussians fitted to two feature sets. On the
  domain classifier's penultimate features it is a "classifier FID" (not comparable with the
  standard Inception FID, which `inception_metrics` computes through torch-fidelity).
- `class_histogram`, `kl_to_uniform`, `stacked_mnist_modes`: mode coverage as VEEGAN and PacGAN
  count it on Stacked MNIST (1,000 modes), and the KL divergence from the sample's mode
  distribution to the uniform one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from scipy.special import entr, rel_entr  # elementwise -p log p and p log(p/q), 0 where p = 0

from ali.errors import AliError

ArrayLike = torch.Tensor | np.ndarray
STACKED_MNIST_MODES = 1000
INCEPTION_WEIGHTS_HINT = "pt_inception-2015-12-05-6726825d.pth, the file torch-fidelity's inception-v3-compat extractor uses"


def _float64(a: ArrayLike, name: str) -> np.ndarray:
    out = a.detach().cpu().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=np.float64)
    if not np.isfinite(out).all():
        raise AliError(f"{name} contains NaN or infinity")
    return out


def _check_probs(probs: ArrayLike) -> np.ndarray:
    p = _float64(probs, "probabilities")
    if p.ndim != 2 or p.shape[0] == 0:
        raise AliError(f"probabilities must be a non-empty (N, classes) array; got shape {p.shape}")
    if (p < 0).any() or not np.allclose(p.sum(1), 1.0, atol=1e-3):
        raise AliError("each row of probabilities must be non-negative and sum to 1 (pass softmax outputs, not logits)")
    return p


def _mean_kl_to_marginal(p: np.ndarray) -> float:
    """E_x KL(p(y|x) || p(y)) over the rows of p; 0 log 0 = 0, so one-hot rows are exact."""
    return float(rel_entr(p, p.mean(0, keepdims=True)).sum(1).mean())


def inception_score(probs: ArrayLike, splits: int = 10) -> tuple[float, float]:
    """Inception score of class probabilities (N, K): mean and std over `splits` equal parts.

    Between 1 (every sample gets the same prediction) and K (confident, class-balanced).
    """
    p = _check_probs(probs)
    if not 1 <= splits <= len(p):
        raise AliError(f"inception score over {splits} splits needs at least {splits} samples; got {len(p)}")
    n = len(p)
    scores = [math.exp(_mean_kl_to_marginal(p[i * n // splits : (i + 1) * n // splits])) for i in range(splits)]
    return float(np.mean(scores)), float(np.std(scores))


def mean_class_entropy(probs: ArrayLike) -> float:
    """E_x H(p(y|x)) in nats over the rows of p: 0 for confident rows, ln K for uniform ones."""
    return float(entr(_check_probs(probs)).sum(1).mean())


def feature_statistics(feats: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of features (N, D), in float64, for `frechet_distance_from_stats`."""
    f = _float64(feats, "features")
    if f.ndim != 2 or f.shape[0] < 2:
        raise AliError(f"features must be an (N, D) array with N >= 2; got shape {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """Symmetric square root of a PSD matrix; round-off negatives clipped to 0."""
    vals, vecs = np.linalg.eigh((cov + cov.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def frechet_distance_from_stats(mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)).

    tr (C_a C_b)^(1/2) is computed as tr (S C_b S)^(1/2) with S = C_a^(1/2): the same eigenvalues,
    but of a symmetric PSD matrix, so eigh gives them real and exactly, where scipy's sqrtm on the
    non-symmetric product can return complex parts and lose precision on singular covariances
    (fewer samples than dimensions).
    """
    if mu_a.shape != mu_b.shape or cov_a.shape != cov_b.shape:
        raise AliError(f"feature sets differ in dimension: {mu_a.shape[0]} and {mu_b.shape[0]}")
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_sqrt = float(np.sqrt(np.clip(eig, 0, None)).sum())
    diff = mu_a - mu_b
    value = float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_sqrt)
    return max(value, 0.0)  # a true distance is >= 0; only round-off goes below


def frechet_distance(feats_a: ArrayLike, feats_b: ArrayLike) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N_a, D) and (N_b, D).

    On the domain classifier's 1024-d features this is the "classifier FID" of samples against
    real images; identical sets give 0 up to round-off.
    """
    return frechet_distance_from_stats(*feature_statistics(feats_a), *feature_statistics(feats_b))


def class_histogram(probs_or_labels: ArrayLike, num_classes: int) -> np.ndarray:
    """Counts per class (int64, length num_classes) of integer labels (N,), or of the most
    probable class of each row of probabilities (N, num_classes)."""
    a = probs_or_labels.detach().cpu().numpy() if isinstance(probs_or_labels, torch.Tensor) else np.asarray(probs_or_labels)
    if a.ndim == 2:
        if a.shape[1] != num_classes:
            raise AliError(f"probabilities have {a.shape[1]} columns, expected {num_classes}")
        a = a.argmax(1)
    elif a.ndim != 1:
        raise AliError(f"expected labels (N,) or probabilities (N, {num_classes}); got shape {a.shape}")
    if a.size and (not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= num_classes):
        raise AliError(f"labels must be integers in 0..{num_classes - 1}")
    return np.bincount(a.astype(np.int64), minlength=num_classes)


def kl_to_uniform(hist: ArrayLike) -> float:
    """KL(q || uniform) of a histogram (counts or frequencies) q over K bins: sum q log(K q).

    0 when every bin is equally full, log K when one bin holds everything. This direction
    (sample distribution first) is the one VEEGAN and PacGAN report; empty bins add nothing.
    """
    h = _float64(hist, "histogram").ravel()
    if h.size == 0 or (h < 0).any() or h.sum() <= 0:
        raise AliError("a histogram needs non-negative counts with a positive total")
    q = h / h.sum()
    nz = q > 0
    return float(np.sum(q[nz] * np.log(q[nz] * h.size)))


def stacked_mnist_modes(channel_probs: Sequence[ArrayLike]) -> dict[str, float]:
    """Mode coverage of Stacked MNIST samples from the domain classifier's probabilities for each
    of the three channels (each (N, 10), e.g. `predict(model, samples[:, c:c + 1])[0]` for c = 0,
    1, 2 with the MNIST classifier): mode = 100 d0 + 10 d1 + d2 of the predicted digits.

    Returns modes_covered (modes with at least one sample, out of 1000), kl_to_uniform, and that
    KL split in two parts that add up to it exactly: kl_channels, the sum over channels of each
    channel's digit histogram's KL to uniform (class imbalance within a channel), and
    kl_dependence, the KL of the joint histogram to the product of its three marginals (the
    channels' digits depending on each other; 0 when they are independent).
    """
    if len(channel_probs) != 3:
        raise AliError(f"Stacked MNIST has 3 channels; got probabilities for {len(channel_probs)}")
    digits = [_predicted_digits(p) for p in channel_probs]
    if len({len(d) for d in digits}) != 1:
        raise AliError(f"the channels were classified for different numbers of samples: {[len(d) for d in digits]}")
    modes = 100 * digits[0] + 10 * digits[1] + digits[2]
    hist = class_histogram(modes, STACKED_MNIST_MODES)
    kl = kl_to_uniform(hist)
    channels = sum(kl_to_uniform(class_histogram(d, 10)) for d in digits)
    return {
        "modes_covered": int((hist > 0).sum()),
        "kl_to_uniform": kl,
        "kl_channels": channels,
        "kl_dependence": kl - channels,
        "num_modes": STACKED_MNIST_MODES,
    }


def _predicted_digits(probs: ArrayLike) -> np.ndarray:
    """The most probable of 10 digit classes per row of (N, 10) probabilities."""
    p = _check_probs(probs)
    if p.shape[1] != 10:
        raise AliError(f"digit probabilities must have 10 columns; got {p.shape[1]}")
    return p.argmax(1)


def _rgb_uint8(images: torch.Tensor, name: str) -> torch.Tensor:
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise AliError(
            f"{name}: standard Inception metrics take uint8 images (N, 1 or 3, H, W); got {images.dtype} {tuple(images.shape)}"
        )
    # The Inception network sees RGB; grey images are repeated over the three channels.
    return images.expand(-1, 3, -1, -1).contiguous() if images.shape[1] == 1 else images


class _ImageSet(torch.utils.data.Dataset):
    """The form torch-fidelity reads: a dataset of uint8 (3, H, W) tensors."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def inception_metrics(
    samples_uint8: torch.Tensor, real_uint8: torch.Tensor, weights_path: Path | str | None, splits: int = 10
) -> dict[str, float]:
    """Standard Inception score of the samples and Inception FID against the real images, through
    torch-fidelity with Inception weights from a local file (nothing is downloaded).

    Returns inception_score_mean, inception_score_std and inception_fid.
    """
    missing = (
        "standard Inception metrics need torch-fidelity (pip install 'ali[inception]') and Inception "
        f"weights on disk: pass --inception-weights FILE ({INCEPTION_WEIGHTS_HINT})"
    )
    if weights_path is None or not Path(weights_path).expanduser().is_file():
        raise AliError(missing if weights_path is None else f"{missing}; {weights_path} is not a file")
    try:
        # Imported here, not at the top: torch-fidelity is an optional extra and every other
        # metric in this module works without it.
        import torch_fidelity
    except ImportError:
        raise AliError(missing) from None
    samples, real = _rgb_uint8(samples_uint8, "samples"), _rgb_uint8(real_uint8, "real images")
    if len(samples) < splits or len(real) < 2:
        raise AliError(f"need at least {splits} samples and 2 real images; got {len(samples)} and {len(real)}")
    result = torch_fidelity.calculate_metrics(
        input1=_ImageSet(samples),
        input2=_ImageSet(real),
        isc=True,
        fid=True,
        isc_splits=splits,
        feature_extractor_weights_path=str(Path(weights_path).expanduser()),
        cuda=torch.cuda.is_available(),
        cache=False,
        datasets_download=False,
        verbose=False,
    )
    return {
        "inception_score_mean": float(result["inception_score_mean"]),
        "inception_score_std": float(result["inception_score_std"]),
        "inception_fid": float(result["frechet_inception_distance"]),
    }
