"""Image files to uint8 arrays: centre crop to a square, resize, and folder / class-tree walking.

Used by CelebA, the ImageNet class-folder tree and `folder:PATH`. Decoding is the slow part of
these datasets (the 5,000-image Tiny-ImageNet sample takes about 3 s on a 2-core CPU:
`time ali data info imagenet64`), so callers hand over the full file list once.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from ali.data.common import describe
from ali.errors import AliError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff")


def centre_square(image: Image.Image) -> Image.Image:
    """The largest centred square (CelebA's 178x218 -> rows 20..197, as the authors' 64x64 set)."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side))


def decode_image(path: Path, size: int, mode: str = "RGB") -> np.ndarray:
    """One image as uint8 (C, size, size): centre square crop, then a Lanczos (antialiased) resize."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img = img.convert(mode)  # grayscale JPEGs (83 in Tiny-ImageNet) become RGB
                img = centre_square(img)
                if img.size != (size, size):
                    img = img.resize((size, size), Image.Resampling.LANCZOS)
                array = np.asarray(img, dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001 - Pillow raises OSError, ValueError, SyntaxError, ...
        raise AliError(f"{path}: not a readable image ({describe(exc)}); delete or replace it") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def decode_images(paths: list[Path], size: int, mode: str = "RGB") -> np.ndarray:
    channels = 1 if mode == "L" else 3
    out = np.empty((len(paths), channels, size, size), dtype=np.uint8)
    for i, path in enumerate(paths):
        out[i] = decode_image(path, size, mode)
    return out


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def list_images(folder: Path) -> list[Path]:
    """Every image file under `folder`, recursively, sorted; symlinked folders are not followed
    (a link loop would otherwise never end)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found += [Path(root) / f for f in sorted(files) if is_image(Path(f))]
    return found


def class_tree(folder: Path) -> tuple[list[Path], np.ndarray, tuple[str, ...]]:
    """Files, class index per file and class names of a `<class>/**/*.jpg` tree (class = the
    first-level folder name, sorted, as torchvision's ImageFolder numbers them)."""
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    paths: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        files = list_images(folder / name)
        paths += files
        labels += [index] * len(files)
    return paths, np.asarray(labels, dtype=np.int64), tuple(classes)
