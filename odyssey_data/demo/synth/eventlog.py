"""The events log of a demo recording, in one of the API contract's three shapes.

1. flat: ``{"type": ..., "timestamp_ms": ...}`` with an ``interact_acknowledged``
   after each ``interact``;
2. wall clock: ``{"event": ..., "timestamp": ISO, "data": {...}}``;
3. simulation script: ``{"timestamp_ms": ..., "start"|"interact"|"end": {...}}``.

Interactions are recorded late by the recording's ``log_lag_ms`` (simulation outputs).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from odyssey_data.demo.synth.recording import DemoRecording

#: How long after an ``interact`` the flat shape logs its acknowledgement.
_ACK_DELAY_MS = 150


def iso_z(moment: datetime) -> str:
    """Format an aware datetime as ISO 8601 UTC with milliseconds and a ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def events_log(rec: DemoRecording) -> list[dict[str, object]]:
    """``rec``'s events log as a list of JSON objects (empty while active)."""
    if rec.is_active:
        return []
    start_prompt = rec.prompts[0][1]
    interacts = rec.prompts[1:]
    end_ms = rec.duration_ms
    lines: list[dict[str, object]] = []
    lags = rec.log_lag_ms + (0,) * len(interacts)
    interacts = tuple(
        (time_ms + lag, prompt) for (time_ms, prompt), lag in zip(interacts, lags, strict=False)
    )
    if rec.events_shape == 1:
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
    elif rec.events_shape == 2:

        def at(ms: int) -> str:
            return iso_z(rec.started_at + timedelta(milliseconds=ms))

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
