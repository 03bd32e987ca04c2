"""Time LeRobotDataset on the read-path workloads (run by read_path.py in lerobot's Python).

    python _lerobot_read.py ROOT REPO_ID BACKEND PICKS.json BATCHES ROUNDS SEED OUT.json

Same workloads as ``read_path.py``, on the same items (``PICKS.json``: ``frames``, the
rows to read; ``clips``, each clip's first row): ``ds[i]`` for each frame; ``BATCHES`` batches of a
``DataLoader(batch_size=32, shuffle=True, num_workers=2)`` in ``ROUNDS`` turns of a fresh
DataLoader each (worker start-up included, as on odyssey-data's side); each clip an item
of the dataset opened with ``delta_timestamps`` of 16 frames at 10 fps (the nearest
multiples of ``1/fps``). Writes wall
and CPU seconds as JSON, or the reason the backend could not run.

Each workload starts with LeRobot's torchcodec decoder cache empty, as odyssey-data's
side starts with nothing open. That also keeps the DataLoader working: LeRobot 0.6.1
keeps torchcodec decoders (and their open files) in a module-level cache that forked
workers inherit, and two workers reading through the same inherited file share its
offset, so their reads interleave and decoding fails ("Could not push packet to
decoder: Invalid data found when processing input"), whatever the video.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def cpu_seconds() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def main() -> None:
    root, repo_id, backend = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(sys.argv[4]) as handle:
        picked = json.load(handle)
    batches, rounds, seed = (int(x) for x in sys.argv[5:8])
    out = sys.argv[8]
    result: dict = {"backend": backend}
    try:
        import torch
        from lerobot.datasets import LeRobotDataset, video_utils

        key = "observation.images.main"
        ds = LeRobotDataset(repo_id, root=root, video_backend=backend)
        ds[0]  # the backend loads (torchcodec needs FFmpeg's shared libraries)
    except Exception as exc:  # reported, not raised: the comparison is optional
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or ["?"]
        # torchcodec lists one loading error per FFmpeg version it supports.
        missing = [line for line in lines if "cannot open shared object file" in line]
        reason = "; ".join(missing[:2]) if missing else lines[-1]
        result["error"] = f"{type(exc).__name__}: {reason[:300]}"
        with open(out, "w") as handle:
            json.dump(result, handle)
        return

    def timed(name: str, run) -> None:  # type: ignore[no-untyped-def]
        video_utils._default_decoder_cache.clear()  # nothing open, in this process
        started, cpu = time.perf_counter(), cpu_seconds()
        run()
        result[name] = [time.perf_counter() - started, cpu_seconds() - cpu]

    def single() -> None:
        for i in picked["frames"]:
            ds[i][key]

    def loader() -> None:
        for turn in range(rounds):
            generator = torch.Generator().manual_seed(seed * 1000 + turn)
            data = torch.utils.data.DataLoader(
                ds, batch_size=32, shuffle=True, num_workers=2, generator=generator
            )
            batches_of = iter(data)
            for _ in range(max(1, batches // rounds)):
                next(batches_of)
            del batches_of

    clip_ds = LeRobotDataset(
        repo_id,
        root=root,
        video_backend=backend,
        # LeRobot wants multiples of 1/fps: the frames nearest to 10 fps.
        delta_timestamps={key: [round(k * ds.fps / 10) / ds.fps for k in range(16)]},
    )

    def clip() -> None:
        for i in picked["clips"]:
            assert clip_ds[i][key].shape[0] == 16

    timed("frames", single)
    timed("loader", loader)
    timed("clips", clip)
    with open(out, "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
