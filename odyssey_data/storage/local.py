"""A dataset on a local disk: never through a symbolic link, every file whole.

* No path below the root may be a symbolic link: reading, writing and deleting refuse
  one (:func:`refuse_links`), and listings skip them (:func:`walk_files`,
  :func:`root_listing` look with ``lstat``), so nothing outside OUTPUT is ever touched
  through a link.
* A file appears whole or not at all: it is written to a ``.tmp-`` file in its own
  folder, flushed to disk, then renamed into place (:func:`writing_whole`) or
  hard-linked there when the name must not exist yet (:func:`create_whole`). Temp files
  a killed run leaves are names the export owns: the next run removes them.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import IO

from odyssey_data.errors import StorageError
from odyssey_data.storage.ownership import TMP_PREFIX

__all__ = [
    "check_relative",
    "create_whole",
    "fsync_dir",
    "refuse_links",
    "root_listing",
    "walk_files",
    "writing_whole",
]


def check_relative(rel: str) -> None:
    """Refuse a dataset path that is absolute or holds an empty, ``.`` or ``..`` part."""
    parts = rel.split("/")
    if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"refusing the dataset path {rel!r}: not a plain relative path")


def refuse_links(root: str, url: str, rel: str) -> None:
    """Refuse ``rel`` when a part of it below ``root`` is a symbolic link.

    Raises:
        StorageError: reading, writing or deleting through the link could reach outside
            the dataset ``url``.
    """
    parts = rel.split("/")
    current = root or "."
    for part in parts:
        current = f"{current}/{part}"
        try:
            is_link = os.path.islink(current)
        except OSError:  # pragma: no cover - islink swallows OSError itself
            is_link = False
        if is_link:
            shown = current.removeprefix(f"{root}/") if root else current
            raise StorageError(
                f"{shown} under {url} is a symbolic link; the export never follows "
                "a link out of its dataset: remove the link (or export elsewhere)"
            )
        if not os.path.lexists(current):
            return


def root_listing(root: str) -> list[tuple[str, bool]]:
    """(name, is a regular file) of every entry directly in ``root``: links are listed,
    and are not regular files."""
    return [(entry.name, entry.is_file(follow_symlinks=False)) for entry in os.scandir(root)]


def walk_files(root: str, base: str) -> list[str]:
    """The files below ``base``, relative to ``root`` with ``/``, sorted; symbolic links
    are neither listed nor followed."""
    out = []
    for parent, dirs, files in os.walk(base, followlinks=False):
        rel_parent = os.path.relpath(parent, root).replace(os.sep, "/")
        prefix = "" if rel_parent == "." else f"{rel_parent}/"
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(parent, d))]
        for name in files:
            if not os.path.islink(os.path.join(parent, name)):
                out.append(f"{prefix}{name}")
    return sorted(out)


def fsync_dir(folder: str) -> None:
    """Make a rename in ``folder`` durable: best effort (not on Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _local_tmp(final: str) -> str:
    parent, _, name = final.rpartition("/")
    if parent:
        os.makedirs(parent, exist_ok=True)
    tmp = f"{TMP_PREFIX}{uuid.uuid4().hex}-{name}"
    return f"{parent}/{tmp}" if parent else tmp


@contextlib.contextmanager
def writing_whole(final: str) -> Iterator[IO[bytes]]:
    """A binary file that replaces ``final`` whole when the block ends without error.

    A temp file in the same folder, flushed to disk, then ``os.replace``; on an error
    the temp file is removed and ``final`` keeps what it held.
    """
    tmp = _local_tmp(final)
    try:
        with open(tmp, "wb") as local:
            yield local
            local.flush()
            os.fsync(local.fileno())
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def create_whole(final: str, data: bytes) -> bool:
    """Create ``final`` with ``data`` only if it does not exist yet: a temp file
    hard-linked into place (``link`` fails when the name exists, and the file is
    complete the moment it appears).

    Returns:
        True when this call created the file, False when it already existed.
    """
    for attempt in range(3):
        tmp = _local_tmp(final)
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(tmp, final)
            break
        except FileExistsError:
            return False
        except FileNotFoundError:
            # The lock holder's leftover cleanup removed our temp file between its write
            # and its link: write it again.
            if attempt == 2:
                raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    fsync_dir(final.rpartition("/")[0])
    return True
