"""Anomaly detection: the two protocols' splits, the scores and their AUROC, and `ali anomaly`
end to end on format-exact MNIST files (bars whose place is their class)."""

from __future__ import annotations

import json
import math
import zlib

import numpy as np
import pytest
import torch
from data_writers import bar_images, write_bar_mnist
from sklearn.metrics import roc_auc_score

import ali
from ali.anomaly import _summary, _table, run_anomaly
from ali.cli import main
from ali.config import for_method, make_config
from ali.data import load_anomaly_dataset, load_split
from ali.data.anomaly import anomaly_split
from ali.errors import AliError
from ali.evaluation import anomaly
from ali.evaluation.anomaly import anomaly_scores, separation
from ali.methods import METHODS
from ali.presets import PRESETS
from ali.report import anomaly as anomaly_report
from ali.report.pages import write_report
from ali.rundir import (
    ANOMALY_SCORES_FILE,
    ANOMALY_STUDY_FIGURE,
    ANOMALY_STUDY_FILE,
    ANOMALY_TABLE_FILE,
    atomic_write_json,
    load_run_config,
    load_run_dataset,
    read_anomaly_scores,
)
from ali.training.build import build_model
from ali.training.loop import train


def _ids(n: int, offset: int) -> torch.Tensor:
    """(n, 1, 1, 1) images whose one pixel is their row id + offset (int64: ids stay exact)."""
    return (torch.arange(n) + offset).view(n, 1, 1, 1)


def test_one_class_trains_on_the_normal_class_and_tests_on_the_whole_test_split():
    train_y, test_y = torch.arange(100) % 10, torch.arange(40) % 10
    data = anomaly_split("digits", (_ids(100, 0), train_y), (_ids(40, 1000), test_y), "one-class", 3)
    assert data.train.flatten().tolist() == [i for i in range(100) if i % 10 == 3]
    assert data.heldout.flatten().tolist() == list(range(1000, 1040))
    assert data.heldout_anomalous.tolist() == [y != 3 for y in test_y.tolist()]


def test_one_anomalous_pools_the_splits_and_holds_out_a_fifth_of_the_normal_images():
    train_y, test_y = torch.arange(100) % 10, torch.arange(50) % 10
    data = anomaly_split("digits", (_ids(100, 0), train_y), (_ids(50, 1000), test_y), "one-anomalous", 7, seed=5)
    pooled_labels = dict(zip([*range(100), *range(1000, 1050)], [*train_y.tolist(), *test_y.tolist()]))
    train, test = data.train.flatten().tolist(), data.heldout.flatten().tolist()
    normal = [i for i, y in pooled_labels.items() if y != 7]
    assert len(train) == round(0.8 * len(normal)) == 108 and not set(train) & set(test)
    assert set(train) | set(test) == set(pooled_labels)
    assert all(pooled_labels[i] != 7 for i in train)
    assert data.heldout_anomalous.tolist() == [pooled_labels[i] == 7 for i in test]
    again = anomaly_split("digits", (_ids(100, 0), train_y), (_ids(50, 1000), test_y), "one-anomalous", 7, seed=5)
    other = anomaly_split("digits", (_ids(100, 0), train_y), (_ids(50, 1000), test_y), "one-anomalous", 7, seed=6)
    assert torch.equal(again.train, data.train) and not torch.equal(other.train, data.train)
    with pytest.raises(AliError, match="anomaly_class 10"):
        anomaly_split("digits", (_ids(100, 0), train_y), (_ids(50, 1000), test_y), "one-class", 10)


def test_a_score_that_separates_by_construction_has_auroc_one():
    anomalous = np.array([False] * 30 + [True] * 10)
    assert separation(np.where(anomalous, 2.0, 1.0), anomalous) == {"auroc": 1.0, "auprc": 1.0}
    assert separation(np.where(anomalous, 1.0, 2.0), anomalous)["auroc"] == 0.0
    with pytest.raises(AliError, match="normal and anomalous"):
        separation(np.ones(5), np.zeros(5, dtype=bool))


def test_auroc_by_anomalous_class_names_the_class_a_score_misses():
    labels = np.array([0] * 4 + [1] * 4 + [2] * 4)
    anomalous = labels != 0
    # class 1 scores like the normal images half the time (AUROC 0.5 + 0.5 * 0.5), class 2 always above them
    scores = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0])
    assert anomaly.auroc_by_anomalous_class(scores, anomalous, labels) == {1: 0.75, 2: 1.0}


def test_the_reconstruction_score_is_the_squared_error_through_the_mean_code():
    torch.manual_seed(0)
    model, _ = build_model(make_config(PRESETS["mnist-anomaly"]))
    model.eval()
    x = torch.rand(6, 1, 28, 28)
    scores = anomaly_scores(model, x)
    assert set(scores) == {"recon", "egbad"}  # ALI + cycle: a joint D, no (x, x) D; complexity needs sigma^2
    with torch.no_grad():
        rebuilt = model["decoder"](model["encoder"].moments(x)[0])
    squared = (x - rebuilt).pow(2).flatten(1).sum(1)
    torch.testing.assert_close(scores["recon"], squared)
    with pytest.raises(AliError, match="alad"):
        anomaly_scores(model, x, ("alad",))
    with pytest.raises(AliError, match="noise variance"):
        anomaly_scores(model, x, ("complexity",))
    # sigma^2: the mean squared error per pixel of the reference images' reconstructions
    assert anomaly.noise_variance(model, x) == pytest.approx(float(squared.mean()) / 784, rel=1e-5)


def test_the_complexity_score_is_the_bits_of_the_error_less_the_compressed_bits_of_the_image():
    torch.manual_seed(0)
    model, _ = build_model(make_config(PRESETS["mnist-anomaly"]))
    model.eval()
    blank, noise = torch.zeros(1, 1, 28, 28), torch.rand(1, 1, 28, 28)
    x = torch.cat([blank, noise])
    # a blank image compresses to a few bytes, uniform noise hardly at all: its L(x) is ~784 bytes
    bits = anomaly.compressed_bits(x)
    assert bits[0] == 8 * len(zlib.compress(bytes(784), 9)) and bits[1] > 8 * 700
    scores = anomaly_scores(model, x, ("recon", "complexity"), sigma2=0.05)
    expected = scores["recon"] / (2 * 0.05 * math.log(2)) - bits
    torch.testing.assert_close(scores["complexity"], expected)


@pytest.fixture
def bar_digits(tmp_path):
    """Format-exact MNIST files: 300 training and 100 test bars, classes 0..9 in turn."""
    return write_bar_mnist(tmp_path / "data", 300, 100)


TINY = ["--steps", "4", "--set", "batch_size=16", "--set", "eval_samples=100", "--set", "threads=1", "--no-progress"]


def test_ali_anomaly_trains_on_the_normal_class_and_writes_scores_a_loader_reads(bar_digits, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["anomaly", "--config", "mnist-anomaly", "--normal-class", "3", "--data-dir", str(bar_digits), "--out", str(run)]
    assert main([*args, *TINY]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["auroc_recon"] <= 1 and "auprc_egbad" in metrics
    assert metrics["anomaly_test_images"] == 100 and metrics["anomaly_test_anomalous"] == 90
    scores, anomalous, labels = read_anomaly_scores(run)
    assert anomalous.tolist() == (labels != 3).tolist() and len(scores["recon"]) == 100
    options = json.loads((run / "training_options.json").read_text())
    assert options["anomaly_protocol"] == "one-class" and options["anomaly_class"] == 3
    write_report(run)  # the suite's training runs skip their report (conftest)
    assert "<h3>Anomaly scores</h3>" in (run / "report.html").read_text()  # the run's report shows its figure
    model = ali.load(run)
    x = torch.from_numpy(bar_images(np.arange(4), (1, 28, 28), 2))
    assert model.anomaly_score(x).shape == (4,) and model.anomaly_score(x, "egbad").shape == (4,)
    # the complexity score takes the run's measured sigma^2 and gives the run's scores of its test images
    assert metrics["anomaly_noise_variance"] > 0 and "auroc_complexity" in metrics
    test_images = load_split("mnist", bar_digits, "test")[0][:5]
    torch.testing.assert_close(model.anomaly_score(test_images, "complexity"), torch.from_numpy(scores["complexity"][:5]).float())
    same = ali.load(run, weights="live")  # this run's default weights: its sigma^2 holds
    torch.testing.assert_close(same.anomaly_score(test_images, "complexity"), model.anomaly_score(test_images, "complexity"))
    (run / "metrics.json").write_text(json.dumps({**metrics, "steps": metrics["steps"] + 1}))
    with pytest.raises(AliError, match="needs sigma2"):  # figures of another step: sigma^2 is not known
        ali.load(run).anomaly_score(test_images, "complexity")
    (run / "metrics.json").write_text(json.dumps(metrics))
    # any checkpoint scores again through `ali evaluate`: the end one gives the run's own figures
    assert main(["evaluate", "--run", str(run), "--metrics", "anomaly", "--out", str(tmp_path / "e.json"), "--no-progress"]) == 0
    again = json.loads((tmp_path / "e.json").read_text())
    assert again["auroc_recon"] == pytest.approx(metrics["auroc_recon"]) and again["anomaly_test_anomalous"] == 90
    capsys.readouterr()
    assert main([*args[:-2], "--set", "anomaly_class=4", "--out", str(tmp_path / "x"), *TINY]) == 2
    assert "sets these from --normal-class" in capsys.readouterr().err


def test_anomaly_dry_run_checks_every_class_and_writes_nothing(bar_digits, tmp_path, capsys):
    out = tmp_path / "study"
    args = ["anomaly", "--config", "mnist-anomaly", "--data-dir", str(bar_digits), "--out", str(out), "--dry-run"]
    assert main([*args, "--anomaly-class", "all"]) == 0
    printed = capsys.readouterr().out
    assert '"anomaly_protocol": "one-anomalous"' in printed and "10 run(s), one-anomalous protocol" in printed
    assert not out.exists()
    assert main([*args, "--normal-class", "all", "--method", "ali-kplus1"]) == 2  # refused before anything trains
    assert "error:" in capsys.readouterr().err and not out.exists()


def test_a_reloaded_one_anomalous_run_scores_the_split_of_its_seed(bar_digits, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["anomaly", "--config", "mnist-anomaly", "--anomaly-class", "2", "--seed", "1", "--data-dir", str(bar_digits)]
    assert main([*args, "--out", str(run), *TINY]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["anomaly_protocol"] == "one-anomalous" and metrics["anomaly_class"] == 2
    assert main(["evaluate", "--run", str(run), "--metrics", "anomaly", "--out", str(tmp_path / "e.json"), "--no-progress"]) == 0
    again = json.loads((tmp_path / "e.json").read_text())
    for key in ("auroc_recon", "auroc_complexity", "anomaly_noise_variance", "anomaly_test_anomalous"):
        assert again[key] == pytest.approx(metrics[key], rel=1e-4), key  # evaluation.json rounds to 6 places
    # sigma^2 comes from the normal training images of the run's split, never the test images
    data = load_run_dataset(load_run_config(run))
    split = {seed: load_anomaly_dataset("mnist", bar_digits, "one-anomalous", 2, seed).train for seed in (0, 1)}
    assert torch.equal(data.train, split[1]) and not torch.equal(data.train, split[0])  # the run's seed draws its split
    model = ali.load(run)
    expected = anomaly.noise_variance(model.model, data.to_float(data.train[: anomaly.REFERENCE_IMAGES]))
    assert metrics["anomaly_noise_variance"] == pytest.approx(expected, rel=1e-5)
    assert metrics["anomaly_noise_variance"] != pytest.approx(
        anomaly.noise_variance(model.model, data.to_float(data.heldout)), rel=1e-3
    )
    # the same folder asked for another class is refused; the finished run itself is reused
    capsys.readouterr()
    assert main([*args[:4], "3", *args[5:], "--out", str(run), *TINY]) == 2
    assert "other settings: anomaly_class=2 (asked 3)" in capsys.readouterr().err
    assert main([*args, "--out", str(run), *TINY]) == 0


def test_the_study_summary_and_table_give_each_score_its_mean_and_lowest_class():
    per_class = {
        0: {"auroc_recon": 0.9, "auprc_recon": 0.99, "train_seconds": 10.0},
        5: {"auroc_recon": 0.6, "auprc_recon": 0.95, "train_seconds": 12.0},
    }
    summary = _summary(per_class, "one-class", "alice", 1.0)
    assert summary["mean"]["auroc_recon"] == pytest.approx(0.75) and summary["min"]["auroc_recon"] == 0.6
    assert summary["train_seconds"] == 22.0
    for cls, worst in (("0", 7), ("5", 1)):
        summary["classes"][cls]["hardest_anomaly"] = {"recon": {"class": worst, "auroc": 0.5}}
    table = _table(summary)
    assert "| mean | **75.0** | **97.0** | | |" in table and "| lowest | 60.0 | 95.0 | | |" in table
    assert "| 5 | 60.0 | 95.0 | 1 (50.0) | 12 |" in table


def test_a_packed_discriminator_gives_no_egbad_score():
    model, _ = build_model(make_config({**PRESETS["mnist-anomaly"], "pack": 2}))
    assert "egbad" not in anomaly.available_scores(model)
    with pytest.raises(AliError, match="need networks"):
        anomaly_scores(model, torch.rand(2, 1, 28, 28), "egbad")
    with pytest.raises(AliError, match="unknown anomaly score"):
        anomaly_scores(model, torch.rand(2, 1, 28, 28), ("recon", "ssim"))


def test_a_study_over_classes_writes_each_run_its_table_and_figure(bar_digits, tmp_path, monkeypatch):
    values = {
        **PRESETS["mnist-anomaly"],
        "steps": 4,
        "batch_size": 16,
        "eval_samples": 100,
        "threads": 1,
        "data_dir": str(bar_digits),
    }
    out = tmp_path / "study"
    drawn = {}
    figure = anomaly_report.study_figure
    monkeypatch.setattr(anomaly_report, "study_figure", lambda curves, *a: drawn.update(curves) or figure(curves, *a))
    summary = run_anomaly(values, "one-anomalous", [0, 5], out, progress=False)
    assert set(summary["classes"]) == {"0", "5"} and "auroc_recon" in summary["mean"]
    for cls, (scores, anomalous) in drawn.items():  # the figure's curves: each run's own score, anomalies positive
        assert roc_auc_score(anomalous, scores) == pytest.approx(summary["classes"][str(cls)]["auroc_recon"])
    assert (out / ANOMALY_TABLE_FILE).read_text().count("| mean |") == 1 and (out / ANOMALY_STUDY_FIGURE).stat().st_size > 1000
    assert json.loads((out / ANOMALY_STUDY_FILE).read_text()) == summary
    page = (out / "report.html").read_text()  # the study's page: its table, figure and links to the runs
    assert "one-anomalous protocol" in page and 'href="class-5/report.html"' in page and "data:image/png" in page
    mean_row = page.split("<td>mean</td>")[1].split("</tr>")[0]
    assert f">{100 * summary['mean']['auroc_recon']:.1f}<" in mean_row.split("</td>")[0] + "<"
    (out / ANOMALY_STUDY_FILE).write_text("{not json")  # a damaged summary is named on the page, not a crash
    write_report(out, sub_runs=False)
    assert f"Cannot read {ANOMALY_STUDY_FILE}" in (out / "report.html").read_text()
    atomic_write_json(out / ANOMALY_STUDY_FILE, summary)
    # one anomalous class per run under this protocol: no "hardest anomalous class" to name
    assert "hardest_anomaly" not in summary["classes"]["5"] and "hardest" not in (out / ANOMALY_TABLE_FILE).read_text()
    assert summary["train_seconds"] == pytest.approx(sum(c["train_seconds"] for c in summary["classes"].values()), abs=0.2)
    for cls in (0, 5):
        _, anomalous, labels = read_anomaly_scores(out / f"class-{cls}")
        assert anomalous.tolist() == (labels == cls).tolist() and (out / f"class-{cls}" / ANOMALY_SCORES_FILE).is_file()
    # Run again: both classes are finished, nothing retrains.
    before = (out / "class-0" / "metrics.json").stat().st_mtime_ns
    run_anomaly(values, "one-anomalous", [0, 5], out, progress=False)
    assert (out / "class-0" / "metrics.json").stat().st_mtime_ns == before
    # Another protocol or recipe in the same folder is refused, not mixed into the table.
    with pytest.raises(AliError, match="other settings: anomaly_protocol='one-anomalous'"):
        run_anomaly(values, "one-class", [0, 5], out, progress=False)
    with pytest.raises(AliError, match="steps=4 \\(asked 5\\)"):
        run_anomaly({**values, "steps": 5}, "one-anomalous", [0, 5], out, progress=False)


def test_a_one_class_study_continues_a_cut_off_class_and_summarises_every_class(bar_digits, tmp_path):
    values = {**PRESETS["mnist-anomaly"], "steps": 4, "batch_size": 16, "eval_samples": 100, "threads": 1}
    values["data_dir"] = str(bar_digits)
    out = tmp_path / "study"
    # class 0 cut off after training, before its evaluation: options and checkpoints, no metrics
    train(make_config({**values, "anomaly_protocol": "one-class", "anomaly_class": 0}), out / "class-0", progress=False)
    assert not (out / "class-0" / "metrics.json").exists()
    summary = run_anomaly(values, "one-class", [0, 5], out, progress=False)
    per_class = {c: json.loads((out / f"class-{c}" / "metrics.json").read_text()) for c in (0, 5)}
    assert per_class[0]["anomaly_protocol"] == "one-class" and per_class[5]["anomaly_class"] == 5
    for key in ("auroc_recon", "auroc_complexity"):
        assert summary["mean"][key] == pytest.approx((per_class[0][key] + per_class[5][key]) / 2)
        assert summary["min"][key] == min(per_class[0][key], per_class[5][key])
    for cls in (0, 5):  # the hardest anomalous class: the lowest AUROC of the normal images against one class
        scores, anomalous, labels = read_anomaly_scores(out / f"class-{cls}")
        against = {
            k: roc_auc_score(
                np.r_[np.zeros((~anomalous).sum()), np.ones((labels == k).sum())],
                np.r_[scores["recon"][~anomalous], scores["recon"][labels == k]],
            )
            for k in range(10)
            if k != cls
        }
        worst = min(against, key=against.get)
        assert summary["classes"][str(cls)]["hardest_anomaly"]["recon"] == {
            "class": worst,
            "auroc": pytest.approx(against[worst]),
        }
    table = (out / ANOMALY_TABLE_FILE).read_text()
    assert f"| **{100 * summary['mean']['auroc_recon']:.1f}** |" in table.split("| mean |")[1].split("\n")[0] + " |"


def test_anomaly_keys_are_refused_where_they_would_be_ignored():
    with pytest.raises(AliError, match="anomaly_class"):
        make_config({**PRESETS["mnist"], "anomaly_class": 3})
    with pytest.raises(AliError, match="anomaly_protocol"):
        make_config({**PRESETS["mnist"], "anomaly_protocol": "both"})
    with pytest.raises(AliError, match="official train and test splits"):
        make_config({**PRESETS["toy25"], "anomaly_protocol": "one-class"})


def test_egbad_and_alad_scores_follow_their_formulas():
    torch.manual_seed(0)
    config = make_config({**for_method(PRESETS["mnist-anomaly"], "alice"), "alice_form": "adversarial"})
    model, _ = build_model(config)
    model.eval()
    x = torch.rand(5, 1, 28, 28)
    scores = anomaly_scores(model, x)
    assert set(scores) == {"recon", "egbad", "alad"}  # and complexity, where sigma^2 is given
    with torch.no_grad():
        mu = model["encoder"].moments(x)[0]
        rebuilt = model["decoder"](mu)
        d, dxx = model["discriminator"], model["xx_discriminator"]
        features = (d.features(x, mu) - d.features(rebuilt, mu)).abs().flatten(1).sum(1)
        egbad = 0.9 * (x - rebuilt).abs().flatten(1).sum(1) + 0.1 * features
        alad = (dxx.features(torch.cat([x, x], 1)) - dxx.features(torch.cat([x, rebuilt], 1))).abs().flatten(1).sum(1)
    torch.testing.assert_close(scores["egbad"], egbad)
    torch.testing.assert_close(scores["alad"], alad)


def test_anomaly_metrics_count_the_anomalies_as_positives(monkeypatch):
    anomalous = torch.tensor([False, False, True, True, False])
    monkeypatch.setattr(anomaly, "noise_variance", lambda _model, reference: float(len(reference)))
    monkeypatch.setattr(anomaly, "anomaly_scores", lambda _model, _x, sigma2: {"recon": anomalous.float() * 3 + 1})
    metrics, _ = anomaly.anomaly_metrics(None, torch.zeros(5, 1, 28, 28), anomalous, torch.zeros(7, 1, 28, 28))
    assert metrics["auroc_recon"] == 1.0 and metrics["auprc_recon"] == 1.0 and metrics["anomaly_test_anomalous"] == 2
    assert metrics["anomaly_noise_variance"] == 7.0  # measured on the training images given


def test_every_method_that_trains_on_labels_says_so():
    for method in METHODS.values():  # a conditional method or one with a labelled metric must set uses_labels
        assert method.uses_labels == (method.conditional or method.metrics is not None), method.name


def test_methods_that_use_labels_are_refused_an_anomaly_protocol():
    for method in ("ali-conditional", "ali-kplus1"):
        with pytest.raises(AliError, match="uses labels"):
            make_config({**for_method(PRESETS["mnist"], method), "anomaly_protocol": "one-class"})


def test_the_roc_curves_take_the_anomalies_as_positives(monkeypatch):
    """The figures' ROC legend gives each curve's AUROC with the anomalies as the positive class."""
    from matplotlib.axes import Axes

    legends = []
    plot = Axes.plot
    monkeypatch.setattr(Axes, "plot", lambda ax, *a, **k: legends.append(k.get("label")) or plot(ax, *a, **k))
    rng = np.random.default_rng(0)
    anomalous = np.arange(200) % 4 == 0
    scores = rng.normal(size=200) + 1.5 * anomalous  # anomalies score higher: AUROC well above 1/2
    anomaly_report.study_figure({3: (scores, anomalous)}, "recon", "t")
    anomaly_report.run_figure({"recon": scores}, anomalous, "t")
    expected = f"(AUROC {roc_auc_score(anomalous, scores):.3f})"
    assert [label for label in legends if label and "AUROC" in label] == [f"class 3 {expected}", f"recon {expected}"]
