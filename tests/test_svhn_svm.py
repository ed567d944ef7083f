"""`ali evaluate --metrics svm` on SVHN: the authors' L2-SVM protocol (docs/PAPER.md §5) read from
format-exact .mat files, scaled down: pool train[0:40] and validation train[40:60] stand in for
the authors' train[0:63257] and train[63257:73257]; the test split is test_32x32.mat."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from data_writers import bar_images, write_svhn

from ali.cli import main
from ali.data.specs import DATASETS
from ali.errors import AliError
from ali.evaluation import evaluate

POOL, VALIDATION = 40, 20


@pytest.fixture
def svhn_run(tmp_path, monkeypatch):
    """A one-step ALI run on SVHN files whose classes are bars at their own places."""
    rng = np.random.default_rng(0)
    digits = {
        "extra": np.arange(20) % 10,
        # every class in pool and validation, and 10 rows past the validation range
        "train": np.concatenate([rng.permutation(np.arange(n) % 10) for n in (POOL, VALIDATION, 10)]),
        "test": rng.permutation(np.arange(30) % 10),
    }
    written = {split: (bar_images(y, seed=i), y) for i, (split, y) in enumerate(digits.items())}
    write_svhn(tmp_path / "svhn", written)
    sets = [
        "batch_size=4",
        "log_every=1",
        "checkpoint_every=1",
        "grid_every=0",
        "eval_samples=100",
        "precision=fp32",
        f"data_dir={tmp_path}",
    ]
    run = tmp_path / "run"
    assert (
        main(["train", "--config", "svhn", "--steps", "1", "--out", str(run), "--no-progress", *[f"--set={s}" for s in sets]])
        == 0
    )
    spec = dataclasses.replace(DATASETS["svhn"], svm_split=(POOL, POOL + VALIDATION), svm_labels_per_class=(2,))
    monkeypatch.setitem(DATASETS, "svhn", spec)
    return run, written


def test_evaluate_runs_the_authors_svhn_protocol(svhn_run, monkeypatch):
    run, written = svhn_run
    seen = {}
    real = evaluate.svm_protocol

    def spy(**kwargs):
        seen.update(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(evaluate, "svm_protocol", spy)
    assert main(["evaluate", "--run", str(run), "--metrics", "svm", "--no-progress"]) == 0
    result = json.loads((run / "evaluation.json").read_text())
    train, test = written["train"][1], written["test"][1]
    # pool and validation are the two ranges of the official train split, test the test file
    assert seen["pool_labels"].tolist() == train[:POOL].tolist()
    assert seen["val_labels"].tolist() == train[POOL : POOL + VALIDATION].tolist()
    assert seen["test_labels"].tolist() == test.tolist() and len(seen["test_feats"]) == 30
    # bars at ten places are linearly separable in any encoder's features: no test error
    assert result["svm_error_20"] == 0.0 and result["svm_error_20_std"] == 0.0


def test_the_svm_protocol_exists_for_svhn_and_cifar10_and_not_for_celeba():
    evaluate.check_svm_dataset("svhn")
    evaluate.check_svm_dataset("cifar10")
    with pytest.raises(AliError, match="set up for mnist, fashion-mnist, cifar10, svhn here"):
        evaluate.check_svm_dataset("celeba64")
