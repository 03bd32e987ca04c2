"""The Ray executor: the same export on a local Ray instance gives the same dataset.

One Ray instance for the whole file (starting Ray costs seconds): 2 CPUs, no dashboard,
worker logs kept out of the test output. Fault tests wrap the unit of work in closures,
which Ray pickles by value, so workers need not import this test module.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import DemoExport, export_config
from polars.testing import assert_frame_equal

from odyssey_data import open_dataset
from odyssey_data.cli import build_parser
from odyssey_data.cli.flags import config_from
from odyssey_data.demo import DemoServer, make_demo_catalog
from odyssey_data.errors import ConfigError, MissingDependencyError, OdysseyDataError
from odyssey_data.executors import Executor, make_executor
from odyssey_data.pipeline import ExportConfig, export, list_recordings

ray = pytest.importorskip("ray", reason="the Ray executor needs odyssey-data[ray]")

from odyssey_data.ray_executor import RayExecutor  # noqa: E402 - only once ray is there

SORT_KEYS = {
    "frames": ["stream_id", "frame_index"],
    "recordings": ["stream_id"],
    "events": ["stream_id", "event_index"],
    "segments": ["stream_id", "prompt_index"],
    "qc": ["stream_id"],
}


@pytest.fixture(scope="session")
def ray_instance() -> Iterator[None]:
    """A local Ray instance shared by every test of this file, shut down at the end."""
    patch = pytest.MonkeyPatch()
    # Recent Ray enables token auth for a new local cluster and writes ~/.ray/auth_token;
    # a throwaway test instance on 127.0.0.1 needs neither.
    patch.setenv("RAY_AUTH_MODE", "disabled")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        object_store_memory=128 << 20,
    )
    try:
        yield
    finally:
        ray.shutdown()
        patch.undo()


def tables(url: str, storage_options: dict[str, Any] | None = None) -> dict[str, pl.DataFrame]:
    """The tables of a dataset, sorted, without the export time."""
    ds = open_dataset(url, storage_options)
    out = {}
    for name, keys in SORT_KEYS.items():
        frame = ds.table(name).collect()
        if name == "recordings":
            frame = frame.drop("exported_at")
        out[name] = frame.sort(keys)
    return out


def assert_same_tables(got: dict[str, pl.DataFrame], want: dict[str, pl.DataFrame]) -> None:
    for name in SORT_KEYS:
        assert got[name].height > 0, name
        assert_frame_equal(got[name], want[name])


def statuses(url: str, storage_options: dict[str, Any] | None = None) -> dict[str, str]:
    ds = open_dataset(url, storage_options)
    return {sid: st.status for sid, st in ds.manifest.recordings.items()}


class WrappedExecutor:
    """An executor that runs ``wrap(fn)`` instead of ``fn`` (to inject faults)."""

    def __init__(self, inner: Executor, wrap: Callable[[Callable[[Any], Any]], Any]) -> None:
        self.inner = inner
        self.wrap = wrap

        self.capabilities = inner.capabilities

    def ahead(self, prepare: Any, items: Iterable[Any], release: Any) -> Iterator[Any]:
        return self.inner.ahead(prepare, items, release)

    def map_unordered(
        self, fn: Callable[[Any], Any], items: Iterable[Any], on_lost: Any = None
    ) -> Iterator[Any]:
        return self.inner.map_unordered(self.wrap(fn), items, on_lost)

    def close(self, wait: bool = True) -> None:
        self.inner.close(wait=wait)


def killing_first_attempt(target: str, marker: Path, log: Path) -> Callable[[Any], Any]:
    """Wrap the unit of work: its first attempt at ``target`` kills its worker process.

    The kill comes after the work is done (the video is already in the dataset) and
    before the result is returned: output of a task that did not finish.
    """

    def wrap(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def flaky(task: Any) -> Any:
            with open(log, "a") as handle:
                handle.write(task.info.stream_id + "\n")
            result = fn(task)
            if task.info.stream_id == target and not marker.exists():
                marker.touch()
                os._exit(1)
            return result

        return flaky

    return wrap


# -- the executor on its own ---------------------------------------------------------


def test_results_stream_back_with_bounded_in_flight(ray_instance: None) -> None:
    consumed = 0

    def items() -> Iterator[int]:
        nonlocal consumed
        for i in range(12):
            consumed += 1
            yield i

    executor = RayExecutor(max_in_flight=3)
    got = []
    for result in executor.map_unordered(lambda x: x * x, items()):
        got.append(result)
        assert consumed - len(got) < 3  # never more than 3 submitted and not collected
    executor.close()
    assert sorted(got) == [i * i for i in range(12)]
    assert ray.is_initialized()  # a Ray it did not start is left running


def test_an_exception_in_the_function_propagates_as_itself(ray_instance: None) -> None:
    def boom(x: int) -> int:
        raise KeyError(f"bug {x}")

    executor = RayExecutor(max_in_flight=2)
    with pytest.raises(KeyError, match="bug"):
        list(executor.map_unordered(boom, [1, 2]))
    executor.close()


def test_close_lets_go_of_what_an_abandoned_run_left_in_flight(ray_instance: None) -> None:
    import time

    def slow_but_first(x: int) -> int:
        if x:
            time.sleep(1)
        return x

    executor = RayExecutor(max_in_flight=3)
    results = executor.map_unordered(slow_but_first, [0, 1, 2])
    assert next(results) == 0  # the driver stops here (say, a shard write failed)
    started = time.perf_counter()
    executor.close()
    assert time.perf_counter() - started < 0.5  # close() does not wait for them
    assert not executor._running
    del results
    time.sleep(1.5)  # the abandoned tasks finish on their own; the driver stays up
    assert ray.is_initialized()


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError):
        RayExecutor(num_cpus_per_task=0)
    with pytest.raises(ConfigError):
        RayExecutor(max_in_flight=0)
    with pytest.raises(ConfigError):
        make_executor("ray", 2, no_such_option=1)
    with pytest.raises(ConfigError):
        make_executor("local", 2, address="auto")
    with pytest.raises(ConfigError):
        ExportConfig(output="out", ray_address="auto")  # needs executor="ray"
    with pytest.raises(ConfigError):
        ExportConfig(output="memory://x", executor="ray")
    executor = make_executor("ray", 4, address="auto", memory_per_task=1 << 30)
    assert isinstance(executor, RayExecutor)
    assert (executor.address, executor.max_in_flight) == ("auto", 4)


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "odyssey_data.ray_executor", raising=False)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    with pytest.raises(MissingDependencyError, match=r"odyssey-data\[ray\]"):
        make_executor("ray", 2)


def test_cli_options() -> None:
    args = build_parser().parse_args(
        ["export", "out", "--executor", "ray", "--ray-address", "ray://head:10001"]
    )
    config = config_from(args, args.output)
    assert (config.executor, config.ray_address) == ("ray", "ray://head:10001")
    args = build_parser().parse_args(["export", "out"])
    assert (config_from(args, args.output).executor, args.ray_address) == ("local", None)


# -- the export on Ray ------------------------------------------------------------


def test_export_on_ray_equals_the_local_export(
    ray_instance: None, demo_export: DemoExport, tmp_path: Path
) -> None:
    out = tmp_path / "ray"
    report = export(export_config(demo_export.server, out, executor="ray", workers=2))
    local = demo_export.report
    assert (report.exported, report.failed, report.skipped) == (
        local.exported,
        local.failed,
        local.skipped,
    )
    assert report.frames == local.frames
    assert_same_tables(tables(str(out)), tables(str(demo_export.output)))
    assert statuses(str(out)) == statuses(str(demo_export.output))
    assert open_dataset(str(out)).verify() == []
    for video in (demo_export.output / "videos").iterdir():
        assert (out / "videos" / video.name).read_bytes() == video.read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["executor"] == "ray"


def test_materialised_frames_on_ray_equal_the_local_ones(
    ray_instance: None, demo_server: DemoServer, tmp_path: Path
) -> None:
    # Ray workers download themselves and decode while the video arrives (images kept
    # in memory there, not spilled): the same images as the local worker processes.
    options = {"frames": "jpeg", "resize": (64, 36), "workers": 2}
    on_ray = export(export_config(demo_server, tmp_path / "ray", executor="ray", **options))
    local = export(export_config(demo_server, tmp_path / "local", **options))
    assert on_ray.exported == local.exported > 0
    got, want = tables(str(tmp_path / "ray")), tables(str(tmp_path / "local"))
    assert_same_tables(got, want)
    assert got["frames"]["image"].to_list() == want["frames"]["image"].to_list()


def test_export_on_ray_to_s3_equals_the_local_export(
    ray_instance: None, demo_export: DemoExport
) -> None:
    pytest.importorskip("moto.server", reason="the S3 test needs moto[server]")
    pytest.importorskip("s3fs", reason="the S3 test needs odyssey-data[s3]")
    from storage_servers import moto_s3

    with moto_s3() as s3:
        url = s3.url()
        options = s3.storage_options
        config = export_config(
            demo_export.server, url, executor="ray", workers=2, storage_options=options
        )
        report = export(config)
        assert (report.exported, report.failed) == (demo_export.report.exported, 0)
        # The workers wrote the videos straight to the bucket: the dataset is complete.
        assert open_dataset(url, options).verify() == []
        assert_same_tables(tables(url, options), tables(str(demo_export.output)))


def test_a_failing_recording_fails_alone(ray_instance: None, tmp_path: Path) -> None:
    from urllib.parse import quote

    with DemoServer(make_demo_catalog(3, seed=5, active=0)) as server:
        bad = server.catalog.recordings[1].stream_id
        server.inject(f"/blobs/{quote(bad, safe='')}/video.mp4", 404, times=100)
        out = tmp_path / "ray"
        report = export(export_config(server, out, executor="ray", workers=2))
    assert (report.exported, report.failed) == (2, 1)
    assert [(sid, status) for sid, status, _ in report.problems] == [(bad, "failed")]
    assert "404" in report.problems[0][2]
    ds = open_dataset(str(out))
    assert ds.manifest.recordings[bad].status == "failed"
    assert bad not in ds.recordings.collect()["stream_id"].to_list()
    assert ds.recordings.collect().height == 2
    assert ds.verify() == []


def test_a_killed_worker_is_retried_and_the_dataset_is_complete(
    ray_instance: None, demo_export: DemoExport, tmp_path: Path
) -> None:
    target = next(r.stream_id for r in demo_export.catalog.recordings if not r.is_active)
    marker, attempts = tmp_path / "killed-once", tmp_path / "attempts.log"
    wrap = killing_first_attempt(target, marker, attempts)
    injected = WrappedExecutor(make_executor("ray", 2), wrap)
    out = tmp_path / "ray"
    config = export_config(demo_export.server, out, executor="ray", workers=2)
    report = export(config, executor=injected)
    assert marker.exists()  # the first attempt did kill its worker
    assert attempts.read_text().split().count(target) == 2  # and Ray ran it again
    assert (report.exported, report.failed) == (demo_export.report.exported, 0)
    assert open_dataset(str(out)).verify() == []
    assert_same_tables(tables(str(out)), tables(str(demo_export.output)))


def test_a_task_lost_for_good_stops_the_run_and_commits_nothing_of_it(
    ray_instance: None, demo_export: DemoExport, tmp_path: Path
) -> None:
    server = demo_export.server
    # The last recording the export takes up, so others are committed before it is lost.
    listed = list_recordings(server.base_url, server.api_key)
    target = [info.stream_id for info in listed if not info.is_active][-1]
    marker, attempts = tmp_path / "killed-once", tmp_path / "attempts.log"
    wrap = killing_first_attempt(target, marker, attempts)
    no_retry = WrappedExecutor(RayExecutor(max_in_flight=1, max_retries=0), wrap)
    out = tmp_path / "ray"
    # One recording per shard, so the manifest is committed while the run goes on.
    config = export_config(demo_export.server, out, executor="ray", shard_rows=1)
    with pytest.raises(OdysseyDataError, match="lost"):
        export(config, executor=no_retry)
    ds = open_dataset(str(out))
    assert len(ds.manifest.recordings) >= 2  # commits happened before the loss
    assert target not in ds.manifest.recordings  # its video was written, never committed
    assert f"videos/{target}.mp4" not in ds.manifest.files
    assert (out / "videos" / f"{target}.mp4").exists()
    assert ds.verify() == []
    # A re-run (the marker is there now, no more kills) finishes the dataset.
    report = export(export_config(demo_export.server, out, executor="ray", workers=2))
    assert report.failed == 0
    assert report.exported + report.already == demo_export.report.exported
    assert_same_tables(tables(str(out)), tables(str(demo_export.output)))
