"""Every dataset, declared once: how to load it, its official splits, its download (files,
mirrors, checksums), its default architecture and the domain classifier its samples are scored
with. `ali.data` (loading and `load_split`), `ali.data.download`, the CLI's help and choices and
ali.evaluation.classifier read these declarations; adding a dataset is one `DatasetSpec` in
`DATASETS` plus its loader (docs/CODE.md, "Adding a dataset").

The 2-D toy mixtures (ali.data.toy.MIXTURES) and `folder:PATH` are not declared here: they have
no files to fetch and no splits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ali.data.celeba import load_celeba
from ali.data.cifar import load_cifar10_split
from ali.data.idx import load_idx_split
from ali.data.imagenet import load_imagenet64
from ali.data.stacked_mnist import load_stacked_mnist
from ali.data.svhn import load_svhn_split


@dataclass(frozen=True)
class Remote:
    filename: str
    urls: tuple[str, ...]  # tried in order; empty = must be fetched by hand
    md5: str
    sha256: str | None = None


@dataclass(frozen=True)
class Source:
    folder: str  # relative to the data dir
    files: tuple[Remote, ...]
    extracts_to: str | None = None  # archives unpack into the data dir; this folder marks it done
    note: str = ""


def _mnist(base_urls: tuple[str, ...], sums: dict[str, tuple[str, str]]) -> tuple[Remote, ...]:
    return tuple(Remote(name, tuple(u + name for u in base_urls), md5, sha) for name, (md5, sha) in sums.items())


SplitLoader = Callable[[Path, str], tuple[np.ndarray, np.ndarray]]  # (data_dir, split) -> images, labels


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset. Either `splits` with `load_split` (official splits: train from `train_split`,
    its first `train_rows` only where set, held out from `heldout_split`, labelled examples from
    `labelled_pool_split` where set), or `load`: data_dir -> the dict of `train`, `labels`,
    `heldout`, `heldout_labels` (and `label_names`) the Dataset is built from."""

    name: str
    arch: str  # the architecture (ali.nets.architectures) its presets train with
    classifier: str | None = None  # the domain classifier (ali.evaluation.classifier) its samples are scored with
    splits: tuple[str, ...] = ()  # the official splits `ali.data.load_split` serves
    load_split: SplitLoader | None = None
    train_split: str = "train"
    heldout_split: str = "test"
    train_rows: int | None = None
    labelled_pool_split: str | None = None
    load: Callable[[Path], dict] | None = None
    download: Source | None = None  # what `ali data download NAME` fetches; None: nothing to fetch
    # The L2-SVM protocol here (ali.evaluation.semisupervised): (pool end, validation end) in the
    # official train split (None: no protocol for this dataset), labels per class of each figure,
    # (validation SVMs per C, test SVMs), and the C grid (empty: the protocol's exp(-20..20)).
    svm_split: tuple[int, int] | None = None
    svm_labels_per_class: tuple[int, ...] = (10, 100)
    svm_draws: tuple[int, int] = (10, 100)
    svm_cs: tuple[float, ...] = ()

    @property
    def has_own_classifier(self) -> bool:
        """A domain classifier is trained on this dataset itself (`ali classifier train --dataset NAME`)."""
        return self.classifier == self.name


def _idx(name: str) -> SplitLoader:
    return lambda data_dir, split: load_idx_split(name, data_dir, split)


CIFAR10_TRAIN = 45_000  # data_batch_1..5 [0:45000]: the authors' training split ([45000:50000] validates)

DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        DatasetSpec(
            "mnist",
            arch="mnist",
            classifier="mnist",
            svm_split=(50_000, 60_000),
            splits=("train", "test"),
            load_split=_idx("mnist"),
            download=Source(
                "mnist",
                _mnist(
                    ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
                    {
                        "train-images-idx3-ubyte.gz": (
                            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                        ),
                        "train-labels-idx1-ubyte.gz": (
                            "d53e105ee54ea40749a09fcbcd1e9432",
                            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                        ),
                        "t10k-images-idx3-ubyte.gz": (
                            "9fb629c4189551a2d022fa330f9573f3",
                            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                        ),
                        "t10k-labels-idx1-ubyte.gz": (
                            "ec29112dd5afa0611ce80d1b7f02629c",
                            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                        ),
                    },
                ),
            ),
        ),
        DatasetSpec(
            "fashion-mnist",
            arch="mnist",
            classifier="fashion-mnist",
            svm_split=(50_000, 60_000),
            splits=("train", "test"),
            load_split=_idx("fashion-mnist"),
            download=Source(
                "fashion-mnist",
                _mnist(
                    ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
                    {
                        "train-images-idx3-ubyte.gz": (
                            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                        ),
                        "train-labels-idx1-ubyte.gz": (
                            "25c81989df183df01b3e8a0aad5dffbe",
                            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                        ),
                        "t10k-images-idx3-ubyte.gz": (
                            "bef4ecab320f06d8554ea6380940ec79",
                            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                        ),
                        "t10k-labels-idx1-ubyte.gz": (
                            "bb300cfdad3c16e7a12a480ee83cd310",
                            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                        ),
                    },
                ),
            ),
        ),
        DatasetSpec("stacked-mnist", arch="stacked-mnist", classifier="mnist", load=load_stacked_mnist),
        DatasetSpec(
            "cifar10",
            arch="cifar10",
            classifier="cifar10",
            # The paper's Table 2 label counts. Fewer SVMs than the protocol's and a C grid cut
            # to exp(-12..2): each fit takes up to 8,000 rows of 5,184 features, and on a
            # cifar10 encoder (1,000 labels) the validation error was flat above exp(0.4)
            # (0.7018-0.7028) where 34 of 50 fits hit liblinear's iteration cap (history/TUNING.md).
            svm_split=(45_000, 50_000),  # the authors': the pool is the images ALI trains on
            svm_labels_per_class=(100, 200, 400, 800),
            svm_draws=(3, 10),
            svm_cs=tuple(float(c) for c in np.exp(np.linspace(-12, 2, 15))),
            splits=("train", "test"),
            load_split=load_cifar10_split,
            train_rows=CIFAR10_TRAIN,
            download=Source(
                "",
                (
                    Remote(
                        "cifar-10-python.tar.gz",
                        ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
                        "c58f30108f718f92721af3b95e74349a",
                    ),
                ),
                extracts_to="cifar-10-batches-py",
            ),
        ),
        DatasetSpec(
            "svhn",
            arch="svhn",
            svm_split=(63_257, 73_257),  # the authors' split of `train` (73,257 images)
            splits=("train", "test", "extra"),
            load_split=load_svhn_split,
            train_split="extra",
            labelled_pool_split="train",
            download=Source(
                "svhn",
                tuple(
                    Remote(f"{s}_32x32.mat", (f"http://ufldl.stanford.edu/housenumbers/{s}_32x32.mat",), md5)
                    for s, md5 in (
                        ("train", "e26dedcc434d2e4c54c9b2d4a06d8373"),
                        ("test", "eb5a983be6a315427106f1b164d9cef3"),
                        ("extra", "a93ce644f1a588dc4d68dda5feec44a7"),
                    )
                ),
            ),
        ),
        DatasetSpec(
            "celeba64",
            arch="celeba64",
            load=load_celeba,
            download=Source(
                "celeba",
                (
                    Remote("img_align_celeba.zip", (), "00d2c5bc6d35e252742224ab0c1e8fcb"),
                    Remote("list_attr_celeba.txt", (), "75e246fa4810816ffd6ee81facbd244c"),
                    Remote("list_eval_partition.txt", (), "d32c9cbf5e040fd4025c592c306e6668"),
                ),
                extracts_to="celeba/img_align_celeba",
                note="CelebA is served from Google Drive, which needs a browser confirmation for large files: download "
                "img_align_celeba.zip (Align&Cropped Images), list_attr_celeba.txt and list_eval_partition.txt from "
                "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html into {folder}, then run this command again to verify and extract them",
            ),
        ),
        DatasetSpec(
            "imagenet64",
            arch="imagenet64",
            load=load_imagenet64,
            download=Source(
                "",
                (
                    Remote(
                        "tiny-imagenet-200.zip",
                        ("http://cs231n.stanford.edu/tiny-imagenet-200.zip",),
                        "90528d7ca1a48142e341f4ef8d21d0de",
                    ),
                ),
                extracts_to="tiny-imagenet-200",
                note="this fetches Tiny ImageNet (200 classes, 64x64); ILSVRC2012 and the downsampled Imagenet64_train_npz "
                "batches need a login at image-net.org: put them in {folder} by hand",
            ),
        ),
    )
}
