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


def two_video_streams(
    fmt: str = "mp4", default: str = "second", counts: tuple[int, int] = (5, 9)
) -> bytes:
    """Two H.264 video streams: ``counts`` red frames, then blue ones (64x64, 10 fps).

    ``default``: which is marked the default track, ``"second"``, ``"first"`` or
    ``"both"`` (Matroska keeps several marked; MP4 marks one per kind).
    """
    disposition = av.stream.Disposition
    sink = io.BytesIO()
    with av.open(sink, "w", format=fmt) as out:
        streams = []
        for _ in range(2):
            stream = out.add_stream("libx264", rate=10)
            stream.width = stream.height = 64
            stream.pix_fmt = "yuv420p"
            streams.append(stream)
        marks = {"first": (1, 0), "second": (0, 1), "both": (1, 1)}[default]
        for stream, mark in zip(streams, marks, strict=True):
            stream.disposition = disposition.default if mark else disposition(0)
        for channel, (stream, count) in enumerate(zip(streams, counts, strict=True)):
            for i in range(count):
                rgb = np.zeros((64, 64, 3), np.uint8)
                rgb[..., 0 if channel == 0 else 2] = 220
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = i
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
    return sink.getvalue()


def _pes_timestamp(field: bytes | bytearray) -> int:
    return (
        ((field[0] >> 1) & 7) << 30
        | field[1] << 22
        | (field[2] >> 1) << 15
        | field[3] << 7
        | field[4] >> 1
    )


def _pes_field(value: int, prefix: int) -> bytes:
    return bytes(
        [
            (prefix << 4) | (((value >> 30) & 7) << 1) | 1,
            (value >> 22) & 0xFF,
            (((value >> 15) & 0x7F) << 1) | 1,
            (value >> 7) & 0xFF,
            ((value & 0x7F) << 1) | 1,
        ]
    )


@cache
def dts_backwards() -> bytes:
    """An MPEG-TS H.264 stream (no B-frames) whose 7th frame is stamped between the 2nd
    and the 3rd: its decode timestamp goes backwards, its pts is unique, so sorting by
    pts would move the frame silently."""
    sink = io.BytesIO()
    with av.open(sink, "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=10, options={"bf": "0"})
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for i in range(12):
            frame = av.VideoFrame.from_ndarray(
                np.full((64, 64, 3), i * 20, np.uint8), format="rgb24"
            )
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = bytearray(sink.getvalue())
    headers = []  # (offset of the PTS field, PTS_DTS_flags) of each video PES
    for start in range(0, len(data), 188):
        packet = data[start : start + 188]
        if packet[0] != 0x47 or not packet[1] & 0x40:  # sync byte; payload unit start
            continue
        at = 4 + (1 + packet[4] if packet[3] & 0x20 else 0)  # past an adaptation field
        if packet[at : at + 3] == b"\x00\x00\x01" and 0xE0 <= packet[at + 3] <= 0xEF:
            headers.append((start + at + 9, packet[at + 7] >> 6))
    (second, _), (third, _), (seventh, flags) = headers[1], headers[2], headers[6]
    moved = (
        _pes_timestamp(data[second : second + 5]) + _pes_timestamp(data[third : third + 5])
    ) // 2
    data[seventh : seventh + 5] = _pes_field(moved, 0b0010 if flags == 2 else 0b0011)
    if flags == 3:  # a DTS field follows the PTS
        data[seventh + 5 : seventh + 10] = _pes_field(moved, 0b0001)
    return bytes(data)


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
        "video-two-streams-both-default": (
            two_video_streams("matroska", "both"),
            "2 video streams and 2 of them marked as the default track",
        ),
        "video-dts-backwards": (dts_backwards(), "timestamps go backwards in decode order"),
    }


def die_on_three(item: int) -> tuple[str, int, str]:
    """A unit of work whose process dies (as in a crash in native code) on item 3."""
    if item == 3:
        import os

        os._exit(70)
    return ("ok", item, "")
