"""Whether a process on this machine is still running, telling a reused pid apart.

The writer lock and the scratch folders record the pid and start time of the process
that made them; a later run breaks or removes them once that process is provably gone.
"""

from __future__ import annotations

import os

__all__ = ["pid_namespace", "process_alive", "process_start"]


def pid_namespace() -> str | None:
    """This process's pid namespace (``None`` where the OS does not say)."""
    # Two containers can share a host name; a pid means something only in its namespace.
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), to tell pid reuse.

    ``"dead"`` for a zombie (it has finished running), ``None`` where unknown.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its end.
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):  # a zombie has finished running
        return "dead"
    return fields[19]


def process_alive(pid: int, start: str | None) -> bool:
    """Whether ``pid`` runs and (when ``start`` is known) is the process started then."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    current = process_start(pid)
    if current == "dead":
        return False
    return start is None or current is None or current == start
