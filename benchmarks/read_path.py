"""Issue 18: the training read path on every workload, beside a plain-PyAV keep-open floor.

Data: ``--videos`` demo recordings (default 8) at 640x360, 20 s, textured content, so
x264 places key frames every ~11 frames (at most 30, the GOP) as on real recordings;
variable frame rate, B-frames, half of them starting at a non-zero pts. They are exported
in reference mode; the videos are cached on disk (see ``_common.py``).

Workloads, each repeated ``--reps`` times, odyssey-data and the floor interleaved (their
order alternating between repetitions), on the same items:

1. random single frames: ``FrameDataset[i]`` for ``--frames`` random ``i``, in this process;
2. ``DataLoader(FrameDataset, batch_size=32, shuffle=True, num_workers=2)``: ``--batches``
   batches in ``--rounds`` alternating turns of a fresh DataLoader each (worker start-up
   included, for both);
3. 16-frame clips at 10 fps: ``ClipDataset[i]`` for ``--clips`` random ``i``, in this process.

The floor is the plain PyAV reader a user would write that keeps each video open: one
``av.open`` per video and process (PyAV's default threading), for each item a backward
seek to its (first) pts and a forward decode, pictures converted with the same
``VideoReformatter`` call and returned as the same tensors. Every repetition starts with
nothing open on either side. ``ratio`` = floor seconds / odyssey-data seconds (above 1:
faster than the floor); target >= 0.9 on every workload. Wall time is the target's
measure; CPU time (this process's threads and the DataLoader's exited workers) is printed
beside it, steadier when other jobs share the cores.

4. Peak memory with 100 videos open in one process (a worker), each in a fresh
   subprocess: odyssey-data's decoder cache allowed 100 open decoders and no memory
   bound; the cache with its default bounds; the floor keeping 100 containers open. The
   100 videos are links to the exported ones. Peak RSS (``VmHWM``) minus the RSS before.

5. LeRobot (optional): with ``ODYSSEY_LEROBOT_PYTHON`` naming an interpreter that has
   ``lerobot`` (the environment ``python tests/lerobot_env/env.py`` builds), a LeRobot
   v3.0 copy of the export at the same key frames (:func:`same_gop_copy`: constant rate
   at the export's mean rate, key frames exactly at the source's key-frame positions and
   nowhere else, 2 B-frames, x264 veryfast crf 23, the source's size), and
   ``LeRobotDataset`` runs the same three workloads in that interpreter
   (``_lerobot_read.py``) with the ``pyav`` and ``torchcodec`` backends, once each,
   after ours; torchcodec's FFmpeg is the lerobot environment's PyAV wheel
   (``env.torchcodec_env``). A backend that cannot run says why. Otherwise the
   comparison is skipped and the reason printed.

Run: ``python benchmarks/read_path.py [--reps 3] [--frames 256] [--batches 24] [--clips 48]``
The machine is shared: ratios are taken within one run; the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "lerobot_env"))

import _common as common
import av
import env as lerobot_env
import numpy as np
import polars as pl
import torch
from av.video.frame import PictureType
from av.video.reformatter import Interpolation, VideoReformatter
from torch.utils.data import DataLoader, Dataset

from odyssey_data import open_dataset
from odyssey_data.decoders import DecoderCache
from odyssey_data.errors import OdysseyDataError
from odyssey_data.lerobot import convert_to_lerobot
from odyssey_data.pipeline import export
from odyssey_data.torch import ClipDataset, FrameDataset
from odyssey_data.video import FrameIndex

SIZE = (640, 360)


# -- the floor: plain PyAV, each video kept open ------------------------------------------
class PlainReader:
    """Keeps one container per video open; seeks to each request's first pts."""

    def __init__(self) -> None:
        self.open: dict[str, tuple[Any, Any, VideoReformatter]] = {}

    def frames(self, path: str, wanted: list[int]) -> list[np.ndarray]:
        entry = self.open.get(path)
        if entry is None:
            container = av.open(path)
            entry = (container, container.streams.video[0], VideoReformatter())
            self.open[path] = entry
        container, stream, reformatter = entry
        container.seek(wanted[0], stream=stream, backward=True)
        want, last, out = set(wanted), wanted[-1], {}
        for frame in container.decode(stream):
            if frame.pts in want:
                rgb = reformatter.reformat(
                    frame,
                    width=frame.width,
                    height=frame.height,
                    format="rgb24",
                    interpolation=Interpolation.AREA,
                )
                out[frame.pts] = rgb.to_ndarray()
            if frame.pts >= last:
                break
        return [out[p] for p in wanted]


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()


class PlainFrames(Dataset):
    """The floor for FrameDataset: same items, read by :class:`PlainReader`."""

    def __init__(self, frames: FrameDataset, root: Path) -> None:
        index = frames.index
        self.paths = [str(root / p) for p in index["video_path"]]
        self.pts = index["pts"].to_list()
        self.meta = index.select(
            "prompt", "prompt_index", "stream_id", "frame_index", "timestamp_s"
        ).rows()
        self.reader = PlainReader()

    def __len__(self) -> int:
        return len(self.pts)

    def __getitem__(self, i: int) -> dict[str, Any]:
        (image,) = self.reader.frames(self.paths[i], [self.pts[i]])
        prompt, prompt_index, stream_id, frame_index, stamp = self.meta[i]
        return {
            "image": _tensor(image),
            "prompt": prompt or "",
            "prompt_index": -1 if prompt_index is None else prompt_index,
            "stream_id": stream_id,
            "frame_index": frame_index,
            "timestamp_s": stamp,
        }

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "reader": PlainReader()}


class PlainClips(Dataset):
    """The floor for ClipDataset: same clips, read by :class:`PlainReader`."""

    def __init__(self, clips: ClipDataset, frames: pl.DataFrame, root: Path) -> None:
        refs = {
            (sid, fi): (pts, str(root / path))
            for sid, fi, pts, path in frames.select(
                "stream_id", "frame_index", "pts", "video_path"
            ).iter_rows()
        }
        self.clips = []
        for sid, indices in clips.index.select("stream_id", "frame_indices").iter_rows():
            pts = [refs[sid, int(i)][0] for i in indices]
            self.clips.append((refs[sid, int(indices[0])][1], pts, [int(i) for i in indices]))
        self.reader = PlainReader()

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path, pts, indices = self.clips[i]
        images = self.reader.frames(path, pts)
        return {
            "frames": torch.stack([_tensor(img) for img in images]),
            "frame_indices": torch.tensor(indices, dtype=torch.int32),
        }


# -- measuring ------------------------------------------------------------------------------
def cpu_seconds() -> float:
    """CPU time of this process (every thread) and of its children that have exited."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed(run: Callable[[], None]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``run``."""
    started, cpu = time.perf_counter(), cpu_seconds()
    run()
    return time.perf_counter() - started, cpu_seconds() - cpu


def items(dataset: Any, picks: list[int]) -> Callable[[], None]:
    def run() -> None:
        for i in picks:
            dataset[i]

    return run


def loader(dataset: Any, batches: int, seed: int) -> Callable[[], None]:
    """The first ``batches`` batches of a 2-worker shuffled DataLoader, workers included."""

    def run() -> None:
        generator = torch.Generator().manual_seed(seed)
        data = DataLoader(dataset, batch_size=32, shuffle=True, num_workers=2, generator=generator)
        batches_of = iter(data)
        for _ in range(batches):
            assert next(batches_of)["image"].shape[0] == 32
        del batches_of  # shuts the workers down and waits for them: their CPU time counts

    return run


def loader_rounds(
    url: str, root: Path, batches: int, rounds: int, rep: int
) -> tuple[float, float, float, float]:
    """The DataLoader workload in ``rounds`` alternating turns (ours, floor, floor, ours…).

    Three processes per loader feel the other jobs' load most; short alternating turns
    (each a fresh DataLoader: worker start-up included on both sides) spread that drift
    over both. Returns summed (ours wall, floor wall, ours CPU, floor CPU).
    """
    totals = [0.0, 0.0, 0.0, 0.0]
    per_round = max(1, batches // rounds)
    for turn in range(rounds):
        seed = rep * 1000 + turn
        # Fresh datasets each turn: every turn starts with nothing open, on both sides.
        ours_frames = FrameDataset(url)
        ours = loader(ours_frames, per_round, seed)
        floor = loader(PlainFrames(ours_frames, root), per_round, seed)
        order = [("ours", ours), ("floor", floor)]
        if (turn + rep) % 2:
            order.reverse()
        for who, run in order:
            wall, cpu = timed(run)
            at = 0 if who == "ours" else 1
            totals[at] += wall
            totals[at + 2] += cpu
    return totals[0], totals[1], totals[2], totals[3]


def spread(values: list[float]) -> str:
    return f"{min(values):5.2f} {statistics.median(values):5.2f} {max(values):5.2f}"


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


# -- memory with 100 videos open (each configuration in a fresh process) --------------------
def memory_child(config: str, dataset_url: str, links: str, count: int) -> None:
    """Open ``count`` videos in this process, print peak RSS growth as JSON."""
    ds = open_dataset(dataset_url)
    frames = ds.frames.select("stream_id", "pts", "is_keyframe", "video_path").collect()
    videos = sorted(frames["video_path"].unique())
    indexes = {
        v: FrameIndex.of(g["pts"].to_numpy(), g["is_keyframe"].to_numpy())
        for (v,), g in frames.group_by(["video_path"])
    }
    rng = random.Random(0)
    plan = []
    for n in range(count):
        video = videos[n % len(videos)]
        link = str(Path(links) / f"{n:03d}.mp4")
        plan.append((link, indexes[video], int(rng.choice(indexes[video].pts.tolist()))))

    def rss(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
        return 0

    before = rss("VmRSS:")
    result: dict[str, Any] = {"config": config}
    if config == "floor":
        reader = PlainReader()
        for link, _, pts in plan:
            reader.frames(link, [pts])
        result["open"] = len(reader.open)
    else:
        unbounded = config == "unbounded"
        cache = DecoderCache(max_open=count, max_bytes=None) if unbounded else DecoderCache()
        for link, index, pts in plan:
            cache.read(link, lambda link=link: link, [pts], index=index, threads=1)
        result["open"] = len(cache)
        result["estimate"] = cache.nbytes
        result["max_open"], result["max_bytes"] = cache.max_open, cache.max_bytes
    result["peak"] = rss("VmHWM:") - before
    print(json.dumps(result))


def measure_memory(dataset_url: str, root: Path, tmp: str, count: int) -> dict[str, Any]:
    links = Path(tmp) / "links"
    links.mkdir()
    videos = sorted((root / "videos").glob("*.mp4"))
    for n in range(count):
        os.symlink(videos[n % len(videos)], links / f"{n:03d}.mp4")
    out = {}
    for config in ("unbounded", "default", "floor"):
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--memory-child",
                config,
                dataset_url,
                str(links),
                str(count),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(common.ROOT)},
        )
        out[config] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


# -- LeRobot, when its environment exists ---------------------------------------------------
def reencode_same_gop(source: str, target: str, shows: np.ndarray, fps: int) -> tuple[int, int]:
    """Write ``target``: frame ``k`` shows source frame ``shows[k]`` at ``k / fps`` s.

    Key frames sit exactly where the source's do: on the first frame showing each source
    key frame's index or a later one (a forced IDR there, none elsewhere: no key-frame
    interval, no scene cuts). x264 as the demo recordings are encoded (preset veryfast,
    2 B-frames, crf 23, frame threads), at the source's size. Returns (frames, key frames).
    """
    with av.open(source) as src:
        stream = src.streams.video[0]
        source_keys = [
            i
            for i, packet in enumerate(
                sorted((p for p in src.demux(stream) if p.pts is not None), key=lambda p: p.pts)
            )
            if packet.is_keyframe
        ]
    key_rows = {int(np.searchsorted(shows, k)) for k in source_keys} & set(range(len(shows)))
    base = Fraction(1, fps)
    with (
        av.open(source) as src,
        av.open(target, "w", format="mp4", options={"movflags": "+faststart"}) as out,
    ):
        stream = src.streams.video[0]
        stream.thread_type = "AUTO"
        encoder = out.add_stream("libx264", rate=fps)
        encoder.width, encoder.height = stream.width, stream.height
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = encoder.codec_context.time_base = base
        encoder.thread_type = "FRAME"
        encoder.options = {
            "preset": "veryfast",
            "bf": "2",
            "crf": "23",
            "forced-idr": "1",
            "x264-params": "keyint=infinite:scenecut=0",
        }
        row = 0
        for index, decoded in enumerate(src.decode(stream)):
            if row >= len(shows):
                break
            frame = decoded.reformat(format="yuv420p")
            while row < len(shows) and shows[row] == index:
                frame.pts, frame.time_base = row, base
                # A decoded frame carries its own picture type, which x264 would obey.
                frame.pict_type = PictureType.I if row in key_rows else PictureType.NONE
                for packet in encoder.encode(frame):
                    out.mux(packet)
                row += 1
        for packet in encoder.encode():
            out.mux(packet)
    with av.open(target) as done:
        packets = sorted((p for p in done.demux(video=0) if p.pts is not None), key=lambda p: p.pts)
        written = {i for i, packet in enumerate(packets) if packet.is_keyframe}
    if len(packets) != len(shows) or written != key_rows:
        raise RuntimeError(
            f"{target}: {len(packets)} frames, key frames at {sorted(written)[:20]}..., "
            f"wanted {len(shows)} frames with key frames at {sorted(key_rows)[:20]}..."
        )
    return len(packets), len(written)


def same_gop_copy(url: str, root: Path, out: str) -> str:
    """A LeRobot v3.0 copy of the export whose videos have the source's GOPs.

    ``convert_to_lerobot`` at the export's mean rate (rounded: LeRobot rates are
    integers) writes the tables; each episode's video is then replaced by a re-encode
    of its source recording where frame ``k`` is source frame ``k`` (each source frame
    once, in order; the last repeated if the episode has more rows than the recording
    has frames), so key frames sit at the same frame positions (:func:`reencode_same_gop`).
    The rows' ``odyssey.source_*`` columns no longer describe these videos: a copy for
    timing only. Returns a description of the copy.
    """
    frames = open_dataset(url).frames.select("stream_id", "timestamp_s").collect()
    per_stream = frames.group_by("stream_id").agg(
        (pl.len() - 1) / (pl.col("timestamp_s").max() - pl.col("timestamp_s").min())
    )
    fps = round(float(per_stream[:, 1].mean()))
    convert_to_lerobot(open_dataset(url), out, fps=fps, language=False, repo_id="bench")
    key = "observation.images.main"
    episodes = pl.read_parquet(f"{out}/meta/episodes/*/*.parquet")
    counts = dict(frames.group_by("stream_id").len().iter_rows())
    recordings = open_dataset(url).recordings.select("stream_id", "video_path").collect()
    paths = dict(recordings.iter_rows())
    totals = [0, 0, 0]
    for ep in episodes.iter_rows(named=True):
        source_frames = counts[ep["stream_id"]]
        shows = np.minimum(np.arange(ep["length"]), source_frames - 1)
        chunk, number = ep[f"videos/{key}/chunk_index"], ep[f"videos/{key}/file_index"]
        video = f"{out}/videos/{key}/chunk-{chunk:03d}/file-{number:03d}.mp4"
        written, keys = reencode_same_gop(str(root / paths[ep["stream_id"]]), video, shows, fps)
        totals[0] += written
        totals[1] += keys
        totals[2] += source_frames
    return (
        f"a LeRobot v3.0 copy at {fps} fps: {totals[0]} frames for the {totals[2]} source "
        f"frames (frame k = source frame k), {totals[1]} key frames at the source's "
        "key-frame positions (forced IDR, none elsewhere), 2 B-frames, x264 veryfast "
        "crf 23 as the source"
    )


class LeRobotSide:
    """``LeRobotDataset`` on the same-GOP copy, run in lerobot's Python per repetition."""

    def __init__(self, python: str, url: str, root: Path, tmp: str) -> None:
        self.python, self.tmp, self.root = python, tmp, f"{tmp}/lerobot"
        started = time.perf_counter()
        self.note = same_gop_copy(url, root, self.root)
        self.note += f"; built in {time.perf_counter() - started:.0f} s"
        episodes = pl.read_parquet(f"{self.root}/meta/episodes/*/*.parquet")
        # Frame k of an episode's video is source frame k: our item (stream, frame k) is
        # LeRobot's row dataset_from_index + k, the same picture from the same GOP.
        self.first_row = dict(episodes.select("stream_id", "dataset_from_index").iter_rows())
        self.env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "HF_HOME": f"{tmp}/hf-home",
            "PYTHONWARNINGS": "ignore",
            # torchcodec's FFmpeg: the lerobot environment's PyAV wheel (no system FFmpeg).
            **lerobot_env.torchcodec_env(python),
        }

    def row(self, stream_id: str, frame_index: int) -> int:
        return int(self.first_row[stream_id]) + int(frame_index)

    def repetition(
        self,
        theirs: dict[str, list[dict[str, Any]]],
        frames: list[int],
        clips: list[int],
        args: argparse.Namespace,
        rep: int,
    ) -> None:
        """One repetition per backend, appended to ``theirs`` (none after a failure)."""
        for backend, results in theirs.items():
            if not (results and "error" in results[-1]):
                results.append(self.run(backend, frames, clips, args, rep))

    def run(
        self, backend: str, frames: list[int], clips: list[int], args: argparse.Namespace, rep: int
    ) -> dict[str, Any]:
        """Wall and CPU seconds per workload, or ``{"error": why}``."""
        picks = Path(self.tmp, "lerobot-picks.json")
        picks.write_text(json.dumps({"frames": frames, "clips": clips}))
        report = Path(self.tmp, f"lerobot-{backend}.json")
        report.unlink(missing_ok=True)
        command = [
            self.python,
            str(Path(__file__).with_name("_lerobot_read.py")),
            self.root,
            "bench",
            backend,
            str(picks),
            str(args.batches),
            str(args.rounds),
            str(rep),
            str(report),
        ]
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, check=False)
        if done.returncode or not report.exists():
            return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:300]}
        result: dict[str, Any] = json.loads(report.read_text())
        return result


def lerobot_side(url: str, root: Path, tmp: str) -> LeRobotSide | str:
    """The LeRobot side of the comparison, or why there is none."""
    python = os.environ.get("ODYSSEY_LEROBOT_PYTHON")
    if not python:
        return (
            "skipped: ODYSSEY_LEROBOT_PYTHON is not set (it names the Python >= 3.12 "
            "with lerobot that issue 16's tests build: python tests/lerobot_env/env.py)"
        )
    try:
        return LeRobotSide(python, url, root, tmp)
    except OdysseyDataError as exc:
        return f"skipped: the conversion to LeRobot failed ({str(exc)[:300]})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--batches", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=4, help="DataLoader turns per repetition")
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--open", type=int, default=100, help="videos open for the memory figure")
    parser.add_argument("--memory-child", nargs=4, metavar=("CONFIG", "URL", "LINKS", "N"))
    args = parser.parse_args(argv)
    if args.memory_child:
        config, url, links, count = args.memory_child
        memory_child(config, url, links, int(count))
        return
    catalog = common.cached_catalog(
        args.videos, seed=18, width=SIZE[0], height=SIZE[1], seconds=args.seconds, content="noise"
    )
    with tempfile.TemporaryDirectory(prefix="odyssey-bench-") as tmp:
        with common.serve(catalog, page_cap=100) as server:
            export(output=f"{tmp}/ds", api_url=server.base_url, api_key=server.api_key, workers=2)
        root = Path(tmp, "ds")
        url = str(root)
        frames = (
            open_dataset(url)
            .frames.select("stream_id", "frame_index", "pts", "is_keyframe", "video_path")
            .collect()
        )
        gaps = [
            int(np.diff(np.r_[np.flatnonzero(g["is_keyframe"].to_numpy()), g.height]).max())
            for _, g in frames.group_by("stream_id")
        ]
        spacing = frames.height / int(frames["is_keyframe"].sum())
        print(
            f"read path: {args.videos} recordings {SIZE[0]}x{SIZE[1]}, {args.seconds:.0f} s, "
            f"{frames.height} frames; key frames every {spacing:.1f} frames (max {max(gaps)})"
        )
        print(f"  load average before: {load()}  (2 cores, shared)", flush=True)
        ratios: dict[str, list[float]] = {"frames": [], "loader": [], "clips": []}
        cpu_ratios: dict[str, list[float]] = {k: [] for k in ratios}
        seconds: dict[str, list[tuple[float, float, float, float]]] = {k: [] for k in ratios}
        side = lerobot_side(url, root, tmp)
        if isinstance(side, LeRobotSide):
            print(f"  LeRobot: {side.note}", flush=True)
        backends = ("pyav", "torchcodec")
        theirs: dict[str, list[dict[str, Any]]] = {b: [] for b in backends}
        for rep in range(args.reps):
            rng = random.Random(rep)
            ours_frames = FrameDataset(url)
            floor_frames = PlainFrames(ours_frames, root)
            ours_clips = ClipDataset(url, length=16, fps=10)
            floor_clips = PlainClips(ours_clips, frames, root)
            picks = [rng.randrange(len(ours_frames)) for _ in range(args.frames)]
            clip_picks = [rng.randrange(len(ours_clips)) for _ in range(args.clips)]
            runs = {
                "frames": (items(ours_frames, picks), items(floor_frames, picks)),
                "loader": (lambda: None, lambda: None),  # in rounds, below
                "clips": (items(ours_clips, clip_picks), items(floor_clips, clip_picks)),
            }

            if isinstance(side, LeRobotSide):
                index = ours_frames.index.select("stream_id", "frame_index").rows()
                starts = ours_clips.index.select("stream_id", "frame_indices").rows()
                same = (
                    [side.row(*index[i]) for i in picks],
                    [side.row(starts[i][0], starts[i][1][0]) for i in clip_picks],
                )

            if rep % 2 and isinstance(side, LeRobotSide):
                side.repetition(theirs, *same, args, rep)
            for name, (ours, floor) in runs.items():
                if name == "loader":
                    ours_s, floor_s, ours_cpu, floor_cpu = loader_rounds(
                        url, root, args.batches, args.rounds, rep
                    )
                elif rep % 2:
                    floor_s, floor_cpu = timed(floor)
                    ours_s, ours_cpu = timed(ours)
                else:
                    ours_s, ours_cpu = timed(ours)
                    floor_s, floor_cpu = timed(floor)
                ratios[name].append(floor_s / ours_s)
                cpu_ratios[name].append(floor_cpu / ours_cpu)
                seconds[name].append((ours_s, floor_s, ours_cpu, floor_cpu))
            if not rep % 2 and isinstance(side, LeRobotSide):
                side.repetition(theirs, *same, args, rep)
            print(
                f"  repetition {rep + 1}: wall "
                + ", ".join(f"{k} {v[-1]:.2f}" for k, v in ratios.items())
                + "; CPU "
                + ", ".join(f"{k} {v[-1]:.2f}" for k, v in cpu_ratios.items())
                + f"  (load {load()})",
                flush=True,
            )
        labels = {
            "frames": f"random single frames, FrameDataset[i] x {args.frames}",
            "loader": f"DataLoader batch 32, shuffle, 2 workers x {args.batches} batches",
            "clips": f"16-frame clips at 10 fps, ClipDataset[i] x {args.clips}",
        }
        print()
        print("  ratio = floor / odyssey-data (above 1: faster than the floor); target >= 0.90")
        print(
            f"  {'workload':56} {'wall s ours/floor':>17}  {'wall ratio min med max':>22}"
            f"  {'CPU s ours/floor':>16}  {'CPU ratio min med max':>21}"
        )
        for name, label in labels.items():
            med = [statistics.median(row[k] for row in seconds[name]) for k in range(4)]
            print(
                f"  {label:56} {med[0]:8.2f}/{med[1]:<8.2f}  {spread(ratios[name]):>22}"
                f"  {med[2]:7.2f}/{med[3]:<8.2f}  {spread(cpu_ratios[name]):>21}"
            )
        print(f"  load average after: {load()}")
        print()
        memory = measure_memory(url, root, tmp, args.open)
        print(f"peak memory, {args.open} videos opened in one process (a worker)")
        for config, label in (
            ("unbounded", "odyssey-data, DecoderCache(max_open=100, max_bytes=None)"),
            ("default", "odyssey-data, DecoderCache() (64 open, 512 MiB)"),
            ("floor", "plain PyAV keeping every video open"),
        ):
            m = memory[config]
            estimate = f", estimate {m['estimate'] / 1e6:.0f} MB" if "estimate" in m else ""
            print(
                f"  {label:58} {m['peak'] / 1e6:7.0f} MB   {m['open']} open"
                f" ({m['peak'] / 1e6 / max(1, m['open']):.1f} MB each){estimate}"
            )
        print()
        if not isinstance(side, LeRobotSide):
            print(f"LeRobot comparison: {side}")
            return
        print(f"LeRobot comparison: {side.note}")
        print(
            "  ratio = LeRobot / odyssey-data per repetition, same items (above 1: "
            "odyssey-data is faster); targets vs torchcodec: frames and DataLoader >= 1.2, "
            "clips >= 2"
        )
        print(
            f"  {'backend':10} {'workload':56} {'wall s':>7}  {'wall ratio min med max':>22}"
            f"  {'CPU ratio min med max':>21}"
        )
        for backend, results in theirs.items():
            failed = [r["error"] for r in results if "error" in r]
            if failed:
                print(f"  {backend:10} could not run: {failed[0]}")
                continue
            for name, label in labels.items():
                pairs = list(zip(results, seconds[name], strict=False))
                wall = [r[name][0] / ours[0] for r, ours in pairs]
                cpu = [r[name][1] / ours[2] for r, ours in pairs]
                median_s = statistics.median(r[name][0] for r in results)
                print(
                    f"  {backend:10} {label:56} {median_s:7.2f}  {spread(wall):>22}"
                    f"  {spread(cpu):>21}"
                )
        print(f"  load average after: {load()}")


if __name__ == "__main__":
    main()
