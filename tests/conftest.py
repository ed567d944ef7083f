"""Suite-wide settings.

- No test reads or writes the user's cache of trained classifiers.
- Tests that need the real datasets ask for them with require_shared or the mnist_dir fixture.
- ALI_DATA_DIR points at those datasets (tests/shared_data.py) for the whole session, so a
  config's default data_dir finds them; tests of the default itself unset it.
- Training runs in tests skip the HTML report (matplotlib drawing is a second per run, and the
  suite trains dozens of tiny runs); tests marked `report` keep it (tests/test_report*.py call
  ali.report.pages directly).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from ali.keys import DATA_DIR_ENV
from tests.shared_data import SHARED, require_shared

os.environ["ALI_CACHE_DIR"] = tempfile.mkdtemp(prefix="ali-test-cache-")
if not os.environ.get(DATA_DIR_ENV):  # an empty value means unset to `ali` too
    os.environ[DATA_DIR_ENV] = str(SHARED)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    return require_shared("mnist")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "report: let training runs in this test write report.html")


@pytest.fixture(autouse=True)
def _no_report_after_training(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("report") is None:
        from ali import finish, study

        monkeypatch.setattr(finish, "write_report", lambda run_dir: run_dir / "report.html")
        monkeypatch.setattr(study, "write_report", lambda out: out / "report.html")
