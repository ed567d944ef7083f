"""`ali report DIR`: one self-contained HTML page for a run directory or a study directory.

The page must open from disk on a machine with no network and no ali (a result mailed or
archived), so every picture is embedded as a base64 data URI, the style sheet is inline and no
script, font or style sheet is fetched. It reads whatever the directory holds and says on the page
what is missing and what that means instead of failing: a half-finished run's report is useful.

Run page: config (requested and resolved values), final metrics beside the published figures
(ali.report.reference), loss / learning-rate / throughput curves with guard events marked
(ali.report.curves), the run's pictures, samples over training, checkpoints. Study page:
mean ± std per metric per method, the study figures, a per-seed table, each run's picture linked
to that run's own report.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ali.errors import AliError
from ali.evaluation.image_eval import CONDITIONAL_PREFIX
from ali.report.anomaly import anomaly_study_page, is_anomaly_study_dir
from ali.report.curves import metric_spread, number, training_curves
from ali.report.markup import code, document, esc, fmt, img, note, picture, section, table
from ali.report.readers import STUDY_FILE, is_run_dir, is_study_dir, read_json, read_object, read_stats, study_runs
from ali.report.reference import metrics_for, published
from ali.rundir import (
    ANOMALY_FIGURE_FILE,
    ANOMALY_STUDY_FILE,
    COMPARISON_FILE,
    METRICS_FILE,
    OPTIONS_FILE,
    REPORT_FILE,
    RESOLVED_KEY,
    STATS_FILE,
    atomic_write_bytes,
    balanced_record,
    list_checkpoints,
    read_balanced,
)

STUDY_FIGURE = "study.png"
MAX_TRAINING_GRIDS = 24  # more grids than this are thinned evenly, so the page stays a few MB
_GRID_NAME = re.compile(r"^samples-(\d+)\.png$")
_KEY_OPTIONS = ("dataset", "method", "arch", "latent_dim", "steps", "batch_size", "lr", "seed", "device", "precision")
_PICTURES = (  # file, title, caption
    (
        COMPARISON_FILE,
        "Toy comparison",
        "The paper's five panels: held-out x, their codes Gz(x), reconstructions "
        "Gx(Gz(x)), prior z, samples Gx(z). Colours are mixture components.",
    ),
    ("samples.png", "Samples", "Gx(z) for z drawn from the prior."),
    ("reconstructions.png", "Reconstructions", "Columns alternate: a held-out image x, then its reconstruction Gx(Gz(x))."),
    ("interpolations.png", "Interpolations", "Decodings of evenly spaced codes between the codes of two held-out images."),
    (
        ANOMALY_FIGURE_FILE,
        "Anomaly scores",
        "Each score's histogram on the normal and the anomalous test images, and its ROC curve (ali anomaly).",
    ),
)
_WHY_MISSING = {
    OPTIONS_FILE: "the run's config is unknown (was this directory written by `ali train`?)",
    STATS_FILE: "no training curves: nothing logged yet (a line is written every log_every steps)",
    METRICS_FILE: "no final metrics: the run has not finished or was interrupted; `ali train --resume --out DIR` completes it",
    "checkpoints": "no checkpoint-*.safetensors: none saved yet (one every checkpoint_every steps), or they were deleted",
    COMPARISON_FILE: "no toy comparison figure: a toy run draws it in its final evaluation",
    "samples.png": "no sample grid: an image run draws it in its final evaluation",
    "reconstructions.png": "no reconstructions: an image run draws them in its final evaluation",
    STUDY_FILE: "no study summary: the study has not finished; the runs below are what exists so far",
    STUDY_FIGURE: "no study figure: it is drawn when a toy study finishes",
}


# ---------------------------------------------------------------- reading the directory


# ---------------------------------------------------------------- HTML pieces


def _missing_box(missing: Sequence[str]) -> str:
    if not missing:
        return ""
    items = "".join(f"<li>{code(name)}: {esc(_WHY_MISSING.get(name, 'missing or damaged'))}</li>" for name in missing)
    return f'<div class="missing"><b>Missing from this directory</b><ul>{items}</ul></div>'


def _published_cell(dataset: str, metric: str) -> str:
    refs = published(dataset, metric)
    lines = [f'<span class="pub"><b>{esc(fmt(r.value))}</b> {esc(r.who)} <span>({esc(r.source)})</span></span>' for r in refs]
    return "<br>".join(lines) or "—"


# ---------------------------------------------------------------- run page


def metrics_table(metrics: dict[str, Any], dataset: str) -> str:
    """Ours beside the published figures. Metrics with published figures that this run did not
    measure are listed too, so a reader sees what is left to compare; a conditional run's
    `conditional_*` figure stands in for its unconditional namesake, which it is not comparable
    with (no published figure is set beside it). The notes state the sample protocol."""
    rows = [[code(k), esc(fmt(v)), _published_cell(dataset, k)] for k, v in metrics.items()]
    rows += [
        [code(k), '<span class="none">not measured</span>', _published_cell(dataset, k)]
        for k in metrics_for(dataset)
        if k not in metrics and CONDITIONAL_PREFIX + k not in metrics
    ]
    notes = ["Published values are in ali's units (fractions, not percentages)."]
    if "samples_scored" in metrics:
        notes.append(
            f"Sample figures (classifier IS, FID, class histogram): {fmt(metrics['samples_scored'])} samples, "
            f"IS in {fmt(metrics.get('is_splits'))} splits, of the model at the end of training."
        )
    if any(k.startswith(CONDITIONAL_PREFIX) for k in metrics):
        notes.append(
            f"{CONDITIONAL_PREFIX}* figures come from a model given each sample's or image's condition y, so they are "
            "not comparable with unconditional or published figures; swapped_y_* reconstruct under another "
            "condition y' and say whether Gx(Gz(x, y'), y') follows y' or x's own class."
        )
    return table(["metric", "this run", "published"], rows, numeric=(1,)) + "".join(f'<p class="sub">{esc(n)}</p>' for n in notes)


def _config_html(options: dict[str, Any]) -> str:
    """The keys a reader looks for first, each "auto" shown with what it resolved to, then all."""
    resolved = options.get(RESOLVED_KEY) if isinstance(options.get(RESOLVED_KEY), dict) else {}
    rows = []
    for key in _KEY_OPTIONS:
        if key in options:
            value = fmt(options[key])
            if key in resolved and resolved[key] != options[key]:
                value = f"{fmt(resolved[key])} (requested {value})"
            rows.append([code(key), esc(value)])
    rows += [[code(k), esc(fmt(v))] for k, v in options.items() if k.startswith(("requested_", "resolved_"))]
    full = esc(json.dumps(options, indent=2, default=str))
    return table(["key", "value"], rows) + f"<details><summary>all of {OPTIONS_FILE}</summary><pre>{full}</pre></details>"


def _curves_html(rows: list[dict[str, Any]], events: list[dict[str, Any]], skipped: int, total: Any) -> str:
    if not rows:
        body = note("No logged training steps to plot.")
    else:
        last = f"{len(rows)} log lines, the last at step {fmt(rows[-1]['step'])}" + (f" of {fmt(total)}" if total else "")
        pngs = training_curves(rows, events)
        losses = "".join(img(p, f"training curves: {g}") for g, p in pngs.items() if g == "losses")
        others = "".join(img(p, f"training curves: {g}") for g, p in pngs.items() if g != "losses")
        body = f'<p class="sub">{esc(last)}.</p>{losses}<div class="row">{others}</div>'
    if skipped:
        body += note(
            f"{skipped} line(s) of {STATS_FILE} could not be read (the torn last line of a killed run?) and were skipped."
        )
    if events:
        event_rows = [
            [
                esc(fmt(e.get("step"))),
                f"<b>{esc(e.get('event'))}</b>",
                esc(", ".join(f"{k}={fmt(v)}" for k, v in e.items() if k not in ("step", "event"))),
            ]
            for e in events
        ]
        body += "<h3>Guard events</h3>" + table(["step", "event", "details"], event_rows, numeric=(0,))
    return body


def _training_grids(run_dir: Path) -> str:
    grids = sorted((int(m.group(1)), p) for p in run_dir.glob("samples-*.png") if (m := _GRID_NAME.match(p.name)))
    if not grids:
        return ""
    shown = grids
    if len(grids) > MAX_TRAINING_GRIDS:  # evenly thinned; the first and last grids are always kept
        keep = {round(i * (len(grids) - 1) / (MAX_TRAINING_GRIDS - 1)) for i in range(MAX_TRAINING_GRIDS)}
        shown = [g for i, g in enumerate(grids) if i in keep]
    note = f'<p class="sub">{len(shown)} of {len(grids)} grids, evenly spaced.</p>' if shown is not grids else ""
    cards = "".join(f"<figure>{picture(p, f'samples at step {s}')}<figcaption>step {s:,}</figcaption></figure>" for s, p in shown)
    return section("over-training", "Samples over training", f'{note}<div class="grid">{cards}</div>')


def _checkpoints_html(run_dir: Path) -> str:
    balanced, record = read_balanced(run_dir), balanced_record(run_dir)
    rows = []
    for path in list_checkpoints(run_dir):
        is_balanced = balanced is not None and balanced.get("file") == path.name
        mark = f"balanced: {esc(balanced.get('criterion', 'score'))} = {esc(fmt(balanced.get('score')))}" if is_balanced else ""
        step = fmt(int(path.stem.split("-")[1]))
        rows.append([code(path.name), step, f"{path.stat().st_size / 2**20:.1f} MiB", mark])
    body = table(["file", "step", "size", ""], rows, numeric=(1, 2)) if rows else note("No checkpoints.")
    if record.is_file() and balanced is None:
        body += note(f"{record.name} is damaged or holds no score.")
    elif balanced is not None and not (run_dir / str(balanced.get("file"))).is_file():
        body += note(f"{record.name} names {balanced.get('file')}, which is not in the directory.")
    return body


def run_page(run_dir: Path) -> str:
    """The HTML of one run's report."""
    missing: list[str] = []
    options = read_object(run_dir / OPTIONS_FILE, missing)
    metrics = read_object(run_dir / METRICS_FILE, missing)
    rows, events, skipped = read_stats(run_dir / STATS_FILE)
    if not (run_dir / STATS_FILE).is_file():
        missing.append(STATS_FILE)
    if not list_checkpoints(run_dir):
        missing.append("checkpoints")
    toy = options.get("arch") == "toy" or (run_dir / COMPARISON_FILE).is_file() or "modes_covered" in metrics
    expected = [COMPARISON_FILE] if toy else ["samples.png", "reconstructions.png"] if options else []
    missing += [name for name in expected if not (run_dir / name).is_file()]
    dataset = str(options.get("dataset", ""))

    pictures = "".join(  # image grids side by side; the five-panel toy figure takes the full width
        f"<figure{' class=wide' * (name == COMPARISON_FILE)}><h3>{esc(title)}</h3>{picture(run_dir / name, title)}"
        f"<figcaption>{esc(caption)}</figcaption></figure>"
        for name, title, caption in _PICTURES
        if (run_dir / name).is_file()
    )
    grids = _training_grids(run_dir)
    body = "".join(
        [
            _missing_box(missing),
            section("config", "Configuration", _config_html(options) if options else note("No config.")),
            section("metrics", "Final metrics", metrics_table(metrics, dataset) if metrics else note(f"No {METRICS_FILE}.")),
            section("curves", "Training curves", _curves_html(rows, events, skipped, options.get("steps"))),
            section(
                "pictures",
                "Pictures",
                f'<div class="pics">{pictures}</div>' if pictures else note("No pictures in this directory."),
            ),
            grids,
            section("checkpoints", "Checkpoints", _checkpoints_html(run_dir)),
        ]
    )
    nav = [("config", "Config"), ("metrics", "Metrics"), ("curves", "Curves"), ("pictures", "Pictures")]
    nav += [("over-training", "Over training")] * bool(grids) + [("checkpoints", "Checkpoints")]
    facts = " · ".join(
        f"{k} <b>{esc(fmt(options[k]))}</b>" for k in ("dataset", "method", "arch", "steps", "seed") if k in options
    )
    return document(f"Run {run_dir.resolve().name}", facts or esc(run_dir), nav, body)


# ---------------------------------------------------------------- study page


def _per_seed_metrics(results: dict[str, Any], runs: dict[str, list[tuple[int, Path]]]) -> dict[str, list[dict[str, Any]]]:
    """method -> one metrics dict per seed: study.json's record, or the runs' own metrics.json
    where the study has not recorded them (yet)."""
    out = {}
    for method in dict.fromkeys([*results, *runs]):
        entry = results.get(method)
        recorded = entry.get("runs") if isinstance(entry, dict) and isinstance(entry.get("runs"), list) else []
        on_disk = [read_json(d / METRICS_FILE)[0] for _, d in runs.get(method, [])]
        chosen = recorded if len(recorded) >= len(on_disk) else on_disk
        out[method] = [m if isinstance(m, dict) else {} for m in chosen]
    return out


def _summary_cell(summary: Any) -> str:
    if not (isinstance(summary, dict) and {"mean", "std", "min", "max"} <= summary.keys()):
        return "—"
    spread = f'<br><span class="pub">[{esc(fmt(summary["min"]))}, {esc(fmt(summary["max"]))}]</span>'
    return f"{esc(fmt(summary['mean']))} ± {esc(fmt(summary['std']))}{spread}"


def _run_cards(runs: dict[str, list[tuple[int, Path]]]) -> str:
    """Per method, each seed's picture with a link to that run's report (relative: opens from disk)."""
    out = []
    for method, seeds in runs.items():
        cards, wide = [], False
        for seed, run_dir in seeds:
            pic = next((run_dir / n for n in (COMPARISON_FILE, "samples.png") if (run_dir / n).is_file()), None)
            wide |= pic is not None and pic.name == COMPARISON_FILE  # five panels in a row need the width
            link = f'<a href="{esc(method)}/{esc(run_dir.name)}/{REPORT_FILE}">seed {seed}: report</a>'
            cards.append(
                f"<figure>{picture(pic, f'{method} seed {seed}') if pic else note('no picture yet')}"
                f"<figcaption>{link}</figcaption></figure>"
            )
        out.append(f'<h3>{esc(method)}</h3><div class="grid{" wide" * wide}">{"".join(cards)}</div>')
    return "".join(out)


def study_page(study: Path) -> str:
    """The HTML of one study's report."""
    missing: list[str] = []
    data = read_object(study / STUDY_FILE, missing)
    results = data.get("methods") if isinstance(data.get("methods"), dict) else {}
    runs = study_runs(study)
    per_method = _per_seed_metrics(results, runs)
    methods = list(per_method)
    configs = data.get("configs") or (
        {m: data["base_config"] for m in methods} if isinstance(data.get("base_config"), dict) else {}
    )
    first = next(iter(configs.values()), None) if isinstance(configs, dict) else None
    if not isinstance(first, dict) and runs:
        first = read_json(next(iter(runs.values()))[0][1] / OPTIONS_FILE)[0]
    first = first if isinstance(first, dict) else {}
    dataset = str(first.get("dataset", ""))
    if first.get("arch") == "toy" and not (study / STUDY_FIGURE).is_file():
        missing.append(STUDY_FIGURE)
    metrics = list(dict.fromkeys(k for rs in per_method.values() for r in rs for k in r))
    seeds = data.get("seeds", max((len(rs) for rs in per_method.values()), default=0))

    if results:
        entries = {m: results[m] if isinstance(results.get(m), dict) else {} for m in methods}
        summaries = {m: e["summary"] if isinstance(e.get("summary"), dict) else {} for m, e in entries.items()}
        titles = [str(entries[m].get("title", m)) for m in methods]
        rows = [[code(k), *[_summary_cell(summaries[m].get(k)) for m in methods], _published_cell(dataset, k)] for k in metrics]
        summary = table(["metric", *titles, "published"], rows, numeric=tuple(range(1, len(methods) + 1)))
    else:
        summary = note(f"No summary ({STUDY_FILE} is missing); the per-seed table below is read from the runs' {METRICS_FILE}.")
    figures = ""
    if (study / STUDY_FIGURE).is_file():
        figures += (
            f"<figure>{picture(study / STUDY_FIGURE, 'study figure')}<figcaption>The paper's comparison: seed 0 of "
            "each method, one row of five panels per method.</figcaption></figure>"
        )
    plotted = [k for k in metrics if any(math.isfinite(number(r.get(k))) for rs in per_method.values() for r in rs)]
    if plotted:
        figures += (
            f"<figure>{img(metric_spread(per_method, plotted), 'metrics per method and seed')}"
            "<figcaption>Each dot is one seed; the bar is the mean over seeds.</figcaption></figure>"
        )
    seed_rows = [[esc(m), str(i), *[esc(fmt(r.get(k))) for k in metrics]] for m in methods for i, r in enumerate(per_method[m])]
    seed_table = table(["method", "seed", *metrics], seed_rows, numeric=tuple(range(1, len(metrics) + 2)))
    md = (study / "study.md").read_text(errors="replace") if (study / "study.md").is_file() else ""
    config = (
        f"<details><summary>config of each method</summary><pre>{esc(json.dumps(configs, indent=2, default=str))}</pre></details>"
        if configs
        else note(f"No config recorded ({STUDY_FILE} is missing); each run's report shows its own.")
    )
    config += f"<details><summary>study.md</summary><pre>{esc(md)}</pre></details>" if md else ""

    body = "".join(
        [
            _missing_box(missing),
            section("summary", f"Methods compared: mean ± std [min, max] over {fmt(seeds)} seed(s)", summary),
            section("figures", "Figures", figures or note("No figures.")),
            section("seeds", "Per seed", seed_table if seed_rows else note("No finished runs.")),
            section("runs", "Runs", _run_cards(runs) or note("No run directories (<method>/seed-<n>/).")),
            section("config", "Configuration", config),
        ]
    )
    nav = [("summary", "Summary"), ("figures", "Figures"), ("seeds", "Per seed"), ("runs", "Runs"), ("config", "Config")]
    subtitle = (
        f"dataset <b>{esc(dataset or '?')}</b> · methods <b>{esc(', '.join(methods) or 'none')}</b> · "
        f"seeds <b>{esc(fmt(seeds))}</b>"
    )
    return document(f"Study {study.resolve().name}", subtitle, nav, body)


# ---------------------------------------------------------------- entry point


def write_report(path: Path, sub_runs: bool = True) -> Path:
    """Write DIR/report.html for a run or study directory, atomically, and return its path. For
    a study each run's own report is written too (`sub_runs`), so the study page's links lead somewhere."""
    path = Path(path)
    usage = "give `ali report` the --out directory of `ali train`, `ali study` or `ali anomaly`"
    if not path.is_dir():
        raise AliError(f"{path} is not a directory; {usage}")
    if is_anomaly_study_dir(path):
        if sub_runs:
            for run_dir in sorted(path.glob("class-*")):
                if is_run_dir(run_dir):
                    write_report(run_dir)
        page = anomaly_study_page(path)
    elif is_study_dir(path):
        if sub_runs:
            for seeds in study_runs(path).values():
                for _, run_dir in seeds:
                    write_report(run_dir)
        page = study_page(path)
    elif is_run_dir(path):
        page = run_page(path)
    else:
        raise AliError(
            f"{path} is neither a run directory (no {OPTIONS_FILE}, {STATS_FILE}, {METRICS_FILE} or checkpoint) "
            f"nor a study directory (no {STUDY_FILE}, {ANOMALY_STUDY_FILE} or <method>/seed-<n>/ runs); {usage}"
        )
    out = path / REPORT_FILE
    try:
        atomic_write_bytes(out, page.encode())
    except OSError as exc:
        raise AliError(f"cannot write {out}: {exc.strerror}; make the directory writable or copy it elsewhere") from None
    return out
