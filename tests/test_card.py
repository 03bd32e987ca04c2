"""The dataset card (README.md): Hugging Face ``datasets`` loads every table natively.

Loaded with the real ``datasets`` package (offline, caches in a temp folder), compared
with what odyssey-data itself reads from the same export.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import DemoExport, export_config
from PIL import Image

from odyssey_data import open_dataset
from odyssey_data.card import CARD_NAME, is_own_card, render_card
from odyssey_data.demo import DemoServer
from odyssey_data.manifest import Manifest
from odyssey_data.pipeline import export
from odyssey_data.storage import FileEntry

# Offline, and no cache under the home folder: set before datasets/huggingface_hub load.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="odyssey-hf-home-"))
datasets = pytest.importorskip("datasets")


def load(root: Path, config: str, cache: Path) -> datasets.Dataset:
    return datasets.load_dataset(str(root), config, split="train", cache_dir=str(cache))


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "hf-cache"


# datasets' loaders use multiprocess/dill internals that warn on newer Pythons.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class TestLoadDataset:
    """``datasets.load_dataset(DIR, config)`` reads each table as odyssey-data does."""

    @pytest.mark.parametrize("table", ["frames", "recordings", "events", "segments"])
    def test_every_config_loads_the_whole_table(
        self, demo_export: DemoExport, cache: Path, table: str
    ) -> None:
        ds = open_dataset(str(demo_export.output))
        ours = ds.table(table).collect()
        theirs = load(demo_export.output, table, cache)
        assert theirs.num_rows == ours.height > 0
        assert theirs.column_names == ours.columns
        key = {"frames": "frame_index", "events": "event_index", "segments": "prompt_index"}
        if table in key:
            got = pl.DataFrame(
                {"stream_id": theirs["stream_id"], key[table]: theirs[key[table]]}
            ).sort(["stream_id", key[table]])
            assert got.equals(ours.select("stream_id", key[table]).sort(["stream_id", key[table]]))
        if table == "frames":
            prompts = pl.DataFrame({"prompt": theirs["prompt"]})
            assert sorted(prompts["prompt"].drop_nulls().unique().to_list()) == sorted(
                ours["prompt"].drop_nulls().unique().to_list()
            )

    def test_materialised_images_decode_to_pictures(
        self, demo_server: DemoServer, tmp_path: Path, cache: Path
    ) -> None:
        sid = next(r.stream_id for r in demo_server.catalog.recordings if not r.is_active)
        out = tmp_path / "jpeg"
        export(export_config(demo_server, out, frames="png", resize=(64, 48), stream_ids=(sid,)))
        theirs = load(out, "frames", cache)
        assert isinstance(theirs.features["image"], datasets.Image)
        ours = open_dataset(str(out)).frames.sort("frame_index").collect()
        assert theirs.num_rows == ours.height
        for i in (0, ours.height // 2, ours.height - 1):
            row = theirs[i]
            picture = row["image"]
            assert isinstance(picture, Image.Image)
            assert picture.size == (64, 48)
            stored = ours.filter(pl.col("frame_index") == row["frame_index"])["image"][0]
            expected = np.asarray(Image.open(io.BytesIO(stored)).convert("RGB"))
            assert np.array_equal(np.asarray(picture.convert("RGB")), expected)

    def test_the_card_names_only_files_the_manifest_lists(
        self, demo_server: DemoServer, tmp_path: Path, cache: Path
    ) -> None:
        out = tmp_path / "ds"
        sids = [r.stream_id for r in demo_server.catalog.recordings if not r.is_active][:2]
        export(export_config(demo_server, out, stream_ids=(sids[0],)))
        # A shard an interrupted run left behind: not part of the dataset.
        frames = out / "frames" / "part-000000.parquet"
        (out / "frames" / "part-000009.parquet").write_bytes(frames.read_bytes())
        card = (out / CARD_NAME).read_text()
        assert "part-000009" not in card
        before = open_dataset(str(out)).frames.collect().height
        assert load(out, "frames", cache).num_rows == before


class TestCardContent:
    def test_counts_prompts_version_and_license(self, demo_export: DemoExport) -> None:
        text = (demo_export.output / CARD_NAME).read_text()
        summary = open_dataset(str(demo_export.output)).summary()
        assert f"| frames | {summary['frames']:,} |" in text
        assert f"| recordings exported | {summary['status']['exported']} |" in text
        assert "license: unknown" in text
        from odyssey_data import __version__

        assert f"odyssey-data/) {__version__}" in text
        segments = open_dataset(str(demo_export.output)).segments.collect()
        for prompt in segments["prompt"].unique().to_list():
            assert f"- {prompt}" in text

    def test_verify_checks_the_card(self, demo_server: DemoServer, tmp_path: Path) -> None:
        sid = next(r.stream_id for r in demo_server.catalog.recordings if not r.is_active)
        out = tmp_path / "ds"
        export(export_config(demo_server, out, stream_ids=(sid,)))
        ds = open_dataset(str(out))
        assert ds.manifest.files[CARD_NAME].kind == "card"
        assert ds.verify() == []
        (out / CARD_NAME).write_text("tampered")
        assert any(CARD_NAME in p for p in open_dataset(str(out)).verify())

    def test_untrusted_prompts_stay_plain_text(self) -> None:
        manifest = Manifest()
        manifest.files["frames/part-000000.parquet"] = FileEntry(
            "frames/part-000000.parquet", "frames", 1, 1, "0" * 64
        )
        evil = "<script>alert(1)</script>\n---\nconfigs: [](http://x) | `x`"
        text = render_card(manifest, prompts=[evil])
        assert text.startswith("---\n")
        header, body = text[4:].split("\n---\n", 1)
        assert "script" not in header
        assert "http://x" not in header
        assert "<script>" not in body
        assert "\\<script\\>" in body
        assert "](http://x)" not in body
        assert "\\[\\]\\(http://x\\)" in body
        assert is_own_card(text.encode())
        assert not is_own_card(text.replace("unknown", "mit").encode())


class TestOwnership:
    """The card is the dataset's file only while nobody edited it."""

    def test_a_readme_of_the_owner_is_kept(self, demo_server: DemoServer, tmp_path: Path) -> None:
        sids = [r.stream_id for r in demo_server.catalog.recordings if not r.is_active][:2]
        out = tmp_path / "ds"
        export(export_config(demo_server, out, stream_ids=(sids[0],)))
        card = out / CARD_NAME
        assert is_own_card(card.read_bytes())
        edited = card.read_text().replace("license: unknown", "license: cc-by-4.0")
        card.write_text(edited)
        export(export_config(demo_server, out, stream_ids=tuple(sids)))
        assert card.read_text() == edited
        ds = open_dataset(str(out))
        assert CARD_NAME not in ds.manifest.files
        assert ds.verify() == []

    def test_an_own_card_is_refreshed(self, demo_server: DemoServer, tmp_path: Path) -> None:
        sids = [r.stream_id for r in demo_server.catalog.recordings if not r.is_active][:2]
        out = tmp_path / "ds"
        export(export_config(demo_server, out, stream_ids=(sids[0],)))
        first = (out / CARD_NAME).read_text()
        export(export_config(demo_server, out, stream_ids=tuple(sids)))
        second = (out / CARD_NAME).read_text()
        assert "| recordings exported | 1 |" in first
        assert "| recordings exported | 2 |" in second
        assert open_dataset(str(out)).verify() == []
