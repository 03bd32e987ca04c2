"""Checkpoints: an interrupted or crashed export keeps what had finished (issue 15).

The CLI runs as a subprocess against a throttled demo server; the re-run's video
downloads are counted at the server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import export_config

from odyssey_data import cli
from odyssey_data.dataset import open_dataset
from odyssey_data.demo import DemoServer, make_demo_catalog
from odyssey_data.manifest import Manifest
from odyssey_data.pipeline import _Checkpoints, export
from odyssey_data.progress import ProgressUpdate
from odyssey_data.storage import MANIFEST_NAME, DatasetStore

REPO = Path(__file__).resolve().parent.parent


def video_gets(server: DemoServer) -> int:
    return sum(1 for r in server.request_log if r.method == "GET" and r.path.endswith("/video.mp4"))


def settled_video_gets(server: DemoServer) -> int:
    """The video GETs once the killed process's abandoned ones are logged too (the
    server logs a request when its answer ends, after the client went away)."""
    count, stable_since = video_gets(server), time.monotonic()
    while time.monotonic() - stable_since < 1.0:
        time.sleep(0.05)
        now = video_gets(server)
        if now != count:
            count, stable_since = now, time.monotonic()
    return count


def start_cli(server: DemoServer, out: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [
            sys.executable, "-c", "from odyssey_data.cli import run; run()",
            "export", str(out), "--api-url", server.base_url, "--api-key", server.api_key,
            "--workers", "1", *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip


def read_progress(proc: subprocess.Popen[str], count: int) -> list[str]:
    """The first ``count`` per-recording lines the export prints (stderr is not a tty)."""
    assert proc.stderr is not None
    lines: list[str] = []
    for line in proc.stderr:
        if line.startswith("["):
            lines.append(line)
            if len(lines) == count:
                return lines
    raise AssertionError(f"the export ended after {len(lines)} recordings: {lines}")


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGINT, cli.EXIT_INTERRUPTED), (signal.SIGTERM, cli.EXIT_TERMINATED)]
)
def test_interrupt_commits_what_finished_and_the_rerun_downloads_only_the_rest(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    catalog = make_demo_catalog(10, seed=5, active=0)
    out = tmp_path / "ds"
    # ~40 kB/s: a recording takes about a third of a second, so the signal lands mid-run.
    with DemoServer(catalog, throttle_bytes_per_s=40_000) as server:
        # No checkpoint would come before the end: what is kept is the interrupt's commit.
        proc = start_cli(server, out, "--checkpoint-every", "1000", "--checkpoint-seconds", "3600")
        printed = read_progress(proc, 3)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == code, err
        assert "the dataset holds what was committed, re-run to finish" in err
        ds = open_dataset(str(out))
        assert ds.verify() == []
        committed = ds.manifest.exported()
        assert {line.split()[1] for line in printed} <= committed
        assert 3 <= len(committed) < 10
        assert ds.manifest.runs[-1]["state"] == "interrupted"
        assert ds.manifest.runs[-1]["exported"] == len(committed)

        before = settled_video_gets(server)
        rerun = start_cli(server, out, "-q")
        _, err = rerun.communicate(timeout=120)
        assert rerun.returncode == cli.EXIT_OK, err
        assert video_gets(server) - before == 10 - len(committed)
    ds = open_dataset(str(out))
    assert ds.manifest.counts() == {"exported": 10}
    assert ds.verify() == []
    assert [run["state"] for run in ds.manifest.runs] == ["interrupted", "finished"]


def test_a_crash_loses_at_most_the_work_since_the_last_checkpoint(tmp_path: Path) -> None:
    catalog = make_demo_catalog(10, seed=6, active=0)
    out = tmp_path / "ds"
    with DemoServer(catalog, throttle_bytes_per_s=40_000) as server:
        proc = start_cli(server, out, "--checkpoint-every", "2")
        read_progress(proc, 5)  # a line is printed after its recording's checkpoint
        proc.kill()
        proc.communicate(timeout=60)
        committed = open_dataset(str(out)).manifest.exported()
        # At least the checkpoint after the second recording (later ones may be spaced
        # out by the commit-cost rule on a busy machine).
        assert len(committed) >= 2
        before = settled_video_gets(server)
        rerun = start_cli(server, out, "-q")
        _, err = rerun.communicate(timeout=120)
        assert rerun.returncode == cli.EXIT_OK, err
        assert video_gets(server) - before == 10 - len(committed)
    assert open_dataset(str(out)).verify() == []


def test_checkpoints_commit_every_n_recordings(
    fresh_server: DemoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Commits here are cheap, but on a busy machine the spacing rule (no commit sooner
    # than 20 x the last one's cost) could still hold one back: take it out.
    monkeypatch.setattr(_Checkpoints, "SPACING", 0.0)
    out = tmp_path / "ds"
    generations: list[int] = []
    store = DatasetStore(str(out))

    def watch(update: ProgressUpdate) -> None:
        manifest = Manifest.load(store)
        generations.append(manifest.generation if manifest else 0)

    report = export(export_config(fresh_server, out, checkpoint_every=1), progress=watch)
    # 1 skipped up front (the active stream), then 3 recordings, each committed before
    # the next one is reported; plus the final commit.
    assert report.commits == 4
    first = generations[0]  # a new dataset is committed (empty) before any file is written
    assert generations[1:] == [first + 1, first + 2, first + 3]
    assert open_dataset(str(out)).manifest.generation == first + 4


def test_keyboard_interrupt_in_the_python_api_commits_what_finished(
    fresh_server: DemoServer, tmp_path: Path
) -> None:
    out = tmp_path / "ds"
    seen: list[str] = []

    def stop_after_two(update: ProgressUpdate) -> None:
        if update.status == "exported":
            seen.append(update.stream_id)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export(export_config(fresh_server, out), progress=stop_after_two)
    ds = open_dataset(str(out))
    assert ds.manifest.exported() == set(seen)
    assert ds.verify() == []
    assert (out / MANIFEST_NAME).exists()
    report = export(export_config(fresh_server, out))
    assert (report.exported, report.already) == (1, 2)
