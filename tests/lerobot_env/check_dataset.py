"""Load a converted dataset with the real lerobot and report what a trainer would see.

Run by tests/test_lerobot.py with the lerobot environment's Python (see env.py), with
the repository on PYTHONPATH for :func:`odyssey_data.demo.synth.read_frame_mark`::

    python check_dataset.py ROOT REPO_ID DELTA_ROW OUT.json

Writes a JSON report: the metadata LeRobot read, every row as ``LeRobotDataset``
returns it (with the frame index painted in its decoded image), the frames a
``delta_timestamps`` query around ``DELTA_ROW`` returns, and the rows a ``DataLoader``
with two worker processes yields; then every row again with the ``torchcodec`` backend
(the picture's mark, through a DataLoader with workers and in this process) and the
FFmpeg it loaded. The test asserts on it.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    root, repo_id, delta_row, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    import torch
    from lerobot.datasets import LeRobotDataset

    from odyssey_data.demo.synth import read_frame_mark

    key = "observation.images.main"

    def mark(image: torch.Tensor) -> int:
        # LeRobot returns C×H×W float in [0, 1].
        array = (image.permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        return read_frame_mark(array)

    ds = LeRobotDataset(repo_id, root=root, video_backend="pyav")
    meta = ds.meta
    report: dict = {
        "len": len(ds),
        "fps": ds.fps,
        "total_episodes": meta.total_episodes,
        "total_frames": meta.total_frames,
        "features": sorted(meta.features),
        "video_keys": list(meta.video_keys),
        "tasks": {str(task): int(row["task_index"]) for task, row in meta.tasks.iterrows()},
        "episodes": [
            {
                "episode_index": int(ep["episode_index"]),
                "from": int(ep["dataset_from_index"]),
                "to": int(ep["dataset_to_index"]),
                "length": int(ep["length"]),
                "stream_id": ep["stream_id"],
                "source": ep["source"],
                "tasks": list(ep["tasks"]),
                "to_timestamp": float(ep[f"videos/{key}/to_timestamp"]),
            }
            for ep in meta.episodes
        ],
        "simulation_episodes": meta.filter_episodes(lambda ep: ep["source"] == "simulation"),
        "stats_keys": sorted(meta.stats) if meta.stats is not None else [],
        "image_mean_shape": list(meta.stats[key]["mean"].shape) if meta.stats else [],
    }
    rows = []
    for i in range(len(ds)):
        item = ds[i]
        rows.append(
            {
                "index": int(item["index"]),
                "episode_index": int(item["episode_index"]),
                "frame_index": int(item["frame_index"]),
                "timestamp": float(item["timestamp"]),
                "task_index": int(item["task_index"]),
                "task": item["task"],
                "prompt_index": int(item["prompt_index"]),
                "source_frame_index": int(item["odyssey.source_frame_index"]),
                "source_pts": int(item["odyssey.source_pts"]),
                "is_repeat": bool(item["odyssey.is_repeat"]),
                "shape": list(item[key].shape),
                "mark": mark(item[key]),
                "events": [e["content"] for e in item["language_events"]],
                "persistent": [
                    [p["content"], p["timestamp"], p["style"]] for p in item["language_persistent"]
                ],
            }
        )
    report["rows"] = rows

    step = 1 / ds.fps
    deltas = [-2 * step, -step, 0.0, step, 2 * step]
    windowed = LeRobotDataset(
        repo_id, root=root, video_backend="pyav", delta_timestamps={key: deltas}
    )
    item = windowed[delta_row]
    report["delta"] = {
        "row": delta_row,
        "shape": list(item[key].shape),
        "marks": [mark(frame) for frame in item[key]],
        "padding": [bool(v) for v in item[f"{key}_is_pad"]],
        "task": item["task"],
    }

    # As lerobot-train does: its collate keeps the language columns (lists of any length).
    from lerobot.utils.collate import lerobot_collate_fn

    collate = lerobot_collate_fn if meta.has_language_columns else None
    report["language_collate"] = collate is not None
    loader = torch.utils.data.DataLoader(
        ds, batch_size=16, num_workers=2, shuffle=True, collate_fn=collate
    )
    seen: list[int] = []
    shapes = set()
    for batch in loader:
        seen.extend(int(v) for v in batch["index"])
        shapes.add(tuple(batch[key].shape[1:]))
    report["loader"] = {"indices": sorted(seen), "image_shapes": [list(s) for s in shapes]}

    # torchcodec, LeRobot's default backend (its FFmpeg comes from torchcodec_env in env.py).
    # The DataLoader first: LeRobot keeps torchcodec decoders in a module-level cache that
    # forked workers inherit, and two workers then share each open file's offset and
    # corrupt each other's reads ("Could not push packet to decoder"), whatever the video.
    import av
    from torchcodec._core import get_ffmpeg_library_versions

    fast = LeRobotDataset(repo_id, root=root, video_backend="torchcodec")
    loader = torch.utils.data.DataLoader(
        fast, batch_size=16, num_workers=2, shuffle=True, collate_fn=collate
    )
    seen_fast: list[int] = []
    marks_fast: dict[int, int] = {}
    for batch in loader:
        for index, image in zip(batch["index"], batch[key], strict=True):
            seen_fast.append(int(index))
            marks_fast[int(index)] = mark(image)
    report["torchcodec"] = {
        "ffmpeg": get_ffmpeg_library_versions()["ffmpeg_version"],
        "pyav_ffmpeg": av.ffmpeg_version_info,
        "loader_indices": sorted(seen_fast),
        "loader_marks": [marks_fast[i] for i in sorted(marks_fast)],
        "marks": [mark(fast[i][key]) for i in range(len(fast))],
    }
    with open(out, "w") as handle:
        json.dump(report, handle)


if __name__ == "__main__":
    main()
