"""Benchmark: LeRobot conversion frames/s beside a bare PyAV decode+encode loop.

The demo recordings (cached full-size textured videos, see ``_common.py``) are exported
in reference mode once, then, in this process:

- anchor: a bare PyAV loop over the same videos: decode every frame, scale it to the
  output size (yuv420p), encode it with the same x264 settings the conversion uses
  (veryfast, crf 23, no B-frames, key frame every 2 frames) into an MP4;
- ``Dataset.to_lerobot(..., fps, size)``: the whole conversion (frames and segments
  read, rows resampled, videos re-encoded, image statistics, Parquet and JSON written).

Both count output frames per second of wall time. Each runs twice, alternating; the best
of each is reported (the machine is shared). Issue 16's target: ratio >= 0.8.

Run: ``python benchmarks/convert.py [--videos 8] [--seconds 10] [--fps 30] [--size 640x352]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import _common
import av
from av.video.reformatter import Interpolation, VideoReformatter

from odyssey_data import open_dataset
from odyssey_data.pipeline import export


def bare_loop(paths: list[Path], folder: Path, size: tuple[int, int], fps: int) -> int:
    """Decode, scale and encode every frame of every video; returns frames encoded."""
    frames = 0
    base = Fraction(1, fps)
    for number, path in enumerate(paths):
        with (
            av.open(str(path)) as source,
            av.open(str(folder / f"{number}.mp4"), "w", format="mp4") as out,
        ):
            stream = source.streams.video[0]
            stream.thread_type = "AUTO"
            encoder = out.add_stream("libx264", rate=fps)
            encoder.width, encoder.height = size
            encoder.pix_fmt = "yuv420p"
            encoder.time_base = base
            encoder.thread_type = "FRAME"
            encoder.options = {"preset": "veryfast", "bf": "0", "g": "2", "crf": "23"}
            scaler = VideoReformatter()  # one scaling context per video, as the conversion
            for index, frame in enumerate(source.decode(stream)):
                scaled = scaler.reformat(
                    frame,
                    width=size[0],
                    height=size[1],
                    format="yuv420p",
                    interpolation=Interpolation.AREA,
                )
                scaled.pts = index
                scaled.time_base = base
                out.mux(encoder.encode(scaled))
                frames += 1
            out.mux(encoder.encode())
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--size", default="640x352", help="output WxH (default 640x352)")
    args = parser.parse_args()
    width, height = (int(x) for x in args.size.split("x"))

    catalog = _common.full_size_catalog(args.videos, seconds=args.seconds)
    with tempfile.TemporaryDirectory() as tmp, _common.serve(catalog, page_cap=100) as server:
        root = Path(tmp) / "dataset"
        export(output=str(root), api_url=server.base_url, api_key=server.api_key, workers=2)
        ds = open_dataset(str(root))
        paths = [root / p for p in ds.recordings.collect()["video_path"]]
        source_frames = ds.frames.select("stream_id").collect().height
        print(
            f"{args.videos} recordings of {args.seconds:.0f} s at {_common.FULL[0]}x"
            f"{_common.FULL[1]} ({source_frames} source frames) -> {args.fps} fps {args.size}"
        )
        best_bare = best_convert = 0.0
        rows = 0
        for attempt in range(2):
            scratch = Path(tmp) / f"bare-{attempt}"
            scratch.mkdir()
            started = time.perf_counter()
            encoded = bare_loop(paths, scratch, (width, height), args.fps)
            best_bare = max(best_bare, encoded / (time.perf_counter() - started))
            shutil.rmtree(scratch)
            out = Path(tmp) / f"lerobot-{attempt}"
            started = time.perf_counter()
            report = ds.to_lerobot(str(out), fps=args.fps, size=(width, height))
            best_convert = max(best_convert, report.frames / (time.perf_counter() - started))
            rows = report.frames
            shutil.rmtree(out)
    print()
    print(f"  {'measure':54} {'value':>10} {'unit':9} {'ratio':>8}")
    _common.row("bare PyAV decode+scale+encode loop (anchor)", best_bare, "frames/s", 1.0)
    _common.row(
        f"convert --to lerobot ({rows} rows)",
        best_convert,
        "frames/s",
        best_convert / best_bare,
        "target >= 0.80",
    )


if __name__ == "__main__":
    main()
