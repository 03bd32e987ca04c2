"""Reading an exported dataset: lazy tables, frames by reference, verification.

Only the files ``manifest.json`` lists are read, so a half-written run is invisible.

Example:
    >>> ds = open_dataset("./odyssey-demo-dataset")  # doctest: +SKIP
    >>> ds.frames.filter(pl.col("prompt_index") == 1).collect()  # doctest: +SKIP
    >>> images = ds.load_frames(ds.frames.head(8).collect())  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from odyssey_data.errors import ConfigError, StorageError
from odyssey_data.manifest import Manifest
from odyssey_data.schema import SCHEMAS, TABLES
from odyssey_data.storage import MANIFEST_NAME, DatasetStore
from odyssey_data.video import read_frames

__all__ = ["Dataset", "open_dataset"]

FrameRequest = pl.DataFrame | Sequence[tuple[str, int]]


class Dataset:
    """An exported dataset, as the manifest commits it.

    Attributes:
        url: the dataset root.
        manifest: the parsed ``manifest.json``.
        store: the storage behind it.
    """

    def __init__(self, store: DatasetStore, manifest: Manifest) -> None:
        self.store = store
        self.url = store.url
        self.manifest = manifest

    def __repr__(self) -> str:
        counts = self.manifest.counts()
        return f"Dataset({self.url!r}, recordings={counts}, generation={self.manifest.generation})"

    # -- tables ----------------------------------------------------------------------
    def table(self, name: str) -> pl.LazyFrame:
        """The lazy table ``name`` (``frames``, ``recordings``, ``events``, ``segments``)."""
        if name not in TABLES:
            raise ConfigError(f"unknown table {name!r}; choose one of {', '.join(TABLES)}")
        rels = self.manifest.table_files(name)
        if not rels:
            return pl.from_arrow(SCHEMAS[name].empty_table()).lazy()  # type: ignore[union-attr]
        if self.store.is_local:
            return pl.scan_parquet([self.store.path(rel) for rel in rels])
        return pl.scan_pyarrow_dataset(self.store.dataset(rels))

    @property
    def frames(self) -> pl.LazyFrame:
        """One row per presented frame (see ``dataset-format.md``)."""
        return self.table("frames")

    @property
    def recordings(self) -> pl.LazyFrame:
        """One row per exported recording."""
        return self.table("recordings")

    @property
    def events(self) -> pl.LazyFrame:
        """One row per kept events-log line."""
        return self.table("events")

    @property
    def segments(self) -> pl.LazyFrame:
        """One row per prompt segment."""
        return self.table("segments")

    def summary(self) -> dict[str, Any]:
        """Counts for humans: recordings by status, frames, prompts, duration, bytes."""
        rec = self.recordings.select(
            pl.len().alias("recordings"),
            pl.col("frame_count").sum().alias("frames"),
            pl.col("prompts_count").sum().alias("prompts"),
            pl.col("events_count").sum().alias("events"),
            pl.col("video_duration_s").sum().alias("duration_s"),
            pl.col("video_bytes").sum().alias("video_bytes"),
        ).collect()
        row = rec.row(0, named=True)
        return {
            "url": self.url,
            "generation": self.manifest.generation,
            "status": self.manifest.counts(),
            "recordings": int(row["recordings"] or 0),
            "frames": int(row["frames"] or 0),
            "prompts": int(row["prompts"] or 0),
            "events": int(row["events"] or 0),
            "duration_s": float(row["duration_s"] or 0.0),
            "video_bytes": int(row["video_bytes"] or 0),
            "files": len(self.manifest.files),
            "dataset_bytes": sum(e.bytes for e in self.manifest.files.values()),
        }

    # -- frames by reference --------------------------------------------------------
    def load_frames(
        self, rows: FrameRequest, *, size: tuple[int, int] | None = None
    ) -> list[npt.NDArray[np.uint8]]:
        """Decode frames by reference, in the order asked.

        Requests are grouped per video; each group costs one seek to the key frame
        before its first frame and one forward decode pass.

        Args:
            rows: a polars frame with ``stream_id`` and ``frame_index`` columns (e.g. a
                filtered ``frames`` table), or a list of ``(stream_id, frame_index)``.
            size: ``(width, height)`` to resize to.

        Returns:
            ``H×W×3`` uint8 RGB arrays, one per row.

        Raises:
            StorageError: a requested frame is not in the dataset.
            DecodeError: the video does not present the frame the table names.
        """
        if isinstance(rows, pl.DataFrame):
            wanted = pl.DataFrame(
                {
                    "stream_id": rows["stream_id"].cast(pl.String),
                    "frame_index": rows["frame_index"].cast(pl.Int32),
                }
            )
        else:
            wanted = pl.DataFrame(
                {"stream_id": [r[0] for r in rows], "frame_index": [int(r[1]) for r in rows]},
                schema={"stream_id": pl.String, "frame_index": pl.Int32},
            )
        if wanted.height == 0:
            return []
        wanted = wanted.with_row_index("request")
        refs = (
            self.frames.select("stream_id", "frame_index", "pts", "video_path")
            .join(wanted.lazy(), on=["stream_id", "frame_index"], how="inner")
            .collect()
        )
        if refs.height != wanted.height:
            missing = wanted.join(refs, on=["stream_id", "frame_index"], how="anti")
            first = missing.row(0, named=True)
            raise StorageError(
                f"frame {first['frame_index']} of recording {first['stream_id']!r} is not in "
                f"the dataset at {self.url} ({missing.height} requested frames missing)"
            )
        out: list[npt.NDArray[np.uint8] | None] = [None] * wanted.height
        for (video_path,), group in refs.group_by(["video_path"], maintain_order=True):
            sid = group["stream_id"][0]
            pts = group["pts"].to_list()
            local = self.store.local_path(str(video_path))
            source: Any = local if local is not None else self.store.open(str(video_path))
            try:
                images = read_frames(source, pts, size=size, what=f"recording {sid!r}")
            finally:
                if local is None:
                    source.close()
            for request, image in zip(group["request"].to_list(), images, strict=True):
                out[request] = image
        return [img for img in out if img is not None]

    # -- verification ----------------------------------------------------------------
    def verify(self, *, checksums: bool = True) -> list[str]:
        """Check every listed file (exists, size, checksum) and every table's schema.

        Returns:
            Readable problems; empty when the dataset is sound.
        """
        problems: list[str] = []
        for rel, entry in sorted(self.manifest.files.items()):
            info = self.store.file_info(rel)
            if info is None:
                problems.append(f"{rel}: listed in the manifest but missing")
                continue
            size = int(info.get("size") or 0)
            if size != entry.bytes:
                problems.append(f"{rel}: {size} bytes, the manifest says {entry.bytes}")
                continue
            if checksums:
                digest, _ = self.store.checksum(rel)
                if digest != entry.sha256:
                    problems.append(f"{rel}: SHA-256 differs from the manifest (file changed)")
                    continue
            if entry.kind in SCHEMAS:
                problems.extend(self._check_parquet(rel, entry.kind, entry.num_rows))
        for sid, status in self.manifest.recordings.items():
            if status.status == "exported" and status.video_path not in self.manifest.files:
                problems.append(f"recording {sid!r}: exported, but its video is not listed")
        return problems

    def _check_parquet(self, rel: str, table: str, num_rows: int | None) -> list[str]:
        try:
            with self.store.open(rel) as handle:
                meta = pq.ParquetFile(handle)
                schema = meta.schema_arrow
                rows = meta.metadata.num_rows
        except (pa.ArrowException, OSError) as exc:
            return [f"{rel}: not a readable Parquet file ({exc})"]
        problems = []
        if num_rows is not None and rows != num_rows:
            problems.append(f"{rel}: {rows} rows, the manifest says {num_rows}")
        for fld in SCHEMAS[table]:
            if fld.name not in schema.names:
                problems.append(f"{rel}: column {fld.name!r} is missing")
            elif not schema.field(fld.name).type.equals(fld.type):
                problems.append(
                    f"{rel}: column {fld.name!r} is {schema.field(fld.name).type}, not {fld.type}"
                )
        return problems


def open_dataset(url: str, storage_options: Mapping[str, Any] | None = None) -> Dataset:
    """Open an exported dataset on any fsspec target.

    Args:
        url: the dataset root (``./out``, ``s3://bucket/prefix``, ``memory://…``).
        storage_options: fsspec options of the filesystem (credentials, endpoint_url).

    Raises:
        StorageError: there is no dataset (no ``manifest.json``) at ``url``.
    """
    store = DatasetStore(url, storage_options)
    data = store.read_json(MANIFEST_NAME)
    if data is None:
        raise StorageError(
            f"no dataset at {url}: {MANIFEST_NAME} is missing (export into it first, "
            "e.g. 'odyssey-data export URL' or 'odyssey-data demo URL')"
        )
    return Dataset(store, Manifest.from_json(data, where=f"{MANIFEST_NAME} under {url}"))
