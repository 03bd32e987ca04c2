"""Look for secrets in captured logs, printed output and every file of a dataset."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow.parquet as pq

_FORMAT = logging.Formatter("%(levelname)s %(name)s: %(message)s")


def log_text(records: Iterable[logging.LogRecord]) -> str:
    """Every record as a handler would print it, plus its raw fields (``extra``, args)."""
    return "\n".join(f"{_FORMAT.format(r)}\n{r.__dict__!r}" for r in records)


def dataset_texts(root: Path) -> Iterator[tuple[str, bytes]]:
    """Every file under ``root`` byte for byte, and each Parquet table's cells decoded."""
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield str(path), path.read_bytes()
            if path.suffix == ".parquet":
                cells = pq.read_table(path).to_pylist()
                yield f"{path} (cells)", repr(cells).encode()


def leaks(secrets: Iterable[str], texts: Iterable[tuple[str, bytes | str]]) -> list[str]:
    """``where: secret`` for every secret found (secrets shown by their first 8 chars)."""
    wanted = [s for s in secrets if s]
    found = []
    for where, text in texts:
        data = text.encode() if isinstance(text, str) else text
        found += [f"{where}: {s[:8]}…" for s in wanted if s.encode() in data]
    return found
