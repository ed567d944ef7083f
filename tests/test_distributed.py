"""Data-parallel training: two gloo processes on the CPU against one process on the global batch.

What is compared: after a few steps of `ali.training.loop.train`, (1) both ranks hold identical
parameters, and (2) they equal (to float tolerance) the parameters of a single process that
trained on the same global batches. For (2) the math must be the same, so the run uses a toy
network without batch norm (batch norm would normalise each rank's half separately) and
draws its noise (z and the encoder's eps) from a table of the global batch, each rank taking its
rows: otherwise each rank's noise would differ from the single process's, by design.
Both the fused simultaneous update and the alternating update are checked.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ali.config import make_config
from ali.data.prior import PriorSampler
from ali.nets import architectures
from ali.nets.architectures import TOY, _mlp
from ali.nets.layers import Layer
from ali.nets.networks import NoiseEncoder
from ali.training import loop

ARCH = "toy-no-bn"
GLOBAL_BATCH = 8
CONFIG = {
    "dataset": "toy25",
    "arch": ARCH,
    "batch_size": GLOBAL_BATCH,
    "steps": 4,
    "log_every": 2,
    "checkpoint_every": 4,
    "eval_samples": 100,
    "threads": 1,
    "lr": 1e-3,
    "device": "cpu",
    "precision": "fp32",
}


def _install_test_network_and_noise(rank: int) -> None:
    """Register the no-batch-norm toy net; make noise a function of (call, global row) only."""
    architectures.ARCHITECTURES[ARCH] = dataclasses.replace(
        TOY,
        encoder=_mlp([64], 2, act="relu"),
        decoder=_mlp([64], 2, act="relu"),
        d_joint=[Layer("dense", 100, act="maxout5"), Layer("dense", 1)],
    )
    calls = {"z": 0, "eps": 0}

    def global_rows(kind: str, local: int, width: int) -> torch.Tensor:
        if local > GLOBAL_BATCH:  # the final evaluation (rank 0 only): any noise will do
            return torch.randn(local, width)
        gen = torch.Generator().manual_seed(1000 * calls[kind] + (kind == "eps"))
        calls[kind] += 1
        return torch.randn(GLOBAL_BATCH, width, generator=gen)[rank * local : (rank + 1) * local]

    PriorSampler.__call__ = lambda self, n, step, device="cpu": global_rows("z", n, self.latent_dim)  # type: ignore[method-assign]

    def encoder_forward(self, x):
        return self.net(torch.cat([x, global_rows("eps", x.shape[0], x.shape[1])], dim=1))

    NoiseEncoder.forward = encoder_forward  # type: ignore[method-assign]


def _train_and_dump(run_dir, update: str, rank: int, dump: str) -> None:
    captured = {}
    build = loop.build_model

    def capture(config, method=None):
        captured["model"], opts = build(config, method)
        return captured["model"], opts

    loop.build_model = capture
    try:
        loop.train(make_config({**CONFIG, "update": update}), run_dir, progress=False)
    finally:
        loop.build_model = build
    torch.save({k: v.clone() for k, v in captured["model"].state_dict().items()}, dump)


def _worker(rank: int, port: int, tmp: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    _install_test_network_and_noise(rank)
    dist.init_process_group("gloo")  # one group for both runs; train() leaves a caller's group open
    try:
        for update in ("simultaneous", "alternating"):
            _train_and_dump(Path(tmp) / f"ddp-{update}", update, rank, os.path.join(tmp, f"{update}-rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def single_process_noise(monkeypatch):
    monkeypatch.setattr(PriorSampler, "__call__", PriorSampler.__call__)
    monkeypatch.setattr(NoiseEncoder, "forward", NoiseEncoder.forward)
    monkeypatch.setitem(architectures.ARCHITECTURES, ARCH, TOY)
    _install_test_network_and_noise(rank=0)


def test_two_gloo_ranks_match_each_other_and_one_process_on_the_global_batch(tmp_path, single_process_noise):
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        assert var not in os.environ
    mp.start_processes(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    for update in ("simultaneous", "alternating"):
        _train_and_dump(tmp_path / f"single-{update}", update, 0, str(tmp_path / f"{update}-single.pt"))
        ranks = [torch.load(tmp_path / f"{update}-rank{r}.pt") for r in (0, 1)]
        single = torch.load(tmp_path / f"{update}-single.pt")
        initial = loop.build_model(make_config({**CONFIG, "update": update}))[0].state_dict()
        for key, value in single.items():
            assert torch.equal(ranks[0][key], ranks[1][key]), f"{update}: ranks differ at {key}"
            torch.testing.assert_close(ranks[0][key], value, rtol=1e-4, atol=1e-5, msg=f"{update}: {key}")
        assert any(not torch.equal(single[k], initial[k]) for k in single), "training changed nothing"
        # Only rank 0 wrote: one run directory per job, holding the final checkpoint.
        assert sorted(p.name for p in (tmp_path / f"ddp-{update}").glob("checkpoint-*")) == ["checkpoint-000000004.safetensors"]
