"""Issue 7, target 6: a filter on one stream_id reads only that recording's row groups.

Exports ``--recordings`` demo recordings (videos cached on disk) into one dataset, then
for a few stream ids: the row groups of the frames shards whose Parquet statistics
(``stream_id`` min/max) admit the id, against all row groups, and the bytes this
process read (``rchar`` of ``/proc/self/io``) for ``open_dataset(...).frames`` filtered on
the id against an unfiltered read. Target: only that recording's row groups.

The other half of target 6 (``load_frames`` on a random batch >= 0.5x sequential decode)
is ``benchmarks/load_frames.py``.

Run: ``python benchmarks/reading.py [--recordings 200]``
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
import polars as pl
import pyarrow.parquet as pq

from odyssey_data import open_dataset
from odyssey_data.pipeline import export


def _rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--probes", type=int, default=5)
    args = parser.parse_args(argv)
    catalog = common.cached_catalog(args.recordings, seed=7, seconds=args.seconds)
    with tempfile.TemporaryDirectory(prefix="odyssey-bench-") as tmp:
        with common.serve(catalog, page_cap=100) as server:
            export(output=f"{tmp}/ds", api_url=server.base_url, api_key=server.api_key, workers=2)
        shards = sorted(Path(tmp, "ds", "frames").glob("*.parquet"))
        groups = []  # (min, max, compressed bytes) per row group
        for shard in shards:
            meta = pq.ParquetFile(shard).metadata
            col = meta.schema.to_arrow_schema().get_field_index("stream_id")
            for i in range(meta.num_row_groups):
                rg = meta.row_group(i)
                stats = rg.column(col).statistics
                groups.append((stats.min, stats.max, rg.total_byte_size))
        ds = open_dataset(f"{tmp}/ds")
        before = _rchar()
        everything = ds.frames.collect()
        full_read = _rchar() - before
        ids = random.Random(0).sample(sorted(set(everything["stream_id"])), args.probes)
        admitted, reads = [], []
        for sid in ids:
            admitted.append(sum(1 for lo, hi, _ in groups if lo <= sid <= hi))
            before = _rchar()
            one = ds.frames.filter(pl.col("stream_id") == sid).collect()
            reads.append(_rchar() - before)
            assert one.height == (everything["stream_id"] == sid).sum()
    total_bytes = sum(size for _, _, size in groups)
    print(f"target 6: filtered reads ({args.recordings} recordings, {len(shards)} frames shard(s))")
    common.row("anchor: row groups in the frames table", len(groups), "groups", 1.0)
    worst = max(admitted)
    common.row(
        "row groups whose statistics admit one stream_id (max)",
        worst,
        "groups",
        worst / len(groups),
        "= that recording's only (target)",
    )
    common.row("anchor: bytes read, unfiltered frames", full_read / 1e3, "KB", 1.0)
    mean = sum(reads) / len(reads)
    common.row(
        "bytes read, frames filtered on one stream_id", mean / 1e3, "KB", mean / max(1, full_read)
    )
    print(f"  (frames row groups hold {total_bytes / 1e3:.0f} KB uncompressed in all)")


if __name__ == "__main__":
    main()
