"""What a demo server offers: recordings and simulation jobs, made from a seed.

:func:`make_demo_catalog` makes a deterministic :class:`DemoCatalog`: finished and
still-active recordings (:func:`make_demo_recording`: a scene, one to three
interactions, landscape or portrait, the three events-log shapes) and the simulation
jobs of :func:`make_demo_jobs` (:class:`DemoSimulationJob`): completed ones whose output
streams are rendered from the job's script while their events logs record each
interaction late by known offsets (:data:`SIM_LOG_LAGS_MS`), and pending, processing and
failed ones without outputs. Job outputs are served by ``/simulation-jobs/{job_id}``
and ``/recordings/{stream_id}`` but are never listed by ``/stream-recordings``.
"""

from __future__ import annotations

import random
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from odyssey_data.demo.synth.recording import LANDSCAPE_SIZE, PORTRAIT_SIZE, DemoRecording

#: The most recent start time of a default catalog. Fixed, so a seed gives the same
#: catalog on every run: ids, times, events logs and decoded frames (not always the same
#: MP4 bytes: encodes in different processes under load have differed, so compare
#: decoded frames).
DEMO_EPOCH = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)

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
