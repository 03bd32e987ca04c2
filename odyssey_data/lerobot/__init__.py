"""Convert an exported dataset into a LeRobot v3.0 dataset (``odyssey-data convert``).

One episode per exported recording, at a constant frame rate that is exact by
construction. LeRobot finds a frame by ``timestamp = frame_index / fps`` (within
1e-4 s), while recordings are variable-rate, so every episode is resampled:

* Row ``k`` stands for time ``t = k / fps`` since the recording's first presented frame
  and shows the frame a viewer sees then: the last source frame presented at or before
  ``t``, found with integer arithmetic on the source pts (no float rounding). Rows run
  from ``k = 0`` while ``k / fps`` is at most the last frame's ``timestamp_s``.
* The episode's video is re-encoded with one frame per row (pts ``k`` in time base
  ``1/fps``; H.264, no B-frames, a key frame every ``gop`` frames for random access), so
  the table and the video agree frame for frame.
* ``task_index`` is the prompt in force at ``t`` (the frames table's as-of rule, on the
  export's own prompt timeline: its segments); ``meta/tasks.parquet`` maps the prompt
  strings to indices. Rows before the first prompt have the task ``""`` and
  ``prompt_index`` -1.
* ``language_persistent`` carries the episode's prompts with their times (style
  ``subtask``), and ``language_events`` each ``interact`` prompt on the first row at or
  after it (style ``interjection``), as LeRobot's language columns define them.

Files written (LeRobot's layout and default sizes): ``meta/info.json``,
``meta/stats.json``, ``meta/tasks.parquet``, ``meta/episodes/chunk-000/file-000.parquet``
(plus further files past 100 MB), ``data/chunk-CCC/file-FFF.parquet`` (many episodes per
file, up to 100 MB each), ``videos/observation.images.main/chunk-CCC/file-FFF.mp4`` (one
episode per file: each is encoded on its own, so a recording that fails leaves nothing
half-written in a shared file, and every episode's video starts at 0 s), a
``README.md`` card, and ``meta/odyssey.json`` (the source dataset, the options, the
recordings that failed, and the list of files written: what ``--overwrite`` may delete).
``meta/info.json`` is written last: a folder without it is not a finished conversion.

The package: ``convert`` (the driver), ``episode`` (one recording into one episode and
its video), ``rows`` (resampling, tasks, language columns), ``stats``, ``meta`` (data
files, ``meta/`` tables, info, card), ``output`` (the files written and what
``--overwrite`` may delete), ``layout`` (paths and features).
"""

from __future__ import annotations

from odyssey_data.lerobot.convert import LeRobotReport, ProgressCallback, convert_to_lerobot
from odyssey_data.lerobot.layout import CODEBASE_VERSION, VIDEO_KEY
from odyssey_data.lerobot.rows import resample_indices

__all__ = [
    "CODEBASE_VERSION",
    "VIDEO_KEY",
    "LeRobotReport",
    "ProgressCallback",
    "convert_to_lerobot",
    "resample_indices",
]
