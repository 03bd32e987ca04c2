"""The training read path: kept decoders, key-frame positioning, threads, the sampler.

Every decoded picture is compared with a plain decode of the whole video from its start
(``decode_frames``): frames must stay bit-identical whatever the access order, the
threads or the cache, on videos with variable frame rate, B-frames and a non-zero
first pts.
"""

from __future__ import annotations

import itertools
import multiprocessing
import pickle
import random
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import DemoExport

from odyssey_data import open_dataset, video
from odyssey_data.decoders import DecoderCache
from odyssey_data.errors import ConfigError, DecodeError
from odyssey_data.video import (
    LONG_RUN_FRAMES,
    FrameIndex,
    VideoReader,
    available_cores,
    decode_frames,
    encode_video,
    probe_frames,
)
from odyssey_data.video import reader as video_reader
from odyssey_data.video.index import SPLIT_SHARE

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader  # noqa: E402

from odyssey_data.torch import ClipDataset, FrameDataset, LocalitySampler  # noqa: E402


def make_frames(n: int, start_pts: int, seed: int = 0):
    """Moving pictures at an irregular rate (VFR), from a non-zero pts."""
    rng = np.random.default_rng(seed)
    pts = start_pts
    for i in range(n):
        img = rng.integers(0, 60, (96, 160, 3), dtype=np.uint8)
        img[:, :, 0] += np.uint8(i * 3 % 190)
        img[20:44, (i * 3) % 130 : (i * 3) % 130 + 30] = 250
        yield img, pts
        pts += int(3000 * rng.uniform(0.6, 1.5))


@pytest.fixture(scope="module")
def keyed_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """150 frames, a key frame every 12 (and wherever x264 sees a cut), 2 B-frames."""
    path = tmp_path_factory.mktemp("read-path") / "keyed.mp4"
    encode_video(path, make_frames(150, 45_000), width=160, height=96, gop=12, bframes=2)
    return path


@pytest.fixture(scope="module")
def timing(keyed_video: Path) -> video.FrameTiming:
    return probe_frames(keyed_video)


@pytest.fixture(scope="module")
def index(timing: video.FrameTiming) -> FrameIndex:
    return FrameIndex.of(timing.pts, timing.is_keyframe)


@pytest.fixture(scope="module")
def reference(keyed_video: Path) -> dict[int, np.ndarray]:
    """Every picture of a plain decode from the start, by pts."""
    return dict(decode_frames(keyed_video))


def test_the_test_video_has_what_the_reader_must_handle(
    timing: video.FrameTiming, keyed_video: Path
) -> None:
    assert timing.first_pts == 45_000
    assert len(set(np.diff(timing.pts).tolist())) > 10  # variable frame rate
    assert int(timing.is_keyframe.sum()) >= 10
    import av

    with av.open(str(keyed_video)) as container:
        dts = [p.dts for p in container.demux(video=0) if p.size]
    assert dts != sorted(timing.pts.tolist())  # B-frames: decode order differs


# -- the positioned reader -----------------------------------------------------------------
def access_patterns(pts: list[int], seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    patterns = [[p] for p in rng.sample(pts, 25)]  # isolated frames, random order
    patterns += [pts[i : i + 16 : 3] for i in rng.sample(range(len(pts) - 16), 5)]  # clips
    patterns += [[pts[-1]], [pts[0]], [pts[0]], pts[::-7]]  # ends, a repeat, backwards
    patterns += [rng.sample(pts, 9) for _ in range(3)]  # scattered batches
    return patterns


@pytest.mark.parametrize("threads", [1, 2])
def test_a_kept_reader_gives_the_pictures_of_a_full_decode(
    keyed_video: Path,
    timing: video.FrameTiming,
    index: FrameIndex,
    reference: dict[int, np.ndarray],
    threads: int,
) -> None:
    pts = timing.pts.tolist()
    with VideoReader(keyed_video, index=index, threads=threads) as reader:
        planned = 0
        for wanted in access_patterns(pts, seed=threads):
            plan = index.plan(sorted(set(wanted)), reader.position, video.min_forward_skip(threads))
            assert plan is not None
            before = reader.decoded
            images = reader.read(wanted)
            assert len(images) == len(wanted)
            for p, image in zip(wanted, images, strict=True):
                assert np.array_equal(image, reference[p]), p
            # Each seek lands on the key frame the frames table names: nothing more is
            # decoded than the plan counts (a repeat of the last frame costs nothing).
            assert reader.decoded - before == plan[0]
            planned += plan[0]
        assert reader.opens == 1
        assert reader.decoded <= planned


def test_the_reader_decodes_forward_unless_a_key_frame_lies_between(
    keyed_video: Path, timing: video.FrameTiming, index: FrameIndex
) -> None:
    pts = timing.pts.tolist()
    keys = [i for i, key in enumerate(timing.is_keyframe.tolist()) if key]
    k1, k2 = keys[2], keys[3]
    with VideoReader(keyed_video, index=index) as reader:
        reader.read([pts[k1 + 1]])
        seeks, decoded = reader.seeks, reader.decoded
        reader.read([pts[k1 + 3]])  # same group of pictures, ahead: decode forward
        assert (reader.seeks, reader.decoded) == (seeks, decoded + 2)
        reader.read([pts[k2 + 1]])  # a key frame in between: seek to it
        assert (reader.seeks, reader.decoded) == (seeks + 1, decoded + 2 + 2)
        reader.read([pts[k2]])  # behind: seek back
        assert reader.seeks == seeks + 2


def test_needs_seek_and_plan() -> None:
    index = FrameIndex.of(np.arange(0, 100, 10), [i % 4 == 0 for i in range(10)])
    assert not index.needs_seek(None, 30)  # before the second key frame: from the start
    assert index.needs_seek(None, 40)
    assert not index.needs_seek(40, 70)
    assert not index.needs_seek(70, 80)  # the key frame is the next frame: decode on
    assert index.needs_seek(60, 90)  # a seek skips frame 70
    assert not index.needs_seek(60, 90, min_skip=2)
    assert index.needs_seek(50, 50)
    assert index.plan([30]) == (4, 0)
    assert index.plan([50, 60, 90]) == (2 + 1 + 2, 2)
    assert index.plan([50, 60, 90], min_skip=2) == (2 + 1 + 3, 1)
    assert FrameIndex([0, 40]).plan([50]) is None


def test_threads_are_chosen_per_request(index: FrameIndex, timing: video.FrameTiming) -> None:
    pts = timing.pts.tolist()
    assert index.threads_for([pts[40]], budget=4) == 1  # an isolated frame
    clip = pts[30 : 30 + LONG_RUN_FRAMES + 4]
    assert index.threads_for(clip, budget=4) == 4  # a long run
    assert index.threads_for(clip, budget=1) == 1
    scattered = pts[5::24]  # one frame every other group of pictures: short runs
    assert index.threads_for(scattered, budget=2) == 1


def test_a_long_run_is_shared_out_at_key_frames(
    index: FrameIndex, timing: video.FrameTiming
) -> None:
    pts = timing.pts.tolist()
    rng = random.Random(3)
    requests = [pts[i : i + 48 : 3] for i in rng.sample(range(len(pts) - 48), 20)]
    requests += [pts[i : i + 40] for i in rng.sample(range(len(pts) - 40), 5)]
    requests += [pts, pts[::5], rng.sample(pts, 30)]
    split = 0
    for request in requests:
        wanted = sorted(set(request))
        total = index.plan(wanted)
        assert total is not None
        for parts in (2, 3, 4):
            shares = index.split(request, parts)
            assert 1 <= len(shares) <= parts
            assert sorted(p for share in shares for p in share) == wanted
            assert all(share == sorted(share) and share for share in shares)
            if len(shares) == 1:
                continue
            split += 1
            # Each share decodes from its own key frames: together no more than one
            # decoder reading the whole request, the busiest at most SPLIT_SHARE of it.
            costs = [index.plan(share) for share in shares]
            frames = [cost[0] for cost in costs if cost is not None]
            assert sum(frames) == total[0]
            assert max(frames) <= SPLIT_SHARE * total[0]
    assert split >= 50


def test_what_is_not_shared_out(index: FrameIndex, timing: video.FrameTiming) -> None:
    pts = timing.pts.tolist()
    clip = pts[30:78:3]
    assert len(index.split(clip, 2)) == 2
    assert index.split(clip, 1) == [clip]  # one thread
    assert index.split(clip[:3], 2) == [clip[:3]]  # short: under LONG_RUN_FRAMES decoded
    assert index.split([pts[40]], 4) == [[pts[40]]]
    assert FrameIndex(index.key_pts).split(clip, 2) == [clip]  # frames not counted
    one_group = FrameIndex([0], range(0, 3000, 10))  # a single key frame: nowhere to cut
    assert one_group.split(list(range(0, 3000, 30)), 2) == [list(range(0, 3000, 30))]
    # A key frame near the end only: the busiest part would decode nearly everything.
    lopsided = FrameIndex([0, 2900], range(0, 3000, 10))
    assert lopsided.split(list(range(0, 3000, 30)), 2) == [list(range(0, 3000, 30))]


def test_the_reader_opens_without_the_probe_decode(
    keyed_video: Path, index: FrameIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = video_reader.open_video
    calls = []

    def spy(source: object, what: str, *, packets_only: bool = False) -> object:
        calls.append(packets_only)
        return real_open(source, what, packets_only=packets_only)  # type: ignore[arg-type]

    monkeypatch.setattr(video_reader, "open_video", spy)
    with VideoReader(keyed_video, index=index) as reader:
        reader.read([int(index.key_pts[3])])
    assert calls == [True]


def test_a_seek_landing_past_the_target_reads_from_the_start(
    keyed_video: Path, timing: video.FrameTiming, index: FrameIndex, reference: dict
) -> None:
    target = int(timing.pts[70])
    with VideoReader(keyed_video, index=index) as reader:
        # A container whose seek lands further than the key frame index says.
        reader._seek_timestamp = lambda key: int(timing.pts[-1])  # type: ignore[method-assign]
        (image,) = reader.read([target])
        assert reader.opens == 2
    assert np.array_equal(image, reference[target])


def test_a_pts_the_video_does_not_present_is_an_error(
    keyed_video: Path, timing: video.FrameTiming, index: FrameIndex
) -> None:
    with VideoReader(keyed_video, index=index) as reader:
        with pytest.raises(DecodeError, match="no frame was presented"):
            reader.read([int(timing.pts[10]) + 1])
        # The reader stays usable.
        assert len(reader.read([int(timing.pts[11])])) == 1


def test_reading_from_a_file_object(keyed_video: Path, index: FrameIndex, reference: dict) -> None:
    handle = keyed_video.open("rb")
    with VideoReader(handle, index=index, close_source=True) as reader:
        target = int(index.key_pts[5]) + 0
        (image,) = reader.read([target])
    assert handle.closed
    assert np.array_equal(image, reference[target])


# -- the decoder cache ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def copies(keyed_video: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("copies")
    out = []
    for name in "abc":
        shutil.copy(keyed_video, folder / f"{name}.mp4")
        out.append(str(folder / f"{name}.mp4"))
    return out


def read_one(
    cache: DecoderCache, path: str, index: FrameIndex, pts: int, **kw: object
) -> np.ndarray:
    (image,) = cache.read(path, lambda: path, [pts], index=index, **kw)  # type: ignore[arg-type]
    return image


def test_the_cache_reuses_one_decoder_per_video(
    copies: list[str], timing: video.FrameTiming, index: FrameIndex, reference: dict
) -> None:
    cache = DecoderCache()
    picks = random.Random(3).sample(timing.pts.tolist(), 20)
    for p in picks:
        assert np.array_equal(read_one(cache, copies[0], index, p), reference[p])
    assert (cache.opened, cache.reused, len(cache)) == (1, 19, 1)
    cache.close()
    assert len(cache) == 0


def test_the_cache_closes_the_least_recently_used_beyond_its_count(
    copies: list[str], index: FrameIndex
) -> None:
    cache = DecoderCache(max_open=2)
    key = int(index.key_pts[1])
    a, b, c = copies
    for path in (a, b, a, c):
        read_one(cache, path, index, key)
    assert (len(cache), cache.opened, cache.evicted) == (2, 3, 1)
    read_one(cache, a, index, key)  # still open
    assert cache.opened == 3
    read_one(cache, b, index, key)  # b was the least recently used: closed, reopened
    assert cache.opened == 4


def test_the_cache_stays_within_its_memory_bound(copies: list[str], index: FrameIndex) -> None:
    probe = DecoderCache()
    read_one(probe, copies[0], index, int(index.key_pts[0]))
    one = probe.nbytes
    assert one > 0
    cache = DecoderCache(max_bytes=int(one * 1.5))
    for path in copies:
        read_one(cache, path, index, int(index.key_pts[0]))
    assert len(cache) == 1
    assert cache.nbytes <= cache.max_bytes  # type: ignore[operator]
    assert cache.evicted == 2


def test_a_pickled_cache_keeps_only_its_settings(copies: list[str], index: FrameIndex) -> None:
    cache = DecoderCache(max_open=7, max_bytes=1 << 30)
    read_one(cache, copies[0], index, int(index.key_pts[0]))
    copy = pickle.loads(pickle.dumps(cache))
    assert (copy.max_open, copy.max_bytes, len(copy)) == (7, 1 << 30, 0)


def _child_reads(cache: DecoderCache, path: str, index: FrameIndex, clip: list[int], queue) -> None:
    start = len(cache)
    images = cache.read(path, lambda: path, clip, index=index, threads=2)
    queue.put((start, [image.tobytes() for image in images]))


def test_a_forked_worker_builds_its_own_decoders(
    copies: list[str], timing: video.FrameTiming, index: FrameIndex, reference: dict
) -> None:
    cache = DecoderCache()
    clip = timing.pts[40 : 40 + LONG_RUN_FRAMES + 8].tolist()
    cache.read(copies[0], lambda: copies[0], clip, index=index, threads=2)  # two decoders
    keys_only = FrameIndex(index.key_pts)  # frames not counted: no split, frame threads
    cache.read(copies[0], lambda: copies[0], clip, index=keys_only, threads=2)
    assert sorted(key[1:] for key in cache._idle) == [(1, 0), (1, 1), (2, 0)]
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_reads, args=(cache, copies[0], index, clip, queue))
    child.start()
    start, images = queue.get(timeout=120)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert start == 0  # nothing inherited
    assert images == [reference[p].tobytes() for p in clip]
    # The parent closed its idle decoders before the fork and reads on.
    assert len(cache) == 0
    assert np.array_equal(read_one(cache, copies[0], index, clip[3]), reference[clip[3]])


def test_threads_share_a_cache_without_sharing_a_decoder(
    copies: list[str], timing: video.FrameTiming, index: FrameIndex, reference: dict
) -> None:
    cache = DecoderCache()
    pts = timing.pts.tolist()
    failures: list[object] = []

    def work(seed: int) -> None:
        try:
            for p in random.Random(seed).sample(pts, 15):
                if not np.array_equal(read_one(cache, copies[0], index, p), reference[p]):
                    failures.append(p)
        except Exception as exc:  # reported below
            failures.append(exc)

    workers = [threading.Thread(target=work, args=(seed,)) for seed in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    assert len(cache) == 1


@pytest.mark.parametrize("threads", [2, 3])
def test_a_shared_out_read_gives_the_pictures_of_a_full_decode(
    copies: list[str], timing: video.FrameTiming, index: FrameIndex, reference: dict, threads: int
) -> None:
    cache = DecoderCache()
    pts = timing.pts.tolist()
    rng = random.Random(threads)
    for start in rng.sample(range(len(pts) - 48), 12):
        clip = pts[start : start + 48 : 3]
        images = cache.read(copies[0], lambda: copies[0], clip[::-1], index=index, threads=threads)
        assert [image.tobytes() for image in images] == [reference[p].tobytes() for p in clip[::-1]]
    assert cache.parallel == 12
    assert {key[1] for key in cache._idle} == {1}  # one-thread decoders, one per share
    assert len(cache) == threads
    assert not any(t.name == "odyssey-data-decode" for t in threading.enumerate())


def test_a_share_that_fails_fails_the_read_and_leaves_no_thread(
    copies: list[str], tmp_path: Path, timing: video.FrameTiming, index: FrameIndex
) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)

    def source() -> str:  # the share read on the helper thread finds a bad file
        helper = threading.current_thread().name == "odyssey-data-decode"
        return str(bad) if helper else copies[0]

    cache = DecoderCache()
    clip = timing.pts[30:78:3].tolist()
    with pytest.raises(DecodeError, match="not a readable video"):
        cache.read("v", source, clip, index=index, threads=2)
    assert not any(t.name == "odyssey-data-decode" for t in threading.enumerate())
    assert [key[2] for key in cache._idle] == [0]  # the good share's decoder is kept


def test_a_bad_video_leaves_nothing_open(tmp_path: Path, index: FrameIndex) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    cache = DecoderCache()
    with pytest.raises(DecodeError, match="not a readable video"):
        read_one(cache, str(bad), index, 0)
    assert len(cache) == 0


def test_cache_bounds_are_checked() -> None:
    with pytest.raises(ConfigError):
        DecoderCache(max_open=0)
    with pytest.raises(ConfigError):
        DecoderCache(max_bytes=0)


# -- the datasets over the demo export (VFR, B-frames, non-zero start pts) ------------------
@pytest.fixture(scope="module")
def demo_reference(demo_export: DemoExport) -> dict[tuple[str, int], np.ndarray]:
    """Every frame of every exported video from a plain full decode, by (stream, index)."""
    frames = open_dataset(str(demo_export.output)).frames.collect()
    out = {}
    for (sid, path), group in frames.group_by(["stream_id", "video_path"]):
        by_pts = dict(decode_frames(demo_export.output / path))
        for fi, pts in group.select("frame_index", "pts").iter_rows():
            out[sid, fi] = by_pts[pts]
    return out


def test_the_demo_export_has_what_the_reader_must_handle(demo_export: DemoExport) -> None:
    frames = open_dataset(str(demo_export.output)).frames.collect()
    first = frames.group_by("stream_id").agg(__import__("polars").col("pts").min().alias("first"))
    assert (first["first"] > 0).any()
    assert (first["first"] == 0).any()
    assert frames["is_keyframe"].sum() > frames["stream_id"].n_unique()


def test_every_frame_item_equals_a_full_decode(
    demo_export: DemoExport, demo_reference: dict
) -> None:
    frames = FrameDataset(str(demo_export.output))
    order = list(range(len(frames)))
    random.Random(5).shuffle(order)
    for i in order:
        item = frames[i]
        expected = demo_reference[item["stream_id"], item["frame_index"]]
        assert torch.equal(item["image"].permute(1, 2, 0), torch.from_numpy(expected))
    assert frames.decoders.opened == len(frames.decoders) == demo_export.report.exported


def test_a_batch_equals_its_items(demo_export: DemoExport) -> None:
    frames = FrameDataset(str(demo_export.output), size=(64, 48))
    picks = [*random.Random(2).sample(range(len(frames)), 40), 7, 7]
    batch = frames.__getitems__(picks)
    alone = FrameDataset(str(demo_export.output), size=(64, 48))
    for i, item in zip(picks, batch, strict=True):
        other = alone[i]
        assert torch.equal(item["image"], other["image"])
        assert {k: v for k, v in item.items() if k != "image"} == {
            k: v for k, v in other.items() if k != "image"
        }


def test_clip_items_equal_a_full_decode(demo_export: DemoExport, demo_reference: dict) -> None:
    clips = ClipDataset(str(demo_export.output), length=LONG_RUN_FRAMES + 2, stride=9)
    for i in random.Random(1).sample(range(len(clips)), 12):
        item = clips[i]
        for fi, picture in zip(item["frame_indices"].tolist(), item["frames"], strict=True):
            expected = demo_reference[item["stream_id"], fi]
            assert torch.equal(picture.permute(1, 2, 0), torch.from_numpy(expected))
    # Clips are long runs: shared out among one decoder per core where this process has
    # cores to spare.
    if available_cores() > 1:
        assert clips.decoders.parallel > 0
        assert {slot for (_, _, slot) in clips.decoders._idle} == {0, 1}
    else:
        assert clips.decoders.parallel == 0


def test_load_frames_with_kept_decoders_equals_without(
    demo_export: DemoExport, demo_reference: dict
) -> None:
    ds = open_dataset(str(demo_export.output))
    picks = ds.frames.collect().sample(60, seed=4)
    cache = DecoderCache()
    kept = ds.load_frames(picks, decoders=cache)
    again = ds.load_frames(picks.reverse(), decoders=cache)
    plain = ds.load_frames(picks)
    requests = picks.select("stream_id", "frame_index").rows()
    for (sid, fi), a, b in zip(requests, kept, plain, strict=True):
        assert np.array_equal(a, b)
        assert np.array_equal(a, demo_reference[sid, fi])
    assert all(np.array_equal(a, b) for a, b in zip(kept, reversed(again), strict=True))
    assert cache.reused > 0


# -- the locality sampler --------------------------------------------------------------------
@pytest.fixture(scope="module")
def frame_set(demo_export: DemoExport) -> FrameDataset:
    return FrameDataset(str(demo_export.output), size=(32, 32))


def test_the_sampler_visits_every_item_once_in_chunks(frame_set: FrameDataset) -> None:
    sampler = LocalitySampler(frame_set, chunk=8, seed=1)
    order = list(sampler)
    assert sorted(order) == list(range(len(frame_set)))
    sid = frame_set.index["stream_id"].to_list()
    fi = frame_set.index["frame_index"].to_list()
    local = sum(sid[a] == sid[b] and fi[b] == fi[a] + 1 for a, b in itertools.pairwise(order))
    recordings = len(set(sid))
    most_chunks = sum(-(-sid.count(s) // 8) + 1 for s in set(sid))
    assert local >= len(order) - most_chunks
    assert most_chunks >= recordings
    plain = LocalitySampler(frame_set, chunk=1, seed=1)
    plain_local = sum(
        sid[a] == sid[b] and fi[b] == fi[a] + 1 for a, b in itertools.pairwise(list(plain))
    )
    assert plain_local < len(order) // 10


def test_the_sampler_is_seeded_and_epoch_aware(frame_set: FrameDataset) -> None:
    a, b = LocalitySampler(frame_set, seed=3), LocalitySampler(frame_set, seed=3)
    first = list(a)
    assert first == list(b)
    assert a.epoch == 1
    second = list(a)
    assert second != first
    assert sorted(second) == sorted(first)
    b.set_epoch(1)
    assert list(b) == second
    assert list(LocalitySampler(frame_set, seed=4)) != first


def test_the_sampler_resumes_mid_epoch(frame_set: FrameDataset) -> None:
    sampler = LocalitySampler(frame_set, seed=9)
    sampler.set_epoch(2)
    full = sampler.order().tolist()
    it = iter(sampler)
    seen = [next(it) for _ in range(100)]
    state = sampler.state_dict(consumed=64)  # a loop that has seen 64 of them
    resumed = LocalitySampler(frame_set, seed=9)
    resumed.load_state_dict(pickle.loads(pickle.dumps(state)))
    assert seen == full[:100]
    assert list(resumed) == full[64:]
    assert resumed.epoch == 3
    with pytest.raises(ConfigError, match="seed"):
        LocalitySampler(frame_set, seed=8).load_state_dict(state)
    with pytest.raises(ConfigError, match="chunk"):
        LocalitySampler(frame_set, seed=9, chunk=4).load_state_dict(state)


def test_the_sampler_order_does_not_depend_on_workers(frame_set: FrameDataset) -> None:
    def indices(workers: int) -> list[int]:
        sampler = LocalitySampler(frame_set, seed=5)
        loader = DataLoader(frame_set, batch_size=16, sampler=sampler, num_workers=workers)
        out: list[int] = []
        for n, batch in enumerate(loader):
            out += list(zip(batch["stream_id"], batch["frame_index"].tolist(), strict=True))
            if n == 5:
                break
        return out

    assert indices(0) == indices(2)


def test_the_sampler_works_on_clips(demo_export: DemoExport) -> None:
    clips = ClipDataset(str(demo_export.output), length=4, stride=2)
    order = list(LocalitySampler(clips, chunk=3, seed=0))
    assert sorted(order) == list(range(len(clips)))
