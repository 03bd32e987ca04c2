"""Shared pieces of the benchmarks: cached demo videos, the CLI, peak memory.

Full-size demo videos take a while to encode (x264 on noise at ~75 frames/s), so each is
cached on disk under ``$ODYSSEY_BENCH_CACHE`` (default ``/tmp/odyssey-data-bench-cache``),
keyed by everything that shapes its bytes; a re-run of a benchmark starts at once.

The benchmarks import this checkout's ``odyssey_data`` (not an installed copy) and run the
CLI (``odyssey-data``) with the same code through ``PYTHONPATH``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from odyssey_data.demo import DemoServer  # noqa: E402
from odyssey_data.demo.synth import DemoCatalog, make_demo_catalog  # noqa: E402

CACHE = Path(os.environ.get("ODYSSEY_BENCH_CACHE", "/tmp/odyssey-data-bench-cache"))
FULL = (1280, 704)
BITRATE = 4_000_000


def _key(params: dict[str, Any], index: int, stream_id: str) -> str:
    text = repr(sorted(params.items())) + f"|{index}|{stream_id}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _encode_one(params: dict[str, Any], index: int, path: str) -> str:
    rec = make_demo_catalog(**params).recordings[index]
    data = rec.video_bytes()
    assert data is not None
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
    return path


def cached_catalog(n: int, **params: Any) -> DemoCatalog:
    """``make_demo_catalog(n, active=0, **params)`` whose videos come from the disk cache.

    Missing videos are encoded two at a time (one per core) and stored first.
    """
    params = {"n": n, "active": 0, **params}
    catalog = make_demo_catalog(**params)
    CACHE.mkdir(parents=True, exist_ok=True)
    paths = [
        CACHE / f"{_key(params, i, rec.stream_id)}.mp4" for i, rec in enumerate(catalog.recordings)
    ]
    missing = [i for i, path in enumerate(paths) if not path.exists()]
    if missing:
        started = time.perf_counter()
        print(f"  (encoding {len(missing)} demo videos into {CACHE}, once)", flush=True)
        with ProcessPoolExecutor(2) as pool:
            list(
                pool.map(
                    _encode_one, [params] * len(missing), missing, [str(paths[i]) for i in missing]
                )
            )
        print(f"  (encoded in {time.perf_counter() - started:.0f} s)", flush=True)
    recordings = [
        dataclasses.replace(rec, video_override=path.read_bytes())
        for rec, path in zip(catalog.recordings, paths, strict=True)
    ]
    return DemoCatalog(recordings)


def full_size_catalog(n: int, *, seconds: float, seed: int = 0) -> DemoCatalog:
    """``n`` cached recordings at the Odyssey size, 30 fps, ~4 Mb/s of textured content."""
    return cached_catalog(
        n,
        seed=seed,
        width=FULL[0],
        height=FULL[1],
        seconds=seconds,
        bitrate=BITRATE,
        content="noise",
    )


@contextlib.contextmanager
def serve(catalog: DemoCatalog, **options: Any) -> Iterator[DemoServer]:
    """The demo server on 127.0.0.1 with every file made and hashed before any measured run.

    A remote object store spends none of this machine's CPU on ETags; the demo server
    would otherwise hash each video at its first request, inside the first measured run.
    """
    with DemoServer(catalog, **options) as server:
        server.warm()
        yield server


def video_files(catalog: DemoCatalog, folder: Path) -> list[Path]:
    """Write the catalog's videos as files (the anchors decode these)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for rec in catalog.recordings:
        path = folder / f"{rec.stream_id}.mp4"
        data = rec.video_bytes()
        assert data is not None
        path.write_bytes(data)
        out.append(path)
    return out


def cli_env(server: Any) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["ODYSSEY_API_URL"] = server.base_url
    env["ODYSSEY_API_KEY"] = server.api_key
    return env


def run_cli(args: list[str], server: Any) -> tuple[float, int]:
    """Run ``odyssey-data ARGS`` as a user would; returns (wall seconds, peak RSS bytes).

    The peak RSS is the largest of the CLI process and its workers (``ru_maxrss`` of the
    children this call waited for), measured in a wrapper process so runs do not mix.
    """
    # The console script beside this interpreter (what a venv puts on PATH), not a
    # version manager's shim found first on PATH (pyenv's adds ~0.1 s of bash).
    beside = Path(sys.executable).parent / "odyssey-data"
    exe = str(beside) if beside.exists() else shutil.which("odyssey-data")
    command = [exe] if exe else [sys.executable, "-c", "from odyssey_data.cli import run; run()"]
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
        "dt = time.perf_counter() - t\n"
        "print(dt, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, rc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", wrapper, *command, *args],
        env=cli_env(server),
        capture_output=True,
        text=True,
        check=True,
    )
    wall, rss, rc = done.stdout.split()
    if int(rc) != 0:
        raise SystemExit(f"odyssey-data {' '.join(args)} exited {rc}: {done.stderr[-2000:]}")
    return float(wall), int(rss)


def children_peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


def row(name: str, value: float, unit: str, ratio: float | None, target: str = "") -> None:
    ratio_text = f"{ratio:8.2f}" if ratio is not None else " " * 8
    print(f"  {name:54} {value:10.1f} {unit:9} {ratio_text}   {target}", flush=True)
