"""The Python API: a trained image run as an object.

    import ali
    model = ali.load("runs/mnist")
    x = model.sample(16, seed=0)          # (16, 1, 28, 28) floats in [0, 1]
    z = model.encode(x)                   # codes z ~ q(z|x); mean=True for the encoder's mean
    x_rec = model.reconstruct(x)
    s = model.anomaly_score(x)            # higher: more anomalous (runs of `ali anomaly`)

Inputs may be uint8 or float tensors, numpy arrays or PIL images, one image or a batch:
uint8 values are scaled by 1/255, float values must already be in [0, 1]; arrays and images in
height x width (x channels) layout are moved to channels first. Every call runs in evaluation
mode (batch-norm running averages, no dropout), without gradients, on the model's device.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ali import rundir
from ali.config import TrainConfig
from ali.data.dataset import as_conditions
from ali.errors import AliError
from ali.evaluation.anomaly import anomaly_scores
from ali.evaluation.image_eval import decode, encode
from ali.nets.model import Model
from ali.pictures import load_image_run
from ali.rundir import METRICS_FILE, default_weights
from ali.training.build import condition_dim


class TrainedModel:
    """Encoder and decoder of a finished image run. Build it with `ali.load(run_dir)`."""

    def __init__(self, model: Model, config: TrainConfig, step: int, device: torch.device, metrics: dict[str, Any] | None = None):
        self.model, self.config, self.step, self.device = model.to(device).eval(), config, step, device
        self.metrics = {} if metrics is None else metrics  # the run's metrics.json, where these are its weights

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.model.arch.x_shape)

    @property
    def latent_dim(self) -> int:
        return self.model.arch.latent_dim

    def images(self, x: Any) -> torch.Tensor:
        """Any accepted input as an (N, C, H, W) float tensor in [0, 1] on the model's device."""
        if isinstance(x, Image.Image):
            x = np.asarray(x.convert("L" if self.image_shape[0] == 1 else "RGB"))
        if isinstance(x, (list, tuple)) and x and isinstance(x[0], Image.Image):
            x = np.stack([np.asarray(i.convert("L" if self.image_shape[0] == 1 else "RGB")) for i in x])
        if isinstance(x, np.ndarray):
            x = _channels_first(torch.from_numpy(np.array(x)), self.image_shape)  # a writable copy
        if not torch.is_tensor(x):
            raise AliError(f"expected a tensor, numpy array or PIL image, got {type(x).__name__}")
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        elif not x.is_floating_point():
            raise AliError(f"images must be uint8 or float, got {x.dtype}")
        x = x.float()
        if x.dim() == len(self.image_shape):
            x = x.unsqueeze(0)
        if tuple(x.shape[1:]) != self.image_shape:
            raise AliError(f"images of shape {tuple(x.shape[1:])} do not fit this model, which takes {self.image_shape}")
        if x.numel() and (float(x.min()) < 0 or float(x.max()) > 1):
            raise AliError("float images must lie in [0, 1] (uint8 images are scaled by 1/255)")
        return x.to(self.device)

    @property
    def condition_dim(self) -> int:
        """The size of a conditional run's condition vectors; 0 for an unconditional one."""
        return condition_dim(self.config)

    def conditions(self, condition: Any, n: int) -> torch.Tensor | None:
        """`condition` for n examples as condition vectors: a class (int), one class per example
        (list of ints), or an (n, condition_dim) tensor of attributes. None for unconditional runs."""
        size = self.condition_dim
        if not size:
            if condition is not None:
                raise AliError("this run is not conditional: drop condition=")
            return None
        if condition is None:
            raise AliError(f"this run is conditional: pass condition= (a class, a list of classes, or an (N, {size}) tensor)")
        if isinstance(condition, int):
            condition = [condition] * n
        c = torch.as_tensor(condition)
        if c.dim() == 1 and len(c) != n or c.dim() == 2 and len(c) != n:
            raise AliError(f"{len(c)} conditions for {n} examples; give one per example")
        return as_conditions(c, size, "condition=").to(self.device)

    @torch.inference_mode()
    def encode(self, x: Any, mean: bool = False, condition: Any = None) -> torch.Tensor:
        """Codes of images: z ~ q(z|x) (or q(z|x, y)), or the encoder's mean with mean=True."""
        images = self.images(x)
        return encode(self.model, images, mean=mean, conditions=self.conditions(condition, len(images)))

    @torch.inference_mode()
    def decode(self, z: torch.Tensor, condition: Any = None) -> torch.Tensor:
        """Images Gx(z) (or Gx(z, y)) in [0, 1] of codes z (N x latent_dim)."""
        z = torch.as_tensor(z, dtype=torch.float32, device=self.device)
        if z.dim() == 1:
            z = z.unsqueeze(0)
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise AliError(f"codes must be N x {self.latent_dim}, got shape {tuple(z.shape)}")
        return decode(self.model, z, self.conditions(condition, len(z)))

    def reconstruct(self, x: Any, mean: bool = False, condition: Any = None) -> torch.Tensor:
        """Gx(Gz(x)): the paper's reconstructions."""
        return self.decode(self.encode(x, mean=mean, condition=condition), condition=condition)

    def anomaly_score(self, x: Any, score: str = "recon", sigma2: float | None = None) -> torch.Tensor:
        """Anomaly scores of images (higher: more anomalous; ali.evaluation.anomaly): "recon" or
        "complexity" (every run), "egbad" (a joint D) or "alad" (ALICE's (x, x) D). The
        complexity score's noise variance `sigma2` defaults to the one an `ali anomaly` run
        measured on its training images (metrics.json's anomaly_noise_variance)."""
        if self.condition_dim:
            raise AliError("anomaly scores are defined for unconditional runs; this run conditions on labels")
        if score == "complexity" and sigma2 is None:
            sigma2 = self.metrics.get("anomaly_noise_variance")
            if sigma2 is None:
                raise AliError(
                    "the complexity score needs sigma2, the noise variance of the training images' reconstructions; "
                    "pass sigma2=ali.evaluation.anomaly.noise_variance(model.model, training_images)"
                )
        return anomaly_scores(self.model, self.images(x), (score,), sigma2)[score]

    def sample(self, n: int, seed: int | None = None, condition: Any = None) -> torch.Tensor:
        """n samples Gx(z), z ~ N(0, I); the same seed draws the same z as `ali sample --seed`."""
        if n < 1:
            raise AliError(f"n must be >= 1, got {n}")
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        return self.decode(torch.randn(n, self.latent_dim, generator=generator), condition=condition)


def _channels_first(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """H x W, H x W x C or N x H x W x C arrays (the numpy / PIL layout) to channels first."""
    channels = shape[0]
    if x.dim() == 2 or (x.dim() == 3 and x.shape[0] != channels and x.shape[-1] != channels):
        x = x.unsqueeze(-1)  # greyscale H x W (or N x H x W)
    if x.shape[-1] == channels and tuple(x.shape[-3:-1]) == tuple(shape[1:]):
        return x.movedim(-1, -3)
    return x


def load(
    run_dir: str | Path, device: str | torch.device = "cpu", allow_unfinished: bool = False, weights: str | None = None
) -> TrainedModel:
    """A finished image run, from its newest valid checkpoint. allow_unfinished=True takes a run
    still training or cut off (its newest checkpoint). `weights`: "average" or "live" generator
    weights (default: the run's weight average where it keeps one, ema_decay)."""
    run_dir = Path(run_dir)
    if not allow_unfinished and not (run_dir / METRICS_FILE).is_file():
        if not rundir.list_checkpoints(run_dir):
            raise AliError(f"{run_dir} holds no checkpoint: train it first (ali train --out {run_dir})")
        raise AliError(
            f"{run_dir} has not finished training (no {METRICS_FILE}); finish it with "
            f"`ali train --out {run_dir} --resume`, or pass allow_unfinished=True for its newest checkpoint"
        )
    config, model, step = load_image_run(run_dir, "ali.load is for image runs", weights)
    metrics_file = run_dir / METRICS_FILE
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    if weights not in (None, default_weights(config)) or metrics.get("steps") != step:
        metrics = {}  # the end-of-training figures describe the run's default weights at its last step
    return TrainedModel(model, config, step, torch.device(device), metrics)
