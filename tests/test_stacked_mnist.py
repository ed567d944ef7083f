"""Stacked MNIST (ali.data.stacked_mnist): channels, mode labels, seeding, the real-data loader.

The loader test reads the real MNIST files in ../shared/data: under CI=true missing data is a
failure, not a skip.
"""

import pytest
import torch

from ali.data import load_split
from ali.data.stacked_mnist import decode_modes, load_stacked_mnist, stack_mnist
from ali.errors import AliError


def numbered_digits(n: int = 50):
    """Image i is filled with the value i, so each stacked channel names its source image."""
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 28, 28).contiguous()
    labels = torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(0))
    return images, labels


def test_labels_decode_to_the_channel_digits():
    images, labels = numbered_digits()
    stacked, modes = stack_mnist(images, labels, 400, seed=0)
    assert stacked.shape == (400, 3, 28, 28) and stacked.dtype == torch.uint8 and modes.dtype == torch.int64
    sources = stacked[:, :, 0, 0].long()  # (400, 3) source index per channel
    assert torch.equal(decode_modes(modes), labels[sources])
    assert bool((stacked == stacked[:, :, :1, :1]).all())  # each channel is one whole source image
    assert 0 <= modes.min() and modes.max() <= 999


def test_decode_modes():
    assert decode_modes(torch.tensor([472, 5, 999])).tolist() == [[4, 7, 2], [0, 0, 5], [9, 9, 9]]


def test_stacking_is_seeded():
    images, labels = numbered_digits()
    a, la = stack_mnist(images, labels, 100, seed=3)
    b, lb = stack_mnist(images, labels, 100, seed=3)
    c, _ = stack_mnist(images, labels, 100, seed=4)
    assert torch.equal(a, b) and torch.equal(la, lb) and not torch.equal(a, c)


def test_stacking_refuses_bad_inputs():
    images, labels = numbered_digits()
    with pytest.raises(AliError, match="one-channel"):
        stack_mnist(images.expand(-1, 3, -1, -1), labels, 10, 0)
    with pytest.raises(AliError, match="0..9"):
        stack_mnist(images, labels + 10, 10, 0)


def test_load_stacked_mnist_from_real_files(mnist_dir):
    data = load_stacked_mnist(mnist_dir, n_train=600, n_heldout=200, seed=1)
    assert set(data) == {"train", "labels", "heldout", "heldout_labels"}
    assert data["train"].shape == (600, 3, 28, 28) and data["heldout"].shape == (200, 3, 28, 28)
    # Every channel is a real MNIST image whose label is the mode's digit for that channel.
    for split, images_key, labels_key in (("train", "train", "labels"), ("test", "heldout", "heldout_labels")):
        source, source_labels = load_split("mnist", mnist_dir, split)
        label_of = {bytes(img.numpy()): int(lab) for img, lab in zip(source[:, 0], source_labels)}
        digits = decode_modes(data[labels_key])
        for i in range(0, len(digits), 37):
            assert [label_of[bytes(data[images_key][i, c].numpy())] for c in range(3)] == digits[i].tolist()
    # The held-out set does not depend on the training size.
    other = load_stacked_mnist(mnist_dir, n_train=10, n_heldout=200, seed=1)
    assert torch.equal(other["heldout"], data["heldout"])
