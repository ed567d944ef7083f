"""`ali study`: every method x seed on one config; summary tables and a figure of the methods.

Layout: OUT/<method>/seed-<n>/ is an ordinary run directory. A run that already finished (it has
metrics.json) is reused, so an interrupted study continues where it stopped.

The table holds every number of the runs' metrics.json (for image data with a domain classifier:
classifier IS and FID, class histogram KL, reconstruction class accuracy; ali.evaluation), all
from the end of training, the sample figures on 10,000 samples (the protocol's counts go on the
line of measures that are the same in every run). A conditional method's figures are named
`conditional_*` and its inference test `swapped_y_*`, so they never share a column with an
unconditional method's;
`svm=True` adds the L2-SVM test error with 10 labels per class to each run's metrics. The figure
is the paper's four-panel comparison for 2-D data, and samples beside reconstructions for images
(seed 0 of each method).
"""

from __future__ import annotations

import math
import os
import statistics
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from ali.config import for_method, make_config, to_dict
from ali.errors import AliError
from ali.evaluation.evaluate import check_svm_dataset, svm_metrics
from ali.evaluation.grids import save_image
from ali.evaluation.toy_eval import data_extent, toy_panels
from ali.finish import train_or_reuse
from ali.methods import foreign_keys, get_method
from ali.methods.base import Method
from ali.pictures import reconstruct_image, sample_image
from ali.report.figures import comparison_rows, picture_rows
from ali.report.pages import write_report
from ali.rundir import METRICS_FILE, atomic_write_json, load_run_dataset, load_trained

SVM_KEY = "svm_error_100"  # the L2-SVM column: 10 labels per class


def _run_one(values: dict[str, Any], run_dir: str, progress: bool, svm: bool = False) -> dict[str, Any]:
    path = Path(run_dir)
    metrics = train_or_reuse(make_config(values), path, progress)
    if svm and SVM_KEY not in metrics:
        config, model, _ = load_trained(path)
        metrics.update(svm_metrics(model, config.dataset, config.data_dir, labels_per_class=(10,), seed=config.seed))
        atomic_write_json(path / METRICS_FILE, metrics)
    return metrics


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """mean, std (sample), min, max of every numeric metric over runs.

    A metric that is infinite in some run (reverse KL of a run with no high-quality sample) has an
    infinite mean and std: the spread is unbounded, and statistics.stdev cannot take inf.
    """
    out = {}
    for key in runs[0]:
        values = [float(r[key]) for r in runs if isinstance(r.get(key), (int, float))]
        if len(values) == len(runs):
            if not all(math.isfinite(v) for v in values):
                std = math.inf
            elif len(values) > 1:
                std = statistics.stdev(values)
            else:
                std = 0.0
            out[key] = {"mean": statistics.fmean(values), "std": std, "min": min(values), "max": max(values)}
    return out


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "inf"
    if value != 0 and abs(value) < 0.01:  # an SVM's C of 4e-4 is not 0.000
        return f"{value:.2g}"
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"


# The measures a reader compares first, in this order, where the runs have them: samples,
# reconstructions and the SVM for images; a conditional model's conditioned figures and the
# test of its inference; the mode counts of the toy protocol.
HEADLINE = (
    "classifier_is",
    "classifier_fid",
    "recon_class_accuracy",
    SVM_KEY,
    "class_kl_to_uniform",
    "class_entropy",
    "condition_accuracy",
    "conditional_classifier_is",
    "conditional_classifier_fid",
    "swapped_y_recon_as_true_class",
    "swapped_y_recon_as_y",
    "modes_covered_3sigma",
    "high_quality_fraction",
    "reverse_kl",
    "recon_same_mode_fraction",
    "train_seconds",
)


def markdown_table(results: dict[str, dict[str, Any]], seeds: int) -> str:
    """One row per method, mean ± std [min, max]: the headline measures first, then the rest. Any
    other measure identical in every run of every method (the real test set's IS, the step count)
    is not a comparison: it goes on one line below the table."""
    summaries = [res["summary"] for res in results.values()]
    keys = [k for k in summaries[0] if all(k in s for s in summaries)]
    several_runs = len(summaries) * seeds > 1
    constant = [
        k for k in keys if several_runs and k not in HEADLINE and len({s[k][b] for s in summaries for b in ("min", "max")}) == 1
    ]
    varying = [k for k in keys if k not in constant]
    metrics = [k for k in HEADLINE if k in varying] + [k for k in varying if k not in HEADLINE]
    lines = [
        f"Mean ± std [min, max] over {seeds} seed(s).",
        "",
        "| method | " + " | ".join(metrics) + " |",
        "|---" * (len(metrics) + 1) + "|",
    ]
    for method, res in results.items():
        stats = [res["summary"][k] for k in metrics]
        cells = [f"{_fmt(t['mean'])} ± {_fmt(t['std'])} [{_fmt(t['min'])}, {_fmt(t['max'])}]" for t in stats]
        lines.append(f"| {res.get('title', method)} (`{method}`) | " + " | ".join(cells) + " |")
    if constant:
        lines += ["", "The same in every run: " + ", ".join(f"{k} {_fmt(summaries[0][k]['min'])}" for k in constant) + "."]
    return "\n".join(lines) + "\n"


def study_configs(source: dict[str, Any], overrides: dict[str, Any], methods: list[str]) -> dict[str, dict[str, Any]]:
    """Each method's config values: the preset's for that method (config.for_method), then the
    command line's keys that the method uses. A command-line key no method uses is an error."""
    for key in overrides:
        if key not in ("seed", "steps") and not any(key not in foreign_keys(m) for m in methods):
            raise AliError(f"config key '{key}' is used by none of the methods {', '.join(methods)}; drop it")
    out = {}
    for method in methods:
        values = {**for_method(source, method), **{k: v for k, v in overrides.items() if k not in foreign_keys(method)}}
        out[method] = {key: to_dict(make_config(values))[key] for key in values}  # typed ("1" -> 1)
    return out


def run_study(
    source: dict[str, Any],
    overrides: dict[str, Any],
    methods: list[str],
    seeds: int,
    out: Path,
    progress: bool = True,
    workers: int = 1,
    svm: bool = False,
) -> str:
    """Train every (method, seed), write study.json, study.md and study.png; return the table."""
    if (out / "study.json").exists():
        raise AliError(f"{out} already holds a study (study.json); choose another --out")
    configs = study_configs(source, overrides, methods)  # validated before any run starts
    toy = _is_toy(configs)
    if svm and toy:
        raise AliError("--svm classifies images from their codes; this study trains on 2-D data")
    if svm:  # before any training: a study of days should not fail at its first evaluation
        check_svm_dataset(make_config(next(iter(configs.values()))).dataset)
    jobs = []
    for method in methods:
        for seed in range(seeds):
            values = {**configs[method], "seed": seed}
            if workers > 1:
                values["threads"] = max(1, (os.cpu_count() or 1) // workers)
            jobs.append((method, values, str(out / method / f"seed-{seed}")))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AliError(f"cannot create study directory {out}: {exc.strerror}") from None
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            metrics = list(pool.map(_run_one, *zip(*[(v, d, False, svm) for _, v, d in jobs])))
    else:
        metrics = [_run_one(v, d, progress, svm) for _, v, d in jobs]
    resolved = {name: get_method(name) for name in methods}  # each method looked up once
    results: dict[str, dict[str, Any]] = {}
    for (method, _, _), m in zip(jobs, metrics):
        results.setdefault(method, {"title": resolved[method].title, "runs": []})["runs"].append(m)
    for res in results.values():
        res["summary"] = summarise(res["runs"])
    table = markdown_table(results, seeds)
    atomic_write_json(out / "study.json", {"configs": configs, "seeds": seeds, "methods": results})
    (out / "study.md").write_text(f"# Study: {source.get('dataset')}\n\n{table}")
    (_toy_figure if toy else _image_figure)(resolved, out)
    write_report(out)
    return table


def _is_toy(configs: dict[str, dict[str, Any]]) -> bool:
    return all(make_config(v).arch == "toy" for v in configs.values())


def _toy_figure(methods: dict[str, Method], out: Path) -> None:
    """The paper's comparison: one row per method (seed 0), five panels each."""
    rows = []
    for name, method in methods.items():
        config, model, _ = load_trained(out / name / "seed-0")
        dataset = load_run_dataset(config)
        rows.append((method.title, toy_panels(model, dataset, config.eval_samples)))
    image = comparison_rows(rows, len(dataset.mixture.means), data_extent(dataset))
    save_image(image, out / "study.png")


def _image_figure(methods: dict[str, Method], out: Path) -> None:
    """Samples (z ~ N(0, I), the same z for every method) beside reconstructions of the same
    held-out images, one row per unconditional method (seed 0)."""
    rows = []
    for name, method in methods.items():
        if method.conditional:  # its samples need conditions: `ali generate` draws those
            continue
        config, model, _ = load_trained(out / name / "seed-0")
        dataset = load_run_dataset(config)
        pairs = min(32, len(dataset.heldout))
        pictures = [sample_image(model, 64), reconstruct_image(model, dataset, pairs, pairs_per_row=4)]
        rows.append((method.title, pictures))
    if rows:
        save_image(picture_rows(rows, ("samples Gx(z)", "x | Gx(Gz(x))")), out / "study.png")
