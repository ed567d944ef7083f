"""../shared/data beside the repository (real MNIST, Fashion-MNIST, CelebA, Tiny-ImageNet files),
for the tests that need it: they fail under CI=true when it is missing and skip elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def require_shared(*parts: str) -> Path:
    """SHARED, when every named folder under it exists; otherwise fail (CI=true) or skip."""
    missing = [str(SHARED / p) for p in parts if not (SHARED / p).is_dir()]
    if missing:
        message = f"shared data missing: {', '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return SHARED
