"""MNIST and Fashion-MNIST: the IDX format (Y. LeCun's), usually gzipped.

Header: two zero bytes, a type byte (0x08 = uint8), the number of dimensions, then each dimension
as a big-endian uint32; the data follows, row-major. Images are magic 2051 (0x00000803, 3-D),
labels 2049 (0x00000801, 1-D).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ali.data.common import check_labels, find_file, read_bytes
from ali.errors import AliError

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
PREFIX = {"train": "train", "test": "t10k"}


def parse_idx(raw: bytes, source: str, magic: int) -> np.ndarray:
    """The uint8 array an IDX file holds; AliError on any other magic or a size mismatch."""
    if len(raw) < 4:
        raise AliError(f"{source}: {len(raw)} bytes, too short for an IDX header; the file is truncated")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise AliError(f"{source}: IDX magic number {found}, expected {magic}; not the right IDX file")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise AliError(f"{source}: truncated IDX header ({len(raw)} bytes)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=object))
    if len(raw) - header != expected:
        raise AliError(
            f"{source}: header says shape {shape} ({expected} bytes) but {len(raw) - header} bytes follow; the file is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_idx(path: Path, magic: int) -> np.ndarray:
    return parse_idx(read_bytes(path), str(path), magic)


def _candidates(folder: Path, stem: str) -> list[Path]:
    # The official names end in .gz; torchvision and some mirrors keep them gunzipped, and the
    # original MNIST files sometimes carry a dot instead of a dash (train-images.idx3-ubyte).
    return [folder / f"{stem}.gz", folder / stem, folder / stem.replace("-idx", ".idx")]


def load_idx_split(dataset: str, data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 1, 28, 28) uint8 and labels (N,) int64 of `split` ("train" or "test")."""
    folder = data_dir / dataset
    prefix = PREFIX[split]
    images_path = find_file(dataset, data_dir, _candidates(folder, f"{prefix}-images-idx3-ubyte"))
    labels_path = find_file(dataset, data_dir, _candidates(folder, f"{prefix}-labels-idx1-ubyte"))
    images = read_idx(images_path, IMAGES_MAGIC)
    if images.shape[1:] != (28, 28):
        raise AliError(f"{images_path}: images are {images.shape[1:]}, expected 28x28")
    labels = check_labels(read_idx(labels_path, LABELS_MAGIC), len(images), 10, str(labels_path))
    return images[:, None, :, :], labels
