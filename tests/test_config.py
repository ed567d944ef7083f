"""Config errors through the CLI (one `error:` line, exit 2) and fuzzing of the config parsers."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ali import cli, rundir
from ali.config import FIELD_TYPES, RULES, load_config_source, make_config, parse_overrides, to_dict
from ali.errors import AliError
from ali.keys import DATA_DIR_ENV
from ali.presets import KPLUS1_REGULARISERS, PRESETS


def _bad_value(key: str) -> str:
    """A value of the right type that the key's rule rejects."""
    want = FIELD_TYPES[key]
    if want is str:
        return "no-such-choice"
    if want is bool:
        pytest.skip("booleans have no range")
    for candidate in (-1, -1e9, 0, 1e9, 2, 1.5):
        if want is int and not float(candidate).is_integer():
            continue
        value = want(candidate)
        if not RULES[key][0](value):
            return json.dumps(value)
    raise AssertionError(f"no out-of-range value found for {key}")


def _cli_error(capsys, argv: list[str]) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_a_valid_config(name: str) -> None:
    config = make_config(PRESETS[name])  # validates every key, the method's own keys included
    assert config.method == PRESETS[name].get("method", "ali") and config.steps == PRESETS[name]["steps"]


def test_kplus1_presets_use_the_published_label_counts() -> None:
    labels = {name: make_config(PRESETS[name]).labels_per_class * 10 for name in PRESETS if name.endswith("-kplus1")}
    assert labels == {"mnist-kplus1": 100, "fashion-mnist-kplus1": 100, "svhn-kplus1": 1000, "cifar10-kplus1": 4000}
    for name in labels:  # each keeps its dataset's schedule and drops the cycle term of the MNIST recipe
        base = PRESETS[name.removesuffix("-kplus1")]
        config = make_config(PRESETS[name])
        assert (config.method, config.steps, config.lr, config.arch) == ("ali-kplus1", base["steps"], base["lr"], base["arch"])
        assert "recon_weight" not in PRESETS[name]


def test_improved_kplus1_presets_are_the_papers_kplus1_plus_the_regularisers() -> None:
    assert set(KPLUS1_REGULARISERS) == {"mnist", "fashion-mnist", "svhn", "cifar10"}
    for name, extra in KPLUS1_REGULARISERS.items():
        paper, improved = PRESETS[f"{name}-kplus1"], PRESETS[f"{name}-kplus1-fm"]
        assert {k: v for k, v in improved.items() if paper.get(k) != v} == extra
        config = make_config(improved)
        assert (config.method, config.labels_per_class, config.steps) == ("ali-kplus1", paper["labels_per_class"], paper["steps"])
    mnist = make_config(PRESETS["mnist-kplus1-fm"])  # Improved-GAN's MNIST D: its noise (the paper's dropout stays)
    assert (mnist.feature_matching, mnist.input_noise, mnist.hidden_noise, mnist.ema_decay) == (True, 0.3, 0.5, 0.999)
    cifar = make_config(PRESETS["cifar10-kplus1-fm"])  # its CIFAR-10 and SVHN scripts: lr 3e-4, no noise
    assert (cifar.feature_matching, cifar.input_noise, cifar.hidden_noise, cifar.lr) == (True, 0.0, 0.0, 3e-4)
    budget = make_config(PRESETS["cifar10-kplus1-1h"])  # the same on the 1-hour schedule
    one_hour = PRESETS["cifar10-1h"]
    assert (budget.feature_matching, budget.lr, budget.labels_per_class * 10, budget.steps) == (True, 3e-4, 4000, 10_000)
    assert (budget.decay_start, budget.ema_decay) == (one_hour["decay_start"], one_hour["ema_decay"])


def test_mnist_family_recipes_carry_the_code_discriminator_at_3x_and_methods_without_it_drop_it() -> None:
    for name in ("mnist", "fashion-mnist", "stacked-mnist"):
        config = make_config(PRESETS[name])
        assert (config.method, config.recon_weight, config.z_adversarial_weight) == ("alice", 0.3, 3.0)
    for name in ("mnist-anomaly", "fashion-mnist-anomaly"):  # one normal class: nothing to balance
        assert make_config(PRESETS[name]).z_adversarial_weight == 1.0
    for name in ("mnist-conditional", "mnist-kplus1"):  # methods that have no code discriminator
        assert "z_adversarial_weight" not in PRESETS[name]


def test_the_longer_conditional_preset_is_the_conditional_one_at_twice_the_steps() -> None:
    short, long = PRESETS["mnist-conditional"], PRESETS["mnist-conditional-60k"]
    assert {k: v for k, v in long.items() if short.get(k) != v} == {"steps": 60_000, "checkpoint_every": 5_000}
    assert short["steps"] == 30_000  # the same fractions of the run: decay_start and the final rate


def test_the_shown_and_saved_config_holds_only_the_keys_its_method_reads(capsys) -> None:
    """--dry-run prints what training_options.json saves: a conditional run lists its condition
    keys and none of K+1's or ALICE's, which it would never read."""
    assert cli.main(["train", "--config", "mnist-conditional", "--out", "unused", "--dry-run"]) == 0
    shown = json.loads(capsys.readouterr().out.split("\n}\n")[0] + "}")
    assert {"condition_dim", "cycle_weight", "lr", "seed"} <= shown.keys()
    assert not {"labels_per_class", "recon_weight", "z_adversarial_weight"} & shown.keys()
    assert {"labels_per_class", "feature_matching"} <= to_dict(make_config(PRESETS["mnist-kplus1-fm"])).keys()


@pytest.mark.parametrize("key", sorted(RULES))
def test_every_out_of_range_key_is_named_by_the_cli(tmp_path: Path, capsys, key: str) -> None:
    value = _bad_value(key)
    err = _cli_error(capsys, ["train", "--config", "toy25", "--set", f"{key}={value}", "--out", str(tmp_path / "r"), "--dry-run"])
    assert f"'{key}'" in err and ("out of range" in err or "one of" in err)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("setting", "expect"),
    [
        ("lrr=0.1", "unknown config key 'lrr' (did you mean 'lr'?)"),
        ("nonsense=1", "unknown config key 'nonsense'"),
        ("steps=ten", "config key 'steps' = 'ten' is not a int"),
        ("lr=true", "is not a float"),
        ("steps=1.5", "is not a int"),
        ("guard_lr_factor=0", "'guard_lr_factor' = 0.0 is out of range"),
        ("dataset=toy99", "'dataset' = 'toy99' is unknown"),
        ("novalue", "--set expects key=value"),
        ("recon_weight=Infinity", "'recon_weight' = inf is not a finite number"),
        ("lr=NaN", "'lr' = nan is not a finite number"),
    ],
)
def test_mistyped_keys_and_values(tmp_path: Path, capsys, setting: str, expect: str) -> None:
    err = _cli_error(capsys, ["train", "--config", "toy25", "--set", setting, "--out", str(tmp_path / "r"), "--dry-run"])
    assert expect in err


def test_bad_config_files(tmp_path: Path, capsys) -> None:
    for name, text, expect in [
        ("a.json", "{", "is not valid JSON"),
        ("b.json", "[1]", "must hold a JSON object"),
        ("c.json", '{"arch": "toy", "lr_typo": 1}', "unknown config key 'lr_typo'"),
    ]:
        (tmp_path / name).write_text(text)
        assert expect in _cli_error(capsys, ["train", "--config", str(tmp_path / name), "--out", str(tmp_path / "r")])
    assert "neither a preset" in _cli_error(
        capsys, ["train", "--config", str(tmp_path / "missing.json"), "--out", str(tmp_path / "r")]
    )


def test_run_directory_errors(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    small = ["--set=steps=4", "--set=batch_size=8", "--set=checkpoint_every=2", "--set=eval_samples=100", "--set=threads=1"]
    assert cli.main(["train", "--config", "toy25", *small, "--out", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    assert "already holds a run" in _cli_error(capsys, ["train", "--config", "toy25", "--out", str(run)])
    # A checkpoint of another method dropped into the run directory: named, not a shape dump.
    other = tmp_path / "vae"
    assert cli.main(["train", "--config", "toy25", *small, "--method", "vae", "--out", str(other), "--no-progress"]) == 0
    for path in rundir.list_checkpoints(run):
        path.unlink()
    vae_ckpt = rundir.list_checkpoints(other)[-1]
    (run / vae_ckpt.name).write_bytes(vae_ckpt.read_bytes())
    capsys.readouterr()
    assert "method='vae'" in _cli_error(capsys, ["train", "--out", str(run), "--resume", "--steps", "8"])
    (run / vae_ckpt.name).write_bytes(vae_ckpt.read_bytes()[:1000])  # corrupted: nothing valid is left
    assert "no valid checkpoint" in _cli_error(capsys, ["train", "--out", str(run), "--resume", "--steps", "8"])
    (run / rundir.OPTIONS_FILE).write_text("{broken")
    assert "is not valid JSON" in _cli_error(capsys, ["train", "--out", str(run), "--resume"])
    assert "holds no run" in _cli_error(capsys, ["train", "--out", str(tmp_path / "empty"), "--resume"])


def test_debug_flag_shows_the_traceback(tmp_path: Path) -> None:
    with pytest.raises(AliError):
        cli.main(["--debug", "train", "--config", "toy25", "--set", "lr=5", "--out", str(tmp_path / "r"), "--dry-run"])


# --- where datasets are read: --data-dir / --set data_dir, then ALI_DATA_DIR, then ./data ------


def _dry_run_data_dir(tmp_path: Path, capsys, *args: str) -> str:
    assert cli.main(["train", "--config", "toy25", "--out", str(tmp_path / "r"), "--dry-run", *args]) == 0
    out = capsys.readouterr().out
    return json.loads(out[: out.index("\nprecision:")])["data_dir"]


def test_data_dir_defaults_to_data_under_the_working_directory(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)  # the suite points it at the shared datasets
    monkeypatch.chdir(tmp_path)
    assert make_config({}).data_dir == "data"
    # `ali train` keeps it with the run as an absolute path, so evaluate and --resume find it from anywhere
    assert _dry_run_data_dir(tmp_path, capsys) == str(tmp_path.resolve() / "data")
    err = _cli_error(capsys, ["data", "info", "mnist"])  # names the folder searched and the ways to change it
    assert f"data folder {tmp_path.resolve() / 'data'}:" in err and "--data-dir" in err and DATA_DIR_ENV in err


def test_the_environment_variable_wins_over_the_default(tmp_path: Path, capsys, monkeypatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv(DATA_DIR_ENV, str(elsewhere))
    assert make_config({}).data_dir == str(elsewhere)
    assert _dry_run_data_dir(tmp_path, capsys) == str(elsewhere)
    for argv in (["data", "info", "mnist"], ["classifier", "train", "--dataset", "mnist", "--no-progress"]):
        assert f"data folder {elsewhere}:" in _cli_error(capsys, argv)


def test_data_dir_option_and_set_win_over_the_environment_variable(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "from-env"))
    given = str(tmp_path / "given")
    assert make_config({"data_dir": given}).data_dir == given
    assert _dry_run_data_dir(tmp_path, capsys, "--data-dir", given) == given
    assert _dry_run_data_dir(tmp_path, capsys, "--set", f"data_dir={given}") == given
    for argv in (["data", "info", "mnist"], ["classifier", "train", "--dataset", "mnist", "--no-progress"]):
        err = _cli_error(capsys, [*argv, "--data-dir", given])
        assert f"data folder {given}:" in err and "from-env" not in err


def test_the_package_names_no_folder_of_this_workspace() -> None:
    package = Path(cli.__file__).parent
    named = [str(p) for p in package.rglob("*.py") if "../shared" in p.read_text() or "/work/" in p.read_text()]
    assert named == []


# --- fuzzing: random and mutated inputs raise AliError only -----------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_keys = st.sampled_from(sorted(FIELD_TYPES)) | st.text(string.ascii_lowercase + "_", max_size=14)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _json | st.text(max_size=10), max_size=5) | _json)
def test_fuzz_make_config(values) -> None:
    try:
        make_config(values)
    except AliError:
        pass


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.text(max_size=20) | st.builds(lambda k, v: f"{k}={v}", _keys, st.text(max_size=10)), max_size=4))
def test_fuzz_parse_overrides_then_make_config(pairs: list[str]) -> None:
    try:
        make_config({**PRESETS["toy25"], **parse_overrides(pairs)})
    except AliError:
        pass


@settings(max_examples=700, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200) | st.builds(lambda v: json.dumps(v).encode(), _json))
def test_fuzz_load_config_source(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(data)
    try:
        make_config(load_config_source(str(path), PRESETS))
    except AliError:
        pass
