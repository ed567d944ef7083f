"""benchmarks/throughput.py at tiny size: it runs both steps and ends with the promised JSON line."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import gpu_check  # noqa: E402
from benchmarks.throughput import JSON_KEYS  # noqa: E402

KEYS = set(JSON_KEYS)
MACHINE = {"cpu", "cpu_capability", "native_bf16", "precision_asked", "precision"}


@pytest.mark.parametrize("arch", ["toy", "mnist"])
def test_throughput_prints_valid_json_last(arch):
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "throughput.py"),
        "--arch",
        arch,
        "--batch",
        "4",
        "--steps",
        "1",
        "--rounds",
        "1",
        "--threads",
        "1",
        "--json",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert KEYS | MACHINE <= set(result) and result["arch"] == arch and result["batch"] == 4
    assert result["precision_asked"] == "auto" and result["precision"] == ("bf16" if result["native_bf16"] else "fp32")
    for key in KEYS - {"arch", "batch"} - MACHINE:
        assert isinstance(result[key], (int, float)) and result[key] > 0, key
    assert result["ratio"] == pytest.approx(result["ours_train_img_s"] / result["reference_train_img_s"], rel=0.02)
    # The reference does more work per step (two extra D passes): the counter must see that.
    assert result["reference_gflop_per_step"] > result["ours_gflop_per_step"] > 0


def test_batchnorm_jitter_on_a_short_toy_run(tmp_path):
    from ali.cli import main

    run = tmp_path / "run"
    assert main(["train", "--config", "toy25", "--steps", "30", "--set", "threads=1", "--out", str(run), "--no-progress"]) == 0
    cmd = [sys.executable, str(ROOT / "benchmarks" / "toy_batchnorm_jitter.py"), "--run", str(run), "--batches", "3"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["batch_size"] == 100 and result["batches"] == 3
    for kind in ("random", "sobol"):
        assert 0 <= result[kind]["high_quality_train_mode"] <= 1 and result[kind]["rms_train_vs_eval"] > 0
        assert result[kind]["mode_offset_eval_mode"] >= 0
    assert result["rms_ratio_sobol_to_random"] == pytest.approx(
        result["sobol"]["rms_train_vs_eval"] / result["random"]["rms_train_vs_eval"], abs=1e-3
    )


def test_conv_layout_times_every_real_convolution_in_both_layouts():
    cmd = [sys.executable, str(ROOT / "benchmarks" / "conv_layout.py"), "--arch", "mnist", "--batch", "2"]
    cmd += ["--repeats", "1", "--rounds", "1", "--threads", "1", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert MACHINE <= set(result) and result["sgemm_gflops"] > 0
    # mnist: two strided convs in the encoder and in D(x), two transposed convs in the decoder;
    # the layers that run as GEMMs (kernel covering the input, 1x1 inputs) are not listed.
    kinds = sorted(row["kind"] for row in result["layers"])
    assert kinds == ["Conv2d"] * 4 + ["ConvTranspose2d"] * 2
    for row in result["layers"]:
        assert row["nchw_ms"] > 0 and row["channels_last_ms"] > 0
        other = "nchw" if row["faster"] == "channels_last" else "channels_last"
        assert row[f"{row['faster']}_ms"] <= row[f"{other}_ms"]
    best = sum(min(r["nchw_ms"], r["channels_last_ms"]) for r in result["layers"])
    assert result["total_best_per_layer_ms"] == pytest.approx(best, abs=0.02)
    assert result["total_best_per_layer_ms"] <= min(result["total_nchw_ms"], result["total_channels_last_ms"]) + 0.02


def test_gpu_check_runs_its_cases_on_the_cpu_and_keeps_each_result(tmp_path):
    """The GPU check's own code paths, on the CPU: a case in its own process and its own file,
    and the table and JSON say how it went."""
    assert "method-ali-bf16" in gpu_check.case_names("cpu") and "method-ali-fp16" in gpu_check.case_names("cuda")
    assert not any(n.endswith("-fp16") for n in gpu_check.case_names("cpu"))
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--steps", "2"]
    done = subprocess.run([*cmd, "--cases", "method-ali-fp32", "--out", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [(r["case"], r["status"]) for r in summary["cases"]] == [("method-ali-fp32", "pass")]
    assert summary["cases"][0]["steps_per_s"] > 0 and summary["machine"]["matmul_tflops_fp32"] > 0
    assert (tmp_path / "cases" / "method-ali-fp32.json").exists() and (tmp_path / "logs" / "method-ali-fp32.log").exists()
    assert "method-ali-fp32" in done.stdout and "pass" in done.stdout


def test_gpu_check_resume_case_compares_a_resumed_run_with_one_that_went_through(tmp_path):
    gpu_check.write_random_mnist(tmp_path / "data" / "mnist", n_train=200, n_test=50)
    args = argparse.Namespace(out=str(tmp_path), device="cpu", steps=2, data_dir=str(tmp_path / "data"), timeout=60)
    row = gpu_check.run_resume(args, tmp_path / "work")
    assert row == {"max_weight_difference": 0.0, "resumed_from_step": 1}


def test_a_failing_gpu_check_case_writes_its_failure(tmp_path):
    """No data where --data-dir points: the case's own JSON says fail, with the reason."""
    (tmp_path / "cases").mkdir()
    args = argparse.Namespace(out=str(tmp_path), device="cpu", steps=2, data_dir=str(tmp_path / "none"), timeout=60)
    assert gpu_check.child("method-vae-fp32", args) == 1
    row = json.loads((tmp_path / "cases" / "method-vae-fp32.json").read_text())
    assert row["status"] == "fail" and "mnist" in row["error"] and row["peak_rss_mb"] > 0
