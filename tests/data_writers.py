"""Writers of tiny dataset files in the exact official formats, for the ali.data tests."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = idx_bytes(array)
    path.write_bytes(gzip.compress(raw, mtime=0) if gz else raw)


def write_mnist(folder: Path, n_train: int = 12, n_test: int = 5, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
        out[prefix] = (images, labels)
    return out


def cifar_batch_bytes(images: np.ndarray, labels: np.ndarray, batch_label: bytes = b"training batch 1 of 5") -> bytes:
    """A batch as the official ones: dict with bytes keys, data (N, 3072) uint8, labels list."""
    batch = {
        b"batch_label": batch_label,
        b"labels": [int(v) for v in labels],
        b"data": images.reshape(len(images), 3072),
        b"filenames": [f"img_{i}.png".encode() for i in range(len(images))],
    }
    return pickle.dumps(batch, protocol=2)


def write_cifar_arrays(
    folder: Path, train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray, test_labels: np.ndarray
) -> None:
    """data_batch_1..5 (the training arrays cut into five consecutive parts) and test_batch."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = zip(np.array_split(train_images, 5), np.array_split(train_labels, 5))
    for i, (images, labels) in enumerate(parts, 1):
        (folder / f"data_batch_{i}").write_bytes(cifar_batch_bytes(images, labels, f"training batch {i} of 5".encode()))
    (folder / "test_batch").write_bytes(cifar_batch_bytes(test_images, test_labels, b"testing batch 1 of 1"))


def write_cifar(folder: Path, per_batch: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random batches of per_batch images; returns the training images and labels."""
    rng = np.random.default_rng(seed)
    batches = [(rng.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, per_batch)) for _ in range(6)]
    train_images, train_labels = (np.concatenate(parts) for parts in zip(*batches[:5]))
    write_cifar_arrays(folder, train_images, train_labels, *batches[5])
    return train_images, train_labels


def svhn_mat_bytes_to(path: Path, images: np.ndarray, digits: np.ndarray) -> None:
    import scipy.io

    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.ascontiguousarray(images.transpose(2, 3, 1, 0))  # (N, C, H, W) -> (H, W, C, N) as the official X
    y = np.where(digits == 0, 10, digits).reshape(-1, 1).astype(np.uint8)
    scipy.io.savemat(str(path), {"X": x, "y": y})


def write_svhn(folder: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """{split: (images (N, 3, 32, 32), digits 0..9)} as folder/<split>_32x32.mat."""
    for split, (images, digits) in splits.items():
        svhn_mat_bytes_to(folder / f"{split}_32x32.mat", images, digits)


def bar_images(classes: np.ndarray, shape: tuple[int, int, int] = (3, 32, 32), seed: int = 0) -> np.ndarray:
    """uint8 images of dim noise, each with a bright bar at the place of its class (one of 10: two
    rows of five): classes that almost any image features tell apart linearly."""
    channels, h, w = shape
    images = np.random.default_rng(seed).integers(0, 40, (len(classes), channels, h, w), dtype=np.uint8)
    for image, k in zip(images, np.asarray(classes).tolist()):
        row, col = divmod(int(k), 5)
        top, left = h // 8 + row * (h // 2), col * (w // 5) + 1
        image[:, top : top + h // 4, left : left + w // 5 - 2] = 255
    return images


def write_jpeg(path: Path, array_hwc: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array_hwc).save(path, quality=95)


def celeba_face(colour_mid: tuple[int, int, int]) -> np.ndarray:
    """A 218x178 image: 20 red rows on top, 20 blue at the bottom, the centre square one colour,
    so a correct centre crop sees only the centre colour."""
    img = np.zeros((218, 178, 3), dtype=np.uint8)
    img[:] = colour_mid
    img[:20] = (255, 0, 0)
    img[198:] = (0, 0, 255)
    return img


ATTRS = [f"Attr_{i}" for i in range(40)]


def attribute_text(files: list[str], values: np.ndarray) -> str:
    lines = [str(len(files)), " ".join(ATTRS)]
    lines += [f + "  " + " ".join("1" if v else "-1" for v in row) for f, row in zip(files, values)]
    return "\n".join(lines) + "\n"


def write_bar_mnist(data_dir: Path, n_train: int, n_test: int) -> Path:
    """Format-exact MNIST files under data_dir/mnist: bars whose place is their class (classes
    0..9 in turn); returns data_dir."""
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        labels = np.arange(n) % 10
        write_idx(data_dir / "mnist" / f"{prefix}-images-idx3-ubyte.gz", bar_images(labels, (1, 28, 28), seed)[:, 0])
        write_idx(data_dir / "mnist" / f"{prefix}-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    return data_dir
