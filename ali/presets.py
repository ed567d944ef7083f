"""Named training configs: `ali train --config NAME`. Each is a set of overrides on TrainConfig."""

from __future__ import annotations

from typing import Any

# The paper's toy recipe (NOTES §3): Adam 1e-4, batch 100, 200 epochs of 100,000 points.
_TOY_PAPER: dict[str, Any] = {"arch": "toy", "latent_dim": 2, "batch_size": 100, "steps": 200_000, "lr": 1e-4, "init_std": 0.02}

# The project's default toy recipe: see docs/RESULTS.md for what it changes and why.
_TOY_DEFAULT: dict[str, Any] = {**_TOY_PAPER, "steps": 4_000, "batch_size": 256, "lr": 1e-3, "decay_start": 0.5, "lr_final_fraction": 0.02, "recon_weight": 1.0, "log_every": 100, "checkpoint_every": 1_000}

PRESETS: dict[str, dict[str, Any]] = {
    "toy25": {**_TOY_DEFAULT, "dataset": "toy25"},
    "toy25-paper": {**_TOY_PAPER, "dataset": "toy25", "checkpoint_every": 10_000},
    "ring8": {**_TOY_DEFAULT, "dataset": "ring8"},
}
