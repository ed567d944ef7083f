"""`ali evaluate` end to end on a tiny real-MNIST run, the K+1 objective, and the clear errors;
the metrics' protocol and names on stand-in networks whose answers are known."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from ali import rundir
from ali.cli import main
from ali.config import make_config
from ali.data import load_split
from ali.data.dataset import Dataset
from ali.evaluation import evaluate
from ali.evaluation.classifier import fit_classifier, save_classifier
from ali.evaluation.evaluate import code_norm_by_class
from ali.evaluation.image_eval import EVAL_SEED
from ali.finish import train_and_finish
from ali.methods.ali_kplus1 import ClassDiscriminator
from ali.methods.objective import ali_losses
from ali.nets.model import Model
from ali.presets import PRESETS
from ali.rundir import load_trained
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
    assert 0 <= result["class_entropy"] <= math.log(10) + 1e-6 and 0 <= result["class_entropy_real_test"] <= math.log(10) + 1e-6
    assert result["checkpoint_step"] == 2
    assert result["samples_scored"] == 500 and result["is_splits"] == 10  # a count other than the protocol's is recorded
    assert len(result["code_norm_by_class"]) == 10 and all(math.isfinite(v) and v >= 0 for v in result["code_norm_by_class"])


def test_code_norm_by_class_is_the_mean_squared_code_per_class():
    norms = torch.tensor([1.0, 5.0, 2.0, 4.0])  # ||mu||^2 / d of codes (1, 1), (3, 1), (0, 2), (2, 2)
    assert code_norm_by_class(norms, torch.tensor([0, 0, 1, 1])) == [3.0, 3.0]
    assert code_norm_by_class(norms, torch.tensor([1, 0, 0, 1])) == [3.5, 2.5]


def test_evaluate_errors_are_one_line(mnist_run, tmp_path, capsys):
    run, _ = mnist_run
    assert main(["evaluate", "--run", str(run), "--classifier", str(tmp_path / "none.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no classifier for mnist") and "\n" not in err
    assert main(["evaluate", "--run", str(run), "--metrics", "kplus1"]) == 2
    assert "ali-kplus1 run" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(run), "--metrics", "anomaly"]) == 2
    assert "runs trained by `ali anomaly`" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(run), "--metrics", "colour"]) == 2
    assert "unknown metric group" in capsys.readouterr().err


def test_kplus1_losses_on_known_logits_equal_the_formula():
    """With l_{K+1} = ln K: D(real) = Z / (Z + K), Z = sum_k exp(l_k)."""
    d = ClassDiscriminator([], [], [], (2,), 2)
    d.class_logits = lambda x, z: x  # the known logits stand in for the network
    real, fake = torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]]), torch.tensor([[-1.0, -1.0, -1.0], [0.0, 2.0, 0.0]])
    a, b = d(real, None), d(fake, None)
    loss_d, loss_g = ali_losses(a, b)
    z_real, z_fake = real.exp().sum(1), fake.exp().sum(1)
    k = real.shape[1]
    expected_d = -(z_real / (z_real + k)).log().mean() - (k / (z_fake + k)).log().mean()
    expected_g = -(k / (z_real + k)).log().mean() - (z_fake / (z_fake + k)).log().mean()
    torch.testing.assert_close(loss_d, expected_d)
    torch.testing.assert_close(loss_g, expected_g)


# ---------------------------------------------------------------- stand-ins with known answers


def canonical_images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n uint8 images, image i of class i % 10: black but for pixel (0, k) of the top row."""
    labels = torch.arange(n) % 10
    images = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    images[torch.arange(n), 0, 0, labels] = 255
    return images, labels


class RowClassifier(nn.Module):
    """Stands in for the domain classifier: an image's class is the brightest of the first 10
    pixels of its top row, with near certainty; those 10 pixels are its features."""

    image_shape = (1, 28, 28)
    feature_dim = 10

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(50.0))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, 0, :10]

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        return h * self.scale


class _RowEncoder(nn.Module):
    """z = mu = the first 10 pixels of the top row: a canonical image's code is its class, one-hot."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))

    def moments(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        mu = x[:, 0, 0, :10] + self.anchor
        return mu, torch.full_like(mu, -30.0)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.moments(x, y)[0]


class _RowDecoder(nn.Module):
    """Writes its code (or, with follow_y, its condition) into the first 10 pixels of the top row,
    clipped to [0, 1] as pixels are."""

    def __init__(self, follow_y: bool) -> None:
        super().__init__()
        self.follow_y = follow_y

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        image = torch.zeros(len(z), 1, 28, 28, device=z.device)
        image[:, 0, 0, :10] = (y if self.follow_y else z).clamp(0, 1)
        return image


def stub_classifier(monkeypatch) -> RowClassifier:
    """Have ali.evaluation.evaluate score with a RowClassifier, built here (outside any device
    context a test runs the evaluation in), as the domain classifier."""
    net = RowClassifier()
    monkeypatch.setattr(evaluate.clf, "find_classifier", lambda dataset, path=None: Path("stub"))
    monkeypatch.setattr(evaluate.clf, "load_classifier", lambda path, dataset=None: (net, {}))
    return net


@pytest.fixture
def row_classifier(monkeypatch) -> RowClassifier:
    return stub_classifier(monkeypatch)


def digits(n: int = 50) -> Dataset:
    """A labelled "mnist" of canonical images, the same images held out as trained on."""
    images, labels = canonical_images(n)
    return Dataset("mnist", train=images, heldout=images, labels=labels, heldout_labels=labels)


def _row_model(follow_y: bool, conditional: bool = True) -> Model:
    nets = {"encoder": _RowEncoder(), "decoder": _RowDecoder(follow_y)}
    return Model(nets, SimpleNamespace(latent_dim=10, x_shape=(1, 28, 28)), "ali-conditional" if conditional else "ali")


def _scores(model: Model, condition_dim: int, tmp_path: Path) -> dict:
    return evaluate.evaluate_model(model, digits(), tmp_path, ("samples", "recon"), condition_dim, progress=False, samples=1000)


def test_conditional_figures_are_named_so_and_the_swapped_condition_tests_inference(tmp_path, row_classifier):
    """A decoder that draws its condition and one that copies its code both reconstruct every
    test image exactly under its own label; only a condition y' other than x's own tells them apart."""
    draws_y, copies_z = _scores(_row_model(follow_y=True), 10, tmp_path), _scores(_row_model(follow_y=False), 10, tmp_path)
    for scores in (draws_y, copies_z):
        assert not {
            "classifier_is",
            "classifier_fid",
            "class_kl_to_uniform",
            "class_entropy",
            "recon_mse",
            "recon_class_accuracy",
        } & set(scores)
        assert scores["conditional_recon_class_accuracy"] == 1.0 and scores["conditional_recon_mse"] == 0.0
    assert draws_y["swapped_y_recon_as_y"] == 1.0 and draws_y["swapped_y_recon_as_true_class"] == 0.0
    assert draws_y["swapped_y_recon_mse"] == pytest.approx(2 / 784, abs=1e-6)  # one pixel off, one on
    assert copies_z["swapped_y_recon_as_y"] == 0.0 and copies_z["swapped_y_recon_as_true_class"] == 1.0
    assert copies_z["swapped_y_recon_mse"] == 0.0
    assert draws_y["condition_accuracy"] == 1.0 and draws_y["conditional_classifier_is"] == pytest.approx(10, abs=1e-3)
    assert copies_z["condition_accuracy"] < 0.3  # its samples' classes follow z, not the condition
    assert draws_y["conditional_class_entropy"] == pytest.approx(0, abs=1e-6) and copies_z["conditional_class_entropy"] > 0.3


def test_an_unconditional_model_keeps_the_published_names(tmp_path, row_classifier):
    scores = _scores(_row_model(follow_y=False, conditional=False), 0, tmp_path)
    assert scores["recon_class_accuracy"] == 1.0 and scores["recon_mse"] == 0.0 and "classifier_is" in scores
    assert not any(k.startswith(("conditional_", "swapped_")) for k in scores) and "condition_accuracy" not in scores
    # samples that copy a N(0, 1) code saturate several pixels (ties: ambiguous); the test digits are certain
    assert scores["class_entropy"] > 0.3 and scores["class_entropy_real_test"] == pytest.approx(0, abs=1e-6)


def _random_images(n: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, 28, 28), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def _train_tiny(monkeypatch, out: Path, data: Dataset) -> dict:
    monkeypatch.setattr(rundir, "load_dataset", lambda *_args: data)
    values = {**PRESETS["mnist"], "batch_size": 8, "steps": 2, "log_every": 1, "checkpoint_every": 2, "grid_every": 0}
    train_and_finish(make_config({**values, "eval_samples": 100, "threads": 1, "precision": "fp32"}), out, progress=False)
    return json.loads((out / "metrics.json").read_text())


def test_metrics_json_recon_mse_is_the_full_test_set_figure(monkeypatch, tmp_path):
    """150 held-out images, eval_samples 100: recon_mse is over all 150, by hand."""
    data = Dataset("random", train=_random_images(64, 0), heldout=_random_images(150, 1))
    metrics = _train_tiny(monkeypatch, tmp_path / "run", data)
    _, model, _ = load_trained(tmp_path / "run")
    x = data.to_float(data.heldout)
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(EVAL_SEED)
        recon = model.eval().decoder(model.encoder(x))
    assert metrics["heldout_images"] == 150 and metrics["eval_images"] == 100
    assert metrics["recon_mse"] == pytest.approx(float((recon - x).pow(2).mean()), abs=2e-6)


def test_sample_figures_follow_the_protocol_whatever_eval_samples(monkeypatch, tmp_path, row_classifier):
    """Scored at the end of a run with eval_samples 100: 10,000 samples, IS in 10 splits, recorded."""
    scored = []
    real_score = evaluate.inception_score
    monkeypatch.setattr(evaluate, "inception_score", lambda p, splits: scored.append((len(p), splits)) or real_score(p, splits))
    metrics = _train_tiny(monkeypatch, tmp_path / "run", digits(30))
    assert scored == [(10_000, 10), (30, 10)]  # the samples, then the real test images
    assert metrics["samples_scored"] == 10_000 and metrics["is_splits"] == 10 and metrics["fid_real_images"] == 30
    assert 1 <= metrics["classifier_is"] <= 10 and metrics["eval_images"] == 100
