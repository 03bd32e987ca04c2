"""What the export owns in OUTPUT: the names it writes, and the roots it may write into.

Names and rules only, no I/O: the store lists, this module decides. OUTPUT is shared
with whatever already sits there, so the export deletes or overwrites only names of its
own (:data:`OWNED_NAMES`, the one registry of them) under a root it owns
(:func:`check_root`). The store applies these rules
(:meth:`~odyssey_data.storage.DatasetStore.check_ownership`,
:meth:`~odyssey_data.storage.DatasetStore.remove`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable

from odyssey_data.errors import StorageError
from odyssey_data.manifest import MANIFEST_NAME
from odyssey_data.schema import TABLES

__all__ = [
    "LOCK_NAME",
    "OWNED_NAMES",
    "SCRATCH_DIR",
    "SCRATCH_PREFIX",
    "TMP_PREFIX",
    "check_root",
    "is_owned",
    "safe_name",
]

#: The writer lock at the dataset root; readers ignore it.
LOCK_NAME = "_odyssey.lock"
#: Prefix of local temp files (renamed into place when whole; leftovers are removed).
TMP_PREFIX = ".tmp-"
#: Prefix of the temp folders workers download into (``tempfile`` adds random letters).
SCRATCH_PREFIX = f"{TMP_PREFIX}odyssey-data-"
#: A worker's temp folder (:data:`SCRATCH_PREFIX` + ``tempfile``'s random letters).
SCRATCH_DIR = re.escape(SCRATCH_PREFIX) + r"[A-Za-z0-9_-]+"

_SAFE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
#: The suffixes of a recording's media beside its video (``<name>.preview.mp4``).
_MEDIA_SUFFIXES = (".preview", ".thumbnail")
#: Names Windows keeps for devices, whatever the extension.
_DEVICE_NAMES = frozenset(
    ["con", "prn", "aux", "nul"] + [f"{p}{i}" for p in ("com", "lpt") for i in range(1, 10)]
)
#: A file name :func:`safe_name` makes (the stem of a recording's files).
_SAFE_STEM = r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}"
#: A temp file of the store's atomic writes: ``.tmp-<32 hex>-<final name>``.
_TMP_FILE = r"\.tmp-[0-9a-f]{32}-[^/]+"

#: The names the export writes, relative to the dataset root: the one registry of what
#: it owns. Only a name matching one of these may be deleted or overwritten (and only
#: under a root the export owns, see :func:`check_root`); anything else in OUTPUT is the
#: user's and is never touched. A feature that writes a new kind of file into the
#: dataset adds its pattern here (a full match of the relative path).
#: (The dataset card ``README.md`` proves itself instead, by the seal in its last line:
#: see :mod:`odyssey_data.card`; a LeRobot conversion by the file list of its record.)
OWNED_NAMES: list[re.Pattern[str]] = [
    re.compile(re.escape(name)) for name in (MANIFEST_NAME, LOCK_NAME)
] + [
    re.compile(rf"({'|'.join(TABLES)})/part-\d{{6,}}\.parquet"),
    re.compile(rf"videos/{_SAFE_STEM}\.mp4"),
    re.compile(rf"videos/{_SAFE_STEM}\.(thumbnail\.jpg|preview\.mp4)"),
    # Temp files beside their final name (root or a dataset folder), and worker folders.
    re.compile(rf"(({'|'.join((*TABLES, 'videos'))})/)?{_TMP_FILE}"),
    re.compile(rf"{SCRATCH_DIR}(/.*)?"),
]


def is_owned(rel: str) -> bool:
    """Whether ``rel`` (a path relative to the dataset root) is a name the export writes.

    See :data:`OWNED_NAMES`.
    """
    return any(pattern.fullmatch(rel) for pattern in OWNED_NAMES)


def safe_name(stream_id: str) -> str:
    """A file name for ``stream_id`` that cannot escape its folder or meet another id's.

    Ids of lower-case letters, digits, ``.``, ``_`` and ``-`` (starting with a letter or
    digit, no ``..``) are kept as they are; anything else becomes
    ``_<slug>-<sha256 prefix>``, which no kept id can collide with because kept ids
    never start with ``_``. Also hashed: upper-case letters (``Abc`` and ``abc`` are one
    file on a case-insensitive disk), ids ending in ``.preview`` or ``.thumbnail``
    (``X.preview.mp4`` is recording ``X``'s preview), Windows device names (``con``,
    ``nul``…), separators, control characters, absolute paths and very long ids. The
    original id stays in the ``stream_id`` column.
    """
    kept = (
        _SAFE_ID.match(stream_id)
        and ".." not in stream_id
        and not stream_id.endswith(_MEDIA_SUFFIXES)
        and stream_id.split(".")[0] not in _DEVICE_NAMES
    )
    if kept:
        return stream_id
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", stream_id).strip("-")[:40]
    digest = hashlib.sha256(stream_id.encode("utf-8", "surrogatepass")).hexdigest()[:20]
    return f"_{slug}-{digest}" if slug else f"_{digest}"


def check_root(
    where: str,
    entries: Iterable[str],
    list_files: Callable[[str], list[str]],
    *,
    allow_foreign: bool = False,
) -> None:
    """Refuse a root without a manifest that holds anything but the export's own names.

    A root that holds nothing, or nothing but a writer lock and temp files of the export,
    is free. Any other root is someone's folder: refused, unless ``allow_foreign``, and
    even then refused while a file there has a name the export writes
    (:data:`OWNED_NAMES`): it would be overwritten or deleted.

    Args:
        where: the root as the user gave it (named in the messages).
        entries: the names directly at the root, files and folders (links included).
        list_files: the files below one dataset folder, relative to the root (only
            called with ``allow_foreign``, to look for clashing names).
        allow_foreign: add a dataset beside foreign files.

    Raises:
        StorageError: the root is not an odyssey-data dataset (one line: what was found
            and the way out).
    """
    entries = list(entries)
    foreign = sorted(n for n in entries if not is_owned(n))
    if not foreign:
        return
    if not allow_foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise StorageError(
            f"{where} is not an odyssey-data dataset (no {MANIFEST_NAME}) and "
            f"is not empty (it holds {shown}); export to a new or empty folder, or pass "
            "--allow-foreign-files (allow_foreign_files=True) to add a dataset beside "
            "those files, which it never deletes"
        )
    found = [n for n in entries if is_owned(n)]
    for folder in (*TABLES, "videos"):
        found += [rel for rel in list_files(folder) if is_owned(rel)]
    clashing = [rel for rel in sorted(found) if rel != LOCK_NAME]
    if clashing:
        raise StorageError(
            f"{clashing[0]} under {where} has a name the export writes, but this "
            f"folder is not an odyssey-data dataset (no {MANIFEST_NAME}), so the file is "
            "not the export's: move it out of the folder (or export elsewhere)"
        )
