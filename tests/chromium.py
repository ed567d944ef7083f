"""Headless Chromium for the report's browser test: find or install it, load a page, read back
what the page saw, take a screenshot. No Python dependency: the browser's own command line.

A page is checked through a harness copy of it: a script placed first in <head> records load
errors (window 'error' events, which fire for a picture that fails) and console.error calls, and
after 'load' writes them, with every picture's naturalWidth, into a <pre id="__harness"> that
`--dump-dom` prints. Anything the browser itself logs to the console is read from stderr too.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
# Every flag keeps the browser off the network and out of any profile but a fresh one.
FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
_HARNESS = """<script>
window.__errors = [];
addEventListener("error", e => __errors.push(e.message || ("failed to load " + ((e.target && e.target.src) || "?").slice(-80))), true);  // the end: the file name, however deep its folder
const __consoleError = console.error;
console.error = (...a) => { __errors.push("console.error: " + a.join(" ")); __consoleError.apply(console, a); };
addEventListener("load", () => {
  const out = document.createElement("pre");
  out.id = "__harness";
  out.textContent = JSON.stringify({widths: [...document.images].map(i => i.naturalWidth), errors: __errors});
  document.body.appendChild(out);
});
</script>"""
_RESULT = re.compile(r'<pre id="__harness">(.*?)</pre>', re.DOTALL)
_CONSOLE = re.compile(r":CONSOLE[:(\]].*")


def find_chromium() -> str | None:
    return shutil.which("chromium") or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)


def install_chromium() -> tuple[str | None, str]:
    """(path, log): Debian's chromium package, installed with apt-get when it is missing."""
    if find_chromium():
        return find_chromium(), ""
    if not shutil.which("apt-get"):
        return None, "no apt-get on this machine"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(
            "apt-get update && apt-get install -y chromium",
            shell=True,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        log = (done.stdout + done.stderr)[-3000:]
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"apt-get failed: {exc}"
    return find_chromium(), log


def _run(chromium: str, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="ali-chromium-") as profile:
        return subprocess.run(
            [chromium, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=timeout
        )


def inspect_page(chromium: str, page: Path, workdir: Path) -> dict[str, Any]:
    """Load `page` (through a harness copy in workdir, beside nothing it could borrow from) and
    return {"widths": [naturalWidth per <img>], "errors": [...], "console": [browser log lines]}."""
    text = page.read_text()
    head = text.index("<head>") + len("<head>")
    harness = workdir / f"harness-{page.name}"
    harness.write_text(text[:head] + _HARNESS + text[head:])
    done = _run(chromium, ["--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom", harness.as_uri()])
    found = _RESULT.search(done.stdout)
    if found is None:
        raise AssertionError(f"the harness did not report (rc {done.returncode}): {done.stderr[-2000:]}")
    result = json.loads(html.unescape(found.group(1)))
    result["console"] = [m.group(0) for line in done.stderr.splitlines() if (m := _CONSOLE.search(line))]
    return result


def screenshot(chromium: str, page: Path, out: Path, size: tuple[int, int] = (1280, 2400)) -> Path:
    done = _run(chromium, [f"--window-size={size[0]},{size[1]}", f"--screenshot={out}", page.as_uri()])
    if not out.is_file():
        raise AssertionError(f"no screenshot written (rc {done.returncode}): {done.stderr[-2000:]}")
    return out
