import math

import pytest

from ali.errors import AliError
from ali.presets import PRESETS
from ali.study import markdown_table, study_configs, summarise


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
