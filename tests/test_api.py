"""ali.load: the README's example runs as written, inputs of every accepted kind, clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ali
from ali.cli import main
from ali.errors import AliError
from ali.evaluation.grids import image_grid
from tests.test_pictures import run_dir  # noqa: F401  the tiny trained image run (module fixture)

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_example_runs(run_dir: Path) -> None:  # noqa: F811
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    scope: dict = {}
    exec(block.replace('"runs/mnist"', repr(str(run_dir))), scope)
    assert scope["x"].shape == (16, 1, 28, 28) and 0 <= float(scope["x"].min()) <= float(scope["x"].max()) <= 1
    assert scope["z"].shape == (16, 32) and scope["x_rec"].shape == (16, 1, 28, 28)


def test_samples_match_the_cli_for_the_same_seed(run_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "s.png"
    assert main(["sample", "--run", str(run_dir), "--n", "16", "--seed", "4", "--out", str(out)]) == 0
    ours = image_grid(ali.load(run_dir).sample(16, seed=4))
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(ours))


def test_every_input_kind_gives_the_same_codes(run_dir: Path) -> None:  # noqa: F811
    model = ali.load(run_dir)
    pixels = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    as_float = model.encode(pixels.float() / 255, mean=True)
    torch.testing.assert_close(model.encode(pixels, mean=True), as_float)
    torch.testing.assert_close(model.encode(pixels.numpy()[:, 0], mean=True), as_float)  # N x H x W
    torch.testing.assert_close(model.encode([Image.fromarray(p[0].numpy()) for p in pixels], mean=True), as_float)
    one = model.encode(Image.fromarray(pixels[0, 0].numpy()), mean=True)
    torch.testing.assert_close(one, as_float[:1])
    assert not model.model.training  # evaluation mode throughout


def test_bad_inputs_and_runs_are_clear_errors(run_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    model = ali.load(run_dir)
    with pytest.raises(AliError, match=r"do not fit this model, which takes \(1, 28, 28\)"):
        model.encode(torch.rand(2, 3, 32, 32))
    with pytest.raises(AliError, match=r"must lie in \[0, 1\]"):
        model.encode(torch.rand(2, 1, 28, 28) * 255)
    with pytest.raises(AliError, match="codes must be N x 32"):
        model.decode(torch.randn(2, 5))
    with pytest.raises(AliError, match="holds no checkpoint"):
        ali.load(tmp_path / "nothing")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    for f in run_dir.iterdir():
        if f.name != "metrics.json":
            (unfinished / f.name).write_bytes(f.read_bytes())
    with pytest.raises(AliError, match="has not finished training"):
        ali.load(unfinished)
    assert ali.load(unfinished, allow_unfinished=True).step == 6


def test_a_toy_run_is_not_an_image_run(tmp_path: Path) -> None:
    from ali.config import make_config
    from ali.finish import train_and_finish

    train_and_finish(
        make_config({"steps": 2, "batch_size": 8, "checkpoint_every": 2, "eval_samples": 100}), tmp_path / "toy", progress=False
    )
    with pytest.raises(AliError, match="ali.load is for image runs"):
        ali.load(tmp_path / "toy")
