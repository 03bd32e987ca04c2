"""Synthetic Odyssey recordings: small H.264 videos and events logs, made on demand.

Each :class:`DemoRecording` is a pure description (size, length, prompts, seed). Its
video and events log are generated the first time they are asked for, deterministically
from the seed, and cached. The videos look like what the exporter has to cope with in
real recordings:

* the background colour is derived from the prompt in force, so the picture visibly
  changes at each interaction, and a bright box moves with time so consecutive frames
  differ;
* frame timing is variable (each interval is the nominal one times a seeded
  ``uniform(0.7, 1.4)``), some recordings start at a non-zero pts, and B-frames are on
  (decode order differs from presentation order);
* the events log comes in one of the three shapes of the API contract
  (flat ms, wall-clock ISO times with a payload, simulation-script style).

A catalog also holds simulation jobs (:class:`DemoSimulationJob`): completed ones whose
output streams are rendered from the job's script while their events logs record each
interaction late by known offsets (:data:`SIM_LOG_LAGS_MS`), and pending, processing and
failed ones without outputs. Job outputs are served by ``/simulation-jobs/{job_id}`` and
``/recordings/{stream_id}`` but are never listed by ``/stream-recordings``.

Frames are produced by a generator, so long or full-size recordings (1280x704) are
encoded without holding their raw frames in memory.
"""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt

from odyssey_data.video import encode_jpeg, encode_video

__all__ = [
    "DEMO_EPOCH",
    "LANDSCAPE_SIZE",
    "PORTRAIT_SIZE",
    "SIM_LOG_LAGS_MS",
    "TIME_BASE",
    "DemoCatalog",
    "DemoDefects",
    "DemoRecording",
    "DemoSimulationJob",
    "make_demo_catalog",
    "make_demo_jobs",
    "make_demo_recording",
    "paint_frame_mark",
    "prompt_colour",
    "read_frame_mark",
]

#: The pts time base of every demo video (the usual 90 kHz of MPEG streams).
TIME_BASE = Fraction(1, 90000)
#: Odyssey-2 Pro's landscape size (1280x704) scaled down by 4.
LANDSCAPE_SIZE = (320, 176)
#: Odyssey-2 Pro's portrait size (704x1280) scaled down by 4.
PORTRAIT_SIZE = (176, 320)
#: The most recent start time of a default catalog. Fixed, so a seed gives the same
#: catalog on every run (ids, times, bytes).
DEMO_EPOCH = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)

_ACK_DELAY_MS = 150

#: Picture content of demo videos: flat colours, or grain that defeats motion search.
CONTENTS = ("flat", "noise")

_SCENES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "A cat sleeping on a sunny windowsill",
        ("The cat wakes up and stretches", "A bird lands outside", "The sun sets"),
    ),
    (
        "A lighthouse on a cliff during a storm",
        ("Lightning strikes the sea", "The storm calms down", "A ship appears on the horizon"),
    ),
    (
        "A busy night market in the rain",
        ("A lantern falls and rolls away", "The rain stops", "Fireworks light the sky"),
    ),
    (
        "A red fox walking through a snowy forest",
        ("The fox jumps into the snow", "An owl flies overhead", "It starts snowing heavily"),
    ),
    (
        "An astronaut floating inside a space station",
        ("The astronaut turns a valve", "Earth rises in the window", "The lights flicker"),
    ),
    (
        "A sailboat drifting on a calm lake at dawn",
        ("The wind picks up", "A heron takes off", "Fog rolls over the water"),
    ),
)


def _iso_z(moment: datetime) -> str:
    """Format an aware datetime as ISO 8601 UTC with milliseconds and a ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def prompt_colour(prompt: str) -> tuple[int, int, int]:
    """Return the background colour (RGB, each 40..215) that a prompt is drawn with.

    Derived from a hash, so it is stable across runs and differs between prompts; kept
    away from black and white so the moving box stays visible.
    """
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    r, g, b = (40 + digest[i] * 175 // 255 for i in range(3))
    return r, g, b


class _Grain:
    """Seeded noise over a frame, different every frame, cheap to make.

    One noise tile a little larger than the frame is drawn once; each frame adds a window
    of it at a random offset (values 0..39 on colours of 40..215: no overflow). Windows
    jump by more than x264's motion search range, so every frame costs bits like real
    footage, yet making one costs a slice and an add, not a new random draw.
    """

    _PAD = 96

    def __init__(self, width: int, height: int, seed: int) -> None:
        self._rng = np.random.default_rng([seed, 2])
        pad = self._PAD
        self._tile = self._rng.integers(0, 40, size=(height + pad, width + pad, 3), dtype=np.uint8)
        self._width, self._height = width, height

    def add_to(self, frame: npt.NDArray[np.uint8]) -> None:
        dy, dx = (int(v) for v in self._rng.integers(0, self._PAD, size=2))
        frame += self._tile[dy : dy + self._height, dx : dx + self._width]


#: Bits of a frame mark: frame indices 0 .. 2**MARK_BITS - 1.
MARK_BITS = 12


def paint_frame_mark(frame: npt.NDArray[np.uint8], index: int) -> None:
    """Paint ``index`` into the top band of ``frame`` as :data:`MARK_BITS` black/white cells.

    The band is an eighth of the height, each cell a twelfth of the width, most
    significant bit first: coarse enough to survive H.264 and downscaling to a quarter.
    """
    if not 0 <= index < 1 << MARK_BITS:
        raise ValueError(f"frame index {index} does not fit in {MARK_BITS} bits")
    height, width = frame.shape[:2]
    band = max(2, height // 8)
    for bit in range(MARK_BITS):
        left, right = bit * width // MARK_BITS, (bit + 1) * width // MARK_BITS
        on = (index >> (MARK_BITS - 1 - bit)) & 1
        frame[:band, left:right] = 235 if on else 16


def read_frame_mark(frame: npt.NDArray[np.uint8]) -> int:
    """The index :func:`paint_frame_mark` painted into ``frame`` (any size it was scaled to)."""
    height, width = frame.shape[:2]
    band = max(2, height // 8)
    value = 0
    for bit in range(MARK_BITS):
        left, right = bit * width // MARK_BITS, (bit + 1) * width // MARK_BITS
        inset = max(0, (right - left) // 4)
        cell = frame[band // 4 : max(band // 4 + 1, band * 3 // 4), left + inset : right - inset]
        value = value << 1 | int(float(cell.mean()) > 125.0)
    return value


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

    def _prompt_at(self, ms: float) -> str:
        current = self.prompts[0][1]
        for time_ms, prompt in self.prompts:
            if time_ms <= ms:
                current = prompt
            else:
                break
        return current

    def iter_frames(self) -> Iterator[tuple[npt.NDArray[np.uint8], int]]:
        """Yield ``(rgb_frame, pts)`` one at a time (never all frames in memory)."""
        rng = random.Random(self.seed)
        box_w = max(2, self.width // 6)
        box_h = max(2, self.height // 5)
        speed_x = self.width * rng.uniform(0.35, 0.6)  # pixels per second
        speed_y = self.height * rng.uniform(0.15, 0.3)
        phase_x = rng.uniform(0, self.width)
        phase_y = rng.uniform(0, self.height)
        colours: dict[str, tuple[int, int, int]] = {}
        grain = _Grain(self.width, self.height, self.seed) if self.content == "noise" else None
        defects = self.defects or DemoDefects()
        delay_ms = defects.response_delay_ms
        frozen_from, frozen_count = defects.frozen or (-1, 0)
        held: npt.NDArray[np.uint8] | None = None
        for index, pts in enumerate(self.frame_pts()):
            if held is not None and frozen_from < index <= frozen_from + frozen_count:
                yield held.copy(), int(pts)
                continue
            t = float(pts - self.start_pts) / 90000.0
            # A late response: the picture shows each interaction delay_ms after its time
            # (the start prompt, at 0, is on screen from the first frame either way).
            prompt = self._prompt_at(t * 1000.0 - delay_ms)
            colour = colours.setdefault(prompt, prompt_colour(prompt))
            frame = np.empty((self.height, self.width, 3), dtype=np.uint8)
            frame[:] = colour
            if grain is not None:
                grain.add_to(frame)
            # The box bounces across the frame (a triangle wave in x and y).
            span_x = max(1, self.width - box_w)
            span_y = max(1, self.height - box_h)
            x = int(abs(((phase_x + speed_x * t) % (2 * span_x)) - span_x))
            y = int(abs(((phase_y + speed_y * t) % (2 * span_y)) - span_y))
            frame[y : y + box_h, x : x + box_w] = (250, 250, 240)
            # A thin progress bar along the bottom edge grows with time.
            bar = int(self.width * min(1.0, t / self.seconds))
            frame[self.height - 3 :, :bar] = (20, 20, 20)
            if self.frame_marks:
                paint_frame_mark(frame, index)
            if index == frozen_from:
                held = frame.copy()
            yield frame, int(pts)

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
                cached = self._encode()
                self._cache["video"] = cached
            return cached

    def _encode(self) -> bytes:
        # x264 into a temporary file: the MP4 "faststart" pass (index moved to the front,
        # as in streamed recordings) re-reads the output, which a BytesIO cannot offer.
        with tempfile.TemporaryDirectory(prefix="odyssey-demo-") as tmp:
            path = Path(tmp) / "video.mp4"
            encode_video(
                path,
                self.iter_frames(),
                width=self.width,
                height=self.height,
                time_base=TIME_BASE,
                fps=max(1, round(self.fps)),
                gop=max(1, round(self.fps)),
                bframes=2,
                faststart=True,
                bitrate=self.bitrate,
            )
            return path.read_bytes()

    def events(self) -> list[dict[str, object]]:
        """The events log as a list of JSON objects (empty while active)."""
        if self.is_active:
            return []
        start_prompt = self.prompts[0][1]
        interacts = self.prompts[1:]
        end_ms = self.duration_ms
        lines: list[dict[str, object]] = []
        lags = self.log_lag_ms + (0,) * len(interacts)
        interacts = tuple(
            (time_ms + lag, prompt) for (time_ms, prompt), lag in zip(interacts, lags, strict=False)
        )
        if self.events_shape == 1:
            lines.append({"type": "stream_started", "timestamp_ms": 0, "prompt": start_prompt})
            for time_ms, prompt in interacts:
                lines.append({"type": "interact", "timestamp_ms": time_ms, "prompt": prompt})
                lines.append(
                    {
                        "type": "interact_acknowledged",
                        "timestamp_ms": time_ms + _ACK_DELAY_MS,
                        "prompt": prompt,
                    }
                )
            lines.append({"type": "stream_ended", "timestamp_ms": end_ms})
        elif self.events_shape == 2:

            def at(ms: int) -> str:
                return _iso_z(self.started_at + timedelta(milliseconds=ms))

            lines.append(
                {"event": "stream_started", "timestamp": at(0), "data": {"prompt": start_prompt}}
            )
            for time_ms, prompt in interacts:
                lines.append(
                    {"event": "interact", "timestamp": at(time_ms), "data": {"prompt": prompt}}
                )
            lines.append({"event": "stream_ended", "timestamp": at(end_ms), "data": {}})
        else:
            lines.append({"timestamp_ms": 0, "start": {"prompt": start_prompt}})
            for time_ms, prompt in interacts:
                lines.append({"timestamp_ms": time_ms, "interact": {"prompt": prompt}})
            lines.append({"timestamp_ms": end_ms, "end": {}})
        return lines

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


def make_demo_recording(
    seed: int,
    *,
    started_at: datetime,
    width: int = LANDSCAPE_SIZE[0],
    height: int = LANDSCAPE_SIZE[1],
    seconds: float = 3.5,
    fps: float = 30.0,
    events_shape: int = 1,
    active: bool = False,
    start_pts: int | None = None,
    bitrate: int | None = None,
    content: str = "flat",
    frame_marks: bool = False,
) -> DemoRecording:
    """Make one recording whose id, prompts and interaction times derive from ``seed``.

    Args:
        seed: drives the id, the scene, the interaction times and the frame jitter.
        started_at: when the stream started (aware).
        width: frame width (even).
        height: frame height (even).
        seconds: video length.
        fps: nominal frame rate.
        events_shape: 1, 2 or 3 (the events log shape).
        active: still streaming: no ``ended_at``, no video, no events log.
        start_pts: pts of the first frame; ``None`` picks 0 or a non-zero value from the seed.
        bitrate: H.264 target bits per second, or ``None``.
        content: ``"flat"`` or ``"noise"`` (see :class:`DemoRecording`).
        frame_marks: paint each frame's index into it (see :class:`DemoRecording`).

    Returns:
        The recording (nothing is encoded yet).
    """
    rng = random.Random(seed)
    stream_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    scene, actions = _SCENES[rng.randrange(len(_SCENES))]
    # 1 to 3 interactions at "nice" ms times (multiples of 10) inside the video, at least
    # 400 ms apart, none in the first 400 ms or the last 300 ms.
    total_ms = round(seconds * 1000)
    low = min(400, total_ms // 4)
    slots = list(range(low, max(low + 1, total_ms - 300), 10))
    wanted = rng.randint(1, 3)
    times: list[int] = []
    for candidate in rng.sample(slots, k=len(slots)):
        if all(abs(candidate - t) >= 400 for t in times):
            times.append(candidate)
        if len(times) == wanted:
            break
    times.sort()
    picked = rng.sample(actions, k=len(times))
    prompts = ((0, scene), *zip(times, picked, strict=True))
    if start_pts is None:
        start_pts = rng.choice((0, rng.randrange(1, 400) * 900))
    started = started_at.astimezone(UTC)
    ended = None if active else started + timedelta(milliseconds=total_ms)
    return DemoRecording(
        stream_id=stream_id,
        width=width,
        height=height,
        started_at=started,
        ended_at=ended,
        fps=fps,
        seconds=seconds,
        prompts=tuple(prompts),
        events_shape=events_shape,
        seed=seed,
        start_pts=start_pts,
        bitrate=bitrate,
        content=content,
        frame_marks=frame_marks,
    )


@dataclass
class DemoCatalog:
    """The recordings a demo server offers, most recent first.

    Thread-safe: recordings can be added while a server is answering requests.

    Attributes:
        recordings: the recordings, most recent first. Read it through
            :meth:`snapshot` while a server is running.
    """

    recordings: list[DemoRecording] = field(default_factory=list)
    jobs: list[DemoSimulationJob] = field(default_factory=list)
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        ids = [rec.stream_id for rec in self.recordings]
        ids += [out.stream_id for job in self.jobs for out in job.outputs]
        if len(set(ids)) != len(ids):
            raise ValueError("two recordings share a stream_id")
        self.recordings.sort(key=lambda rec: rec.started_at, reverse=True)

    def __len__(self) -> int:
        with self._lock:
            return len(self.recordings)

    def snapshot(self) -> list[DemoRecording]:
        """A copy of the list, most recent first (safe while others add)."""
        with self._lock:
            return list(self.recordings)

    def get(self, stream_id: str) -> DemoRecording | None:
        """The recording with this id, or ``None``."""
        with self._lock:
            for rec in self.recordings:
                if rec.stream_id == stream_id:
                    return rec
            for job in self.jobs:
                for out in job.outputs:
                    if out.stream_id == stream_id:
                        return out
        return None

    def jobs_snapshot(self) -> list[DemoSimulationJob]:
        """A copy of the simulation jobs, most recent first."""
        with self._lock:
            return sorted(self.jobs, key=lambda job: job.created_at, reverse=True)

    def job(self, job_id: str) -> DemoSimulationJob | None:
        """The simulation job with this id, or ``None``."""
        with self._lock:
            return next((job for job in self.jobs if job.job_id == job_id), None)

    def add(self, recording: DemoRecording) -> None:
        """Add a recording, keeping the most-recent-first order.

        Raises:
            ValueError: a recording with the same ``stream_id`` is already there.
        """
        with self._lock:
            if any(rec.stream_id == recording.stream_id for rec in self.recordings):
                raise ValueError(f"recording {recording.stream_id!r} is already in the catalog")
            self.recordings.append(recording)
            self.recordings.sort(key=lambda rec: rec.started_at, reverse=True)


def make_demo_catalog(
    n: int = 6,
    *,
    seed: int = 0,
    width: int | None = None,
    height: int | None = None,
    seconds: float = 3.5,
    fps: float = 30.0,
    active: int = 1,
    bitrate: int | None = None,
    content: str = "flat",
    now: datetime = DEMO_EPOCH,
    simulations: bool = True,
    frame_marks: bool = False,
) -> DemoCatalog:
    """Make a deterministic catalog of ``n`` finished and ``active`` still-active recordings.

    Recordings alternate landscape (320x176) and portrait (176x320) unless ``width`` and
    ``height`` are given, rotate through the three events-log shapes, and start at
    irregular intervals before ``now`` (the active ones most recently).

    Args:
        n: number of finished recordings.
        seed: makes the catalog (ids, prompts, times, pixels) reproducible.
        width: frame width for every recording (give with ``height``).
        height: frame height for every recording (give with ``width``).
        seconds: video length of every recording.
        fps: nominal frame rate.
        active: number of still-active recordings (no video yet).
        bitrate: H.264 target bits per second, or ``None``.
        content: ``"flat"`` or ``"noise"`` (see :class:`DemoRecording`).
        now: the start time of the most recent recording.
        simulations: add the demo simulation jobs (see :func:`make_demo_jobs`); they
            never appear in the recordings list.
        frame_marks: paint each frame's index into every video (tests that read back
            which source frame a converted picture shows); off by default.

    Returns:
        The catalog, most recent first.

    Raises:
        ValueError: only one of ``width``/``height`` given, a count outside 0..10000,
            or a length outside (0, 3600] seconds.
    """
    if (width is None) != (height is None):
        raise ValueError("give both width and height, or neither")
    if not (0 <= n <= 10_000 and 0 <= active <= 10_000):
        raise ValueError("n and active must be within 0..10000")
    if not 0 < seconds <= 3600:
        raise ValueError(f"seconds must be within (0, 3600], not {seconds}")
    rng = random.Random(seed)
    recordings: list[DemoRecording] = []
    moment = now.astimezone(UTC)
    for index in range(active + n):
        is_active = index < active
        size = (width, height) if width is not None and height is not None else None
        if size is None:
            size = LANDSCAPE_SIZE if index % 2 == 0 else PORTRAIT_SIZE
        recordings.append(
            make_demo_recording(
                rng.getrandbits(63),
                started_at=moment,
                width=size[0],
                height=size[1],
                seconds=seconds,
                fps=fps,
                events_shape=(index - active) % 3 + 1 if not is_active else 1,
                active=is_active,
                # Two in four recordings start at a non-zero pts (not tied to orientation).
                start_pts=0 if is_active or (index // 2) % 2 == 0 else 90 * (150 + 37 * index),
                bitrate=bitrate,
                content=content,
                frame_marks=frame_marks,
            )
        )
        # The next (older) recording started 20 to 90 minutes earlier, on a whole second.
        moment -= timedelta(seconds=rng.randrange(20 * 60, 90 * 60))
    jobs = (
        make_demo_jobs(seed=seed, seconds=seconds, fps=fps, now=now, frame_marks=frame_marks)
        if simulations
        else []
    )
    return DemoCatalog(recordings, jobs)


#: Per completed demo job (with a script) and output: the ms by which its events log
#: records each interaction after the script's time.
SIM_LOG_LAGS_MS: tuple[tuple[int, ...], ...] = ((120, 250), (90, 310), (40, 60))


@dataclass(frozen=True)
class DemoSimulationJob:
    """A simulation job of the demo server.

    Attributes:
        job_id: the job's id.
        status: ``pending``, ``dispatched``, ``processing``, ``completed``, ``failed`` or
            ``cancelled``.
        created_at: when it was submitted (aware).
        script: ``(time_ms, kind, prompt)`` entries: ``start`` at 0, interactions, ``end``
            at the video's length.
        outputs: the output streams (completed jobs only).
        script_in_detail: whether ``GET /simulation-jobs/{job_id}`` returns the script.
        error_message: why a failed job failed.
        priority: the job's priority level (text, as the API types it: ``"low"``,
            ``"normal"``, ``"high"``).
    """

    job_id: str
    status: str
    created_at: datetime
    script: tuple[tuple[int, str, str | None], ...]
    outputs: tuple[DemoRecording, ...] = ()
    script_in_detail: bool = True
    error_message: str | None = None
    priority: str = "normal"

    @property
    def is_active(self) -> bool:
        """True while the job may still produce outputs."""
        return self.status in ("pending", "dispatched", "processing")

    def script_json(self) -> list[dict[str, object]]:
        """The script as the API's ``script`` list."""
        entries: list[dict[str, object]] = []
        for time_ms, kind, prompt in self.script:
            payload: dict[str, object] = {} if prompt is None else {"prompt": prompt}
            entries.append({"timestamp_ms": time_ms, kind: payload})
        return entries


def make_demo_jobs(
    *,
    seed: int = 0,
    seconds: float = 3.5,
    fps: float = 30.0,
    now: datetime = DEMO_EPOCH,
    frame_marks: bool = False,
) -> list[DemoSimulationJob]:
    """The demo's simulation jobs, deterministic from ``seed``.

    Two completed jobs with a script in their detail (the first with two output streams,
    script_index 0 and 1), whose events logs (flat shape) record the interactions late by
    :data:`SIM_LOG_LAGS_MS`; one completed job without the script in its detail whose
    events log is the script (shape 3); one pending, one processing, one failed.
    """
    rng = random.Random(f"simulations-{seed}")
    total_ms = round(seconds * 1000)
    # Interactions at 30 % and 60 % of the video, on whole 10 ms.
    times = (round(total_ms * 0.3, -1), round(total_ms * 0.6, -1))
    jobs: list[DemoSimulationJob] = []
    moment = now.astimezone(UTC) - timedelta(minutes=5)
    plan: tuple[tuple[str, int, bool], ...] = (
        ("completed", 2, True),
        ("completed", 1, True),
        ("completed", 1, False),
        ("pending", 0, True),
        ("processing", 0, True),
        ("failed", 0, True),
    )
    lag_sets = iter(SIM_LOG_LAGS_MS)
    for number, (status, outputs, in_detail) in enumerate(plan):
        job_id = f"sim-{uuid.UUID(int=rng.getrandbits(128), version=4)}"
        scene, actions = _SCENES[rng.randrange(len(_SCENES))]
        picked = rng.sample(actions, k=2)
        script: tuple[tuple[int, str, str | None], ...] = (
            (0, "start", scene),
            (int(times[0]), "interact", picked[0]),
            (int(times[1]), "interact", picked[1]),
            (total_ms, "end", None),
        )
        made: list[DemoRecording] = []
        for index in range(outputs):
            lags = next(lag_sets, (40, 60)) if in_detail else ()
            started = moment + timedelta(seconds=10 * index)
            made.append(
                DemoRecording(
                    stream_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    width=LANDSCAPE_SIZE[0],
                    height=LANDSCAPE_SIZE[1],
                    started_at=started,
                    ended_at=started + timedelta(milliseconds=total_ms),
                    fps=fps,
                    seconds=seconds,
                    prompts=tuple((t, p) for t, k, p in script if k != "end" and p is not None),
                    events_shape=1 if in_detail else 3,
                    seed=rng.getrandbits(63),
                    log_lag_ms=lags,
                    job_id=job_id,
                    script_index=index,
                    frame_marks=frame_marks,
                )
            )
        jobs.append(
            DemoSimulationJob(
                job_id=job_id,
                status=status,
                created_at=moment,
                script=script,
                outputs=tuple(made),
                script_in_detail=in_detail,
                error_message="the renderer ran out of GPU memory" if status == "failed" else None,
                priority=("low", "normal", "high")[number % 3],
            )
        )
        moment -= timedelta(minutes=7)
    return jobs
