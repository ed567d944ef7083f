"""Shared helpers for the loaders: where files are, the error for a missing one, reading bytes safely.

Every loader raises `AliError` for a missing, truncated or malformed file, so a user sees one line
saying what is wrong and what to do instead of a traceback from gzip, pickle or scipy.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ali.errors import AliError
from ali.keys import DATA_DIR_ENV

# Decompressed IDX files are at most ~47 MB (MNIST train images); a bound stops a crafted .gz
# (a "zip bomb") from filling memory before the header check can refuse it.
MAX_DECOMPRESSED_BYTES = 1 << 31

# Fallback held-out rule when a dataset ships no official split: every 10th example in sorted
# file order (indices 9, 19, 29, ...). Deterministic, spread over classes, and never empty for
# 10 or more images.
HOLDOUT_EVERY = 10


def download_hint(name: str, data_dir: Path) -> str:
    """The folder searched and both ways out: fetch the data there, or look somewhere else."""
    return (
        f"data folder {data_dir}: get it with `ali data download {name} --data-dir {data_dir}`, "
        f"or point --data-dir (default: ${DATA_DIR_ENV}, else ./data) at the folder that holds it"
    )


def _find(kind: str, exists, dataset: str, data_dir: Path, candidates: list[Path]) -> Path:
    for path in candidates:
        if exists(path):
            return path
    looked = ", ".join(str(p) for p in candidates)
    raise AliError(f"{dataset}: {kind} not found; looked for {looked}; {download_hint(dataset, data_dir)}")


def find_file(dataset: str, data_dir: Path, candidates: list[Path]) -> Path:
    """The first of `candidates` that exists, else AliError listing every place looked."""
    return _find("file", Path.is_file, dataset, data_dir, candidates)


def find_dir(dataset: str, data_dir: Path, candidates: list[Path]) -> Path:
    return _find("folder", Path.is_dir, dataset, data_dir, candidates)


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AliError(f"cannot read {path}: {exc.strerror or exc}") from None
    return maybe_gunzip(raw, str(path))


def maybe_gunzip(raw: bytes, source: str) -> bytes:
    return gunzip(raw, source) if raw[:2] == b"\x1f\x8b" else raw


def gunzip(raw: bytes, source: str) -> bytes:
    out = bytearray()
    try:
        # Stream member by member with a size bound rather than gzip.decompress, which would
        # happily inflate a crafted file to any size before we could look at it.
        with gzip.GzipFile(fileobj=_BytesReader(raw)) as stream:
            while chunk := stream.read(1 << 20):
                out += chunk
                if len(out) > MAX_DECOMPRESSED_BYTES:
                    raise AliError(f"{source}: decompresses to more than {MAX_DECOMPRESSED_BYTES} bytes; not a dataset file")
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise AliError(f"{source}: not a valid gzip file ({describe(exc)}); delete it and download it again") from None
    return bytes(out)


class _BytesReader:
    """Minimal file object over bytes (io.BytesIO copies; this does not)."""

    def __init__(self, data: bytes):
        self._view, self._pos = memoryview(data), 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._view) if n is None or n < 0 else min(len(self._view), self._pos + n)
        chunk = self._view[self._pos : end].tobytes()
        self._pos = end
        return chunk


def holdout_mask(n: int) -> np.ndarray:
    """Boolean mask of the fallback held-out examples (see HOLDOUT_EVERY)."""
    return (np.arange(n) % HOLDOUT_EVERY) == HOLDOUT_EVERY - 1


def check_labels(labels: np.ndarray, n: int, classes: int, source: str) -> np.ndarray:
    labels = np.asarray(labels).reshape(-1)
    if labels.shape != (n,):
        raise AliError(f"{source}: {labels.size} labels for {n} images; the file is truncated or not from this dataset")
    if not np.issubdtype(labels.dtype, np.integer):
        raise AliError(f"{source}: labels have dtype {labels.dtype}, expected integers")
    if n and (labels.min() < 0 or labels.max() >= classes):
        raise AliError(f"{source}: labels outside 0..{classes - 1}; the file is not from this dataset")
    return labels.astype(np.int64)


def describe(exc: BaseException) -> str:
    """`Type: message` on one short line: library messages can quote bytes from a hostile file,
    newlines included, and the CLI promises a single `error:` line."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= 200 else text[:197] + "..."
