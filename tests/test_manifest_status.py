"""Recording statuses are one of three values, checked where a manifest is read."""

from __future__ import annotations

import pytest

from odyssey_data.errors import DatasetDamagedError
from odyssey_data.manifest import FORMAT, FORMAT_VERSION, STATUSES, Manifest, parse_status


def manifest_json(status: object) -> dict[str, object]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "files": [],
        "recordings": {"s1": {"status": status, "reason": None, "frames": 0}},
    }


def test_every_status_reads_back() -> None:
    for status in STATUSES:
        manifest = Manifest.from_json(manifest_json(status), where="m")
        assert manifest.recordings["s1"].status == status


def test_an_unknown_status_is_a_damaged_manifest() -> None:
    with pytest.raises(DatasetDamagedError, match="unknown recording status 'done'"):
        Manifest.from_json(manifest_json("done"), where="m")
    with pytest.raises(ValueError, match="unknown"):
        parse_status(None)
