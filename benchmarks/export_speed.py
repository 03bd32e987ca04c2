"""Issue 7, targets 1 and 2: end-to-end CLI exports beside bare PyAV loops, same videos.

The demo server (127.0.0.1, in this process) serves N one-minute 1280x704 recordings at
~4 Mb/s (textured frames, cached on disk after the first run). In the same run:

1. anchor: every frame of the N videos decoded by PyAV in two processes (one decoder
   thread each: one per core); measured: ``odyssey-data export OUT`` (reference mode).
   Target: export frames/s >= 20x the anchor.
2. anchor: decode + resize to 256x144 (one VideoReformatter, AREA) + simplejpeg (4:2:0)
   in a bare PyAV loop, two processes; measured: ``odyssey-data export OUT --frames jpeg
   --resize 256x144``. Target: >= 0.8x the anchor.

Run: ``python benchmarks/export_speed.py [--videos 8] [--seconds 60] [--only 1|2]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common


def _decode(paths: list[str], jpeg: bool) -> int:
    import av
    import simplejpeg
    from av.video.reformatter import Interpolation, VideoReformatter

    frames = 0
    for path in paths:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            reformatter = VideoReformatter()
            for frame in container.decode(stream):
                frames += 1
                if jpeg:
                    small = reformatter.reformat(
                        frame,
                        width=256,
                        height=144,
                        format="rgb24",
                        interpolation=Interpolation.AREA,
                    )
                    simplejpeg.encode_jpeg(
                        small.to_ndarray(), quality=90, colorspace="RGB", colorsubsampling="420"
                    )
    return frames


def bare_pyav(paths: list[Path], jpeg: bool) -> float:
    """Frames/s of two processes each decoding half of the videos."""
    halves = [[str(p) for p in paths[0::2]], [str(p) for p in paths[1::2]]]
    with ProcessPoolExecutor(2) as pool:
        pool.submit(int, 0).result()  # workers up before the clock starts
        started = time.perf_counter()
        frames = sum(pool.map(_decode, halves, [jpeg, jpeg]))
        return frames / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--only", type=int, choices=(1, 2))
    args = parser.parse_args(argv)
    catalog = common.full_size_catalog(args.videos, seconds=args.seconds)
    frames = sum(rec.frame_count or 0 for rec in catalog.recordings)
    mb = sum(len(rec.video_bytes() or b"") for rec in catalog.recordings) / 1e6
    print(
        f"{args.videos} recordings x {args.seconds:.0f} s at 1280x704: {frames:,} frames, "
        f"{mb:.0f} MB ({mb * 8 / args.videos / args.seconds:.1f} Mb/s)"
    )
    with (
        tempfile.TemporaryDirectory(prefix="odyssey-bench-") as tmp,
        common.serve(catalog, page_cap=100) as server,
    ):
        paths = common.video_files(catalog, Path(tmp) / "videos")
        base = ["export", "--workers", "2", "--overwrite", "-q"]
        if args.only in (None, 1):
            anchor = bare_pyav(paths, jpeg=False)
            wall, _ = common.run_cli([*base, f"{tmp}/ref"], server)
            fps = frames / wall
            print("target 1: reference mode at demux speed")
            common.row("anchor: PyAV full decode, 2 processes", anchor, "frames/s", 1.0)
            common.row(
                "odyssey-data export (reference)", fps, "frames/s", fps / anchor, ">= 20 (target)"
            )
        if args.only in (None, 2):
            anchor = bare_pyav(paths, jpeg=True)
            wall, _ = common.run_cli(
                [*base, "--frames", "jpeg", "--resize", "256x144", f"{tmp}/jpeg"], server
            )
            fps = frames / wall
            print("target 2: materialised mode at decode speed")
            common.row("anchor: PyAV decode+resize+simplejpeg, 2 procs", anchor, "frames/s", 1.0)
            common.row(
                "odyssey-data export --frames jpeg --resize 256x144",
                fps,
                "frames/s",
                fps / anchor,
                ">= 0.8 (target)",
            )


if __name__ == "__main__":
    main()
