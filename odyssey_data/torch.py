"""PyTorch datasets over an exported dataset (the ``[torch]`` extra).

:class:`FrameDataset` gives one frame per item, :class:`ClipDataset` one clip of ``length``
frames; both are map-style, so ``DataLoader(shuffle=True, num_workers=N)`` works. Frames
are decoded by reference from the dataset's videos, or read from the ``image`` column of a
materialised export. Each process keeps its videos open
(:class:`~odyssey_data.decoders.DecoderCache`), and each decoder stays positioned between
items: it seeks only when a key frame of the frames table lies between its position and
the next frame, and otherwise decodes forward. Single frames decode on one thread; a clip,
when the process has cores to spare, is shared out at key frames among one decoder per
core, read side by side. :class:`LocalitySampler` is an opt-in
sampler that visits shuffled chunks of neighbouring items of one recording, which decode
much faster (see ``docs/read-path.md``).

Safe with worker processes: nothing holding a file handle or a connection is shared; each
process opens the dataset and its decoders itself the first time it needs them (after a
fork or a spawn). Items are fetched without polars (its thread pool does not survive a
fork): the index is turned into numpy columns up front, and frames are decoded straight
from the videos.

Splits are by recording, never by frame: a recording is in ``val`` when a hash of its
``stream_id`` and the seed falls below ``val_fraction``, so the split is stable across runs
and machines, and no recording leaks into both.

Example:
    >>> from torch.utils.data import DataLoader  # doctest: +SKIP
    >>> frames = FrameDataset("./dataset", split="train", size=(256, 144))  # doctest: +SKIP
    >>> batch = next(iter(DataLoader(frames, batch_size=32, num_workers=2)))  # doctest: +SKIP
    >>> batch["image"].shape, batch["prompt"][:2]  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from odyssey_data.clips import clip_index, split_of
from odyssey_data.dataset import Dataset, open_dataset
from odyssey_data.decoders import DecoderCache
from odyssey_data.errors import ConfigError, MissingDependencyError
from odyssey_data.video import FrameIndex, available_cores

try:
    import torch
    from torch.utils.data import Dataset as _TorchDataset
    from torch.utils.data import Sampler
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("torch", "torch", "odyssey_data.torch") from exc

__all__ = ["ClipDataset", "FrameDataset", "LocalitySampler", "split_of"]

Split = Literal["train", "val"] | None
Transform = Callable[[dict[str, Any]], dict[str, Any]]
_INDEX_COLUMNS = (
    "stream_id",
    "frame_index",
    "timestamp_s",
    "prompt",
    "prompt_index",
    "pts",
    "is_keyframe",
    "video_path",
)


class _Source:
    """Opens the dataset lazily, once per process (fork- and spawn-safe), and reads its videos
    through the process's open decoders."""

    def __init__(
        self,
        source: str | Dataset,
        storage_options: Mapping[str, Any] | None,
        decoders: DecoderCache | None,
    ) -> None:
        if isinstance(source, Dataset):
            self.url = source.url
            self.storage_options = dict(source.store.storage_options)
            self._dataset: Dataset | None = source
        else:
            self.url = source
            self.storage_options = dict(storage_options or {})
            self._dataset = None
        self.decoders = decoders if decoders is not None else DecoderCache()
        self._pid = os.getpid()

    def get(self) -> Dataset:
        if self._dataset is None or self._pid != os.getpid():
            self._dataset = open_dataset(self.url, self.storage_options)
            self._pid = os.getpid()
        return self._dataset

    def read(
        self,
        video_path: str,
        pts: Sequence[int],
        size: tuple[int, int] | None,
        what: str,
        index: FrameIndex,
    ) -> list[npt.NDArray[np.uint8]]:
        """Decode frames by pts from one video of the dataset (no polars involved)."""
        return self.decoders.read(
            (self.url, video_path),
            self.get().video_opener(video_path),
            pts,
            index=index,
            size=size,
            threads=_thread_budget(),
            what=what,
        )

    def __getstate__(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "storage_options": self.storage_options,
            "decoders": self.decoders,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.url = state["url"]
        self.storage_options = state["storage_options"]
        self.decoders = state["decoders"]
        self._dataset = None
        self._pid = os.getpid()


def _thread_budget() -> int:
    """Decoder threads one read may use: this worker's share of the cores.

    ``num_workers`` DataLoader workers already decode in parallel, so each gets
    ``cores // num_workers`` (one thread on 2 cores with 2 workers); the main process
    gets every core.
    """
    info = torch.utils.data.get_worker_info()
    cores = available_cores()
    return max(1, cores // info.num_workers) if info is not None else cores


class _FrameIndexes:
    """Each video's :class:`~odyssey_data.video.FrameIndex`, as views of sorted columns.

    ``pts`` and ``is_keyframe`` hold every frame of the dataset sorted by
    (``stream_id``, ``frame_index``), so one recording's frames are one slice, in pts order.
    """

    def __init__(
        self,
        video_path: npt.NDArray[Any],
        pts: npt.NDArray[np.int64],
        is_keyframe: npt.NDArray[np.bool_],
    ) -> None:
        self.pts = pts
        self.is_keyframe = is_keyframe
        self.spans: dict[str, tuple[int, int]] = {}
        if video_path.size:
            cuts = np.flatnonzero(video_path[1:] != video_path[:-1]) + 1
            starts = np.r_[0, cuts]
            stops = np.r_[cuts, video_path.size]
            for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
                self.spans[str(video_path[a])] = (a, b)
        self._built: dict[str, FrameIndex] = {}

    def __getitem__(self, video_path: str) -> FrameIndex:
        index = self._built.get(video_path)
        if index is None:
            a, b = self.spans[video_path]
            index = FrameIndex.of(self.pts[a:b], self.is_keyframe[a:b])
            self._built[video_path] = index
        return index

    def __getstate__(self) -> dict[str, Any]:
        return {"pts": self.pts, "is_keyframe": self.is_keyframe, "spans": self.spans}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.pts = state["pts"]
        self.is_keyframe = state["is_keyframe"]
        self.spans = state["spans"]
        self._built = {}


def _filter_split(
    frames: pl.DataFrame, split: Split, seed: int, val_fraction: float
) -> pl.DataFrame:
    if split is None:
        return frames
    if split not in ("train", "val"):
        raise ConfigError(f"split must be 'train', 'val' or None, not {split!r}")
    if not 0.0 <= val_fraction <= 1.0:
        raise ConfigError(f"val_fraction must be within 0..1, not {val_fraction}")
    ids = frames["stream_id"].unique().to_list()
    keep = [sid for sid in ids if split_of(sid, seed=seed, val_fraction=val_fraction) == split]
    return frames.filter(pl.col("stream_id").is_in(keep))


def _to_tensor(image: npt.NDArray[np.uint8]) -> torch.Tensor:
    # HWC uint8 → CHW uint8, the layout torchvision transforms expect. numpy's copy of the
    # transposed view: torch's permute(...).contiguous() on uint8 took 2-4 ms of CPU per
    # 640x360 picture in the main process (its intra-op threads), numpy 0.3 ms.
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def _decode_image(data: bytes, size: tuple[int, int] | None) -> npt.NDArray[np.uint8]:
    from io import BytesIO

    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError("pillow", "images", "reading materialised frames") from exc
    with Image.open(BytesIO(data)) as img:
        rgb = img.convert("RGB")
        if size is not None and rgb.size != size:
            rgb = rgb.resize(size, Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)


class FrameDataset(_TorchDataset[dict[str, Any]]):
    """One frame per item: ``{"image": uint8 tensor 3×H×W, "prompt", "prompt_index",
    "stream_id", "frame_index", "timestamp_s"}`` (``prompt_index`` is -1 before the first
    prompt, ``prompt`` is then ``""``, so the default collate works).

    Frames are decoded with decoders kept open per process (``decoders``), positioned by
    the frames table's key-frame index; a ``DataLoader`` batch is read grouped by video
    and sorted by pts (``__getitems__``).

    Args:
        source: a dataset URL or an opened :class:`~odyssey_data.Dataset`.
        split: ``"train"``, ``"val"`` or ``None`` for all recordings.
        seed: the split's seed.
        val_fraction: share of recordings in ``val``.
        size: ``(width, height)`` to resize every frame to (needed to batch recordings of
            different sizes).
        stream_ids: only these recordings.
        transform: applied to each item dict.
        storage_options: fsspec options when ``source`` is a URL.
        decoders: the open decoders to use (default: a
            :class:`~odyssey_data.decoders.DecoderCache` of this dataset, per process).
    """

    def __init__(
        self,
        source: str | Dataset,
        *,
        split: Split = None,
        seed: int = 0,
        val_fraction: float = 0.1,
        size: tuple[int, int] | None = None,
        stream_ids: Sequence[str] | None = None,
        transform: Transform | None = None,
        storage_options: Mapping[str, Any] | None = None,
        decoders: DecoderCache | None = None,
    ) -> None:
        self._source = _Source(source, storage_options, decoders)
        dataset = self._source.get()
        lazy = dataset.frames
        self._materialised = "image" in lazy.collect_schema().names()
        if stream_ids is not None:
            lazy = lazy.filter(pl.col("stream_id").is_in(list(stream_ids)))
        columns = [*_INDEX_COLUMNS, "image"] if self._materialised else list(_INDEX_COLUMNS)
        frames = lazy.select(columns).collect()
        self.index = _filter_split(frames, split, seed, val_fraction).sort(
            "stream_id", "frame_index"
        )
        self._columns = {name: self.index[name].to_numpy() for name in columns}
        if self._materialised:
            self.index = self.index.drop("image")
        self._indexes = _FrameIndexes(
            self._columns["video_path"], self._columns["pts"], self._columns["is_keyframe"]
        )
        self.size = size
        self.transform = transform

    @property
    def decoders(self) -> DecoderCache:
        """This process's open decoders for the dataset."""
        return self._source.decoders

    def __len__(self) -> int:
        return self.index.height

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.__getitems__([i])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """Items for a batch of indices: each video read once, its frames sorted by pts.

        ``DataLoader`` calls this with a whole batch; the items equal ``self[i]`` each.
        """
        col = self._columns
        rows = [int(i) for i in indices]
        images: dict[int, npt.NDArray[np.uint8]] = {}
        by_video: dict[str, list[int]] = {}
        for i in rows:
            data = col["image"][i] if self._materialised else None
            if data is not None:
                images[i] = _decode_image(bytes(data), self.size)
            else:
                by_video.setdefault(str(col["video_path"][i]), []).append(i)
        for video_path, members in by_video.items():
            members = sorted(set(members), key=lambda i: int(col["pts"][i]))
            decoded = self._source.read(
                video_path,
                [int(col["pts"][i]) for i in members],
                self.size,
                f"recording {str(col['stream_id'][members[0]])!r}",
                self._indexes[video_path],
            )
            images.update(zip(members, decoded, strict=True))
        return [self._item(i, images[i]) for i in rows]

    def _item(self, i: int, image: npt.NDArray[np.uint8]) -> dict[str, Any]:
        col = self._columns
        prompt_index = col["prompt_index"][i]
        item = {
            "image": _to_tensor(image),
            "prompt": col["prompt"][i] or "",
            "prompt_index": -1
            if prompt_index is None or np.isnan(prompt_index)
            else int(prompt_index),
            "stream_id": str(col["stream_id"][i]),
            "frame_index": int(col["frame_index"][i]),
            "timestamp_s": float(col["timestamp_s"][i]),
        }
        return self.transform(item) if self.transform else item


class ClipDataset(_TorchDataset[dict[str, Any]]):
    """One clip per item: ``{"frames": uint8 tensor K×3×H×W, "prompt", "last_prompt",
    "crosses_interaction", "stream_id", "frame_indices", "timestamps_s"}``.

    A clip is decoded in one forward pass from the key frame before its first frame,
    with decoders kept open per process (``decoders``); where the process has cores to
    spare, its groups of pictures are shared out among one decoder per core, read side
    by side. The clip index is :attr:`index` (a polars table, see
    :func:`odyssey_data.clips.clip_index`).

    Args:
        source: a dataset URL or an opened :class:`~odyssey_data.Dataset`.
        length: frames per clip.
        stride: frames between clip starts (default ``length``).
        fps: resample recordings to this rate first.
        split: ``"train"``, ``"val"`` or ``None``.
        seed: the split's seed.
        val_fraction: share of recordings in ``val``.
        size: ``(width, height)`` to resize frames to.
        transform: applied to each item dict.
        storage_options: fsspec options when ``source`` is a URL.
        decoders: the open decoders to use (default: a
            :class:`~odyssey_data.decoders.DecoderCache` of this dataset, per process).
    """

    def __init__(
        self,
        source: str | Dataset,
        *,
        length: int,
        stride: int | None = None,
        fps: float | None = None,
        split: Split = None,
        seed: int = 0,
        val_fraction: float = 0.1,
        size: tuple[int, int] | None = None,
        transform: Transform | None = None,
        storage_options: Mapping[str, Any] | None = None,
        decoders: DecoderCache | None = None,
    ) -> None:
        self._source = _Source(source, storage_options, decoders)
        frames = self._source.get().frames.select(_INDEX_COLUMNS).collect()
        frames = _filter_split(frames, split, seed, val_fraction).sort("stream_id", "frame_index")
        self.index = clip_index(frames, length=length, stride=stride, fps=fps)
        # Every frame's pts, key-frame flag and video path as numpy columns sorted like
        # the frames table, for fork-safe reads without polars.
        paths = frames["video_path"].to_numpy()
        self._frame_index = frames["frame_index"].to_numpy()
        self._indexes = _FrameIndexes(
            paths, frames["pts"].to_numpy(), frames["is_keyframe"].to_numpy()
        )
        sids = frames["stream_id"].to_numpy()
        self._videos = {str(sids[a]): path for path, (a, _) in self._indexes.spans.items()}
        self._rows = self.index.select(
            "stream_id",
            "frame_indices",
            "timestamps_s",
            "prompt",
            "last_prompt",
            "crosses_interaction",
        ).rows()
        self.size = size
        self.transform = transform

    @property
    def decoders(self) -> DecoderCache:
        """This process's open decoders for the dataset."""
        return self._source.decoders

    def __len__(self) -> int:
        return self.index.height

    def __getitem__(self, i: int) -> dict[str, Any]:
        stream_id, frame_indices, stamps, prompt, last_prompt, crosses = self._rows[int(i)]
        indices = [int(x) for x in frame_indices]
        video_path = self._videos[stream_id]
        a, b = self._indexes.spans[video_path]
        rows = a + np.searchsorted(self._frame_index[a:b], indices)
        images = self._source.read(
            video_path,
            self._indexes.pts[rows].tolist(),
            self.size,
            f"recording {stream_id!r}",
            self._indexes[video_path],
        )
        item = {
            "frames": torch.stack([_to_tensor(img) for img in images]),
            "prompt": prompt or "",
            "last_prompt": last_prompt or "",
            "crosses_interaction": bool(crosses),
            "stream_id": stream_id,
            "frame_indices": torch.tensor(indices, dtype=torch.int32),
            "timestamps_s": torch.tensor(list(stamps), dtype=torch.float64),
        }
        return self.transform(item) if self.transform else item


class LocalitySampler(Sampler[int]):
    """Every item once per epoch, in shuffled chunks of neighbouring items of one recording.

    An opt-in sampler for :class:`FrameDataset` and :class:`ClipDataset` that trades some
    randomness inside a batch for decoding speed. Each recording's items (in time order)
    are cut into chunks of ``chunk`` consecutive items, at a random offset per recording
    and epoch; the chunks are shuffled together and each is visited in time order. The
    decoder kept open for that video then decodes forward from one item to the next
    instead of seeking and decoding a group of pictures for each.

    What it trades: over an epoch every item is visited exactly once and every chunk
    order is equally likely, as with ``shuffle=True``; but the items of a chunk are
    neighbours in one recording, so a batch of ``B`` holds about ``B / chunk``
    independent draws instead of ``B`` (a batch of 32 frames with ``chunk=8``: about four
    recordings, 8 consecutive frames each). ``chunk=1`` is a plain shuffle.

    The order depends only on the dataset, ``chunk``, ``seed`` and the epoch, never on
    ``num_workers`` (the sampler runs in the main process). The epoch advances after
    each complete pass; :meth:`set_epoch` sets it (as with ``DistributedSampler``).

    To resume mid-epoch, save :meth:`state_dict` with the training state and give it to
    :meth:`load_state_dict` before the next ``iter``. A ``DataLoader`` draws indices ahead
    of the training loop (``prefetch_factor × num_workers`` batches), so save
    ``sampler.state_dict(consumed=batches_done * batch_size)`` for the items the loop
    has actually seen.

    Args:
        dataset: a :class:`FrameDataset` or :class:`ClipDataset` (anything whose
            ``index`` table has a ``stream_id`` column, items of one recording in time
            order).
        chunk: consecutive items of one recording visited together.
        seed: the order's seed.
    """

    def __init__(self, dataset: FrameDataset | ClipDataset, *, chunk: int = 8, seed: int = 0):
        if chunk < 1:
            raise ConfigError(f"chunk must be at least 1, not {chunk}")
        self.chunk = int(chunk)
        self.seed = int(seed)
        self.epoch = 0
        self._position = 0
        stream_ids = dataset.index["stream_id"].to_numpy()
        order = np.argsort(stream_ids, kind="stable")  # each recording's items, in order
        cuts = np.flatnonzero(stream_ids[order][1:] != stream_ids[order][:-1]) + 1
        self._recordings = np.split(order, cuts) if order.size else []
        self._size = int(order.size)

    def __len__(self) -> int:
        return self._size

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` (from its first item) at the next ``iter``."""
        self.epoch = int(epoch)
        self._position = 0

    def order(self, epoch: int | None = None) -> npt.NDArray[np.int64]:
        """The item indices of an epoch (default: the current one), in visiting order."""
        rng = np.random.default_rng([self.seed, self.epoch if epoch is None else epoch])
        chunks: list[npt.NDArray[np.int64]] = []
        for items in self._recordings:
            offset = int(rng.integers(self.chunk))
            bounds = np.arange(offset or self.chunk, items.size, self.chunk)
            chunks.extend(part for part in np.split(items, bounds) if part.size)
        if not chunks:
            return np.zeros(0, dtype=np.int64)
        shuffled = [chunks[i] for i in rng.permutation(len(chunks))]
        return np.concatenate(shuffled).astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        order = self.order()
        while self._position < order.size:
            self._position += 1
            yield int(order[self._position - 1])
        self.epoch += 1
        self._position = 0

    def state_dict(self, consumed: int | None = None) -> dict[str, int]:
        """Where the sampler stands: seed, chunk, size, epoch and position in the epoch.

        Args:
            consumed: items of this epoch the training loop has seen (default: those
                handed out, which a ``DataLoader`` draws ahead of the loop).
        """
        position = self._position if consumed is None else int(consumed)
        return {
            "seed": self.seed,
            "chunk": self.chunk,
            "size": self._size,
            "epoch": self.epoch,
            "position": position,
        }

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Resume where ``state`` stood: the next ``iter`` continues that epoch.

        Raises:
            ConfigError: the state belongs to another seed, chunk or dataset size (its
                order would not be this sampler's).
        """
        for key in ("seed", "chunk", "size"):
            mine = getattr(self, "_size" if key == "size" else key)
            if int(state[key]) != mine:
                raise ConfigError(
                    f"the sampler state has {key}={state[key]}, this sampler {mine}; "
                    "resume with the same dataset, chunk and seed"
                )
        if not 0 <= int(state["position"]) <= self._size:
            raise ConfigError(f"the sampler state's position {state['position']} is out of range")
        self.epoch = int(state["epoch"])
        self._position = int(state["position"])
