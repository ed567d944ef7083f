"""The feature probes (ali.evaluation.probes): known answers on features whose class is plain."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from ali.data.batches import balanced_subset
from ali.evaluation import probes
from ali.evaluation.probes import nearest_neighbour_error, probe_errors


def _clustered(n: int, seed: int, spread: float) -> tuple[np.ndarray, np.ndarray]:
    """Features around one centre per class (10 classes, 20 dimensions), plus a constant column."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(10, 20)) * 3
    y = np.arange(n) % 10
    x = centres[y] + spread * rng.normal(size=(n, 20))
    return np.hstack([x, np.ones((n, 1))]).astype(np.float32), y


def test_the_nearest_neighbour_finds_the_nearest_labelled_row():
    labelled = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=np.float32)
    classes = np.array([0, 1, 2])
    queries = np.array([[1.0, 1.0], [9.0, 1.0], [1.0, 8.0], [6.0, 0.0]], dtype=np.float32)
    assert nearest_neighbour_error(labelled, classes, queries, np.array([0, 1, 2, 1])) == 0.0
    assert nearest_neighbour_error(labelled, classes, queries, np.array([0, 1, 2, 0])) == 0.25


def test_every_probe_separates_clusters_and_reports_its_spread_over_draws():
    pool, pool_y = _clustered(2000, 0, 0.5)
    val, val_y = _clustered(500, 1, 0.5)
    test, test_y = _clustered(500, 2, 0.5)
    splits = dict(pool_feats=pool, pool_labels=pool_y, val_feats=val, val_labels=val_y, test_feats=test, test_labels=test_y)
    out = probe_errors(splits, per_class=2, draws=4)
    for kind in ("svm", "logreg", "knn"):
        assert out[f"probe_{kind}_error_20"] < 0.05 and f"probe_{kind}_error_20_std" in out
    noisy = _clustered(2000, 0, 8.0)
    hard = {**splits, "pool_feats": noisy[0], "test_feats": _clustered(500, 2, 8.0)[0]}
    worse = probe_errors(hard, per_class=2, draws=4)
    assert worse["probe_knn_error_20"] > 0.3 and worse["probe_knn_error_20_std"] > 0
    with pytest.raises(Exception, match="draws"):
        probe_errors(splits, per_class=2, draws=0)


def test_the_probes_on_each_block_find_the_block_that_carries_the_class():
    """Features = a block of noise beside a block of class clusters: every probe reads the class
    from the clusters' block alone, and none from the noise's."""
    rng = np.random.default_rng(3)
    splits = {}
    for name, n, seed in (("pool", 2000, 0), ("val", 500, 1), ("test", 500, 2)):
        clusters, y = _clustered(n, seed, 0.5)
        splits[f"{name}_feats"] = np.hstack([rng.normal(size=(n, 15)).astype(np.float32), clusters])
        splits[f"{name}_labels"] = y
    out = probe_errors(splits, per_class=2, draws=3, blocks={"noise": slice(0, 15), "clusters": slice(15, 36)})
    for kind in ("svm", "logreg", "knn"):
        assert out[f"probe_{kind}_error_20_clusters"] < 0.05 < 0.6 < out[f"probe_{kind}_error_20_noise"]
        assert f"probe_{kind}_error_20" in out and f"probe_{kind}_error_20_noise_std" in out


@pytest.mark.parametrize("seed", [0, 2])
def test_each_probe_fits_standardised_pool_draws_and_scores_the_test_split(monkeypatch, seed):
    """What each probe is given: rows of the pool standardised with the pool's mean and std (one
    column 1,000 times the others' scale, one constant), draw d of a run with seed s from seed
    s * draws + d; C chosen on the validation split with the first draw; the reported error is
    the test split's, mean and sample std over the draws. The SVM is scikit-learn's LinearSVC,
    the logistic probe its LogisticRegression."""
    splits = {}
    for name, n, data_seed in (("pool", 400, 0), ("val", 200, 1), ("test", 300, 2)):
        x, y = _clustered(n, data_seed, 4.0)
        x[:, 0] *= 1000.0
        splits[f"{name}_feats"], splits[f"{name}_labels"] = x, y
    mean, std = splits["pool_feats"].mean(0), splits["pool_feats"].std(0)
    std[std == 0] = 1.0
    standard = {k: (splits[f"{k}_feats"] - mean) / std for k in ("pool", "val", "test")}
    fits, neighbours, made = [], [], []
    fit_error, nearest, linear = probes._fit_error, probes.nearest_neighbour_error, probes._linear

    def spy_fit(kind, C, seed, x, y, x_eval, y_eval):
        fits.append((kind, C, x, y, x_eval, y_eval, fit_error(kind, C, seed, x, y, x_eval, y_eval)))
        return fits[-1][-1]

    def spy_nearest(x, y, x_eval, y_eval):
        neighbours.append((x, y, x_eval, y_eval, nearest(x, y, x_eval, y_eval)))
        return neighbours[-1][-1]

    monkeypatch.setattr(probes, "_fit_error", spy_fit)
    monkeypatch.setattr(probes, "nearest_neighbour_error", spy_nearest)
    monkeypatch.setattr(probes, "_linear", lambda kind, C, seed: made.append((kind, linear(kind, C, seed))) or made[-1][1])
    Cs, draws = np.array([0.01, 1.0]), 3
    out = probe_errors(splits, per_class=2, draws=draws, Cs=Cs, seed=seed)
    rows = [balanced_subset(splits["pool_labels"], 2, seed * draws + d) for d in range(draws)]

    def same(a, b):
        return np.allclose(a, b, rtol=1e-4, atol=1e-4)

    assert {kind for kind, model in made if isinstance(model, LinearSVC)} == {"svm"}
    assert {kind for kind, model in made if isinstance(model, LogisticRegression)} == {"logreg"}
    for kind in ("svm", "logreg", "knn"):
        if kind == "knn":
            calls = [(x, y, x_eval, y_eval, e) for x, y, x_eval, y_eval, e in neighbours]
        else:
            mine = [c for c in fits if c[0] == kind]
            search, calls = mine[: len(Cs)], [c[2:] for c in mine[len(Cs) :]]
            assert [c[1] for c in search] == list(Cs) and out[f"probe_{kind}_C_20"] in Cs
            for _, _, x, _, x_eval, y_eval, _ in search:
                assert same(x, standard["pool"][rows[0]]) and same(x_eval, standard["val"])
                assert np.array_equal(y_eval, splits["val_labels"])
        assert len(calls) == draws
        for (x, y, x_eval, y_eval, _), picked in zip(calls, rows):
            assert same(x, standard["pool"][picked]) and np.array_equal(y, splits["pool_labels"][picked])
            assert same(x_eval, standard["test"]) and np.array_equal(y_eval, splits["test_labels"])
        errors = [c[-1] for c in calls]
        assert np.std(errors) > 0
        assert out[f"probe_{kind}_error_20"] == pytest.approx(np.mean(errors))
        assert out[f"probe_{kind}_error_20_std"] == pytest.approx(np.std(errors, ddof=1))
