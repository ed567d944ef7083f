"""`ali data download NAME`: fetch the official files, verify checksums, write atomically, extract safely.

Checksums are the published ones (the datasets' sites, torchvision's lists; the MNIST and
Fashion-MNIST ones were re-checked against files verified by both md5 and sha256). A file is
written to a temporary name in its final folder, verified, fsynced and renamed, so an interrupted
download never leaves a file that looks complete.
CelebA is served from Google Drive, which needs a browser confirmation for large files, so it is not
fetched: the command verifies and extracts the files a user downloaded by hand.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ali.data.archive import safe_extract
from ali.errors import AliError

CHUNK = 1 << 20


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


SOURCES: dict[str, Source] = {
    "mnist": Source(
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
    "fashion-mnist": Source(
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
    "cifar10": Source(
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
    "svhn": Source(
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
    "celeba64": Source(
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
    "imagenet64": Source(
        "",
        (
            Remote(
                "tiny-imagenet-200.zip", ("http://cs231n.stanford.edu/tiny-imagenet-200.zip",), "90528d7ca1a48142e341f4ef8d21d0de"
            ),
        ),
        extracts_to="tiny-imagenet-200",
        note="this fetches Tiny ImageNet (200 classes, 64x64); ILSVRC2012 and the downsampled Imagenet64_train_npz "
        "batches need a login at image-net.org: put them in {folder} by hand",
    ),
}


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, remote: Remote) -> None:
    """AliError unless `path` has the published md5 (and sha256 where one is published)."""
    for algorithm, expected in (("md5", remote.md5), ("sha256", remote.sha256)):
        if expected and file_digest(path, algorithm) != expected:
            raise AliError(
                f"{path}: {algorithm} does not match the published {expected}; the file is corrupt or not the official one: delete it and download again"
            )


def fetch(url: str, dest: Path, remote: Remote, urlopen: Callable = urllib.request.urlopen) -> None:
    """Download `url` to `dest` atomically: temp file in the same folder, verify, fsync, rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urlopen(url, timeout=60) as response:
            shutil.copyfileobj(response, out, CHUNK)
            out.flush()
            os.fsync(out.fileno())
        verify(tmp, remote)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _extract(archive: Path, data_dir: Path, extracts_to: str) -> None:
    """Unpack into a temporary folder beside the data, then move its top-level entries in, so a
    half-extracted archive never sits where the loader looks."""
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=archive.parent))
    try:
        safe_extract(archive, staging)
        for entry in sorted(staging.iterdir()):
            dest = archive.parent / entry.name
            if dest.exists():
                raise AliError(
                    f"{dest} already exists but {data_dir / extracts_to} does not; move it away and run the download again"
                )
            os.replace(entry, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download_dataset(
    name: str,
    data_dir: Path,
    urlopen: Callable = urllib.request.urlopen,
    log: Callable[[str], None] = print,
    sources: dict[str, Source] | None = None,
) -> None:
    """Fetch and verify every file of `name` into data_dir; files already there and verified are kept."""
    sources = SOURCES if sources is None else sources
    if name not in sources:
        raise AliError(f"no download for {name!r}; known: {', '.join(sources)} (folder:PATH datasets are local)")
    source = sources[name]
    folder = data_dir / source.folder
    if source.note and all(r.urls for r in source.files):  # manual sources say it in their error
        log(f"note: {source.note.format(folder=folder)}")
    missing = []
    for remote in source.files:
        dest = folder / remote.filename
        if dest.is_file():
            verify(dest, remote)
            log(f"{dest}: present, checksum ok")
            continue
        if not remote.urls:
            missing.append(remote.filename)
            continue
        errors = []
        for url in remote.urls:
            log(f"downloading {url}")
            try:
                fetch(url, dest, remote, urlopen)
                break
            except (urllib.error.URLError, OSError, ValueError) as exc:  # unreachable mirror: try the next
                errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
        else:
            raise AliError(
                f"could not download {remote.filename} ({'; '.join(errors)}); check the network, or put the file in {folder} by hand"
            )
        log(f"{dest}: downloaded, checksum ok")
    if missing:
        raise AliError(f"{name}: {', '.join(missing)} not in {folder}; {source.note.format(folder=folder)}")
    if source.extracts_to and not (data_dir / source.extracts_to).exists():
        for remote in source.files:
            if remote.filename.endswith((".zip", ".tar.gz", ".tgz", ".tar")):
                log(f"extracting {folder / remote.filename}")
                _extract(folder / remote.filename, data_dir, source.extracts_to)
    log(f"{name}: ready in {data_dir}")
