"""Reading an exported dataset: lazy tables, frames by reference, verification.

Only the files ``manifest.json`` lists are read, so a half-written run is invisible.

Example:
    >>> ds = open_dataset("./odyssey-demo-dataset")  # doctest: +SKIP
    >>> ds.frames.filter(pl.col("prompt_index") == 1).collect()  # doctest: +SKIP
    >>> images = ds.load_frames(ds.frames.head(8).collect())  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from odyssey_data.clips import clip_index
from odyssey_data.decoders import DecoderCache
from odyssey_data.errors import ConfigError, StorageError
from odyssey_data.manifest import MANIFEST_NAME, Manifest
from odyssey_data.schema import SCHEMAS, TABLES
from odyssey_data.storage import DatasetStore
from odyssey_data.video import FrameIndex, available_cores

if TYPE_CHECKING:
    from odyssey_data.lerobot import LeRobotReport

__all__ = ["Clip", "Dataset", "open_dataset"]

FrameRequest = pl.DataFrame | Sequence[tuple[str, int]]

#: The qc columns :meth:`Dataset.qc_summary` reports, and those it counts recordings of.
_QC_SUMMARY = (
    "interval_p50_s",
    "interval_max_s",
    "api_duration_delta_s",
    "events_span_delta_s",
    "frames_before_first_prompt",
    "prompts_per_minute",
    "prompt_lag_max_s",
    "response_latency_p50_s",
    "response_latency_max_s",
    "longest_frozen_s",
)
_QC_FLAGS = ("gaps", "frozen_frames", "unresponsive_prompts")


def _plain(value: Any) -> float | int | None:
    """A polars scalar as a JSON-able number (``None`` for null)."""
    if value is None:
        return None
    return value if isinstance(value, int) else float(value)


@dataclass(frozen=True, slots=True, eq=False)
class Clip:
    """A window of frames from one recording, decoded.

    Attributes:
        stream_id: the recording.
        frame_indices: the frames' ``frame_index`` values.
        timestamps_s: their times.
        prompt: the prompt in force at the first frame (``None`` before any).
        last_prompt: the prompt in force at the last frame.
        prompts: every prompt in force during the clip, in order.
        crosses_interaction: a new prompt was issued inside the clip.
        frames: ``K×H×W×3`` uint8 RGB.
    """

    stream_id: str
    frame_indices: list[int]
    timestamps_s: list[float]
    prompt: str | None
    last_prompt: str | None
    prompts: list[str]
    crosses_interaction: bool
    frames: npt.NDArray[np.uint8]


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
        """The lazy table ``name`` (``frames``, ``recordings``, ``events``, ``segments``,
        ``qc``)."""
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

    @property
    def qc(self) -> pl.LazyFrame:
        """Quality control, one row per exported recording (see :mod:`odyssey_data.qc`).

        Empty for recordings exported with ``qc="off"`` or before the table existed.
        """
        return self.table("qc")

    def qc_summary(self) -> dict[str, Any]:
        """The qc table over all recordings: each measure's median, min and max, and
        how many recordings have gaps, frozen frames or unresponsive prompts (``None``
        where no recording's QC mode measures it)."""
        qc = self.qc.select(*_QC_SUMMARY, *_QC_FLAGS).collect()
        columns = {
            name: {
                "median": _plain(qc[name].median()),
                "min": _plain(qc[name].min()),
                "max": _plain(qc[name].max()),
            }
            for name in _QC_SUMMARY
        }
        # None: not measured by the QC mode of any recording (e.g. frozen frames below
        # qc="decode"), which is not the same as none found.
        flagged = {
            name: None if qc[name].null_count() == qc.height else int((qc[name] > 0).sum())
            for name in _QC_FLAGS
        }
        return {"recordings": qc.height, "columns": columns, "flagged": flagged}

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
            "qc": self.qc_summary(),
        }

    # -- frames by reference --------------------------------------------------------
    def load_frames(
        self,
        rows: FrameRequest,
        *,
        size: tuple[int, int] | None = None,
        decoders: DecoderCache | None = None,
    ) -> list[npt.NDArray[np.uint8]]:
        """Decode frames by reference, in the order asked.

        Requests are grouped per video and sorted by pts; each group costs one seek to the
        key frame before its first frame and one forward decode pass, seeking again only
        past a key frame (the frames table's ``is_keyframe`` rows say where they are).
        Isolated frames decode on one thread; runs of many frames are shared out at key
        frames among one decoder per core (see
        :class:`~odyssey_data.decoders.DecoderCache`).

        Args:
            rows: a polars frame with ``stream_id`` and ``frame_index`` columns (e.g. a
                filtered ``frames`` table), or a list of ``(stream_id, frame_index)``.
            size: ``(width, height)`` to resize to.
            decoders: keep the videos open in this cache between calls (see
                :class:`~odyssey_data.decoders.DecoderCache`); by default the videos
                are opened for the call and closed by the end of it.

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
        # Every frame's pts and key-frame flag of the videos concerned: the decoder seeks
        # past long stretches between scattered targets instead of decoding through them,
        # and counts the frames a group decodes to choose its threads.
        indexes = {
            path: FrameIndex.of(pts, keys)
            for path, pts, keys in self.frames.filter(
                pl.col("stream_id").is_in(refs["stream_id"].unique().implode())
            )
            .group_by("video_path")
            .agg(pl.col("pts"), pl.col("is_keyframe"))
            .collect()
            .iter_rows()
        }
        out: list[npt.NDArray[np.uint8] | None] = [None] * wanted.height
        # Without a cache of the caller's, one for this call: a video's decoders are
        # closed once the next videos need the room, and all of them at the end.
        cache = decoders if decoders is not None else DecoderCache(max_open=available_cores() + 1)
        try:
            for (video_path,), group in refs.sort("pts").group_by(
                ["video_path"], maintain_order=True
            ):
                path = str(video_path)
                images = cache.read(
                    (self.url, path),
                    self.video_opener(path),
                    group["pts"].to_list(),
                    index=indexes[video_path],
                    size=size,
                    threads=available_cores(),
                    what=f"recording {group['stream_id'][0]!r}",
                )
                for request, image in zip(group["request"].to_list(), images, strict=True):
                    out[request] = image
        finally:
            if decoders is None:
                cache.close()
        return [img for img in out if img is not None]

    def video_opener(self, video_path: str) -> Callable[[], str | IO[bytes]]:
        """What opens one of the dataset's videos: its local path, or a file object."""
        local = self.store.local_path(video_path)
        if local is not None:
            return lambda: local
        return lambda: self.store.open(video_path)

    # -- training helpers ------------------------------------------------------------
    def clip_index(
        self,
        *,
        length: int,
        stride: int | None = None,
        fps: float | None = None,
        stream_ids: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """The clip index: one row per window of ``length`` frames of one recording.

        See :func:`odyssey_data.clips.clip_index` for the columns; store it, shuffle it,
        or index it at random.
        """
        lazy = self.frames.select(
            "stream_id", "frame_index", "timestamp_s", "prompt", "prompt_index"
        )
        if stream_ids is not None:
            lazy = lazy.filter(pl.col("stream_id").is_in(list(stream_ids)))
        return clip_index(lazy.collect(), length=length, stride=stride, fps=fps)

    def clips(
        self,
        *,
        length: int,
        stride: int | None = None,
        fps: float | None = None,
        size: tuple[int, int] | None = None,
        stream_ids: Sequence[str] | None = None,
    ) -> Iterator[Clip]:
        """Yield clips of ``length`` decoded frames (one decode pass per clip).

        Windows never cross recordings; each clip carries the prompts in force and
        whether an interaction happened inside it.
        """
        index = self.clip_index(length=length, stride=stride, fps=fps, stream_ids=stream_ids)
        for row in index.iter_rows(named=True):
            indices = [int(i) for i in row["frame_indices"]]
            images = self.load_frames([(row["stream_id"], i) for i in indices], size=size)
            yield Clip(
                stream_id=row["stream_id"],
                frame_indices=indices,
                timestamps_s=[float(t) for t in row["timestamps_s"]],
                prompt=row["prompt"],
                last_prompt=row["last_prompt"],
                prompts=list(row["prompts"]),
                crosses_interaction=bool(row["crosses_interaction"]),
                frames=np.stack(images),
            )

    def stats(self, *, sample: int = 256, seed: int = 0, save: bool = True) -> dict[str, Any]:
        """Pixel mean/std over a frame sample plus prompt and segment counts.

        Saved as ``stats.json`` beside the manifest (see :mod:`odyssey_data.stats`).
        """
        from odyssey_data.stats import compute_stats

        return compute_stats(self, sample=sample, seed=seed, save=save)

    def preview(self, stream_id: str | None = None, **options: Any) -> Any:
        """A contact sheet of one recording as a ``PIL.Image`` (needs Pillow).

        See :func:`odyssey_data.preview.contact_sheet` for the options.
        """
        from odyssey_data.preview import contact_sheet

        return contact_sheet(self, stream_id, **options)

    def to_lerobot(
        self,
        output: str,
        *,
        fps: int,
        size: tuple[int, int] | None = None,
        repo_id: str | None = None,
        **options: Any,
    ) -> LeRobotReport:
        """Write the recordings as a LeRobot v3.0 dataset at ``output`` (one episode each).

        Every episode is resampled to exactly ``fps``: row ``k`` shows the last frame
        presented at or before ``k / fps``. See :func:`odyssey_data.lerobot.convert_to_lerobot`
        for the other options and the files written.
        """
        from odyssey_data.lerobot import convert_to_lerobot

        return convert_to_lerobot(self, output, fps=fps, size=size, repo_id=repo_id, **options)

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
        problems.extend(self.manifest.problems())
        if not problems:
            problems.extend(self._check_recordings())
        return problems

    def _check_recordings(self) -> list[str]:
        """The recordings table holds each exported recording once, and nothing else."""
        try:
            ids = self.recordings.select("stream_id").collect()["stream_id"].to_list()
        except (pl.exceptions.PolarsError, pa.ArrowException, OSError) as exc:
            return [f"the recordings table cannot be read ({exc})"]
        problems = []
        seen: set[str] = set()
        for sid in ids:
            if sid in seen:
                problems.append(f"recording {sid!r}: more than one row in the recordings table")
            seen.add(sid)
        exported = self.manifest.exported()
        for sid in sorted(exported - seen):
            problems.append(f"recording {sid!r}: exported, but not in the recordings table")
        for sid in sorted(seen - exported):
            problems.append(f"recording {sid!r}: in the recordings table, but not exported")
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
    manifest = Manifest.load(store)
    if manifest is None:
        raise StorageError(
            f"no dataset at {url}: {MANIFEST_NAME} is missing (export into it first, "
            "e.g. 'odyssey-data export URL' or 'odyssey-data demo URL')"
        )
    return Dataset(store, manifest)
