"""Sample-quality metrics on inputs with known answers (ali.evaluation.sample_quality)."""

import math
import sys

import numpy as np
import pytest
import scipy.linalg
import torch

from ali.errors import AliError
from ali.evaluation.evaluate import stacked_metrics
from ali.evaluation.sample_quality import (
    class_histogram,
    feature_statistics,
    frechet_distance,
    frechet_distance_from_stats,
    inception_metrics,
    inception_score,
    kl_to_uniform,
    mean_class_entropy,
    stacked_mnist_modes,
)


def one_hot(labels, k=10) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.as_tensor(labels), k).double()


def test_identical_feature_sets_have_zero_distance():
    feats = torch.randn(2000, 32, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)


def test_shifted_means_give_the_squared_shift():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(1000, 16)) @ rng.normal(size=(16, 16))  # correlated, full covariance
    shift = rng.normal(size=16)
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-9, abs=1e-9)


def test_isotropic_gaussians_have_the_closed_form():
    d, sa, sb = 8, 1.5, 0.5
    mu_a, mu_b = np.zeros(d), np.full(d, 2.0)
    value = frechet_distance_from_stats(mu_a, sa**2 * np.eye(d), mu_b, sb**2 * np.eye(d))
    assert value == pytest.approx(4.0 * d + d * (sa - sb) ** 2)


def test_matches_the_scipy_sqrtm_formula_on_full_covariances():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(500, 12)), rng.normal(size=(400, 12)) @ rng.normal(size=(12, 12)) + 1
    (mu_a, ca), (mu_b, cb) = feature_statistics(a), feature_statistics(b)
    reference = ((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * scipy.linalg.sqrtm(ca @ cb).real)
    assert frechet_distance(a, b) == pytest.approx(reference, rel=1e-8)


def test_fewer_samples_than_dimensions_stays_finite_and_zero_on_itself():
    feats = np.random.default_rng(3).normal(size=(20, 64))  # singular covariance
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)


def test_frechet_refuses_mismatched_or_tiny_sets():
    with pytest.raises(AliError, match="dimension"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(AliError, match="N >= 2"):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))


def test_confident_right_classifier_on_balanced_samples_scores_k():
    probs = one_hot(torch.arange(1000) % 10)  # every split holds each class equally
    mean, std = inception_score(probs, splits=10)
    assert mean == pytest.approx(10.0) and std == pytest.approx(0.0, abs=1e-9)


def test_one_class_or_uncertain_predictions_score_one():
    assert inception_score(one_hot(torch.full((500,), 3)))[0] == pytest.approx(1.0)
    assert inception_score(torch.full((500, 10), 0.1))[0] == pytest.approx(1.0)


def test_inception_score_of_two_balanced_classes_is_two():
    mean, _ = inception_score(one_hot(torch.arange(200) % 2, k=2), splits=5)
    assert mean == pytest.approx(2.0)


def test_inception_score_refuses_logits_and_too_few_samples():
    with pytest.raises(AliError, match="softmax"):
        inception_score(torch.randn(100, 10))
    with pytest.raises(AliError, match="at least 10 samples"):
        inception_score(one_hot([1, 2, 3]), splits=10)


def test_class_entropy_and_class_kl_split_the_inception_score():
    assert mean_class_entropy(one_hot(torch.arange(50) % 10)) == pytest.approx(0.0, abs=1e-12)
    assert mean_class_entropy(torch.full((7, 10), 0.1)) == pytest.approx(math.log(10))
    probs = torch.softmax(3 * torch.randn(400, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0)), 1)
    marginal_kl = kl_to_uniform(probs.mean(0))
    score, _ = inception_score(probs, splits=1)
    assert math.log(score) == pytest.approx(math.log(10) - marginal_kl - mean_class_entropy(probs), abs=1e-9)


def test_class_histogram_from_labels_and_from_probabilities():
    labels = torch.tensor([0, 1, 1, 2, 2, 2])
    assert class_histogram(labels, 4).tolist() == [1, 2, 3, 0]
    assert class_histogram(one_hot(labels, 4), 4).tolist() == [1, 2, 3, 0]
    with pytest.raises(AliError, match="0..3"):
        class_histogram(torch.tensor([4]), 4)


def test_kl_to_uniform_known_values():
    assert kl_to_uniform(np.full(10, 7)) == pytest.approx(0.0, abs=1e-12)
    assert kl_to_uniform(np.eye(10)[3] * 50) == pytest.approx(math.log(10))
    assert kl_to_uniform([2, 2, 0, 0]) == pytest.approx(math.log(2))  # counts and frequencies alike
    with pytest.raises(AliError):
        kl_to_uniform(np.zeros(4))


def test_stacked_mnist_modes_all_covered_uniformly():
    modes = torch.arange(1000)
    digits = [modes // 100, modes // 10 % 10, modes % 10]
    result = stacked_mnist_modes([one_hot(d) for d in digits])
    assert result["modes_covered"] == 1000 and result["kl_to_uniform"] == pytest.approx(0.0, abs=1e-12)


def test_stacked_mnist_kl_splits_into_channel_imbalance_and_dependence():
    # Three copies of one uniform digit: every channel balanced, the channels fully dependent.
    copies = torch.arange(1000) % 10
    result = stacked_mnist_modes([one_hot(copies)] * 3)
    assert result["kl_channels"] == pytest.approx(0.0, abs=1e-12)
    assert result["kl_dependence"] == pytest.approx(math.log(100)) == result["kl_to_uniform"]
    # Independent channels, the first always 0: all of the KL is that channel's imbalance.
    modes = torch.arange(100)
    result = stacked_mnist_modes([one_hot(torch.zeros(100, dtype=torch.long)), one_hot(modes // 10), one_hot(modes % 10)])
    assert result["kl_channels"] == pytest.approx(math.log(10)) and result["kl_dependence"] == pytest.approx(0.0, abs=1e-12)
    # Two unbalanced channels (one digit; two digits half and half), independent of the third:
    # the channel part is the sum of both channels' KLs, ln 10 + ln 5, under the metrics.json names.
    i = torch.arange(200)
    channels = [one_hot(torch.zeros(200, dtype=torch.long)), one_hot(i // 100), one_hot(i % 10)]
    figures = stacked_metrics(channels)
    assert figures["stacked_kl_channels"] == pytest.approx(math.log(10) + math.log(5))
    assert figures["stacked_kl_dependence"] == pytest.approx(0.0, abs=1e-12)
    assert figures["stacked_kl"] == pytest.approx(math.log(50)) and figures["stacked_modes"] == 20


def test_stacked_mnist_modes_collapsed_and_channel_order():
    n = 300
    channels = [one_hot(torch.full((n,), d)) for d in (4, 7, 2)]
    result = stacked_mnist_modes(channels)
    assert result["modes_covered"] == 1 and result["kl_to_uniform"] == pytest.approx(math.log(1000))
    # The first channel is the hundreds digit: 472, and 274 when reversed, are different modes.
    both = [torch.cat([a, b]) for a, b in zip(channels, channels[::-1])]
    assert stacked_mnist_modes(both)["modes_covered"] == 2
    with pytest.raises(AliError, match="3 channels"):
        stacked_mnist_modes(channels[:2])


def test_inception_metrics_refuse_without_weights_or_package(tmp_path, monkeypatch):
    images = torch.zeros(20, 3, 32, 32, dtype=torch.uint8)
    with pytest.raises(AliError, match="torch-fidelity .*--inception-weights"):
        inception_metrics(images, images, None)
    with pytest.raises(AliError, match="not a file"):
        inception_metrics(images, images, tmp_path / "missing.pth")
    weights = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    weights.write_bytes(b"weights")
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # makes `import torch_fidelity` fail
    with pytest.raises(AliError, match=r"pip install 'ali\[inception\]'"):
        inception_metrics(images, images, weights)
