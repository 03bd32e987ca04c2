"""Real object-store servers on 127.0.0.1 for the storage tests: S3 (moto) and GCS.

Import this module before anything imports ``gcsfs``: it sets
``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false``, without which every bucket probe against the
emulator waits about a minute for a Google endpoint it cannot reach. The variable is
inherited by spawned worker processes too.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"

#: Moto accepts any credentials; these are test values, not secrets.
S3_TEST_KEY = "moto-test-key-id"
S3_TEST_SECRET = "moto-test-secret-value"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@dataclass
class ObjectStore:
    """A running object-store server and how fsspec reaches it.

    Attributes:
        protocol: ``s3`` or ``gs``.
        endpoint_url: ``http://127.0.0.1:PORT``.
        storage_options: the fsspec options for it.
        env: environment variables that let a subprocess reach it without options.
    """

    protocol: str
    endpoint_url: str
    storage_options: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)

    def new_bucket(self) -> str:
        """Create a fresh bucket and return its name."""
        import fsspec

        name = f"test-{uuid.uuid4().hex[:12]}"
        fs = fsspec.filesystem(self.protocol, **self.storage_options)
        fs.mkdir(name)
        fs.invalidate_cache()
        return name

    def url(self, prefix: str = "dataset") -> str:
        """A dataset URL in a fresh bucket."""
        return f"{self.protocol}://{self.new_bucket()}/{prefix}"


@contextmanager
def moto_s3() -> Iterator[ObjectStore]:
    """A moto S3 server on 127.0.0.1 (real HTTP; s3fs talks to it like to AWS)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        _wait_listening(port)
        endpoint = f"http://127.0.0.1:{port}"
        options: dict[str, Any] = {
            "endpoint_url": endpoint,
            "key": S3_TEST_KEY,
            "secret": S3_TEST_SECRET,
        }
        env = {
            "AWS_ACCESS_KEY_ID": S3_TEST_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_TEST_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        yield ObjectStore("s3", endpoint, options, env)
    finally:
        server.stop()


@contextmanager
def gcs_emulator() -> Iterator[ObjectStore]:
    """The gcp-storage-emulator on 127.0.0.1, in memory; gcsfs uses ``token="anon"``."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        _wait_listening(port)
        endpoint = f"http://127.0.0.1:{port}"
        yield ObjectStore("gs", endpoint, {"endpoint_url": endpoint, "token": "anon"})
    finally:
        server.stop()


#: The sort keys of each table: compared sorted, exports of any shard layout are equal.
SORT_KEYS = {
    "frames": ["stream_id", "frame_index"],
    "recordings": ["stream_id"],
    "events": ["stream_id", "event_index"],
    "segments": ["stream_id", "prompt_index"],
    "qc": ["stream_id"],
}


def dataset_tables(url: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The tables of the dataset at ``url`` as polars frames, sorted, minus
    ``exported_at`` (the only column that differs between two exports of the same data)."""
    from odyssey_data.dataset import open_dataset

    ds = open_dataset(url, storage_options)
    out = {}
    for name, keys in SORT_KEYS.items():
        frame = ds.table(name).collect()
        if "exported_at" in frame.columns:
            frame = frame.drop("exported_at")
        out[name] = frame.sort(keys)
    return out


def assert_same_tables(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Both datasets hold exactly the same rows in every table."""
    from polars.testing import assert_frame_equal

    assert set(got) == set(want)
    for name in want:
        assert got[name].height == want[name].height, name
        assert_frame_equal(got[name], want[name], check_column_order=False)


# -- fixtures (import them into a test module by their function names) -----------------


@dataclass
class Target:
    """Where a test exports to: a URL and the options to reach it."""

    kind: str
    url: str
    storage_options: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def cli_options(self) -> list[str]:
        """``--storage-option KEY=VALUE`` arguments for the CLI."""
        out: list[str] = []
        for key, value in self.storage_options.items():
            out += ["--storage-option", f"{key}={value}"]
        return out


TARGET_KINDS = ("local", "file", "memory", "s3", "gcs")


@pytest.fixture(scope="session", name="s3")
def s3_fixture() -> Iterator[ObjectStore]:
    """A moto S3 server for the session."""
    with moto_s3() as store:
        yield store


@pytest.fixture(scope="session", name="gcs")
def gcs_fixture() -> Iterator[ObjectStore]:
    """A GCS emulator for the session."""
    with gcs_emulator() as store:
        yield store


def make_target(kind: str, request: pytest.FixtureRequest, tmp_path: Any) -> Target:
    """A fresh, empty dataset location of ``kind`` (servers start only when needed)."""
    if kind == "local":
        return Target(kind, str(tmp_path / "dataset"))
    if kind == "file":
        return Target(kind, (tmp_path / "dataset").as_uri())
    if kind == "memory":
        return Target(kind, f"memory://odyssey-test-{uuid.uuid4().hex[:12]}/dataset")
    store: ObjectStore = request.getfixturevalue("s3" if kind == "s3" else "gcs")
    return Target(kind, store.url(), dict(store.storage_options), dict(store.env))


@pytest.fixture(name="target", params=TARGET_KINDS)
def target_fixture(request: pytest.FixtureRequest, tmp_path: Any) -> Target:
    """Each storage target in turn: local path, file://, memory://, S3, GCS."""
    return make_target(request.param, request, tmp_path)
