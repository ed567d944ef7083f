"""Evaluation runs where the model is (ali.evaluation.image_eval.in_chunks and its callers).

Two checks that need no GPU:
- a network whose parameter lives on the `meta` device must receive its inputs there: a
  forgotten `.to(device)` hands it CPU tensors;
- every evaluation entry point runs inside `torch.device("meta")` with model and data on the
  CPU: a tensor created without naming its device lands on meta, and the first use that needs
  data (copying back, numpy, Pillow) fails.
Where a GPU exists, the same evaluation also runs with the model on it and the data on the CPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from ali.config import make_config
from ali.data.toy import load_toy
from ali.evaluation import evaluate
from ali.evaluation.image_eval import decode, encode, evaluate_images, in_chunks, write_sample_grid
from ali.evaluation.toy_eval import toy_panels
from ali.generate import conditional_grid
from ali.methods.ali_kplus1 import class_predictions
from ali.nets.architectures import ARCHITECTURES
from ali.nets.model import Model
from ali.pictures import interpolate_image, reconstruct_image, sample_image
from ali.presets import PRESETS
from ali.training.build import build_model
from tests.test_evaluate import digits, stub_classifier

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


class _Probe(nn.Module):
    """A network whose parameter sits on the meta device; it records where its inputs arrive and
    answers on the CPU (meta tensors hold no data to copy back) with one row per input row."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, device="meta"))
        self.seen: list[tuple[str, ...]] = []

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(t.device.type for t in inputs))
        return torch.full((len(inputs[0]), 3), float(len(inputs)), device="cpu")

    def moments(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self(*inputs), self(*inputs)

    class_logits = forward


def _probe_model() -> Model:
    return Model({"encoder": _Probe(), "decoder": _Probe(), "discriminator": _Probe()}, ARCHITECTURES["mnist"], "ali")


def test_inputs_go_to_the_parameters_device_in_chunks_and_results_come_back() -> None:
    model = _probe_model()
    z, y = torch.randn(1200, 32), torch.eye(10)[torch.arange(1200) % 10]
    out = decode(model, z, y)
    assert out.shape == (1200, 3) and out.device.type == "cpu" and bool((out == 2).all())  # z and y both given
    assert model.decoder.seen == [("meta", "meta")] * 3  # 500 + 500 + 200 rows, each moved to the meta device
    assert encode(model, torch.rand(10, 1, 28, 28), mean=True).shape == (10, 3)
    assert model.encoder.seen[-1] == ("meta",)
    classes = class_predictions(model, torch.rand(10, 1, 28, 28))  # the K+1 classifier's test error
    assert classes.device.type == "cpu" and model.discriminator.seen[-1][0] == "meta"
    rows = in_chunks(lambda x: x.sum(1, keepdim=True), torch.device("cpu"), torch.ones(7, 4), batch=3)
    assert rows.tolist() == [[4.0]] * 7


def _image_model(preset: str = "mnist") -> tuple[Model, object]:
    torch.manual_seed(0)
    config = make_config({**PRESETS[preset], "batch_size": 4})
    model, _ = build_model(config)
    return model.eval(), config


def test_image_evaluation_creates_every_tensor_on_a_named_device(tmp_path: Path, monkeypatch) -> None:
    stub_classifier(monkeypatch)
    data = digits(30)
    for preset, size in (("mnist", 0), ("mnist-conditional", 10)):
        model, config = _image_model(preset)
        with torch.device("meta"):
            metrics = evaluate_images(model, data, 100, tmp_path, size)
            scored = evaluate.evaluate_model(model, data, tmp_path, ("samples", "recon"), size, progress=False, samples=100)
            write_sample_grid(model, tmp_path / "grid.png", 10, None if not size else torch.eye(10, device="cpu"))
        assert metrics["heldout_images"] == 30 and scored["samples_scored"] == 100
    unconditional, _ = _image_model()
    with torch.device("meta"):
        conditional_grid(model, config, (), 0, "0-9", rows=2)
        model = unconditional
        sample_image(model, 4)
        reconstruct_image(model, data, 4)
        interpolate_image(model, data, pairs=2, steps=3)


def test_toy_evaluation_creates_every_tensor_on_a_named_device() -> None:
    torch.manual_seed(0)
    model, _ = build_model(make_config({"batch_size": 8}))
    data = load_toy("toy25")
    with torch.device("meta"):
        panels = toy_panels(model, data, 50)
    assert all(t.device.type == "cpu" and len(t) == 50 for t in panels.values())


@pytest.mark.parametrize("device", DEVICES)
def test_evaluation_on_the_model_s_device_matches_the_cpu(device: str, tmp_path: Path, monkeypatch) -> None:
    """Data stays on the CPU; the figures that need no noise agree with a CPU evaluation."""
    stub_classifier(monkeypatch)
    data = digits(30)
    model, _ = _image_model()
    cpu_figures = evaluate_images(model, data, 100, tmp_path)
    model.to(device)
    there = evaluate_images(model, data, 100, tmp_path)
    scored = evaluate.evaluate_model(model, data, tmp_path, ("samples", "recon"), progress=False, samples=100)
    assert next(model.parameters()).device.type == device  # evaluation never moved the model
    for key in ("recon_mse_mu", "mean_image_mse", "sample_pixel_mean", "data_pixel_std"):
        assert there[key] == pytest.approx(cpu_figures[key], rel=1e-3, abs=1e-5), key
    assert scored["recon_mse_mu"] == pytest.approx(cpu_figures["recon_mse_mu"], rel=1e-3, abs=1e-5)
