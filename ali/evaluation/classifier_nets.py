"""The domain classifiers' networks and their training-time augmentation, one per dataset family.

- `DigitClassifier` (MNIST, Fashion-MNIST): the network behind ALICE's MNIST scores
  (ChunyuanLI/MNIST_Inception_Score, the TensorFlow tutorial net): conv 5x5x32 'same' + ReLU ->
  maxpool 2 -> conv 5x5x64 'same' + ReLU -> maxpool 2 -> FC 1024 + ReLU -> dropout 0.5 -> FC 10.
- `CifarClassifier` (CIFAR-10): a small all-convolutional net in the style of the fast CIFAR-10
  trainers (Page's ResNet-9, Jordan's airbench): three stages of conv -> maxpool -> conv at
  widths 64, 128, 256 with batch norm and GELU, global max pooling to a 256-d feature, a linear
  head. About 0.17 GFLOP per image, so a few epochs fit a CPU budget.

Every network takes float images in [0, 1] and offers `features(x)` (the penultimate layer the
classifier FID is computed on) and `classify(features)` (the class logits).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = 10


class DigitClassifier(nn.Module):
    """The MNIST-inception-score network; `features` is the 1024-d penultimate layer (post-ReLU)."""

    image_shape = (1, 28, 28)
    feature_dim = 1024

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc1 = nn.Linear(64 * 7 * 7, self.feature_dim)
        self.dropout = nn.Dropout(0.5)
        self.fc2 = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return F.relu(self.fc1(h.flatten(1)))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))


def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU()]


class CifarClassifier(nn.Module):
    """32x32 RGB -> 256-d features (global max pool of the last stage) -> 10 logits.

    | stage | layers                                   | size  |
    |-------|------------------------------------------|-------|
    | stem  | conv 3x3, 32                             | 32x32 |
    | 1     | conv 3x3, 64 -> maxpool 2 -> conv 3x3, 64 | 16x16 |
    | 2     | conv 3x3,128 -> maxpool 2 -> conv 3x3,128 | 8x8   |
    | 3     | conv 3x3,256 -> maxpool 2 -> conv 3x3,256 | 4x4   |
    | head  | global max pool -> linear 10 (x 1/8)      |       |

    The head's output is scaled down (as airbench does) so the logits start small and early
    steps do not saturate the softmax.
    """

    image_shape = (3, 32, 32)
    feature_dim = 256
    # Per-channel mean and std of the CIFAR-10 training images: inputs are standardised inside
    # the network, so callers pass plain [0, 1] pixels as for every other classifier.
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        widths = (64, 128, 256)
        layers: list[nn.Module] = _conv_bn(3, 32)
        c_in = 32
        for width in widths:
            conv, norm, act = _conv_bn(c_in, width)
            layers += [conv, nn.MaxPool2d(2), norm, act, *_conv_bn(width, width)]
            c_in = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(widths[-1], num_classes, bias=False)
        self.register_buffer("pixel_mean", torch.tensor(self.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(self.std).view(1, 3, 1, 1), persistent=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body((x - self.pixel_mean) / self.pixel_std)
        return h.amax(dim=(2, 3)).float()

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features) / 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))


def random_affine(x: torch.Tensor, generator: torch.Generator, max_degrees: float, max_shift: float) -> torch.Tensor:
    """x rotated by U(-max_degrees, max_degrees) and shifted by U(-max_shift, max_shift) pixels per
    axis, independently per image; the uncovered border is background (0)."""
    n, _, height, width = x.shape
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(max_degrees)
    # affine_grid works in [-1, 1] coordinates: one pixel is 2 / size of them.
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * max_shift
    tx, ty = shift[:, 0] * 2 / width, shift[:, 1] * 2 / height
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def flip_and_crop(x: torch.Tensor, generator: torch.Generator, max_shift: int) -> torch.Tensor:
    """Natural-image augmentation: a horizontal flip with probability 1/2 and a random crop of the
    image reflect-padded by max_shift pixels (a shift of up to max_shift each way), per image."""
    n, _, height, width = x.shape
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
    if max_shift <= 0:
        return x
    padded = F.pad(x, (max_shift,) * 4, mode="reflect")
    dy, dx = (torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator)).unbind(0)
    rows = (torch.arange(height).view(1, height) + dy.view(n, 1)).view(n, 1, height, 1)
    cols = (torch.arange(width).view(1, width) + dx.view(n, 1)).view(n, 1, 1, width)
    channels = x.shape[1]
    rows = rows.expand(n, channels, height, padded.shape[3])
    picked = padded.gather(2, rows)
    return picked.gather(3, cols.expand(n, channels, height, width))
