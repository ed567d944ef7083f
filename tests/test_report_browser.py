"""The report in a real browser (headless Chromium): every picture decodes, nothing errors, and a
screenshot is kept for a person to look at.

Chromium is Debian's `chromium` package, installed here when missing. Without it the test skips on
a developer's machine but fails under CI (CI=true), where the browser check must not go quiet.
Set ALI_SCREENSHOT_DIR to keep the screenshots outside pytest's temporary directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import chromium as browser
import pytest
import report_fixtures as fx
from PIL import Image

from ali.report.pages import write_report


@pytest.fixture(scope="session")
def chromium() -> str:
    path, log = browser.install_chromium()
    if path is None:
        message = f"headless Chromium is not installed and could not be installed:\n{log}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def _keep(shot: Path) -> None:
    target = os.environ.get("ALI_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy2(shot, Path(target) / shot.name)


def _check_loads(chromium: str, page: Path, workdir: Path) -> dict:
    seen = browser.inspect_page(chromium, page, workdir)
    assert seen["widths"], "the page shows no picture"
    assert all(w > 0 for w in seen["widths"]), f"pictures that did not load: {seen['widths']}"
    assert seen["errors"] == [] and seen["console"] == [], seen
    return seen


def test_run_report_loads_in_a_browser(chromium, tmp_path):
    run = fx.toy_run(tmp_path / "run")
    fx.write_png(run / "samples-000000100.png", size=(64, 64))  # one of each kind of picture
    page = write_report(run)
    seen = _check_loads(chromium, page, tmp_path)
    assert len(seen["widths"]) == 5  # three curve figures, the comparison, one grid over training
    shot = browser.screenshot(chromium, page, tmp_path / "report-run.png")
    with Image.open(shot) as im:
        assert im.size == (1280, 2400)
        darkest, lightest = im.convert("L").getextrema()
        assert lightest - darkest > 100  # something was drawn: not a blank page
    _keep(shot)


def test_study_report_loads_in_a_browser(chromium, tmp_path):
    page = write_report(fx.study(tmp_path / "study"))
    _check_loads(chromium, page, tmp_path)
    _check_loads(chromium, page.parent / "ali" / "seed-0" / "report.html", tmp_path)  # where its links lead
    _keep(browser.screenshot(chromium, page, tmp_path / "report-study.png"))


def test_the_harness_sees_a_broken_picture(chromium, tmp_path):
    # the check above must be able to fail: a page with a missing picture and a console error
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head></head><body><img src="nowhere.png"><script>console.error("x")</script></body></html>'
    )
    seen = browser.inspect_page(chromium, page, tmp_path)
    assert seen["widths"] == [0]
    assert any("nowhere.png" in e for e in seen["errors"]) and "console.error: x" in seen["errors"]
