"""`ali anomaly`: anomaly detectors trained and scored by a published protocol, one class or every
class in turn (ali.data.anomaly: the protocols; ali.evaluation.anomaly: the scores).

One class: OUT is an ordinary run directory, with `anomaly-scores.npz`, `anomaly.png` and the
AUROC / AUPRC of each score in its metrics.json. Every class ("all"): OUT/class-<K>/ per class,
then `anomaly-study.json` (each class's figures and their mean), `anomaly-study.md` (the table),
`anomaly-study.png` (each class's ROC curve of the first score) and `report.html`. A class whose
run finished is reused and one cut off continues, so an interrupted study picks up where it
stopped (a single-class OUT alike); a folder whose run has other settings is refused, so a table
never mixes protocols or recipes.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from ali.config import TrainConfig, make_config
from ali.data.anomaly import PROTOCOLS
from ali.errors import AliError
from ali.evaluation.anomaly import auroc_by_anomalous_class, table_order
from ali.finish import train_or_reuse
from ali.report import anomaly as anomaly_report
from ali.report.pages import write_report
from ali.rundir import (
    ANOMALY_STUDY_FIGURE,
    ANOMALY_STUDY_FILE,
    ANOMALY_TABLE_FILE,
    atomic_write_bytes,
    atomic_write_json,
    read_anomaly_scores,
)

ROLE = {"one-class": "normal", "one-anomalous": "anomalous"}  # what the protocol's class is


def parse_classes(text: str) -> list[int]:
    """--normal-class / --anomaly-class: "all" or one class K."""
    if text == "all":
        return list(range(10))
    if not text.isdigit():
        raise AliError(f"a class is a number 0..9 or 'all'; got {text!r}")
    return [int(text)]


def class_config(values: dict[str, Any], protocol: str, cls: int) -> TrainConfig:
    """The config of the run that class `cls` plays its protocol's role in."""
    return make_config({**values, "anomaly_protocol": protocol, "anomaly_class": cls})


def run_anomaly(values: dict[str, Any], protocol: str, classes: list[int], out: Path, progress: bool = True) -> dict[str, Any]:
    """Train and score the runs of `protocol` for each class in `classes` (config `values` for
    every one); returns the metrics of the one run, or the study's summary for several."""
    if protocol not in PROTOCOLS:
        raise AliError(f"unknown anomaly protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    began = time.perf_counter()
    per_class: dict[int, dict[str, Any]] = {}
    for cls in classes:
        config = class_config(values, protocol, cls)
        per_class[cls] = train_or_reuse(config, out if len(classes) == 1 else out / f"class-{cls}", progress)
    if len(classes) == 1:
        return per_class[classes[0]]
    summary = _summary(per_class, protocol, config.method, time.perf_counter() - began)
    names = [k[len("auroc_") :] for k in table_order(list(summary["mean"])) if k.startswith("auroc_")]
    curves = {}
    for cls in classes:
        scores, anomalous, labels = read_anomaly_scores(out / f"class-{cls}")
        curves[cls] = (scores[names[0]], anomalous)
        if protocol != "one-class":
            continue  # one anomalous class per run: the hardest would be that class
        hardest = {}
        for name in names:
            by_class = auroc_by_anomalous_class(scores[name], anomalous, labels)
            worst = min(by_class, key=by_class.get)
            hardest[name] = {"class": worst, "auroc": by_class[worst]}
        summary["classes"][str(cls)]["hardest_anomaly"] = hardest
    atomic_write_json(out / ANOMALY_STUDY_FILE, summary)
    atomic_write_bytes(out / ANOMALY_TABLE_FILE, _table(summary).encode())
    title = f"{config.method}, {protocol}: {names[0]} score, class = {ROLE[protocol]} class"
    atomic_write_bytes(out / ANOMALY_STUDY_FIGURE, anomaly_report.study_figure(curves, names[0], title))
    write_report(out, sub_runs=False)  # each class's run wrote its own at its end
    return summary


def _summary(per_class: dict[int, dict[str, Any]], protocol: str, method: str, seconds: float) -> dict[str, Any]:
    keys = [k for k in next(iter(per_class.values())) if k.startswith(("auroc_", "auprc_"))]
    return {
        "protocol": protocol,
        "method": method,
        "classes": {str(c): {k: m[k] for k in [*keys, "train_seconds"] if k in m} for c, m in per_class.items()},
        "mean": {k: statistics.fmean(m[k] for m in per_class.values()) for k in keys},
        "min": {k: min(m[k] for m in per_class.values()) for k in keys},
        "train_seconds": round(sum(m.get("train_seconds", 0.0) for m in per_class.values()), 1),
        "wall_seconds": round(seconds, 1),
    }


def _table(summary: dict[str, Any]) -> str:
    """The study as a Markdown table (anomaly_report.study_table), its means in bold."""
    headers, rows = anomaly_report.study_table(summary)
    mean = rows[-2]
    rows[-2] = [mean[0], *[f"**{v}**" if v else v for v in mean[1:]]]
    has_hardest = headers[-2].startswith("hardest")
    lines = [
        f"# {summary['method']}, {summary['protocol']} protocol (each row: the {ROLE[summary['protocol']]} class)",
        "",
        "| " + " | ".join(headers) + " |",
        "|---|" + "---:|" * (len(headers) - 1),
        *["|" + "".join(f" {cell} |" if cell else " |" for cell in row) for row in rows],
        "",
        "AUROC / AUPRC in percent."
        + (
            " Hardest anomalous class: the one each score separates worst from the normal images (AUROC against it alone)."
            if has_hardest
            else ""
        ),
        f"Training {summary['train_seconds']:.0f} s over the classes; this command {summary['wall_seconds']:.0f} s"
        " (a resumed study reuses the classes that finished).",
    ]
    return "\n".join(lines) + "\n"
