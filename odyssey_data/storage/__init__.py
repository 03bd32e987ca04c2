"""Writing and reading the dataset on any fsspec target, and its commit protocol.

The only package that imports ``fsspec`` and writes Parquet. Layout and names follow
``dataset-format.md``; the commit protocol follows ``design.md``:

* Shards get deterministic names (``frames/part-000003.parquet``) and are written whole:
  on a local disk to a temp file in the same folder, then ``os.replace``; on object
  stores one PUT, which is atomic.
* ``manifest.json`` lists every file with its row count, size and SHA-256 and every
  recording's status. It is written last and replaced atomically, so a reader sees the
  old dataset or the new one, never half of one. A file it does not list is a leftover.
* Note: ``pq.write_table(path, filesystem=<fsspec local>)`` silently bypasses fsspec for
  local paths, so every file is opened with ``fs.open`` and pyarrow gets the handle.

Ownership (OUTPUT is shared with whatever already sits there):

* The export deletes or overwrites only names of its own (:data:`OWNED_NAMES`, the one
  registry of them: add a pattern there for every new kind of file the export writes)
  under a root it owns: one holding ``manifest.json``, or one that was empty (or absent)
  when the first export started, which then commits an empty manifest before writing
  anything else. :meth:`DatasetStore.check_ownership` refuses any other root, and
  :meth:`DatasetStore.remove` refuses any name not in the registry.
* On a local disk no path below the root may be a symbolic link: reading, writing and
  deleting refuse one (:meth:`DatasetStore.path`), and listings skip them, so nothing
  outside OUTPUT is ever touched through a link.
* Temp files live where the next run finds them: ``.tmp-`` names in the dataset's own
  folders (local), or a per-user scratch folder (:func:`local_scratch_root`) for targets
  that are not a local disk, whose folders are removed once their process is gone.

The modules:

* :mod:`~odyssey_data.storage.ownership`: pure: the names the export writes
  (:data:`OWNED_NAMES`, :func:`is_owned`, :func:`safe_name`) and the roots it may write
  into.
* :mod:`~odyssey_data.storage.store`: :class:`DatasetStore`, the one class that
  touches fsspec (read, write, commit, remove, list).
* :mod:`~odyssey_data.storage.local`: a local disk: no symbolic links, files whole
  (temp file, then rename).
* :mod:`~odyssey_data.storage.parquet`: what goes into a Parquet file (row groups).
* :mod:`~odyssey_data.storage.lock`: :class:`WriterLock`, one writer at a time.
* :mod:`~odyssey_data.storage.scratch` and :mod:`~odyssey_data.storage.processes`:
  temp folders on this machine, removed once their process is gone.
* :mod:`~odyssey_data.storage.errors`: the one translation point of the backends'
  exceptions (fsspec, botocore, gcsfs, the OS) into one-line ``StorageError``.
"""

from __future__ import annotations

from odyssey_data.manifest import MANIFEST_NAME, FileEntry, utc_now_iso
from odyssey_data.storage.lock import WriterLock
from odyssey_data.storage.ownership import (
    LOCK_NAME,
    OWNED_NAMES,
    SCRATCH_PREFIX,
    TMP_PREFIX,
    is_owned,
    safe_name,
)
from odyssey_data.storage.scratch import local_scratch_root, scratch_prefix
from odyssey_data.storage.store import DatasetStore, hash_file

__all__ = [
    "LOCK_NAME",
    "MANIFEST_NAME",
    "OWNED_NAMES",
    "SCRATCH_PREFIX",
    "TMP_PREFIX",
    "DatasetStore",
    "FileEntry",
    "WriterLock",
    "hash_file",
    "is_owned",
    "local_scratch_root",
    "safe_name",
    "scratch_prefix",
    "utc_now_iso",
]
