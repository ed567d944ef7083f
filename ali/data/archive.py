"""Safe extraction of tar and zip archives (CIFAR-10 tar.gz, Tiny ImageNet and CelebA zips).

`tarfile.extractall` and `zipfile.extractall` trust member names: a crafted archive can write
outside the target (`../x`, `/etc/x`) or plant a link that a later member writes through. Here
every member is checked BEFORE anything is written, and the archive is refused as a whole when any
member is a link, a device, or a path that is absolute or leaves the target. Files are written
with our own open() calls (no owner, mode or mtime from the archive).
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import IO

from ali.data.common import describe
from ali.errors import AliError


def _checked_name(name: str, archive: Path) -> PurePosixPath:
    """The member's relative path, or AliError when it is absolute or escapes the target."""
    if "\\" in name or "\x00" in name:
        raise AliError(f"{archive}: member {name!r} has a backslash or NUL in its name; refusing the archive")
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("/") or (path.parts and ":" in path.parts[0]):
        raise AliError(f"{archive}: member {name!r} is an absolute path; refusing the archive")
    if ".." in path.parts:
        raise AliError(f"{archive}: member {name!r} leaves the target folder; refusing the archive")
    parts = [p for p in path.parts if p not in ("", ".")]
    if not parts:
        raise AliError(f"{archive}: member {name!r} has an empty name; refusing the archive")
    return PurePosixPath(*parts)


def _destination(target: Path, rel: PurePosixPath, archive: Path) -> Path:
    # resolve() follows any link already in the target, so a path that would land outside via a
    # pre-existing symlink is caught too.
    dest = (target / rel).resolve()
    if dest != target and target not in dest.parents:
        raise AliError(f"{archive}: member {str(rel)!r} would be written outside {target}; refusing the archive")
    return dest


def _tar_plan(tar: tarfile.TarFile, archive: Path) -> list[tuple[tarfile.TarInfo, PurePosixPath]]:
    plan = []
    for member in tar.getmembers():
        if member.issym() or member.islnk():
            raise AliError(f"{archive}: member {member.name!r} is a link; refusing the archive")
        if not (member.isfile() or member.isdir()):
            raise AliError(f"{archive}: member {member.name!r} is not a regular file or folder; refusing the archive")
        plan.append((member, _checked_name(member.name, archive)))
    return plan


def _zip_plan(zf: zipfile.ZipFile, archive: Path) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    plan = []
    for info in zf.infolist():
        mode = info.external_attr >> 16  # Unix mode bits, when the archiver stored them
        if stat.S_ISLNK(mode):
            raise AliError(f"{archive}: member {info.filename!r} is a symbolic link; refusing the archive")
        if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise AliError(f"{archive}: member {info.filename!r} is not a regular file or folder; refusing the archive")
        plan.append((info, _checked_name(info.filename, archive)))
    return plan


def _tar_member_file(tar: tarfile.TarFile, member: tarfile.TarInfo, archive: Path) -> IO[bytes]:
    src = tar.extractfile(member)
    if src is None:
        raise AliError(f"{archive}: member {member.name!r} has no data")
    return src


def _write_plan(plan: list[tuple[bool, Callable[[], IO[bytes]], Path]]) -> list[Path]:
    """Create the folders and copy the files of a plan checked in full beforehand."""
    written = []
    for is_dir, open_member, dest in plan:
        if is_dir:
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open_member() as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        written.append(dest)
    return written


def safe_extract(archive: Path, target: Path) -> list[Path]:
    """Extract a .tar[.gz|.bz2|.xz] or .zip into `target`; returns the files written.

    AliError, with nothing written, when the archive is malformed or any member is unsafe."""
    target.mkdir(parents=True, exist_ok=True)
    target = target.resolve()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                plan = [
                    (info.is_dir(), lambda info=info: zf.open(info), _destination(target, rel, archive))
                    for info, rel in _zip_plan(zf, archive)
                ]
                return _write_plan(plan)
        with tarfile.open(archive, "r:*") as tar:
            plan = [
                (m.isdir(), lambda m=m: _tar_member_file(tar, m, archive), _destination(target, rel, archive))
                for m, rel in _tar_plan(tar, archive)
            ]
            return _write_plan(plan)
    except AliError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise AliError(f"{archive}: cannot extract ({describe(exc)}); delete it and download it again") from None
