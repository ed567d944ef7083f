"""SVHN cropped digits (format 2): MATLAB v5 files train_32x32.mat, test_32x32.mat, extra_32x32.mat.

Each holds X, uint8 (32, 32, 3, N), and y, (N, 1) with labels 1..10 where 10 means the digit 0.
Labels are returned as the digit (10 -> 0). How the project uses the splits (ali.data): ALI
trains on extra, the semi-supervised protocols draw their labelled examples from train, and every
published-comparable figure is scored on test.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ali.data.common import check_labels, describe, find_file, read_bytes
from ali.errors import AliError

FOLDER = "svhn"
SPLITS = ("train", "test", "extra")


def parse_mat(raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and digit labels (N,) int64 from the bytes of one .mat file."""
    import scipy.io  # late: only SVHN needs scipy

    try:
        # loadmat builds only numeric arrays, strings and structs (MATLAB objects come back as
        # opaque arrays), so unlike pickle it cannot run code from the file.
        mat = scipy.io.loadmat(io.BytesIO(raw), variable_names=("X", "y"))
    except MemoryError:
        raise AliError(f"{source}: asks for more memory than an SVHN file needs; the file is corrupt") from None
    except Exception as exc:  # noqa: BLE001 - scipy raises many types (ValueError, TypeError, ...)
        raise AliError(f"{source}: not a readable MATLAB v5 file ({describe(exc)}); delete it and download it again") from None
    missing = [k for k in ("X", "y") if k not in mat]
    if missing:
        raise AliError(f"{source}: no variable {' or '.join(missing)}; an SVHN .mat file holds X (32, 32, 3, N) and y (N, 1)")
    x, y = mat["X"], mat["y"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        what = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise AliError(f"{source}: X is {what}, expected uint8 (32, 32, 3, N)")
    if (
        not isinstance(y, np.ndarray)
        or y.dtype.kind not in "iuf"
        or y.size != x.shape[3]
        or (y.ndim == 2 and 1 not in y.shape)
        or y.ndim > 2
    ):
        what = f"{y.dtype} {y.shape}" if isinstance(y, np.ndarray) else type(y).__name__
        raise AliError(f"{source}: y is {what}, expected ({x.shape[3]}, 1) labels 1..10")
    y = y.reshape(-1)
    if y.dtype.kind == "f" and not (np.all(np.isfinite(y)) and np.array_equal(y, np.round(y))):
        raise AliError(f"{source}: y holds non-integer labels")  # some re-saved copies store y as double
    if y.size and (y.min() < 1 or y.max() > 10):
        raise AliError(f"{source}: labels outside 1..10 (10 = digit 0); the file is not from SVHN")
    labels = check_labels(np.where(y == 10, 0, y).astype(np.int64), x.shape[3], 10, source)
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), labels


def read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    return parse_mat(read_bytes(path), str(path))


def load_svhn_split(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    return read_mat(find_file("svhn", data_dir, [data_dir / FOLDER / f"{split}_32x32.mat"]))
