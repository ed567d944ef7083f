"""Every dataset is one declaration (ali.data.specs.DATASETS): complete, and read by every consumer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ali.data import IMAGE_DATASETS, load_split
from ali.data.download import SOURCES
from ali.data.specs import DATASETS, DatasetSpec
from ali.errors import AliError
from ali.evaluation import classifier as clf
from ali.evaluation.evaluate import classifier_dataset
from ali.nets.architectures import ARCHITECTURES
from ali.presets import PRESETS

ROOT = Path(__file__).resolve().parents[1]
# Modules that once branched on dataset names; now they read the declarations.
CONSUMERS = ("ali/data/__init__.py", "ali/data/download.py", "ali/cli.py", "ali/evaluation/evaluate.py")


@pytest.mark.parametrize("name", list(DATASETS))
def test_every_declared_dataset_is_complete(name: str) -> None:
    spec: DatasetSpec = DATASETS[name]
    assert spec.name == name
    assert spec.arch in ARCHITECTURES
    assert (spec.load is None) != (spec.load_split is None), "one way to load: `load` or `load_split` with its splits"
    if spec.load_split is not None:
        assert {spec.train_split, spec.heldout_split} <= set(spec.splits)
        assert spec.labelled_pool_split is None or spec.labelled_pool_split in spec.splits
    else:
        assert not spec.splits and spec.train_rows is None and spec.labelled_pool_split is None
    if spec.classifier is not None:
        assert DATASETS[spec.classifier].has_own_classifier, "a borrowed classifier is another dataset's own"
        assert spec.classifier in clf.RECIPES
    if spec.download is not None:
        assert spec.download.files
        for remote in spec.download.files:
            assert re.fullmatch(r"[0-9a-f]{32}", remote.md5), remote.filename
            assert remote.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", remote.sha256), remote.filename
            assert remote.urls or spec.download.note, f"{remote.filename}: no mirror and no note saying how to get it"


def test_consumers_read_the_declarations() -> None:
    assert IMAGE_DATASETS == tuple(DATASETS)
    assert SOURCES == {n: s.download for n, s in DATASETS.items() if s.download is not None}
    assert clf.DATASETS == tuple(n for n, s in DATASETS.items() if s.has_own_classifier)
    assert set(clf.RECIPES) == set(clf.DATASETS)
    for name, spec in DATASETS.items():
        if spec.classifier is None:
            with pytest.raises(AliError, match="classifier metrics exist for"):
                classifier_dataset(name)
        else:
            assert classifier_dataset(name) == spec.classifier
    for name, preset in PRESETS.items():
        if preset.get("dataset") in DATASETS:
            assert preset["arch"] == DATASETS[preset["dataset"]].arch, name
    for name, spec in DATASETS.items():
        if not spec.splits:
            with pytest.raises(AliError, match="no split"):
                load_split(name, ROOT, "train")


@pytest.mark.parametrize("path", CONSUMERS)
def test_consumers_have_no_per_dataset_branches(path: str) -> None:
    source = (ROOT / path).read_text()
    named = [name for name in DATASETS if f'"{name}"' in source or f"'{name}'" in source]
    assert not named, f"{path} names datasets {named}: read ali.data.specs.DATASETS instead"
