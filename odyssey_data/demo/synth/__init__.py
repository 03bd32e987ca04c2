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

The package: ``recording`` (:class:`DemoRecording`, :class:`DemoDefects`), ``render``
(the pictures and the MP4), ``eventlog`` (the events log's three shapes), ``catalog``
(catalogs, recordings and simulation jobs made from a seed).
"""

from odyssey_data.demo.synth.catalog import (
    DEMO_EPOCH,
    SIM_LOG_LAGS_MS,
    DemoCatalog,
    DemoSimulationJob,
    make_demo_catalog,
    make_demo_jobs,
    make_demo_recording,
)
from odyssey_data.demo.synth.recording import (
    LANDSCAPE_SIZE,
    PORTRAIT_SIZE,
    DemoDefects,
    DemoRecording,
)
from odyssey_data.demo.synth.render import (
    TIME_BASE,
    paint_frame_mark,
    prompt_colour,
    read_frame_mark,
)

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
