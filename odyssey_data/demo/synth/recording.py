"""A demo recording: a pure description (size, length, prompts, seed) and its files.

:class:`DemoRecording` makes its video (:mod:`.render`), thumbnail and events log
(:mod:`.eventlog`) the first time they are asked for, deterministically from its seed,
and caches them. :class:`DemoDefects` injects timing and picture defects of known size.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from odyssey_data.demo.synth.eventlog import events_log
from odyssey_data.demo.synth.render import encode_mp4, render_frames
from odyssey_data.video import encode_jpeg

#: Odyssey-2 Pro's landscape size (1280x704) scaled down by 4.
LANDSCAPE_SIZE = (320, 176)
#: Odyssey-2 Pro's portrait size (704x1280) scaled down by 4.
PORTRAIT_SIZE = (176, 320)
#: Picture content of demo videos: flat colours, or grain that defeats motion search.
CONTENTS = ("flat", "noise")


@dataclass(frozen=True)
class DemoDefects:
    """Timing and picture defects of known size, injected into one demo recording.

    Opt-in per recording (``DemoRecording(defects=...)``), so quality-control tests can
    assert exact values. Frame positions count the frames of the video as served.

    Attributes:
        dropped: ``(position, count)``: the ``count`` frames after the frame at
            ``position`` are missing, so one interval lasts ``count + 1`` nominal ones.
            Counted in the undamaged video's frames.
        frozen: ``(position, count)``: the ``count`` frames after the frame at
            ``position`` repeat its picture (moving box and progress bar stop too).
        response_delay_ms: the picture follows each interaction this many ms after the
            events log says it was issued (a late visual response).
        video_seconds: the video stops here, while the events log (its end event) and
            the API's ``duration_seconds`` still run to the recording's ``seconds``.
    """

    dropped: tuple[int, int] | None = None
    frozen: tuple[int, int] | None = None
    response_delay_ms: int = 0
    video_seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("dropped", "frozen"):
            value = getattr(self, name)
            if value is not None and (value[0] < 0 or value[1] < 1):
                raise ValueError(f"{name} must be (position >= 0, count >= 1), not {value}")
        if self.response_delay_ms < 0:
            raise ValueError("response_delay_ms must not be negative")
        if self.video_seconds is not None and not self.video_seconds > 0:
            raise ValueError("video_seconds must be positive")


@dataclass(frozen=True)
class DemoRecording:
    """One synthetic recording.

    The video and events log are generated lazily (thread-safe, once) and cached.

    Attributes:
        stream_id: the recording's id (uuid-like).
        width: frame width in pixels (even).
        height: frame height in pixels (even).
        started_at: when the stream started (aware, UTC).
        ended_at: when it ended; ``None`` while still active (then there is no video and
            no events log).
        fps: nominal frame rate; actual intervals vary around ``1/fps``.
        seconds: video length in seconds (also the time of the end event).
        prompts: ``(time_ms, prompt)`` pairs, the first at 0 being the start prompt.
        events_shape: 1, 2 or 3: the shape of the events log (see the API contract).
        seed: drives the frame jitter and the moving box.
        start_pts: pts of the first frame (in 1/90000 s, a multiple of 90: MP4 keeps the
            start offset in whole milliseconds); real recordings may start above 0.
        bitrate: H.264 target bits per second, or ``None`` for x264's quality default.
        content: ``"flat"`` (flat colours: tiny, fast-to-encode videos) or ``"noise"``
            (seeded grain that changes every frame over the same picture, so x264 at a
            target bitrate of a few Mb/s spends it as on real footage).
        video_override: bytes served as the video instead of the generated one (tests of
            bad input: empty, not a video, truncated…); the API still announces the
            generated video's ``frame_count``.
        events_override: bytes served as the events log instead of the generated one.
        log_lag_ms: per interaction, ms by which the events log records it late (the
            video changes at the ``prompts`` times; simulation outputs).
        job_id: the simulation job whose output this is (``None`` for a stream).
        script_index: the output's ``script_index`` in its job.
        frame_marks: paint each frame's index into the frame (see :func:`paint_frame_mark`)
            so a test can tell which source frame a converted or resized picture shows.
        vfr: vary each frame interval (``uniform(0.7, 1.4)`` of the nominal one);
            ``False`` gives a constant rate, every interval exactly ``90000 / fps`` ticks
            rounded (tests that assert exact timing).
        defects: injected defects of known size (see :class:`DemoDefects`).
    """

    stream_id: str
    width: int
    height: int
    started_at: datetime
    ended_at: datetime | None
    fps: float
    seconds: float
    prompts: tuple[tuple[int, str], ...]
    events_shape: int
    seed: int
    start_pts: int = 0
    bitrate: int | None = None
    content: str = "flat"
    video_override: bytes | None = field(default=None, repr=False)
    events_override: bytes | None = field(default=None, repr=False)
    log_lag_ms: tuple[int, ...] = ()
    job_id: str | None = None
    script_index: int | None = None
    frame_marks: bool = False
    vfr: bool = True
    defects: DemoDefects | None = None
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )
    _cache: dict[str, bytes] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.width % 2 or self.height % 2:
            raise ValueError(
                f"width and height must be positive and even, not {self.width}x{self.height}"
            )
        if self.fps <= 0 or self.seconds <= 0:
            raise ValueError("fps and seconds must be positive")
        if self.events_shape not in (1, 2, 3):
            raise ValueError(f"events_shape must be 1, 2 or 3, not {self.events_shape}")
        if not self.prompts or self.prompts[0][0] != 0:
            raise ValueError("prompts must start with the start prompt at time 0")
        if self.start_pts < 0 or self.start_pts % 90:
            # MP4 stores the start offset as an edit list in the movie time scale (ms):
            # any other value would come back rounded to the millisecond.
            raise ValueError("start_pts must be a non-negative multiple of 90 (whole ms)")
        if self.started_at.tzinfo is None:
            raise ValueError("started_at must be timezone-aware")
        if self.content not in CONTENTS:
            raise ValueError(f"content must be one of {', '.join(CONTENTS)}, not {self.content!r}")

    @property
    def is_active(self) -> bool:
        """True while the stream has not ended (no video yet)."""
        return self.ended_at is None

    @property
    def duration_ms(self) -> int:
        """Length of the video in whole milliseconds (the time of the end event)."""
        return round(self.seconds * 1000)

    @property
    def duration_seconds(self) -> float | None:
        """Length of the video in seconds, or ``None`` while active."""
        return None if self.is_active else self.duration_ms / 1000

    def frame_pts(self) -> npt.NDArray[np.int64]:
        """Presentation timestamps of every frame (1/90000 s), strictly increasing.

        Cheap (no encoding): each interval is ``90000/fps × uniform(0.7, 1.4)``, seeded
        (``90000/fps`` with ``vfr=False``), starting at :attr:`start_pts` and ending
        before :attr:`seconds` (or the defects' ``video_seconds``), less the defects'
        dropped frames.
        """
        rng = np.random.default_rng([self.seed, 1])
        nominal = 90000.0 / self.fps
        defects = self.defects or DemoDefects()
        end = (defects.video_seconds or self.seconds) * 90000.0
        # Enough intervals for the shortest average (0.7 × nominal), then cut.
        count = int(end / (0.7 * nominal)) + 2
        factors = rng.uniform(0.7, 1.4, size=count) if self.vfr else np.ones(count)
        steps = np.maximum(1, np.rint(nominal * factors)).astype(np.int64)
        rel = np.concatenate(([0], np.cumsum(steps)[:-1]))
        rel = rel[rel < end]
        if defects.dropped is not None:
            position, dropped = defects.dropped
            rel = np.delete(rel, np.arange(position + 1, min(rel.shape[0], position + 1 + dropped)))
        return rel + np.int64(self.start_pts)

    @property
    def frame_count(self) -> int | None:
        """Number of frames in the video, or ``None`` while active."""
        return None if self.is_active else int(self.frame_pts().shape[0])

    def iter_frames(self) -> Iterator[tuple[npt.NDArray[np.uint8], int]]:
        """Yield ``(rgb_frame, pts)`` one at a time (never all frames in memory)."""
        return render_frames(self)

    def video_bytes(self) -> bytes | None:
        """The MP4 (H.264, B-frames, VFR, fast start), or ``None`` while active.

        Generated on first use and cached; safe to call from several threads.
        """
        if self.is_active:
            return None
        if self.video_override is not None:
            return self.video_override
        with self._lock:
            cached = self._cache.get("video")
            if cached is None:
                cached = encode_mp4(self)
                self._cache["video"] = cached
            return cached

    def events(self) -> list[dict[str, object]]:
        """The events log as a list of JSON objects (empty while active)."""
        return events_log(self)

    def thumbnail_bytes(self) -> bytes | None:
        """A JPEG of the first frame (the API's thumbnail), or ``None`` while active."""
        if self.is_active:
            return None
        with self._lock:
            cached = self._cache.get("thumbnail")
            if cached is None:
                rgb, _ = next(self.iter_frames())
                cached = encode_jpeg(rgb)
                self._cache["thumbnail"] = cached
            return cached

    def events_bytes(self) -> bytes | None:
        """The events log as JSONL (UTF-8, one object per line), or ``None`` while active."""
        if self.is_active:
            return None
        if self.events_override is not None:
            return self.events_override
        with self._lock:
            cached = self._cache.get("events")
            if cached is None:
                text = "".join(
                    json.dumps(line, ensure_ascii=False) + "\n" for line in self.events()
                )
                cached = text.encode("utf-8")
                self._cache["events"] = cached
            return cached
