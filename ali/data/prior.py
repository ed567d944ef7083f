"""The prior batch z ~ N(0, I) of each training step (config `prior_sampling`).

"random" draws i.i.d. normals, as the paper does. "sobol" takes consecutive points of one
scrambled Sobol sequence through the normal inverse CDF: every point is still N(0, I), but each
batch covers the prior evenly instead of by chance. Why it matters here: the decoder normalises
each layer with the statistics of its batch, so with i.i.d. batches the function it computes
moves a little from step to step, away from the evaluation-mode decoder that draws samples.
Stratified batches keep the training-time decoder about twice as close to the evaluated one
(benchmarks/toy_batchnorm_jitter.py), and that is the decoder the encoder learns to invert
(docs/RESULTS.md, toy recipe).

Batch `step` is points [step * n, (step + 1) * n) of the sequence, so a resumed run draws what
an uninterrupted one would. Data-parallel ranks scramble with different seeds.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

# SobolEngine supports 2**30 points; past that the sequence starts over with a new scramble.
_PERIOD = 2**30
# ndtri(u) is infinite at u = 0 or 1; clamping costs only the prior's mass beyond 5.6 std.
_U_MIN = 1e-8


class SobolNormal:
    """N(0, I) batches from a scrambled Sobol sequence, indexed by training step."""

    def __init__(self, dim: int, seed: int):
        self.dim, self.seed = dim, seed
        self._engine: torch.quasirandom.SobolEngine | None = None
        self._period = -1

    def __call__(self, n: int, step: int, device: torch.device | str = "cpu") -> torch.Tensor:
        period, start = divmod(step * n, _PERIOD)
        if start + n > _PERIOD:  # a batch never straddles two scrambles
            period, start = period + 1, 0
        engine = self._engine
        if engine is None or period != self._period or engine.num_generated != start:
            engine = torch.quasirandom.SobolEngine(self.dim, scramble=True, seed=self.seed + 7_919 * period)
            engine.fast_forward(start)
            self._engine, self._period = engine, period
        u = engine.draw(n, dtype=torch.float64).clamp(_U_MIN, 1 - _U_MIN)
        return torch.special.ndtri(u).to(device=device, dtype=torch.float32)


class PriorSampler:
    """The prior batch of each training step: i.i.d. normals ("random") or Sobol points ("sobol")."""

    def __init__(self, kind: str, latent_dim: int, seed: int):
        if kind not in ("random", "sobol"):
            raise ValueError(f"unknown prior sampling {kind!r}")
        self.latent_dim = latent_dim
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        self._sobol = SobolNormal(latent_dim, seed * 1_000_003 + rank) if kind == "sobol" else None

    def __call__(self, n: int, step: int, device: torch.device | str = "cpu") -> torch.Tensor:
        if self._sobol is None:
            return torch.randn(n, self.latent_dim, device=device)
        return self._sobol(n, step, device)
