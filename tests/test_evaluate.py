"""`ali evaluate` end to end on a tiny real-MNIST run, the K+1 objective, and the clear errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from ali.cli import main
from ali.data import load_split
from ali.evaluation.classifier import fit_classifier, save_classifier
from ali.evaluation.evaluate import code_norm_by_class
from ali.methods.ali_kplus1 import ClassDiscriminator
from ali.training.objective import ali_losses
from tests.shared_data import require_shared


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory) -> tuple[Path, Path]:
    SHARED = require_shared("mnist")
    tmp = tmp_path_factory.mktemp("evaluate")
    images, labels = load_split("mnist", SHARED, "train")
    classifier = save_classifier(
        fit_classifier(images[:300], labels[:300], epochs=1, batch_size=32, progress=False),
        tmp / "mnist.safetensors",
        {"dataset": "mnist"},
    )
    run = tmp / "run"
    sets = ["batch_size=8", "log_every=1", "checkpoint_every=2", "grid_every=0", "eval_samples=100", f"data_dir={SHARED}"]
    assert (
        main(["train", "--config", "mnist", "--steps", "2", "--out", str(run), "--no-progress", *[f"--set={s}" for s in sets]])
        == 0
    )
    return run, classifier


def test_evaluate_writes_the_sample_and_reconstruction_metrics(mnist_run, capsys):
    run, classifier = mnist_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["classifier_metrics"].startswith("not computed: no classifier for mnist")  # says how to make one
    assert "ali classifier train --dataset mnist" in metrics["classifier_metrics"]
    out = run / "eval.json"
    argv = [
        "evaluate",
        "--run",
        str(run),
        "--classifier",
        str(classifier),
        "--out",
        str(out),
        "--samples",
        "500",
        "--test-images",
        "500",
    ]
    assert main([*argv, "--no-progress"]) == 0
    result = json.loads(out.read_text())
    assert 1 <= result["classifier_is"] <= 10 and result["classifier_fid"] >= 0
    assert len(result["class_fractions"]) == 10 and math.isclose(sum(result["class_fractions"]), 1, abs_tol=1e-3)
    assert 0 <= result["recon_class_accuracy"] <= 1 and 0 <= result["class_kl_to_uniform"] <= math.log(10) + 1e-6
    assert result["checkpoint_step"] == 2
    assert len(result["code_norm_by_class"]) == 10 and all(math.isfinite(v) and v >= 0 for v in result["code_norm_by_class"])


def test_code_norm_by_class_is_the_mean_squared_code_per_class():
    codes = torch.tensor([[1.0, 1.0], [3.0, 1.0], [0.0, 2.0], [2.0, 2.0]])  # ||z||^2 / d: 1, 5, 2, 4
    assert code_norm_by_class(codes, torch.tensor([0, 0, 1, 1])) == [3.0, 3.0]
    assert code_norm_by_class(codes, torch.tensor([1, 0, 0, 1])) == [3.5, 2.5]


def test_evaluate_errors_are_one_line(mnist_run, tmp_path, capsys):
    run, _ = mnist_run
    assert main(["evaluate", "--run", str(run), "--classifier", str(tmp_path / "none.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no classifier for mnist") and "\n" not in err
    assert main(["evaluate", "--run", str(run), "--metrics", "kplus1"]) == 2
    assert "ali-kplus1 run" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(run), "--metrics", "colour"]) == 2
    assert "unknown metric group" in capsys.readouterr().err


def test_kplus1_losses_on_known_logits_equal_the_formula():
    """With l_{K+1} = 0: D(real) = Z / (Z + 1), Z = sum_k exp(l_k)."""
    d = ClassDiscriminator([], [], [], (2,), 2)
    d.class_logits = lambda x, z: x  # the known logits stand in for the network
    real, fake = torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]]), torch.tensor([[-1.0, -1.0, -1.0], [0.0, 2.0, 0.0]])
    a, b = d(real, None), d(fake, None)
    loss_d, loss_g = ali_losses(a, b)
    z_real, z_fake = real.exp().sum(1), fake.exp().sum(1)
    expected_d = -(z_real / (z_real + 1)).log().mean() - (1 / (z_fake + 1)).log().mean()
    expected_g = -(1 / (z_real + 1)).log().mean() - (z_fake / (z_fake + 1)).log().mean()
    torch.testing.assert_close(loss_d, expected_d)
    torch.testing.assert_close(loss_g, expected_g)
