"""`ali data download NAME`: fetch the official files, verify checksums, write atomically, extract safely.

The files, their mirrors and checksums are declared with each dataset in ali.data.specs.
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
from pathlib import Path

from ali.data.archive import safe_extract
from ali.data.specs import DATASETS, Remote, Source
from ali.errors import AliError

CHUNK = 1 << 20
# What `ali data download NAME` fetches: each dataset's declared files (ali.data.specs).
SOURCES: dict[str, Source] = {name: spec.download for name, spec in DATASETS.items() if spec.download is not None}


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
