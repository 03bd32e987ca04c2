"""The package's shape: a curated public API and one module per heavy library."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import polars as pl

import odyssey_data
from odyssey_data import open_dataset
from odyssey_data.demo import DemoServer

PACKAGE = Path(odyssey_data.__file__).parent

# design.md: each heavy library is imported by one owner only. An owner is one module
# (``video.py``) or, once it outgrew ~700 lines, the package of that name (``video/``):
# the package is still the one place that library's objects and exceptions are handled.
OWNERS = {
    "httpx": "api",
    "av": "video",
    "fsspec": "storage",
    "ray": "ray_executor",
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def owner_of(path: Path) -> str:
    """``api.py`` and ``api/client.py`` both belong to the owner ``api``."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def test_heavy_libraries_are_imported_by_one_owner_each() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        roots = imported_roots(path)
        for library, owner in OWNERS.items():
            if library in roots and owner_of(path) != owner:
                offenders.append(f"{path.relative_to(PACKAGE)} imports {library}")
    assert offenders == []


def test_the_owner_rule_can_fail() -> None:
    """A module outside an owner package that imports its library is caught."""
    assert owner_of(PACKAGE / "video" / "reader.py") == "video"
    assert owner_of(PACKAGE / "video.py") == "video"
    assert owner_of(PACKAGE / "videos.py") != "video"
    assert owner_of(PACKAGE / "demo" / "video.py") == "demo"


def test_all_is_complete_and_sorted() -> None:
    for name in odyssey_data.__all__:
        getattr(odyssey_data, name)  # every lazy name resolves
    public = {name for name in vars(odyssey_data) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(odyssey_data, name)).__name__ == "module"}
    assert set(odyssey_data.__all__) == (public - modules) | {"__version__"}
    assert list(odyssey_data.__all__) == sorted(odyssey_data.__all__)


def test_workers_do_not_import_the_reader_stack() -> None:
    """The export's worker processes import the pipeline; polars and pandas stay out."""
    code = (
        "import sys, odyssey_data.pipeline; "
        "print(sorted(m for m in ('polars', 'pandas', 'pyarrow.dataset') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_version_matches_installed_metadata() -> None:
    from importlib.metadata import version

    assert version("odyssey-data") == odyssey_data.__version__


def test_cli_entry_point_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "odyssey_data.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert odyssey_data.__version__ in done.stdout


def test_the_command_spares_its_process_the_pandas_import(
    demo_server: DemoServer, tmp_path: Path
) -> None:
    """pyarrow would import pandas at its first array just to ask whether the input is
    a pandas object; the command answers that without it, and pandas stays importable.

    A stand-in ``pandas`` (first on the path, whatever is installed) records its import.
    """
    fake = tmp_path / "site" / "pandas"
    fake.mkdir(parents=True)
    marker = tmp_path / "pandas-imported"
    (fake / "__init__.py").write_text(
        f"open({str(marker)!r}, 'a').write('imported\\n')\n__version__ = '0.0'\n"
    )
    code = (
        "import atexit, sys\n"
        "def after():\n"
        "    print('imported-during-the-run', 'pandas' in sys.modules)\n"
        "    import pandas\n"  # still importable once the command ran
        "    print('after-exit-import-ok')\n"
        "atexit.register(after)\n"
        "from odyssey_data.cli import run\n"
        "run()\n"
    )
    env = {
        **os.environ,
        # The stand-in first, then this checkout's package (the one under test).
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(PACKAGE.parent)]),
        "ODYSSEY_API_URL": demo_server.base_url,
        "ODYSSEY_API_KEY": demo_server.api_key,
    }
    done = subprocess.run(
        [sys.executable, "-c", code, "export", str(tmp_path / "out"), "--workers", "2", "-q"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode in (0, 3), done.stderr  # 3: the demo's live stream is skipped
    assert "imported-during-the-run False" in done.stdout
    assert "after-exit-import-ok" in done.stdout
    # Imported once: by the atexit hook, never during the export.
    assert marker.read_text() == "imported\n"
    assert open_dataset(str(tmp_path / "out")).frames.select(pl.len()).collect().item() > 0
