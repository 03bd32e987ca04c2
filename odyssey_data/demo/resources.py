"""The REST resources the demo server answers with, as JSON-ready dicts. Pure.

The shapes of ``../shared/odyssey-api.md``: a recording in the list, its detail with
presigned URLs, a simulation job in the list and its detail. URLs come from ``sign``
(``sign(stream_id, blob_name) -> url``), so this module holds no secret.
"""

from __future__ import annotations

from collections.abc import Callable

from odyssey_data.demo.synth import DemoRecording, DemoSimulationJob
from odyssey_data.demo.synth.eventlog import iso_z

#: ``sign(stream_id, blob_name)``: a presigned URL of one of a recording's blobs.
Signer = Callable[[str, str], str]


def recording_info(rec: DemoRecording) -> dict[str, object]:
    """A recording as ``GET /stream-recordings`` lists it."""
    return {
        "stream_id": rec.stream_id,
        "width": rec.width,
        "height": rec.height,
        "started_at": iso_z(rec.started_at),
        "ended_at": None if rec.ended_at is None else iso_z(rec.ended_at),
        "duration_seconds": rec.duration_seconds,
    }


def job_info(job: DemoSimulationJob) -> dict[str, object]:
    """A simulation job as ``GET /simulation-jobs`` lists it."""
    return {
        "job_id": job.job_id,
        "status": job.status,
        "priority": job.priority,
        "created_at": iso_z(job.created_at),
        "completed_at": iso_z(job.created_at) if job.status == "completed" else None,
        "error_message": job.error_message,
    }


def artifacts(rec: DemoRecording, sign: Signer) -> dict[str, object]:
    """The ``Recording`` fields of a simulation output: all four blobs signed."""
    sid = rec.stream_id
    return {
        "stream_id": sid,
        "video_url": sign(sid, "video.mp4"),
        "events_url": sign(sid, "events.jsonl"),
        "thumbnail_url": sign(sid, "thumbnail.jpg"),
        "preview_url": sign(sid, "preview.mp4"),
        "frame_count": rec.frame_count,
        "duration_seconds": rec.duration_seconds,
    }


def job_detail(job: DemoSimulationJob, sign: Signer) -> dict[str, object]:
    """``GET /simulation-jobs/{job_id}``: the job, its outputs once completed, its script."""
    detail = job_info(job)
    detail.update(
        {
            "dispatched_at": None if job.status == "pending" else iso_z(job.created_at),
            "started_at": None if job.status == "pending" else iso_z(job.created_at),
            "assigned_region": None if job.status == "pending" else "demo-local-1",
            "retry_count": 0,
            "estimated_wait_minutes": 3.0 if job.status == "pending" else None,
            "streams": [
                {**artifacts(out, sign), "script_index": out.script_index}
                for out in (job.outputs if job.status == "completed" else ())
            ],
        }
    )
    if job.script_in_detail:
        detail["script"] = job.script_json()
    return detail


def recording_detail(rec: DemoRecording, sign: Signer) -> dict[str, object]:
    """``GET /recordings/{stream_id}``: the URLs (none while active) and counts."""
    if rec.job_id is not None:  # a simulation output: served here too
        return artifacts(rec, sign)
    sid = rec.stream_id
    video = None if rec.is_active else sign(sid, "video.mp4")
    events = None if rec.is_active else sign(sid, "events.jsonl")
    preview = None if rec.is_active else sign(sid, "video.mp4")
    return {
        "stream_id": sid,
        "video_url": video,
        "events_url": events,
        "thumbnail_url": None,
        "preview_url": preview,
        "frame_count": rec.frame_count,
        "duration_seconds": rec.duration_seconds,
    }
