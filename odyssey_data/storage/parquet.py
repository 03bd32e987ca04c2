"""Writing the dataset's Parquet files: zstd, row groups sized for how they are read.

The store opens the file (whole or not at all) and hashes what passes; this module
decides what goes in it. ``pq.write_table(path, filesystem=<fsspec local>)`` would
silently bypass fsspec for local paths, so pyarrow only ever gets a handle.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["IMAGE_ROW_GROUP_ROWS", "ROW_GROUP_ROWS", "write_parquet"]

ROW_GROUP_ROWS = 100_000
#: Encoded images make rows heavy: small row groups keep random access to one frame's
#: image cheap.
IMAGE_ROW_GROUP_ROWS = 1_024


def write_parquet(
    sink: io.RawIOBase | IO[bytes],
    table: pa.Table | Iterable[Iterable[pa.RecordBatch]],
    schema: pa.Schema | None = None,
) -> int:
    """Write ``table`` as one zstd Parquet file to ``sink``; returns its row count.

    ``table`` may also be a sequence of parts (one per recording), each an iterable of
    record batches read as they are written (memory stays flat). Each part starts a row
    group of its own, so a reader filtering on one recording skips the others' row
    groups by their statistics. Parts without rows write an empty file of ``schema``.
    """
    parts: Iterable[Iterable[pa.RecordBatch]] = (
        [table.to_batches()] if isinstance(table, pa.Table) else table
    )
    rows = 0
    parquet: pq.ParquetWriter | None = None
    try:
        for part in parts:
            group: list[pa.RecordBatch] = []
            group_rows = 0
            for batch in part:
                if parquet is None:
                    parquet = pq.ParquetWriter(
                        sink,
                        batch.schema,
                        compression="zstd",
                        use_dictionary=True,
                        write_statistics=True,
                    )
                cap = IMAGE_ROW_GROUP_ROWS if "image" in batch.schema.names else ROW_GROUP_ROWS
                while batch.num_rows:
                    take = batch.slice(0, cap - group_rows)
                    batch = batch.slice(take.num_rows)
                    group.append(take)
                    group_rows += take.num_rows
                    if group_rows >= cap:
                        parquet.write_table(pa.Table.from_batches(group))
                        rows += group_rows
                        group, group_rows = [], 0
            if group_rows and parquet is not None:
                parquet.write_table(pa.Table.from_batches(group))
                rows += group_rows
        if parquet is None:
            if isinstance(table, pa.Table):
                empty = table
            else:
                empty = (schema or pa.schema([])).empty_table()
            pq.write_table(empty, sink, compression="zstd")
    finally:
        if parquet is not None:
            parquet.close()
    return rows
