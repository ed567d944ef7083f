import json
import math
import statistics

import pytest

import ali.study as study
from ali.errors import AliError
from ali.methods.ali_kplus1 import resolved_label_seed
from ali.presets import PRESETS
from ali.study import markdown_table, run_study, study_configs, summarise


def test_summarise_mean_std_min_max():
    runs = [{"modes": 25, "kl": 0.01, "name": "a"}, {"modes": 23, "kl": 0.03, "name": "b"}]
    summary = summarise(runs)
    assert set(summary) == {"modes", "kl"}  # non-numeric metrics are left out
    assert summary["modes"] == {"mean": 24.0, "std": math.sqrt(2.0), "min": 23.0, "max": 25.0}
    assert math.isclose(summary["kl"]["mean"], 0.02)


def test_summarise_infinite_metric_has_infinite_spread():
    # reverse KL is inf for a run with no high-quality sample; the study must still summarise it
    summary = summarise([{"kl": 3.2}, {"kl": math.inf}])
    assert summary["kl"]["mean"] == math.inf and summary["kl"]["std"] == math.inf
    assert summary["kl"]["min"] == 3.2 and summary["kl"]["max"] == math.inf
    table = markdown_table({"ali": {"summary": summary}}, seeds=2)
    assert "inf ± inf [3.200, inf]" in table


def test_study_configs_give_each_method_the_preset_schedule_and_only_its_own_keys():
    configs = study_configs(PRESETS["toy25"], {"recon_weight": "2", "steps": 50}, ["ali", "alice", "vae"])
    assert configs["alice"]["recon_weight"] == 2.0 and "recon_weight" not in configs["ali"]
    assert {c["steps"] for c in configs.values()} == {50} and configs["vae"]["method"] == "vae"
    with pytest.raises(AliError, match="used by none of the methods ali, vae"):
        study_configs(PRESETS["toy25"], {"recon_weight": "2"}, ["ali", "vae"])


def test_image_study_table_has_the_svm_column_and_a_figure_of_samples_beside_reconstructions(tmp_path, monkeypatch):
    from PIL import Image

    from tests.data_writers import write_mnist

    write_mnist(tmp_path / "data" / "mnist", n_train=12, n_test=6)
    calls = []

    def fake_svm(model, dataset, data_dir, labels_per_class, seed):  # the protocol itself: test_semisupervised.py
        calls.append((dataset, tuple(labels_per_class), seed))
        return {"svm_error_100": 0.25, "svm_error_100_std": 0.01}

    monkeypatch.setattr(study, "svm_metrics", fake_svm)
    values = {"steps": 3, "batch_size": 4, "data_dir": str(tmp_path / "data"), "eval_samples": 100, "threads": 1}
    table = study.run_study(PRESETS["mnist"], values, ["alice", "vae"], 2, tmp_path / "s", progress=False, svm=True)
    assert sorted(calls) == [("mnist", (10,), 0), ("mnist", (10,), 0), ("mnist", (10,), 1), ("mnist", (10,), 1)]
    assert "svm_error_100" in table and "0.250 ± 0.000" in table
    for method in ("alice", "vae"):  # the SVM error is kept with the run, so a rerun reuses it
        assert json.loads((tmp_path / "s" / method / "seed-0" / "metrics.json").read_text())["svm_error_100"] == 0.25
    figure = Image.open(tmp_path / "s" / "study.png")
    grid = 8 * (28 + 2) + 2  # the figure's samples: an 8 x 8 grid of 28-pixel tiles
    assert figure.height > 2 * grid and figure.width > grid + 6 * 28  # two rows; samples beside 6 reconstruction pairs


def test_svm_column_refused_for_2d_studies(tmp_path):
    with pytest.raises(AliError, match="2-D data"):
        run_study(PRESETS["toy25"], {"steps": 2}, ["ali"], 1, tmp_path / "s", progress=False, svm=True)
    assert not (tmp_path / "s").exists()


def test_svm_column_refused_before_training_for_a_dataset_without_the_protocol(tmp_path):
    with pytest.raises(AliError, match="L2-SVM protocol is set up for"):
        run_study(PRESETS["celeba64"], {"steps": 2}, ["ali"], 1, tmp_path / "s", progress=False, svm=True)
    assert not (tmp_path / "s").exists()


def test_study_table_puts_headline_measures_first_and_constants_below():
    def stats(*values):
        return summarise([{"v": v} for v in values])["v"]

    results = {
        "ali": {
            "summary": {
                "steps": stats(10, 10),
                "recon_mse": stats(0.1, 0.2),
                "classifier_is": stats(5, 6),
                "C": stats(4e-4, 4e-4),
                "svm_error_100": stats(0.2, 0.2),
            }
        },
        "vae": {
            "summary": {
                "steps": stats(10, 10),
                "recon_mse": stats(0.3, 0.3),
                "classifier_is": stats(4, 4),
                "C": stats(4e-4, 4e-4),
                "svm_error_100": stats(0.2, 0.2),
            }
        },
    }
    table = markdown_table(results, seeds=2)
    header = next(line for line in table.splitlines() if line.startswith("| method"))
    # headline first, a tied headline measure included; other constants are not columns
    assert header == "| method | classifier_is | svm_error_100 | recon_mse |"
    assert table.rstrip().endswith("The same in every run: steps 10.000, C 0.0004.")
    # one run: nothing can be called constant, every measure stays a column
    single = markdown_table({"ali": {"summary": {"steps": stats(10), "classifier_is": stats(5)}}}, seeds=1)
    assert "| method | classifier_is | steps |" in single and "The same" not in single


def test_a_conditional_study_leads_with_its_conditioned_figures_and_inference_test():
    def stats(*values):
        return summarise([{"v": v} for v in values])["v"]

    keys = ("conditional_recon_mse", "swapped_y_recon_as_y", "swapped_y_recon_as_true_class", "conditional_classifier_is")
    summary = {k: stats(0.1 * i, 0.2 * i) for i, k in enumerate((*keys, "condition_accuracy"), start=1)}
    header = next(line for line in markdown_table({"c": {"summary": summary}}, 2).splitlines() if line.startswith("| method"))
    assert header == (
        "| method | condition_accuracy | conditional_classifier_is | swapped_y_recon_as_true_class | swapped_y_recon_as_y "
        "| conditional_recon_mse |"
    )


def test_a_kplus1_study_gives_each_seed_its_own_labelled_draw_and_sums_up_the_draws(tmp_path, monkeypatch):
    """`ali study --config mnist-kplus1-fm --seeds 3`: run n trains with seed n, so its labelled
    set (label_seed follows the run's seed) is draw n; the table is the mean and sample std of
    the test error over the draws."""
    errors = [0.021, 0.018, 0.025]
    drawn = []

    def fake_train(config, path, progress):  # training itself: tests/test_kplus1.py
        drawn.append((config.seed, resolved_label_seed({"label_seed": config.label_seed}, config.seed), path.name))
        return {"kplus1_error_100": errors[config.seed]}

    monkeypatch.setattr(study, "train_or_reuse", fake_train)
    monkeypatch.setattr(study, "_image_figure", lambda methods, out: None)
    monkeypatch.setattr(study, "write_report", lambda out: None)
    table = study.run_study(PRESETS["mnist-kplus1-fm"], {"steps": 2}, ["ali-kplus1"], 3, tmp_path / "s", progress=False)
    assert drawn == [(0, 0, "seed-0"), (1, 1, "seed-1"), (2, 2, "seed-2")]
    summary = json.loads((tmp_path / "s" / "study.json").read_text())["methods"]["ali-kplus1"]["summary"]["kplus1_error_100"]
    assert summary["mean"] == pytest.approx(statistics.fmean(errors))
    assert summary["std"] == pytest.approx(statistics.stdev(errors))
    assert "kplus1_error_100" in table and "over 3 seed(s)" in table
