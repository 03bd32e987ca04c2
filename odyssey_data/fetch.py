"""Fetch: a recording's video, events log and media, downloaded to a folder here.

The first step of the unit of work (:mod:`odyssey_data.work`), run by the worker or,
with the local executor, ahead of it by the download-ahead threads. Downloads stream to
files (byte count verified, SHA-256 hashed as the bytes arrive); an expired presigned
URL is replaced by asking the API again (:func:`artifacts`). Never raises for one
recording's bad answer: the :class:`~odyssey_data.task.Fetched` carries the failure.

A :class:`~odyssey_data.models.RecordingInfo` with a ``job_id`` is a simulation job's
output; :func:`artifacts` gets its presigned URLs (first and on every refresh of an
expired one) from ``GET /simulation-jobs/{job_id}``, with the job's script when the
API gives it; a stream's come from ``GET /recordings/{stream_id}``.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from typing import Any

from odyssey_data.api import DownloadStats, OdysseyClient, open_client, resolve_credentials
from odyssey_data.errors import NotFoundError, OdysseyDataError, RecordingError
from odyssey_data.growing import Growth, WatchedWriter
from odyssey_data.models import Recording, RecordingInfo, ScriptEntry
from odyssey_data.options import ClientOptions
from odyssey_data.progress import LIVE
from odyssey_data.storage.errors import storage_error
from odyssey_data.task import (
    STOPS_THE_RUN,
    Fetched,
    RecordingResult,
    RecordingStats,
    RecordingTask,
)

__all__ = [
    "artifacts",
    "client_for",
    "close_clients",
    "fetch",
    "fetching",
    "with_credentials",
]


def with_credentials(options: ClientOptions) -> ClientOptions:
    """``options`` with the API URL and key resolved (from ``ODYSSEY_API_URL`` and
    ``ODYSSEY_API_KEY`` when not given), as the driver hands them to workers that may run
    where that environment is not.

    Raises:
        ConfigError: no API key was given or found in the environment, or a bad URL.
    """
    api_url, api_key = resolve_credentials(options.api_url, options.api_key)
    return replace(options, api_url=api_url, api_key=api_key)


#: One pooled client per worker process and thread (see :func:`client_for`).
_CLIENTS: dict[tuple[int, ClientOptions], OdysseyClient] = {}


def close_clients() -> None:
    """Close the pooled clients this process made for the unit of work."""
    while _CLIENTS:
        _CLIENTS.popitem()[1].close()


def client_for(task: RecordingTask) -> OdysseyClient:
    """The pooled client of this worker process and thread for ``task.client``."""
    # One pooled client per worker process (per thread: the driver's download-ahead
    # threads count their retries apart) and client options: connections are reused
    # across tasks, and an export with other limits never gets a stale client.
    key = (threading.get_ident(), task.client)
    client = _CLIENTS.get(key)
    if client is None:
        client = _CLIENTS[key] = open_client(task.client)
    return client


def fetch(task: RecordingTask, folder: str, video_growth: Growth | None = None) -> Fetched:
    """Download a recording's video, events log (and media) into ``folder``.

    Never raises for a failed download or a recording the API no longer knows: the
    :class:`Fetched` then carries the failed (or skipped) result. With ``video_growth``
    the video's progress is reported there as it downloads (see :mod:`.growing`), and it
    is finished on every path, video downloaded or not.
    """
    info = task.info
    sid = info.stream_id
    what = f"recording {sid!r}"
    started = time.perf_counter()
    downloads: list[DownloadStats] = []
    client: OdysseyClient | None = None
    api_retries = 0
    fetched = Fetched(folder)
    try:
        client = client_for(task)
        api_retries = client.api_retries
        recording, script = artifacts(client, info)
        fetched.recording, fetched.script = recording, script
        if not recording.video_url:
            fetched.result = RecordingResult(
                sid,
                "skipped",
                "the API gives no video URL yet (still processing?); a later run exports it",
                stats=RecordingStats(not_ready=1),
            )
        else:
            api = client

            def get(url: str, name: str, kind: str, field_name: str) -> DownloadStats:
                got = DownloadStats()
                downloads.append(got)
                with open(os.path.join(folder, name), "w+b") as handle:
                    dest: Any = handle
                    if video_growth is not None and name == "video.mp4":
                        dest = WatchedWriter(handle, video_growth, lambda: got.size)
                        video_growth.started.set()
                    api.download(
                        url,
                        dest,
                        what=f"{what} {kind}",
                        refresh_url=lambda: getattr(artifacts(api, info)[0], field_name),
                        stats=got,
                    )
                if dest is not handle:
                    assert video_growth is not None
                    video_growth.finish()
                return got

            video = get(recording.video_url, "video.mp4", "video", "video_url")
            if video.bytes == 0:
                raise RecordingError(
                    f"{what}: the video file is empty (0 bytes); the recording may "
                    "still be processing, re-run the export later",
                    stream_id=sid,
                )
            fetched.video_sha256, fetched.video_bytes = video.sha256, video.bytes
            if recording.events_url:
                get(recording.events_url, "events.jsonl", "events log", "events_url")
                fetched.events_file = os.path.join(folder, "events.jsonl")
            if task.shape.with_thumbnails:
                for url, name, kind in (
                    (recording.thumbnail_url, "thumbnail.jpg", "thumbnail"),
                    (recording.preview_url, "preview.mp4", "preview"),
                ):
                    if url:
                        got = get(url, name, kind, f"{kind}_url")
                        fetched.media[name] = (os.path.join(folder, name), got.sha256)
    except NotFoundError:
        if info.job_id is not None:
            reason = (
                f"{what} of simulation job {info.job_id!r}: the API no longer knows it (HTTP "
                "404, or not among the job's output streams); re-run the export to try again"
            )
            fetched.result = RecordingResult(sid, "failed", reason)
        else:
            fetched.result = RecordingResult(
                sid,
                "failed",
                f"{what}: the API no longer knows this recording (HTTP 404); it was listed but "
                "may have been deleted since",
            )
    except STOPS_THE_RUN:
        raise  # the dataset's disk, not this recording: the run stops (see export)
    except OdysseyDataError as exc:
        fetched.result = RecordingResult(sid, "failed", str(exc))
    except OSError as exc:
        # Writing the download failed (a full disk): the dataset's disk, on a local one.
        name = os.path.basename(folder)
        error = storage_error(
            exc, action="write the download of", path=f"{name}/", url=task.store.url
        )
        if isinstance(error, STOPS_THE_RUN):
            raise error from exc
        fetched.result = RecordingResult(sid, "failed", str(error))
    if video_growth is not None:
        video_growth.finish(failed=fetched.result is not None)
    attempts = sum(d.attempts for d in downloads)
    api_retried = client.api_retries - api_retries if client is not None else 0
    fetched.stats = RecordingStats(
        fetched=1,
        attempts=attempts,
        retries=attempts - len(downloads) + api_retried,
        url_refreshes=sum(d.refreshes for d in downloads),
    )
    fetched.download_s = round(time.perf_counter() - started, 4)
    return fetched


def fetching(task: RecordingTask, folder: str, video_growth: Growth | None = None) -> Fetched:
    """:func:`fetch`, counted as ``downloading`` by the live progress."""
    with LIVE.phase("downloading"):
        return fetch(task, folder, video_growth) if video_growth else fetch(task, folder)


def artifacts(
    client: OdysseyClient, info: RecordingInfo
) -> tuple[Recording, tuple[ScriptEntry, ...] | None]:
    """Fresh artifact URLs of a recording, and its job's script when there is one.

    A stream's come from ``GET /recordings/{stream_id}``; a simulation output's from
    ``GET /simulation-jobs/{job_id}`` (with the script, when the API returns it).

    Raises:
        NotFoundError: the API does not know the recording, the job, or the job has no
            such output stream.
    """
    if info.job_id is None:
        return client.get_recording(info.stream_id), None
    detail = client.get_simulation_job(info.job_id)
    output = detail.stream(info.stream_id)
    if output is None:
        raise NotFoundError(
            f"simulation job {info.job_id!r} has no output stream {info.stream_id!r}"
        )
    return output.recording, detail.script
