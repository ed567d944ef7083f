"""Safe loading of data files: a pickle that would run code is refused, archives cannot write
outside their target, downloads are verified and atomic (no network: file:// URLs and a fake opener)."""

import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from data_writers import write_cifar

from ali.data import load_image_dataset
from ali.data.archive import safe_extract
from ali.data.cifar import parse_batch, read_batch
from ali.data.download import Remote, Source, download_dataset, fetch
from ali.errors import AliError


class _CreatesMarker:
    """Unpickling this calls open(marker, "w"): the file appears iff the loader runs code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


class _RunsShell:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload", [_CreatesMarker, _RunsShell])
def test_crafted_pickle_is_refused_and_runs_nothing(tmp_path, payload):
    marker = tmp_path / "marker"
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    # hidden inside an otherwise valid batch, as a real attack would be
    batch = {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 3], b"filenames": [payload(marker)]}
    (folder / "data_batch_2").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(AliError, match="refusing to load"):
        load_image_dataset("cifar10", tmp_path)
    assert not marker.exists()
    # Python 3 protocols too, and the bare payload
    for protocol in (2, 4, 5):
        with pytest.raises(AliError, match="refusing"):
            parse_batch(pickle.dumps(payload(marker), protocol=protocol), "crafted")
    assert not marker.exists()
    # pickle.load itself WOULD create it: the test can fail
    pickle.loads(pickle.dumps(payload(marker)))
    assert marker.exists()


def test_codecs_encode_only_latin1_and_numpy_arrays_only(tmp_path):
    crafted = b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00abcq\x01X\x04\x00\x00\x00zlibq\x02\x86q\x03Rq\x04."
    with pytest.raises(AliError, match="refusing _codecs.encode"):
        parse_batch(crafted, "crafted")
    obj_array = {b"data": np.array([object()] * 3072, dtype=object).reshape(1, 3072), b"labels": [0]}
    with pytest.raises(AliError, match="refusing"):  # object arrays pickle their items: builtins.object refused
        parse_batch(pickle.dumps(obj_array, protocol=2), "crafted")
    images, labels = read_batch(_write_good(tmp_path))
    assert images.shape == (4, 3, 32, 32)


def _write_good(tmp_path):
    write_cifar(tmp_path / "c")
    return tmp_path / "c" / "data_batch_1"


def _tar(path: Path, members: list) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


def _file(name: str, data: bytes = b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name: str, target: str, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _everything_under(root: Path) -> set:
    return {p.relative_to(root) for p in root.rglob("*")}


def _assert_refused_before_writing(tmp_path: Path, name: str, write_archive, reason: str) -> None:
    """safe_extract refuses the archive with `reason`, and nothing changed under tmp_path, not even
    inside the target: every member is checked before anything is written."""
    archive, target = tmp_path / name, tmp_path / "box" / "target"
    target.mkdir(parents=True)
    write_archive(archive)
    before = _everything_under(tmp_path)
    with pytest.raises(AliError, match=reason):
        safe_extract(archive, target)
    assert _everything_under(tmp_path) == before


@pytest.mark.parametrize(
    "members,reason",
    [
        ([_file("ok.txt"), _file("../escaped.txt")], "leaves the target"),
        ([_file("ok.txt"), _file("sub/../../escaped.txt")], "leaves the target"),
        ([_file("/tmp/ali-abs-escaped.txt")], "absolute path"),
        ([_link("lnk", ".."), _file("lnk/escaped.txt")], "is a link"),
        ([_link("lnk", "/etc"), _file("lnk/escaped.txt")], "is a link"),
        ([_link("hard", "/etc/passwd", tarfile.LNKTYPE)], "is a link"),
    ],
)
def test_tar_traversal_and_links_write_nothing(tmp_path, members, reason):
    _assert_refused_before_writing(tmp_path, "a.tar.gz", lambda archive: _tar(archive, members), reason)
    assert not Path("/tmp/ali-abs-escaped.txt").exists()


def _zip(path: Path, entries: list) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, data)


@pytest.mark.parametrize(
    "entries,reason",
    [
        ([("ok.txt", b"x", 0o100644), ("../escaped.txt", b"x", 0o100644)], "leaves the target"),
        ([("/abs-escaped.txt", b"x", 0o100644)], "absolute path"),
        ([("lnk", b"/etc", 0o120777), ("lnk/escaped.txt", b"x", 0o100644)], "symbolic link"),
        ([("..\\escaped.txt", b"x", 0o100644)], "backslash"),
    ],
)
def test_zip_traversal_and_links_write_nothing(tmp_path, entries, reason):
    _assert_refused_before_writing(tmp_path, "a.zip", lambda archive: _zip(archive, entries), reason)


def test_benign_archives_extract(tmp_path):
    _tar(tmp_path / "a.tar.gz", [_file("d/one.txt", b"1"), _file("two.txt", b"22")])
    _zip(tmp_path / "b.zip", [("z/three.txt", b"333", 0o100644)])
    assert len(safe_extract(tmp_path / "a.tar.gz", tmp_path / "t")) == 2
    assert (tmp_path / "t" / "d" / "one.txt").read_bytes() == b"1"
    safe_extract(tmp_path / "b.zip", tmp_path / "u")
    assert (tmp_path / "u" / "z" / "three.txt").read_bytes() == b"333"
    (tmp_path / "bad.tar.gz").write_bytes((tmp_path / "a.tar.gz").read_bytes()[:30])
    with pytest.raises(AliError, match="cannot extract"):
        safe_extract(tmp_path / "bad.tar.gz", tmp_path / "v")


def _remote(path: Path, name: str, md5: str | None = None) -> Remote:
    return Remote(
        name, (path.as_uri(),), md5 or hashlib.md5(path.read_bytes()).hexdigest(), hashlib.sha256(path.read_bytes()).hexdigest()
    )


def test_fetch_verifies_and_is_atomic(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"official bytes" * 1000)
    dest = tmp_path / "out" / "file.bin"
    fetch(src.as_uri(), dest, _remote(src, "file.bin"))
    assert dest.read_bytes() == src.read_bytes()
    bad = tmp_path / "out" / "bad.bin"
    with pytest.raises(AliError, match="md5 does not match"):
        fetch(src.as_uri(), bad, _remote(src, "bad.bin", md5="0" * 32))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["file.bin"]  # no partial file left


def test_download_dataset_mirror_fallback_extract_and_rerun(tmp_path):
    staging = tmp_path / "staging"
    (staging / "cifar-10-batches-py").mkdir(parents=True)
    write_cifar(staging / "cifar-10-batches-py", per_batch=2)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    sources = {
        "cifar10": Source(
            "",
            (Remote(archive.name, ("http://unreachable.invalid/x", archive.as_uri()), md5),),
            extracts_to="cifar-10-batches-py",
        )
    }
    calls = []

    def opener(url, timeout):  # no network: the first mirror fails, the second is a local file
        calls.append(url)
        if url.startswith("http"):
            raise urllib.error.URLError("offline")
        return urllib.request.urlopen(url, timeout=timeout)

    data_dir = tmp_path / "data"
    logs = []
    download_dataset("cifar10", data_dir, urlopen=opener, log=logs.append, sources=sources)
    assert calls[0].startswith("http") and (data_dir / "cifar-10-batches-py" / "data_batch_5").is_file()
    assert not [p for p in data_dir.iterdir() if p.name.startswith(".")]  # no staging or .part left behind
    download_dataset("cifar10", data_dir, urlopen=opener, log=logs.append, sources=sources)
    assert any("present, checksum ok" in line for line in logs)
    (data_dir / archive.name).write_bytes(b"tampered")
    with pytest.raises(AliError, match="md5 does not match"):
        download_dataset("cifar10", data_dir, urlopen=opener, log=logs.append, sources=sources)


def test_manual_download_says_so(tmp_path):
    with pytest.raises(AliError, match="Google Drive"):
        download_dataset("celeba64", tmp_path, log=lambda s: None)
