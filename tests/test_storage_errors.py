"""Every store method that talks to the backend goes through the one translation point.

``odyssey_data.storage.errors`` turns the backends' exceptions into one-line
``StorageError`` subclasses; these tests check that no method of the store lets a
backend's own exception out. Real parts: a moto S3 server on 127.0.0.1 that goes away
after the store opened it (as an endpoint does mid-export), and temp folders the OS
refuses to make.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import export_config
from storage_servers import moto_s3

from odyssey_data.demo import DemoServer
from odyssey_data.errors import StorageAccessError, StorageError, StorageUnreachableError
from odyssey_data.pipeline import export
from odyssey_data.storage import MANIFEST_NAME, DatasetStore
from odyssey_data.task import STOPS_THE_RUN

#: One attempt per request and a short connect timeout: the server is gone, and
#: retrying would only make the test slow.
ONE_ATTEMPT: dict[str, Any] = {
    "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1}
}


@pytest.fixture(scope="module")
def store_without_endpoint() -> tuple[DatasetStore, str]:
    """A store on S3 holding a manifest, whose server has stopped since."""
    with moto_s3() as s3:
        store = DatasetStore(s3.url(), {**s3.storage_options, **ONE_ATTEMPT})
        store.write_bytes(MANIFEST_NAME, b'{\n "generation": 1,\n "files": {}\n}\n')
        assert store.manifest_generation() == 1
        endpoint = s3.endpoint_url
    return store, endpoint


CALLS: dict[str, tuple[str, Callable[[DatasetStore], object]]] = {
    "remove": ("delete", lambda store: store.remove([MANIFEST_NAME])),
    "manifest_generation": ("read", lambda store: store.manifest_generation()),
    "checksum": ("read", lambda store: store.checksum(MANIFEST_NAME)),
    "list_root_files": ("list", lambda store: store.list_root_files()),
    "list_files": ("list", lambda store: store.list_files("frames")),
    "check_ownership": ("read", lambda store: store.check_ownership()),
    "read_bytes": ("read", lambda store: store.read_bytes(MANIFEST_NAME)),
    "write_bytes": ("write", lambda store: store.write_bytes("x.json", b"{}")),
}


@pytest.mark.parametrize("method", sorted(CALLS))
def test_an_endpoint_gone_after_the_store_opened_is_one_line_that_stops_the_run(
    store_without_endpoint: tuple[DatasetStore, str], method: str
) -> None:
    store, endpoint = store_without_endpoint
    action, call = CALLS[method]
    with pytest.raises(StorageUnreachableError) as info:
        call(store)
    message = str(info.value)
    assert message.startswith(f"cannot {action} "), message
    assert store.url in message
    assert f"cannot reach the endpoint {endpoint}" in message
    assert "\n" not in message
    # The dataset's storage, not one recording: the export stops instead of failing
    # every recording in turn.
    assert isinstance(info.value, STOPS_THE_RUN)


def test_a_scratch_folder_the_os_refuses_stops_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # /sys refuses even root (read-only or permission denied, depending on the host).
    folder = "/sys/kernel/odyssey-data-scratch-test"
    monkeypatch.setenv("ODYSSEY_DATA_SCRATCH", folder)
    store = DatasetStore("memory://storage-errors-scratch/dataset")
    with pytest.raises(StorageAccessError) as info:
        store.scratch_dir()
    message = str(info.value)
    assert message.startswith(f"cannot make the temp folder {folder} (ODYSSEY_DATA_SCRATCH)")
    assert "permission denied" in message or "read-only" in message
    assert isinstance(info.value, STOPS_THE_RUN)


def test_a_file_where_the_scratch_folder_must_be_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "afile").write_text("not a folder")
    monkeypatch.setenv("ODYSSEY_DATA_SCRATCH", str(tmp_path / "afile" / "scratch"))
    store = DatasetStore("memory://storage-errors-scratch-file/dataset")
    with pytest.raises(StorageError, match=r"a file is in the way where a folder must be"):
        store.scratch_dir()
    assert (tmp_path / "afile").read_text() == "not a folder"


def test_an_export_whose_scratch_folder_is_refused_stops_in_one_line(
    demo_server: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = "/sys/kernel/odyssey-data-scratch-test"
    monkeypatch.setenv("ODYSSEY_DATA_SCRATCH", folder)
    with pytest.raises(StorageAccessError, match=r"cannot make the temp folder /sys/kernel/"):
        export(export_config(demo_server, "memory://storage-errors-export/dataset"))
