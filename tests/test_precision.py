"""precision=auto: bf16 only where the hardware computes it natively, recorded, kept on resume."""

from __future__ import annotations

import json

import pytest
import torch

from ali.config import PRECISIONS, make_config
from ali.rundir import load_run_config
from ali.training import hardware
from ali.training.loop import train

CPU = torch.device("cpu")
TINY = {
    "dataset": "toy25",
    "steps": 4,
    "batch_size": 16,
    "log_every": 2,
    "checkpoint_every": 2,
    "eval_samples": 100,
    "threads": 1,
}


@pytest.fixture
def native(monkeypatch):
    """Set what the capability check reports; the warning is shown once per process, so reset it."""
    monkeypatch.setattr(hardware, "_warned", set())

    def set_native(value: bool) -> None:
        monkeypatch.setattr(hardware, "cpu_native_bf16", lambda: value)

    return set_native


@pytest.mark.parametrize("has_bf16, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_resolves_by_the_capability_check_and_is_recorded(tmp_path, native, has_bf16, expected):
    native(has_bf16)
    assert hardware.resolve_precision("auto", CPU) == expected
    train(make_config(TINY), tmp_path / "run", progress=False)
    options = json.loads((tmp_path / "run" / "training_options.json").read_text())
    assert options["precision"] == "auto" and options["resolved"]["precision"] == expected


def test_explicit_bf16_without_native_support_runs_and_warns_once(native, capsys):
    native(False)
    assert hardware.resolve_precision("bf16", CPU) == "bf16"
    assert hardware.resolve_precision("bf16", CPU) == "bf16"
    err = capsys.readouterr().err
    assert err.count("warning: precision=bf16") == 1
    assert torch.backends.cpu.get_cpu_capability() in err and "slower than fp32" in err
    native(True)
    hardware.resolve_precision("bf16", CPU)
    assert capsys.readouterr().err == ""


def test_resume_keeps_the_runs_resolved_precision_on_another_machine(tmp_path, native):
    native(True)
    train(make_config(TINY), tmp_path / "run", progress=False)
    native(False)  # the run moves to a machine without native bf16
    assert load_run_config(tmp_path / "run").precision == "bf16"
    assert load_run_config(tmp_path / "run", {"precision": "fp32"}).precision == "fp32"  # unless overridden
    assert make_config(TINY).precision == "auto"


def test_fp16_stays_an_explicit_gpu_choice():
    assert "fp16" in PRECISIONS and hardware.resolve_precision("auto", CPU) in ("fp32", "bf16")


def test_an_isa_cap_below_bf16_means_no_native_bf16(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert hardware.cpu_native_bf16()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not hardware.cpu_native_bf16()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    assert hardware.cpu_native_bf16()
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2"})
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert not hardware.cpu_native_bf16()
