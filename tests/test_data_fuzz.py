"""Property-based fuzzing of every data file parser: random bytes and mutations of valid files
(byte flips, inserts, deletions, truncation) raise only AliError, never another exception or a
hang (each example has a deadline). The number of inputs tried is printed at the end."""

import gzip
import os
import pickle
from collections import Counter
from datetime import timedelta

import numpy as np
import pytest
from data_writers import attribute_text, cifar_batch_bytes, idx_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ali.data.celeba import parse_attributes, parse_partition
from ali.data.cifar import parse_batch
from ali.data.common import maybe_gunzip
from ali.data.idx import IMAGES_MAGIC, LABELS_MAGIC, parse_idx
from ali.data.imagenet import parse_npz
from ali.data.svhn import parse_mat
from ali.errors import AliError

TRIED: Counter = Counter()
# 250 fixed-seed examples per parser keep `make test` to seconds; ALI_FUZZ_EXAMPLES=N runs N random ones.
_N = int(os.environ.get("ALI_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=_N or 250,
    deadline=timedelta(seconds=5),
    derandomize=not _N,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module", autouse=True)
def report_counts(pytestconfig):
    yield
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    line = (
        "fuzzed inputs per parser: " + ", ".join(f"{k} {v}" for k, v in sorted(TRIED.items())) + f" (total {sum(TRIED.values())})"
    )
    if reporter is not None:
        reporter.write_line(line)
    print(line)


def _only_ali_error(parser, raw: bytes, name: str) -> None:
    TRIED[name] += 1
    try:
        parser(raw)
    except AliError as exc:
        assert str(exc) and "\n" not in str(exc)  # one line for the CLI


@st.composite
def mutated(draw, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(("flip", "set", "insert", "delete", "truncate")))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


def _inputs(seeds: list[bytes]):
    return st.one_of(st.binary(max_size=2048), *[mutated(s) for s in seeds])


_rng = np.random.default_rng(0)
_IDX_SEEDS = [idx_bytes(_rng.integers(0, 256, (2, 28, 28), dtype=np.uint8)), idx_bytes(np.arange(5, dtype=np.uint8))]
_IDX_SEEDS += [gzip.compress(s, mtime=0) for s in _IDX_SEEDS]


@FUZZ
@given(_inputs(_IDX_SEEDS), st.sampled_from((IMAGES_MAGIC, LABELS_MAGIC)))
def test_fuzz_idx(raw, magic):
    _only_ali_error(lambda b: parse_idx(maybe_gunzip(b, "fuzz"), "fuzz", magic), raw, "idx")


_CIFAR_SEEDS = [
    cifar_batch_bytes(_rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8), np.array([3, 7])),
    pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [1]}, protocol=4),
]


@FUZZ
@given(_inputs(_CIFAR_SEEDS))
def test_fuzz_cifar_pickle(raw):
    _only_ali_error(lambda b: parse_batch(b, "fuzz"), raw, "cifar")


def _mat_seed() -> bytes:
    import io

    import scipy.io

    buf = io.BytesIO()
    scipy.io.savemat(buf, {"X": _rng.integers(0, 256, (32, 32, 3, 2), dtype=np.uint8), "y": np.array([[10], [3]], np.uint8)})
    return buf.getvalue()


@FUZZ
@given(_inputs([_mat_seed()]))
def test_fuzz_svhn_mat(raw):
    _only_ali_error(lambda b: parse_mat(b, "fuzz"), raw, "svhn")


_ATTR_SEED = attribute_text(["000001.jpg", "000002.jpg", "000003.jpg"], _rng.integers(0, 2, (3, 40)).astype(bool)).encode()
_PART_SEED = b"000001.jpg 0\n000002.jpg 1\n000003.jpg 2\n"


@FUZZ
@given(st.one_of(_inputs([_ATTR_SEED, _PART_SEED]), st.text(max_size=400).map(str.encode)))
def test_fuzz_celeba_annotations(raw):
    _only_ali_error(lambda b: parse_attributes(b, "fuzz"), raw, "celeba-attr")
    _only_ali_error(lambda b: parse_partition(b, "fuzz"), raw, "celeba-partition")


def _npz_seed() -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, data=_rng.integers(0, 256, (1, 12288), dtype=np.uint8), labels=np.array([5]))
    return buf.getvalue()


@settings(FUZZ, max_examples=_N or 100)
@given(_inputs([_npz_seed()]))
def test_fuzz_imagenet_npz(raw):
    _only_ali_error(lambda b: parse_npz(b, "fuzz"), raw, "npz")
