"""The CIFAR-10 domain classifier: its network, its augmentation, a fit on images whose class
is plain to see (both precisions), and its file."""

import pytest
import torch
import torch.nn.functional as F

from ali.errors import AliError
from ali.evaluation.classifier import RECIPES, accuracy, fit_classifier, load_classifier, predict, save_classifier
from ali.evaluation.classifier_nets import CifarClassifier, flip_and_crop


def test_network_shapes_and_probabilities():
    torch.manual_seed(0)
    model = CifarClassifier().eval()
    x = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    probs, feats = predict(model, x, batch=2)
    assert probs.shape == (5, 10) and feats.shape == (5, 256)
    assert torch.allclose(probs.sum(1), torch.ones(5), atol=1e-5)
    with pytest.raises(AliError, match=r"\(N, 3, 32, 32\)"):
        predict(model, torch.rand(2, 1, 28, 28))


def test_flip_and_crop_takes_a_window_of_the_padded_image_or_its_mirror():
    x = torch.rand(16, 3, 32, 32)
    out = flip_and_crop(x, torch.Generator().manual_seed(0), 2)
    assert torch.equal(out, flip_and_crop(x, torch.Generator().manual_seed(0), 2))
    padded = F.pad(x, (2,) * 4, mode="reflect")
    found_flip = found_shift = False
    for i in range(len(x)):
        matches = [
            (flip, dy, dx)
            for flip in (False, True)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[i], (padded[i].flip(2) if flip else padded[i])[:, dy : dy + 32, dx : dx + 32])
        ]
        assert matches, f"image {i} is no window of its padded (or mirrored) self"
        found_flip |= any(m[0] for m in matches)
        found_shift |= any((m[1], m[2]) != (2, 2) for m in matches)
    assert found_flip and found_shift
    still = flip_and_crop(x, torch.Generator().manual_seed(1), 0)
    assert all(torch.equal(s, a) or torch.equal(s, a.flip(2)) for s, a in zip(still, x))


def _coloured_classes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose class is the colour of a bright square somewhere in noise."""
    palette = torch.rand(10, 3, generator=torch.Generator().manual_seed(123))  # the same for every draw
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    images = torch.rand(n, 3, 32, 32, generator=g) * 0.3
    for i, label in enumerate(labels.tolist()):
        r, c = torch.randint(0, 20, (2,), generator=g).tolist()
        images[i, :, r : r + 12, c : c + 12] = palette[label].view(3, 1, 1)
    return (images * 255).round().to(torch.uint8), labels


def test_the_recipe_learns_classes_it_can_see():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        images, labels = _coloured_classes(200, 0)
        state = torch.random.get_rng_state()
        model = fit_classifier(images, labels, 0, RECIPES["cifar10"], CifarClassifier, False, "fp32", epochs=6, batch_size=25)
        assert torch.equal(torch.random.get_rng_state(), state)
        test_images, test_labels = _coloured_classes(200, 1)
        assert accuracy(model, test_images, test_labels) > 0.5  # chance is 0.1
    finally:
        torch.set_num_threads(threads)


def test_bf16_training_runs_the_convolutions_in_bf16(monkeypatch):
    """The bf16 branch, short (emulated bf16 is slow on CPUs without it): the convolutions see
    bf16 inputs and the weights still move."""
    seen = set()
    conv = torch.nn.Conv2d.forward

    def spy(self, x):
        seen.add(x.dtype)
        return conv(self, x)

    monkeypatch.setattr(torch.nn.Conv2d, "forward", spy)
    images, labels = _coloured_classes(20, 0)
    torch.manual_seed(0)
    start = CifarClassifier().state_dict()
    model = fit_classifier(images, labels, 0, RECIPES["cifar10"], CifarClassifier, False, "bf16", epochs=1, batch_size=10)
    assert torch.bfloat16 in seen
    assert not torch.equal(model.state_dict()["head.weight"], start["head.weight"])


def test_a_saved_cifar10_classifier_loads_as_the_cifar10_network(tmp_path):
    torch.manual_seed(0)
    model = CifarClassifier().eval()
    path = save_classifier(model, tmp_path / "c.safetensors", {"dataset": "cifar10"})
    loaded, _ = load_classifier(path, dataset="cifar10")
    assert isinstance(loaded, CifarClassifier)
    x = torch.rand(3, 3, 32, 32)
    assert torch.equal(predict(loaded, x)[0], predict(model, x)[0])
    odd = save_classifier(model, tmp_path / "odd.safetensors", {"dataset": "svhn"})
    with pytest.raises(AliError, match="no classifier network"):
        load_classifier(odd)
