"""Ray vs local: wall time and peak memory of the same export of demo recordings.

Each run is a fresh subprocess (so one run's memory cannot hide in the next one's peak)
that starts the demo server, encodes its recordings up front (not timed), then exports
them with the local process pool or with Ray, both with 2 workers::

    python benchmarks/ray_vs_local.py                     # 20 recordings, 3 runs each
    python benchmarks/ray_vs_local.py --recordings 5 20 40 --seconds 3.5 --repeat 3

Reported per mode: the median wall time of the export, Ray's start-up (``ray.init`` of
a local instance, a fixed cost paid once per job), and the peak memory of the whole
process tree (driver, pool workers or every Ray process: GCS, raylet, workers). With
psutil installed the tree is sampled every 0.25 s and proportional set sizes (PSS) are
summed, so Ray's shared object store is counted once; without it, ``getrusage`` gives
the largest single process (self or a waited-for child) only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

WORKERS = 2


class PeakSampler:
    """Peak summed PSS (or RSS) of this process and all its descendants."""

    def __init__(self, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self.peak = 0
        self.method = "none"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            import psutil
        except ImportError:
            return
        self._psutil = psutil
        self.method = "psutil PSS sum of the process tree"
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        psutil = self._psutil
        me = psutil.Process()
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return int(total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakSampler:
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self.peak = max(self.peak, self._sample())
            self._stop.set()
            self._thread.join()
        else:
            self.method = "getrusage: largest single process (self or waited-for child)"
            kib = max(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
            )
            self.peak = kib * 1024


def run_once(mode: str, recordings: int, seconds: float) -> dict[str, Any]:
    """One export in this process; returns the measurements as a dict."""
    from odyssey_data.demo import DemoServer, make_demo_catalog
    from odyssey_data.pipeline import export

    catalog = make_demo_catalog(recordings, seed=1, active=0, seconds=seconds)
    for rec in catalog.recordings:  # encode now, not inside the timed export
        rec.video_bytes()
        rec.events_bytes()
    out: dict[str, Any] = {"mode": mode, "recordings": recordings}
    with (
        DemoServer(catalog) as server,
        tempfile.TemporaryDirectory() as tmp,
        PeakSampler() as sampler,
    ):
        init_s = 0.0
        if mode == "ray":
            import ray

            os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no ~/.ray/auth_token
            started = time.perf_counter()
            ray.init(
                num_cpus=WORKERS,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
            )
            init_s = time.perf_counter() - started
        started = time.perf_counter()
        report = export(
            output=os.path.join(tmp, "dataset"),
            api_url=server.base_url,
            api_key=server.api_key,
            workers=WORKERS,
            executor=mode,
        )
        out["export_s"] = time.perf_counter() - started
        out["init_s"] = init_s
        out["exported"] = report.exported
        out["frames"] = report.frames
        if mode == "ray":
            import ray

            ray.shutdown()
    out["peak_bytes"] = sampler.peak
    out["memory_method"] = sampler.method
    return out


def child(mode: str, recordings: int, seconds: float) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--recordings",
            str(recordings),
            "--seconds",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--recordings", type=int, nargs="+", default=[20])
    parser.add_argument("--seconds", type=float, default=3.5, help="length of each recording")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=("local", "ray"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_once(args.child, args.recordings[0], args.seconds)))
        return

    mib = 1 << 20
    print(f"{os.cpu_count()} cores, {WORKERS} workers, recordings of {args.seconds} s")
    header = (
        f"{'recs':>4} {'frames':>7} | {'local s':>8} {'ray s':>7} {'ray+init s':>10} "
        f"{'ratio':>6} | {'local MiB':>9} {'ray MiB':>8} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    summary: list[tuple[int, float, float, float]] = []
    for n in args.recordings:
        runs: dict[str, list[dict[str, Any]]] = {"local": [], "ray": []}
        for _ in range(args.repeat):
            for mode in ("local", "ray"):  # interleaved: drift hits both alike
                runs[mode].append(child(mode, n, args.seconds))
        local_s = statistics.median(r["export_s"] for r in runs["local"])
        ray_s = statistics.median(r["export_s"] for r in runs["ray"])
        init_s = statistics.median(r["init_s"] for r in runs["ray"])
        local_mem = max(r["peak_bytes"] for r in runs["local"])
        ray_mem = max(r["peak_bytes"] for r in runs["ray"])
        frames = runs["local"][0]["frames"]
        assert all(r["exported"] == n for rs in runs.values() for r in rs), runs
        print(
            f"{n:>4} {frames:>7} | {local_s:>8.2f} {ray_s:>7.2f} {ray_s + init_s:>10.2f} "
            f"{(ray_s + init_s) / local_s:>5.2f}x | {local_mem / mib:>9.0f} "
            f"{ray_mem / mib:>8.0f} {ray_mem / max(1, local_mem):>5.2f}x"
        )
        for mode in ("local", "ray"):
            times = sorted(r["export_s"] for r in runs[mode])
            inits = sorted(r["init_s"] for r in runs[mode])
            line = f"       {mode:<5} export s: " + " ".join(f"{t:.2f}" for t in times)
            if mode == "ray":
                line += "   init s: " + " ".join(f"{t:.2f}" for t in inits)
            print(line)
        summary.append((n, local_s, ray_s, init_s))
    if len(summary) > 1:
        (n0, l0, r0, _), (n1, l1, r1, _) = summary[0], summary[-1]
        print(
            f"marginal cost per recording ({n0}→{n1}): local {(l1 - l0) / (n1 - n0) * 1e3:.0f} ms, "
            f"ray {(r1 - r0) / (n1 - n0) * 1e3:.0f} ms"
        )
    print(f"memory: {runs['local'][0]['memory_method']}; medians of {args.repeat} runs")
    print("ray s: the export on a started Ray; ray+init s: with ray.init of a local instance")


if __name__ == "__main__":
    main()
