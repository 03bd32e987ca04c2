"""The notebooks in notebooks/ run top to bottom against the demo server, and are stored
without outputs.

Each is executed with nbclient in a fresh kernel of this interpreter (ipykernel's native
``python3`` kernel is ``sys.executable``) with the source tree first on ``PYTHONPATH``,
so a notebook tests this checkout, not an installed copy.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: Per-cell and per-notebook bounds: the demo export takes a few seconds.
CELL_TIMEOUT_S = 45


def test_the_notebooks_are_shipped() -> None:
    names = {p.name for p in NOTEBOOKS}
    shipped = {"01_quickstart.ipynb", "02_training_data.ipynb", "03_alignment_qc.ipynb"}
    assert shipped | {"04_lerobot.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: strip the outputs before committing"
            assert cell.execution_count is None, f"{path.name}: strip execution counts"


# jupyter_client/zmq may warn about their own internals (event loop policies, datetime
# handling) while starting a kernel: not this project's code, so not errors here.
@pytest.mark.filterwarnings("ignore::DeprecationWarning:jupyter_client")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:zmq")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:traitlets")
@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebooks export into a temp folder
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # silences jupyter_core's path warning
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    images = sum(
        1
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    )
    assert images >= 1, f"{path.name} shows no picture"
