"""OUTPUT is shared: the export deletes or overwrites only what it can prove it wrote.

Real folders, symlinks and a moto S3 prefix with foreign objects; real exports from the
demo server. Each test checks that every foreign byte is still there afterwards.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
from conftest import export_config
from storage_servers import ObjectStore, s3_fixture  # noqa: F401 - fixture

from odyssey_data import cli
from odyssey_data.card import is_own_card
from odyssey_data.dataset import open_dataset
from odyssey_data.demo import DemoServer
from odyssey_data.errors import StorageError
from odyssey_data.pipeline import export
from odyssey_data.storage import (
    LOCK_NAME,
    MANIFEST_NAME,
    SCRATCH_PREFIX,
    DatasetStore,
    is_owned,
    local_scratch_root,
    scratch_prefix,
)


def _plant(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _tree(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` (links not followed) and its bytes."""
    out = {}
    for parent, _dirs, files in os.walk(root):
        for name in files:
            path = Path(parent) / name
            if not path.is_symlink():
                out[str(path.relative_to(root))] = path.read_bytes()
    return out


#: A folder that is not a dataset, with names in the export's own folders.
NOT_A_DATASET = {
    "videos/holiday.mp4": b"my holiday",
    "frames/part-000000.parquet": b"my parquet",
    "recordings/list.txt": b"mine",
    "events/x": b"mine",
    "segments/y": b"mine",
    ".tmp-notes": b"mine too",
    f".tmp-{'ab' * 16}-manifest.json": b"looks like a temp file of the export",
}


def test_a_folder_that_is_not_a_dataset_is_refused_and_nothing_is_touched(
    fresh_server: DemoServer, tmp_path: Path
) -> None:
    out = tmp_path / "project"
    _plant(out, NOT_A_DATASET)
    with pytest.raises(StorageError, match="is not an odyssey-data dataset") as info:
        export(export_config(fresh_server, out))
    assert "\n" not in str(info.value)
    assert "--allow-foreign-files" in str(info.value)
    assert _tree(out) == NOT_A_DATASET  # not one file deleted, no lock or manifest added
    # --overwrite is about datasets: it does not make a foreign folder one.
    with pytest.raises(StorageError, match="is not an odyssey-data dataset"):
        export(export_config(fresh_server, out, overwrite=True))
    assert _tree(out) == NOT_A_DATASET


def test_the_cli_says_so_in_one_line(
    fresh_server: DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "project"
    _plant(out, {"videos/holiday.mp4": b"my holiday"})
    code = cli.main(
        ["export", str(out), "--api-url", fresh_server.base_url, "--api-key", fresh_server.api_key]
    )
    err = capsys.readouterr().err
    assert code == cli.EXIT_FATAL
    assert err.startswith("error: "), err
    assert err.count("\n") == 1, err
    assert "not an odyssey-data dataset" in err
    assert (out / "videos/holiday.mp4").read_bytes() == b"my holiday"


def test_allow_foreign_files_refuses_a_name_the_export_writes(
    fresh_server: DemoServer, tmp_path: Path
) -> None:
    out = tmp_path / "project"
    _plant(out, {"notes.txt": b"mine", "videos/holiday.mp4": b"my holiday"})
    with pytest.raises(StorageError, match=r"videos/holiday\.mp4 .*has a name the export writes"):
        export(export_config(fresh_server, out, allow_foreign_files=True))
    assert _tree(out) == {"notes.txt": b"mine", "videos/holiday.mp4": b"my holiday"}


def test_allow_foreign_files_keeps_every_foreign_file_through_reruns_and_overwrite(
    fresh_server: DemoServer, tmp_path: Path
) -> None:
    out = tmp_path / "project"
    foreign = {
        "notes.txt": b"mine",
        "videos/holiday.mov": b"not an mp4 name",
        "videos/sub/clip.mp4": b"in a subfolder",
        "videos/.hidden.mp4": b"a dot name",
        "frames/README": b"mine",
        "frames/part-1.parquet": b"too few digits to be a shard",
        ".tmp-notes": b"a .tmp- name that is not the export's",
        ".tmp-odyssey-data.txt": b"close, but a file",
    }
    _plant(out, foreign)
    report = export(export_config(fresh_server, out, allow_foreign_files=True))
    assert report.exported == 3
    ds = open_dataset(str(out))
    assert ds.verify() == []
    # A re-run (leftover clean-up) and an --overwrite (removes every old file of the
    # dataset) both leave the foreign files as they were.
    export(export_config(fresh_server, out))
    export(export_config(fresh_server, out, overwrite=True))
    tree = _tree(out)
    assert {rel: tree[rel] for rel in foreign} == foreign
    # Everything else is the export's: its own names, and its sealed dataset card.
    assert is_own_card(tree["README.md"])
    assert all(is_owned(rel) for rel in set(tree) - set(foreign) - {"README.md"})


def test_the_first_commit_comes_before_any_other_file(
    fresh_server: DemoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new dataset's empty manifest is committed first: a run killed at any later point
    leaves a folder the next run knows as its own (and not a foreign one)."""
    out = tmp_path / "new"
    seen: list[list[str]] = []
    real = DatasetStore.put_file

    def spy(self: DatasetStore, rel: str, *args: object, **kwargs: object) -> object:
        seen.append(sorted(p.name for p in out.iterdir()))
        return real(self, rel, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(DatasetStore, "put_file", spy)
    export(export_config(fresh_server, out))
    monkeypatch.undo()
    assert seen
    assert all(MANIFEST_NAME in names for names in seen)
    # A folder holding only a dead run's lock and temp files is still free.
    fresh = tmp_path / "fresh"
    _plant(fresh, {LOCK_NAME: b"{}", f".tmp-{'cd' * 16}-{LOCK_NAME}": b""})
    (fresh / f"{SCRATCH_PREFIX}1_1-abcd").mkdir()
    assert DatasetStore(str(fresh)).check_ownership() is False


def test_leftovers_in_a_dataset_are_only_the_export_s_own_names(
    fresh_server: DemoServer, tmp_path: Path
) -> None:
    out = tmp_path / "dataset"
    export(export_config(fresh_server, out))
    mine = {
        "videos/ghost.mp4": b"an interrupted run's video",
        "videos/ghost.thumbnail.jpg": b"its thumbnail",
        "frames/part-000777.parquet": b"an interrupted run's shard",
        f"videos/.tmp-{'ef' * 16}-x.mp4": b"a temp file",
    }
    theirs = {
        "videos/ghost.txt": b"the user's",
        "videos/sub/ghost.mp4": b"the user's, in a subfolder",
        "frames/part-000777.parquet.bak": b"the user's",
        "frames/.tmp-backup": b"the user's",
        "NOTES.md": b"the user's",
    }
    _plant(out, {**mine, **theirs})
    (out / f"{SCRATCH_PREFIX}dead").mkdir()  # a worker folder of a killed run
    export(export_config(fresh_server, out))
    tree = _tree(out)
    assert not set(mine) & set(tree)
    assert {rel: tree[rel] for rel in theirs} == theirs
    assert not (out / f"{SCRATCH_PREFIX}dead").exists()


def test_a_symlinked_dataset_folder_is_never_followed(
    fresh_server: DemoServer, tmp_path: Path
) -> None:
    out = tmp_path / "dataset"
    export(export_config(fresh_server, out))
    outside = tmp_path / "elsewhere"
    _plant(outside, {"precious.mp4": b"outside OUTPUT", "part-000001.parquet": b"outside"})
    for folder in ("videos", "frames"):
        moved = tmp_path / f"moved-{folder}"
        (out / folder).rename(moved)
        (out / folder).symlink_to(outside, target_is_directory=True)
        with pytest.raises(StorageError, match=f"{folder} under .* is a symbolic link") as info:
            export(export_config(fresh_server, out, overwrite=True))
        assert "\n" not in str(info.value)
        assert _tree(outside) == {
            "precious.mp4": b"outside OUTPUT",
            "part-000001.parquet": b"outside",
        }
        (out / folder).unlink()
        moved.rename(out / folder)
    assert open_dataset(str(out)).verify() == []


def test_symlinked_files_are_neither_read_written_nor_deleted(
    fresh_server: DemoServer, tmp_path: Path
) -> None:
    out = tmp_path / "dataset"
    export(export_config(fresh_server, out))
    secret = tmp_path / "secret.json"
    secret.write_bytes(b'{"format": "odyssey-data"}')
    victim = tmp_path / "victim.mp4"
    victim.write_bytes(b"outside OUTPUT")
    # A leftover-looking link in videos/: not listed, so not deleted, and not followed.
    (out / "videos/ghost.mp4").symlink_to(victim)
    export(export_config(fresh_server, out))
    assert victim.read_bytes() == b"outside OUTPUT"
    assert (out / "videos/ghost.mp4").is_symlink()
    # The manifest as a link: not read through, one line.
    (out / MANIFEST_NAME).rename(tmp_path / "real-manifest.json")
    (out / MANIFEST_NAME).symlink_to(secret)
    with pytest.raises(StorageError, match=r"manifest\.json under .* is a symbolic link"):
        export(export_config(fresh_server, out))
    assert secret.read_bytes() == b'{"format": "odyssey-data"}'
    # A link at the root of a folder that is not yet a dataset makes it foreign.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "videos").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(StorageError, match="not an odyssey-data dataset"):
        export(export_config(fresh_server, fresh))
    with pytest.raises(StorageError, match="symbolic link"):
        export(export_config(fresh_server, fresh, allow_foreign_files=True))
    assert victim.read_bytes() == b"outside OUTPUT"


def test_an_s3_prefix_with_foreign_objects(
    fresh_server: DemoServer, s3: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    url = s3.url("shared")
    store = DatasetStore(url, s3.storage_options)
    store.write_bytes("videos/holiday.mp4", b"my holiday")
    store.write_bytes("notes/readme.txt", b"mine")

    def run(**options: object) -> object:
        return export(
            export_config(fresh_server, url, storage_options=s3.storage_options, **options)
        )

    with pytest.raises(StorageError, match="is not an odyssey-data dataset"):
        run()
    with pytest.raises(StorageError, match=r"videos/holiday\.mp4 .*has a name the export"):
        run(allow_foreign_files=True)
    assert store.file_info(LOCK_NAME) is None
    assert store.file_info(MANIFEST_NAME) is None
    store.remove(["videos/holiday.mp4"])
    store.write_bytes("videos/holiday.mov", b"my holiday")
    report = run(allow_foreign_files=True)
    assert report.exported == 3  # type: ignore[attr-defined]
    run(overwrite=True)
    assert store.read_bytes("videos/holiday.mov") == b"my holiday"
    assert store.read_bytes("notes/readme.txt") == b"mine"
    assert open_dataset(url, s3.storage_options).verify() == []


def test_temp_files_never_go_to_the_system_temp_folder(
    fresh_server: DemoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed with SIGKILL would leave them there for ever: they go where the next
    run looks (the dataset root, or the per-user scratch folder for object stores)."""
    fresh_server.warm()  # the demo server makes its videos in the system temp folder
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-system-temp"))
    for output in (tmp_path / "local", "memory://ownership-temp/dataset"):
        report = export(export_config(fresh_server, output, frames="jpeg", resize=(32, None)))
        assert report.exported == 3
    assert not (tmp_path / "no-such-system-temp").exists()


def test_a_killed_run_s_scratch_folders_are_removed_by_the_next(
    fresh_server: DemoServer, tmp_path: Path
) -> None:
    scratch = Path(local_scratch_root())
    scratch.mkdir(parents=True, exist_ok=True)
    # A process that has exited (its pid is free now, or reused by a newer process).
    dead = scratch / f"{SCRATCH_PREFIX}999999999_1-abcd"
    (dead / "sub").mkdir(parents=True)
    (dead / "sub/video.mp4").write_bytes(b"half a download")
    alive = Path(tempfile.mkdtemp(prefix=scratch_prefix(), dir=scratch))
    foreign = scratch / "not-ours"
    foreign.mkdir(exist_ok=True)
    assert re.fullmatch(r"\.tmp-odyssey-data-\d+_\d+-.+", alive.name)
    export(export_config(fresh_server, "memory://ownership-scratch/dataset"))
    assert not dead.exists()
    assert alive.exists()
    assert foreign.exists()
    alive.rmdir()


def test_the_store_refuses_to_delete_a_name_it_does_not_own(tmp_path: Path) -> None:
    _plant(tmp_path, {"notes.txt": b"mine", "videos/a.mp4": b"a leftover"})
    store = DatasetStore(str(tmp_path))
    with pytest.raises(StorageError, match=r"refusing to delete notes\.txt"):
        store.remove(["videos/a.mp4", "notes.txt"])
    assert _tree(tmp_path) == {"notes.txt": b"mine", "videos/a.mp4": b"a leftover"}
    store.remove(["videos/a.mp4"])
    assert _tree(tmp_path) == {"notes.txt": b"mine"}
    assert is_owned("frames/part-000012.parquet")
    assert not is_owned("frames/part-12.parquet")
    assert not is_owned("videos/sub/a.mp4")
    assert not is_owned(".tmp-notes")
