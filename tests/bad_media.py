"""Bad videos and events logs for the tests (built once from one short demo recording)."""

from __future__ import annotations

import io
import json
import tempfile
from functools import cache
from pathlib import Path

import av
import numpy as np

from odyssey_data.demo.synth import DEMO_EPOCH, make_demo_recording
from odyssey_data.video import encode_video

#: A one-second recording (flat events log, pts from 0) that the bad inputs derive from.
BASE = make_demo_recording(4242, started_at=DEMO_EPOCH, seconds=1.0, start_pts=0, events_shape=1)


def lines(*objects: object) -> bytes:
    """JSONL: one object per line."""
    return b"".join(json.dumps(obj).encode() + b"\n" for obj in objects)


@cache
def mp4(frames: int | None = None, faststart: bool = True) -> bytes:
    """BASE's video re-encoded, complete, with its first ``frames`` frames only."""
    source = list(BASE.iter_frames())[:frames]
    # The fast-start pass re-reads the output file: go through a real file.
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "v.mp4"
        encode_video(
            target, iter(source), width=BASE.width, height=BASE.height, faststart=faststart
        )
        return target.read_bytes()


@cache
def audio_only() -> bytes:
    """An MP4 holding one AAC audio stream and no video stream."""
    sink = io.BytesIO()
    with av.open(sink, "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=8000)
        stream.layout = "mono"
        for i in range(4):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate = 8000
            frame.pts = i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return sink.getvalue()


@cache
def video_without_frames() -> bytes:
    """An AVI whose one video stream holds no frame at all."""
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "empty.avi"
        with av.open(str(target), "w", format="avi") as out:
            stream = out.add_stream("mpeg4", rate=30)
            stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
            out.start_encoding()
        return target.read_bytes()


def bad_videos() -> dict[str, tuple[bytes, str]]:
    """Name → (video bytes, the telling part of the reason the recording fails with)."""
    good = BASE.video_bytes()
    assert good is not None
    index_at_end = mp4(faststart=False)
    return {
        "video-empty": (b"", "the video file is empty (0 bytes)"),
        "video-not-a-video": (
            b"<html><body>503 Service Unavailable</body></html>\n",
            "not a readable video file",
        ),
        "video-truncated-index-at-end": (
            index_at_end[: len(index_at_end) * 6 // 10],
            "not a readable video file",
        ),
        "video-truncated-fast-start": (good[: len(good) * 8 // 10], "the video file is truncated"),
        "video-shorter-than-announced": (
            mp4(frames=10),
            "the video holds 10 frames but the API announces",
        ),
        "video-no-video-stream": (audio_only(), "the file has no video stream"),
        "video-zero-frames": (video_without_frames(), "the video stream holds no frames"),
    }
