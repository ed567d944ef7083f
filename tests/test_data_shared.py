"""The loaders on the real files in ../shared/data (MNIST, Fashion-MNIST, CIFAR-10, the CelebA and
Tiny-ImageNet samples). Under CI=true missing data is a failure, not a skip."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from data_writers import idx_bytes

from ali.data import load_image_dataset
from ali.data.cifar import safe_unpickle
from tests.shared_data import require_shared


@pytest.fixture
def shared_data() -> Path:
    return require_shared("mnist", "fashion-mnist", "celeba/img_align_celeba", "tiny-imagenet-200/train", "cifar-10-batches-py")


def test_mnist_real(shared_data):
    ds = load_image_dataset("mnist", shared_data)
    assert ds.train.shape == (60000, 1, 28, 28) and ds.heldout.shape == (10000, 1, 28, 28)
    assert ds.labels[:5].tolist() == [5, 0, 4, 1, 9] and torch.bincount(ds.heldout_labels).tolist()[0] == 980


def test_fashion_mnist_real_matches_published_raw_md5(shared_data):
    ds = load_image_dataset("fashion-mnist", shared_data)
    assert ds.train.shape == (60000, 1, 28, 28) and ds.heldout.shape == (10000, 1, 28, 28)
    # SOURCES.md: md5 of the uncompressed IDX files; re-serialising what we parsed must give it back
    assert hashlib.md5(idx_bytes(ds.train[:, 0].numpy())).hexdigest() == "f4a8712d7a061bf5bd6d2ca38dc4d50a"
    assert hashlib.md5(idx_bytes(ds.heldout[:, 0].numpy())).hexdigest() == "8181f5470baa50b63fa0f6fddb340f0a"
    assert torch.bincount(ds.labels).tolist() == [6000] * 10


def test_celeba_sample_real(shared_data):
    ds = load_image_dataset("celeba64", shared_data)  # 32 JPEGs, no attribute or partition file
    assert ds.train.shape == (29, 3, 64, 64) and ds.heldout.shape == (3, 3, 64, 64) and ds.labels is None
    assert 40 < ds.train.float().mean() < 215  # real faces, not a blank decode


def test_tiny_imagenet_sample_real(shared_data):
    ds = load_image_dataset("imagenet64", shared_data)
    assert ds.train.shape == (4500, 3, 64, 64) and ds.heldout.shape == (500, 3, 64, 64)
    assert len(ds.label_names) == 200 and torch.bincount(torch.cat([ds.labels, ds.heldout_labels])).tolist() == [25] * 200


def test_cifar10_real_trains_on_the_authors_split_and_tests_on_test_batch(shared_data):
    """ALI trains on data_batch_1..5[0:45000] (the last 5,000 validate the SVM's C), every test
    figure is scored on the 10,000 images of test_batch."""
    ds = load_image_dataset("cifar10", shared_data)
    assert ds.train.shape == (45000, 3, 32, 32) and ds.heldout.shape == (10000, 3, 32, 32)

    def batch(name: str) -> dict:
        path = shared_data / "cifar-10-batches-py" / name
        return safe_unpickle(path.read_bytes(), str(path))

    first, last = batch("data_batch_1"), batch("data_batch_5")
    rows = lambda b, i: torch.from_numpy(np.asarray(b[b"data"][i]).reshape(3, 32, 32))  # noqa: E731
    assert torch.equal(ds.train[0], rows(first, 0)) and ds.labels[0] == first[b"labels"][0]
    assert torch.equal(ds.train[-1], rows(last, 4999)) and ds.labels[-1] == last[b"labels"][4999]
    assert torch.bincount(ds.heldout_labels).tolist() == [1000] * 10
