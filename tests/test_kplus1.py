"""K+1 semi-supervised ALI (ali.methods.ali_kplus1): its labelled set, its step, its classifier,
and the split its error is scored on.

Everything runs the small `mnist` net (the `svhn` net where batch norm inside D matters) on
synthetic images whose class is a bright bar at its own place (tests/data_writers.bar_images), or
on format-exact CIFAR-10 / SVHN files, so no dataset download is needed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_writers import bar_images, write_cifar_arrays, write_idx, write_svhn
from torch import nn

from ali.config import make_config
from ali.data import load_image_dataset
from ali.data.dataset import Dataset
from ali.data.specs import DATASETS
from ali.errors import AliError
from ali.evaluation.evaluate import evaluate_model
from ali.methods import ali_kplus1
from ali.methods.ali_kplus1 import class_predictions, labelled_set, resolved_label_seed
from ali.methods.base import Batch
from ali.nets.architectures import ARCHITECTURES
from ali.nets.model import Model
from ali.presets import PRESETS
from ali.training.build import build_model, build_step
from ali.training.hardware import make_runtime

K = 10
STEPS = 40


def _run(**values) -> tuple[Model, dict, object]:
    config = make_config({**PRESETS["mnist-kplus1"], "batch_size": 16, "precision": "fp32", **values})
    torch.manual_seed(0)
    model, optimizers = build_model(config)
    return model, optimizers, config


def _bars(labels: torch.Tensor, seed: int, shape: tuple[int, int, int] = (1, 28, 28)) -> torch.Tensor:
    return torch.from_numpy(bar_images(labels.numpy(), shape, seed))


def _step(config, model, optimizers, data: Dataset):
    return build_step(config, model, optimizers, make_runtime("fp32", torch.device("cpu")), data)


def test_the_labelled_term_teaches_d_the_labels():
    """STEPS steps on 2 labelled bars per class: D's classes must agree with the labels far above
    chance (0.1; 0.9 to 1.0 here over seeds 0-2). A step that fed the cross-entropy other labels
    would teach D those instead."""
    labels = torch.arange(200) % K
    data = Dataset("bars", _bars(labels, 0), _bars(labels[:50], 1), labels=labels, heldout_labels=labels[:50])
    model, optimizers, config = _run(labels_per_class=2, lr=2e-3, supervised_weight=10.0, seed=0)
    step = _step(config, model, optimizers, data)
    picks = torch.randint(0, len(labels), (STEPS, 16), generator=torch.Generator().manual_seed(0))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: a second thread only waits on the busy machine
    try:
        for index, rows in enumerate(picks):
            step(Batch(data.to_float(data.train[rows])), index)
    finally:
        torch.set_num_threads(threads)
    x_l, y_l = labelled_set(data, 2, 0)
    assert (class_predictions(model, data.to_float(x_l)) == y_l).float().mean() >= 0.7
    assert (class_predictions(model, data.to_float(data.heldout)) == data.heldout_labels).float().mean() >= 0.7


class _CodeEncoder(nn.Module):
    """mu(x) = one-hot of pixel 0's value (0..9); log_sigma = 5, so a sampled code is noise."""

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = nn.functional.one_hot((x.flatten(1)[:, 0] * 255).round().long() % K, K).float()
        return mu, torch.full_like(mu, 5.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, log_sigma = self.moments(x)
        return mu + log_sigma.exp() * torch.randn_like(mu)


class _ShiftDiscriminator(nn.Module):
    """Class logits with their maximum at (argmax z + pixel 1's value) mod K and their minimum
    at the class after it; records every image it classifies."""

    def __init__(self):
        super().__init__()
        self.seen: list[torch.Tensor] = []
        self.device_marker = nn.Parameter(torch.zeros(1))  # evaluation runs where the parameters are

    def class_logits(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        best = (z.argmax(1) + (x.flatten(1)[:, 1] * 255).round().long()) % K
        rows = torch.arange(len(x))
        logits = torch.zeros(len(x), K)
        logits[rows, best], logits[rows, (best + 1) % K] = 3.0, -3.0
        return logits


def _stub_model(arch: str = "mnist") -> Model:
    config = make_config({**PRESETS["mnist-kplus1"], "labels_per_class": 3})
    nets = {"encoder": _CodeEncoder(), "discriminator": _ShiftDiscriminator()}
    return Model(nets, ARCHITECTURES[arch], "ali-kplus1", config)


def _marked(a: list[int], b: list[int], shape: tuple[int, ...] = (1, 4, 4)) -> torch.Tensor:
    """Float images whose pixels 0 and 1 hold a and b (in units of 1/255)."""
    x = torch.zeros(len(a), *shape)
    x.view(len(a), -1)[:, 0], x.view(len(a), -1)[:, 1] = torch.tensor(a) / 255, torch.tensor(b) / 255
    return x


def test_class_predictions_are_the_argmax_on_x_and_the_encoder_mean():
    a, b = [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 3], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9]
    model = _stub_model()
    model.train()
    predicted = class_predictions(model, _marked(a, b), batch=4)
    assert predicted.tolist() == [1, 3, 5, 7, 9, 1, 3, 5, 7, 9, 2]  # (a + b) mod 10
    assert model.training  # the caller's mode comes back


def test_class_predictions_are_deterministic_in_evaluation_mode():
    """A real untrained K+1 model, batch-norm running averages far from a batch's statistics:
    every call, in any batch size, gives each image the same class."""
    model, _, _ = _run(seed=3)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-2, 2)
            m.running_var.uniform_(0.2, 3)
    model.train()
    x = torch.rand(300, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    first = class_predictions(model, x)
    assert torch.equal(class_predictions(model, x), first)
    assert torch.equal(class_predictions(model, x, batch=7), first)
    assert torch.equal(torch.cat([class_predictions(model, x[i : i + 1]) for i in range(10)]), first[:10])


def _marked_uint8(labels: np.ndarray, shift: int, seed: int, shape: tuple[int, int, int] = (3, 32, 32)) -> np.ndarray:
    """bar images whose pixel 0 holds (label + shift) mod 10 and pixel 1 holds 0: what the stub
    model above classifies as (label + shift) mod 10."""
    images = bar_images(labels, shape, seed)
    images.reshape(len(images), -1)[:, 0] = (labels + shift) % K
    images.reshape(len(images), -1)[:, 1] = 0
    return images


def test_kplus1_error_is_scored_on_the_cifar10_test_batch(tmp_path):
    """Training images are marked one class off, test_batch images with their own class: the
    error is 0 only on test_batch, and every one of its images is scored."""
    train_labels, test_labels = np.arange(50) % K, np.array([4, 0, 7, 7, 2, 9, 1, 3, 5, 6, 8, 0])
    write_cifar_arrays(
        tmp_path / "cifar-10-batches-py",
        _marked_uint8(train_labels, 1, 0),
        train_labels,
        _marked_uint8(test_labels, 0, 1),
        test_labels,
    )
    dataset = load_image_dataset("cifar10", tmp_path)
    model = _stub_model("cifar10")
    assert evaluate_model(model, dataset, tmp_path, ("kplus1",), progress=False) == {"kplus1_error_30": 0.0}
    seen = torch.cat(model["discriminator"].seen)
    assert torch.equal((seen * 255).round().to(torch.uint8), torch.from_numpy(_marked_uint8(test_labels, 0, 1)))


def test_kplus1_error_is_scored_on_the_svhn_test_mat(tmp_path):
    """extra (what ALI trains on) and train (the labelled pool) are marked one class off; only
    the 26,032-image test split's stand-in here gives error 0."""
    labels = {"extra": np.arange(30) % K, "train": np.arange(20) % K, "test": np.array([5, 5, 0, 1, 9, 3, 8])}
    written = {split: (_marked_uint8(y, 0 if split == "test" else 1, i), y) for i, (split, y) in enumerate(labels.items())}
    write_svhn(tmp_path / "svhn", written)
    dataset = load_image_dataset("svhn", tmp_path)
    model = _stub_model("svhn")
    assert evaluate_model(model, dataset, tmp_path, ("kplus1",), progress=False) == {"kplus1_error_30": 0.0}
    assert sum(len(x) for x in model["discriminator"].seen) == 7
    # the 1000-label protocol's labelled examples: from the official train split, not extra
    images, drawn = labelled_set(dataset, 2, seed=0)
    rows = _rows_in(images, written["train"][0])
    assert len(set(rows)) == 20 and labels["train"][rows].tolist() == drawn.tolist()


def test_the_mnist_recipe_draws_its_labels_from_train_by_the_seed_and_is_scored_on_t10k(tmp_path):
    """`mnist-kplus1-fm` on format-exact MNIST files: its 100 labels are 10 a class from
    train-images, a draw that follows the run's seed; its error is scored on every t10k image.
    Training images are marked one class off, so only t10k gives error 0."""
    config = make_config(PRESETS["mnist-kplus1-fm"])
    train_labels, test_labels = np.arange(300) % K, np.array([3, 8, 0, 0, 6, 1, 9, 2, 7, 5, 4])
    files = {"train": (_marked_uint8(train_labels, 1, 0, (1, 28, 28)), train_labels)}
    files["t10k"] = (_marked_uint8(test_labels, 0, 1, (1, 28, 28)), test_labels)
    for prefix, (images, labels) in files.items():
        write_idx(tmp_path / "mnist" / f"{prefix}-images-idx3-ubyte.gz", images[:, 0])
        write_idx(tmp_path / "mnist" / f"{prefix}-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    dataset = load_image_dataset("mnist", tmp_path)
    nets = {"encoder": _CodeEncoder(), "discriminator": _ShiftDiscriminator()}
    model = Model(nets, ARCHITECTURES["mnist"], "ali-kplus1", config)
    assert evaluate_model(model, dataset, tmp_path, ("kplus1",), progress=False) == {"kplus1_error_100": 0.0}
    seen = torch.cat(model["discriminator"].seen)
    assert torch.equal((seen * 255).round().to(torch.uint8), torch.from_numpy(files["t10k"][0]))
    draws = []
    for seed in (0, 1):
        label_seed = resolved_label_seed({"label_seed": config.label_seed}, seed)
        images, labels = labelled_set(dataset, config.labels_per_class, label_seed)
        rows = _rows_in(images, files["train"][0])
        assert torch.bincount(labels, minlength=K).tolist() == [10] * K
        assert len(set(rows)) == 100 and train_labels[rows].tolist() == labels.tolist()
        draws.append(set(rows))
    assert draws[0] != draws[1]


def _rows_in(images: torch.Tensor, array: np.ndarray) -> list[int]:
    """Where each image is in array (N, C, H, W); AssertionError for one that is not there."""
    rows = [np.flatnonzero((array == image.numpy()).all(axis=(1, 2, 3))) for image in images]
    assert all(len(r) for r in rows), "an image from outside the array"
    return [int(r[0]) for r in rows]


def test_cifar10_labelled_set_is_seeded_class_balanced_and_from_the_train_batches(tmp_path):
    rng = np.random.default_rng(0)
    train_labels = rng.permutation(np.arange(100) % K)
    train = rng.integers(0, 200, (100, 3, 32, 32), dtype=np.uint8)
    test = np.full((20, 3, 32, 32), 255, dtype=np.uint8)  # no training image looks like these
    write_cifar_arrays(tmp_path / "cifar-10-batches-py", train, train_labels, test, np.arange(20) % K)
    dataset = load_image_dataset("cifar10", tmp_path)
    images, labels = labelled_set(dataset, 4, seed=7)
    # The real files' training split, the labelled pool here, is data_batch_1..5[0:45000] (the
    # SVM's [45000:50000] validates); these 100 rows all lie inside it.
    assert DATASETS["cifar10"].train_rows == DATASETS["cifar10"].svm_split[0] == 45_000
    assert torch.bincount(labels, minlength=K).tolist() == [4] * K
    rows = _rows_in(images, train)
    assert len(set(rows)) == 40 and train_labels[rows].tolist() == labels.tolist()  # train rows, their own labels
    again, _ = labelled_set(dataset, 4, seed=7)
    other, _ = labelled_set(dataset, 4, seed=8)
    assert torch.equal(again, images) and not torch.equal(other, images)


def test_the_labelled_set_follows_the_run_seed_unless_label_seed_is_set(monkeypatch):
    drawn: list[int] = []
    real = ali_kplus1.labelled_set
    monkeypatch.setattr(
        ali_kplus1, "labelled_set", lambda data, per_class, seed: drawn.append(seed) or real(data, per_class, seed)
    )
    labels = torch.arange(100) % K
    data = Dataset("bars", _bars(labels, 0), _bars(labels[:10], 1), labels=labels)
    for values in ({"seed": 0}, {"seed": 1}, {"seed": 0, "label_seed": 5}, {"seed": 1, "label_seed": 5}):
        model, optimizers, config = _run(**values)
        _step(config, model, optimizers, data)
    assert drawn == [0, 1, 5, 5]


def _buffers_after_one_step(labelled_value: int) -> dict[str, torch.Tensor]:
    """The svhn net's batch-norm running averages after one step on the same unlabelled batch,
    with every labelled image set to labelled_value."""
    config = make_config({**PRESETS["svhn-kplus1"], "labels_per_class": 1, "batch_size": 4, "precision": "fp32", "seed": 0})
    torch.manual_seed(0)
    model, optimizers = build_model(config)
    labels = torch.arange(K)
    data = Dataset(
        "flat", torch.full((K, 3, 32, 32), labelled_value, dtype=torch.uint8), torch.zeros(1, 3, 32, 32), labels=labels
    )
    step = _step(config, model, optimizers, data)
    torch.manual_seed(1)
    step(Batch(torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))), 0)
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k}


def test_the_labelled_pass_leaves_batch_norm_running_averages_alone():
    """Encoder and D (the svhn D has batch norm) end the step with the same running averages
    whatever the labelled images are: only the unlabelled batch moves them."""
    dark, bright = _buffers_after_one_step(0), _buffers_after_one_step(255)
    assert any(k.startswith("discriminator.") for k in dark) and any(k.startswith("encoder.") for k in dark)
    for name, value in dark.items():
        torch.testing.assert_close(bright[name], value, rtol=0, atol=0, msg=name)


def test_label_seed_takes_the_run_seed_marker_and_no_other_negative():
    assert make_config({**PRESETS["mnist-kplus1"]}).label_seed == ali_kplus1.RUN_SEED == -1
    with pytest.raises(AliError, match="label_seed"):
        make_config({**PRESETS["mnist-kplus1"], "label_seed": -2})


def test_an_untrained_discriminator_says_one_half():
    """Known answer: equal class logits l give a = logsumexp(l) - ln K = l, so logits of 0 give
    D(real) = 1/2 whatever K, the point ALI's game starts from."""
    for k in (2, 10):
        model, _, _ = _run(num_classes=k)
        d = model["discriminator"]
        d.class_logits = lambda x, z, k=k: torch.zeros(x.shape[0], k)
        assert torch.allclose(d(torch.rand(3, 1, 28, 28), torch.randn(3, 32)), torch.zeros(3), atol=1e-6)
        d.class_logits = lambda x, z, k=k: torch.full((x.shape[0], k), 1.5)
        assert torch.allclose(d(torch.rand(3, 1, 28, 28), torch.randn(3, 32)), torch.full((3,), 1.5), atol=1e-6)
