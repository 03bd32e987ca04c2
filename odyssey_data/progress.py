"""Progress of an export: what :func:`~odyssey_data.pipeline.export` tells its watcher.

An export reports to a :class:`ProgressSink` (the CLI's bar, or one line per recording
when stderr is not a terminal), or to any callable taking a :class:`ProgressUpdate`
(notebooks: ``export(..., progress=print)`` or a widget's update function).

Bytes within a recording and the phase each recording is in are counted live, in this
process, by :data:`LIVE` (downloads report every chunk; the pipeline marks phases), so
a long recording shows movement before it is done. Work in other processes (materialised
frames, Ray) shows when each recording finishes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from odyssey_data.manifest import Status
    from odyssey_data.pipeline import ExportReport, RecordingResult

__all__ = [
    "LIVE",
    "CallbackSink",
    "LiveCounters",
    "ProgressSink",
    "ProgressUpdate",
    "human_bytes",
    "human_seconds",
    "make_sink",
]


def human_bytes(count: float) -> str:
    """``94664461`` → ``'94.7 MB'`` (decimal units, as disks and networks count)."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def human_seconds(seconds: float) -> str:
    """``3725`` → ``'1 h 02 min'``, ``95`` → ``'1 min 35 s'``, ``1.94`` → ``'1.9 s'``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class LiveCounters:
    """Bytes downloaded and recordings per phase in this process, updated as they change.

    Thread-safe; read by progress displays while workers and download threads update it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bytes = 0
        self.phases: dict[str, int] = {}

    def reset(self) -> None:
        """Start counting afresh (at the start of an export)."""
        with self._lock:
            self.bytes = 0
            self.phases = {}

    def add_bytes(self, count: int) -> None:
        """``count`` more bytes arrived."""
        with self._lock:
            self.bytes += count

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """One recording (or the driver) is in phase ``name`` while the block runs."""
        with self._lock:
            self.phases[name] = self.phases.get(name, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self.phases[name] -= 1

    def describe(self) -> str:
        """``'downloading 2, processing 1'``: the phases with work in them now."""
        with self._lock:
            busy = [(name, n) for name, n in self.phases.items() if n > 0]
        return ", ".join(f"{name} {n}" if n > 1 else name for name, n in busy)


#: The counters of this process.
LIVE = LiveCounters()


@dataclass(frozen=True)
class ProgressUpdate:
    """One recording finished (or was skipped), with the export's totals so far.

    Attributes:
        done: recordings finished so far (exported, failed or skipped).
        total: recordings this run will go through.
        stream_id: the recording just finished.
        status: ``exported``, ``failed`` or ``skipped``.
        reason: why it failed or was skipped.
        frames: its frame rows.
        bytes: its video bytes.
        seconds: how long it took (download and processing).
        elapsed_s: seconds since the export started.
        eta_s: estimated seconds left (``None`` until one recording took time).
    """

    done: int
    total: int
    stream_id: str
    status: Status
    reason: str | None
    frames: int
    bytes: int
    seconds: float
    elapsed_s: float
    eta_s: float | None

    def line(self) -> str:
        """``[12/37] <id> 285 frames 2.6 MB 1.9 s`` (or the status and reason)."""
        head = f"[{self.done}/{self.total}] {self.stream_id}"
        if self.status == "exported":
            return (
                f"{head} {self.frames:,} frames {human_bytes(self.bytes)} "
                f"{human_seconds(self.seconds)}"
            )
        return f"{head} {self.status}: {self.reason or 'no reason given'}"


class ProgressSink:
    """Receives progress from :func:`~odyssey_data.pipeline.export`.

    Subclass it, or pass a callable taking a :class:`ProgressUpdate` (see
    :func:`make_sink`). ``update`` gets one call per recording; ``advance`` the raw result.
    """

    done: int = 0
    total: int = 0
    started: float = 0.0

    def start(self, total: int) -> None:
        """``total`` recordings are about to be processed."""
        self.done, self.total = 0, total
        self.started = time.perf_counter()

    def advance(self, result: RecordingResult) -> None:
        """One recording is done (exported, failed or skipped)."""
        self.done += 1
        elapsed = time.perf_counter() - self.started
        left = max(0, self.total - self.done)
        eta = elapsed / self.done * left if self.done and elapsed > 0 else None
        self.update(
            ProgressUpdate(
                done=self.done,
                total=self.total,
                stream_id=result.stream_id,
                status=result.status,
                reason=result.reason,
                frames=result.frame_count,
                bytes=result.video.bytes if result.video else 0,
                seconds=result.stats.total_s,
                elapsed_s=elapsed,
                eta_s=eta,
            )
        )

    def update(self, update: ProgressUpdate) -> None:
        """One recording is done, with the totals (override this, or ``advance``)."""

    def phase(self, name: str) -> None:
        """The driver entered phase ``name`` (``committing``, ``writing a shard``…)."""

    def finish(self, report: ExportReport) -> None:
        """The export is committed."""


class CallbackSink(ProgressSink):
    """A sink that hands every :class:`ProgressUpdate` to ``callback``."""

    def __init__(self, callback: Callable[[ProgressUpdate], Any]) -> None:
        super().__init__()
        self.callback = callback

    def update(self, update: ProgressUpdate) -> None:
        """Call the callback."""
        self.callback(update)


def make_sink(progress: ProgressSink | Callable[[ProgressUpdate], Any] | None) -> ProgressSink:
    """The sink for ``export(progress=...)``: a sink as it is, a callable wrapped, or a
    silent one."""
    if progress is None:
        return ProgressSink()
    if isinstance(progress, ProgressSink):
        return progress
    if callable(progress):
        return CallbackSink(progress)
    raise TypeError(f"progress must be a ProgressSink or a callable, not {progress!r}")
