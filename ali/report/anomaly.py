"""Anomaly detection on the page: score histograms (normal against anomalous) and ROC curves, for
one run and for a study over every class, and a study's report page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.metrics import auc, roc_curve

from ali.evaluation.anomaly import table_order
from ali.report.curves import png_bytes
from ali.report.markup import code, document, esc, note, picture, section, table
from ali.report.readers import read_object
from ali.rundir import ANOMALY_STUDY_FIGURE, ANOMALY_STUDY_FILE, REPORT_FILE


def run_figure(scores: dict[str, np.ndarray], anomalous: np.ndarray, title: str) -> bytes:
    """One row per score: the two score histograms, and the ROC curve with its AUROC."""
    fig = Figure(figsize=(8, 2.8 * len(scores)))
    axes = fig.subplots(len(scores), 2, squeeze=False)
    for (name, values), (hist, roc) in zip(scores.items(), axes):
        edges = np.histogram_bin_edges(values, bins=60)
        hist.hist(values[~anomalous], bins=edges, density=True, alpha=0.6, label=f"normal ({int((~anomalous).sum())})")
        hist.hist(values[anomalous], bins=edges, density=True, alpha=0.6, label=f"anomalous ({int(anomalous.sum())})")
        hist.set_xlabel(f"{name} score")
        hist.legend(fontsize=8)
        _roc(roc, values, anomalous, name)
    fig.suptitle(title)
    fig.tight_layout()
    return png_bytes(fig)


def study_figure(per_class: dict[int, tuple[np.ndarray, np.ndarray]], score: str, title: str) -> bytes:
    """The ROC curve of `score` for each class's run, and each run's two histograms of it (normal
    against anomalous test images): {class: (scores, anomalous flags)}."""
    classes = sorted(per_class)
    columns = (len(classes) + 1) // 2
    mosaic = [["roc", *[f"h{c}" for c in classes[:columns]]], ["roc", *[f"h{c}" for c in classes[columns:]]]]
    mosaic[1] += ["."] * (len(mosaic[0]) - len(mosaic[1]))
    fig = Figure(figsize=(5 + 2.2 * columns, 4.8))
    axes = fig.subplot_mosaic(mosaic, width_ratios=[2.3] + [1] * columns)
    for cls in classes:
        values, anomalous = per_class[cls]
        _roc(axes["roc"], values, anomalous, f"class {cls}")
        hist = axes[f"h{cls}"]
        edges = np.histogram_bin_edges(values, bins=40)
        hist.hist(values[~anomalous], bins=edges, density=True, alpha=0.6, label="normal")
        hist.hist(values[anomalous], bins=edges, density=True, alpha=0.6, label="anomalous")
        hist.set_title(f"class {cls}", fontsize=8)
        hist.tick_params(labelsize=6)
        hist.set_yticks([])
    axes[f"h{classes[0]}"].legend(fontsize=6)
    fig.suptitle(f"{title}; histograms of the {score} score", fontsize=10)
    fig.tight_layout()
    return png_bytes(fig)


def _roc(ax: Axes, values: np.ndarray, anomalous: np.ndarray, label: str) -> None:
    fpr, tpr, _ = roc_curve(anomalous, values)
    area = float(auc(fpr, tpr))
    ax.plot(fpr, tpr, label=f"{label} (AUROC {area:.3f})")
    ax.plot([0, 1], [0, 1], color="0.7", linewidth=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(fontsize=7)


def is_anomaly_study_dir(path: Path) -> bool:
    """A study of `ali anomaly ... all`: it holds anomaly-study.json."""
    return (path / ANOMALY_STUDY_FILE).is_file()


def study_table(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """An anomaly study's table, for the Markdown file and the report page alike: headers, then a
    row per class (each score's AUROC / AUPRC in percent, the hardest anomalous class per score
    where the protocol has several, training seconds) and the mean and lowest rows. A damaged
    summary gives empty cells, not an error."""
    classes = summary.get("classes", {}) if isinstance(summary.get("classes"), dict) else {}
    rows_by_class = {c: r for c, r in classes.items() if isinstance(r, dict)}
    keys = table_order(list(summary.get("mean", {})))
    names = [k[len("auroc_") :] for k in keys if k.startswith("auroc_")]
    with_hardest = any(r.get("hardest_anomaly") for r in rows_by_class.values())
    percent = lambda v: f"{100 * v:.1f}" if isinstance(v, (int, float)) else ""  # noqa: E731

    def hardest(row: dict[str, Any]) -> list[str]:
        worst = row.get("hardest_anomaly", {})
        cells = [worst.get(n) for n in names] if isinstance(worst, dict) else []
        return [" / ".join(f"{c.get('class', '?')} ({percent(c.get('auroc'))})" for c in cells if isinstance(c, dict))]

    seconds = lambda row: f"{row.get('train_seconds') or 0:.0f}"  # noqa: E731
    headers = ["class", *keys, *([f"hardest anomalous class ({' / '.join(names)})"] if with_hardest else []), "train s"]
    rows = [
        [str(c), *[percent(r.get(k)) for k in keys], *(hardest(r) if with_hardest else []), seconds(r)]
        for c, r in rows_by_class.items()
    ]
    for label, key in (("mean", "mean"), ("lowest", "min")):
        values = summary.get(key) if isinstance(summary.get(key), dict) else {}
        rows.append([label, *[percent(values.get(k)) for k in keys], *([""] if with_hardest else []), ""])
    return headers, rows


def anomaly_study_page(study: Path) -> str:
    """The HTML of an anomaly study's report: per class each score's AUROC / AUPRC and the
    anomalous class it separates worst, the mean and lowest class, the ROC figure, links to the runs."""
    missing: list[str] = []
    summary: dict[str, Any] = read_object(study / ANOMALY_STUDY_FILE, missing)
    headers, rows = study_table(summary)
    classes = len(rows) - 2  # the class rows link to their runs' reports
    rows = [[f'<a href="class-{esc(r[0])}/{REPORT_FILE}">class {esc(r[0])}</a>', *r[1:]] for r in rows[:classes]] + rows[classes:]
    results = (
        table(headers, rows, numeric=tuple(range(1, len(headers))))
        if classes
        else note(f"Cannot read {', '.join(missing)}." if missing else f"{ANOMALY_STUDY_FILE} lists no class.")
    )
    times = (
        f"Training {summary.get('train_seconds') or 0:.0f} s over the classes; the command that wrote this "
        f"{summary.get('wall_seconds') or 0:.0f} s (a resumed study reuses the classes that finished)."
    )
    figure = picture(study / ANOMALY_STUDY_FIGURE, "ROC curves") if (study / ANOMALY_STUDY_FIGURE).is_file() else ""
    method, protocol = summary.get("method", "?"), summary.get("protocol", "?")
    body = section("results", "AUROC / AUPRC per class (percent)", results + note(times)) + section("roc", "ROC curves", figure)
    subtitle = f"{code(method)}, {esc(protocol)} protocol: one run per class, each in class-&lt;K&gt;/"
    return document(f"Anomaly study: {method}", subtitle, [("results", "Results"), ("roc", "ROC curves")], body)
