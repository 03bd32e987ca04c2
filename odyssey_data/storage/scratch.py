"""Temp folders of the export on this machine, and their removal after a killed run.

Workers download into folders named ``SCRATCH_PREFIX<pid>_<start>-<random>``: in a
local dataset's root (on the dataset's own disk, so a finished file is moved in with one
rename), or in a per-user scratch folder (:func:`local_scratch_root`) for targets that
are not a local disk. Never the system temp folder: a run killed with SIGKILL leaves its
folders behind, and the next export removes them (:func:`remove_scratch_folders`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable

from odyssey_data.errors import OdysseyDataError
from odyssey_data.storage.errors import storage_error
from odyssey_data.storage.ownership import SCRATCH_DIR, SCRATCH_PREFIX
from odyssey_data.storage.processes import process_alive, process_start

__all__ = [
    "local_scratch_root",
    "make_scratch_folder",
    "remove_scratch_folders",
    "scratch_error",
    "scratch_prefix",
]


def local_scratch_root() -> str:
    """The folder on this machine for temp files of exports to targets that are not a
    local disk (object stores): ``ODYSSEY_DATA_SCRATCH``, else ``$XDG_CACHE_HOME`` (or
    ``~/.cache``) ``/odyssey-data/scratch``.

    Not the system temp folder: a run killed with SIGKILL leaves its folder here, and the
    next export removes it (see :meth:`DatasetStore.remove_scratch`).
    """
    configured = os.environ.get("ODYSSEY_DATA_SCRATCH")
    if configured:
        return configured
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "odyssey-data", "scratch")


def scratch_prefix() -> str:
    """The prefix of this process's temp folders: :data:`SCRATCH_PREFIX`, this process's
    id and start time (so a later run can tell whether the process is gone) and ``-``."""
    pid = os.getpid()
    return f"{SCRATCH_PREFIX}{pid}_{process_start(pid) or 0}-"


def scratch_error(exc: OSError, where: str) -> OdysseyDataError:
    """The one-line error for the OS refusing a temp folder in ``where``.

    Classified like any storage error, so a full or read-only disk, or a folder the
    process may not write into, stops the run (every recording needs a temp folder)
    instead of failing each recording in turn.
    """
    return storage_error(exc, action="make the temp folder", path="", url=where)


def make_scratch_folder(parent: str, where: str) -> str:
    """Make a new temp folder of this process (named :func:`scratch_prefix` ``…``) in
    the existing folder ``parent``; the caller removes it.

    Args:
        parent: the scratch place (see :meth:`DatasetStore.scratch_dir`).
        where: how messages name ``parent``.

    Raises:
        StorageError: the OS refused it (see :func:`scratch_error`).
    """
    try:
        return tempfile.mkdtemp(prefix=scratch_prefix(), dir=parent)
    except OSError as exc:
        raise scratch_error(exc, where) from exc


def _scratch_owner_alive(name: str) -> bool:
    """Whether the process that made the scratch folder ``name`` may still run."""
    match = re.match(re.escape(SCRATCH_PREFIX) + r"(\d+)_(\d+)-", name)
    if match is None:
        return False  # not made by scratch_prefix(): an older run's
    pid, start = int(match.group(1)), match.group(2)
    return process_alive(pid, None if start == "0" else start)


def remove_scratch_folders(places: Iterable[tuple[str, bool]]) -> int:
    """Delete the worker folders in each ``(place, all_of_them)``; returns how many.

    With ``all_of_them`` every worker folder goes (the caller holds the writer lock of
    the dataset they are in); otherwise only those whose process is gone. Links are
    never followed.
    """
    removed = 0
    for place, all_of_them in places:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for entry in os.scandir(place):
                if not (
                    re.fullmatch(SCRATCH_DIR, entry.name) and entry.is_dir(follow_symlinks=False)
                ):
                    continue
                if all_of_them or not _scratch_owner_alive(entry.name):
                    shutil.rmtree(entry.path, ignore_errors=True)
                    removed += 1
    return removed
