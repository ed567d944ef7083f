"""Progress display: tqdm's bar on a terminal, a plain line every so often anywhere else.

A bar redraws itself with carriage returns, which a log file (CI, `nohup`, a job scheduler)
keeps as one frame per redraw: thousands for a demo run. Where stderr is not a terminal the
display prints a line such as `alice: step 1200/6000 (20%) 52.1 steps/s loss_d=0.69 eta 1m32s`
every `interval` seconds, and one when it closes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from tqdm import tqdm

# Seconds between plain lines: a 30-minute run logs about 60 lines.
INTERVAL_S = 30.0


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _value(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


class PlainProgress:
    """The subset of tqdm's interface the package uses (`n`, update, set_postfix, close), written
    as whole lines at most every `interval` seconds (the clock is injectable for tests)."""

    def __init__(
        self,
        total: int,
        initial: int = 0,
        desc: str = "",
        interval: float = INTERVAL_S,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        disable: bool = False,
    ):
        self.total, self.n, self.desc = total, initial, desc
        self.interval, self.stream, self.clock, self.disable = interval, stream, clock, disable
        self.postfix: dict[str, Any] = {}
        self.began = self.last = clock()
        self.updates = 0  # steps done in this display, for the rate (n can move back on a rollback)
        self.unreported = False

    def update(self, n: int = 1) -> None:
        self.n += n
        self.updates += n
        self.unreported = True
        if not self.disable and self.clock() - self.last >= self.interval:
            self._write()

    def set_postfix(self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        self.postfix = {**(ordered_dict or {}), **kwargs}

    def close(self) -> None:
        if not self.disable and self.unreported:
            self._write(final=True)
        self.disable = True

    def line(self, final: bool = False) -> str:
        elapsed = max(self.clock() - self.began, 1e-9)
        rate = self.updates / elapsed
        parts = [f"{self.desc}: step" if self.desc else "step", f"{self.n}/{self.total}"]
        if self.total:
            parts.append(f"({100 * self.n / self.total:.0f}%)")
        parts.append(f"{rate:.1f} steps/s")
        parts += [f"{k}={_value(v)}" for k, v in self.postfix.items()]
        if final:
            parts.append(f"in {_duration(elapsed)}")
        elif rate > 0 and self.total:
            parts.append(f"eta {_duration(max(self.total - self.n, 0) / rate)}")
        return " ".join(parts)

    def _write(self, final: bool = False) -> None:
        stream = self.stream or sys.stderr
        print(self.line(final), file=stream, flush=True)
        self.last, self.unreported = self.clock(), False


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(
    total: int,
    desc: str = "",
    initial: int = 0,
    enabled: bool = True,
    leave: bool = True,
    interval: float | None = None,
    stream: TextIO | None = None,
) -> tqdm | PlainProgress:
    """tqdm's bar when `stream` (default: stderr) is a terminal, else a PlainProgress writing a
    line every `interval` seconds (default INTERVAL_S). `enabled=False` shows nothing."""
    stream = stream or sys.stderr
    if enabled and _is_terminal(stream):
        return tqdm(total=total, initial=initial, desc=desc, leave=leave, dynamic_ncols=True, file=stream)
    return PlainProgress(total, initial, desc, INTERVAL_S if interval is None else interval, stream=stream, disable=not enabled)
