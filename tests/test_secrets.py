"""Nothing leaks and nothing escapes: keys and presigned queries, hostile ids, disk, TLS."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import json
import logging
import os
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import FAST_RETRY, export_config
from leakcheck import dataset_texts, leaks, log_text
from raw_http import (
    KEY,
    SIGNATURE,
    Conn,
    RawHTTPServer,
    Seen,
    self_signed_certificate,
    serve_api,
    serve_range,
)

from odyssey_data import cli
from odyssey_data.api import OdysseyClient
from odyssey_data.cli import flags
from odyssey_data.demo import DemoCatalog, DemoServer, make_demo_catalog
from odyssey_data.errors import ApiError, DownloadError
from odyssey_data.options import ClientOptions
from odyssey_data.pipeline import ExportConfig, RecordingTask, export
from odyssey_data.storage import DatasetStore

DATA = bytes(range(256)) * 100


@pytest.fixture(scope="module")
def catalog() -> DemoCatalog:
    return make_demo_catalog(3, seed=5, seconds=1.0, active=1)


@pytest.fixture
def server(catalog: DemoCatalog) -> Iterator[DemoServer]:
    with DemoServer(DemoCatalog(catalog.snapshot()), page_cap=2) as srv:
        yield srv


def finished(server: DemoServer) -> list[str]:
    return [rec.stream_id for rec in server.catalog.snapshot() if not rec.is_active]


@pytest.fixture
def tmpdir_watch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every temp file of this process (the in-process worker's) at one folder."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


# --- hostile stream ids ------------------------------------------------------------------

HOSTILE = [
    "../../etc/x",
    "/abs/path",
    "a/b\\c",
    "ctl\x00\x07\x1b[2J\r\nz",
    "..",
    ".",
    ".hidden",
    "x" * 300,
    "con:nul?*<>|#%",
]


def test_hostile_stream_ids_never_write_outside_output(tmp_path: Path) -> None:
    base = make_demo_catalog(1, seed=3, seconds=1.0, active=0).snapshot()[0]
    recordings = [dataclasses.replace(base, stream_id=sid) for sid in HOSTILE]
    output = tmp_path / "deep" / "er" / "out"
    output.parent.mkdir(parents=True)
    before = set(tmp_path.rglob("*"))
    with DemoServer(DemoCatalog(recordings), page_cap=4) as srv:
        srv.inject_truncation(f"/blobs/{quote(HOSTILE[0], safe='')}/video.mp4", 900)
        report = export(export_config(srv, output))

    assert (report.exported, report.failed) == (len(HOSTILE), 0), report.problems
    new = set(tmp_path.rglob("*")) - before
    outside = [p for p in new if not p.resolve().is_relative_to(output.resolve())]
    assert outside == []
    assert not Path("/abs/path").exists()
    assert not Path("/abs/path.mp4").exists()

    table = pq.read_table(output / "recordings")
    assert sorted(table["stream_id"].to_pylist()) == sorted(HOSTILE)  # the original ids
    for video_path in table["video_path"].to_pylist():
        folder, name = video_path.split("/")
        assert folder == "videos"
        assert not name.startswith(".")
        assert name.isprintable()
        assert "\\" not in name
        assert (output / video_path).is_file()
    manifest = json.loads((output / "manifest.json").read_text())
    assert sorted(manifest["recordings"]) == sorted(HOSTILE)


def test_a_stream_id_that_looks_like_markup_does_not_break_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = make_demo_catalog(1, seed=3, seconds=1.0, active=0).snapshot()[0]
    rec = dataclasses.replace(base, stream_id="[/]", video_override=b"not a video")
    with DemoServer(DemoCatalog([rec])) as srv:
        code = cli.main(
            [
                *("export", str(tmp_path / "out"), "--workers", "1"),
                *("--api-url", srv.base_url, "--api-key", srv.api_key),
            ]
        )
    assert code == 3
    assert "[/]" in capsys.readouterr().out


# --- the key and presigned queries --------------------------------------------------------


def test_configs_and_tasks_never_show_the_key(tmp_path: Path) -> None:
    config = ExportConfig(output=str(tmp_path), api_url="http://x", api_key="ody_hidden_key_77")
    assert "ody_hidden_key_77" not in repr(config)
    assert "ody_hidden_key_77" not in json.dumps(config.public_options())
    client = OdysseyClient("http://x", "ody_hidden_key_77")
    assert "ody_hidden_key_77" not in repr(client)
    client.close()
    from odyssey_data.models import RecordingInfo

    task = RecordingTask(
        RecordingInfo("s"),
        ClientOptions(api_url="http://x", api_key="ody_hidden_key_77"),
        DatasetStore(str(tmp_path)),
    )
    assert "ody_hidden_key_77" not in repr(task)


def test_a_redirected_presigned_url_stays_out_of_debug_logs_and_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    location = "L0CATI0NS1GNATURE"

    def respond(seen: Seen, conn: Conn) -> None:
        if serve_api(seen, conn, server.base_url, blob="/redirect/video.mp4"):
            return
        if seen.path.startswith("/redirect/"):
            target = f"{server.base_url}/{'denied' if 'deny' in seen.target else 'blob'}"
            conn.send(302, b"", {"Location": f"{target}/video.mp4?X-Amz-Signature={location}"})
        elif seen.path.startswith("/denied/"):
            conn.send(403, b"<Error><Code>AccessDenied</Code></Error>")
        else:
            serve_range(seen, conn, DATA)

    with RawHTTPServer(respond) as server:
        with OdysseyClient(server.base_url, KEY, retry=FAST_RETRY) as client:
            url = client.get_recording("r1").video_url
            assert url is not None
            sink = io.BytesIO()
            client.download(url, sink, what="recording 'r1' video")
            assert sink.getvalue() == DATA
            with pytest.raises(DownloadError) as info:
                client.download(url + "&deny=1", io.BytesIO(), what="recording 'r1' video")
    # The blob URLs are on the API's own host: still, no bearer token goes with them.
    blobs = [s for s in server.requests if not s.path.startswith(("/auth/", "/recordings/"))]
    assert len(blobs) == 4
    assert not [s for s in blobs if "authorization" in s.headers]
    text = log_text(caplog.records)
    assert "HTTP Request: GET" in text  # httpx did log the requests, redacted
    assert "receive_response_headers" in text  # and httpcore its header traces
    secrets = [KEY, SIGNATURE, location, "raw-token"]
    assert leaks(secrets, [("logs", text), ("error", str(info.value))]) == []
    assert "HTTP 403" in str(info.value)


def test_api_key_and_signatures_never_leak_from_a_failing_export(
    server: DemoServer,
    tmp_path: Path,
    tmpdir_watch: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(flags, "ExportConfig", _fast_config)
    signed: list[str] = []
    presign = server.presign

    def recording_presign(stream_id: str, name: str) -> str:
        url = presign(stream_id, name)
        signed.append(url.partition("?")[2])
        return url

    monkeypatch.setattr(server, "presign", recording_presign)
    tokens: list[str] = []
    issue = server._issue_token
    monkeypatch.setattr(server, "_issue_token", lambda: tokens.append(issue()) or tokens[-1])
    a, b, c = finished(server)
    server.inject(f"/blobs/{a}/video.mp4", 403, times=9, body=b"<Error>AccessDenied</Error>")
    server.inject(f"/blobs/{b}/events.jsonl", 503, times=99)
    server.inject(f"/blobs/{c}/video.mp4", 403, body=b"<Message>Request has expired</Message>")

    output = tmp_path / "out"
    httpx_logger = logging.getLogger("httpx")
    level = httpx_logger.level
    try:
        code = cli.main(
            [
                *("--debug", "export", str(output), "--workers", "1"),
                *("--api-url", server.base_url, "--api-key", server.api_key),
            ]
        )
    finally:
        httpx_logger.setLevel(level)  # --debug raises it to INFO for good
    captured = capsys.readouterr()

    assert code == 3
    assert f"{a}: recording {a!r} video: HTTP 403 from {server.base_url}/blobs/{a}/video.mp4" in (
        captured.out
    )
    assert signed
    assert len(tokens) >= 2
    secrets = [server.api_key, *signed, *tokens, "X-Amz-", "ODYSSEYDEMOAKIA"]
    texts = [
        ("stdout", captured.out),
        ("stderr", captured.err),
        ("logs", log_text(caplog.records)),
        *dataset_texts(output),
    ]
    assert leaks(secrets, texts) == []
    assert list(tmpdir_watch.iterdir()) == []


def _fast_config(**options: object) -> ExportConfig:
    return ExportConfig(**{"retry": FAST_RETRY, **options})  # type: ignore[arg-type]


# --- disk: the download cap and temp files -------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_download_cap_refuses_a_body_too_large(chunked: bool) -> None:
    def respond(seen: Seen, conn: Conn) -> None:
        if serve_api(seen, conn, server.base_url):
            return
        if chunked:
            conn.head(200, {"Transfer-Encoding": "chunked"})
            for _ in range(100):  # endless, as far as the client should care
                conn.raw(b"%x\r\n%s\r\n" % (len(DATA), DATA))
        else:
            serve_range(seen, conn, DATA)

    with RawHTTPServer(respond) as server:
        client = OdysseyClient(server.base_url, KEY, retry=FAST_RETRY, max_download_bytes=5000)
        with client:
            url = client.get_recording("r1").video_url
            assert url is not None
            sink = io.BytesIO()
            with pytest.raises(DownloadError, match="download cap of 5000 bytes") as info:
                client.download(url, sink, what="recording 'r1' video")
        assert server.count("/blob") == 1  # refused, not retried
    assert "raise --max-download-bytes" in str(info.value)
    assert len(sink.getvalue()) <= 5000


def test_cli_max_download_bytes_is_applied(
    server: DemoServer,
    tmp_path: Path,
    tmpdir_watch: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = cli.build_parser().parse_args(["export", "out", "--max-download-bytes", "1234"])
    assert flags.config_from(args, "out").max_download_bytes == 1234
    assert ExportConfig(output="o").max_download_bytes == 16 << 30  # the default: 16 GiB

    code = cli.main(
        [
            *("export", str(tmp_path / "out"), "--workers", "1", "--max-download-bytes", "2000"),
            *("--api-url", server.base_url, "--api-key", server.api_key),
        ]
    )
    out = capsys.readouterr().out
    assert code == 3
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    for sid in finished(server):
        entry = manifest["recordings"][sid]
        assert entry["status"] == "failed"
        assert (
            "above the download cap of 2000 bytes (raise --max-download-bytes)" in (entry["reason"])
        )
        assert sid in out
    assert list(tmpdir_watch.iterdir()) == []
    assert [p for p in (tmp_path / "out").rglob("*") if p.name.startswith(".")] == []


def test_temp_files_are_removed_on_every_path(
    server: DemoServer, tmp_path: Path, tmpdir_watch: Path
) -> None:
    a, b, _ = finished(server)
    server.inject(f"/blobs/{a}/video.mp4", 503, times=99)  # fails while downloading
    server.inject(f"/blobs/{b}/events.jsonl", 404, times=9)  # fails after the video came
    report = export(export_config(server, tmp_path / "out"))
    assert (report.exported, report.failed) == (1, 2)
    assert list(tmpdir_watch.iterdir()) == []
    assert [p for p in (tmp_path / "out").rglob("*") if p.name.startswith(".")] == []


# --- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 that no system trusts."""
    pytest.importorskip("cryptography.x509")
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https_server(certificate: tuple[Path, Path]) -> Iterator[RawHTTPServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)

    def respond(seen: Seen, conn: Conn) -> None:
        if not serve_api(seen, conn, server.base_url):
            serve_range(seen, conn, DATA)

    with RawHTTPServer(respond, tls=context) as server:
        yield server


def test_tls_verification_stays_on(
    https_server: RawHTTPServer, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with OdysseyClient(https_server.base_url, KEY, retry=FAST_RETRY) as client:
        with pytest.raises(ApiError, match=r"TLS certificate of https://127\.0\.0\.1") as info:
            client.get_recording("r1")
        assert client.api_retries == 0  # a certificate that does not verify is not retried
    assert "verification stays on" in str(info.value)
    assert "SSL_CERT_FILE" in str(info.value)
    assert https_server.requests == []  # not one request got through

    # The one way to trust it: the CA bundle named by SSL_CERT_FILE (httpx honours it).
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    with OdysseyClient(https_server.base_url, KEY, retry=FAST_RETRY) as client:
        url = client.get_recording("r1").video_url
        assert url is not None
        sink = io.BytesIO()
        client.download(url, sink, what="v")
    assert sink.getvalue() == DATA


def test_no_option_disables_tls_verification() -> None:
    words = ("verify", "insecure", "tls", "ssl", "cert")
    parameters = inspect.signature(OdysseyClient.__init__).parameters
    assert not [p for p in parameters if any(w in p.lower() for w in words)]
    fields = [f.name for f in dataclasses.fields(ExportConfig)]
    assert not [f for f in fields if any(w in f.lower() for w in words)]
    options: list[str] = []
    parser = cli.build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                options += [s for a in sub._actions for s in a.option_strings]
    assert options
    assert not [o for o in options if any(w in o.lower() for w in words)]


def test_recordings_table_never_holds_a_url(server: DemoServer, tmp_path: Path) -> None:
    export(export_config(server, tmp_path / "out"))
    tables = [pq.read_table(tmp_path / "out" / t) for t in ("recordings", "frames", "segments")]
    cells = repr([t.to_pylist() for t in tables])
    assert "http" not in cells
    assert os.sep + "blobs" not in cells
    assert isinstance(tables[0], pa.Table)
