"""The feature probes (ali.evaluation.probes): known answers on features whose class is plain."""

from __future__ import annotations

import numpy as np
import pytest

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
