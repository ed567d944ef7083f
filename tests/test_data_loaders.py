"""ali.data loaders on small files written in each dataset's exact official format, and the
project's error (AliError, `error:` line, exit 2) on missing, truncated or malformed files."""

import gzip
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from data_writers import (
    ATTRS,
    attribute_text,
    celeba_face,
    cifar_batch_bytes,
    svhn_mat_bytes_to,
    write_cifar,
    write_cifar_arrays,
    write_idx,
    write_jpeg,
    write_mnist,
    write_svhn,
)

from ali.config import make_config
from ali.data import DATASET_NAMES, is_known_dataset, load_dataset, load_image_dataset, load_split
from ali.errors import AliError


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_loader_exact(tmp_path, name):
    written = write_mnist(tmp_path / name)
    ds = load_image_dataset(name, tmp_path)
    assert ds.train.dtype == torch.uint8 and ds.train.shape == (12, 1, 28, 28) and ds.heldout.shape == (5, 1, 28, 28)
    assert np.array_equal(ds.train[:, 0].numpy(), written["train"][0])
    assert np.array_equal(ds.heldout_labels.numpy(), written["t10k"][1])
    x = ds.to_float(ds.train)
    assert x.dtype == torch.float32 and float(x.max()) <= 1.0 and float(x.min()) >= 0.0
    # the config path: dataset name + data_dir dispatch to the same loader
    config = make_config({"dataset": name, "data_dir": str(tmp_path)})
    assert torch.equal(load_dataset(config.dataset, config.data_dir).train, ds.train)


def test_idx_uncompressed_copy_loads(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    for prefix in ("train", "t10k"):
        write_idx(tmp_path / "mnist" / f"{prefix}-images-idx3-ubyte", images, gz=False)
        write_idx(tmp_path / "mnist" / f"{prefix}-labels-idx1-ubyte", np.array([1, 2, 3]), gz=False)
    assert np.array_equal(load_image_dataset("mnist", tmp_path).train[:, 0].numpy(), images)


def test_cifar10_split_and_pixel_layout(tmp_path):
    images, labels = write_cifar(tmp_path / "cifar-10-batches-py", per_batch=10)
    train, train_labels = load_split("cifar10", tmp_path, "train")
    assert np.array_equal(train.numpy(), images) and np.array_equal(train_labels.numpy(), labels)
    # one row = 1024 red, 1024 green, 1024 blue values of a 32x32 image
    row = images[7].reshape(3072)
    assert np.array_equal(train[7, 1].numpy().reshape(-1), row[1024:2048])
    test, _ = load_split("cifar10", tmp_path, "test")
    assert test.shape == (10, 3, 32, 32)


def test_cifar10_trains_on_the_authors_split_and_holds_out_the_test_batch(tmp_path, monkeypatch):
    import dataclasses

    from ali.data import specs

    rng = np.random.default_rng(4)
    train = rng.integers(0, 256, (20, 3, 32, 32), dtype=np.uint8), np.arange(20) % 10
    test = rng.integers(0, 256, (7, 3, 32, 32), dtype=np.uint8), np.array([3, 1, 4, 1, 5, 9, 2])
    write_cifar_arrays(tmp_path / "cifar-10-batches-py", *train, *test)
    cifar10 = dataclasses.replace(specs.DATASETS["cifar10"], train_rows=15)  # scaled-down 45000: same slicing code
    monkeypatch.setitem(specs.DATASETS, "cifar10", cifar10)
    ds = load_image_dataset("cifar10", tmp_path)
    assert np.array_equal(ds.train.numpy(), train[0][:15]) and ds.labels.tolist() == train[1][:15].tolist()
    # held out = the official test_batch, what the published errors are measured on
    assert np.array_equal(ds.heldout.numpy(), test[0]) and ds.heldout_labels.tolist() == [3, 1, 4, 1, 5, 9, 2]
    assert ds.labelled_pool is None  # labelled examples come from the training split


def test_svhn_mat_train_extra_test(tmp_path):
    rng = np.random.default_rng(1)
    written = {}
    for split, n in (("train", 6), ("test", 3), ("extra", 9)):
        written[split] = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), np.arange(n) % 10
    write_svhn(tmp_path / "svhn", written)
    ds = load_image_dataset("svhn", tmp_path)  # the authors: train on extra
    assert np.array_equal(ds.train.numpy(), written["extra"][0]) and ds.labels.tolist() == list(range(9))
    # held out = the official test split (26,032 in the real files); labelled examples from train
    assert np.array_equal(ds.heldout.numpy(), written["test"][0]) and ds.heldout_labels.tolist() == [0, 1, 2]
    pool_images, pool_labels = ds.labelled_pool
    assert np.array_equal(pool_images.numpy(), written["train"][0]) and pool_labels.tolist() == [0, 1, 2, 3, 4, 5]
    test, test_labels = load_split("svhn", tmp_path, "test")
    assert np.array_equal(test.numpy(), written["test"][0]) and test_labels.tolist() == [0, 1, 2]


def _celeba(tmp_path, n=12, annotations=True):
    root = tmp_path / "celeba"
    colours = [(10 * i, 100, 200 - 10 * i) for i in range(n)]
    files = [f"{i + 1:06d}.jpg" for i in range(n)]
    for f, c in zip(files, colours):
        write_jpeg(root / "img_align_celeba" / f, celeba_face(c))
    values = np.random.default_rng(2).integers(0, 2, (n, 40)).astype(bool)
    if annotations:
        (root / "list_attr_celeba.txt").write_text(attribute_text(files, values))
        parts = [0] * (n - 4) + [1, 1, 2, 2]
        (root / "list_eval_partition.txt").write_text("".join(f"{f} {p}\n" for f, p in zip(files, parts)))
    return colours, values


def test_celeba_crop_resize_attributes_partition(tmp_path):
    colours, values = _celeba(tmp_path)
    ds = load_image_dataset("celeba64", tmp_path)
    assert ds.train.shape == (8, 3, 64, 64) and ds.heldout.shape == (2, 3, 64, 64)  # partition 2 (test) unused
    # the centre square holds only the middle colour: the red/blue bands were cropped away
    mean = ds.heldout[0].float().mean(dim=(1, 2))
    assert torch.allclose(mean, torch.tensor(colours[8], dtype=torch.float32), atol=3)
    assert ds.labels.shape == (8, 40) and np.array_equal(ds.heldout_labels.numpy(), values[8:10].astype(np.uint8))
    assert ds.label_names == tuple(ATTRS)


def test_celeba_images_only(tmp_path):
    _celeba(tmp_path, n=12, annotations=False)
    ds = load_image_dataset("celeba64", tmp_path)
    assert ds.train.shape == (11, 3, 64, 64) and ds.heldout.shape == (1, 3, 64, 64) and ds.labels is None


def test_imagenet_npz_batches(tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "Imagenet64_train_npz"
    folder.mkdir()
    batches = []
    for i in (1, 2, 10):  # numeric order: 1, 2, 10
        data = rng.integers(0, 256, (5, 12288), dtype=np.uint8)
        labels = rng.integers(1, 1001, 5)
        np.savez(folder / f"train_data_batch_{i}.npz", data=data, labels=labels, mean=np.zeros(12288))
        batches.append((data, labels))
    (tmp_path / "Imagenet64_val_npz").mkdir()
    val = rng.integers(0, 256, (3, 12288), dtype=np.uint8)
    np.savez(tmp_path / "Imagenet64_val_npz" / "val_data.npz", data=val, labels=np.array([1, 500, 1000]))
    ds = load_image_dataset("imagenet64", tmp_path)
    assert np.array_equal(ds.train.numpy().reshape(15, -1), np.concatenate([b[0] for b in batches]))
    assert np.array_equal(ds.labels.numpy(), np.concatenate([b[1] for b in batches]) - 1)
    assert ds.heldout_labels.tolist() == [0, 499, 999] and ds.heldout.shape == (3, 3, 64, 64)


def test_imagenet_class_tree_and_folder(tmp_path):
    tree = tmp_path / "tiny-imagenet-200" / "train"
    for c, wnid in enumerate(("n01", "n02")):
        for k in range(10):
            img = np.full((80, 100, 3), 20 * c + k, dtype=np.uint8)
            write_jpeg(tree / wnid / "images" / f"{wnid}_{k}.JPEG", img)
    from PIL import Image

    Image.new("L", (64, 64), 128).save(tree / "n02" / "images" / "n02_gray.JPEG")  # grayscale -> RGB
    ds = load_image_dataset("imagenet64", tmp_path)
    assert ds.train.shape[1:] == (3, 64, 64) and len(ds.train) + len(ds.heldout) == 21 and len(ds.heldout) == 2
    assert ds.label_names == ("n01", "n02") and sorted(set(ds.labels.tolist())) == [0, 1]
    folder = load_image_dataset(f"folder:{tree}", tmp_path / "unused")
    assert folder.train.shape == (19, 3, 64, 64) and folder.heldout.shape == (2, 3, 64, 64) and folder.labels is None
    assert "folder:/any/path" in DATASET_NAMES or is_known_dataset("folder:/any/path")


def test_missing_files_say_where_and_how(tmp_path):
    for name in ("mnist", "fashion-mnist", "cifar10", "svhn", "celeba64", "imagenet64"):
        with pytest.raises(AliError) as err:
            load_image_dataset(name, tmp_path)
        assert str(tmp_path) in str(err.value) and f"ali data download {name}" in str(err.value)
    with pytest.raises(AliError, match="no such folder"):
        load_image_dataset(f"folder:{tmp_path / 'none'}", tmp_path)


def _expect(tmp_path, name, match):
    with pytest.raises(AliError, match=match):
        load_image_dataset(name, tmp_path)


def test_malformed_idx(tmp_path):
    write_mnist(tmp_path / "mnist")
    path = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    _expect(tmp_path, "mnist", "not a valid gzip")
    write_idx(path, np.zeros(12, dtype=np.uint8))  # a labels file where images belong
    _expect(tmp_path, "mnist", "magic number 2049, expected 2051")
    raw = gzip.decompress(good)
    path.write_bytes(gzip.compress(raw[:-100]))
    _expect(tmp_path, "mnist", "truncated")
    path.write_bytes(good)
    write_idx(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz", np.zeros(11, dtype=np.uint8))
    _expect(tmp_path, "mnist", "11 labels for 12 images")


def test_malformed_cifar(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    path = folder / "data_batch_3"
    good = path.read_bytes()
    path.write_bytes(good[:-500])
    _expect(tmp_path, "cifar10", "not a valid pickle")
    path.write_bytes(b"\x80\x02]q\x00.")  # a pickled empty list
    _expect(tmp_path, "cifar10", "expected a dict")
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 0]}, protocol=2))
    _expect(tmp_path, "cifar10", "expected a uint8 array")
    path.write_bytes(cifar_batch_bytes(np.zeros((2, 3, 32, 32), np.uint8), np.array([0, 10])))
    _expect(tmp_path, "cifar10", "labels outside 0..9")


def test_malformed_svhn(tmp_path):
    import scipy.io

    path = tmp_path / "svhn" / "extra_32x32.mat"
    path.parent.mkdir()
    scipy.io.savemat(str(path), {"images": np.zeros((32, 32, 3, 2), np.uint8), "y": np.ones((2, 1))})
    _expect(tmp_path, "svhn", "no variable X")
    scipy.io.savemat(str(path), {"X": np.zeros((28, 28, 3, 2), np.uint8), "y": np.ones((2, 1))})
    _expect(tmp_path, "svhn", r"expected uint8 \(32, 32, 3, N\)")
    scipy.io.savemat(str(path), {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.ones((3, 1))})
    _expect(tmp_path, "svhn", "y is")
    svhn_mat_bytes_to(path, np.zeros((2, 3, 32, 32), np.uint8), np.array([1, 2]))
    path.write_bytes(path.read_bytes()[:200])
    _expect(tmp_path, "svhn", "not a readable MATLAB")


def test_malformed_celeba_and_images(tmp_path):
    _celeba(tmp_path)
    attr = tmp_path / "celeba" / "list_attr_celeba.txt"
    lines = attr.read_text().splitlines()
    attr.write_text("\n".join(lines[:-2]) + "\n")
    _expect(tmp_path, "celeba64", "says 12 images but 10 rows follow")
    attr.write_text("\n".join(lines[:5] + [lines[5].replace("-1", "0", 1)] + lines[6:]) + "\n")
    _expect(tmp_path, "celeba64", "row 6 must be")
    attr.unlink()
    (tmp_path / "celeba" / "img_align_celeba" / "000003.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    _expect(tmp_path, "celeba64", "000003.jpg: not a readable image")


def test_cli_data_errors_are_one_line(tmp_path):
    write_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    for args in (
        ["data", "info", "mnist", "--data-dir", str(tmp_path)],
        ["data", "info", "svhn", "--data-dir", str(tmp_path)],
        ["data", "download", "nonesuch", "--data-dir", str(tmp_path)],
    ):
        proc = subprocess.run([sys.executable, "-m", "ali", *args], capture_output=True, text=True)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
