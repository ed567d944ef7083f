"""The MNIST / Fashion-MNIST domain classifier (ali.evaluation.classifier): network, files, training.

The training smoke test reads the real MNIST files in ../shared/data: under CI=true missing data
is a failure, not a skip.
"""

import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from ali.data import load_split
from ali.errors import AliError
from ali.evaluation.classifier import (
    accuracy,
    default_classifier_path,
    find_classifier,
    fit_classifier,
    load_classifier,
    predict,
    save_classifier,
)
from ali.evaluation.classifier_nets import DigitClassifier, random_affine


@pytest.fixture(scope="module")
def mnist_train(mnist_dir) -> tuple[torch.Tensor, torch.Tensor]:
    return load_split("mnist", mnist_dir, "train")


@pytest.fixture
def one_thread():
    # On a shared 2-core machine, two OpenMP threads contending with other jobs made these
    # small-batch steps several times slower than one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def model() -> DigitClassifier:
    torch.manual_seed(0)
    return DigitClassifier().eval()


def test_shapes(model):
    x = torch.rand(3, 1, 28, 28)
    assert model(x).shape == (3, 10) and model.features(x).shape == (3, 1024)


def test_predict_gives_probabilities_and_features_in_eval_mode(model):
    x = torch.randint(0, 256, (7, 1, 28, 28), dtype=torch.uint8)
    model.train()
    probs, feats = predict(model, x, batch=3)
    assert model.training  # restored
    assert probs.shape == (7, 10) and feats.shape == (7, 1024)
    assert torch.allclose(probs.sum(1), torch.ones(7), atol=1e-5)
    again, _ = predict(model, x.float() / 255)  # no dropout: deterministic, uint8 == float
    assert torch.allclose(probs, again, atol=1e-6)


def test_predict_refuses_wrong_shapes_and_ranges(model):
    with pytest.raises(AliError, match=r"\(N, 1, 28, 28\)"):
        predict(model, torch.rand(2, 3, 28, 28))
    with pytest.raises(AliError, match=r"\[0, 1\]"):
        predict(model, torch.rand(2, 1, 28, 28) * 2 - 1)


def test_save_load_round_trip(model, tmp_path):
    info = {"dataset": "mnist", "test_accuracy": 0.99, "seed": 3}
    path = save_classifier(model, tmp_path / "sub" / "mnist.safetensors", info)
    loaded, loaded_info = load_classifier(path, dataset="mnist")
    assert loaded_info == info and not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    with pytest.raises(AliError, match="not 'fashion-mnist'"):
        load_classifier(path, dataset="fashion-mnist")


def test_load_refuses_pickles(model, tmp_path):
    torch_file, raw_pickle = tmp_path / "model.pt", tmp_path / "model.pkl"
    torch.save(model.state_dict(), torch_file)
    raw_pickle.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    for path in (torch_file, raw_pickle):
        with pytest.raises(AliError, match="not a readable safetensors file"):
            load_classifier(path)


def test_load_refuses_corrupt_and_foreign_files(model, tmp_path):
    good = save_classifier(model, tmp_path / "good.safetensors", {"dataset": "mnist"})
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(AliError, match="not a readable safetensors file"):
        load_classifier(truncated)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(AliError, match="not an ali domain classifier"):
        load_classifier(foreign)
    wrong = tmp_path / "wrong.safetensors"
    info = json.dumps({"dataset": "mnist"})
    save_file({"w": torch.zeros(2)}, str(wrong), metadata={"format": "ali-domain-classifier", "version": "1", "info": info})
    with pytest.raises(AliError, match="do not fit"):
        load_classifier(wrong)
    with pytest.raises(AliError, match="no classifier file"):
        load_classifier(tmp_path / "absent.safetensors")


def test_default_path_and_find(tmp_path, monkeypatch):
    monkeypatch.setenv("ALI_CACHE_DIR", str(tmp_path))
    assert default_classifier_path("mnist") == tmp_path / "classifiers" / "mnist.safetensors"
    with pytest.raises(AliError, match="no classifier for mnist at .*`ali classifier train --dataset mnist`"):
        find_classifier("mnist")
    (tmp_path / "classifiers").mkdir()
    (tmp_path / "classifiers" / "mnist.safetensors").write_bytes(b"x")
    assert find_classifier("mnist") == tmp_path / "classifiers" / "mnist.safetensors"
    assert find_classifier("mnist", tmp_path / "classifiers" / "mnist.safetensors").is_file()
    monkeypatch.delenv("ALI_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_classifier_path("fashion-mnist") == tmp_path / ".cache" / "ali" / "classifiers" / "fashion-mnist.safetensors"
    with pytest.raises(AliError, match="no domain classifier for dataset 'svhn'"):
        default_classifier_path("svhn")


def test_zero_augmentation_is_the_identity_and_augmentation_is_seeded():
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(random_affine(x, torch.Generator().manual_seed(0), 0.0, 0.0), x, atol=1e-5)
    a = random_affine(x, torch.Generator().manual_seed(1), 10.0, 2.0)
    assert torch.equal(a, random_affine(x, torch.Generator().manual_seed(1), 10.0, 2.0)) and not torch.allclose(a, x)


def test_training_smoke_on_real_mnist(mnist_dir, mnist_train, one_thread):
    images, labels = mnist_train
    test_images, test_labels = load_split("mnist", mnist_dir, "test")
    state = torch.random.get_rng_state()
    model = fit_classifier(images[:256], labels[:256], seed=0, epochs=4, batch_size=64, progress=False)
    assert torch.equal(torch.random.get_rng_state(), state)  # training leaves the global RNG alone
    assert accuracy(model, test_images[:500], test_labels[:500]) > 0.4  # 16 steps; chance is 0.1


def test_training_is_reproducible(mnist_train, one_thread):
    images, labels = mnist_train
    a, b, c = (fit_classifier(images[:64], labels[:64], seed=s, epochs=1, batch_size=32, progress=False) for s in (1, 1, 2))
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not torch.equal(a.fc2.weight, c.fc2.weight)
