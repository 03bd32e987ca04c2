"""The conversion's output folder: what the converter writes, and what it may delete.

Every file goes through :class:`Writer`, which remembers it; the list ends up in
``meta/odyssey.json`` (``RECORD_PATH``), the record that proves which files a conversion
wrote. :func:`prepare_output` refuses a folder that holds anything else, and with
``overwrite`` deletes only what an earlier conversion's record lists.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from odyssey_data.errors import ConfigError
from odyssey_data.lerobot.layout import RECORD_PATH
from odyssey_data.storage import DatasetStore


class Writer:
    """Puts the conversion's files into the output store and remembers them in ``files``."""

    def __init__(self, store: DatasetStore, files: list[str]) -> None:
        self.store = store
        self.files = files

    def table(self, rel: str, table: pa.Table) -> None:
        self.store.write_table(rel, table, kind="lerobot")
        self.files.append(rel)

    def json(self, rel: str, data: Any) -> None:
        self.store.write_bytes(rel, json.dumps(data, indent=2).encode())
        self.files.append(rel)

    def text(self, rel: str, text: str) -> None:
        self.store.write_bytes(rel, text.encode())
        self.files.append(rel)

    def file(self, rel: str, local: str) -> None:
        self.store.put_file(rel, local, kind="video")
        self.files.append(rel)


def prepare_output(store: DatasetStore, overwrite: bool) -> None:
    """Refuse a non-empty output unless it is an earlier conversion and ``overwrite``.

    With ``overwrite``, only the files that conversion's ``meta/odyssey.json`` lists
    are deleted; anything else in the folder stays.
    """
    present = store.list_files("")
    if not present:
        return
    record = store.read_json(RECORD_PATH) if RECORD_PATH in present else None
    if not overwrite or not isinstance(record, dict):
        what = "an earlier conversion" if isinstance(record, dict) else "files"
        raise ConfigError(
            f"{store.url} already holds {what} ({len(present)} files); convert into a new "
            "folder" + (", or pass --overwrite to replace it" if isinstance(record, dict) else "")
        )
    listed = {str(rel) for rel in record.get("files", []) if isinstance(rel, str)}
    listed.add(RECORD_PATH)
    doomed = sorted(rel for rel in present if rel in listed)
    store.remove(doomed, owned=listed.__contains__)
