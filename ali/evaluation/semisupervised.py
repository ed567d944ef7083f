"""The authors' semi-supervised L2-SVM protocol (docs/PAPER.md §5): linear SVMs on frozen encoder features.

Features (`encoder_features`): the encoder's mean `mu` followed by the flattened outputs of the
last three batch-norm layers of the encoder stack, in evaluation mode (running averages), as
the authors' scripts/preprocess_representations does (5,376 values on their SVHN encoder).

Protocol (`svm_protocol`): each SVM is a scikit-learn LinearSVC (squared hinge, L2 penalty,
one-vs-rest, the authors' defaults) trained on a class-balanced labelled sample drawn from the
pool (ali.data.batches.balanced_subset); C is the one of `Cs` with the lowest mean validation
error over `n_val_svms` SVMs, and the figure reported is the test error over `n_test_svms` fresh
SVMs at that C (mean and std).
Splits (`svm_splits`, each dataset's ranges in DatasetSpec.svm_split): pool and validation are
ranges of the official train split, the test set is the official test split (MNIST and Fashion-MNIST 10,000 images, SVHN 26,032, CIFAR-10 10,000).
Features are used raw, not standardised: the authors' experiments/semi_supervised_svhn.py feeds
them to LinearSVC as they come. Two details of that released script differ from docs/PAPER.md §5,
which this module follows: the script trains each SVM on 1,000 pool examples drawn at random (not
class-balanced), and scores each C with a single SVM (its "10" is the validation set scored in
10 chunks of 1,000); `n_val_svms=1` gives that search.

Speed: with fewer labelled examples n than feature dimensions d (100 x 7,296 on MNIST), every
solution of the L2-regularised SVM lies in the span of its training rows. Training on the
coordinates z of those rows in an orthonormal basis Q of that span (n x n) poses the same dual
problem (z z^T = X X^T, the only way the data enter it), so liblinear runs the same coordinate
descent on an n x n matrix instead of n x d, and w = Q a. Validation scores of all Cs then
reuse one projection val @ Q per labelled sample.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits  # installed with scikit-learn, which depends on it
from torch import nn

from ali.data.batches import balanced_subset
from ali.errors import AliError

DEFAULT_CS = np.exp(np.linspace(-20, 20, 50))  # docs/PAPER.md §5: C from exp(linspace(-20, 20, 50))
FEATURE_BATCH = 500
MAX_ITER = 1000  # liblinear's default, as the authors ran it
SCORE_CHUNK = 10  # SVMs scored by one matrix product (see _errors)


def _numpy(a: torch.Tensor | np.ndarray) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


@torch.inference_mode()
def encoder_features(encoder: nn.Module, x: torch.Tensor, hidden_layers: int = 3, batch: int = FEATURE_BATCH) -> torch.Tensor:
    """Features (N, D) of images x (uint8, or float as the encoder takes them): mu concatenated
    with the flattened outputs of the last `hidden_layers` batch-norm layers of `encoder.net`."""
    out = [torch.cat(parts, dim=1) for parts in _feature_parts(encoder, x, hidden_layers, batch)]
    if not out:
        raise AliError("no images to compute features of")
    return torch.cat(out)


@torch.inference_mode()
def feature_blocks(encoder: nn.Module, x: torch.Tensor, hidden_layers: int = 3) -> dict[str, slice]:
    """Where each part of encoder_features' rows lies: "mu", then "bn<i>" for each kept batch-norm
    layer, i its position among the encoder's batch-norm layers counted from the input (1-based).
    x: one or more images the encoder takes (only their shape matters)."""
    chunks = _feature_parts(encoder, x[:1], hidden_layers, 1)
    try:
        parts = next(chunks)
    finally:
        chunks.close()  # removes the hooks and restores the encoder's mode now
    total = len(_batch_norms(encoder))
    names = ["mu", *[f"bn{total - hidden_layers + i + 1}" for i in range(hidden_layers)]]
    bounds = np.cumsum([0, *[p.shape[1] for p in parts]])
    return {name: slice(int(a), int(b)) for name, a, b in zip(names, bounds[:-1], bounds[1:])}


def _batch_norms(encoder: nn.Module) -> list[nn.Module]:
    if not hasattr(encoder, "moments") or not isinstance(getattr(encoder, "net", None), nn.Module):
        raise AliError(
            "the L2-SVM features need a Gaussian encoder (with `moments` and a layer stack `net`); "
            "this model's encoder has none (the toy and BiGAN-style encoders have no mu)"
        )
    return [m for m in encoder.net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _feature_parts(encoder: nn.Module, x: torch.Tensor, hidden_layers: int, batch: int) -> Iterator[list[torch.Tensor]]:
    """Per chunk of x: [mu, the kept batch-norm outputs...], each flattened, float, on the CPU."""
    norms = _batch_norms(encoder)
    if hidden_layers < 0 or len(norms) < hidden_layers:
        raise AliError(f"asked for the last {hidden_layers} batch-norm layers but the encoder has {len(norms)}")
    captured: list[torch.Tensor] = []
    # clone: an in-place activation after the batch norm would otherwise overwrite what was kept.
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: captured.append(out.flatten(1).clone()))
        for m in norms[len(norms) - hidden_layers :]
    ]
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    try:
        for chunk in x.split(batch):
            chunk = chunk.float() / 255.0 if chunk.dtype == torch.uint8 else chunk
            captured.clear()
            mu, _ = encoder.moments(chunk.to(device))
            # Hooks fire in forward order, which is the layer order the authors concatenate in.
            yield [t.float().cpu() for t in (mu.flatten(1), *captured)]
    finally:
        for hook in hooks:
            hook.remove()
        encoder.train(was_training)


class _SvmData:
    """Features as float32 (the network's precision; the large products run in it)."""

    def __init__(self, feats: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, name: str):
        self.x = np.ascontiguousarray(_numpy(feats), dtype=np.float32)
        self.y = _numpy(labels).ravel().astype(np.int64)
        if self.x.ndim != 2 or len(self.x) != len(self.y) or len(self.x) == 0:
            raise AliError(f"{name}: features {self.x.shape} and labels {self.y.shape} must be (N, D) and (N,), N > 0")
        if not np.isfinite(self.x).all():
            raise AliError(f"{name}: features contain NaN or infinity")


def _fit(x: np.ndarray, y: np.ndarray, C: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """A LinearSVC on (x, y): (coef (K', D), intercept (K',), classes, converged)."""
    svm = LinearSVC(C=C, loss="squared_hinge", dual=True, max_iter=MAX_ITER, random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        svm.fit(x, y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return svm.coef_, svm.intercept_, svm.classes_, converged


def _error(scores: np.ndarray, classes: np.ndarray, y: np.ndarray) -> float:
    # Two classes give one column: positive means classes[1], as in LinearSVC.predict.
    pred = classes[(scores[:, 0] > 0).astype(int)] if scores.shape[1] == 1 else classes[scores.argmax(1)]
    return float(np.mean(pred != y))


def _errors(x: np.ndarray, fits: list[tuple[np.ndarray, np.ndarray, np.ndarray]], y: np.ndarray) -> list[float]:
    """Error on (x, y) of each fitted SVM (weights (D, K'), intercept, classes).

    SCORE_CHUNK SVMs share one wide product: x is read once per chunk rather than once per SVM,
    which made scoring 100 test SVMs on 10,000 x 7,296 features ~4x faster.
    """
    errors = []
    for start in range(0, len(fits), SCORE_CHUNK):
        chunk = fits[start : start + SCORE_CHUNK]
        scores = x @ np.concatenate([w for w, _, _ in chunk], axis=1)
        col = 0
        for w, intercept, classes in chunk:
            errors.append(_error(scores[:, col : col + w.shape[1]] + intercept, classes, y))
            col += w.shape[1]
    return errors


class _Labelled:
    """One labelled sample, re-expressed in an orthonormal basis of its rows when that is smaller.

    With G = X X^T = V diag(lam) V^T, the rows' coordinates are z = V sqrt(lam) (z z^T = G) in the
    basis Q = X^T V / sqrt(lam). Q is never formed: weights are Q a = X^T (V a / sqrt(lam)). This
    route (one product and a small eigh) replaced a QR of X^T, whose many small BLAS calls took
    ~1.7 s per sample instead of ~15 ms once torch's OpenMP threads were awake beside OpenBLAS's.
    """

    def __init__(self, pool: _SvmData, index: np.ndarray):
        self.x = pool.x[index]
        self.y = pool.y[index]
        self.to_rows: np.ndarray | None = None
        if self.x.shape[0] < self.x.shape[1]:
            x64 = self.x.astype(np.float64)
            lam, vecs = np.linalg.eigh(x64 @ x64.T)
            keep = lam > lam.max() * 1e-12  # the rank of the rows; round-off directions dropped
            if not keep.any():
                raise AliError("the labelled examples' features are all zero; the encoder gives no information to classify")
            root = np.sqrt(lam[keep])
            self.z = vecs[:, keep] * root
            self.to_rows = (vecs[:, keep] / root).astype(np.float32)  # Q = X^T @ to_rows
        else:
            self.z = self.x.astype(np.float64)

    def weights(self, coef: np.ndarray) -> np.ndarray:
        """(D, K') weights in feature space from the SVM's coefficients (K', r) on z."""
        w = coef.T.astype(np.float32)
        return w if self.to_rows is None else self.x.T @ (self.to_rows @ w)

    def project(self, x: np.ndarray) -> np.ndarray:
        """x (N, D) in the basis: x Q, (N, r)."""
        return x if self.to_rows is None else (x @ self.x.T) @ self.to_rows


def svm_protocol(
    pool_feats: torch.Tensor | np.ndarray,
    pool_labels: torch.Tensor | np.ndarray,
    val_feats: torch.Tensor | np.ndarray,
    val_labels: torch.Tensor | np.ndarray,
    test_feats: torch.Tensor | np.ndarray,
    test_labels: torch.Tensor | np.ndarray,
    per_class: int,
    n_val_svms: int = 10,
    n_test_svms: int = 100,
    Cs: Sequence[float] | np.ndarray = DEFAULT_CS,
    seed: int = 0,
) -> dict:
    """Select C on validation, then report test error (fractions in [0, 1]) over fresh SVMs.

    Returns best_C, val_error / val_error_std (at best_C, over the n_val_svms SVMs), val_errors
    (mean per C), Cs, test_error_mean / test_error_std (sample std over the SVMs' labelled
    draws, which come from `seed`'s generator), test_errors, n_labels, unconverged (SVM
    fits that hit liblinear's iteration cap, reported rather than hidden) and seconds.
    """
    # One BLAS thread: the protocol is hundreds of small products and eigh calls, where a thread
    # barrier per call cost more than a second core gave (MNIST, 100 labels: 9-10 s on one
    # thread, 14 s on two, up to 50 s on two when the machine was busy).
    with threadpool_limits(limits=1, user_api="blas"):
        return _svm_protocol(
            pool_feats, pool_labels, val_feats, val_labels, test_feats, test_labels, per_class, n_val_svms, n_test_svms, Cs, seed
        )


def _svm_protocol(
    pool_feats,
    pool_labels,
    val_feats,
    val_labels,
    test_feats,
    test_labels,
    per_class: int,
    n_val_svms: int,
    n_test_svms: int,
    Cs,
    seed: int,
) -> dict:
    start = time.perf_counter()
    pool, val, test = (
        _SvmData(pool_feats, pool_labels, "pool"),
        _SvmData(val_feats, val_labels, "validation"),
        _SvmData(test_feats, test_labels, "test"),
    )
    if not pool.x.shape[1] == val.x.shape[1] == test.x.shape[1]:
        raise AliError(f"feature dimensions differ: pool {pool.x.shape[1]}, validation {val.x.shape[1]}, test {test.x.shape[1]}")
    Cs = np.asarray(Cs, dtype=np.float64).ravel()
    if Cs.size == 0 or (Cs <= 0).any():
        raise AliError("Cs must be a non-empty list of positive values")
    if n_val_svms < 1 or n_test_svms < 1:
        raise AliError(f"need at least one validation and one test SVM; got {n_val_svms} and {n_test_svms}")
    rng = np.random.default_rng(seed)
    unconverged = 0

    # The same labelled samples score every C, so C is compared on equal terms.
    samples = [_Labelled(pool, balanced_subset(pool.y, per_class, rng)) for _ in range(n_val_svms)]
    val_errors = np.zeros((len(Cs), n_val_svms))
    for j, sample in enumerate(samples):
        # Projecting val once pays off when the basis is narrower than all the Cs' weights together.
        n_out = len(np.unique(sample.y))
        project = sample.to_rows is not None and len(sample.y) < n_out * len(Cs)
        fits = []
        for C in Cs:
            coef, intercept, classes, ok = _fit(sample.z, sample.y, float(C), seed + j)
            unconverged += not ok
            fits.append((coef.T.astype(np.float32) if project else sample.weights(coef), intercept, classes))
        val_errors[:, j] = _errors(sample.project(val.x) if project else val.x, fits, val.y)
    mean_val = val_errors.mean(1)
    best = int(np.argmin(mean_val))  # first of equals in Cs (the smallest C when ascending), as the authors' strict "<"
    best_C = float(Cs[best])

    fits = []
    for k in range(n_test_svms):
        sample = _Labelled(pool, balanced_subset(pool.y, per_class, rng))
        coef, intercept, classes, ok = _fit(sample.z, sample.y, best_C, seed + n_val_svms + k)
        unconverged += not ok
        fits.append((sample.weights(coef), intercept, classes))
    test_errors = _errors(test.x, fits, test.y)
    return {
        "best_C": best_C,
        "log_best_C": float(np.log(best_C)),
        "val_error": float(mean_val[best]),
        "val_error_std": float(val_errors[best].std(ddof=1)) if n_val_svms > 1 else 0.0,
        "val_errors": mean_val.tolist(),
        "Cs": Cs.tolist(),
        "test_error_mean": float(np.mean(test_errors)),
        "test_error_std": float(np.std(test_errors, ddof=1)) if n_test_svms > 1 else 0.0,
        "test_errors": test_errors,
        "per_class": per_class,
        "n_labels": per_class * len(np.unique(pool.y)),
        "n_val_svms": n_val_svms,
        "n_test_svms": n_test_svms,
        "unconverged": unconverged,
        "seconds": time.perf_counter() - start,
    }


def svm_splits(
    train_feats: torch.Tensor | np.ndarray,
    train_labels: torch.Tensor | np.ndarray,
    test_feats: torch.Tensor | np.ndarray,
    test_labels: torch.Tensor | np.ndarray,
    bounds: tuple[int, int] | None,
    name: str,
) -> dict:
    """svm_protocol's data arguments: pool = train[0:bounds[0]], validation =
    train[bounds[0]:bounds[1]], test = the official test split (a dataset's bounds:
    DatasetSpec.svm_split). Use as svm_protocol(**splits, per_class=...)."""
    if bounds is None or not 0 < bounds[0] < bounds[1]:
        raise AliError(
            f"{name}: the L2-SVM protocol needs (pool end, validation end) with 0 < pool end < validation end; got {bounds}"
        )
    pool_end, val_end = bounds
    if len(train_feats) < val_end or len(train_labels) != len(train_feats) or len(test_labels) != len(test_feats):
        raise AliError(
            f"{name} L2-SVM splits need the full training split ({val_end} rows, with one label each) "
            f"and labelled test rows; got {len(train_feats)} training rows and {len(train_labels)} labels"
        )
    return {
        "pool_feats": train_feats[:pool_end],
        "pool_labels": train_labels[:pool_end],
        "val_feats": train_feats[pool_end:val_end],
        "val_labels": train_labels[pool_end:val_end],
        "test_feats": test_feats,
        "test_labels": test_labels,
    }
