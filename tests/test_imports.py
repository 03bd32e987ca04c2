"""Import discipline: pure modules load no I/O library, and the CLI starts light.

Each check imports the module in a fresh interpreter and looks at ``sys.modules``, so
what is tested is the real import graph, transitive imports included (an import added
three modules away fails here too).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Libraries that reach the network, files or a cluster: never loaded by a pure module.
IO_LIBRARIES = (
    "av",
    "httpx",
    "fsspec",
    "s3fs",
    "gcsfs",
    "botocore",
    "boto3",
    "ray",
    "stamina",
    "pyarrow.parquet",
    "pyarrow.fs",
    "pyarrow.dataset",
)

#: Pure modules, and what each must not load beyond the I/O libraries. Those that only
#: handle JSON-like values (the manifest, the API's records) need no Arrow either.
PURE = {
    "odyssey_data.events": (),
    "odyssey_data.align": (),
    "odyssey_data.clips": (),
    "odyssey_data.tables": (),
    "odyssey_data.qc": (),
    "odyssey_data.schema": (),
    "odyssey_data.manifest": ("pyarrow", "numpy", "polars"),
    "odyssey_data.models": ("pyarrow", "numpy", "polars"),
    "odyssey_data.options": ("pyarrow", "numpy", "polars"),
    "odyssey_data.frameoptions": ("pyarrow", "numpy", "polars"),
    "odyssey_data.targetoptions": ("pyarrow", "numpy", "polars"),
    "odyssey_data.optionspec": ("pyarrow", "numpy", "polars"),
    "odyssey_data.jobfile": ("pyarrow", "numpy", "polars"),
    "odyssey_data.runs": ("pyarrow", "numpy", "polars"),
}


def loaded_after(code: str) -> set[str]:
    """The modules loaded by running ``code`` in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def offenders(loaded: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(name for name in forbidden if name in loaded)


@pytest.mark.parametrize("module", sorted(PURE))
def test_pure_modules_load_no_io_library(module: str) -> None:
    loaded = loaded_after(f"import {module}")
    assert module in loaded
    assert offenders(loaded, IO_LIBRARIES + PURE[module]) == []


def test_the_check_sees_a_violation() -> None:
    # The storage module is the fsspec boundary: the check must notice it.
    assert "fsspec" in offenders(loaded_after("import odyssey_data.storage"), IO_LIBRARIES)


def test_the_cli_starts_without_pyav_or_arrow() -> None:
    # `odyssey-data --version` (and --help) import the CLI module and run nothing else.
    loaded = loaded_after(
        "import contextlib, io\n"
        "from odyssey_data.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--version'])"
    )
    assert "odyssey_data.cli" in loaded
    assert offenders(loaded, ("av", "pyarrow", "httpx", "fsspec", "odyssey_data.pipeline")) == []
