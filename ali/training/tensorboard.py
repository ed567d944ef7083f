"""Optional TensorBoard logging (`ali train --tensorboard`, extra `ali[tensorboard]`): the same
scalars as stats.jsonl and the sample grids, under RUN_DIR/tensorboard/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ali.errors import AliError


def _summary_writer(log_dir: Path) -> Any:
    # tensorboard is an optional dependency: imported only when a run asks for it.
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise AliError(
            "--tensorboard needs the tensorboard package: pip install 'ali[tensorboard]' (stats.jsonl is written either way)"
        ) from None
    return SummaryWriter(log_dir=str(log_dir))


class TensorBoardLog:
    """Scalars of each log line and each sample grid, as TensorBoard events."""

    def __init__(self, run_dir: Path, writer: Any = None):
        self.writer = writer if writer is not None else _summary_writer(run_dir / "tensorboard")

    def scalars(self, row: dict[str, float]) -> None:
        step = int(row["step"])
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)):
                self.writer.add_scalar(f"train/{key}", value, step)

    def image(self, tag: str, path: Path, step: int) -> None:
        with Image.open(path) as img:
            array = np.asarray(img.convert("RGB"))
        self.writer.add_image(tag, array, step, dataformats="HWC")

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
