"""The package version, in one place (checkpoint headers record it)."""

__version__ = "0.2.0"
