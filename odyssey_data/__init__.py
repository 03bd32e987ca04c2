"""odyssey-data: turn Odyssey stream recordings into ML training datasets.

Export recordings (video + events log) from the Odyssey API into Parquet frame
references aligned with the prompt in force, then read them back for training::

    import odyssey_data

    report = odyssey_data.export(output="./dataset", api_key="ody_...")
    ds = odyssey_data.open_dataset("./dataset")
    ds.frames.filter(pl.col("prompt_index") == 1).collect()

The names below are loaded on first use (PEP 562): importing the package, as every
export worker process does, does not import polars, pyarrow.dataset or pandas.
"""

from __future__ import annotations as _annotations

from importlib import import_module as _import_module
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from odyssey_data._version import __version__
from odyssey_data.errors import (
    ApiError,
    ConfigError,
    MissingDependencyError,
    OdysseyDataError,
    RecordingError,
    StorageError,
)

if _TYPE_CHECKING:
    from odyssey_data.dataset import Dataset, open_dataset
    from odyssey_data.options import ExportConfig
    from odyssey_data.pipeline import ExportReport, export, list_recordings

__all__ = [
    "ApiError",
    "ConfigError",
    "Dataset",
    "ExportConfig",
    "ExportReport",
    "MissingDependencyError",
    "OdysseyDataError",
    "RecordingError",
    "StorageError",
    "__version__",
    "export",
    "list_recordings",
    "open_dataset",
]

_LAZY = {
    "Dataset": "odyssey_data.dataset",
    "open_dataset": "odyssey_data.dataset",
    "ExportConfig": "odyssey_data.options",
    "ExportReport": "odyssey_data.pipeline",
    "export": "odyssey_data.pipeline",
    "list_recordings": "odyssey_data.pipeline",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'odyssey_data' has no attribute {name!r}")
    value = getattr(_import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
