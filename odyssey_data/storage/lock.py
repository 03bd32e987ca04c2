"""The one-writer-at-a-time lock of a dataset root (``_odyssey.lock``).

Two exports must not write one dataset at once. The lock is created exclusively at the
root, refreshed while its holder works, checked before every commit and deleted at the
end; a stale one (its process provably gone, or not refreshed for the timeout) is
broken with a warning. Readers ignore it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from odyssey_data.errors import DatasetDamagedError, StorageError
from odyssey_data.manifest import utc_now_iso
from odyssey_data.storage.ownership import LOCK_NAME
from odyssey_data.storage.processes import pid_namespace, process_alive, process_start

if TYPE_CHECKING:
    from odyssey_data.storage.store import DatasetStore

__all__ = ["WriterLock"]

#: The package's logger, as before the split (``odyssey_data.storage``).
log = logging.getLogger("odyssey_data.storage")


class WriterLock:
    """The one-writer-at-a-time lock of a dataset root (``_odyssey.lock``).

    The lock is a small JSON object (owner id, host, pid, times) created exclusively:
    see :meth:`DatasetStore.create_exclusive`. Its holder refreshes it while it works
    (:meth:`refresh`), checks it still owns it before every commit (:meth:`check`) and
    deletes it at the end (:meth:`release`). Readers ignore it.

    A lock is *stale*, and is broken with a warning, when its process is provably gone
    (same machine and pid namespace, and the pid no longer runs or now belongs to a newer
    process) or when it has not been refreshed for ``timeout_s``. Any other existing lock
    makes :meth:`acquire` fail with a message that says how to break it.

    Args:
        store: the dataset root.
        timeout_s: a lock not refreshed for this long is stale; ``None``: never by age.
        purpose: what the holder does, shown to whoever finds the lock.
    """

    #: How often :meth:`refresh` really rewrites the lock (seconds).
    refresh_every_s = 60.0

    def __init__(
        self, store: DatasetStore, *, timeout_s: float | None = 6 * 3600.0, purpose: str = "export"
    ) -> None:
        self.store = store
        self.timeout_s = timeout_s
        self.purpose = purpose
        self.owner = uuid.uuid4().hex
        self.held = False
        self._refreshed = 0.0
        self._created_at = utc_now_iso()

    def _document(self) -> bytes:
        now = time.time()
        self._refreshed = now
        pid = os.getpid()
        doc = {
            "owner": self.owner,
            "purpose": self.purpose,
            "host": socket.gethostname(),
            "pid": pid,
            "pid_namespace": pid_namespace(),
            "pid_start": process_start(pid),
            "created_at": self._created_at,
            "refreshed_at": utc_now_iso(),
            "refreshed_epoch": now,
        }
        return json.dumps(doc, indent=1).encode()

    def read(self) -> dict[str, Any] | None:
        """The lock's JSON as stored; ``{}`` when unreadable, ``None`` when there is none."""
        data = self.store.read_bytes(LOCK_NAME)
        if data is None:
            return None
        try:
            doc = json.loads(data)
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}

    def stale_reason(self, doc: Mapping[str, Any], now: float | None = None) -> str | None:
        """Why the lock ``doc`` may be broken, or ``None`` while its owner may be at work."""
        now = time.time() if now is None else now
        pid = doc.get("pid")
        same_machine = (
            doc.get("host") == socket.gethostname() and doc.get("pid_namespace") == pid_namespace()
        )
        if same_machine and isinstance(pid, int) and not process_alive(pid, doc.get("pid_start")):
            return f"its process (pid {pid} on this machine) is no longer running"
        refreshed = doc.get("refreshed_epoch")
        if self.timeout_s is not None and isinstance(refreshed, int | float):
            idle = now - float(refreshed)
            if idle > self.timeout_s:
                return (
                    f"it was last refreshed {idle:.0f} s ago, longer than the lock timeout "
                    f"of {self.timeout_s:.0f} s"
                )
        return None

    def describe(self, doc: Mapping[str, Any]) -> str:
        """The holder of ``doc`` in words."""
        if not doc:
            return "an unreadable lock"
        try:
            idle = time.time() - float(doc.get("refreshed_epoch") or 0.0)
        except (TypeError, ValueError):
            return "a lock of unknown age"
        return (
            f"{doc.get('purpose', 'export')} by pid {doc.get('pid')} on host "
            f"{doc.get('host')!r}, started {doc.get('created_at')}, last active {idle:.0f} s ago"
        )

    def acquire(self, *, force: bool = False) -> None:
        """Take the lock, breaking a stale one (or any, with ``force``).

        Raises:
            StorageError: another writer holds the lock; the message says how to break it.
        """
        where = f"{self.store.url}/{LOCK_NAME}"
        for _ in range(3):
            if self.store.create_exclusive(LOCK_NAME, self._document()):
                mine = self.read()
                if mine is not None and mine.get("owner") == self.owner:
                    self.held = True
                    return
                # The store ignored the exclusive create and another writer won the race.
                doc = mine or {}
            else:
                found = self.read()
                if found is None:
                    continue  # released between our create and our read: try again
                doc = found
            reason = "--break-lock was given" if force else self.stale_reason(doc)
            if reason is None and not doc:
                raise DatasetDamagedError(
                    f"the writer lock {where} is damaged (not a lock odyssey-data wrote): if "
                    "no other export is writing this dataset, run again with --break-lock"
                )
            if reason is None:
                timeout = (
                    f", or wait until it is idle for more than {self.timeout_s:.0f} s"
                    if self.timeout_s is not None
                    else ""
                )
                raise StorageError(
                    f"{self.store.url} is locked by another writer ({self.describe(doc)}). "
                    "Two exports must not write one dataset at once: wait for the other to "
                    "finish. If it is not running any more (killed on another machine), run "
                    f"again with --break-lock (break_lock=True){timeout}; the lock is {where}"
                )
            log.warning("breaking the lock at %s (%s): %s", where, self.describe(doc), reason)
            self.store.remove([LOCK_NAME])
            force = False
        raise StorageError(
            f"cannot take the lock at {where}: other writers keep taking it; try again later"
        )

    def check(self) -> None:
        """Make sure this writer still holds the lock (before a commit).

        Raises:
            StorageError: the lock was broken or taken by another writer.
        """
        doc = self.read()
        if not self.held or doc is None or doc.get("owner") != self.owner:
            holder = "nobody holds it now" if not doc else f"now held by {self.describe(doc)}"
            raise StorageError(
                f"this export lost its lock on {self.store.url} ({holder}; it was broken, "
                "maybe with --break-lock): stopping without committing. Files it wrote are "
                "not in the dataset and the next run removes them; run the export again."
            )

    def refresh(self, *, force: bool = False) -> None:
        """Rewrite the lock's time so others do not take it for stale (rate-limited).

        Raises:
            StorageError: the lock was lost (see :meth:`check`).
        """
        if not force and time.time() - self._refreshed < self.refresh_every_s:
            return
        self.check()
        self.store.write_bytes(LOCK_NAME, self._document())

    def release(self) -> None:
        """Delete the lock if this writer still holds it (never someone else's)."""
        if not self.held:
            return
        self.held = False
        with contextlib.suppress(StorageError):
            doc = self.read()
            if doc is not None and doc.get("owner") == self.owner:
                self.store.remove([LOCK_NAME])
