"""Anomaly-detection figures: score histograms (normal against anomalous) and ROC curves, for
one run and for a study over every class."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import auc, roc_curve

from ali.report.curves import png_bytes


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
    """The ROC curve of `score` for each class's run: {class: (scores, anomalous flags)}."""
    fig = Figure(figsize=(5, 4.5))
    ax = fig.subplots()
    for cls, (values, anomalous) in sorted(per_class.items()):
        _roc(ax, values, anomalous, f"class {cls}")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return png_bytes(fig)


def _roc(ax, values: np.ndarray, anomalous: np.ndarray, label: str) -> None:
    fpr, tpr, _ = roc_curve(anomalous, values)
    area = float(auc(fpr, tpr))
    ax.plot(fpr, tpr, label=f"{label} (AUROC {area:.3f})")
    ax.plot([0, 1], [0, 1], color="0.7", linewidth=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(fontsize=7)
