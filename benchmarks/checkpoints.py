"""The cost of one checkpoint (a manifest commit) as a dataset grows, up to 10,000 recordings.

An export commits its manifest at checkpoints (every ``checkpoint_every`` recordings or
``checkpoint_seconds``); each commit rewrites the whole ``manifest.json``, so its cost
grows with the recordings already in the dataset. This measures that cost at several
sizes, on a local folder (or any target given), with manifests shaped like real ones
(per recording: its status entry with options, its video's file entry; shards of 100
recordings), and what the export's spacing rule (no commit sooner than 20 x the last
commit's cost after it) makes of a 10,000-recording run::

    python benchmarks/checkpoints.py                       # 100, 1,000, 10,000 recordings
    python benchmarks/checkpoints.py --sizes 10000 --repeat 5 --output memory://bench/ds

Baseline, same process: ``json.dumps`` + write of the same manifest bytes alone (the
floor of any commit of that manifest).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from typing import Any

from odyssey_data.manifest import Manifest, RecordingStatus
from odyssey_data.pipeline import _Checkpoints
from odyssey_data.runs import start_run
from odyssey_data.shards import commit_manifest
from odyssey_data.storage import MANIFEST_NAME, DatasetStore, FileEntry, WriterLock

OPTIONS = {
    "frames": "reference",
    "resize": None,
    "fps": None,
    "quality": None,
    "source": "streams",
    "event_offset_ms": 0.0,
}


def build(n: int, per_shard: int = 100) -> Manifest:
    """A manifest of ``n`` exported recordings, ``per_shard`` to a shard."""
    manifest = Manifest()
    for shard in range((n + per_shard - 1) // per_shard):
        for table in ("frames", "recordings", "events", "segments"):
            rel = f"{table}/part-{shard:06d}.parquet"
            rows = per_shard * (300 if table == "frames" else 1)
            manifest.files[rel] = FileEntry(rel, table, rows, 123_456, "a" * 64)
    for i in range(n):
        sid = f"{i:08d}-1b2c-4d5e-8f90-{i:012d}"
        video = f"videos/{sid}.mp4"
        manifest.files[video] = FileEntry(video, "video", None, 30_000_000, "b" * 64)
        manifest.recordings[sid] = RecordingStatus(
            status="exported",
            shard=i // per_shard,
            video_path=video,
            frames=300,
            details={
                "attempts": 2,
                "retries": 0,
                "url_refreshes": 0,
                "bad_event_lines": 0,
                "probe": "demux",
                "options": dict(OPTIONS),
                "exporter": "0.1.0",
            },
        )
    manifest.runs.append(start_run(OPTIONS))
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1_000, 10_000])
    parser.add_argument("--repeat", type=int, default=5, help="commits timed per size")
    parser.add_argument("--output", help="dataset URL (default: a fresh temp folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="odyssey-bench-") as tmp:
        url = args.output or f"{tmp}/ds"
        store = DatasetStore(url)
        lock = WriterLock(store)
        lock.acquire(force=True)
        try:
            print(f"target {url}")
            print(f"{'recordings':>10} {'manifest':>10} {'commit (median)':>16} {'baseline':>10}")
            costs: dict[int, float] = {}
            for n in args.sizes:
                manifest = build(n)
                manifest.generation = store.manifest_generation() or 0
                commits = []
                for _ in range(args.repeat):
                    began = time.perf_counter()
                    commit_manifest(store, manifest, lock)
                    commits.append(time.perf_counter() - began)
                floors = []
                for _ in range(args.repeat):
                    began = time.perf_counter()
                    data = json.dumps(manifest.to_json(), indent=1).encode()
                    store.write_bytes(f"baseline-{MANIFEST_NAME}", data)
                    floors.append(time.perf_counter() - began)
                size = len(store.read_bytes(MANIFEST_NAME) or b"")
                costs[n] = statistics.median(commits)
                print(
                    f"{n:>10,} {size / 1e6:>8.1f} MB {costs[n] * 1000:>13.1f} ms "
                    f"{statistics.median(floors) * 1000:>7.1f} ms"
                )
            big = max(costs)
            print(_spacing(big, costs[big]))
        finally:
            lock.release()


def _spacing(n: int, cost_s: float) -> str:
    """What the spacing rule gives for a run growing to ``n`` recordings: commits at
    every 100 recordings (the default) unless that is sooner than 20 x the commit's cost.
    Commit cost is taken as growing linearly to ``cost_s`` at ``n``."""
    every = 100
    worst: dict[str, Any] = {"commits": 0, "total_s": 0.0}
    for done in range(every, n + 1, every):
        worst["commits"] += 1
        worst["total_s"] += cost_s * done / n
    spacing = _Checkpoints.SPACING * cost_s
    return (
        f"a run growing to {n:,} recordings, a checkpoint every 100: {worst['commits']} "
        f"commits, {worst['total_s']:.1f} s of commits in all; at {n:,} the spacing rule "
        f"keeps commits >= {spacing:.1f} s apart (at most 1/{_Checkpoints.SPACING:.0f} of "
        "the run's time, however long it grows)"
    )


if __name__ == "__main__":
    main()
