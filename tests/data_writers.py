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


def cifar_batch_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """A batch as the official ones: dict with bytes keys, data (N, 3072) uint8, labels list."""
    batch = {
        b"batch_label": b"training batch 1 of 5",
        b"labels": [int(v) for v in labels],
        b"data": images.reshape(len(images), 3072),
        b"filenames": [f"img_{i}.png".encode() for i in range(len(images))],
    }
    return pickle.dumps(batch, protocol=2)


def write_cifar(folder: Path, per_batch: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    all_images, all_labels = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch)
        (folder / name).write_bytes(cifar_batch_bytes(images, labels))
        if name != "test_batch":
            all_images.append(images)
            all_labels.append(labels)
    return np.concatenate(all_images), np.concatenate(all_labels)


def svhn_mat_bytes_to(path: Path, images: np.ndarray, digits: np.ndarray) -> None:
    import scipy.io

    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.ascontiguousarray(images.transpose(2, 3, 1, 0))  # (N, C, H, W) -> (H, W, C, N) as the official X
    y = np.where(digits == 0, 10, digits).reshape(-1, 1).astype(np.uint8)
    scipy.io.savemat(str(path), {"X": x, "y": y})


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
