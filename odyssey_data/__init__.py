"""odyssey-data: turn Odyssey stream recordings into ML training datasets.

Export recordings (video + events log) from the Odyssey API into Parquet frame
references aligned with the prompt in force, then read them back for training::

    import odyssey_data

    report = odyssey_data.export(output="./dataset", api_key="ody_...")
    ds = odyssey_data.open_dataset("./dataset")
    ds.frames.filter(pl.col("prompt_index") == 1).collect()
"""

from odyssey_data._version import __version__
from odyssey_data.dataset import Dataset, open_dataset
from odyssey_data.errors import (
    ApiError,
    ConfigError,
    MissingDependencyError,
    OdysseyDataError,
    RecordingError,
    StorageError,
)
from odyssey_data.pipeline import ExportConfig, ExportReport, export, list_recordings

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
