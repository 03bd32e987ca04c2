"""Benchmark: random frame loading and materialised export, each beside its anchor.

1. ``Dataset.load_frames`` on a random batch of 256 frames over 16 videos, beside decoding
   the same 16 videos start to end with PyAV (thread_type AUTO) in the same process and
   keeping the same 256 frames as RGB (the naive way to get them). Both rates count the
   frames delivered (256 / seconds); the raw decode rate of every frame is printed too.
   Target (issue 5): at least 0.5x the sequential decode.
2. Materialised export (``--frames jpeg --resize 256x144``) beside a reference-mode export
   of the same recordings from the same demo server.

Run: ``python benchmarks/load_frames.py [--videos 16] [--seconds 10] [--size 1280x704]``
Prints figures and ratios; ratios hold on a noisy machine, absolute seconds do not.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import av

from odyssey_data import open_dataset
from odyssey_data.demo import DemoServer, make_demo_catalog
from odyssey_data.pipeline import export


def sequential_decode(paths: list[Path], wanted: dict[Path, set[int]]) -> tuple[int, int, float]:
    """Decode every frame of every video; convert the wanted ones to RGB."""
    started = time.perf_counter()
    frames = kept = 0
    for path in paths:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                frames += 1
                if frame.pts in wanted[path]:
                    frame.to_ndarray(format="rgb24")
                    kept += 1
    return frames, kept, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", default="1280x704")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    width, height = (int(x) for x in args.size.split("x"))

    catalog = make_demo_catalog(
        args.videos, seed=5, width=width, height=height, seconds=args.seconds, active=0
    )
    started = time.perf_counter()
    for rec in catalog.recordings:
        rec.video_bytes()  # encode up front: not part of any measurement
    print(
        f"made {args.videos} videos of {args.seconds:.0f} s at {args.size} "
        f"in {time.perf_counter() - started:.1f} s"
    )

    with tempfile.TemporaryDirectory() as tmp, DemoServer(catalog, page_cap=100) as server:
        common = {"api_url": server.base_url, "api_key": server.api_key, "workers": args.workers}
        ref = export(output=f"{tmp}/reference", **common)
        mat = export(output=f"{tmp}/jpeg", frames="jpeg", resize=(256, 144), **common)
        ds = open_dataset(f"{tmp}/reference")
        frames = ds.frames.select("stream_id", "frame_index", "pts", "video_path").collect()
        rng = random.Random(0)
        picks = frames[rng.sample(range(frames.height), args.batch)]
        root = Path(tmp) / "reference"
        paths = [root / p for p in ds.recordings.collect()["video_path"]]
        wanted = {path: set() for path in paths}
        for pts, video_path in picks.select("pts", "video_path").iter_rows():
            wanted[root / video_path].add(pts)

        decoded, kept, decode_s = sequential_decode(paths, wanted)
        assert kept == args.batch
        started = time.perf_counter()
        images = ds.load_frames(picks)
        load_s = time.perf_counter() - started
        assert len(images) == args.batch

    seq_fps = decoded / decode_s
    load_fps = args.batch / load_s
    print()
    print(f"{'measure':48} {'frames/s':>10} {'ratio':>8}")
    print(f"{'sequential PyAV decode of the same videos':48} {seq_fps:10.0f} {1.0:8.2f}")
    print(
        f"{'load_frames, random batch of ' + str(args.batch):48} {load_fps:10.0f} "
        f"{load_fps / seq_fps:8.2f}   target >= 0.50"
    )
    print(f"{'reference-mode export (end to end)':48} {ref.frames_per_s:10.0f} {1.0:8.2f}")
    print(
        f"{'materialised export, jpeg 256x144':48} {mat.frames_per_s:10.0f} "
        f"{mat.frames_per_s / ref.frames_per_s:8.2f}"
    )


if __name__ == "__main__":
    main()
