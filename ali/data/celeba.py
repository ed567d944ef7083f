"""CelebA, aligned and cropped: img_align_celeba/*.jpg (178x218), centre-cropped and resized to 64.

Optional annotation files (beside the image folder, or in Anno/ and Eval/ as the official Google
Drive lays them out):
- list_attr_celeba.txt: a count line, a line of 40 attribute names, then `<file> <40 x +-1>`.
- list_eval_partition.txt: `<file> <0|1|2>` (train, valid, test).
Without the partition file the fallback rule of `common.HOLDOUT_EVERY` picks the held-out images;
without the attribute file the images load without labels (the shared 32-image sample).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ali.data.common import find_dir, holdout_mask
from ali.data.images import decode_images, is_image
from ali.errors import AliError

FOLDER, IMAGES = "celeba", "img_align_celeba"
SIZE = 64
ATTRIBUTE_COUNT = 40


def _decode_text(raw: bytes, source: str) -> list[str]:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise AliError(f"{source}: not an ASCII text file (byte {exc.start}); not a CelebA annotation file") from None
    return text.splitlines()


def parse_attributes(raw: bytes, source: str) -> tuple[list[str], tuple[str, ...], np.ndarray]:
    """File names, the 40 attribute names, and (N, 40) uint8 attributes in {0, 1} (from -1/+1)."""
    lines = _decode_text(raw, source)
    if len(lines) < 2:
        raise AliError(f"{source}: {len(lines)} lines; expected a count line and a line of attribute names")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise AliError(f"{source}: line 1 is {lines[0][:40]!r}, expected the number of images") from None
    names = tuple(lines[1].split())
    if len(names) != ATTRIBUTE_COUNT or len(set(names)) != len(names):
        raise AliError(f"{source}: line 2 names {len(names)} attributes, expected {ATTRIBUTE_COUNT} distinct names")
    rows = [line for line in lines[2:] if line.strip()]
    if count < 0 or len(rows) != count:
        raise AliError(f"{source}: line 1 says {count} images but {len(rows)} rows follow; the file is truncated")
    files: list[str] = []
    values = np.empty((count, ATTRIBUTE_COUNT), dtype=np.uint8)
    for i, line in enumerate(rows):
        fields = line.split()
        if len(fields) != ATTRIBUTE_COUNT + 1 or any(v not in ("1", "-1") for v in fields[1:]):
            raise AliError(f"{source}: row {i + 3} must be a file name and {ATTRIBUTE_COUNT} values of 1 or -1")
        files.append(fields[0])
        values[i] = [v == "1" for v in fields[1:]]
    if len(set(files)) != len(files):
        raise AliError(f"{source}: a file name is listed twice")
    return files, names, values


def parse_partition(raw: bytes, source: str) -> dict[str, int]:
    """File name -> 0 (train), 1 (valid) or 2 (test)."""
    out: dict[str, int] = {}
    for i, line in enumerate(_decode_text(raw, source)):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2") or fields[0] in out:
            raise AliError(f"{source}: line {i + 1} must be a new file name and 0, 1 or 2")
        out[fields[0]] = int(fields[1])
    return out


def _annotation(root: Path, name: str, subfolder: str) -> Path | None:
    for path in (root / name, root / subfolder / name):
        if path.is_file():
            return path
    return None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AliError(f"cannot read {path}: {exc.strerror or exc}") from None


def load_celeba(data_dir: Path) -> dict:
    """{"train", "heldout"} images (N, 3, 64, 64); with the attribute file also "labels",
    "heldout_labels" (N, 40) uint8 and "label_names"."""
    root = data_dir / FOLDER
    image_dir = find_dir("celeba64", data_dir, [root / IMAGES])
    files = sorted(p.name for p in image_dir.iterdir() if is_image(p))
    if not files:
        raise AliError(
            f"celeba64: no images in {image_dir}; extract img_align_celeba.zip there (ali data download celeba64 --data-dir {data_dir})"
        )
    partition_path = _annotation(root, "list_eval_partition.txt", "Eval")
    if partition_path is not None:
        partition = parse_partition(_read(partition_path), str(partition_path))
        unknown = [f for f in files if f not in partition]
        if unknown:
            raise AliError(f"{partition_path}: does not list {unknown[0]} (and {len(unknown) - 1} more) found in {image_dir}")
        held = np.array([partition[f] == 1 for f in files])  # the authors held out the "valid" split
        train = np.array([partition[f] == 0 for f in files])
        if not held.any():  # a subset with no validation image: fall back so held-out is never empty
            partition_path = None
    if partition_path is None:
        held = holdout_mask(len(files))
        train = ~held
    out: dict = {}
    images = decode_images([image_dir / f for f in files], SIZE)
    out["train"], out["heldout"] = images[train], images[held]
    attr_path = _annotation(root, "list_attr_celeba.txt", "Anno")
    if attr_path is not None:
        listed, names, values = parse_attributes(_read(attr_path), str(attr_path))
        row = {f: i for i, f in enumerate(listed)}
        missing = [f for f in files if f not in row]
        if missing:
            raise AliError(f"{attr_path}: has no attributes for {missing[0]} (and {len(missing) - 1} more)")
        attributes = values[[row[f] for f in files]]
        out["labels"], out["heldout_labels"], out["label_names"] = attributes[train], attributes[held], names
    return out
