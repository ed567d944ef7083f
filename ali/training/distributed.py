"""Data-parallel training over torch.distributed: `torchrun --nproc-per-node N -m ali train ...`.

Each of the N processes (ranks) holds a full replica of the networks and optimizers. Every step
the EpochSampler yields the same global batch of `batch_size` indices on all ranks (it is
deterministic from (seed, step)); rank r trains on its contiguous slice of batch_size / N of them.
Gradients are averaged over ranks right before each optimizer step, so the replicas stay equal and
the update is the one a single process would make on the global batch (exactly so when no layer
mixes examples; batch norm sees the local slice unless sync_bn, on GPUs).

Why an explicit all-reduce rather than the DistributedDataParallel wrapper: DDP's reducer assumes
one forward and one `.backward()` per wrapped module per step. The ALI step calls the encoder
and decoder more than once (ALICE term, inverse loss, VAE `moments`), runs D twice in the
alternating mode, and fills gradients with `torch.autograd.grad` in the two-pass mode, which never
fires DDP's hooks. One bucketed `all_reduce` of the same gradients, over the same NCCL (GPU) or gloo
(CPU) process group, is DDP's arithmetic for every mode, and leaves state_dict keys unchanged so
checkpoints resume at any world size. The cost is no overlap of communication with the backward.

Only rank 0 writes (stats.jsonl, checkpoints, grids, metrics); logged losses are averaged over
ranks first, so the divergence guard takes the same decision on every rank.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from ali.config import TrainConfig
from ali.errors import AliError
from ali.nets.model import Model
from ali.training.hardware import resolve_device


@dataclass
class DistContext:
    """This process's place in the job. A plain run is rank 0 of world 1."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False  # this run created the process group (a caller's group is left alone)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def all_reduce_mean(self, tensors: list[torch.Tensor]) -> None:
        """Average `tensors` in place over the ranks with one collective (no-op in one process)."""
        if not self.active or not tensors:
            return
        flat = _flatten_dense_tensors([t.detach() for t in tensors])
        dist.all_reduce(flat)
        flat.div_(self.world)
        for t, avg in zip(tensors, _unflatten_dense_tensors(flat, tensors)):
            t.detach().copy_(avg)

    def broadcast_state(self, module: nn.Module) -> None:
        """Make every rank's parameters and buffers rank 0's (init and resume agree anyway)."""
        if self.active:
            for t in module.state_dict().values():
                dist.broadcast(t, 0)

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def local_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of the global batch, on the data's device."""
        per_rank = indices.shape[0] // self.world
        mine = indices[self.rank * per_rank : (self.rank + 1) * per_rank]
        if self.device.type == "cuda":
            # Pinned + non_blocking: a pageable copy would make the host wait for the GPU each step.
            return mine.pin_memory().to(self.device, non_blocking=True)
        return mine


def start(config: TrainConfig) -> DistContext:
    """Join the torchrun job named by the environment (WORLD_SIZE, RANK, LOCAL_RANK), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(config.device, local_rank)
    ctx = DistContext(rank, world, local_rank, device)
    if world == 1:
        if config.sync_bn:
            raise AliError("sync_bn=true needs a multi-process run (torchrun --nproc-per-node N); drop it")
        return ctx
    if config.batch_size % world:
        raise AliError(f"batch_size {config.batch_size} is not divisible by the {world} processes; choose a multiple of {world}")
    if config.sync_bn and device.type != "cuda":
        raise AliError("sync_bn=true needs CUDA devices (torch's SyncBatchNorm has no CPU kernel); drop it or use device=cuda")
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        ctx.owns_group = True
    return ctx


def prepare_replica(model: Model, ctx: DistContext, sync_bn: bool) -> Model:
    """SyncBatchNorm if asked (same Parameter objects: the optimizers stay valid), then rank 0's state."""
    if ctx.active and sync_bn:
        for name, net in model.trained_networks():
            model[name] = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    ctx.broadcast_state(model)
    return model


def reseed(ctx: DistContext, seed: int, step: int) -> None:
    """Distinct noise (z, eps, dropout) per rank; rank 0 keeps its own stream, so N=1 is unchanged."""
    if ctx.rank > 0:
        torch.manual_seed((seed * 1_000_003 + ctx.rank * 7_919 + step) % (2**63))


def finish(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()
