"""The ``[target]`` options: where the dataset goes and how it is written: its storage,
what may already sit in OUTPUT, shards, checkpoints and the writer lock. Declared as
:class:`TargetOptions`, one of the groups of :mod:`odyssey_data.options` (import it from
there). None of them changes what a row holds. Pure, as the options are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass
from typing import Any

from odyssey_data.optionspec import (
    BOOL,
    FLOAT,
    INT,
    MAPPING,
    MAX_SECONDS,
    TEXT,
    Recorded,
    bounded,
    option,
)

__all__ = ["TargetOptions"]

# Why an option is not written in manifest.json's options (no_record), and why it leaves
# the rows the same (no_data).
_DECIDES = "a decision of this run about what sits in OUTPUT, not a property of the dataset"
_PACE = "how this run paced its commits, not what the dataset holds"
_WRITES = "how and where the dataset is written, not what a row holds"


def _storage_option_keys(config: Any) -> list[str]:
    return sorted(config.storage_options)  # the names only: values may be credentials


@dataclass(frozen=True, kw_only=True)
class TargetOptions:
    """Where the dataset goes and how it is written."""

    output: str = option(
        MISSING,
        TEXT,
        "dataset root: a folder or fsspec URL (s3://, gs://, memory://)",
        cli="OUTPUT",
        toml="target.url",
        no_record="where the dataset is now; it may be copied or moved",
        no_data=_WRITES,
    )
    storage_options: Mapping[str, Any] = option(
        None,
        MAPPING,
        "fsspec option of the dataset's filesystem, e.g. endpoint_url=http://host:9000 "
        "(repeatable; VALUE is JSON if it parses)",
        cli="--storage-option",
        toml="target.storage_options",
        metavar="KEY=VALUE",
        factory=dict,
        repr=False,
        record=Recorded(key="storage_option_keys", value=_storage_option_keys),
        no_data=_WRITES,
    )
    overwrite: bool = option(
        False,
        BOOL,
        "start a fresh dataset (also the way out of a damaged manifest.json)",
        cli="--overwrite",
        toml="target.overwrite",
        no_record=_DECIDES,
        no_data=_WRITES,
    )
    mix_options: bool = option(
        False,
        BOOL,
        "add recordings even though the dataset holds recordings exported with other "
        "data-shaping options (frames, resize, fps, quality, source, event offset)",
        cli="--mix-options",
        toml="target.mix_options",
        no_record=_DECIDES,
        no_data=_WRITES,
    )
    allow_foreign_files: bool = option(
        False,
        BOOL,
        "add a new dataset to a folder that already holds other files (they are never "
        "deleted or overwritten; a file named like one the export writes is refused)",
        cli="--allow-foreign-files",
        toml="target.allow_foreign_files",
        no_record=_DECIDES,
        no_data=_WRITES,
    )
    shard_rows: int = option(
        1_000_000,
        INT,
        "frame rows per shard at most",
        cli="--shard-rows",
        toml="target.shard_rows",
        check=bounded(1, 2**31 - 1),
        metavar="N",
        record=True,
        no_data="how many rows share a file, not what a row holds",
    )
    checkpoint_every: int = option(
        100,
        INT,
        "commit the dataset at least every N finished recordings",
        cli="--checkpoint-every",
        toml="target.checkpoint_every",
        check=bounded(1, 2**62),
        metavar="N",
        no_record=_PACE,
        no_data=_WRITES,
    )
    checkpoint_seconds: float = option(
        30.0,
        FLOAT,
        "... or at least every T seconds, whichever comes first: an interrupted run loses "
        "at most that much work",
        cli="--checkpoint-seconds",
        toml="target.checkpoint_seconds",
        check=bounded(0.0, MAX_SECONDS, low_open=True),
        metavar="T",
        no_record=_PACE,
        no_data=_WRITES,
    )
    break_lock: bool = option(
        False,
        BOOL,
        "take the dataset's writer lock even if another export seems to hold it (only "
        "when you know that export is dead; also the way out of a damaged lock)",
        cli="--break-lock",
        no_toml="a one-off decision after checking that the other export is dead, not a "
        "standing setting: run `odyssey-data export OUTPUT --break-lock` once",
        no_record=_DECIDES,
        no_data=_WRITES,
    )
    lock_timeout_s: float | None = option(
        6 * 3600.0,
        FLOAT,
        "a writer lock idle for longer is stale and broken (0: never by age, only when "
        "its process is gone from this machine)",
        cli="--lock-timeout",
        toml="target.lock_timeout_s",
        check=bounded(0.0, 10 * MAX_SECONDS, low_open=True),
        metavar="SECONDS",
        zero_means_none=True,
        no_record=_DECIDES,
        no_data=_WRITES,
    )
