"""ImageNet at 64x64, from whichever of these is in the data folder (first found wins):

1. Downsampled ImageNet (Chrabaszcz et al. 2017), `Imagenet64_train_npz/train_data_batch_*.npz`:
   data (N, 12288) uint8 laid out as CIFAR (all red, then green, then blue), labels 1..1000;
   held out = `Imagenet64_val_npz/val_data.npz` when present.
2. A class-folder tree, centre-cropped and resized to 64: `imagenet/train/<wnid>/*.JPEG`
   (ILSVRC2012, the paper's data) or `tiny-imagenet-200/train/<wnid>/images/*.JPEG`.
Without an official validation set the fallback rule of `common.HOLDOUT_EVERY` picks held-out images.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from ali.data.common import describe, download_hint, holdout_mask, read_bytes
from ali.data.images import class_tree, decode_images
from ali.errors import AliError

SIZE = 64
NPZ_TRAIN, NPZ_VAL = "Imagenet64_train_npz", "Imagenet64_val_npz"
TREES = ("imagenet/train", "tiny-imagenet-200/train")


def parse_npz(raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 64, 64) uint8 and labels (N,) int64 (0-based) from one .npz batch."""
    try:
        # allow_pickle=False: an object array in the file is refused instead of unpickled.
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            if "data" not in npz.files or "labels" not in npz.files:
                raise AliError(f"{source}: keys {ascii(sorted(npz.files))[:200]}, expected 'data' and 'labels'")
            data, labels = npz["data"], npz["labels"]
    except AliError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy's header parser can raise tokenize/syntax errors too (found by fuzzing)
        raise AliError(f"{source}: not a valid .npz batch ({describe(exc)})") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIZE * SIZE:
        raise AliError(f"{source}: data is {data.dtype} {data.shape}, expected uint8 (N, {3 * SIZE * SIZE})")
    labels = labels.reshape(-1)
    if (
        labels.shape != (len(data),)
        or labels.dtype.kind not in "iu"
        or (labels.size and (labels.min() < 1 or labels.max() > 1000))
    ):
        raise AliError(f"{source}: labels must be {len(data)} integers in 1..1000")
    return data.reshape(-1, 3, SIZE, SIZE), labels.astype(np.int64) - 1


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    return parse_npz(read_bytes(path), str(path))


def _batch_number(path: Path) -> int:
    match = re.search(r"(\d+)\.npz$", path.name)
    return int(match.group(1)) if match else 0


def _from_npz(folder: Path, data_dir: Path) -> dict:
    batches = sorted(folder.glob("train_data_batch_*.npz"), key=_batch_number)  # 1, 2, ..., 10 (not 1, 10, 2)
    if not batches:
        raise AliError(f"imagenet64: {folder} holds no train_data_batch_*.npz")
    parts = [_read_npz(p) for p in batches]
    train, labels = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    val = data_dir / NPZ_VAL / "val_data.npz"
    if val.is_file():
        heldout, heldout_labels = _read_npz(val)
        return {"train": train, "labels": labels, "heldout": heldout, "heldout_labels": heldout_labels}
    held = holdout_mask(len(train))
    return {"train": train[~held], "labels": labels[~held], "heldout": train[held], "heldout_labels": labels[held]}


def load_class_tree(folder: Path, size: int = SIZE) -> dict:
    """A `<class>/**/<image>` tree as a dataset dict (held-out by the fallback rule)."""
    paths, labels, classes = class_tree(folder)
    if not paths:
        raise AliError(f"{folder}: no images in its class folders")
    images = decode_images(paths, size)
    held = holdout_mask(len(paths))
    return {
        "train": images[~held],
        "labels": labels[~held],
        "heldout": images[held],
        "heldout_labels": labels[held],
        "label_names": classes,
    }


def load_imagenet64(data_dir: Path) -> dict:
    npz = data_dir / NPZ_TRAIN
    if npz.is_dir():
        return _from_npz(npz, data_dir)
    for tree in TREES:
        if (data_dir / tree).is_dir():
            return load_class_tree(data_dir / tree)
    looked = ", ".join(str(data_dir / p) for p in (NPZ_TRAIN, *TREES))
    raise AliError(f"imagenet64: no data; looked for {looked}; {download_hint('imagenet64', data_dir)} (Tiny ImageNet)")
