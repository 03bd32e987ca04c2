"""A re-run with nothing new vs the first run: the nightly job's fixed cost.

Starts the demo server with N recordings (videos encoded up front, not timed), exports
them once, then runs the same export again several times with nothing new. A re-run
should read the manifest, list the API's recordings, clean leftovers and commit a new
manifest generation: no video is downloaded, decoded or written::

    python benchmarks/rerun.py                         # 100 recordings, 3 re-runs, ./tmp dir
    python benchmarks/rerun.py --recordings 100 --output memory://bench/ds
    python benchmarks/rerun.py --output s3://bucket/ds --storage-option endpoint_url=...

Prints the first run's wall time, the median re-run's, their ratio, and what the re-runs
asked of the API (blob downloads must be 0).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from odyssey_data.demo import DemoServer, make_demo_catalog
from odyssey_data.pipeline import ExportConfig, export
from odyssey_data.storage import MANIFEST_NAME, DatasetStore


def _options(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=3.5, help="video length of each")
    parser.add_argument("--reruns", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="default: one per core")
    parser.add_argument("--output", help="dataset URL (default: a fresh temp folder)")
    parser.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    catalog = make_demo_catalog(args.recordings, seed=0, active=0, seconds=args.seconds)
    started = time.perf_counter()
    for rec in catalog.snapshot():
        rec.video_bytes()  # encode up front: the server's synthesis is not the export's cost
        rec.events_bytes()
    encode_s = time.perf_counter() - started

    with tempfile.TemporaryDirectory(prefix="odyssey-rerun-") as tmp:
        output = args.output or str(Path(tmp) / "dataset")
        options = _options(args.storage_option)
        with DemoServer(catalog, page_cap=50) as server:
            config = ExportConfig(
                output=output,
                api_url=server.base_url,
                api_key=server.api_key,
                workers=args.workers,
                storage_options=options,
                overwrite=True,
            )
            started = time.perf_counter()
            first = export(config)
            first_s = time.perf_counter() - started

            rerun_config = ExportConfig(
                output=output,
                api_url=server.base_url,
                api_key=server.api_key,
                workers=args.workers,
                storage_options=options,
            )
            times = []
            server.request_log.clear()
            for _ in range(args.reruns):
                started = time.perf_counter()
                again = export(rerun_config)
                times.append(time.perf_counter() - started)
                if again.exported or again.already != first.exported:
                    raise SystemExit(f"the re-run was not a no-op: {again}")
            asked = Counter(entry.path.split("/")[1] for entry in server.request_log)
        manifest = DatasetStore(output, options).read_bytes(MANIFEST_NAME) or b""

    rerun_s = statistics.median(times)
    print(
        f"recordings:         {args.recordings} ({first.frames:,} frames, "
        f"{first.video_bytes / 1e6:.1f} MB of video; encoding them took {encode_s:.1f} s, "
        "not counted)"
    )
    print(
        f"first run:          {first_s:.3f} s  "
        f"({first.exported} recordings into {first.shards} shard(s))"
    )
    print(
        f"re-run, nothing new: {rerun_s:.3f} s  (median of {args.reruns}: "
        + ", ".join(f"{t:.3f}" for t in times)
        + ")"
    )
    print(
        f"ratio:              {rerun_s / first_s:.4f}  (the first run is "
        f"{first_s / rerun_s:.0f}x longer)"
    )
    per_run = {k: round(v / args.reruns, 1) for k, v in sorted(asked.items())}
    print(f"API requests per re-run: {per_run}  (blobs = video/events downloads)")
    print(f"manifest: {len(manifest):,} bytes")


if __name__ == "__main__":
    main()
