"""Divergence guard: keep non-finite values out of checkpoints, recover, and warn when D wins.

Checking every step would need a host sync per step, so the loop asks the guard only where it
syncs anyway: at each log line (the on-device loss sums) and right before each checkpoint (the
losses, every weight and every optimizer state tensor). On a non-finite value the guard restores
the last good state it holds in memory (the state of the newest checkpoint, or the start of the
run), multiplies the learning rate by `guard_lr_factor` and logs a warning; after
`guard_max_failures` recoveries the run stops with an AliError. Independently it warns when loss_d
stays below `guard_d_win_loss` for `guard_d_win_logs` log lines in a row: D then separates real
from fake pairs almost perfectly and the generators learn little from its gradient.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ali.checkpoint import load_optimizer_state
from ali.errors import AliError
from ali.rundir import run_dir_writes, truncate_stats


def _cpu_copy(obj: Any) -> Any:
    """A deep copy with every tensor cloned to the CPU (so a snapshot costs no accelerator memory)."""
    if torch.is_tensor(obj):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu_copy(v) for v in obj)
    return obj


@dataclass
class GoodState:
    """Everything the loop needs to continue from `step` as if nothing had happened since."""

    step: int
    model: dict[str, torch.Tensor]
    optimizers: dict[str, dict[str, Any]]
    rng: torch.Tensor
    pending: dict[str, torch.Tensor] = field(default_factory=dict)
    pending_count: int = 0


class DivergenceGuard:
    """Detects non-finite training state, rolls back to the last good state, lowers the lr."""

    def __init__(self, config: Any, stats_path: Path, lr_scale: float = 1.0, failures: int = 0):
        self.config, self.stats_path = config, stats_path
        self.lr_scale, self.failures = lr_scale, failures
        self.good: GoodState | None = None
        self._low_d_logs, self._low_d_since = 0, 0

    def remember(
        self,
        step: int,
        model: torch.nn.Module,
        optimizers: dict[str, torch.optim.Optimizer],
        pending: dict[str, torch.Tensor],
        pending_count: int,
    ) -> None:
        """Hold a copy of a state known to be finite (call it right after a checkpoint, or at the start)."""
        self.good = GoodState(
            step,
            _cpu_copy(model.state_dict()),
            {name: _cpu_copy(opt.state_dict()) for name, opt in optimizers.items()},
            torch.get_rng_state(),
            _cpu_copy(pending),
            pending_count,
        )

    def is_healthy(
        self, model: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer], pending: dict[str, torch.Tensor], full: bool
    ) -> bool:
        """True when the pending loss sums and weights (and with `full`, the optimizer states) are finite."""
        tensors = list(pending.values()) + [p for p in model.parameters()]
        if full:
            tensors += [v for opt in optimizers.values() for s in opt.state.values() for v in s.values() if torch.is_tensor(v)]
        flags = [torch.isfinite(t).all() for t in tensors if t.is_floating_point()]
        return bool(torch.stack(flags).all()) if flags else True  # one host sync for all of them

    def recover(self, step: int, model: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer]) -> GoodState:
        """Roll back to the last good state with a lower lr, or stop when recoveries are used up."""
        if self.good is None:
            raise AliError(f"training produced a non-finite value at step {step} and no good state is held")
        self.failures += 1
        if self.failures > self.config.guard_max_failures:
            raise AliError(
                f"training diverged: non-finite loss or weights at step {step} after {self.failures - 1} recoveries "
                f"(lr scaled to x{self.lr_scale:g}); every checkpoint on disk holds finite values. Start a new run "
                f"with a lower lr (was {self.config.lr:g}) or raise guard_max_failures"
            )
        self.lr_scale *= self.config.guard_lr_factor
        good = self.good
        model.load_state_dict(good.model)
        for name, opt in optimizers.items():
            load_optimizer_state(opt, good.optimizers[name])
        torch.set_rng_state(good.rng)
        self._low_d_logs = 0
        event = {
            "step": good.step,
            "event": "divergence",
            "detected_at": step,
            "lr_scale": self.lr_scale,
            "failures": self.failures,
        }
        self._drop_rows_after(good.step)
        self._log(
            event,
            f"non-finite loss or weights at step {step}: restored step {good.step}, "
            f"lr scaled to x{self.lr_scale:g} (recovery {self.failures} of {self.config.guard_max_failures})",
        )
        return good

    def watch(self, row: dict[str, float]) -> None:
        """Warn once per streak when loss_d stays near 0 for guard_d_win_logs log lines."""
        threshold = self.config.guard_d_win_loss
        loss_d = row.get("loss_d")
        if threshold <= 0 or loss_d is None:
            return
        if loss_d >= threshold:
            self._low_d_logs = 0
            return
        if self._low_d_logs == 0:
            self._low_d_since = int(row["step"])
        self._low_d_logs += 1
        if self._low_d_logs == self.config.guard_d_win_logs:
            event = {
                "step": int(row["step"]),
                "event": "d_wins",
                "since_step": self._low_d_since,
                "loss_d": loss_d,
                "loss_g": row.get("loss_g"),
            }
            self._log(
                event,
                f"D wins completely: loss_d = {loss_d:g} (< {threshold:g}) on every log line from step "
                f"{self._low_d_since} to {int(row['step'])}, loss_g = {row.get('loss_g')}; the generators "
                "get little gradient: try a lower lr, or update='alternating'",
            )

    def state(self) -> dict[str, Any]:
        """What a checkpoint must carry so a resumed run keeps the lowered lr and the failure count."""
        return {"lr_scale": self.lr_scale, "guard_failures": self.failures}

    def _log(self, event: dict[str, Any], message: str) -> None:
        print(f"warning: {message}", file=sys.stderr)
        with run_dir_writes(self.stats_path.parent, "stats.jsonl"):
            with open(self.stats_path, "a") as f:
                f.write(json.dumps(event) + "\n")

    def _drop_rows_after(self, step: int) -> None:
        """The rolled-back steps will be trained and logged again: drop their old lines."""
        with run_dir_writes(self.stats_path.parent, "stats.jsonl"):
            truncate_stats(self.stats_path, step)
