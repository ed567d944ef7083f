"""Checkpoint files: damaged ones are skipped, foreign ones refused, pickles never run, parser fuzzed."""

from __future__ import annotations

import json
import pickle
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ali import checkpoint as ckpt
from ali import rundir
from ali.config import make_config
from ali.errors import AliError
from ali.training.build import build_model


def _tiny() -> tuple[torch.nn.Module, dict[str, torch.optim.Optimizer]]:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3)).sum().backward()
    opt.step()
    return model, {"generator": opt}


def _tiny_bytes(tmp: Path) -> bytes:
    model, opts = _tiny()
    path = tmp / "c.safetensors"
    rundir.save_checkpoint(path, model, opts, 5, {"arch": "toy"}, {"train_seconds": 1.0}, {"loss": torch.tensor(2.0)})
    return path.read_bytes()


with tempfile.TemporaryDirectory() as _tmp:
    VALID = _tiny_bytes(Path(_tmp))


def test_round_trip_restores_weights_optimizer_rng_and_aux(tmp_path: Path) -> None:
    model, opts = _tiny()
    path = tmp_path / "checkpoint-000000005.safetensors"
    rng = torch.get_rng_state()
    rundir.save_checkpoint(path, model, opts, 5, {}, None, {"loss_d": torch.tensor(1.5)})
    other, other_opts = _tiny()
    torch.manual_seed(99)
    tensors, header = ckpt.read_checkpoint(path)
    assert ckpt.restore(tensors, header, other, other_opts) == 5
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))
    assert torch.equal(torch.get_rng_state(), rng)
    assert ckpt.aux_tensors(tensors) == {"loss_d": torch.tensor(1.5)}
    assert not list(tmp_path.glob(".*tmp*")), "the temporary file is renamed, never left behind"


def test_non_finite_state_is_never_written(tmp_path: Path) -> None:
    model, opts = _tiny()
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    with pytest.raises(AliError, match="non-finite"):
        rundir.save_checkpoint(tmp_path / "checkpoint-000000001.safetensors", model, opts, 1, {})
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("damage", ["truncate", "zero", "garbage_header", "empty"])
def test_newest_valid_skips_damaged_newer_files(tmp_path: Path, damage: str) -> None:
    model, opts = _tiny()
    for step in (1, 2):
        rundir.save_checkpoint(rundir.checkpoint_path(tmp_path, step), model, opts, step, {})
    newest = rundir.checkpoint_path(tmp_path, 2)
    data = newest.read_bytes()
    newest.write_bytes(
        {
            "truncate": data[: len(data) // 2],
            "zero": bytes(len(data)),
            "empty": b"",
            "garbage_header": data[:8] + b"{" * 40 + data[48:],
        }[damage]
    )
    with pytest.raises(AliError, match="not a valid ali checkpoint"):
        ckpt.read_checkpoint(newest)
    path, _, header = rundir.newest_valid_checkpoint(tmp_path)
    assert path == rundir.checkpoint_path(tmp_path, 1) and header["step"] == 1


def test_checkpoint_of_another_method_is_refused_by_name(tmp_path: Path) -> None:
    vae, vae_opts = build_model(make_config({"method": "vae"}))
    path = tmp_path / "checkpoint-000000001.safetensors"
    rundir.save_checkpoint(path, vae, vae_opts, 1, {"arch": "toy", "method": "vae", "latent_dim": 2, "dataset": "toy25"})
    ali_model, ali_opts = build_model(make_config({"method": "ali"}))
    tensors, header = ckpt.read_checkpoint(path)
    with pytest.raises(AliError, match="method='vae'"):
        ckpt.restore(tensors, header, ali_model, ali_opts)


class _Payload:
    """Unpickling this object would create the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("container", ["torch_zip", "raw_pickle"])
def test_crafted_pickle_is_refused_and_never_runs(tmp_path: Path, container: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint-000000009.safetensors"
    if container == "torch_zip":
        torch.save({"w": torch.zeros(2), "evil": _Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps({"evil": _Payload(marker)}, protocol=4))
    with pytest.raises(AliError, match="pickle-based"):
        ckpt.read_checkpoint(path)
    with pytest.raises(AliError, match="weights_only"):
        ckpt.import_torch_checkpoint(path)
    with pytest.raises(AliError, match="no valid checkpoint"):
        rundir.newest_valid_checkpoint(tmp_path)
    assert not marker.exists(), "the pickle's code ran"
    pickle.loads(pickle.dumps(_Payload(tmp_path / "control")))  # the payload is live: unpickling runs it
    assert (tmp_path / "control").exists()


def test_plain_state_dict_imports_with_weights_only(tmp_path: Path) -> None:
    model, _ = _tiny()
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    loaded = ckpt.import_torch_checkpoint(tmp_path / "weights.pt")
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_fuzz_random_bytes_raise_only_ali_error(data: bytes) -> None:
    with pytest.raises(AliError):
        ckpt.parse_checkpoint(data)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_checkpoints_parse_or_raise_ali_error(data: st.DataObject) -> None:
    blob = bytearray(VALID)
    header_len = int.from_bytes(blob[:8], "little")
    kind = data.draw(st.sampled_from(["flip", "truncate", "length", "json"]))
    if kind == "flip":  # most flips land in the header: that is the parser under test
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, min(len(blob), header_len + 8) - 1))
            blob[i] = data.draw(st.integers(0, 255))
    elif kind == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    elif kind == "length":
        blob[:8] = data.draw(st.integers(0, 2**64 - 1)).to_bytes(8, "little")
    else:  # a well-formed safetensors file whose ali header is forged
        meta = json.loads(blob[8 : 8 + header_len])
        header = json.loads(meta["__metadata__"]["header"])
        key = data.draw(st.sampled_from(sorted(header)))
        header[key] = data.draw(st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2)))
        meta["__metadata__"]["header"] = json.dumps(header)
        raw = json.dumps(meta).encode()
        blob = bytearray(len(raw).to_bytes(8, "little") + raw + bytes(blob[8 + header_len :]))
    try:
        tensors, header = ckpt.parse_checkpoint(bytes(blob))
    except AliError:
        return
    assert isinstance(header["step"], int) and isinstance(tensors, dict)


def test_balanced_json_is_written_and_an_older_runs_best_json_is_read(tmp_path: Path) -> None:
    for step in (100, 200, 300):
        rundir.checkpoint_path(tmp_path, step).write_bytes(b"\0")
    old = {"file": rundir.checkpoint_path(tmp_path, 100).name, "step": 100, "score": 0.5, "criterion": "c"}
    (tmp_path / rundir.LEGACY_BALANCED_FILE).write_text(json.dumps(old))
    assert rundir.read_balanced(tmp_path) == old  # a run of an earlier version: its best.json counts
    rundir.prune_checkpoints(tmp_path, keep=1)
    assert [p.name for p in rundir.list_checkpoints(tmp_path)] == [old["file"], rundir.checkpoint_path(tmp_path, 300).name]
    rundir.update_balanced(tmp_path, rundir.checkpoint_path(tmp_path, 300), 300, 0.9, "c")  # further from balance: kept as is
    assert rundir.read_balanced(tmp_path) == old and not (tmp_path / rundir.BALANCED_FILE).exists()
    rundir.update_balanced(tmp_path, rundir.checkpoint_path(tmp_path, 300), 300, 0.1, "c")
    assert rundir.read_balanced(tmp_path)["step"] == 300
    assert (tmp_path / rundir.BALANCED_FILE).is_file() and not (tmp_path / rundir.LEGACY_BALANCED_FILE).exists()
