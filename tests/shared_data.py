"""The real datasets (MNIST, Fashion-MNIST, CelebA, Tiny-ImageNet files) for the tests that need
them: the folder ALI_DATA_DIR names, the same variable `ali` reads; without it, ../shared/data
beside the repository. Those tests fail under CI=true when a dataset is missing and skip elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ali.keys import DATA_DIR_ENV

SHARED = Path(os.environ.get(DATA_DIR_ENV) or Path(__file__).resolve().parents[2] / "shared" / "data")


def require_shared(*parts: str) -> Path:
    """SHARED, when every named folder under it exists; otherwise fail (CI=true) or skip."""
    missing = [str(SHARED / p) for p in parts if not (SHARED / p).is_dir()]
    if missing:
        message = f"shared data missing: {', '.join(missing)} (set {DATA_DIR_ENV} to the folder that holds them)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return SHARED
