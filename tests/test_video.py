"""Frame timing from demuxing equals what a decoder presents; frames load by pts."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from odyssey_data import video
from odyssey_data.errors import DecodeError
from odyssey_data.video import encode_video, iter_decoded, probe_frames, read_frames
from odyssey_data.video import timing as video_timing


def make_frames(n: int, start_pts: int, jitter: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    pts = start_pts
    for i in range(n):
        img = np.zeros((96, 160, 3), np.uint8)
        img[:, :] = (i * 7 % 255, 40, 200 - i % 200)
        img[10:30, (i * 3) % 140 : (i * 3) % 140 + 20] = 255
        yield img, pts
        pts += int(3000 * (rng.uniform(0.6, 1.5) if jitter else 1.0))


@pytest.fixture(scope="module")
def vfr_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "vfr.mp4"
    encode_video(path, make_frames(90, 45_000, jitter=True), width=160, height=96, bframes=2)
    return path


def decoded_pts(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [f.pts for f in container.decode(video=0)]


@pytest.mark.parametrize("mode", ["auto", "demux", "decode"])
def test_probe_matches_decoder(vfr_video: Path, mode: str) -> None:
    timing = probe_frames(vfr_video, mode=mode)  # type: ignore[arg-type]
    assert timing.pts.tolist() == decoded_pts(vfr_video)
    assert timing.first_pts > 0  # the file starts at a non-zero pts
    assert timing.frame_count == 90
    ts = timing.timestamps_s()
    assert ts[0] == 0.0
    assert len(set(np.round(np.diff(ts), 6))) > 5  # variable frame timing survived
    assert timing.is_keyframe[0]
    tb = timing.time_base
    assert ts[10] == pytest.approx(float((timing.pts[10] - timing.first_pts) * tb))


def test_bframes_make_decode_order_differ(vfr_video: Path) -> None:
    with av.open(str(vfr_video)) as container:
        packet_pts = [p.pts for p in container.demux(video=0) if p.pts is not None]
    assert packet_pts != sorted(packet_pts)  # B-frames present: the test is meaningful
    assert probe_frames(vfr_video).method == "demux"


def test_a_plain_start_is_trusted_without_decoding(
    vfr_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first packet is a key frame shown first: no frame is decoded to check it.
    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded a frame for a stream that starts plainly")

    monkeypatch.setattr(video_timing, "_first_decoded_pts", no_decoding)
    timing = probe_frames(vfr_video)
    assert timing.method == "demux"
    assert timing.pts.tolist() == decoded_pts(vfr_video)


def test_the_probe_reads_the_size_again_when_probing_did_not_tell(
    vfr_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Probing opens the file without decoding a frame; a codec whose size only a decoded
    # header tells would report 0x0 there, and the probe then asks a normal open.
    real_open = video_timing.open_video
    packets_only_opens = []

    def open_without_size(source: object, what: str, *, packets_only: bool = False) -> object:
        container = real_open(source, what, packets_only=packets_only)  # type: ignore[arg-type]
        if packets_only:
            packets_only_opens.append(source)
            container.streams.video[0].codec_context.width = 0
        return container

    monkeypatch.setattr(video_timing, "open_video", open_without_size)
    timing = probe_frames(vfr_video)
    assert packets_only_opens == [vfr_video]
    assert (timing.width, timing.height) == (160, 96)
    assert timing.pts.tolist() == decoded_pts(vfr_video)


def cut_after_key_frame(src: Path, dst: Path, drop: int) -> None:
    """Remux ``src`` without its first ``drop`` packets in decode order (a cut stream)."""
    with av.open(str(src)) as source, av.open(str(dst), "w", format="mp4") as target:
        stream = source.streams.video[0]
        out = target.add_stream_from_template(stream)
        for index, packet in enumerate(source.demux(stream)):
            if packet.dts is None or index < drop:
                continue
            packet.stream = out
            target.mux(packet)


def test_a_stream_cut_after_its_key_frame_is_decoded(vfr_video: Path, tmp_path: Path) -> None:
    # Starts with P- and B-frames whose reference is gone: the decoder drops them until
    # the next key frame, so the demuxed timing would list frames nobody sees.
    cut = tmp_path / "cut.mp4"
    cut_after_key_frame(vfr_video, cut, drop=1)
    with av.open(str(cut)) as container:
        first = next(p for p in container.demux(video=0) if p.size)
        assert not first.is_keyframe  # the test is meaningful
    presented = decoded_pts(cut)
    assert len(presented) < probe_frames(cut, mode="demux").frame_count
    timing = probe_frames(cut)
    assert timing.method == "decode"
    assert timing.pts.tolist() == presented


def test_probe_accepts_file_objects(vfr_video: Path) -> None:
    timing = probe_frames(io.BytesIO(vfr_video.read_bytes()))
    assert timing.pts.tolist() == decoded_pts(vfr_video)


def test_read_frames_returns_the_decoded_pictures_in_request_order(vfr_video: Path) -> None:
    reference = dict(iter_decoded(vfr_video))
    timing = probe_frames(vfr_video)
    wanted = [int(timing.pts[i]) for i in (70, 3, 45, 46, 89)]
    images = read_frames(vfr_video, wanted)
    for pts, img in zip(wanted, images, strict=True):
        assert np.array_equal(img, reference[pts])


def test_read_frames_resizes(vfr_video: Path) -> None:
    timing = probe_frames(vfr_video)
    (img,) = read_frames(vfr_video, [int(timing.pts[5])], size=(80, 48))
    assert img.shape == (48, 80, 3)
    assert img.dtype == np.uint8


def test_read_frames_rejects_a_pts_not_presented(vfr_video: Path) -> None:
    timing = probe_frames(vfr_video)
    with pytest.raises(DecodeError, match="pts"):
        read_frames(vfr_video, [int(timing.pts[5]) + 1])


def test_not_a_video(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video at all" * 100)
    with pytest.raises(DecodeError, match="rec-x"):
        probe_frames(bad, what="rec-x")


def test_empty_file(tmp_path: Path) -> None:
    bad = tmp_path / "empty.mp4"
    bad.write_bytes(b"")
    with pytest.raises(DecodeError):
        probe_frames(bad)


def test_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "audio.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 16000
        frame.pts = 0
        frame.time_base = Fraction(1, 16000)
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with pytest.raises(DecodeError, match="no video stream"):
        probe_frames(path)


def test_resample_video_repeats_a_frame_at_the_source_size(vfr_video: Path, tmp_path: Path) -> None:
    # At the source's own size the reformatter returns the decoded frame itself; giving it
    # the output's pts must not lose track of which source frame it is.
    pts = probe_frames(vfr_video).pts
    wanted = np.repeat(pts[:10], 2)  # every source frame shown twice
    out = tmp_path / "cfr.mp4"
    video.resample_video(vfr_video, out, wanted, fps=30, size=(160, 96))
    shown = [p for p, _ in iter_decoded(out)]
    assert len(shown) == 20
    assert len(set(np.diff(shown).tolist())) == 1  # a constant rate


def test_resample_video_places_key_frames_by_its_gop_alone(tmp_path: Path) -> None:
    # A decoded frame carries its picture type (I at the source's key frames), which x264
    # obeys unless it is cleared: the output then had key frames at the source's positions
    # as well as every `gop` frames. Smooth content: no scene cut adds key frames.
    def smooth():
        for i in range(90):
            img = np.zeros((96, 160, 3), np.uint8)
            img[:, :] = (100 + i // 3, 80, 120)
            img[40:56, 20 + i : 36 + i] = 220
            yield img, 3000 * i

    source = tmp_path / "gop7.mp4"
    encode_video(source, smooth(), width=160, height=96, gop=7, bframes=2)
    timing = probe_frames(source)
    assert np.flatnonzero(timing.is_keyframe).tolist() == list(range(0, 90, 7))
    out = tmp_path / "cfr.mp4"
    video.resample_video(source, out, timing.pts, fps=30, size=(160, 96), gop=25)
    assert np.flatnonzero(probe_frames(out).is_keyframe).tolist() == [0, 25, 50, 75]
