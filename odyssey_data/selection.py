"""Selecting recordings: what an export processes, skips up front, or has already.

The first stage of the export: lists the API's recordings (or simulation jobs' output
streams), applies the options' filters and limit, and sorts each into to do, skipped
(with the reason: still active, job not completed, not listed…) or already exported
(in the manifest). Reads the API; writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from odyssey_data.api import OdysseyClient
from odyssey_data.errors import ApiResponseError, AuthError, NotFoundError
from odyssey_data.manifest import Manifest
from odyssey_data.models import RecordingInfo, SimulationJob
from odyssey_data.task import RecordingResult, RecordingStats

if TYPE_CHECKING:
    from odyssey_data.options import ExportConfig

__all__ = ["RESERVED_KEYS", "select_recordings"]

log = logging.getLogger(__name__)


def select_recordings(
    client: OdysseyClient, config: ExportConfig, manifest: Manifest
) -> tuple[list[RecordingInfo], list[RecordingResult], int]:
    """Recordings to process, recordings skipped up front, and how many were done before."""
    jobs: tuple[list[RecordingInfo], list[RecordingResult], int] = ([], [], 0)
    if config.source != "streams":
        jobs = _select_jobs(client, config, manifest)
        if config.source == "simulations":
            return jobs
    done = manifest.exported()
    todo: list[RecordingInfo] = []
    skipped: list[RecordingResult] = []
    already = 0
    if config.stream_ids:
        wanted = dict.fromkeys(config.stream_ids)
        found: dict[str, RecordingInfo] = {}
        for info in client.list_recordings():
            if info.stream_id in wanted:
                found[info.stream_id] = info
                if len(found) == len(wanted):
                    break
        for sid in wanted:
            if sid not in found:
                reason = (
                    f"recording {sid!r}: the API does not list it; check the id "
                    "('odyssey-data list' shows them)"
                )
                skipped.append(RecordingResult(sid, "failed", reason))
        infos: Iterable[RecordingInfo] = [
            found[sid] for sid in wanted if sid in found and config.wants(found[sid])
        ]
    elif config.has_filters():
        # The limit counts the recordings that pass the filters, not the ones listed.
        infos = _limited(filter(config.wants, client.list_recordings()), config.limit)
    else:
        infos = _limited(client.list_recordings(), config.limit)
    for info in infos:
        if info.stream_id in done:
            already += 1
        elif info.problem is not None:
            skipped.append(RecordingResult(info.stream_id, "failed", info.problem))
        elif info.is_active:
            skipped.append(
                RecordingResult(
                    info.stream_id,
                    "skipped",
                    "the stream is still active (no end time); a later run exports it",
                    stats=RecordingStats(not_ready=1),
                )
            )
        else:
            todo.append(info)
    todo, refused = _distinct(todo + jobs[0])
    return todo, skipped + jobs[1] + refused, already + jobs[2]


#: Prefixes of manifest keys that are not stream ids (``job:<job_id>``), and the one
#: under which a stream id that starts with either is recorded (then as failed).
RESERVED_KEYS = ("job:", "stream:")


def _distinct(todo: list[RecordingInfo]) -> tuple[list[RecordingInfo], list[RecordingResult]]:
    """The recordings to process, each stream id once and none shaped like another key.

    Two entries with one stream id (a stream and a simulation output, two jobs naming
    the same output) would write one video file: the second fails instead. A stream id
    shaped like a job key (``job:…``) would share the job's manifest key: it fails,
    recorded under ``stream:<id>``.
    """
    seen: dict[str, RecordingInfo] = {}
    refused: list[RecordingResult] = []
    for info in todo:
        sid = info.stream_id
        if sid.startswith(RESERVED_KEYS):
            reason = (
                f"recording {sid!r}: a stream id starting with {sid.split(':')[0]!r}: has the "
                "form of the manifest's job keys; it cannot be exported safely"
            )
            refused.append(RecordingResult(f"stream:{sid}", "failed", reason))
        elif sid in seen:
            first = seen[sid]
            reason = (
                f"recording {sid!r}: listed twice ("
                f"{'job ' + repr(first.job_id) if first.job_id else 'a stream'} and "
                f"{'job ' + repr(info.job_id) if info.job_id else 'a stream'}); the first is "
                "exported, this one is not (one file name, one manifest key per id)"
            )
            log.warning("%s", reason)
            refused.append(RecordingResult(sid, "failed", reason))
        else:
            seen[sid] = info
    return list(seen.values()), refused


def _limited(infos: Iterable[RecordingInfo], limit: int | None) -> Iterator[RecordingInfo]:
    """``infos`` up to ``limit`` recordings that can be exported: still-active streams
    pass through (to be reported as not ready) without counting."""
    counted = 0
    for info in infos:
        if limit is not None and counted >= limit:
            return
        yield info
        if not info.is_active:
            counted += 1


#: Job statuses on the way to completed: not ready yet, not failures.
_JOB_WAITING = ("pending", "dispatched", "processing")


def _job_skipped(key: str, job: SimulationJob) -> RecordingResult:
    stats = RecordingStats(not_ready=1 if job.status in _JOB_WAITING else 0)
    return RecordingResult(key, "skipped", _job_skip_reason(job), stats=stats)


def _job_skip_reason(job: SimulationJob) -> str:
    if job.status == "failed":
        return f"job failed: {job.error_message or 'the API gives no error message'}"
    if job.status == "cancelled":
        return "job was cancelled"
    return f"job is {job.status}; re-run the export once it has completed"


def _select_jobs(
    client: OdysseyClient, config: ExportConfig, manifest: Manifest
) -> tuple[list[RecordingInfo], list[RecordingResult], int]:
    """The output streams of completed simulation jobs, and the jobs skipped.

    A job not completed is recorded under ``job:<job_id>`` as skipped with the reason
    (failed with the reason when ``--job-id`` names a job the API does not know); the
    key is dropped once the job's outputs are selected.
    """
    done = manifest.exported()
    todo: list[RecordingInfo] = []
    skipped: list[RecordingResult] = []
    already = 0
    if config.job_ids:
        job_ids: Iterable[str] = dict.fromkeys(config.job_ids)
    else:
        listed = client.list_simulation_jobs(status=config.job_status, limit=config.limit)
        job_ids = []
        for job in listed:
            if job.status == "completed":
                job_ids.append(job.job_id)
            else:
                skipped.append(_job_skipped(f"job:{job.job_id}", job))
    for job_id in job_ids:
        key = f"job:{job_id}"
        try:
            detail = client.get_simulation_job(job_id)
        except NotFoundError:
            reason = f"simulation job {job_id!r}: the API does not know it (HTTP 404); check the id"
            skipped.append(RecordingResult(key, "failed", reason))
            continue
        except (ApiResponseError, AuthError) as exc:
            # One job's bad answer (or one job refused) fails that job, not the export.
            skipped.append(RecordingResult(key, "failed", str(exc)))
            continue
        if detail.job.status != "completed":
            skipped.append(_job_skipped(key, detail.job))
            continue
        manifest.recordings.pop(key, None)  # skipped before, completed since
        if not detail.streams:
            skipped.append(RecordingResult(key, "skipped", "job completed without output streams"))
        for output in detail.streams:
            info = RecordingInfo(
                stream_id=output.stream_id,
                started_at=detail.started_at,
                ended_at=detail.job.completed_at,
                duration_seconds=output.recording.duration_seconds,
                source="simulation",
                job_id=job_id,
                script_index=output.script_index,
            )
            if info.stream_id in done:
                already += 1
            elif not config.has_filters() or config.wants(info):
                todo.append(info)
    return todo, skipped, already
