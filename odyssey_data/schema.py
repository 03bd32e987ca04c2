"""Arrow schemas of the exported dataset, format version 1.

The column names are the contract of ``dataset-format.md``: add columns freely, never
rename or drop one without bumping :data:`FORMAT_VERSION`. Pure: no I/O here.
"""

from __future__ import annotations

import pyarrow as pa

# Declared with the manifest (which names the format and lists the tables, and needs no
# Arrow); re-exported here so the schemas and the names they go with stay together.
from odyssey_data.manifest import FORMAT as FORMAT
from odyssey_data.manifest import FORMAT_VERSION as FORMAT_VERSION
from odyssey_data.manifest import TABLES as TABLES

FRAMES_SCHEMA = pa.schema(
    [
        pa.field("stream_id", pa.string(), nullable=False),
        pa.field("frame_index", pa.int32(), nullable=False),
        pa.field("pts", pa.int64(), nullable=False),
        pa.field("timestamp_s", pa.float64(), nullable=False),
        pa.field("is_keyframe", pa.bool_(), nullable=False),
        pa.field("video_path", pa.string(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("prompt", pa.string()),
        pa.field("prompt_index", pa.int32()),
        pa.field("prompt_time_s", pa.float64()),
    ]
)

#: The optional column of materialised frames (encoded JPEG/PNG/WebP bytes).
IMAGE_FIELD = pa.field("image", pa.binary())

_TS = pa.timestamp("us", tz="UTC")

RECORDINGS_SCHEMA = pa.schema(
    [
        pa.field("stream_id", pa.string(), nullable=False),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("started_at", _TS),
        pa.field("ended_at", _TS),
        pa.field("duration_seconds", pa.float64()),
        pa.field("frame_count", pa.int64(), nullable=False),
        pa.field("video_path", pa.string(), nullable=False),
        pa.field("video_bytes", pa.int64(), nullable=False),
        pa.field("video_sha256", pa.string(), nullable=False),
        pa.field("codec", pa.string()),
        pa.field("time_base", pa.string()),
        pa.field("events_count", pa.int64(), nullable=False),
        pa.field("bad_event_lines", pa.int64(), nullable=False),
        pa.field("prompts_count", pa.int64(), nullable=False),
        pa.field("first_pts", pa.int64()),
        pa.field("video_duration_s", pa.float64()),
        pa.field("source", pa.string(), nullable=False),
        pa.field("exported_at", _TS, nullable=False),
        # Simulation outputs: the job and the output's script_index (null for streams).
        pa.field("job_id", pa.string()),
        pa.field("script_index", pa.int32()),
        # --with-thumbnails: the stored thumbnail JPEG and preview MP4 (else null).
        pa.field("thumbnail_path", pa.string()),
        pa.field("preview_path", pa.string()),
        # Which odyssey-data made the row, and the options that shaped the recording's
        # rows (compact JSON of odyssey_data.runs.DATA_OPTIONS).
        pa.field("exporter_version", pa.string()),
        pa.field("export_options", pa.string()),
    ]
)

EVENTS_SCHEMA = pa.schema(
    [
        pa.field("stream_id", pa.string(), nullable=False),
        pa.field("event_index", pa.int32(), nullable=False),
        pa.field("time_s", pa.float64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("prompt", pa.string()),
        pa.field("raw", pa.string(), nullable=False),
        # "log" (a line of the events log) or "script" (an entry of the job's script).
        pa.field("origin", pa.string()),
    ]
)

SEGMENTS_SCHEMA = pa.schema(
    [
        pa.field("stream_id", pa.string(), nullable=False),
        pa.field("prompt_index", pa.int32(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("start_s", pa.float64(), nullable=False),
        pa.field("end_s", pa.float64(), nullable=False),
        pa.field("first_frame", pa.int32()),
        pa.field("last_frame", pa.int32()),
        pa.field("frame_count", pa.int32(), nullable=False),
        # Logged prompt time minus the script's, matched by prompt order (simulations
        # with both a script and an events log; else null).
        pa.field("prompt_lag_s", pa.float64()),
        # Seconds from an interaction to the first frame whose picture changed against
        # the frame before it (see odyssey_data.qc); null for the start prompt, when QC
        # is off, or when no change came within the window.
        pa.field("response_latency_s", pa.float64()),
    ]
)

#: Quality control, one row per exported recording (see :mod:`odyssey_data.qc`).
QC_SCHEMA = pa.schema(
    [
        pa.field("stream_id", pa.string(), nullable=False),
        pa.field("qc_mode", pa.string(), nullable=False),
        pa.field("frames", pa.int64(), nullable=False),
        pa.field("span_s", pa.float64(), nullable=False),
        pa.field("interval_p50_s", pa.float64()),
        pa.field("interval_p99_s", pa.float64()),
        pa.field("interval_max_s", pa.float64()),
        pa.field("gaps", pa.int64(), nullable=False),
        pa.field("frames_before_first_prompt", pa.int64(), nullable=False),
        pa.field("api_duration_delta_s", pa.float64()),
        pa.field("events_span_delta_s", pa.float64()),
        pa.field("prompts", pa.int64(), nullable=False),
        pa.field("prompts_per_minute", pa.float64()),
        pa.field("prompt_lag_max_s", pa.float64()),
        pa.field("response_latency_p50_s", pa.float64()),
        pa.field("response_latency_max_s", pa.float64()),
        pa.field("unresponsive_prompts", pa.int64()),
        pa.field("frozen_frames", pa.int64()),
        pa.field("longest_frozen_s", pa.float64()),
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "frames": FRAMES_SCHEMA,
    "recordings": RECORDINGS_SCHEMA,
    "events": EVENTS_SCHEMA,
    "segments": SEGMENTS_SCHEMA,
    "qc": QC_SCHEMA,
}


def frames_schema(with_image: bool) -> pa.Schema:
    """The frames schema, with the ``image`` column when frames are materialised."""
    return FRAMES_SCHEMA.append(IMAGE_FIELD) if with_image else FRAMES_SCHEMA
