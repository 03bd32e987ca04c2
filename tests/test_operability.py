"""A nightly job people can operate (issue 15) and damaged local state (issue 13, rule 6).

The CLI runs as a subprocess with stderr captured, against the demo server, moto's S3
server and the GCS emulator on 127.0.0.1: every failure is one line naming what failed,
where and the fix; exit codes are honest (not ready is not a failure); re-runs with
other options are refused; the CLI suggests, explains and never truncates ids.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from conftest import FAST_RETRY, export_config
from raw_http import Conn, RawHTTPServer, Seen
from storage_servers import (  # also sets GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT before gcsfs loads
    ObjectStore,
    free_port,
    gcs_fixture,
    s3_fixture,
)

import odyssey_data
from odyssey_data import cli
from odyssey_data.api import OdysseyClient
from odyssey_data.dataset import open_dataset
from odyssey_data.demo import DemoServer, make_demo_catalog
from odyssey_data.errors import ApiError
from odyssey_data.pipeline import export, plan
from odyssey_data.progress import LIVE, ProgressUpdate
from odyssey_data.runs import OptionsMismatchError
from odyssey_data.storage import LOCK_NAME, MANIFEST_NAME

__all__ = ["gcs_fixture", "s3_fixture"]  # the fixtures "s3" and "gcs", used below

REPO = Path(__file__).resolve().parent.parent


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """``odyssey-data ARGS`` as its own process (this checkout), stderr captured."""
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ODYSSEY_", "GOOGLE_"))
    }
    base.update(
        {
            "PYTHONPATH": str(REPO),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
            "AWS_CONFIG_FILE": "/nonexistent/config",
            "COLUMNS": "200",
        }
    )
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", "from odyssey_data.cli import run; run()", *args],
        capture_output=True,
        text=True,
        env=base,
        cwd=cwd or REPO,
        timeout=180,
        check=False,
        **kwargs,
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one error line the command printed (and nothing else on stderr)."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def api_args(server: DemoServer) -> list[str]:
    return ["--api-url", server.base_url, "--api-key", server.api_key]


# -- every failure is one line -------------------------------------------------------


class TestStorageFailuresAreOneLine:
    """Credentials, endpoints, buckets, options, permissions, space: one line each."""

    def test_s3_without_credentials(self, s3: ObjectStore, demo_server: DemoServer) -> None:
        url = s3.url()
        done = run_cli(
            "export", url, *api_args(demo_server), "--storage-option",
            f"endpoint_url={s3.endpoint_url}",
        )  # fmt: skip
        assert done.returncode == cli.EXIT_FATAL
        line = one_line(done)
        assert "no credentials found" in line
        assert "AWS_ACCESS_KEY_ID" in line
        assert "--storage-option key=" in line
        assert url in line

    def test_s3_endpoint_where_nothing_listens(self, demo_server: DemoServer) -> None:
        endpoint = f"http://127.0.0.1:{free_port()}"
        done = run_cli(
            "export", "s3://bucket/x", *api_args(demo_server),
            "--storage-option", f"endpoint_url={endpoint}",
            "--storage-option", "key=k", "--storage-option", "secret=s",
        )  # fmt: skip
        assert done.returncode == cli.EXIT_FATAL
        line = one_line(done)
        assert f"cannot reach the storage endpoint {endpoint}" in line
        assert "endpoint_url" in line

    def test_s3_bucket_missing(self, s3: ObjectStore, demo_server: DemoServer) -> None:
        options = [f"{k}={v}" for k, v in s3.storage_options.items()]
        done = run_cli(
            "export", "s3://no-such-bucket-i15/ds", *api_args(demo_server),
            *[a for o in options for a in ("--storage-option", o)],
        )  # fmt: skip
        assert done.returncode == cli.EXIT_FATAL
        assert "the bucket 'no-such-bucket-i15' does not exist" in one_line(done)

    def test_mistyped_storage_option_is_a_usage_error_with_a_suggestion(
        self, s3: ObjectStore, demo_server: DemoServer
    ) -> None:
        done = run_cli(
            "export", s3.url(), *api_args(demo_server),
            "--storage-option", f"endpointurl={s3.endpoint_url}",
        )  # fmt: skip
        assert done.returncode == cli.EXIT_USAGE
        line = one_line(done)
        assert "'endpointurl'" in line
        assert "did you mean 'endpoint_url'?" in line

    def test_gcs_bucket_missing_and_endpoint_down(
        self, gcs: ObjectStore, demo_server: DemoServer
    ) -> None:
        done = run_cli(
            "export", "gs://no-such-bucket-i15/ds", *api_args(demo_server),
            "--storage-option", f"endpoint_url={gcs.endpoint_url}",
            "--storage-option", "token=anon",
        )  # fmt: skip
        assert done.returncode == cli.EXIT_FATAL
        assert "'no-such-bucket-i15'" in one_line(done)
        endpoint = f"http://127.0.0.1:{free_port()}"
        done = run_cli(
            "inspect", "gs://bucket/ds",
            "--storage-option", f"endpoint_url={endpoint}", "--storage-option", "token=anon",
        )  # fmt: skip
        assert done.returncode == cli.EXIT_FATAL
        assert f"cannot reach the storage endpoint {endpoint}" in one_line(done)

    def test_local_file_in_the_way_and_unwritable_target(
        self, tmp_path: Path, demo_server: DemoServer
    ) -> None:
        (tmp_path / "afile").write_text("not a folder")
        done = run_cli("export", str(tmp_path / "afile" / "ds"), *api_args(demo_server))
        assert done.returncode == cli.EXIT_FATAL
        line = one_line(done)
        assert "a file is in the way" in line
        assert "afile" in line
        # /sys refuses even root (read-only or permission denied, depending on the host).
        done = run_cli("export", "/sys/kernel/odyssey-data-test", *api_args(demo_server))
        assert done.returncode == cli.EXIT_FATAL
        line = one_line(done)
        assert "/sys/kernel/odyssey-data-test" in line
        assert "permission denied" in line or "read-only" in line

    def test_memory_target_without_a_dataset(self) -> None:
        done = run_cli("inspect", "memory://nothing-here/ds")
        assert done.returncode == cli.EXIT_FATAL
        assert "no dataset at memory://nothing-here/ds" in one_line(done)

    def test_an_unexpected_error_is_one_line_and_v_shows_the_traceback(
        self, tmp_path: Path
    ) -> None:
        # A bug stand-in: the inspect command raising something the package never raises.
        code = (
            "import sys, odyssey_data.cli as c, odyssey_data.cli.parser as p\n"
            "def boom(args): raise RuntimeError('something broke\\nover two lines')\n"
            "p.cmd_inspect = boom\n"  # the command the parser binds to `inspect`
            "sys.argv = ['odyssey-data', *sys.argv[1:]]\n"
            "c.run()\n"
        )
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        done = subprocess.run(
            [sys.executable, "-c", code, "inspect", str(tmp_path)],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == cli.EXIT_FATAL
        line = one_line(done)
        assert "unexpected error RuntimeError: something broke over two lines" in line
        assert "re-run with -v for the traceback" in line
        done = subprocess.run(
            [sys.executable, "-c", code, "inspect", str(tmp_path), "-v"],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
        assert "Traceback" in done.stderr
        assert "boom" in done.stderr


class TestDamagedLocalState:
    """Issue 13, rule 6: one line naming the file and the fix, and a way out."""

    @pytest.fixture
    def dataset(self, demo_server: DemoServer, tmp_path: Path) -> Path:
        out = tmp_path / "ds"
        export(export_config(demo_server, out))
        return out

    def test_corrupt_manifest_then_overwrite(self, dataset: Path, demo_server: DemoServer) -> None:
        for damage in ("garbage{", '{"format": "odyssey-data", "format_version": 1, "files": 7}'):
            (dataset / MANIFEST_NAME).write_text(damage)
            for args in (
                ["export", str(dataset), *api_args(demo_server)],
                ["inspect", str(dataset)],
            ):
                done = run_cli(*args)
                assert done.returncode == cli.EXIT_FATAL
                line = one_line(done)
                assert f"{dataset}/{MANIFEST_NAME} is damaged" in line
                assert "--overwrite" in line
        done = run_cli("export", str(dataset), *api_args(demo_server), "--overwrite", "-q")
        assert done.returncode == cli.EXIT_OK, done.stderr
        assert open_dataset(str(dataset)).verify() == []

    def test_garbage_lock_then_break_lock(self, dataset: Path, demo_server: DemoServer) -> None:
        for garbage in (b"\x00\xffnot json", b"[1, 2]", b'{"refreshed_epoch": "soon"}'):
            (dataset / LOCK_NAME).write_bytes(garbage)
            done = run_cli("export", str(dataset), *api_args(demo_server))
            assert done.returncode == cli.EXIT_FATAL
            line = one_line(done)
            assert LOCK_NAME in line
            assert "--break-lock" in line
        done = run_cli("export", str(dataset), *api_args(demo_server), "--break-lock", "-q")
        assert done.returncode == cli.EXIT_OK, done.stderr
        assert not (dataset / LOCK_NAME).exists()

    def test_full_disk_then_rerun(self, tmp_path: Path, demo_server: DemoServer) -> None:
        """A file-size limit makes every write past it fail as a full disk does
        (EFBIG instead of ENOSPC: same path through the code, no privileges needed)."""
        out = tmp_path / "ds"

        def small_disk() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (8_000, 8_000))

        done = run_cli("export", str(out), *api_args(demo_server), preexec_fn=small_disk)
        assert done.returncode == cli.EXIT_FATAL
        line = one_line(subprocess.CompletedProcess(done.args, 1, done.stdout, _errors(done)))
        assert "free some space" in line
        assert str(out) in line
        done = run_cli("export", str(out), *api_args(demo_server), "-q")
        assert done.returncode == cli.EXIT_OK, done.stderr
        assert open_dataset(str(out)).verify() == []


def _errors(done: subprocess.CompletedProcess[str]) -> str:
    """stderr without the progress lines (the export's, before the write failed)."""
    return "\n".join(line for line in done.stderr.splitlines() if not line.startswith("["))


# -- the API: retries that are useful, 404s that say what is wrong ----------------------


class TestRetries:
    def test_404_on_the_token_call_says_no_api_there(self, demo_server: DemoServer) -> None:
        done = run_cli("list", "--api-url", f"{demo_server.base_url}/v1", "--api-key", "ody_x")
        assert done.returncode == cli.EXIT_FATAL
        line = one_line(done)
        assert f"no Odyssey API at {demo_server.base_url}/v1" in line
        assert "--api-url" in line

    @pytest.mark.parametrize("status", [400, 404, 405, 501])
    def test_final_statuses_are_not_retried(self, status: int) -> None:
        def respond(seen: Seen, conn: Conn) -> None:
            if seen.path == "/auth/token":
                conn.json(200, {"access_token": "t", "expires_in": 3600})
            else:
                conn.json(status, {"detail": "no"})

        with (
            RawHTTPServer(respond) as server,
            OdysseyClient(server.base_url, "ody_key", retry=FAST_RETRY) as client,
        ):
            with pytest.raises(ApiError):
                list(client.list_recordings())
            listed = [s for s in server.requests if s.path == "/stream-recordings"]
        assert len(listed) == 1

    def test_retries_are_one_readable_line_each(
        self, fresh_server: DemoServer, tmp_path: Path
    ) -> None:
        fresh_server.inject("/stream-recordings", 503, times=2)
        done = run_cli("export", str(tmp_path / "ds"), *api_args(fresh_server), "--workers", "1")
        assert done.returncode == cli.EXIT_OK, done.stderr
        retries = [
            line for line in done.stderr.splitlines() if line.startswith("warning: retrying")
        ]
        assert len(retries) == 2, done.stderr
        assert retries[0].startswith(
            f"warning: retrying GET {fresh_server.base_url}/stream-recordings in "
        )
        assert retries[0].endswith("(attempt 2/6: HTTP 503)")
        assert retries[1].endswith("(attempt 3/6: HTTP 503)")
        assert "stamina" not in done.stderr
        assert "httpx" not in done.stderr

    def test_connection_refused_retries_say_so(self, tmp_path: Path) -> None:
        url = f"http://127.0.0.1:{free_port()}"
        done = run_cli("list", "--api-url", url, "--api-key", "ody_x")
        assert done.returncode == cli.EXIT_FATAL
        lines = done.stderr.strip().splitlines()
        assert lines[0] == f"warning: retrying POST {url}/auth/token in {lines[0].split(' in ')[1]}"
        assert "(attempt 2/6: connection refused)" in lines[0]
        assert lines[-1].startswith("error: POST /auth/token: cannot reach the API")


# -- logging and progress ----------------------------------------------------------------


class TestLoggingAndProgress:
    def test_lines_per_recording_without_a_terminal(
        self, demo_server: DemoServer, tmp_path: Path
    ) -> None:
        done = run_cli("export", str(tmp_path / "ds"), *api_args(demo_server))
        assert done.returncode == cli.EXIT_OK, done.stderr
        lines = [line for line in done.stderr.splitlines() if line.startswith("[")]
        total = len(demo_server.catalog.recordings)
        assert len(lines) == total
        assert any(
            line.endswith("still active (no end time); a later run exports it") for line in lines
        )
        exported = [line for line in lines if " frames " in line]
        assert len(exported) == total - 1
        for line in exported:
            head, _sid, _count, frames, _size, unit, _secs, s_unit = line.split()[:8]
            assert head.startswith("[")
            assert head.endswith(f"/{total}]")
            assert frames == "frames"
            assert unit in ("B", "kB", "MB")
            assert s_unit == "s"

    def test_flags_work_before_or_after_the_subcommand(
        self, demo_server: DemoServer, tmp_path: Path
    ) -> None:
        for args in (["-q", "export", str(tmp_path / "a")], ["export", str(tmp_path / "b"), "-q"]):
            done = run_cli(*args, *api_args(demo_server))
            assert done.returncode == cli.EXIT_OK
            assert not [line for line in done.stderr.splitlines() if line.startswith("[")]
        quiet = run_cli("export", str(tmp_path / "c"), *api_args(demo_server), "-v")
        loud = run_cli("-vv", "export", str(tmp_path / "d"), *api_args(demo_server))
        assert "info: checkpoint:" in quiet.stderr
        assert "httpx" not in quiet.stderr
        assert "debug" in loud.stderr
        assert "httpx" in loud.stderr
        for done in (quiet, loud):
            assert demo_server.api_key not in done.stderr

    def test_a_callback_gets_every_recording_and_live_bytes_move(
        self, demo_server: DemoServer, tmp_path: Path
    ) -> None:
        updates: list[ProgressUpdate] = []
        report = export(export_config(demo_server, tmp_path / "ds"), progress=updates.append)
        assert [u.done for u in updates] == list(range(1, len(updates) + 1))
        assert {u.total for u in updates} == {len(demo_server.catalog.recordings)}
        assert sum(u.frames for u in updates) == report.frames
        assert updates[-1].eta_s == 0.0
        # Every downloaded byte was counted live, chunk by chunk, in this process.
        assert LIVE.bytes >= report.video_bytes > 0

    def test_live_bytes_move_within_one_download(self) -> None:
        catalog = make_demo_catalog(1, seed=3, active=0, bitrate=2_000_000, content="noise")
        with DemoServer(catalog) as server, OdysseyClient(server.base_url, server.api_key) as c:
            url = c.get_recording(catalog.recordings[0].stream_id).video_url
            assert url is not None
            seen: list[int] = []

            class Watch:
                """A destination that notes the live count at every chunk written."""

                def __init__(self) -> None:
                    import io

                    self.inner = io.BytesIO()

                def __getattr__(self, name: str) -> Any:
                    return getattr(self.inner, name)

                def write(self, data: bytes) -> int:
                    seen.append(LIVE.bytes)
                    return self.inner.write(data)

            LIVE.reset()
            stats = c.download(url, Watch(), what="video")  # type: ignore[arg-type]
        assert len(seen) > 2
        assert seen == sorted(seen)
        assert seen[-1] > 0
        assert LIVE.bytes == stats.bytes


# -- exit codes, --limit, scheduled runs -------------------------------------------------


class TestExitCodes:
    def test_a_scheduled_job_with_an_active_stream_exits_0_every_night(
        self, fresh_server: DemoServer, tmp_path: Path
    ) -> None:
        out = tmp_path / "nightly"
        first = run_cli("export", str(out), *api_args(fresh_server), "-q", "--json")
        second = run_cli("export", str(out), *api_args(fresh_server), "-q", "--json")
        assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
        one, two = json.loads(first.stdout), json.loads(second.stdout)
        assert (one["exported"], one["skipped"], one["not_ready"]) == (3, 1, 1)
        assert (two["exported"], two["already"], two["not_ready"]) == (0, 3, 1)
        strict = run_cli("export", str(out), *api_args(fresh_server), "-q", "--strict")
        assert strict.returncode == cli.EXIT_PARTIAL

    def test_limit_counts_recordings_that_can_be_exported(
        self, fresh_server: DemoServer, tmp_path: Path
    ) -> None:
        # The active stream is the most recent: --limit 1 used to pick it and export nothing.
        done = run_cli(
            "export", str(tmp_path / "one"), *api_args(fresh_server), "--limit", "1", "-q"
        )
        assert done.returncode == cli.EXIT_OK
        assert len(open_dataset(str(tmp_path / "one")).manifest.exported()) == 1

    def test_failures_still_exit_3(self, fresh_server: DemoServer, tmp_path: Path) -> None:
        done = run_cli(
            "export",
            str(tmp_path / "x"),
            *api_args(fresh_server),
            "--stream-id",
            "no-such-id",
            "-q",
        )
        assert done.returncode == cli.EXIT_PARTIAL
        assert "recording 'no-such-id': the API does not list it; check the id" in done.stdout


# -- options are part of the dataset ------------------------------------------------------


class TestOptionsArePartOfTheDataset:
    def test_a_rerun_with_other_options_is_refused_in_one_line(
        self, demo_server: DemoServer, tmp_path: Path
    ) -> None:
        out = tmp_path / "ds"
        assert run_cli("export", str(out), *api_args(demo_server), "-q").returncode == 0
        done = run_cli("export", str(out), *api_args(demo_server), "--frames", "jpeg", "--fps", "5")
        assert done.returncode == cli.EXIT_USAGE
        line = one_line(done)
        assert "--frames reference → jpeg" in line
        assert "--fps (not set) → 5.0" in line
        assert "--overwrite" in line
        assert "new folder" in line
        assert "--mix-options" in line
        assert len(open_dataset(str(out)).manifest.runs) == 1  # the refused run left no trace

    def test_mixing_on_request_records_the_options_per_recording(
        self, fresh_server: DemoServer, tmp_path: Path
    ) -> None:
        out = tmp_path / "ds"
        first = fresh_server.catalog.recordings[1].stream_id
        export(export_config(fresh_server, out, stream_ids=(first,)))
        with pytest.raises(OptionsMismatchError):
            export(export_config(fresh_server, out, event_offset_ms=250.0))
        report = export(export_config(fresh_server, out, event_offset_ms=250.0, mix_options=True))
        assert report.exported == 2
        ds = open_dataset(str(out))
        rows = {r["stream_id"]: r for r in ds.recordings.collect().to_dicts()}
        assert json.loads(rows[first]["export_options"])["event_offset_ms"] == 0.0
        others = [r for sid, r in rows.items() if sid != first]
        assert {json.loads(r["export_options"])["event_offset_ms"] for r in others} == {250.0}
        assert {r["exporter_version"] for r in rows.values()} == {odyssey_data.__version__}
        assert ds.manifest.recordings[first].details["options"]["event_offset_ms"] == 0.0
        runs = ds.manifest.runs
        assert [run["exported"] for run in runs] == [1, 2]  # the refused run added nothing
        assert [run["state"] for run in runs] == ["finished", "finished"]
        assert runs[1]["options"]["event_offset_ms"] == 250.0

    def test_resize_that_stretches_is_warned_about(
        self, demo_server: DemoServer, tmp_path: Path
    ) -> None:
        sid = next(r.stream_id for r in demo_server.catalog.recordings if r.height > r.width)
        done = run_cli(
            "export", str(tmp_path / "ds"), *api_args(demo_server), "--stream-id", sid,
            "--frames", "jpeg", "--resize", "64x36", "-q",
        )  # fmt: skip
        assert done.returncode == cli.EXIT_OK, done.stderr
        warning = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
        assert len(warning) == 1
        assert "--resize 64x36 changes the aspect ratio of its 176x320 frames" in warning[0]
        assert "--resize 64" in warning[0]


# -- the CLI of a serious tool -----------------------------------------------------------


class TestCli:
    def test_dry_run_writes_nothing(self, demo_server: DemoServer, tmp_path: Path) -> None:
        out = tmp_path / "ds"
        done = run_cli("export", str(out), *api_args(demo_server), "--dry-run")
        assert done.returncode == cli.EXIT_OK, done.stderr
        assert not out.exists()
        finished = [r for r in demo_server.catalog.recordings if not r.is_active]
        assert done.stdout.count("would export ") == len(finished)
        assert "would skip " in done.stdout
        assert "nothing written" in done.stdout
        export(export_config(demo_server, out))
        before = sorted(p.name for p in out.rglob("*"))
        result = plan(export_config(demo_server, out, frames="png"))
        assert result.todo == []
        assert result.already == len(finished)
        assert result.refused is not None
        assert "--frames reference → png" in result.refused
        assert sorted(p.name for p in out.rglob("*")) == before

    def test_suggestions_for_mistyped_flags_commands_and_choices(self) -> None:
        cases = {
            ("export", "out", "--workes", "2"): "did you mean --workers (not --workes)?",
            ("exprot", "out"): "did you mean 'export'?",
            ("export", "out", "--frames", "jpg"): "did you mean 'jpeg'?",
            ("list", "--sorce", "all"): "did you mean --source (not --sorce)?",
        }
        for args, hint in cases.items():
            done = run_cli(*args)
            assert done.returncode == cli.EXIT_USAGE
            assert hint in done.stderr.splitlines()[-1], done.stderr

    def test_every_subcommand_has_help_for_every_option_and_an_example(self) -> None:
        parser = cli.build_parser()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for name, command in sub.choices.items():
            assert command.epilog, name
            assert "odyssey-data " + name in command.epilog, name
            for action in command._actions:
                assert action.help, f"{name} {action.option_strings or action.dest}"

    def test_list_prints_whole_ids_as_tsv_when_piped(self, demo_server: DemoServer) -> None:
        done = run_cli("list", *api_args(demo_server), env={"COLUMNS": "40"})
        assert done.returncode == cli.EXIT_OK
        rows = [line.split("\t") for line in done.stdout.splitlines()]
        assert rows[0] == ["stream_id", "size", "started_at", "duration_seconds", "state"]
        assert {r[0] for r in rows[1:]} == {r.stream_id for r in demo_server.catalog.recordings}
        jobs = run_cli("list", *api_args(demo_server), "--source", "simulations")
        lines = [line.split("\t") for line in jobs.stdout.splitlines()]
        assert lines[0][:2] == ["job_id", "state"]
        assert {r[0] for r in lines[1:]} == {j.job_id for j in demo_server.catalog.jobs}

    def test_list_into_a_closed_pipe_is_quiet(self, demo_server: DemoServer) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        command = (
            f"{sys.executable} -c 'from odyssey_data.cli import run; run()' list "
            f"--api-url {demo_server.base_url} --api-key {demo_server.api_key} | head -1"
        )
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
        assert done.stdout.startswith("stream_id\t")
        assert done.stderr == ""
        assert done.returncode == 0

    def test_inspect_labels_rows_and_humanises_bytes(
        self, demo_server: DemoServer, tmp_path: Path
    ) -> None:
        out = tmp_path / "ds"
        sid = demo_server.catalog.recordings[2].stream_id
        export(export_config(demo_server, out, stream_ids=(sid,), fps=5.0))
        done = run_cli("inspect", str(out))
        assert done.returncode == cli.EXIT_OK
        ds = open_dataset(str(out))
        rows = ds.frames.collect().height
        video = ds.recordings.collect()["frame_count"].sum()
        assert rows < video
        lines = done.stdout.splitlines()
        row_line = next(line for line in lines if "frame rows (frames table)" in line)
        video_line = next(line for line in lines if "video frames (in the MP4s)" in line)
        assert row_line.split()[-2] == str(rows)
        assert video_line.split()[-2] == str(video)
        size_line = next(line for line in lines if "video size" in line)
        assert size_line.split()[-2] == "kB"
        summary = json.loads(run_cli("inspect", str(out), "--json").stdout)
        assert (summary["frame_rows"], summary["frames"]) == (rows, video)
        assert pq.read_metadata(next((out / "frames").glob("*.parquet"))).num_rows == rows

    def test_preview_creates_its_folder(self, demo_export: Any, tmp_path: Path) -> None:
        target = tmp_path / "previews" / "deep" / "first.png"
        done = run_cli("preview", str(demo_export.output), "--out", str(target))
        assert done.returncode == cli.EXIT_OK, done.stderr
        assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pipeline_files_take_the_checkpoint_and_mixing_keys() -> None:
    from odyssey_data.errors import ConfigError
    from odyssey_data.jobfile import load_job

    demo = str(REPO / "pipelines" / "demo.toml")
    sets = ["target.checkpoint_every=5", "target.checkpoint_seconds=2.5", "target.mix_options=true"]
    config = load_job(demo, sets).config
    assert (config.checkpoint_every, config.checkpoint_seconds, config.mix_options) == (
        5,
        2.5,
        True,
    )
    with pytest.raises(ConfigError, match=r"\[target\] checkpoint_seconds must be positive"):
        load_job(demo, ["target.checkpoint_seconds=0"])
