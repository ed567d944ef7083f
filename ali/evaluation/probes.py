"""Three probes of encoder features beside the authors' L2-SVM: how much of the class a
representation holds, measured on standardised features, over several labelled draws.

For one number of labels per class: features are standardised with the mean and std of the
whole unlabelled pool (data a semi-supervised learner has); `draws` class-balanced labelled
samples are drawn from the pool (draw d of a run with seed s from seed s * draws + d,
ali.data.batches.balanced_subset, so each run has its own draws and seed 0's are 0..draws-1); and
- "svm": a LinearSVC (squared hinge, L2), its C chosen on the validation split from `Cs` with
  the first draw;
- "logreg": multinomial logistic regression (L2, lbfgs), its C chosen the same way;
- "knn": scikit-learn's 1-nearest-neighbour classifier (Euclidean distance), no parameter.
Each reports its test error on the test split, mean and sample std over the draws.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

from ali.data.batches import balanced_subset
from ali.errors import AliError

PROBES = ("svm", "logreg", "knn")
PROBE_CS = np.exp(np.linspace(-8, 4, 7))


def _linear(kind: str, C: float, seed: int):
    if kind == "svm":
        return LinearSVC(C=C, loss="squared_hinge", dual=True, max_iter=2000, random_state=seed)
    return LogisticRegression(C=C, max_iter=1000)


def _fit_error(kind: str, C: float, seed: int, x: np.ndarray, y: np.ndarray, x_eval: np.ndarray, y_eval: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a capped fit is still a fit of that C
        model = _linear(kind, C, seed).fit(x, y)
    return float(np.mean(model.predict(x_eval) != y_eval))


def nearest_neighbour_error(x: np.ndarray, y: np.ndarray, x_eval: np.ndarray, y_eval: np.ndarray) -> float:
    """Error of the 1-nearest-neighbour classifier with labelled rows (x, y) on (x_eval, y_eval)."""
    # Brute force: a few hundred labelled rows against thousands of queries is one matrix product.
    nearest = KNeighborsClassifier(n_neighbors=1, algorithm="brute").fit(x, y)
    return float(np.mean(nearest.predict(x_eval) != y_eval))


def probe_errors(
    splits: dict,
    per_class: int,
    draws: int = 10,
    Cs: np.ndarray = PROBE_CS,
    blocks: dict[str, slice] | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """`probe_<kind>_error_<labels>` (mean) and `..._std` for each probe, from svm_protocol's
    splits (pool, validation and test features with their labels), fractions in [0, 1]. With
    `blocks` (name -> the columns of one part of the features, semisupervised.feature_blocks),
    each probe also runs on each part alone: `probe_<kind>_error_<labels>_<name>`, which says
    which encoder layers carry the class. `seed` is the run's: its draws are seed * draws + d."""
    pool = np.asarray(splits["pool_feats"], dtype=np.float32)
    mean, std = pool.mean(0), pool.std(0)
    std[std == 0] = 1.0

    def standard(key: str) -> np.ndarray:
        return ((np.asarray(splits[key], dtype=np.float32) - mean) / std).astype(np.float32)

    pool, val, test = standard("pool_feats"), standard("val_feats"), standard("test_feats")
    pool_y, val_y, test_y = (np.asarray(splits[k]).ravel().astype(np.int64) for k in ("pool_labels", "val_labels", "test_labels"))
    if draws < 1:
        raise AliError(f"draws must be at least 1; got {draws}")
    samples = [balanced_subset(pool_y, per_class, seed * draws + d) for d in range(draws)]
    labels = len(samples[0])
    out: dict[str, float] = {}
    parts = {"": slice(None), **{f"_{name}": cols for name, cols in (blocks or {}).items()}}
    with threadpool_limits(limits=1, user_api="blas"):
        for suffix, cols in parts.items():
            x_pool, x_val, x_test = pool[:, cols], val[:, cols], test[:, cols]
            for kind in PROBES:
                if kind == "knn":
                    errors = [nearest_neighbour_error(x_pool[s], pool_y[s], x_test, test_y) for s in samples]
                else:
                    first = samples[0]
                    best = min(Cs, key=lambda C: _fit_error(kind, C, 0, x_pool[first], pool_y[first], x_val, val_y))
                    errors = [_fit_error(kind, best, d, x_pool[s], pool_y[s], x_test, test_y) for d, s in enumerate(samples)]
                    out[f"probe_{kind}_C_{labels}{suffix}"] = float(best)
                out[f"probe_{kind}_error_{labels}{suffix}"] = float(np.mean(errors))
                out[f"probe_{kind}_error_{labels}{suffix}_std"] = float(np.std(errors, ddof=1)) if len(errors) > 1 else 0.0
    return out
