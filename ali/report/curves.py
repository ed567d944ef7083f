"""Matplotlib figures for the HTML report (ali.report.pages): a run's training curves, a study's spread.

Drawn on `matplotlib.figure.Figure` with no pyplot, so no backend is chosen and no global figure
state is touched: the report can be written from inside training, a study, or a notebook that
uses pyplot itself. Each function returns PNG bytes.
"""

from __future__ import annotations

import io
import math
from typing import Any

from matplotlib.figure import Figure

GROUP_TITLES = {"losses": "Losses", "lr": "Learning rate", "throughput": "Throughput"}
_Y_LABELS = {"lr": "learning rate", "throughput": "steps / s"}
_EVENT_COLOURS = {"divergence": "#d62728", "d_wins": "#ff7f0e"}
_OTHER_EVENT = "#6e7781"


def number(value: Any) -> float:
    """A logged value as a float: NaN for anything that is not a number (null, text, bool)."""
    if isinstance(value, str) and value.strip().lower() in ("inf", "+inf", "infinity", "-inf", "-infinity", "nan"):
        return float(value)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def curve_groups(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The logged keys by figure: losses (every other number), learning rates, throughput."""
    keys = [
        k
        for k in dict.fromkeys(k for r in rows for k in r)
        if k != "step" and any(not math.isnan(number(r.get(k))) for r in rows)
    ]
    lr = [k for k in keys if k == "lr" or k.endswith("_lr")]
    rate = [k for k in keys if k.endswith("_per_s")]
    return {"losses": [k for k in keys if k not in lr and k not in rate], "lr": lr, "throughput": rate}


def event_step(event: dict[str, Any]) -> float:
    """Where a guard event happened: a divergence where it was detected, not the step it was
    rolled back to."""
    return number(event.get("detected_at", event.get("step")))


def png_bytes(fig: Figure) -> bytes:
    with io.BytesIO() as buf:
        fig.savefig(buf, format="png", dpi=100)
        return buf.getvalue()


def training_curves(rows: list[dict[str, Any]], events: list[dict[str, Any]]) -> dict[str, bytes]:
    """group -> PNG. Losses get one panel per key (their scales differ by orders of magnitude);
    lr and throughput one panel each. Guard events are dashed vertical lines on every panel."""
    rows = sorted(rows, key=lambda r: number(r.get("step")))
    steps = [number(r.get("step")) for r in rows]
    marks = [(s, str(e.get("event"))) for e in events if math.isfinite(s := event_step(e))]
    out = {}
    for group, keys in curve_groups(rows).items():
        if not keys:
            continue
        panels = [[k] for k in keys] if group == "losses" else [keys]
        ncol = 2 if len(panels) == 4 else min(3, len(panels))  # four panels read better as 2 x 2 than 3 + 1
        nrow = math.ceil(len(panels) / ncol)
        # lr and throughput sit side by side on the page, so they are drawn half as wide
        width = 10.5 if group == "losses" else 5.2
        fig = Figure(figsize=(width, 2.7 * nrow + 0.4), layout="constrained")
        fig.suptitle(GROUP_TITLES[group], fontweight="bold")
        for i, names in enumerate(panels):
            ax = fig.add_subplot(nrow, ncol, i + 1)
            for name in names:
                ys = [number(r.get(name)) for r in rows]
                ax.plot(steps, [y if math.isfinite(y) else math.nan for y in ys], lw=1.4, label=name)
            labelled: set[str] = set()
            for s, kind in marks:
                ax.axvline(
                    s, ls="--", lw=1, color=_EVENT_COLOURS.get(kind, _OTHER_EVENT), label=None if kind in labelled else kind
                )
                labelled.add(kind)
            values = [v for r in rows for n in names if math.isfinite(v := number(r.get(n)))]
            if group == "lr" and values and min(values) > 0 and max(values) > 10 * min(values):
                ax.set_yscale("log")  # a decay to 0.1% of the start is invisible on a linear axis
            if group == "losses":
                ax.set_title(names[0])
            ax.set_xlabel("training step")
            ax.set_ylabel(_Y_LABELS.get(group, names[0]))
            ax.grid(alpha=0.3)
            if len(names) > 1 or marks:
                ax.legend(fontsize=8)
        out[group] = png_bytes(fig)
    return out


def metric_spread(per_method: dict[str, list[dict[str, Any]]], metrics: list[str]) -> bytes:
    """One panel per metric: a dot per seed and a bar at the mean, methods side by side."""
    ncol = min(3, len(metrics))
    nrow = math.ceil(len(metrics) / ncol)
    fig = Figure(figsize=(10.5, 2.6 * nrow + 0.3), layout="constrained")
    methods = list(per_method)
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        for x, method in enumerate(methods):
            ys = [v for r in per_method[method] if math.isfinite(v := number(r.get(metric)))]
            ax.scatter([x] * len(ys), ys, s=24, alpha=0.75)
            if ys:
                ax.hlines(sum(ys) / len(ys), x - 0.25, x + 0.25, color="#1d232b", lw=2)
        ax.set_xticks(range(len(methods)), methods, fontsize=8)
        ax.set_xlim(-0.6, len(methods) - 0.4)
        ax.set_title(metric, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    return png_bytes(fig)


# What a curve over checkpoints plots: the headline figures, not their spreads, chosen Cs or counts,
# nor the reference figures every checkpoint shares (the real test images' IS, the classifier's accuracy).
_HEADLINE = (
    "error",
    "classifier_is",
    "classifier_fid",
    "inception_score_mean",
    "inception_fid",
    "accuracy",
    "kl_to_uniform",
    "class_entropy",
    "auroc",
    "auprc",
)
_HEADLINE_EXACT = ("stacked_modes", "stacked_kl")  # not their split into channels and dependence
_REFERENCE = ("_real_test", "test_class_accuracy")


def headline_metrics(points: list[dict[str, Any]]) -> list[str]:
    """The keys of per-checkpoint evaluations that a curve shows: headline figures of the model
    that are numbers in some point."""
    return [
        key
        for key in dict.fromkeys(k for p in points for k in p)
        if (key in _HEADLINE_EXACT or any(h in key for h in _HEADLINE))
        and not key.endswith("_std")
        and not any(r in key for r in _REFERENCE)
        and any(math.isfinite(number(p.get(key))) for p in points)
    ]


def checkpoint_curves(points: list[dict[str, Any]], keys: list[str]) -> bytes:
    """One panel per key: its value at each evaluated checkpoint against the checkpoint's step."""
    points = sorted(points, key=lambda p: number(p.get("checkpoint_step")))
    steps = [number(p.get("checkpoint_step")) for p in points]
    ncol = min(3, len(keys))
    nrow = math.ceil(len(keys) / ncol)
    fig = Figure(figsize=(3.6 * ncol, 2.7 * nrow + 0.3), layout="constrained")
    for i, key in enumerate(keys):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        ax.plot(steps, [number(p.get(key)) for p in points], marker="o", lw=1.4)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    return png_bytes(fig)
