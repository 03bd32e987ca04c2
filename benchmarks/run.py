"""Every benchmark (issues 7 and 17), each figure beside its anchor run in the same process.

Run: ``python benchmarks/run.py`` (all) or ``python benchmarks/run.py --only 3``.
Each target's script also runs alone (see its docstring). Demo videos are cached under
``$ODYSSEY_BENCH_CACHE`` (default ``/tmp/odyssey-data-bench-cache``): the first run spends
about 25 minutes encoding them (8, then 32 one-minute videos: x264 on textured frames),
later runs start at once.

1. reference export vs full PyAV decode (export_speed.py --only 1)   target >= 20
   at 8 recordings (the issue's "at least 8") and at 32, where the CLI's fixed start-up
   (~0.4 s: interpreter, imports, lock, listing) no longer dominates
2. materialised export vs bare decode+resize+JPEG (export_speed.py --only 2)   >= 0.8
3. throttled export vs max(download, processing) (overlap.py)   <= 1.2
   reference mode at 8 and 32 recordings (the start-up again), materialised at 8
4. peak RSS, 10-minute vs 1-minute recording (memory.py)   <= 1.5 and < 500 MB
5. frames/s 200 vs 10 recordings; re-run vs first run (scaling.py)   0.8..1.2; < 0.05
6. row groups read for one stream_id (reading.py); load_frames vs decode (load_frames.py)
7. quality control (issue 17, qc.py): reference-mode QC vs an export without QC  < 1.1;
   response- and decode-mode QC cost per minute of video
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

BENCHMARKS: dict[int, list[list[str]]] = {
    1: [["export_speed.py", "--only", "1"], ["export_speed.py", "--only", "1", "--videos", "32"]],
    2: [["export_speed.py", "--only", "2"]],
    3: [["overlap.py"], ["overlap.py", "--videos", "32"], ["overlap.py", "--mode", "jpeg"]],
    4: [["memory.py"]],
    5: [["scaling.py"]],
    6: [["reading.py"], ["load_frames.py"]],
    7: [["qc.py"]],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", type=int, choices=sorted(BENCHMARKS), action="append")
    args = parser.parse_args()
    failed = []
    # The scripts import this checkout (each also sets this up itself, via _common).
    root = str(HERE.parent)
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for number in args.only or sorted(BENCHMARKS):
        for script, *options in BENCHMARKS[number]:
            print(
                f"\n== target {number}: python benchmarks/{script} {' '.join(options)}", flush=True
            )
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, str(HERE / script), *options], check=False, env=env
            )
            print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)
            if done.returncode:
                failed.append(f"{script} {' '.join(options)}")
    if failed:
        raise SystemExit(f"benchmarks that failed to run: {', '.join(failed)}")


if __name__ == "__main__":
    main()
