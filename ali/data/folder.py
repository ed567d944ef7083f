"""`folder:PATH`: every image under PATH (recursively), centre-cropped and resized to 64x64 RGB."""

from __future__ import annotations

from pathlib import Path

from ali.data.common import holdout_mask
from ali.data.images import decode_images, list_images
from ali.errors import AliError

SIZE = 64


def load_folder(folder: Path, size: int = SIZE) -> dict:
    """{"train", "heldout"} uint8 (N, 3, size, size); every 10th image (sorted paths) held out."""
    if not folder.is_dir():
        raise AliError(f"folder:{folder}: no such folder; name a folder of images (jpg, png, ...)")
    paths = list_images(folder)
    if len(paths) < 10:
        raise AliError(f"folder:{folder}: {len(paths)} images found; at least 10 are needed (one in ten is held out)")
    images = decode_images(paths, size)
    held = holdout_mask(len(paths))
    return {"train": images[~held], "heldout": images[held]}
