"""The L2-SVM protocol (ali.evaluation.semisupervised): features, labelled subsets, SVMs, splits."""

import types

import numpy as np
import pytest
import torch
from sklearn.svm import LinearSVC
from torch import nn

from ali.data.batches import balanced_subset
from ali.data.specs import DATASETS
from ali.errors import AliError
from ali.evaluation.semisupervised import _Labelled, _SvmData, encoder_features, feature_blocks, svm_protocol, svm_splits


class TinyEncoder(nn.Module):
    """The encoder contract: `net` (conv / batch norm / LeakyReLU) and `moments`."""

    def __init__(self, latent: int = 3):
        super().__init__()
        layers = []
        for c_in, c_out in [(1, 4), (4, 4), (4, 6), (6, 8)]:
            layers += [nn.Conv2d(c_in, c_out, 3, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.1, inplace=True)]
        self.net = nn.Sequential(*layers, nn.Conv2d(8, 2 * latent, 2))

    def moments(self, x):
        return self.net(x).flatten(1).chunk(2, dim=1)


def test_encoder_features_are_mu_then_the_last_three_batch_norm_outputs():
    torch.manual_seed(0)
    enc = TinyEncoder()
    for bn in (m for m in enc.net if isinstance(m, nn.BatchNorm2d)):  # running stats that matter
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    enc.train()
    x = torch.rand(7, 1, 10, 10)
    feats = encoder_features(enc, x, batch=3)
    assert enc.training and all(not m._forward_hooks for m in enc.net)  # mode restored, hooks gone
    enc.eval()
    with torch.no_grad():
        outs, h = [], x
        for m in enc.net:
            h = m(h)
            if isinstance(m, nn.BatchNorm2d):
                outs.append(h.flatten(1).clone())  # before the in-place LeakyReLU
        mu = h.flatten(1)[:, :3]
    expected = torch.cat([mu, *outs[-3:]], dim=1)
    assert feats.shape == (7, 3 + 4 * 6 * 6 + 6 * 4 * 4 + 8 * 2 * 2)
    assert torch.allclose(feats, expected, atol=1e-6)


def test_feature_blocks_name_where_each_layer_lies_in_the_features():
    torch.manual_seed(0)
    enc = TinyEncoder()
    enc.train()
    x = torch.rand(5, 1, 10, 10)
    feats = encoder_features(enc, x)
    blocks = feature_blocks(enc, x)
    assert list(blocks) == ["mu", "bn2", "bn3", "bn4"]  # the encoder's 4 batch norms, the last 3 kept
    assert [b.stop - b.start for b in blocks.values()] == [3, 4 * 6 * 6, 6 * 4 * 4, 8 * 2 * 2]
    assert blocks["bn4"].stop == feats.shape[1] and enc.training and all(not m._forward_hooks for m in enc.net)
    enc.eval()
    with torch.no_grad():
        last_norm = enc.net[:-2](x).flatten(1)  # up to the last batch norm, before its activation
    assert torch.allclose(feats[:, blocks["bn4"]], last_norm, atol=1e-6)
    assert torch.allclose(feats[:, blocks["mu"]], enc.moments(x)[0], atol=1e-6)


def test_encoder_features_takes_uint8_and_checks_the_encoder():
    enc = TinyEncoder()
    x8 = torch.randint(0, 256, (4, 1, 10, 10), dtype=torch.uint8)
    assert torch.allclose(encoder_features(enc, x8), encoder_features(enc, x8.float() / 255))
    with pytest.raises(AliError, match="last 5 batch-norm layers but the encoder has 4"):
        encoder_features(enc, x8, hidden_layers=5)
    with pytest.raises(AliError, match="Gaussian encoder"):
        encoder_features(nn.Linear(2, 2), x8)


def test_encoder_features_of_the_project_mnist_encoder():
    from ali.nets.architectures import ARCHITECTURES
    from ali.nets.networks import GaussianEncoder

    arch = ARCHITECTURES["mnist"]
    feats = encoder_features(GaussianEncoder(arch.encoder, arch.x_shape), torch.rand(2, 1, 28, 28))
    assert feats.shape == (2, 32 + 32 * 13 * 13 + 64 * 5 * 5 + 256)


def test_balanced_subset_is_balanced_seeded_and_avoids_excluded():
    labels = np.repeat(np.arange(10), 50)
    np.random.default_rng(0).shuffle(labels)
    a = balanced_subset(labels, 7, np.random.default_rng(5))
    assert np.bincount(labels[a]).tolist() == [7] * 10 and len(np.unique(a)) == 70
    assert np.array_equal(a, balanced_subset(labels, 7, np.random.default_rng(5)))
    assert np.array_equal(a, balanced_subset(torch.as_tensor(labels), 7, 5))
    assert not np.array_equal(a, balanced_subset(labels, 7, np.random.default_rng(6)))
    excluded = np.arange(0, 500, 2)
    b = balanced_subset(labels, 7, np.random.default_rng(5), exclude=excluded)
    assert not set(b.tolist()) & set(excluded.tolist())
    with pytest.raises(AliError, match="fewer than the 60 per class"):
        balanced_subset(labels, 60, 0)


def separable(n_per_class: int, dim: int, seed: int, k: int = 10):
    """Classes far apart along their own axis: linearly separable with a wide margin."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n_per_class)
    x = rng.normal(scale=0.1, size=(len(y), dim)).astype(np.float32)
    x[np.arange(len(y)), y] += 5.0
    return x, y


@pytest.mark.parametrize("dim", [20, 300])  # more and fewer labelled examples than dimensions
def test_protocol_on_separable_features_has_no_error(dim):
    pool, val, test = separable(30, dim, 0), separable(20, dim, 1), separable(20, dim, 2)
    result = svm_protocol(*pool, *val, *test, per_class=5, n_val_svms=2, n_test_svms=3, Cs=[1e-6, 1.0, 100.0])
    assert result["test_error_mean"] == 0.0 and result["val_error"] == 0.0
    assert result["best_C"] == 1e-6  # every C separates these; ties go to the smallest, as the authors'
    assert result["n_labels"] == 50 and len(result["test_errors"]) == 3


def test_protocol_is_seeded():
    pool, val, test = (separable(30, 40, s) for s in range(3))
    noisy = [(x + np.random.default_rng(9).normal(scale=3, size=x.shape).astype(np.float32), y) for x, y in (pool, val, test)]
    runs = [
        svm_protocol(*noisy[0], *noisy[1], *noisy[2], per_class=3, n_val_svms=2, n_test_svms=4, Cs=[0.01, 1.0], seed=s)
        for s in (0, 0, 1)
    ]
    assert runs[0]["test_errors"] == runs[1]["test_errors"] and runs[0]["test_errors"] != runs[2]["test_errors"]
    for run in runs:  # the spread over the test SVMs' draws is the sample std, as every figure's
        assert np.std(run["test_errors"]) > 0
        assert run["test_error_std"] == pytest.approx(np.std(run["test_errors"], ddof=1))


@pytest.mark.parametrize("duplicates", [0, 15])  # full-rank rows, and rows of rank 45
def test_the_span_basis_gives_the_same_svm_as_raw_features(duplicates):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(60, 400)).astype(np.float32)
    x[:duplicates] = x[30 : 30 + duplicates]
    y = rng.integers(0, 4, size=60)
    y[:duplicates] = y[30 : 30 + duplicates]
    sample = _Labelled(_SvmData(x, y, "pool"), np.arange(60))
    assert sample.z.shape == (60, 60 - duplicates)
    svm = LinearSVC(C=0.01, dual=True, random_state=0).fit(x.astype(np.float64), y)
    reduced = LinearSVC(C=0.01, dual=True, random_state=0).fit(sample.z, y)
    probe = rng.normal(size=(200, 400)).astype(np.float32)
    raw_scores = svm.decision_function(probe)
    tol = 1e-3 * np.abs(raw_scores).max()
    assert np.allclose(raw_scores, probe @ sample.weights(reduced.coef_) + reduced.intercept_, atol=tol)
    assert np.allclose(raw_scores, sample.project(probe) @ reduced.coef_.T + reduced.intercept_, atol=tol)


def test_protocol_refuses_bad_inputs():
    x, y = separable(5, 12, 0)
    with pytest.raises(AliError, match="feature dimensions differ"):
        svm_protocol(x, y, x[:, :4], y, x, y, per_class=2)
    with pytest.raises(AliError, match="positive"):
        svm_protocol(x, y, x, y, x, y, per_class=2, Cs=[])
    with pytest.raises(AliError, match="NaN"):
        svm_protocol(np.full_like(x, np.nan), y, x, y, x, y, per_class=2)


def test_mnist_splits_are_the_protocol_ranges_and_disjoint():
    train = torch.arange(60_000).view(-1, 1)  # each row's feature is its index in train
    train_labels, test, test_labels = (
        torch.arange(60_000) % 10,
        torch.arange(10_000).view(-1, 1) + 10**6,
        torch.arange(10_000) % 10,
    )
    splits = svm_splits(train, train_labels, test, test_labels, DATASETS["mnist"].svm_split, "mnist")
    pool_ids, val_ids = splits["pool_feats"].ravel(), splits["val_feats"].ravel()
    assert pool_ids.tolist() == list(range(50_000)) and val_ids.tolist() == list(range(50_000, 60_000))
    labelled = pool_ids[balanced_subset(splits["pool_labels"], 10, 0)]
    assert not set(labelled.tolist()) & (set(val_ids.tolist()) | set(splits["test_feats"].ravel().tolist()))
    with pytest.raises(AliError, match="60000 rows"):
        svm_splits(train[:59_000], train_labels[:59_000], test, test_labels, DATASETS["fashion-mnist"].svm_split, "x")


def test_svhn_splits_are_the_authors():
    train, labels = torch.arange(73_257).view(-1, 1), torch.arange(73_257) % 10  # each row's feature is its index
    test = torch.arange(26_032).view(-1, 1) + 10**6
    splits = svm_splits(train, labels, test, torch.arange(26_032) % 10, DATASETS["svhn"].svm_split, "svhn")
    assert splits["pool_feats"].ravel().tolist() == list(range(63_257))
    assert splits["val_feats"].ravel().tolist() == list(range(63_257, 73_257))
    assert splits["test_feats"].ravel().tolist() == list(range(10**6, 10**6 + 26_032))
    with pytest.raises(AliError, match="73257 rows"):
        svm_splits(train[:73_000], labels[:73_000], test, torch.arange(26_032) % 10, DATASETS["svhn"].svm_split, "svhn")


def test_cifar10_splits_pool_the_training_images_and_validate_on_the_rest():
    train, labels = torch.arange(50_000).view(-1, 1), torch.arange(50_000) % 10  # each row's feature is its index
    test = torch.arange(10_000).view(-1, 1) + 10**6
    splits = svm_splits(train, labels, test, torch.arange(10_000) % 10, DATASETS["cifar10"].svm_split, "cifar10")
    assert splits["pool_feats"].ravel().tolist() == list(range(45_000))
    assert splits["val_feats"].ravel().tolist() == list(range(45_000, 50_000))
    assert splits["test_feats"].ravel().tolist() == list(range(10**6, 10**6 + 10_000))
    for bounds in (None, (0, 10), (50_000, 45_000)):  # no protocol, or ranges that are not pool then validation
        with pytest.raises(AliError, match="pool end < validation end"):
            svm_splits(train, labels, test, torch.arange(10_000) % 10, bounds, "x")
    with pytest.raises(AliError, match="50000 rows"):
        svm_splits(train[:45_000], labels[:45_000], test, torch.arange(10_000) % 10, DATASETS["cifar10"].svm_split, "cifar10")


def test_cifar10_svm_metrics_report_the_papers_label_counts_over_ten_draws(monkeypatch):
    """svm_metrics on CIFAR-10: 1,000 / 2,000 / 4,000 / 8,000 labels, 10 test SVMs each, on the
    training batches' features and test_batch's."""
    from ali.evaluation import evaluate

    read = []
    monkeypatch.setattr(
        evaluate,
        "load_split",
        lambda name, _dir, split: read.append((name, split)) or (torch.zeros(1), torch.arange(60_000) % 10),
    )
    monkeypatch.setattr(evaluate, "encoder_features", lambda _enc, _x: torch.zeros(1))
    monkeypatch.setattr(evaluate, "svm_splits", lambda *a: {"marker": True})
    calls = []

    def protocol(**kwargs):
        calls.append(kwargs)
        n = kwargs["per_class"] * 10
        return {"n_labels": n, "test_error_mean": 0.5, "test_error_std": 0.1, "best_C": 1.0}

    monkeypatch.setattr(evaluate, "svm_protocol", protocol)
    out = evaluate.svm_metrics({"encoder": None}, "cifar10", "unused")
    assert read == [("cifar10", "train"), ("cifar10", "test")]
    assert [c["per_class"] for c in calls] == [100, 200, 400, 800]
    assert all(c["n_test_svms"] == 10 and c["marker"] and len(c["Cs"]) == 15 for c in calls)
    assert set(out) >= {"svm_error_1000", "svm_error_2000", "svm_error_4000", "svm_error_8000"}


def test_evaluate_takes_the_labelled_set_sizes_it_is_given_and_refuses_what_it_cannot_draw(monkeypatch):
    """`ali evaluate --labels 1000,4000` runs the protocol at 100 and 400 per class only; sizes a
    class-balanced draw cannot make, or --labels without an svm or probes group, are refused."""
    from ali.evaluation import evaluate

    asked, seeds = [], []

    def svm_metrics(_m, _d, _dir, per_class, svm, probes, seed):
        asked.append(per_class)
        seeds.append(seed)
        return {}

    monkeypatch.setattr(evaluate, "svm_metrics", svm_metrics)
    monkeypatch.setattr(evaluate, "model_device", lambda _m: torch.device("cpu"))
    model = types.SimpleNamespace(eval=lambda: None, config=types.SimpleNamespace(seed=4))
    dataset = types.SimpleNamespace(
        name="cifar10", heldout=torch.zeros(2, 3, 4, 4), heldout_labels=None, heldout_anomalous=None, to_float=lambda t: t
    )
    monkeypatch.setattr(evaluate, "heldout_and_sample_conditions", lambda *a: (None, None))
    evaluate.evaluate_model(model, dataset, "unused", ("svm",), svm_labels=(1000, 4000))
    evaluate.evaluate_model(model, dataset, "unused", ("probes",))
    assert asked == [(100, 400), None]
    assert seeds == [4, 4]  # the run's seed: its labelled draws are its own
    for bad in ((1005,), (5,), (0,), ()):
        with pytest.raises(AliError, match="multiples of its 10 classes"):
            evaluate.evaluate_model(model, dataset, "unused", ("svm",), svm_labels=bad)
    with pytest.raises(AliError, match="add one to --metrics"):
        evaluate.evaluate_model(model, dataset, "unused", ("samples",), svm_labels=(1000,))


def test_the_probes_group_probes_each_encoder_layer_of_the_features(monkeypatch):
    """svm_metrics(probes=True) hands the probes the encoder's feature blocks (which layers carry
    the class); the authors' protocol alone does not compute them."""
    from ali.evaluation import evaluate

    monkeypatch.setattr(evaluate, "load_split", lambda *_a: (torch.zeros(1), torch.arange(60_000) % 10))
    monkeypatch.setattr(evaluate, "encoder_features", lambda _enc, _x: torch.zeros(1))
    monkeypatch.setattr(evaluate, "svm_splits", lambda *a: {"marker": True})
    blocks = {"mu": slice(0, 2), "bn3": slice(2, 9)}
    monkeypatch.setattr(evaluate, "feature_blocks", lambda _enc, _x: blocks)
    handed = []
    monkeypatch.setattr(
        evaluate, "probe_errors", lambda splits, per_class, blocks, seed: handed.append((per_class, blocks, seed)) or {}
    )
    evaluate.svm_metrics({"encoder": None}, "mnist", "unused", (10,), svm=False, probes=True, seed=3)
    assert handed == [(10, blocks, 3)]
    monkeypatch.setattr(evaluate, "feature_blocks", lambda *_a: pytest.fail("blocks computed without the probes"))
    protocol_seeds = []

    def protocol(**kw):
        protocol_seeds.append(kw["seed"])
        return {"n_labels": 100, "test_error_mean": 0.1, "test_error_std": 0, "best_C": 1}

    monkeypatch.setattr(evaluate, "svm_protocol", protocol)
    evaluate.svm_metrics({"encoder": None}, "mnist", "unused", (10,), seed=5)
    assert protocol_seeds == [5]


def test_more_labels_per_class_than_the_pool_holds_are_refused_before_any_feature(monkeypatch):
    from ali.evaluation import evaluate

    labels = torch.arange(60_000) % 10
    labels[:50_000][labels[:50_000] == 3] = 4  # the MNIST pool (train[0:50000]) keeps 4 threes...
    labels[3] = 3
    labels[13], labels[23], labels[33] = 3, 3, 3
    monkeypatch.setattr(evaluate, "load_split", lambda *_a: (torch.zeros(1), labels))
    monkeypatch.setattr(evaluate, "encoder_features", lambda *_a: pytest.fail("features computed before the check"))
    with pytest.raises(
        AliError, match="5 labelled examples per class asked, but the labelled pool \\(train\\[0:50000\\]\\) holds 4"
    ):
        evaluate.svm_metrics({"encoder": None}, "mnist", "unused", (2, 5))
