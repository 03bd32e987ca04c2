"""The dataset card: a ``README.md`` that Hugging Face ``datasets`` reads natively.

Every export writes ``README.md`` at the dataset root, just before its last commit: a
YAML header whose ``configs`` name the Parquet files of each table (``frames``,
``recordings``, ``events``, ``segments``, and ``qc`` when the dataset has that table),
so ``datasets.load_dataset(DATASET_DIR, "frames")`` works without this package, and a
body for people: counts, the prompts, the exporter version and a ``license`` field left
for the owner to fill in.

Only the files ``manifest.json`` lists are named, so a leftover of an interrupted run is
never read. Materialised frames declare their ``image`` column as the ``Image`` feature
(it decodes to a picture); the other columns then take the types of the Parquet schema.

The card is the dataset's file while nobody has edited it: its last line carries the
SHA-256 of everything above it. A ``README.md`` without that line, or whose content no
longer matches it (the owner filled in the license, or the folder had a README of its
own), is left as it is and not listed in the manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from odyssey_data._version import __version__
from odyssey_data.errors import StorageError
from odyssey_data.manifest import FileEntry, Manifest
from odyssey_data.schema import TABLES
from odyssey_data.storage import DatasetStore

__all__ = ["CARD_KIND", "CARD_NAME", "CARD_TABLES", "is_own_card", "render_card", "write_card"]

log = logging.getLogger(__name__)

CARD_NAME = "README.md"
#: The manifest's ``kind`` of the card.
CARD_KIND = "card"
#: The tables a card names, in order: the four of format version 1, then ``qc``.
CARD_TABLES = tuple(dict.fromkeys((*TABLES, "qc")))
#: Prompts listed in the card's body at most (the rest are counted).
MAX_LISTED_PROMPTS = 50

_SEAL = re.compile(r"\n<!-- odyssey-data card sha256:([0-9a-f]{64}) -->\n\Z")


def _yaml_str(text: str) -> str:
    # A JSON string is a YAML double-quoted scalar (ASCII, escapes YAML also knows).
    return json.dumps(text, ensure_ascii=True)


def _feature_dtype(field: pa.Field) -> str | None:
    """The ``datasets`` dtype of a column, or ``None`` when it has no plain one."""
    kind = field.type
    if field.name == "image" and (pa.types.is_binary(kind) or pa.types.is_large_binary(kind)):
        return "image"
    simple = {
        pa.string(): "string",
        pa.large_string(): "large_string",
        pa.bool_(): "bool",
        pa.int8(): "int8",
        pa.int16(): "int16",
        pa.int32(): "int32",
        pa.int64(): "int64",
        pa.float32(): "float32",
        pa.float64(): "float64",
        pa.binary(): "binary",
    }
    if kind in simple:
        return simple[kind]
    if pa.types.is_timestamp(kind):
        return str(kind)  # e.g. timestamp[us, tz=UTC], as datasets spells it
    return None


def _features(schema: pa.Schema) -> list[tuple[str, str]] | None:
    out = []
    for fld in schema:
        dtype = _feature_dtype(fld)
        if dtype is None:
            return None
        out.append((fld.name, dtype))
    return out


def _clean(text: str, limit: int = 200) -> str:
    """One line of untrusted text, safe inside Markdown (no HTML, links or tables)."""
    line = " ".join(str(text).split())
    if len(line) > limit:
        line = line[: limit - 1] + "…"
    return re.sub(r"([\\`*_{}\[\]<>()#+!|~])", r"\\\1", line)


def render_card(
    manifest: Manifest,
    *,
    frame_features: pa.Schema | None = None,
    summary: dict[str, Any] | None = None,
    prompts: Iterable[str] = (),
) -> str:
    """The card's text for ``manifest``.

    Args:
        manifest: the manifest being committed (its files and recordings).
        frame_features: the frames shards' schema when it has an ``image`` column (its
            columns are then declared as features, the image as ``Image``).
        summary: counts for the body: ``frames``, ``prompts``, ``events``,
            ``duration_s`` (any may be missing).
        prompts: the distinct prompts, for the body.
    """
    lines = ["---", "# license: set this to the dataset's license (for example cc-by-4.0)"]
    lines += ["license: unknown", "tags:", "- video", "- odyssey", "- odyssey-data"]
    lines.append("configs:")
    named = []
    for table in CARD_TABLES:
        files = manifest.table_files(table)
        if not files:
            continue
        named.append(table)
        lines.append(f"- config_name: {table}")
        if table == "frames":
            lines.append("  default: true")
        lines.append("  data_files:")
        lines.append("  - split: train")
        lines.append("    path:")
        lines.extend(f"    - {_yaml_str(rel)}" for rel in files)
    features = _features(frame_features) if frame_features is not None else None
    if features is not None and "frames" in named:
        lines += ["dataset_info:", "- config_name: frames", "  features:"]
        for name, dtype in features:
            lines += [f"  - name: {_yaml_str(name)}", f"    dtype: {_yaml_str(dtype)}"]
    lines.append("---")
    counts = manifest.counts()
    facts = dict(summary or {})
    body = [
        "",
        "# Odyssey recordings",
        "",
        "Stream recordings of Odyssey's interactive video model, exported by "
        f"[odyssey-data](https://pypi.org/project/odyssey-data/) {__version__} (dataset "
        "format version 1).",
        "",
        "| | |",
        "| --- | --- |",
    ]
    for status in ("exported", "failed", "skipped"):
        body.append(f"| recordings {status} | {counts.get(status, 0)} |")
    for key, label in (("frames", "frames"), ("prompts", "prompts"), ("events", "events")):
        if key in facts:
            body.append(f"| {label} | {int(facts[key]):,} |")
    if "duration_s" in facts:
        body.append(f"| video duration | {float(facts['duration_s']):.1f} s |")
    body.append(f"| frames materialised | {'yes' if features is not None else 'no'} |")
    listed = sorted(set(prompts))
    if listed:
        body += ["", "## Prompts", ""]
        body += [f"- {_clean(p)}" for p in listed[:MAX_LISTED_PROMPTS]]
        if len(listed) > MAX_LISTED_PROMPTS:
            body.append(f"- … and {len(listed) - MAX_LISTED_PROMPTS} more")
    body += [
        "",
        "## Loading",
        "",
        "```python",
        "import datasets",
        'frames = datasets.load_dataset("PATH/TO/THIS/FOLDER", "frames", split="train")',
        "```",
        "",
        f"Configs: {', '.join(named) if named else 'none yet'}. Each `frames` row references "
        "one presented video frame (`video_path`, `pts`, `timestamp_s`) with the prompt in "
        "force; `odyssey_data.open_dataset(PATH).load_frames(rows)` decodes them. Column "
        "meanings: the odyssey-data dataset format, version 1.",
        "",
        "## License",
        "",
        "Not set by the exporter: the owner of the recordings fills in `license` above.",
        "",
    ]
    text = "\n".join(lines + body)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return f"{text}\n<!-- odyssey-data card sha256:{digest} -->\n"


def is_own_card(data: bytes) -> bool:
    """Whether ``data`` is a card this package wrote and nobody edited since."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    match = _SEAL.search(text)
    if match is None:
        return False
    body = text[: match.start()]
    return hashlib.sha256(body.encode("utf-8")).hexdigest() == match.group(1)


def _frame_schema(store: DatasetStore, manifest: Manifest) -> pa.Schema | None:
    files = manifest.table_files("frames")
    if not files:
        return None
    with store.open(files[0]) as handle:
        schema: pa.Schema = pq.ParquetFile(handle).schema_arrow
    return schema if "image" in schema.names else None


def _facts(store: DatasetStore, manifest: Manifest) -> tuple[dict[str, Any], list[str]]:
    """Counts from the recordings table, and the distinct prompts of the segments."""
    totals = {"frames": 0, "prompts": 0, "events": 0, "duration_s": 0.0}
    columns = {
        "frame_count": "frames",
        "prompts_count": "prompts",
        "events_count": "events",
        "video_duration_s": "duration_s",
    }
    for rel in manifest.table_files("recordings"):
        with store.open(rel) as handle:
            table = pq.read_table(handle, columns=list(columns))
        for column, key in columns.items():
            totals[key] += sum(v for v in table[column].to_pylist() if v is not None)
    prompts: set[str] = set()
    for rel in manifest.table_files("segments"):
        with store.open(rel) as handle:
            table = pq.read_table(handle, columns=["prompt"])
        prompts.update(p for p in table["prompt"].to_pylist() if p is not None)
    return totals, sorted(prompts)


def write_card(store: DatasetStore, manifest: Manifest) -> FileEntry | None:
    """Write ``README.md`` for ``manifest`` and list it there (kind ``card``).

    A ``README.md`` this package did not write, or that was edited since, is left alone
    (and unlisted); nothing is written then.

    Returns:
        The card's entry, or ``None`` when an existing README was kept.

    Raises:
        StorageError: the card or a table could not be read or written.
    """
    existing = store.read_bytes(CARD_NAME)
    if existing is not None and not is_own_card(existing):
        manifest.files.pop(CARD_NAME, None)
        log.warning(
            "%s under %s was not written by odyssey-data or was edited since: kept as it "
            "is (delete it to get a fresh dataset card)",
            CARD_NAME,
            store.url,
        )
        return None
    try:
        summary, prompts = _facts(store, manifest)
        schema = _frame_schema(store, manifest)
    except (pa.ArrowException, OSError) as exc:
        raise StorageError(f"cannot read the tables for the dataset card: {exc}") from exc
    text = render_card(manifest, frame_features=schema, summary=summary, prompts=prompts)
    entry = store.write_bytes(CARD_NAME, text.encode("utf-8"))
    entry = FileEntry(entry.path, CARD_KIND, None, entry.bytes, entry.sha256)
    manifest.files[CARD_NAME] = entry
    return entry
