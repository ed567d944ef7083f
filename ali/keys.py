"""A config key's default and range rule: what TrainConfig and each method declare about a key."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Rule = tuple[Callable[[Any], bool], str]  # (check, what it requires, in words)

# The data_dir key's default lives here, below both ali.config and ali.data, so the loaders'
# "not found" messages can name the same variable the default reads.
DATA_DIR_ENV = "ALI_DATA_DIR"
DEFAULT_DATA_DIR = "data"


def default_data_dir() -> str:
    """Where datasets are read when no --data-dir or data_dir is given: $ALI_DATA_DIR if set
    (and not empty), else data/ under the working directory. Read on every call, so a config
    built after the variable changes sees the new value."""
    return os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR


@dataclass(frozen=True)
class Key:
    """A method's own config key: its default, its range rule and one line on what it does."""

    default: Any
    rule: Rule
    doc: str


def one_of(*choices: str) -> Rule:
    return (lambda v: v in choices), "one of " + ", ".join(choices)


def boolean() -> Rule:
    return (lambda v: isinstance(v, bool)), "true or false"


def in_range(lo: float, hi: float | None = None, lo_open: bool = False) -> Rule:
    def check(v: float) -> bool:
        above = v > lo if lo_open else v >= lo
        return above and (hi is None or v <= hi)

    desc = f"{'>' if lo_open else '>='} {lo}" + (f" and <= {hi}" if hi is not None else "")
    return check, desc
