"""What the report reads from a run or study directory: JSON files, the stats log, the runs of a study.

Every reader tolerates what a killed or unfinished run leaves behind (a missing file, a torn last
log line) and says what it could not read instead of failing.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from ali.report.curves import number
from ali.rundir import (
    BALANCED_FILE,
    COMPARISON_FILE,
    LEGACY_BALANCED_FILE,
    METRICS_FILE,
    OPTIONS_FILE,
    STATS_FILE,
    list_checkpoints,
)

STUDY_FILE = "study.json"
_SEED_DIR = re.compile(r"^seed-(\d+)$")


def is_study_dir(path: Path) -> bool:
    """A study directory holds study.json, or the `<method>/seed-<n>/` runs of an unfinished study."""
    return path.is_dir() and ((path / STUDY_FILE).is_file() or bool(study_runs(path)))


def is_run_dir(path: Path) -> bool:
    """A run directory holds at least one of the files `ali train` writes."""
    names = (OPTIONS_FILE, STATS_FILE, METRICS_FILE, BALANCED_FILE, LEGACY_BALANCED_FILE, COMPARISON_FILE, "samples.png")
    return path.is_dir() and (any((path / n).is_file() for n in names) or bool(list_checkpoints(path)))


def read_json(path: Path) -> tuple[Any, str | None]:
    """(value, None), or (None, why it could not be read). Infinity and NaN literals are accepted."""
    if not path.is_file():
        return None, "missing"
    try:
        return json.loads(path.read_text()), None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, f"unreadable: {exc}"


def read_object(path: Path, missing: list[str]) -> dict[str, Any]:
    """The JSON object in path, or {} with the problem noted in `missing`."""
    value, why = read_json(path)
    if isinstance(value, dict):
        return value
    missing.append(path.name if why == "missing" else f"{path.name} ({why or 'not a JSON object'})")
    return {}


def read_stats(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """(log rows, events, lines skipped). A line that is not a JSON object (the torn last line of
    a run killed mid-write) is skipped and counted, never fatal."""
    rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    skipped = 0
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return rows, events, 0
    for line in filter(str.strip, lines):
        try:
            item = json.loads(line)
        except ValueError:
            item = None
        if isinstance(item, dict) and "event" in item:
            events.append(item)
        elif isinstance(item, dict) and math.isfinite(number(item.get("step"))):
            rows.append(item)
        else:
            skipped += 1
    return rows, events, skipped


def study_runs(study: Path) -> dict[str, list[tuple[int, Path]]]:
    """method -> [(seed, run dir)] for every `<method>/seed-<n>/` run, seeds ascending."""
    found: dict[str, list[tuple[int, Path]]] = {}
    for seed_dir in study.glob("*/seed-*"):
        if (m := _SEED_DIR.match(seed_dir.name)) and is_run_dir(seed_dir):
            found.setdefault(seed_dir.parent.name, []).append((int(m.group(1)), seed_dir))
    return {method: sorted(runs) for method, runs in sorted(found.items())}
