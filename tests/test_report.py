"""ali.report.pages on hand-written run and study directories: the page is self-contained, shows what the
directory holds and says what it lacks; ali.report.reference holds well-formed published figures."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import report_fixtures as fx

from ali.errors import AliError
from ali.report.curves import checkpoint_curves, headline_metrics
from ali.report.pages import metrics_table, write_report
from ali.report.readers import read_stats
from ali.report.reference import REFERENCE, published


class _Refs(HTMLParser):
    """Every tag's attributes, and the ids of the sections."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def parse_page(path: Path) -> tuple[str, _Refs]:
    text = path.read_text()
    refs = _Refs()
    refs.feed(text)
    return text, refs


def assert_self_contained(text: str, refs: _Refs) -> None:
    """Nothing the page shows comes from outside it: no web address, script, style sheet link or
    CSS url(); every picture is a data URI."""
    assert not re.search(r"https?:", text, re.IGNORECASE)
    assert not re.search(r"url\(|@import", text)
    tags = [t for t, _ in refs.tags]
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    images = [a for t, a in refs.tags if t == "img"]
    assert images, "the page shows no picture"
    for attrs in images:
        assert attrs["src"].startswith("data:image/png;base64,"), attrs["src"][:60]
    for _, attrs in refs.tags:  # links stay inside the page or go to a sibling file on disk
        href = attrs.get("href", "")
        assert href.startswith("#") or href.endswith("report.html") or not href, href


def sections(refs: _Refs) -> set[str]:
    return {a["id"] for t, a in refs.tags if t == "section"}


def test_toy_run_report(tmp_path):
    run = fx.toy_run(tmp_path / "run")
    out = write_report(run)
    assert out == run / "report.html"
    text, refs = parse_page(out)
    assert_self_contained(text, refs)
    assert {"config", "metrics", "curves", "pictures", "checkpoints"} <= sections(refs)
    assert "bf16 (requested auto)" in text  # precision: what was asked and what the machine gave
    assert "13.4" in text and "24.1" in text and "PacGAN" in text  # published figures beside ours
    assert "∞" in text  # reverse_kl "inf"
    assert "Missing from this directory" not in text
    assert "divergence" in text and "d_wins" in text  # guard events in their table
    assert "torn last line" in text  # the half-written last stats line is skipped, and said so
    assert "checkpoint-000000300.safetensors" in text and "balanced: mean |loss_d - 2 ln 2|" in text
    n_images = sum(t == "img" for t, _ in refs.tags)
    assert n_images == 4  # losses, lr, throughput, comparison.png
    assert not list(run.glob(".*tmp*"))  # written atomically: no temporary file left behind


def test_image_run_report(tmp_path):
    run = fx.image_run(tmp_path / "run")
    text, refs = parse_page(write_report(run))
    assert_self_contained(text, refs)
    assert {"config", "metrics", "curves", "pictures", "over-training", "checkpoints"} <= sections(refs)
    for title in ("Samples", "Reconstructions", "Interpolations"):
        assert f"<h3>{title}</h3>" in text
    steps = [int(s.replace(",", "")) for s in re.findall(r"<figcaption>step ([\d,]+)</figcaption>", text)]
    assert steps == [500, 2500, 5000]  # samples over training in step order
    assert "0.4595" in text and "MINE" in text  # recon_class_accuracy beside the published
    assert "not measured" in text and "9.28" in text  # classifier_is: not measured here, ALICE's published
    assert "comparison.png" not in text  # no toy figure is expected of an image run
    alts = [a["alt"] for t, a in refs.tags if t == "img"]
    assert "training curves: losses" in alts and "training curves: lr" in alts and "training curves: throughput" in alts


def test_a_conditional_run_s_figures_stand_apart_from_the_published_ones():
    metrics = {
        "conditional_classifier_is": 9.67,
        "conditional_recon_class_accuracy": 0.9985,
        "conditional_recon_mse": 0.012,
        "swapped_y_recon_as_y": 0.91,
        "samples_scored": 10_000,
        "is_splits": 10,
    }
    text = metrics_table(metrics, "mnist")
    # no published unconditional figure (ALICE's IS, MINE's accuracy, the recon errors) beside them,
    # nor their unconditional namesakes listed as "not measured"
    assert not {"9.28", "0.4595", "0.48"} & set(re.findall(r"\d+\.\d+", text))
    assert "<code>classifier_is</code>" not in text and "<code>svm_error_100</code>" in text
    assert "not comparable with unconditional or published figures" in text
    assert "10,000 samples, IS in 10 splits, of the model at the end of training" in text


def test_study_report(tmp_path):
    study = fx.study(tmp_path / "study")
    text, refs = parse_page(write_report(study))
    assert_self_contained(text, refs)
    assert {"summary", "figures", "seeds", "runs", "config"} <= sections(refs)
    assert "20.5 ± 0.5" in text  # modes_covered mean ± std from study.json
    assert "ALI" in text and "ALICE" in text  # the methods' titles head the summary columns
    assert "13.4" in text  # the paper's figure beside the study's
    links = [a["href"] for t, a in refs.tags if t == "a" and a.get("href", "").endswith("report.html")]
    assert sorted(links) == sorted(f"{m}/seed-{s}/report.html" for m in ("ali", "alice") for s in (0, 1))
    for link in links:  # each run got its own report, so the links lead somewhere
        assert (study / link).is_file()
    # study figure, the per-seed spread, one thumbnail per run
    assert sum(t == "img" for t, _ in refs.tags) == 2 + 4


def test_unfinished_study_is_read_from_its_runs(tmp_path):
    study = tmp_path / "study"
    fx.toy_run(study / "ali" / "seed-0", stats=False)
    text, refs = parse_page(write_report(study, sub_runs=False))
    assert_self_contained(text, refs)
    assert "study.json" in text and "has not finished" in text
    assert "study.png" in text  # a toy study's figure is expected, and missing
    assert '<td>ali</td><td class="num">0</td><td class="num">20</td>' in text  # per-seed row from metrics.json


def test_run_without_metrics_or_stats_says_what_is_missing(tmp_path):
    run = tmp_path / "run"
    fx.write_json(run / "training_options.json", fx.options("toy25", "toy"))
    text, refs = parse_page(write_report(run))
    assert not re.search(r"https?:", text)
    assert [t for t, _ in refs.tags if t == "img"] == []
    assert "Missing from this directory" in text
    for name in ("metrics.json", "stats.jsonl", "checkpoints", "comparison.png"):
        assert f"<code>{name}</code>" in text
    assert "No logged training steps" in text and "No metrics.json" in text


def test_damaged_files_are_reported_not_fatal(tmp_path):
    run = fx.toy_run(tmp_path / "run")
    (run / "comparison.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (run / "metrics.json").write_text('{"modes_covered": 2')  # cut off mid-write
    (run / "balanced.json").write_text("[]")
    text, refs = parse_page(write_report(run))
    assert_self_contained(text, refs)
    assert "comparison.png is damaged" in text
    assert "metrics.json (unreadable" in text
    assert "balanced.json is damaged" in text


def test_an_older_runs_best_json_still_marks_the_balanced_checkpoint(tmp_path):
    run = fx.toy_run(tmp_path / "run")
    (run / "balanced.json").rename(run / "best.json")  # the record's name before it said what it holds
    text, _ = parse_page(write_report(run))
    assert "balanced: mean |loss_d - 2 ln 2|" in text
    (run / "best.json").write_text("[]")
    assert "best.json is damaged" in parse_page(write_report(run))[0]


def test_stats_reader_separates_rows_events_and_torn_lines(tmp_path):
    path = tmp_path / "stats.jsonl"
    fx.write_stats(path, ("loss_d",), steps=200, torn=True)
    rows, events, skipped = read_stats(path)
    assert len(rows) == 10 and [e["event"] for e in events] == ["divergence"] and skipped == 1


def test_a_directory_that_is_neither_is_an_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(AliError, match="neither a run directory.*nor a study directory"):
        write_report(tmp_path)
    with pytest.raises(AliError, match="is not a directory"):
        write_report(tmp_path / "notes.txt")


FRACTIONS = ("high_quality_fraction", "recon_class_accuracy", "svm_error", "kplus1_error", "linear_probe")


def test_reference_figures_are_well_formed():
    assert published("toy25", "modes_covered")[0].value == 13.4
    assert [r.value for r in published("MNIST", "recon_class_accuracy")] == [0.4595, 0.9817, 0.9610]
    assert published("stacked_mnist", "stacked_modes")[0].value == 16
    assert published("mnist", "stacked_kl")  # Stacked-MNIST figures whatever the dataset is called
    assert published("cifar10", "no_such_metric") == []
    for (dataset, metric), refs in REFERENCE.items():
        assert dataset == dataset.lower() and refs
        for who, value, source in refs:
            assert who and source and isinstance(value, (int, float))
            if metric.startswith(FRACTIONS):
                assert 0 <= value <= 1, (dataset, metric, who)  # fractions, as ali's metrics are
    json.dumps({f"{d}/{m}": r for (d, m), r in REFERENCE.items()})  # plain data, serialisable


def test_a_checkpoint_curve_shows_the_headline_figures_and_not_their_spreads_or_shared_references():
    points = [
        {"checkpoint_step": 2, "kplus1_error_100": 0.3, "classifier_is": 5.0, "classifier_is_std": 0.1,
         "classifier_is_real_test": 9.8, "svm_best_C_100": 0.5, "samples_scored": 100, "test_class_accuracy": 0.99},
        {"checkpoint_step": 4, "kplus1_error_100": 0.2, "classifier_is": 6.0, "classifier_is_std": 0.2,
         "classifier_is_real_test": 9.8, "svm_best_C_100": 0.7, "samples_scored": 100},
    ]  # fmt: skip
    assert headline_metrics(points) == ["kplus1_error_100", "classifier_is"]
    stacked = {"stacked_modes": 990, "stacked_kl": 0.2, "stacked_kl_channels": 0.18, "inception_fid": 30.0}
    assert headline_metrics([stacked]) == ["stacked_modes", "stacked_kl", "inception_fid"]
    entropy = {"class_entropy": 0.2, "class_entropy_real_test": 0.02, "conditional_class_entropy": 0.3}
    assert headline_metrics([entropy]) == ["class_entropy", "conditional_class_entropy"]  # not the test images'

    points[1]["classifier_is"] = 5.0  # a figure that did not move is still drawn
    assert headline_metrics(points) == ["kplus1_error_100", "classifier_is"]
    assert checkpoint_curves(points, ["kplus1_error_100"])[:4] == b"\x89PNG"
