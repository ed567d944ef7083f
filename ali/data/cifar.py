"""CIFAR-10 "python version": pickled batches, read without running any code from the file.

A batch is a Python 2 pickle of a dict {b"data": uint8 array (10000, 3072), b"labels": [int],
b"batch_label": bytes, b"filenames": [bytes]}; each row is the 1024 red, then green, then blue
values of a 32x32 image. `pickle.load` would import and call whatever the file names, so a
downloaded or received batch could run arbitrary code; `_BatchUnpickler` resolves only the three
numpy names an array needs and refuses everything else.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ali.data.common import check_labels, describe, find_file, read_bytes
from ali.errors import AliError

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
FOLDER = "cifar-10-batches-py"


def _reconstruct() -> Any:
    try:  # numpy >= 2 moved the module; pickles written by numpy 1 still name numpy.core
        from numpy._core.multiarray import _reconstruct as fn
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core.multiarray import _reconstruct as fn
    return fn


def _latin1_encode(text: Any, encoding: Any = "latin1") -> bytes:
    """Python 3 writes bytes into protocol-2 pickles as _codecs.encode(str, "latin1"); allow
    exactly that call (a pure conversion) and nothing else the codecs module could do."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError("refusing _codecs.encode with anything but (str, 'latin1')")
    return text.encode("latin1")


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: _latin1_encode,
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        factory = _ALLOWED.get((module, name))
        if factory is None:
            raise pickle.UnpicklingError(
                f"refusing to load {ascii(module)[1:-1]}.{ascii(name)[1:-1]}: a CIFAR batch holds only dicts, bytes, lists and numpy arrays"
            )
        return factory()

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refusing a persistent id")


def safe_unpickle(raw: bytes, source: str) -> Any:
    """Unpickle with only numpy arrays allowed; AliError for anything else or a broken file."""
    try:
        # encoding="bytes" keeps Python 2 str as bytes, as the official batches expect (b"data").
        return _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        if str(exc).startswith("refusing"):  # our find_class: the file names code to run
            raise AliError(f"{source}: {exc}; not loading it") from None
        raise AliError(f"{source}: not a valid pickle ({describe(exc)}); delete it and download it again") from None
    except RecursionError:
        raise AliError(f"{source}: pickle nests too deeply; not a CIFAR batch") from None
    except MemoryError:
        raise AliError(f"{source}: pickle asks for more memory than a CIFAR batch needs; not a CIFAR batch") from None
    except Exception as exc:  # noqa: BLE001 - a malformed pickle can fail with any error type
        raise AliError(f"{source}: not a valid pickle ({describe(exc)}); delete it and download it again") from None


def _get(batch: dict, key: str) -> Any:
    for k in (key.encode(), key):  # bytes keys (Python 2 batch), str keys (re-pickled by Python 3)
        if k in batch:
            return batch[k]
    return None


def parse_batch(raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 from one pickled batch."""
    batch = safe_unpickle(raw, source)
    if not isinstance(batch, dict):
        raise AliError(f"{source}: holds a {type(batch).__name__}, expected a dict with b'data' and b'labels'")
    data, labels = _get(batch, "data"), _get(batch, "labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        what = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise AliError(f"{source}: b'data' is {what}, expected a uint8 array (N, 3072)")
    if not isinstance(labels, (list, np.ndarray)) or not all(isinstance(v, (int, np.integer)) for v in labels):
        raise AliError(f"{source}: b'labels' must be a list of integers")
    try:
        labels_array = np.asarray(labels, dtype=np.int64)
    except OverflowError:
        raise AliError(f"{source}: b'labels' holds values outside 0..9") from None
    labels_array = check_labels(labels_array, len(data), 10, source)
    return data.reshape(-1, 3, 32, 32), labels_array


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    return parse_batch(read_bytes(path), str(path))


def load_cifar10_split(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """ "train" = data_batch_1..5 (50,000) in order, "test" = test_batch (10,000)."""
    names = TRAIN_BATCHES if split == "train" else (TEST_BATCH,)
    parts = [read_batch(find_file("cifar10", data_dir, [data_dir / FOLDER / n])) for n in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
